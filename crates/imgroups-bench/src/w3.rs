//! W3: fan-out. Many live SubscribeGroupEvents streams, one writer renaming at a fixed rate;
//! deliveries/s and commit-to-delivery latency (receive time minus the event's `occurred_at`,
//! which the server stamps when the write's transaction starts), against a bare tonic
//! server-streaming fan-out (tokio broadcast, same messages, stamped at publish).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use imgroups_proto::pb;
use imgroups_proto::pb::group_service_client::GroupServiceClient;
use tokio::sync::watch;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::client::{age_us, bearer, connect, create_groups, display_name, req};
use crate::proc::{Proc, Result};
use crate::stats::{num, spread, Round, Table};
use crate::{progress, Ctx};

/// Streams per HTTP/2 connection (below hyper's default concurrent-stream limit).
pub(crate) const STREAMS_PER_CONN: usize = 100;
/// Writes in flight at most while pacing.
const MAX_IN_FLIGHT: usize = 256;

/// What one subscriber saw, per round key.
#[derive(Default)]
struct Seen {
    count: Vec<u64>,
    lat_us: Vec<Vec<u32>>,
    last: Vec<Option<Instant>>,
    gaps: u64,
    error: Option<String>,
}

/// Opens `n` subscriptions (filtered on `guid`) and runs each in its own task until `stop`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_subscribers(
    url: &str,
    auth: &AsciiMetadataValue,
    guid: Option<&str>,
    n: usize,
    keys: usize,
    counters: Arc<Vec<AtomicU64>>,
    stop: watch::Receiver<bool>,
    record: bool,
) -> Result<Vec<tokio::task::JoinHandle<SeenOut>>> {
    let chans = connect(url, n.div_ceil(STREAMS_PER_CONN).max(1)).await?;
    let mut handles = Vec::with_capacity(n);
    let mut opening = FuturesUnordered::new();
    let mut next = 0;
    loop {
        while next < n && opening.len() < 256 {
            let mut client = GroupServiceClient::new(chans[next / STREAMS_PER_CONN].clone());
            let r = req(
                pb::SubscribeGroupEventsRequest {
                    chat_guid: guid.map(str::to_owned),
                },
                auth,
            );
            opening.push(async move { client.subscribe_group_events(r).await });
            next += 1;
        }
        let Some(opened) = opening.next().await else {
            break;
        };
        let mut stream = opened?.into_inner();
        let counters = counters.clone();
        let mut stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut seen = Seen {
                count: vec![0; keys],
                lat_us: vec![Vec::new(); keys],
                last: vec![None; keys],
                ..Default::default()
            };
            let mut prev: Option<u64> = None;
            loop {
                tokio::select! {
                    biased;
                    msg = stream.message() => match msg {
                        Ok(Some(msg)) => {
                            let Some(pb::subscribe_group_events_response::Payload::GroupChanged(e)) = msg.payload else { continue };
                            let age = age_us(&e);
                            if let Some(seq) = msg.sequence {
                                if prev.is_some_and(|p| seq != p + 1) {
                                    seen.gaps += 1;
                                }
                                prev = Some(seq);
                            }
                            let key = display_name(&e)
                                .and_then(|n| n.strip_prefix('k'))
                                .and_then(|n| n.split('.').next())
                                .and_then(|k| k.parse::<usize>().ok())
                                .filter(|k| *k < keys);
                            if let Some(k) = key {
                                seen.count[k] += 1;
                                if record {
                                    seen.lat_us[k].push(age);
                                }
                                seen.last[k] = Some(Instant::now());
                                counters[k].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(None) => { seen.error = Some("stream ended".into()); break; }
                        Err(s) => { seen.error = Some(format!("{}: {}", s.code(), s.message())); break; }
                    },
                    _ = stop.changed() => break,
                }
            }
            SeenOut(seen)
        }));
    }
    Ok(handles)
}

pub(crate) struct SeenOut(Seen);

