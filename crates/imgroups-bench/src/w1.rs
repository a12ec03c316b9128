//! W1: durable writes. SetDisplayName on many distinct groups and on one group, c = 1, 16, 64
//! over 4 HTTP/2 channels, synchronous=FULL; against the bare tonic echo at the same
//! concurrency and raw SQLite 1-row commits. Ends with kill -9 during writes, a restart, and a
//! check that every acknowledged write is in the log.

use std::collections::HashSet;
use std::time::Duration;

use imgroups_proto::pb;
use imgroups_proto::pb::group_service_client::GroupServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::client::{self, bearer, closed_loop_capped, connect, create_groups, req, Run};
use crate::proc::Result;
use crate::stats::{dur_us, num, spread, Round, Table};
use crate::{progress, Ctx};

pub(crate) const CHANNELS: usize = 4;

/// `n` groups of me and two others (`{prefix}{i}a`, `{prefix}{i}b`) to rename.
pub(crate) async fn rename_groups(
    chans: &[Channel],
    auth: &AsciiMetadataValue,
    n: usize,
    prefix: &str,
) -> Result<Vec<String>> {
    create_groups(
        chans,
        n,
        16,
        |i| {
            vec![
                format!("{prefix}{i}a@bench.test"),
                format!("{prefix}{i}b@bench.test"),
            ]
        },
        |_| auth.clone(),
        false,
    )
    .await
}

/// Renames: worker `w`'s i-th write is named `{tag}.{w}.{i}`, so acknowledged writes can be
/// checked in the log afterwards.
pub(crate) async fn rename_run(
    chans: &[Channel],
    auth: &AsciiMetadataValue,
    guids: &[String],
    one_group: bool,
    c: usize,
    dur: Duration,
    tag: &str,
) -> Run {
    rename_run_capped(chans, auth, guids, one_group, c, dur, None, tag).await
}

/// [`rename_run`], stopping after `total` writes in all if that comes first.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn rename_run_capped(
    chans: &[Channel],
    auth: &AsciiMetadataValue,
    guids: &[String],
    one_group: bool,
    c: usize,
    dur: Duration,
    total: Option<u64>,
    tag: &str,
) -> Run {
    let clients: Vec<GroupServiceClient<Channel>> =
        chans.iter().cloned().map(GroupServiceClient::new).collect();
    closed_loop_capped(c, dur, 1, total, |w, i| {
        let mut client = clients[w % clients.len()].clone();
        // Distinct: worker w cycles through its own share of the groups.
        let g = if one_group {
            0
        } else {
            (w + c * i as usize) % guids.len()
        };
        let request = req(
            pb::SetDisplayNameRequest {
                chat_guid: guids[g].clone(),
                display_name: format!("{tag}.{w}.{i}"),
                client_message_id: None,
            },
            auth,
        );
        async move { client.set_display_name(request).await.map(drop) }
    })
    .await
}

/// Every name `{tag}.{w}.{i}` for i < `acked[w]`.
/// After a `kill -9` and a restart: every acknowledged rename in `acked` is in the log, which
/// is gap-free. `what` opens the check's line. Returns the log's head.
pub(crate) async fn check_acked_in_log(
    ctx: &mut Ctx,
    chan: Channel,
    auth: &AsciiMetadataValue,
    acked: &[(String, Vec<u64>)],
    what: &str,
) -> Result<u64> {
    let mut present = HashSet::new();
    let cu = client::catch_up(chan, auth, None, |_, e| {
        if let Some(name) = client::display_name(e) {
            present.insert(name.to_owned());
        }
    })
    .await?;
    let (total, missing) = missing_acks(acked, &present);
    ctx.check(
        missing == 0 && cu.gaps == 0 && cu.events == cu.head,
        format!(
            "{what}: {total} acknowledged writes, {missing} missing from the log; log 1..{} with {} gap(s)",
            cu.head, cu.gaps
        ),
    );
    Ok(cu.head)
}

