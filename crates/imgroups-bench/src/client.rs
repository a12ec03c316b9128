//! The load generator's building blocks: channels, authenticated requests, the closed loop,
//! group setup and a catch-up reader.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use imgroups_proto::pb;
use imgroups_proto::pb::chat_service_client::ChatServiceClient;
use imgroups_proto::pb::event_service_client::EventServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::proc::Result;

/// Opens `n` HTTP/2 connections to `url` (loopback only).
pub(crate) async fn connect(url: &str, n: usize) -> Result<Vec<Channel>> {
    if !url.starts_with("http://127.0.0.1:") {
        return Err(format!("refusing non-loopback target {url}").into());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let ch = Endpoint::from_shared(url.to_owned())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        out.push(ch);
    }
    Ok(out)
}

pub(crate) fn bearer(token: &str) -> Result<AsciiMetadataValue> {
    Ok(format!("Bearer {token}").parse()?)
}

/// `msg` with the authorization header.
pub(crate) fn req<T>(msg: T, auth: &AsciiMetadataValue) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", auth.clone());
    r
}

/// What one closed-loop run did.
pub(crate) struct Run {
    /// Per worker: operations 0..n all succeeded (a worker stops at its first error).
    pub(crate) ok_per_worker: Vec<u64>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) secs: f64,
    pub(crate) lat_us: Vec<u32>,
}

impl Run {
    pub(crate) fn ops(&self) -> u64 {
        self.ok_per_worker.iter().sum()
    }
}

/// Most operations one worker performs in one run, whatever the duration.
const MAX_OPS_PER_WORKER: u64 = 5_000_000;

/// `c` workers, each issuing `op(worker, i)` for i = 0, 1, … one at a time until `dur` has
/// passed (checked only when `i % stride == 0`, so pairs of operations stay whole), or until
/// its first error.
pub(crate) async fn closed_loop<F, Fut>(c: usize, dur: Duration, stride: u64, op: F) -> Run
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = std::result::Result<(), Status>>,
{
    closed_loop_capped(c, dur, stride, None, op).await
}

/// [`closed_loop`], stopping too once `total` operations were issued in all (spread evenly
/// over the workers): a fixed amount of work, for instruction counts that do not depend on
/// how fast the machine happened to be.
pub(crate) async fn closed_loop_capped<F, Fut>(
    c: usize,
    dur: Duration,
    stride: u64,
    total: Option<u64>,
    op: F,
) -> Run
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = std::result::Result<(), Status>>,
{
    let start = Instant::now();
    let deadline = start + dur;
    let op = &op;
    let workers = (0..c).map(|w| async move {
        let cap = match total {
            Some(n) => n / c as u64 + u64::from((w as u64) < n % c as u64),
            None => MAX_OPS_PER_WORKER,
        };
        let mut lat = Vec::with_capacity(4096);
        let mut i = 0u64;
        let mut err = None;
        while i < cap {
            if i.is_multiple_of(stride) && Instant::now() >= deadline {
                break;
            }
            let t = Instant::now();
            match op(w, i).await {
                Ok(()) => lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                Err(status) => {
                    err = Some(format!("{}: {}", status.code(), status.message()));
                    break;
                }
            }
            i += 1;
        }
        (i, lat, err)
    });
    let results = futures::future::join_all(workers).await;
    let secs = start.elapsed().as_secs_f64();
    let mut run = Run {
        ok_per_worker: Vec::with_capacity(c),
        errors: 0,
        first_error: None,
        secs,
        lat_us: Vec::new(),
    };
    for (n, lat, err) in results {
        run.ok_per_worker.push(n);
        run.lat_us.extend(lat);
        if let Some(e) = err {
            run.errors += 1;
            run.first_error.get_or_insert(e);
        }
    }
    run
}

/// Creates `n` groups, `members(i)` being the others in group i, `c` at a time, spread over
/// `channels`; `token(i)` chooses who creates group i. Returns the GUIDs in order.
pub(crate) async fn create_groups(
    channels: &[Channel],
    n: usize,
    c: usize,
    members: impl Fn(usize) -> Vec<String>,
    auth: impl Fn(usize) -> AsciiMetadataValue,
    leave_after: bool,
) -> Result<Vec<String>> {
    let mut guids = vec![String::new(); n];
    let mut pending = FuturesUnordered::new();
    let mut next = 0usize;
    loop {
        while next < n && pending.len() < c {
            let i = next;
            next += 1;
            let ch = channels[i % channels.len()].clone();
            let addresses = members(i);
            let auth = auth(i);
            pending.push(async move {
                let mut chats = ChatServiceClient::new(ch.clone());
                let resp = chats
                    .create_chat(req(
                        pb::CreateChatRequest {
                            addresses,
                            service: pb::ChatServiceType::Imessage as i32,
                            initial_message: None,
                            client_message_id: None,
                        },
                        &auth,
                    ))
                    .await?;
                let guid = resp
                    .into_inner()
                    .chat
                    .map(|c| c.guid)
                    .ok_or_else(|| Status::internal("no chat in CreateChat response"))?;
                if leave_after {
                    let mut groups = pb::group_service_client::GroupServiceClient::new(ch);
                    groups
                        .leave_group(req(
                            pb::LeaveGroupRequest {
                                chat_guid: guid.clone(),
                                client_message_id: None,
                            },
                            &auth,
                        ))
                        .await?;
                }
                Ok::<_, Status>((i, guid))
            });
        }
        match pending.next().await {
            Some(Ok((i, guid))) => guids[i] = guid,
            Some(Err(status)) => {
                return Err(
                    format!("creating groups: {}: {}", status.code(), status.message()).into(),
                )
            }
            None => break,
        }
    }
    Ok(guids)
}

