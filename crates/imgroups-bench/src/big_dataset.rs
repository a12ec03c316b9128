//! The big dataset and the two workloads on it: W4 (catch-up over a long log) and W5
//! (footprint: RSS with a large dataset, memory per idle subscriber, cold start). Both use one
//! dataset seeded through the real write path.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use imgroups_core::admin;
use imgroups_core::port::Store;
use imgroups_core::Address;
use imgroups_proto::pb;
use imgroups_proto::pb::chat_service_client::ChatServiceClient;
use imgroups_proto::pb::group_service_client::GroupServiceClient;
use imgroups_store_sqlite::{Config, Durability, Role, SqliteStore};
use tokio::sync::watch;
use tonic::Status;

use crate::client::{self, bearer, connect, create_groups, req};
use crate::proc::{file_len, Result};
use crate::stats::{dur_us, num, show, spread, Round, Table};
use crate::w1::{rename_run, CHANNELS};
use crate::w3::open_subscribers;
use crate::{progress, Ctx};

/// Accounts that create the dataset's groups (each leaves right after creating, so its own
/// group list, which creation scans, stays short).
const CREATORS: usize = 64;

/// The seeded dataset: `groups` groups, and the default account's log of `me_events` events.
pub(crate) struct Big {
    pub(crate) dir: PathBuf,
    pub(crate) token: String,
    pub(crate) guids: Vec<String>,
    pub(crate) me_events: u64,
    pub(crate) total_events: u64,
    pub(crate) seed_secs: f64,
    pub(crate) seed_rate: f64,
}

/// Runs `op(j)` for j in 0..count, `c` at a time.
async fn drive<F, Fut>(count: usize, c: usize, op: F) -> std::result::Result<(), Status>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = std::result::Result<(), Status>>,
{
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    loop {
        while next < count && pending.len() < c {
            pending.push(op(next));
            next += 1;
        }
        match pending.next().await {
            Some(r) => r?,
            None => return Ok(()),
        }
    }
}