/// Renames `guid` `n` times at `rate` per second, names `k{key}.{i}`; returns acks and the start.
async fn paced_writer(
    ch: Channel,
    auth: &AsciiMetadataValue,
    guid: &str,
    key: usize,
    n: u64,
    rate: u64,
) -> (u64, u64, Instant) {
    let client = GroupServiceClient::new(ch);
    let start = Instant::now();
    let mut inflight = FuturesUnordered::new();
    let (mut acked, mut failed) = (0u64, 0u64);
    let mut tally = |r: std::result::Result<(), tonic::Status>| match r {
        Ok(()) => acked += 1,
        Err(_) => failed += 1,
    };
    for i in 0..n {
        let due =
            tokio::time::Instant::from_std(start + Duration::from_nanos(i * 1_000_000_000 / rate));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => break,
                Some(r) = inflight.next(), if !inflight.is_empty() => tally(r),
            }
        }
        while inflight.len() >= MAX_IN_FLIGHT {
            if let Some(r) = inflight.next().await {
                tally(r);
            }
        }
        let mut c = client.clone();
        let r = req(
            pb::SetDisplayNameRequest {
                chat_guid: guid.to_owned(),
                display_name: format!("k{key}.{i}"),
                client_message_id: None,
            },
            auth,
        );
        inflight.push(async move { c.set_display_name(r).await.map(drop) });
    }
    while let Some(r) = inflight.next().await {
        tally(r);
    }
    (acked, failed, start)
}

struct Sys<'a> {
    proc: &'a Proc,
    writer: Channel,
    subs: Vec<tokio::task::JoinHandle<SeenOut>>,
}

