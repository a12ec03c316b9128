//! Cross-node delivery (the `xnode` workload). Several `imgroups serve` processes on one
//! PostgreSQL database, live SubscribeGroupEvents streams on every node, and one paced writer
//! renaming through node A only, spread over a few accounts (one group each), so every node
//! has subscribers of every account. A write reaches the other nodes' streams through a
//! LISTEN/NOTIFY hint and a read of the log there. Per event and subscriber: the delay from
//! the write's acknowledgement (and from its send) to its arrival. Node A's own subscribers
//! are the in-run baseline (local delivery, no hint). Every subscriber must get every
//! acknowledged write of its account exactly once, in sequence order.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use imgroups_core::{admin, Address};
use imgroups_proto::pb;
use imgroups_proto::pb::group_service_client::GroupServiceClient;
use imgroups_store_postgres::{Config, PgStore, Role};
use tokio::sync::watch;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::client::{age_us, bearer, connect, create_groups, display_name, req};
use crate::proc::{Meter, Proc, Result};
use crate::stats::{dur_us, percentile, show, spread};
use crate::w3::STREAMS_PER_CONN;
use crate::{progress, Ctx};

/// Accounts written to, round-robin; subscriber j of a node follows account j % ACCOUNTS.
const ACCOUNTS: usize = 4;
/// Writes in flight at most while pacing.
const MAX_IN_FLIGHT: usize = 256;

fn node_name(n: usize) -> char {
    (b'A' + n as u8) as char
}

/// What one subscriber saw: (round key, write index, arrival, arrival − `occurred_at` in µs)
/// per event.
struct Seen {
    node: usize,
    account: usize,
    arrivals: Vec<(usize, u64, Instant, u32)>,
    /// Sequences that did not follow their predecessor by exactly one.
    gaps: u64,
    /// Events whose name is not one of ours.
    foreign: u64,
    error: Option<String>,
}

/// `x{key}.{i}` → (key, i).
fn parse_name(name: &str) -> Option<(usize, u64)> {
    let (key, i) = name.strip_prefix('x')?.split_once('.')?;
    Some((key.parse().ok()?, i.parse().ok()?))
}

/// Opens `n` account-wide subscriptions on node `node` (subscriber j follows account
/// j % ACCOUNTS), each in its own task until `stop`; counts arrivals per round key.
async fn open_subscribers(
    url: &str,
    node: usize,
    auths: &[AsciiMetadataValue],
    n: usize,
    counters: Arc<Vec<AtomicU64>>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<Seen>>> {
    let chans = connect(url, n.div_ceil(STREAMS_PER_CONN).max(1)).await?;
    let mut handles = Vec::with_capacity(n);
    for j in 0..n {
        let account = j % ACCOUNTS;
        let mut client = GroupServiceClient::new(chans[j / STREAMS_PER_CONN].clone());
        let r = req(
            pb::SubscribeGroupEventsRequest { chat_guid: None },
            &auths[account],
        );
        let mut stream = client.subscribe_group_events(r).await?.into_inner();
        let counters = counters.clone();
        let mut stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut seen = Seen {
                node,
                account,
                arrivals: Vec::new(),
                gaps: 0,
                foreign: 0,
                error: None,
            };
            let mut prev: Option<u64> = None;
            loop {
                tokio::select! {
                    biased;
                    msg = stream.message() => match msg {
                        Ok(Some(msg)) => {
                            let Some(pb::subscribe_group_events_response::Payload::GroupChanged(e)) = msg.payload else { continue };
                            let at = Instant::now();
                            let seq = msg.sequence.unwrap_or(0);
                            if prev.is_some_and(|p| seq != p + 1) {
                                seen.gaps += 1;
                            }
                            prev = Some(seq);
                            match display_name(&e).and_then(parse_name) {
                                Some((key, i)) if key < counters.len() => {
                                    seen.arrivals.push((key, i, at, age_us(&e)));
                                    counters[key].fetch_add(1, Ordering::Relaxed);
                                }
                                _ => seen.foreign += 1,
                            }
                        }
                        Ok(None) => { seen.error = Some("stream ended".into()); break; }
                        Err(s) => { seen.error = Some(format!("{}: {}", s.code(), s.message())); break; }
                    },
                    _ = stop.changed() => break,
                }
            }
            seen
        }));
    }
    Ok(handles)
}