/// Seeds the dataset once per invocation, through the real write path with
/// `--durability normal` and high concurrency.
async fn ensure_big(ctx: &mut Ctx) -> Result<()> {
    if ctx.big.is_some() {
        return Ok(());
    }
    let started = Instant::now();
    let g = ctx.scale.big_groups as usize;
    let target = ctx.scale.big_events;
    // The default account's log: one "added" and one "creator left" per group, then renames.
    let renames = target.saturating_sub(2 * g as u64) as usize;
    progress(format!(
        "seeding: {g} groups (created by {CREATORS} accounts that then leave) and {renames} renames, --durability normal"
    ));
    let dir = ctx.fresh_dir("big")?;
    let mut creator_tokens = Vec::with_capacity(CREATORS);
    {
        // The same operation as `imgroups account add`, all at once (they commit together).
        let mut config = Config::new(dir.join("imgroups.db"));
        config.durability = Durability::Normal;
        config.role = Role::Tool;
        let store = SqliteStore::open(config)?;
        let mut adds = Vec::with_capacity(CREATORS);
        for k in 0..CREATORS {
            let address = Address::parse(&format!("creator{k}@bench.test"))?;
            let store = store.clone();
            adds.push(async move { admin::add_account(&store, &address).await });
        }
        for token in futures::future::join_all(adds).await {
            creator_tokens.push(bearer(&token?)?);
        }
        store.close().await;
    }
    let srv = ctx.imgroups(&dir, "normal").await?;
    let token = srv.token.clone().ok_or("no token printed")?;
    let me = srv.account.clone().ok_or("no account printed")?;
    let auth = bearer(&token)?;
    let chans = connect(&srv.url, CHANNELS).await?;
    let guids = create_groups(
        &chans,
        g,
        64,
        |i| {
            vec![
                me.clone(),
                format!("b{i}x@bench.test"),
                format!("b{i}y@bench.test"),
            ]
        },
        |i| creator_tokens[i % CREATORS].clone(),
        true,
    )
    .await?;
    progress(format!(
        "seeding: {g} groups in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let clients: Vec<_> = chans.iter().cloned().map(GroupServiceClient::new).collect();
    let t = Instant::now();
    drive(renames, 64, |j| {
        let mut c = clients[j % clients.len()].clone();
        let r = req(
            pb::SetDisplayNameRequest {
                chat_guid: guids[j % g].clone(),
                display_name: format!("s{j}"),
                client_message_id: None,
            },
            &auth,
        );
        async move { c.set_display_name(r).await.map(drop) }
    })
    .await
    .map_err(|s| format!("seeding renames: {}: {}", s.code(), s.message()))?;
    let rename_secs = t.elapsed().as_secs_f64();
    drop(clients);
    drop(chans);
    srv.stop().await;
    let me_events = 2 * g as u64 + renames as u64;
    let seed_secs = started.elapsed().as_secs_f64();
    progress(format!(
        "seeding done in {seed_secs:.1} s ({} renames/s at c=64, durability normal)",
        num(renames as f64 / rename_secs.max(1e-9))
    ));
    ctx.big = Some(Big {
        dir,
        token,
        guids,
        me_events,
        total_events: me_events + g as u64,
        seed_secs,
        seed_rate: renames as f64 / rename_secs.max(1e-9),
    });
    Ok(())
}

pub(crate) async fn run_w4(ctx: &mut Ctx) -> Result<()> {
    ensure_big(ctx).await?;
    let big = ctx.big.as_ref().ok_or("no dataset")?;
    let (dir, auth, expect) = (big.dir.clone(), bearer(&big.token)?, big.me_events);
    progress(format!("W4: catch-up over {expect} events"));
    let srv = ctx.imgroups(&dir, "full").await?;
    let bare = ctx.bare().await?;
    let ch = connect(&srv.url, 1).await?.remove(0);
    let bch = connect(&bare.url, 1).await?.remove(0);
    // Warm-up pass on each (page cache, allocator).
    client::catch_up(ch.clone(), &auth, None, |_, _| {}).await?;
    client::catch_up(bch.clone(), &auth, Some(expect), |_, _| {}).await?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut bad = Vec::new();
    for _ in 0..ctx.rounds {
        let cpu0 = srv.cpu_secs();
        let cu = client::catch_up(ch.clone(), &auth, None, |_, _| {}).await?;
        let cpu = srv.cpu_secs() - cpu0;
        if cu.events != expect || cu.head != expect || cu.gaps != 0 {
            bad.push(format!(
                "{} events, head {}, {} gaps",
                cu.events, cu.head, cu.gaps
            ));
        }
        a.push(Round {
            rate: cu.events as f64 / cu.secs,
            p50: cu.first_event_s * 1e6,
            p99: f64::NAN,
            p999: f64::NAN,
            cpu_s: cpu,
            ops: cu.events as f64,
        });
        let cpu0 = bare.cpu_secs();
        let cu = client::catch_up(bch.clone(), &auth, Some(expect), |_, _| {}).await?;
        let cpu = bare.cpu_secs() - cpu0;
        b.push(Round {
            rate: cu.events as f64 / cu.secs,
            p50: cu.first_event_s * 1e6,
            p99: f64::NAN,
            p999: f64::NAN,
            cpu_s: cpu,
            ops: cu.events as f64,
        });
    }
    let peak = srv.peak_rss_mib();
    srv.stop().await;
    bare.stop().await;
    ctx.check(
        bad.is_empty(),
        format!(
            "W4 every catch-up returned exactly 1..{expect} in order then complete({expect}){}",
            bad.first().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    );
    let mut text = format!(
        "\n### W4 catch-up: CatchUpEvents(after=0) over a log of {expect} events, one stream; baseline = bare tonic stream of as many synthetic events of the same shape\n\n| system | events/s median (min–max) | time to first event | server CPU s/round | CPU µs/event | ratio events/s (min–max) |\n|---|---|---|---|---|---|\n"
    );
    let ratio = spread(a.iter().zip(&b).map(|(x, y)| x.rate / y.rate));
    for (name, r, ratio) in [
        ("imgroups", &a, show(ratio, |x| format!("{x:.2}"))),
        ("bare stream", &b, "1".into()),
    ] {
        text.push_str(&format!(
            "| {name} | {} | {} | {:.2} | {:.2} | {ratio} |\n",
            show(spread(r.iter().map(|x| x.rate)), num),
            show(spread(r.iter().map(|x| x.p50)), dur_us),
            spread(r.iter().map(|x| x.cpu_s)).med,
            spread(r.iter().map(|x| x.cpu_s * 1e6 / x.ops.max(1.0))).med,
        ));
    }
    text.push_str(&format!("\nServer peak RSS during W4 {peak:.1} MiB.\n"));
    ctx.emit(&text);
    let rate = spread(a.iter().map(|x| x.rate)).med;
    ctx.target(
        "W4 catch-up ≥ 1M events/s",
        format!("{}/s", num(rate)),
        Some(rate >= 1e6),
    );
    ctx.target(
        "W4 catch-up ≥ 40% of bare single-stream rate",
        format!("{:.0}%", ratio.med * 100.0),
        Some(ratio.med >= 0.4),
    );
    Ok(())
}

pub(crate) async fn run_w5(ctx: &mut Ctx) -> Result<()> {
    ensure_big(ctx).await?;
    let big = ctx.big.as_ref().ok_or("no dataset")?;
    let dir = big.dir.clone();
    let auth = bearer(&big.token)?;
    let guids: Vec<String> = big.guids.iter().take(1000).cloned().collect();
    let (groups, me_events, total, seed_secs, seed_rate) = (
        big.guids.len(),
        big.me_events,
        big.total_events,
        big.seed_secs,
        big.seed_rate,
    );
    progress(format!(
        "W5: footprint with {groups} groups, {total} events"
    ));

    // Cold start: spawn to `ready`, and to the first answered RPC.
    let mut ready = Vec::new();
    let mut first_rpc = Vec::new();
    let mut start_rss = Vec::new();
    let mut srv = None;
    for r in 0..ctx.rounds {
        let t0 = Instant::now();
        let s = ctx.imgroups(&dir, "full").await?;
        ready.push(s.ready_after.as_secs_f64());
        let ch = connect(&s.url, 1).await?.remove(0);
        let mut chats = ChatServiceClient::new(ch);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = req(
                pb::GetChatRequest {
                    chat_guid: guids[0].clone(),
                },
                &auth,
            );
            if chats.get_chat(r).await.is_ok() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        first_rpc.push(t0.elapsed().as_secs_f64());
        start_rss.push(s.rss_kib() as f64 / 1024.0);
        if r + 1 < ctx.rounds {
            s.stop().await;
        } else {
            srv = Some(s);
        }
    }
    let srv = srv.ok_or("no server")?;

    // Load on the full dataset: a full catch-up, then writes against the long history.
    let ch = connect(&srv.url, 1).await?.remove(0);
    let cu = client::catch_up(ch.clone(), &auth, None, |_, _| {}).await?;
    let chans = connect(&srv.url, CHANNELS).await?;
    let mut long = Vec::new();
    for r in 0..ctx.rounds {
        let cpu0 = srv.cpu_secs();
        let run = rename_run(
            &chans,
            &auth,
            &guids,
            false,
            64,
            ctx.secs(),
            &format!("long{r}"),
        )
        .await;
        let cpu = srv.cpu_secs() - cpu0;
        if let Some(e) = &run.first_error {
            ctx.check(false, format!("W5 long-history writes failed: {e}"));
        }
        long.push(Round::from_samples(run.ops(), run.secs, run.lat_us, cpu));
    }
    let peak_loaded = srv.peak_rss_mib();

    // Idle subscribers: resident memory before and after opening them.
    let n = ctx.scale.idle_subscribers;
    let rss0 = srv.rss_kib();
    let counters: Arc<Vec<AtomicU64>> = Arc::new(vec![AtomicU64::new(0)]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let t = Instant::now();
    let subs = open_subscribers(
        &srv.url,
        &auth,
        None,
        n,
        1,
        counters.clone(),
        stop_rx,
        false,
    )
    .await?;
    let open_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(if ctx.smoke { 100 } else { 1000 })).await;
    let rss1 = srv.rss_kib();
    let per_sub = (rss1 as f64 - rss0 as f64) * 1024.0 / n.max(1) as f64;
    // One change must reach every idle subscriber.
    let mut g = GroupServiceClient::new(ch);
    g.set_display_name(req(
        pb::SetDisplayNameRequest {
            chat_guid: guids[0].clone(),
            display_name: "k0.0".into(),
            client_message_id: None,
        },
        &auth,
    ))
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while counters[0].load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = counters[0].load(Ordering::Relaxed);
    let peak_subs = srv.peak_rss_mib();
    let _ = stop_tx.send(true);
    for h in subs {
        let _ = h.await;
    }
    let db = file_len(&dir.join("imgroups.db")) + file_len(&dir.join("imgroups.db-wal"));
    srv.stop().await;
    ctx.check(
        got == n as u64,
        format!("W5 one change reached {got} of {n} idle subscribers"),
    );
    ctx.check(
        cu.events == cu.head && cu.gaps == 0 && cu.head >= me_events,
        format!(
            "W5 catch-up on the dataset: {} events, head {}",
            cu.events, cu.head
        ),
    );

    let ready_s = spread(ready.iter().copied());
    let first_s = spread(first_rpc.iter().copied());
    let secs = |x: f64| format!("{:.0} ms", x * 1000.0);
    let mib = |x: f64| format!("{x:.1} MiB");
    let mut text = format!(
        "\n### W5 footprint: {groups} groups, {total} events ({me_events} in the default account's log)\n\nSeeded through the real write path (`--durability normal`, c=64) in {seed_secs:.1} s ({} renames/s). Measured with `--durability full`.\n\n| measure | median (min–max) |\n|---|---|\n",
        num(seed_rate)
    );
    text.push_str(&format!(
        "| cold start: spawn → `ready` | {} |\n",
        show(ready_s, secs)
    ));
    text.push_str(&format!(
        "| cold start: spawn → first answered GetChat | {} |\n",
        show(first_s, secs)
    ));
    text.push_str(&format!(
        "| RSS right after start | {} |\n",
        show(spread(start_rss.iter().copied()), mib)
    ));
    text.push_str(&format!("| peak RSS (VmHWM) after a full catch-up and {} s of c=64 writes | {peak_loaded:.1} MiB |\n", ctx.scale.secs * ctx.rounds as f64));
    text.push_str(&format!("| RSS growth for {n} idle subscribers (opened in {open_secs:.2} s) | {:.1} MiB = {:.1} KiB per subscriber |\n", (rss1 as f64 - rss0 as f64) / 1024.0, per_sub / 1024.0));
    text.push_str(&format!(
        "| peak RSS with the idle subscribers | {peak_subs:.1} MiB |\n"
    ));
    text.push_str(&format!(
        "| disk (db + wal) per event | {:.0} bytes |\n",
        db as f64 / total.max(1) as f64
    ));
    let mut t = Table::new(
        "W5 long-history writes: the W1 c=64 distinct-groups workload on this dataset (synchronous=FULL)",
        "ops/s",
    );
    t.single("1000 groups c=64, 1M-event log", "imgroups", &long);
    text.push_str(&t.finish());
    let long_rate = spread(long.iter().map(|x| x.rate)).med;
    if let Some(w1) = ctx.w1_c64 {
        text.push_str(&format!(
            "\nLong-history ratio (this / W1 on an empty log, same invocation): {:.2} (should stay ≥ 0.9; Synapse falls to ~0.5).\n",
            long_rate / w1
        ));
    }
    ctx.emit(&text);
    ctx.target(
        "W5 peak RSS ≤ 150 MiB (dataset loaded, catch-up + writes, no subscribers)",
        mib(peak_loaded),
        Some(peak_loaded <= 150.0),
    );
    ctx.target(
        "W5 ≤ 64 KiB per idle subscriber",
        format!("{:.1} KiB", per_sub / 1024.0),
        Some(per_sub <= 64.0 * 1024.0),
    );
    ctx.target(
        "W5 cold start ≤ 1 s (spawn → first answered RPC)",
        secs(first_s.med),
        Some(first_s.med <= 1.0),
    );
    if let Some(w1) = ctx.w1_c64 {
        let r = long_rate / w1;
        ctx.target(
            "long-history writes ≥ 0.9× empty-log W1 c=64",
            format!("{r:.2}"),
            Some(r >= 0.9),
        );
    }
    Ok(())
}