/// What one catch-up call returned.
pub(crate) struct CatchUp {
    pub(crate) events: u64,
    pub(crate) head: u64,
    pub(crate) secs: f64,
    /// Request sent to first event frame.
    pub(crate) first_event_s: f64,
    /// Sequences that did not follow their predecessor by exactly one.
    pub(crate) gaps: u64,
}

/// Reads `CatchUpEvents(after = 0)` to its `complete` frame, handing every group event to
/// `each` (every event counts, whatever its kind). `bare_events` asks the bare baseline for
/// that many synthetic events.
pub(crate) async fn catch_up(
    ch: Channel,
    auth: &AsciiMetadataValue,
    bare_events: Option<u64>,
    mut each: impl FnMut(u64, &pb::GroupChangeEvent),
) -> Result<CatchUp> {
    use pb::catch_up_events_response::Payload;
    let (out, _) = catch_up_any(ch, auth, bare_events, false, |seq, p| {
        if let Payload::GroupChanged(e) = p {
            each(seq, e);
        }
    })
    .await?;
    Ok(out)
}

/// Events of a catch-up by kind.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Kinds {
    pub(crate) group: u64,
    pub(crate) message: u64,
    pub(crate) chat: u64,
    pub(crate) other: u64,
}

/// [`catch_up`] handing every event, of any kind, to `each`, and counting them by kind.
/// `mixed` asks the bare baseline for the M3 mix of kinds instead of display-name changes.
pub(crate) async fn catch_up_any(
    ch: Channel,
    auth: &AsciiMetadataValue,
    bare_events: Option<u64>,
    mixed: bool,
    mut each: impl FnMut(u64, &pb::catch_up_events_response::Payload),
) -> Result<(CatchUp, Kinds)> {
    use pb::catch_up_events_response::Payload;
    let mut client = EventServiceClient::new(ch).max_decoding_message_size(64 << 20);
    let mut r = req(
        pb::CatchUpEventsRequest {
            after_sequence: Some(0),
        },
        auth,
    );
    if let Some(n) = bare_events {
        r.metadata_mut()
            .insert("x-bench-events", n.to_string().parse()?);
        if mixed {
            r.metadata_mut().insert("x-bench-mix", "1".parse()?);
        }
    }
    let start = Instant::now();
    let mut stream = client.catch_up_events(r).await?.into_inner();
    let mut out = CatchUp {
        events: 0,
        head: 0,
        secs: 0.0,
        first_event_s: f64::NAN,
        gaps: 0,
    };
    let mut kinds = Kinds::default();
    let mut prev = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let msg = tokio::time::timeout_at(deadline, stream.message())
            .await
            .map_err(|_| "catch-up did not complete within 600 s")??;
        let Some(msg) = msg else {
            return Err("catch-up stream ended without `complete`".into());
        };
        let Some(payload) = msg.payload else { continue };
        match &payload {
            Payload::Complete(c) => {
                out.head = c.head_sequence;
                break;
            }
            Payload::Heartbeat(_) => continue,
            Payload::GroupChanged(_) => kinds.group += 1,
            Payload::MessageChanged(_) => kinds.message += 1,
            Payload::ChatChanged(_) => kinds.chat += 1,
            Payload::PollChanged(_) => kinds.other += 1,
        }
        if out.events == 0 {
            out.first_event_s = start.elapsed().as_secs_f64();
        }
        out.events += 1;
        let seq = msg.sequence.unwrap_or(0);
        if seq != prev + 1 {
            out.gaps += 1;
        }
        prev = seq;
        each(seq, &payload);
    }
    out.secs = start.elapsed().as_secs_f64();
    Ok((out, kinds))
}

/// The display name of a display-name change, if that is what `e` is.
pub(crate) fn display_name(e: &pb::GroupChangeEvent) -> Option<&str> {
    match &e.change {
        Some(pb::group_change_event::Change::DisplayNameChanged(d)) => Some(&d.display_name),
        _ => None,
    }
}

/// Microseconds from `occurred_at` to now (both wall clock, same machine).
pub(crate) fn age_us(e: &pb::GroupChangeEvent) -> u32 {
    let Some(ts) = &e.occurred_at else { return 0 };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let now_us = now.as_micros() as i128;
    let then_us = ts.seconds as i128 * 1_000_000 + (ts.nanos as i128) / 1000;
    (now_us - then_us).clamp(0, u32::MAX as i128) as u32
}