/// One round's writes: when each was sent and acknowledged.
struct Written {
    send: Vec<Instant>,
    ack: Vec<Option<Instant>>,
    failed: u64,
    first_error: Option<String>,
}

/// Renames `n` times at `rate` per second through `ch`: write i renames account
/// i % ACCOUNTS's group to `x{key}.{i}`, with that account's token.
async fn paced_writer(
    ch: Channel,
    auths: &[AsciiMetadataValue],
    guids: &[String],
    key: usize,
    n: u64,
    rate: u64,
) -> Written {
    let client = GroupServiceClient::new(ch);
    let start = Instant::now();
    let mut out = Written {
        send: Vec::with_capacity(n as usize),
        ack: vec![None; n as usize],
        failed: 0,
        first_error: None,
    };
    let mut inflight = FuturesUnordered::new();
    let tally = |out: &mut Written, (i, r): (u64, std::result::Result<(), tonic::Status>)| match r {
        Ok(()) => out.ack[i as usize] = Some(Instant::now()),
        Err(s) => {
            out.failed += 1;
            out.first_error
                .get_or_insert_with(|| format!("{}: {}", s.code(), s.message()));
        }
    };
    for i in 0..n {
        let due =
            tokio::time::Instant::from_std(start + Duration::from_nanos(i * 1_000_000_000 / rate));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => break,
                Some(r) = inflight.next(), if !inflight.is_empty() => tally(&mut out, r),
            }
        }
        while inflight.len() >= MAX_IN_FLIGHT {
            if let Some(r) = inflight.next().await {
                tally(&mut out, r);
            }
        }
        let account = i as usize % ACCOUNTS;
        let mut c = client.clone();
        let r = req(
            pb::SetDisplayNameRequest {
                chat_guid: guids[account].clone(),
                display_name: format!("x{key}.{i}"),
                client_message_id: None,
            },
            &auths[account],
        );
        out.send.push(Instant::now());
        inflight.push(async move { (i, c.set_display_name(r).await.map(drop)) });
    }
    while let Some(r) = inflight.next().await {
        tally(&mut out, r);
    }
    out
}

/// Latencies of one node in one round, in µs.
#[derive(Default)]
struct NodeRound {
    ack_us: Vec<u32>,
    send_us: Vec<u32>,
    /// Arrival − the event's `occurred_at` (stamped by node A when its batch starts).
    commit_us: Vec<u32>,
    /// Arrivals before the client saw the acknowledgement.
    before_ack: u64,
}

/// Per-round percentiles of one latency, and the largest sample of all rounds (µs).
#[derive(Default)]
struct Pct {
    p50: Vec<f64>,
    p99: Vec<f64>,
    max: f64,
}

impl Pct {
    fn push(&mut self, mut samples: Vec<u32>) {
        samples.sort_unstable();
        self.p50.push(percentile(&samples, 50.0));
        self.p99.push(percentile(&samples, 99.0));
        self.max = self.max.max(samples.last().copied().unwrap_or(0) as f64);
    }

    fn p50(&self) -> String {
        show(spread(self.p50.iter().copied()), dur_us)
    }