pub(crate) async fn run(ctx: &mut Ctx) -> Result<()> {
    let s = ctx.scale.w3_subscribers;
    let rate = ctx.scale.w3_rate;
    progress(format!(
        "W3: fan-out to {s} subscribers at {rate} changes/s"
    ));
    let dir = ctx.fresh_dir("w3")?;
    let srv = ctx.imgroups(&dir, "full").await?;
    let auth = bearer(srv.token.as_deref().ok_or("no token printed")?)?;
    let bare = ctx.bare().await?;
    let chans = connect(&srv.url, 1).await?;
    let guid = create_groups(
        &chans,
        1,
        1,
        |_| vec!["w3a@bench.test".into(), "w3b@bench.test".into()],
        |_| auth.clone(),
        false,
    )
    .await?
    .remove(0);

    // Keys: 2r = imgroups round r, 2r+1 = bare round r; the last two are the warm-up.
    let keys = 2 * ctx.rounds + 2;
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..keys).map(|_| AtomicU64::new(0)).collect());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut systems = Vec::new();
    for proc in [&srv, &bare] {
        let subs = open_subscribers(
            &proc.url,
            &auth,
            Some(&guid),
            s,
            keys,
            counters.clone(),
            stop_rx.clone(),
            true,
        )
        .await?;
        let writer = connect(&proc.url, 1).await?.remove(0);
        systems.push(Sys { proc, writer, subs });
    }
    progress(format!("W3: {s} + {s} subscribers open"));

    let n = ((rate as f64 * ctx.scale.secs) as u64).max(10);
    let mut starts = vec![None; keys];
    let mut acks = vec![0u64; keys];
    let mut cpu = vec![0f64; keys];
    let mut timeouts = 0;
    let mut plan: Vec<(usize, usize)> = vec![(0, keys - 2), (1, keys - 1)];
    for r in 0..ctx.rounds {
        plan.push((0, 2 * r));
        plan.push((1, 2 * r + 1));
    }
    for (sys, key) in plan {
        let system = &systems[sys];
        let cpu0 = system.proc.cpu_secs();
        let count = if key >= keys - 2 { n / 4 + 1 } else { n };
        let (acked, _failed, start) =
            paced_writer(system.writer.clone(), &auth, &guid, key, count, rate).await;
        // Wait for every subscriber to have every acknowledged change (bounded).
        let want = acked * s as u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while counters[key].load(Ordering::Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if counters[key].load(Ordering::Relaxed) < want {
            timeouts += 1;
        }
        // Let stragglers (bare may over-deliver nothing; imgroups must not) settle.
        tokio::time::sleep(Duration::from_millis(20)).await;
        cpu[key] = system.proc.cpu_secs() - cpu0;
        starts[key] = Some(start);
        acks[key] = acked;
    }
    let _ = stop_tx.send(true);

    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut check_bad = 0u64;
    let mut gaps = 0u64;
    let mut errors = Vec::new();
    let mut bare_lost = 0u64;
    for (sys, system) in systems.into_iter().enumerate() {
        let mut seen = Vec::with_capacity(system.subs.len());
        for h in system.subs {
            seen.push(h.await?.0);
        }
        for r in 0..ctx.rounds {
            let key = 2 * r + sys;
            let start = starts[key].ok_or("round did not run")?;
            let mut lat = Vec::new();
            let mut total = 0u64;
            let mut last = start;
            for x in &seen {
                total += x.count[key];
                lat.extend_from_slice(&x.lat_us[key]);
                if let Some(t) = x.last[key] {
                    last = last.max(t);
                }
                if x.count[key] != acks[key] {
                    if sys == 0 {
                        check_bad += 1;
                    } else {
                        bare_lost += acks[key].saturating_sub(x.count[key]);
                    }
                }
            }
            let secs = (last - start).as_secs_f64();
            let round = Round::from_samples(total, secs, lat, cpu[key]);
            if sys == 0 {
                a.push(round)
            } else {
                b.push(round)
            }
        }
        if sys == 0 {
            gaps = seen.iter().map(|x| x.gaps).sum();
            errors.extend(seen.iter().filter_map(|x| x.error.clone()));
        }
    }
    let peak = srv.peak_rss_mib();
    srv.stop().await;
    bare.stop().await;
    let _ = timeouts;
    ctx.check(
        check_bad == 0 && gaps == 0 && errors.is_empty(),
        format!(
            "W3 every one of {s} subscribers received every acknowledged change exactly once, in sequence ({check_bad} subscriber-rounds short, {gaps} sequence gaps, {} stream errors{})",
            errors.len(),
            errors.first().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    );
    let mut t = Table::new(
        &format!("W3 fan-out: {s} live subscribers, one writer at {rate} changes/s (synchronous=FULL); latency = receive − occurred_at; baseline = bare tonic broadcast fan-out"),
        "deliveries/s",
    );
    t.pair(
        &format!("{s} subs, {n} changes/round"),
        ("imgroups", &a),
        ("bare fan-out", &b),
    );
    let mut text = t.finish();
    text.push_str(&format!(
        "\nServer peak RSS {peak:.1} MiB. Bare fan-out lost {bare_lost} deliveries to broadcast lag (imgroups may not lose any).\n"
    ));
    ctx.emit(&text);
    let ratio = spread(a.iter().zip(&b).map(|(x, y)| x.rate / y.rate)).med;
    let p99 = spread(a.iter().zip(&b).map(|(x, y)| x.p99 / y.p99)).med;
    ctx.target(
        "W3 deliveries/s ≥ 90% of bare fan-out",
        format!(
            "{:.0}% ({}/s)",
            ratio * 100.0,
            num(spread(a.iter().map(|x| x.rate)).med)
        ),
        Some(ratio >= 0.9),
    );
    ctx.target(
        "W3 delivery p99 ≤ 2× bare",
        format!(
            "{p99:.1}× ({} vs {})",
            crate::stats::dur_us(spread(a.iter().map(|x| x.p99)).med),
            crate::stats::dur_us(spread(b.iter().map(|x| x.p99)).med)
        ),
        Some(p99 <= 2.0),
    );
    Ok(())
}