fn missing_acks(acked: &[(String, Vec<u64>)], present: &HashSet<String>) -> (u64, u64) {
    let (mut total, mut missing) = (0u64, 0u64);
    for (tag, per_worker) in acked {
        for (w, n) in per_worker.iter().enumerate() {
            for i in 0..*n {
                total += 1;
                if !present.contains(&format!("{tag}.{w}.{i}")) {
                    missing += 1;
                }
            }
        }
    }
    (total, missing)
}

/// `imgroups-bench load`: the W1 rename load against a server started by hand.
pub(crate) async fn load(
    url: &str,
    token: &str,
    c: usize,
    secs: f64,
    writes: Option<u64>,
    one_group: bool,
) -> Result<()> {
    let auth = bearer(token)?;
    let chans = connect(url, CHANNELS).await?;
    let guids = rename_groups(&chans, &auth, 1000, "load").await?;
    // A marker for scripts that sample the server (CPU, perf) during the measured part only.
    println!("groups created");
    let tag = format!("load{}", std::process::id());
    let dur = Duration::from_secs_f64(secs);
    let run = rename_run_capped(&chans, &auth, &guids, one_group, c, dur, writes, &tag).await;
    if let Some(e) = &run.first_error {
        return Err(format!("{} write(s) failed: {e}", run.errors).into());
    }
    let r = Round::from_samples(run.ops(), run.secs, run.lat_us, 0.0);
    println!(
        "c={c} {}: {}/s p50 {} p99 {} p99.9 {}",
        if one_group {
            "one group"
        } else {
            "1000 groups"
        },
        num(r.rate),
        dur_us(r.p50),
        dur_us(r.p99),
        dur_us(r.p999)
    );
    Ok(())
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<()> {
    progress("W1: durable writes (SetDisplayName, synchronous=FULL)");
    let dir = ctx.fresh_dir("w1")?;
    let srv = ctx.imgroups(&dir, "full").await?;
    let auth = bearer(srv.token.as_deref().ok_or("no token printed")?)?;
    let bare = ctx.bare().await?;
    let chans = connect(&srv.url, CHANNELS).await?;
    let bchans = connect(&bare.url, CHANNELS).await?;
    let n = ctx.scale.w1_groups;
    let guids = rename_groups(&chans, &auth, n, "w1g").await?;
    progress(format!("W1: {n} groups created"));

    let configs: [(bool, usize); 6] = [
        (false, 1),
        (false, 16),
        (false, 64),
        (true, 1),
        (true, 16),
        (true, 64),
    ];
    let mut acked: Vec<(String, Vec<u64>)> = Vec::new();
    let mut a: Vec<Vec<Round>> = vec![Vec::new(); configs.len()];
    let mut b: Vec<Vec<Round>> = vec![Vec::new(); configs.len()];
    let mut sqlite = Vec::new();
    let warm = Duration::from_secs_f64((ctx.scale.secs / 4.0).min(0.5));
    let run = rename_run(&chans, &auth, &guids, false, 16, warm, "warm").await;
    acked.push(("warm".into(), run.ok_per_worker));
    rename_run(&bchans, &auth, &guids, false, 16, warm, "warm").await;

    for r in 0..ctx.rounds {
        for (k, &(one, c)) in configs.iter().enumerate() {
            let tag = format!("{}{c}r{r}", if one { "o" } else { "d" });
            let cpu0 = srv.cpu_secs();
            let run = rename_run(&chans, &auth, &guids, one, c, ctx.secs(), &tag).await;
            let cpu = srv.cpu_secs() - cpu0;
            if let Some(e) = &run.first_error {
                ctx.check(
                    false,
                    format!("W1 {tag}: {} write(s) failed: {e}", run.errors),
                );
            }
            a[k].push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
            acked.push((tag.clone(), run.ok_per_worker));

            let cpu0 = bare.cpu_secs();
            let run = rename_run(&bchans, &auth, &guids, one, c, ctx.secs(), &tag).await;
            let cpu = bare.cpu_secs() - cpu0;
            b[k].push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
        }
        sqlite.push(ctx.sqlite_round("full").await?);
        progress(format!("W1: round {}/{} done", r + 1, ctx.rounds));
    }
    let peak_rss = srv.peak_rss_mib();
    let bare_rss = bare.peak_rss_mib();

    // Durability: kill -9 in the middle of c=64 writes, restart, look for every ack.
    let pid = srv.pid;
    let crash_after = ctx.secs() / 2;
    let (run, ()) = tokio::join!(
        rename_run(&chans, &auth, &guids, false, 64, ctx.secs() * 4, "crash"),
        async move {
            tokio::time::sleep(crash_after).await;
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
        }
    );
    let crash_acks = run.ops();
    acked.push(("crash".into(), run.ok_per_worker));
    srv.kill9().await;
    drop(chans);
    let srv = ctx.imgroups(&dir, "full").await?;
    let chans = connect(&srv.url, 1).await?;
    let head = check_acked_in_log(
        ctx,
        chans[0].clone(),
        &auth,
        &acked,
        &format!("W1 kill -9 during c=64 writes ({crash_acks} acked in the crash burst), restart"),
    )
    .await?;
    let db_bytes = crate::proc::file_len(&dir.join("imgroups.db"))
        + crate::proc::file_len(&dir.join("imgroups.db-wal"));
    srv.stop().await;
    bare.stop().await;

    let mut t = Table::new(
        "W1 durable writes: SetDisplayName, synchronous=FULL, 4 HTTP/2 channels; baseline = bare tonic echo, same concurrency",
        "ops/s",
    );
    for (k, &(one, c)) in configs.iter().enumerate() {
        let label = format!(
            "{} c={c}",
            if one {
                "one group".to_owned()
            } else {
                format!("{n} groups")
            }
        );
        t.pair(&label, ("imgroups", &a[k]), ("bare echo", &b[k]));
    }
    let mut text = t.finish();
    let sq = spread(sqlite.iter().copied());
    let c64 = &a[2];
    let vs_sqlite = spread(c64.iter().zip(&sqlite).map(|(x, s)| x.rate / s));
    text.push_str(&format!(
        "\nRaw SQLite (WAL, synchronous=FULL, 1 row per commit, same CPU): {} commits/s; imgroups {n} groups c=64 / raw commits = {:.2} (min–max {:.2}–{:.2}), i.e. the group-commit gain.\nServer peak RSS (VmHWM) {:.1} MiB (bare {:.1} MiB); disk {:.0} bytes per event ({} events).\n",
        crate::stats::show(sq, num),
        vs_sqlite.med,
        vs_sqlite.min,
        vs_sqlite.max,
        peak_rss,
        bare_rss,
        db_bytes as f64 / head.max(1) as f64,
        head
    ));
    ctx.emit(&text);

    let ratio = |k: usize| spread(a[k].iter().zip(&b[k]).map(|(x, y)| x.rate / y.rate)).med;
    let p99r = |k: usize| spread(a[k].iter().zip(&b[k]).map(|(x, y)| x.p99 / y.p99)).med;
    let c64_med = spread(a[2].iter().map(|x| x.rate)).med;
    ctx.w1_c64 = Some(c64_med);
    ctx.target(
        "W1 c=64 (distinct groups) ≥ 40% of bare tonic unary c=64",
        format!("{:.1}% ({}/s)", ratio(2) * 100.0, num(c64_med)),
        Some(ratio(2) >= 0.4),
    );
    ctx.target(
        "W1 p99 at c=16 (distinct groups) ≤ 3× bare p99",
        format!(
            "{:.1}× ({} vs {})",
            p99r(1),
            dur_us(spread(a[1].iter().map(|x| x.p99)).med),
            dur_us(spread(b[1].iter().map(|x| x.p99)).med)
        ),
        Some(p99r(1) <= 3.0),
    );
    let c16 = spread(a[1].iter().map(|x| x.rate)).med;
    ctx.target(
        "W1 renames at c=16 ≥ 100× Synapse (~70/s) = 7,000/s",
        format!("{}/s = {:.0}× Synapse", num(c16), c16 / 70.0),
        Some(c16 >= 7000.0),
    );
    ctx.target(
        "W1 one group c=64 ≥ 40% of bare c=64 (not an issue target; hot-group check)",
        format!("{:.0}%", ratio(5) * 100.0),
        None,
    );
    Ok(())
}
