//! chatdb: `serve --backend chatdb` on a large fixture Messages database (the real macOS 26
//! schema, written by `imgroups_chatdb::testing`).
//!
//! - **Import**: spawn → `ready` on a fresh data directory (the whole history is recorded
//!   before `ready`), peak RSS of the server, and the account's log checked against the
//!   history (head = the group changes that are events, in date order, no gaps). Baseline:
//!   the same chat.db read by `ChatDb::scan` alone, in this process (what reading costs,
//!   without recording), rounds alternating.
//! - **Ingest latency**: a separate writer process (this binary, `chatdb-writer`) commits one
//!   rename at a time as Messages does (message row + chat join in one transaction, WAL,
//!   `synchronous=FULL`) with random gaps; a live `SubscribeGroupEvents` stream receives the
//!   events; latency = receive time − the writer's time right after its commit (wall clock,
//!   same machine). No baseline: the target (p99 ≤ 100 ms) is absolute.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use imgroups_chatdb::testing::{BulkHistory, BulkSpec, Fixture, LiveWriter, Version};
use imgroups_proto::pb;
use imgroups_proto::pb::group_service_client::GroupServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::{bearer, catch_up_any, connect, display_name, req};
use crate::proc::{self, Proc, Result};
use crate::stats::{dur_us, num, percentile, show, spread};
use crate::{progress, Ctx};

/// The account: "me" on the Mac.
const ME: &str = "me@icloud.com";

fn now_unix_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The `chatdb-writer` subcommand: `n` renames of `chat` (by handle `handle`), one per
/// transaction, `min_gap_ms`–`max_gap_ms` apart (uniformly random), printing
/// `committed <i> <unix ns>` right after each commit.
pub(crate) fn run_writer(
    db: &Path,
    chat: i64,
    handle: i64,
    n: usize,
    gaps_ms: (u64, u64),
    seed: u64,
) -> Result<()> {
    use std::io::Write;
    let writer = LiveWriter::open(db, Version::Tahoe, ME);
    let mut state = seed | 1;
    let mut out = std::io::stdout().lock();
    for i in 0..n {
        // xorshift: a gap in [min, max].
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let span = gaps_ms.1.saturating_sub(gaps_ms.0) + 1;
        std::thread::sleep(Duration::from_millis(gaps_ms.0 + state % span));
        let name = format!("live {i}");
        writer.rename(chat, handle, &format!("LIVE-{seed}-{i}"), &name);
        writeln!(out, "committed {i} {}", now_unix_ns())?;
        out.flush()?;
    }
    Ok(())
}

/// The fixture, built once per invocation.
struct Data {
    fixture: Fixture,
    history: BulkHistory,
    built_s: f64,
}

fn build(messages: u64, changes: u64, groups: u64) -> Data {
    let started = Instant::now();
    let fixture = Fixture::new(Version::Tahoe);
    let history = fixture.bulk(&BulkSpec::new(messages, changes, groups), ME);
    Data {
        fixture,
        history,
        built_s: started.elapsed().as_secs_f64(),
    }
}

fn serve_args(data: &Path, home: &Path) -> Vec<String> {
    let mut args = proc::serve_args(data, "full");
    args.extend([
        "--backend".into(),
        "chatdb".into(),
        "--home".into(),
        home.display().to_string(),
        "--account".into(),
        ME.into(),
    ]);
    args
}

async fn start(ctx: &Ctx, data: &Path, home: &Path) -> Result<Proc> {
    let log = ctx.work.path().join("imgroups-chatdb.log");
    proc::spawn(
        &ctx.server_bin,
        &serve_args(data, home),
        ctx.placement.server_cpu,
        &log,
    )
    .await
}