    fn p99(&self) -> String {
        show(spread(self.p99.iter().copied()), dur_us)
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<()> {
    let per_node = ctx.scale.xnode_subscribers;
    let rate = ctx.scale.xnode_rate;
    // Server processes on the database; node 0 (A) takes every write.
    let nodes_n = ctx.scale.xnode_nodes.max(2);
    progress(format!(
        "xnode: {nodes_n} nodes on one PostgreSQL database, {per_node} subscribers each, {rate} writes/s through node A"
    ));
    let db = ctx.fresh_db("xnode").await?;

    // The accounts, made as `imgroups account add` makes them (a tool beside the servers).
    let mut auths = Vec::with_capacity(ACCOUNTS);
    {
        let mut config = Config::new(&db.url);
        config.role = Role::Tool;
        config.pool_size = 2;
        let store = PgStore::open(config)?;
        for k in 0..ACCOUNTS {
            let address = Address::parse(&format!("x{k}@bench.test"))?;
            auths.push(bearer(&admin::add_account(&store, &address).await?)?);
        }
        imgroups_core::port::Store::close(&store).await;
    }
    let mut nodes: Vec<Proc> = Vec::with_capacity(nodes_n);
    for n in 0..nodes_n {
        let dir = ctx.fresh_dir(&format!("xnode{n}"))?;
        nodes.push(ctx.imgroups_pg(&dir, &db.url).await?);
    }
    let writer = connect(&nodes[0].url, 1).await?;
    let guids = create_groups(
        &writer,
        ACCOUNTS,
        ACCOUNTS,
        |k| vec![format!("xg{k}a@bench.test"), format!("xg{k}b@bench.test")],
        |k| auths[k].clone(),
        false,
    )
    .await?;

    // Keys: 0..rounds are measured rounds; the last is the warm-up.
    let keys = ctx.rounds + 1;
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..keys).map(|_| AtomicU64::new(0)).collect());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut subs = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        subs.extend(
            open_subscribers(
                &node.url,
                n,
                &auths,
                per_node,
                counters.clone(),
                stop_rx.clone(),
            )
            .await?,
        );
    }
    // Subscribers per account on one node.
    let per_account: Vec<u64> = (0..ACCOUNTS)
        .map(|a| (0..per_node).filter(|j| j % ACCOUNTS == a).count() as u64)
        .collect();
    progress(format!(
        "xnode: {} subscribers open on {nodes_n} nodes",
        per_node * nodes_n
    ));

    let n = ((rate as f64 * ctx.scale.secs) as u64).max(10);
    let mut written: Vec<Option<Written>> = (0..keys).map(|_| None).collect();
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); nodes_n];
    let mut client_cpu = Vec::new();
    let mut failed = 0u64;
    let mut first_error = None;
    let mut timeouts = 0;
    let plan: Vec<usize> = std::iter::once(keys - 1).chain(0..ctx.rounds).collect();
    for key in plan {
        let meters: Vec<Meter> = nodes.iter().map(|p| Meter::start(p.pid)).collect();
        let me = Meter::start(std::process::id());
        let count = if key == keys - 1 { n / 4 + 1 } else { n };
        let w = paced_writer(writer[0].clone(), &auths, &guids, key, count, rate).await;
        failed += w.failed;
        if first_error.is_none() {
            first_error = w.first_error.clone();
        }
        // Wait (bounded) until every subscriber has every acknowledged write of its account.
        let want: u64 = (0..ACCOUNTS)
            .map(|a| {
                let acked = w
                    .ack
                    .iter()
                    .enumerate()
                    .filter(|(i, t)| i % ACCOUNTS == a && t.is_some())
                    .count() as u64;
                acked * per_account[a] * nodes_n as u64
            })
            .sum();
        let deadline = Instant::now() + Duration::from_secs(20);
        while counters[key].load(Ordering::Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if counters[key].load(Ordering::Relaxed) < want {
            timeouts += 1;
        }
        // Let anything extra (a duplicate) arrive before the next round.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if key < ctx.rounds {
            for (k, m) in meters.iter().enumerate() {
                cpu[k].push(m.stop().own);
            }
            client_cpu.push(me.stop().own);
        }
        written[key] = Some(w);
    }
    let _ = stop_tx.send(true);
    let mut seen = Vec::with_capacity(subs.len());
    for h in subs {
        seen.push(h.await?);
    }
    let peak: Vec<f64> = nodes.iter().map(|p| p.peak_rss_mib()).collect();
    for node in nodes {
        node.stop().await;
    }
    ctx.drop_db(db).await?;

    // Exactly once, in sequence: per subscriber and round, every acknowledged write of its
    // account arrived once and nothing else did.
    let (mut missing, mut duplicates, mut extra) = (0u64, 0u64, 0u64);
    let mut expected_total = 0u64;
    let mut received_total = 0u64;
    let mut per_node_expected = vec![0u64; nodes_n];
    let mut per_node_received = vec![0u64; nodes_n];
    // lat[round][node]
    let mut lat: Vec<Vec<NodeRound>> = (0..ctx.rounds)
        .map(|_| (0..nodes_n).map(|_| NodeRound::default()).collect())
        .collect();
    for s in &seen {
        let mut got: HashMap<(usize, u64), u32> = HashMap::new();
        for &(key, i, at, age) in &s.arrivals {
            *got.entry((key, i)).or_default() += 1;
            let Some(w) = written.get(key).and_then(Option::as_ref) else {
                extra += 1;
                continue;
            };
            let acked = w.ack.get(i as usize).copied().flatten();
            if i as usize % ACCOUNTS != s.account || acked.is_none() {
                extra += 1;
                continue;
            }
            if let (Some(ack), Some(round)) = (acked, lat.get_mut(key)) {
                let r = &mut round[s.node];
                if at < ack {
                    r.before_ack += 1;
                }
                r.ack_us.push(micros(at.saturating_duration_since(ack)));
                r.send_us
                    .push(micros(at.saturating_duration_since(w.send[i as usize])));
                r.commit_us.push(age);
            }
        }
        for (key, w) in written.iter().enumerate() {
            let Some(w) = w else { continue };
            for (i, ack) in w.ack.iter().enumerate() {
                if i % ACCOUNTS != s.account || ack.is_none() {
                    continue;
                }
                expected_total += 1;
                per_node_expected[s.node] += 1;
                match got.get(&(key, i as u64)).copied().unwrap_or(0) {
                    0 => missing += 1,
                    1 => {}
                    more => duplicates += u64::from(more - 1),
                }
            }
        }
        received_total += s.arrivals.len() as u64;
        per_node_received[s.node] += s.arrivals.len() as u64;
    }
    let gaps: u64 = seen.iter().map(|s| s.gaps).sum();
    let foreign: u64 = seen.iter().map(|s| s.foreign).sum();
    let errors: Vec<&String> = seen.iter().filter_map(|s| s.error.as_ref()).collect();
    ctx.check(
        failed == 0,
        format!(
            "xnode: every write through node A acknowledged ({failed} failed{})",
            first_error.map(|e| format!(": {e}")).unwrap_or_default()
        ),
    );
    ctx.check(
        missing == 0
            && duplicates == 0
            && extra == 0
            && gaps == 0
            && foreign == 0
            && errors.is_empty()
            && expected_total == received_total,
        format!(
            "xnode: every one of {} subscribers on {nodes_n} nodes received every acknowledged write of its account exactly once, in sequence ({expected_total} deliveries expected, {received_total} received; {missing} missing, {duplicates} duplicated, {extra} unexpected, {foreign} foreign, {gaps} sequence gaps, {} stream errors{}, {timeouts} round(s) timed out)",
            seen.len(),
            errors.len(),
            errors.first().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    );

    // Per node: medians over rounds of each round's percentiles; max over every round.
    struct Row {
        name: String,
        ack: Pct,
        send: Pct,
        commit: Pct,
        before_ack: u64,
        deliveries: u64,
    }
    let summarize = |name: String, nodes: &[usize]| {
        let mut row = Row {
            name,
            ack: Pct::default(),
            send: Pct::default(),
            commit: Pct::default(),
            before_ack: 0,
            deliveries: 0,
        };
        for round in &lat {
            let (mut ack, mut send, mut commit) = (Vec::new(), Vec::new(), Vec::new());
            for &n in nodes {
                ack.extend_from_slice(&round[n].ack_us);
                send.extend_from_slice(&round[n].send_us);
                commit.extend_from_slice(&round[n].commit_us);
                row.before_ack += round[n].before_ack;
            }
            row.deliveries += ack.len() as u64;
            row.ack.push(ack);
            row.send.push(send);
            row.commit.push(commit);
        }
        row
    };
    let mut rows: Vec<Row> = (0..nodes_n)
        .map(|n| {
            summarize(
                format!(
                    "node {}{}",
                    node_name(n),
                    if n == 0 {
                        " (writer's node: local)"
                    } else {
                        ""
                    }
                ),
                &[n],
            )
        })
        .collect();
    // The remote figure: node B alone, or every node but A pooled.
    let remote_at = if nodes_n > 2 {
        let remote: Vec<usize> = (1..nodes_n).collect();
        rows.push(summarize(
            format!(
                "nodes {} (remote, pooled)",
                remote.iter().map(|&n| node_name(n)).collect::<String>()
            ),
            &remote,
        ));
        nodes_n
    } else {
        1
    };
    // The writes themselves: send → ack as the load generator saw it.
    let mut write_lat = Pct::default();
    for w in written.iter().take(ctx.rounds).flatten() {
        write_lat.push(
            w.send
                .iter()
                .zip(&w.ack)
                .filter_map(|(s, a)| a.map(|a| micros(a.saturating_duration_since(*s))))
                .collect(),
        );
    }
    let mut text = format!(
        "\n### xnode cross-node delivery: {nodes_n} `imgroups serve` on one PostgreSQL database, {per_node} live subscribers per node (account-wide streams, {ACCOUNTS} accounts), one writer at {rate} renames/s through node A, {n} writes per round spread over the {ACCOUNTS} accounts' groups; latency = arrival at the subscriber − the writer's acknowledgement (also − its send, and − the event's `occurred_at`, which node A stamps when the write's batch starts)\n\n| node | deliveries (all rounds) | ack → arrival p50 | p99 | max | send → arrival p50 | p99 | occurred_at → arrival p50 | p99 | arrivals before the ack | node CPU s/round | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for (k, row) in rows.iter().enumerate() {
        let (cpu_s, rss) = if k < nodes_n {
            (
                format!("{:.2}", spread(cpu[k].iter().copied()).med),
                format!("{:.1} MiB", peak[k]),
            )
        } else {
            (String::new(), String::new())
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {cpu_s} | {rss} |",
            row.name,
            row.deliveries,
            row.ack.p50(),
            row.ack.p99(),
            dur_us(row.ack.max),
            row.send.p50(),
            row.send.p99(),
            row.commit.p50(),
            row.commit.p99(),
            row.before_ack,
        );
    }
    let local_p99 = spread(rows[0].ack.p99.iter().copied()).med;
    let remote_row = &rows[remote_at];
    let remote_p99 = spread(remote_row.ack.p99.iter().copied()).med;
    let _ = writeln!(
        text,
        "\nPer node: medians of the rounds' percentiles (min–max), max over every round. Remote p99 / local p99 (ack → arrival) = {:.2}. Writes, send → ack: p50 {}, p99 {}, max {}. Load generator CPU {:.2} s/round (one thread: near the round's length, it is saturated and every latency here includes its queueing). Deliveries expected per node: {}; received: {}.",
        remote_p99 / local_p99,
        write_lat.p50(),
        write_lat.p99(),
        dur_us(write_lat.max),
        spread(client_cpu.iter().copied()).med,
        per_node_expected
            .iter()
            .enumerate()
            .map(|(n, e)| format!("{} {e}", node_name(n)))
            .collect::<Vec<_>>()
            .join(", "),
        per_node_received
            .iter()
            .enumerate()
            .map(|(n, e)| format!("{} {e}", node_name(n)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    ctx.emit(&text);
    ctx.target(
        "xnode: write ack on node A → arrival on other nodes, p99 ≤ 50 ms",
        format!(
            "{} (max {}; local on node A: p99 {})",
            dur_us(remote_p99),
            dur_us(remote_row.ack.max),
            dur_us(local_p99)
        ),
        Some(remote_p99 <= 50_000.0),
    );
    Ok(())
}