/// One import round's figures.
struct Import {
    ready_s: f64,
    peak_mib: f64,
    cpu_s: f64,
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<()> {
    let (messages, changes, groups) = (
        ctx.scale.chatdb_messages,
        ctx.scale.chatdb_changes,
        ctx.scale.chatdb_groups,
    );
    progress(format!(
        "chatdb: building a chat.db with {messages} messages, {changes} group changes over {groups} groups"
    ));
    let data = tokio::task::spawn_blocking(move || build(messages, changes, groups)).await?;
    let home = data.fixture.home().to_owned();
    let db_path: PathBuf = data.fixture.path();
    let db_bytes = proc::file_len(&db_path) + proc::file_len(&db_path.with_extension("db-wal"));
    let expect = data.history.events;
    progress(format!(
        "chatdb: built in {:.1} s ({} MiB); {} change rows, {expect} of them events",
        data.built_s,
        db_bytes >> 20,
        data.history.change_rows
    ));

    // Import rounds, alternating with the read-only baseline; the last server stays up for
    // the latency part.
    let mut imports = Vec::new();
    let mut scans = Vec::new();
    let mut bad = Vec::new();
    let mut kept: Option<(Proc, String)> = None;
    for round in 0..ctx.rounds {
        let dir = ctx.fresh_dir("chatdb")?;
        let srv = start(ctx, &dir, &home).await?;
        let import = Import {
            ready_s: srv.ready_after.as_secs_f64(),
            peak_mib: srv.peak_rss_mib(),
            cpu_s: srv.cpu_secs(),
        };
        let token = srv.token.clone().ok_or("no token printed")?;
        let auth = bearer(&token)?;
        let ch = connect(&srv.url, 1).await?.remove(0);
        let mut last = (0i64, 0i32);
        let mut out_of_order = 0u64;
        // The history's messages enter the log too, between the group changes, by date.
        let (cu, kinds) = catch_up_any(ch, &auth, None, false, |_, p| {
            use pb::catch_up_events_response::Payload;
            let occurred_at = match p {
                Payload::GroupChanged(e) => e.occurred_at.as_ref(),
                Payload::MessageChanged(e) => e.occurred_at.as_ref(),
                Payload::ChatChanged(e) => e.occurred_at.as_ref(),
                _ => None,
            };
            let at = occurred_at
                .map(|t| (t.seconds, t.nanos))
                .unwrap_or_default();
            if at < last {
                out_of_order += 1;
            }
            last = at;
        })
        .await?;
        if kinds.group != expect || cu.head != cu.events || cu.gaps != 0 || out_of_order != 0 {
            bad.push(format!(
                "round {round}: head {}, {} events ({} group changes, {} message events), {} gaps, {out_of_order} out of date order (want {expect} group changes)",
                cu.head, cu.events, kinds.group, kinds.message, cu.gaps
            ));
        }
        progress(format!(
            "chatdb: import round {round}: ready after {:.2} s, peak RSS {:.0} MiB",
            import.ready_s, import.peak_mib
        ));
        imports.push(import);
        if round + 1 == ctx.rounds {
            kept = Some((srv, token));
        } else {
            srv.stop().await;
        }
        let home2 = home.clone();
        let scan = tokio::task::spawn_blocking(move || -> Result<(f64, usize)> {
            let started = Instant::now();
            let db = imgroups_chatdb::ChatDb::open(&home2)?;
            let n = db.scan(&imgroups_chatdb::Cursor::start())?.changes.len();
            Ok((started.elapsed().as_secs_f64(), n))
        })
        .await??;
        if scan.1 as u64 != data.history.change_rows {
            bad.push(format!(
                "round {round}: the scan found {} change rows, want {}",
                scan.1, data.history.change_rows
            ));
        }
        scans.push(scan.0);
    }
    let (srv, token) = kept.ok_or("no rounds")?;

    let ready = spread(imports.iter().map(|i| i.ready_s));
    let peak = spread(imports.iter().map(|i| i.peak_mib));
    let cpu = spread(imports.iter().map(|i| i.cpu_s));
    let scan = spread(scans.iter().copied());
    let ratio = spread(imports.iter().zip(&scans).map(|(a, b)| a.ready_s / b));
    let secs = |s: f64| format!("{s:.2} s");
    let mib = |m: f64| format!("{m:.0} MiB");
    let text = format!(
        "\n### chatdb import: `serve --backend chatdb`, first start on a chat.db with {} messages, {} group changes ({expect} events) over {groups} groups\n\n\
         - fixture: macOS 26 schema, {} MiB, built in {:.1} s (one transaction)\n\n\
         | what | median (min–max) |\n|---|---|\n\
         | spawn → `ready` (import included) | {} |\n\
         | server peak RSS (VmHWM) | {} |\n\
         | server CPU to `ready` | {} |\n\
         | import rate | {} events/s |\n\
         | baseline: `ChatDb::scan` of the same file alone (bench process) | {} |\n\
         | ratio import / scan, pair by pair | {} |\n",
        num(messages as f64),
        num(data.history.change_rows as f64),
        db_bytes >> 20,
        data.built_s,
        show(ready, secs),
        show(peak, mib),
        show(cpu, secs),
        num(expect as f64 / ready.med),
        show(scan, secs),
        show(ratio, |x| format!("{x:.1}×")),
    );
    ctx.emit(&text);
    ctx.check(
        bad.is_empty(),
        format!(
            "chatdb import: the account's log holds exactly the {expect} group-change events of the history, with the history's messages, in date order, without gaps, every round{}",
            if bad.is_empty() { String::new() } else { format!(" ({})", bad.join("; ")) }
        ),
    );
    ctx.target(
        format!(
            "chatdb first-start import, {} messages / {} changes: ≤ 10 s, bounded memory",
            num(messages as f64),
            num(data.history.change_rows as f64)
        ),
        format!("{}, peak RSS {}", show(ready, secs), show(peak, mib)),
        Some(ready.med <= 10.0),
    );

    let result = latency(ctx, &srv, &token, &data, &db_path).await;
    srv.stop().await;
    result
}

async fn latency(
    ctx: &mut Ctx,
    srv: &Proc,
    token: &str,
    data: &Data,
    db_path: &Path,
) -> Result<()> {
    let n = ctx.scale.chatdb_samples;
    let expect = data.history.events;
    progress(format!(
        "chatdb: ingest latency, {n} rows committed by another process"
    ));
    let auth = bearer(token)?;
    let ch = connect(&srv.url, 1).await?.remove(0);
    let mut client = GroupServiceClient::new(ch.clone());
    let mut stream = client
        .subscribe_group_events(req(
            pb::SubscribeGroupEventsRequest { chat_guid: None },
            &auth,
        ))
        .await?
        .into_inner();
    // Received: name index → receive time; and how many events in all.
    let receiver = tokio::spawn(async move {
        let mut got: HashMap<usize, Vec<i128>> = HashMap::new();
        let mut events = 0u64;
        let mut error = None;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
                Err(_) => break,
                Ok(Ok(Some(msg))) => {
                    let Some(pb::subscribe_group_events_response::Payload::GroupChanged(e)) =
                        msg.payload
                    else {
                        continue;
                    };
                    let at = now_unix_ns();
                    events += 1;
                    if let Some(i) = display_name(&e)
                        .and_then(|n| n.strip_prefix("live "))
                        .and_then(|i| i.parse().ok())
                    {
                        got.entry(i).or_default().push(at);
                        if got.len() == n && got.values().all(|v| !v.is_empty()) {
                            // Everything arrived; a little longer to catch duplicates.
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            break;
                        }
                    }
                }
                Ok(Ok(None)) => {
                    error = Some("stream ended".to_owned());
                    break;
                }
                Ok(Err(s)) => {
                    error = Some(format!("{}: {}", s.code(), s.message()));
                    break;
                }
            }
        }
        (got, events, error)
    });

    // The writer renames the first group, as one of its members.
    let (chat, members) = data.history.groups.first().ok_or("no groups")?;
    let handle = *members.first().ok_or("no members")?;
    let cpu0 = srv.cpu_secs();
    let mut cmd = tokio::process::Command::new(proc::self_exe()?);
    cmd.arg("chatdb-writer")
        .arg("--db")
        .arg(db_path)
        .arg("--chat")
        .arg(chat.to_string())
        .arg("--handle")
        .arg(handle.to_string())
        .arg("--n")
        .arg(n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let mut committed: HashMap<usize, i128> = HashMap::new();
    while let Some(line) = lines.next_line().await? {
        let mut parts = line.split_whitespace();
        if parts.next() == Some("committed") {
            let i = parts.next().and_then(|x| x.parse().ok());
            let at = parts.next().and_then(|x| x.parse().ok());
            if let (Some(i), Some(at)) = (i, at) {
                committed.insert(i, at);
            }
        }
    }
    let status = child.wait().await?;
    if !status.success() {
        return Err(format!("chatdb writer failed: {status}").into());
    }
    let (got, events, error) = receiver.await?;
    let cpu = srv.cpu_secs() - cpu0;

    let mut lat_us: Vec<u32> = Vec::new();
    let (mut missing, mut dupes) = (0usize, 0usize);
    for i in 0..n {
        match (committed.get(&i), got.get(&i).map(Vec::as_slice)) {
            (Some(c), Some([r])) => lat_us.push(((r - c) / 1000).clamp(0, u32::MAX as i128) as u32),
            (_, Some([r, ..])) => {
                dupes += 1;
                if let Some(c) = committed.get(&i) {
                    lat_us.push(((r - c) / 1000).clamp(0, u32::MAX as i128) as u32);
                }
            }
            _ => missing += 1,
        }
    }
    lat_us.sort_unstable();
    let p = |q: f64| percentile(&lat_us, q);
    let max = lat_us.last().copied().map(f64::from).unwrap_or(f64::NAN);

    // The log now holds the history and the live rows, once each.
    let (cu, kinds) = catch_up_any(ch, &auth, None, false, |_, _| {}).await?;
    let want = expect + n as u64;
    ctx.emit(&format!(
        "\n### chatdb ingest latency: a row committed by another process → the event on a live subscriber\n\n\
         - {n} renames, one per transaction (message + chat_message_join, WAL, synchronous=FULL), 20–80 ms apart, by a separate writer process; `--chatdb-rescan-ms` at its default (2,000)\n\n\
         | p50 | p90 | p99 | max | server CPU over the run |\n|---|---|---|---|---|\n\
         | {} | {} | {} | {} | {cpu:.2} s |\n",
        dur_us(p(50.0)),
        dur_us(p(90.0)),
        dur_us(p(99.0)),
        dur_us(max),
    ));
    ctx.check(
        missing == 0
            && dupes == 0
            && error.is_none()
            && events == n as u64
            && kinds.group == want
            && cu.head == cu.events
            && cu.gaps == 0,
        format!(
            "chatdb ingest: every one of {n} rows arrived exactly once on the live stream and the log holds {want} group changes ({missing} missing, {dupes} duplicated, {events} live events, {} group changes, head {}, {} gaps{})",
            kinds.group,
            cu.head,
            cu.gaps,
            error.map(|e| format!(", stream error {e}")).unwrap_or_default()
        ),
    );
    ctx.target(
        "chatdb ingest latency (commit by another process → live subscriber), p99 ≤ 100 ms",
        format!(
            "p99 {} (p50 {}, max {})",
            dur_us(p(99.0)),
            dur_us(p(50.0)),
            dur_us(max)
        ),
        Some(p(99.0) <= 100_000.0),
    );
    Ok(())
}
