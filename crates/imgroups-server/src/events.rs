//! Event delivery: live subscriptions and catch-up, both read from the durable log.
//!
//! The log is the truth; the store's commit broadcast is only a doorbell that usually carries
//! the new events along. A live subscriber keeps a cursor (the last sequence it has passed) and
//! takes events from the broadcast only while they continue its cursor exactly; whenever it
//! falls behind (the broadcast lagged, or a gap shows up) it reads the log from its cursor
//! instead. So it is never skipped ahead, and its memory is bounded: the broadcast buffer is
//! shared and fixed, the outgoing queue per subscriber is small, and log reads are paged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use imgroups_core::{AccountId, ChatGuid, Event, Result};
use imgroups_store::{Committed, Store};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Batches queued per live stream before its task waits for the client. Live batches are one
/// commit's events (usually a few) or one page of a log replay, so a stalled live subscriber
/// holds at most about `LIVE_QUEUE × LIVE_PAGE` events; the queue is deep enough to ride out
/// bursts without falling back to the log.
const LIVE_QUEUE: usize = 32;
/// Events read from the log per query by a live subscriber that fell behind.
const LIVE_PAGE: usize = 64;
/// Batches queued per catch-up stream: pages are large, and the next one is read ahead.
const CATCH_UP_QUEUE: usize = 4;
/// Events read from the log per query by a catch-up.
const PAGE: usize = 2048;

/// What a stream sends, before it is dressed as a wire message.
pub(crate) enum Frame {
    Event(Delivery),
    Heartbeat,
    Complete {
        head: u64,
    },
    /// The stream cannot continue; sent as its final status.
    Failed(imgroups_core::Error),
}

/// An event on its way to one client: read from the log for this stream alone, or taken from
/// a commit's doorbell and shared, with its encoding, by every live subscriber.
pub(crate) enum Delivery {
    Read(Event),
    Committed(Arc<Committed>, usize),
}

impl Delivery {
    /// The event's wire encoding by `encode`: made once per commit for live deliveries.
    pub(crate) fn encoded(&self, encode: fn(&Event) -> Bytes) -> Bytes {
        match self {
            Delivery::Read(event) => encode(event),
            Delivery::Committed(commit, index) => commit.encoded(*index, encode),
        }
    }
}

impl std::ops::Deref for Delivery {
    type Target = Event;

    fn deref(&self) -> &Event {
        match self {
            Delivery::Read(event) => event,
            Delivery::Committed(commit, index) => &commit.events[*index].1,
        }
    }
}

/// The frames of a stream task, one by one, as a transport sends them.
pub(crate) fn frames<T: Send + 'static>(
    rx: mpsc::Receiver<Vec<T>>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    use futures::StreamExt;
    tokio_stream::wrappers::ReceiverStream::new(rx).flat_map(futures::stream::iter)
}

/// Owns every stream task, so shutdown can end them and wait for them.
#[derive(Clone)]
pub(crate) struct Streams {
    pub(crate) store: Store,
    pub(crate) heartbeat: Duration,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

/// A stream task's way out: frames go to the client until it disconnects or the server stops.
struct Sink<T> {
    out: mpsc::Sender<Vec<T>>,
    map: fn(Frame) -> T,
    shutdown: CancellationToken,
    born: Instant,
    /// When a frame was last handed to the client, in milliseconds after `born`.
    last_sent_ms: AtomicU64,
}

impl<T> Sink<T> {
    fn new(out: mpsc::Sender<Vec<T>>, map: fn(Frame) -> T, shutdown: CancellationToken) -> Self {
        Sink {
            out,
            map,
            shutdown,
            born: Instant::now(),
            last_sent_ms: AtomicU64::new(0),
        }
    }

    /// False once the stream should end.
    async fn send(&self, frame: Frame) -> bool {
        self.send_batch(vec![frame]).await
    }

    /// Sends several frames as one queue item: per-frame channel hand-offs dominate the cost
    /// of a catch-up otherwise. An empty batch sends nothing.
    async fn send_batch(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        let batch: Vec<T> = frames.into_iter().map(self.map).collect();
        if batch.is_empty() {
            return true;
        }
        // Usually there is room: no need to arm the shutdown and wait machinery then.
        let sent = match self.out.try_send(batch) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(batch)) => tokio::select! {
                sent = self.out.send(batch) => sent.is_ok(),
                _ = self.shutdown.cancelled() => false,
            },
        };
        if sent {
            let ms = self
                .born
                .elapsed()
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX);
            self.last_sent_ms.store(ms, Ordering::Relaxed);
        }
        sent
    }

    /// When a heartbeat is due: `heartbeat` after the last frame this client actually got
    /// (commits for other accounts or chats do not count as traffic).
    fn heartbeat_due(&self, heartbeat: Duration) -> Instant {
        self.born + Duration::from_millis(self.last_sent_ms.load(Ordering::Relaxed)) + heartbeat
    }
}

/// The error for a log read that did not continue the cursor: retention pruned what the
/// reader needed (`cursorTooOld`), or — never expected — the log has a hole.
async fn gap_error(store: &Store, account: AccountId, cursor: u64) -> imgroups_core::Error {
    let failure = match store.log_bounds(account).await {
        Ok(bounds) => bounds.check_cursor(cursor).err(),
        Err(err) => Some(err),
    };
    failure.unwrap_or_else(|| {
        tracing::error!(account, cursor, "the event log has a gap");
        imgroups_core::Error::internal()
    })
}

impl Streams {
    /// Starts a live-only subscription for `account`: every event committed after this call,
    /// matching `filter`, in order, exactly once. The first frame is a heartbeat (the
    /// subscription is in place); later ones follow `heartbeat` of silence.
    pub(crate) async fn subscribe<T: Send + 'static>(
        &self,
        account: AccountId,
        filter: Option<ChatGuid>,
        map: fn(Frame) -> T,
    ) -> Result<mpsc::Receiver<Vec<T>>> {
        self.subscribe_after(account, filter, None, map).await
    }

    /// Catch-up then live, handed off server-side: with `after`, first replays
    /// `after < sequence <= head` from the log, then continues live from the same cursor, so
    /// there is no gap and no duplicate between the two. Without `after` it is
    /// [`Self::subscribe`]. An `after` beyond the head is refused: those events do not exist.
    pub(crate) async fn subscribe_after<T: Send + 'static>(
        &self,
        account: AccountId,
        filter: Option<ChatGuid>,
        after: Option<u64>,
        map: fn(Frame) -> T,
    ) -> Result<mpsc::Receiver<Vec<T>>> {
        // Listen first, then read the head: anything committed after the head read arrives on
        // the doorbell (or is found in the log), so nothing falls between the two.
        let doorbell = self.store.subscribe_commits();
        let bounds = self.store.log_bounds(account).await?;
        let head = bounds.head;
        let cursor = match after {
            Some(after) if after > head => {
                return Err(imgroups_core::Error::invalid(format!(
                    "sequence {after} is beyond the latest event {head}"
                ))
                .with("field", "afterSequence")
                .with("head", head));
            }
            Some(after) => {
                bounds.check_cursor(after)?;
                after
            }
            None => head,
        };
        let (out, rx) = mpsc::channel(LIVE_QUEUE);
        let sink = Sink::new(out, map, self.shutdown.clone());
        let live = Live {
            store: self.store.clone(),
            account,
            filter,
            cursor,
            heartbeat: self.heartbeat,
        };
        self.tasks.spawn(async move {
            let mut live = live;
            // For a live-only stream, an immediate heartbeat tells the client the subscription
            // is registered: from here on nothing committed can be missed, so a consumer
            // following the recovery flow can start its catch-up once it sees the first frame.
            // (A stream that starts with a replay needs no such signal.)
            if after.is_none() && !sink.send(Frame::Heartbeat).await {
                return;
            }
            // The backlog first; the doorbell buffers (or lags, then the log is re-read) while
            // it is sent, and `run` skips whatever the replay already passed.
            if live.replay_log(head, &sink).await {
                live.run(doorbell, sink).await;
            }
        });
        Ok(rx)
    }

    /// A stream of heartbeats only, for event families this server never produces.
    pub(crate) fn heartbeats_only<T: Send + 'static>(
        &self,
        map: fn(Frame) -> T,
    ) -> mpsc::Receiver<Vec<T>> {
        let (out, rx) = mpsc::channel(1);
        let sink = Sink::new(out, map, self.shutdown.clone());
        let heartbeat = self.heartbeat;
        self.tasks.spawn(async move {
            if !sink.send(Frame::Heartbeat).await {
                return;
            }
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(heartbeat) => {
                        if !sink.send(Frame::Heartbeat).await {
                            return;
                        }
                    }
                    _ = sink.out.closed() => return,
                    _ = sink.shutdown.cancelled() => return,
                }
            }
        });
        rx
    }

    /// Replays `after < sequence <= head` (head frozen now), then `Complete { head }`.
    pub(crate) async fn catch_up<T: Send + 'static>(
        &self,
        account: AccountId,
        after: u64,
        map: fn(Frame) -> T,
    ) -> Result<mpsc::Receiver<Vec<T>>> {
        let bounds = self.store.log_bounds(account).await?;
        bounds.check_cursor(after)?;
        let head = bounds.head;
        let (out, rx) = mpsc::channel(CATCH_UP_QUEUE);
        let sink = Sink::new(out, map, self.shutdown.clone());
        let store = self.store.clone();
        self.tasks.spawn(async move {
            let read = |cursor: u64| {
                let store = store.clone();
                tokio::spawn(async move { store.read_events(account, cursor, head, PAGE).await })
            };
            // While one page goes out, the next is read.
            let mut cursor = after;
            let mut next = (cursor < head).then(|| read(cursor));
            while let Some(pending) = next.take() {
                let page = match pending.await {
                    Ok(Ok(page)) => page,
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "catch-up read failed");
                        sink.send(Frame::Failed(err)).await;
                        return;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "catch-up read task failed");
                        sink.send(Frame::Failed(imgroups_core::Error::internal()))
                            .await;
                        return;
                    }
                };
                if page.first().is_none_or(|e| e.sequence != cursor + 1) {
                    // Retention pruned what we were about to send: fail, never skip.
                    sink.send(Frame::Failed(gap_error(&store, account, cursor).await))
                        .await;
                    return;
                }
                cursor = page.last().map_or(cursor, |e| e.sequence);
                if cursor < head {
                    next = Some(read(cursor));
                }
                if !sink
                    .send_batch(page.into_iter().map(|e| Frame::Event(Delivery::Read(e))))
                    .await
                {
                    return;
                }
            }
            sink.send(Frame::Complete { head }).await;
        });
        Ok(rx)
    }
}

struct Live {
    store: Store,
    account: AccountId,
    filter: Option<ChatGuid>,
    /// The last sequence passed (delivered or filtered out).
    cursor: u64,
    heartbeat: Duration,
}

impl Live {
    async fn run<T>(mut self, mut doorbell: broadcast::Receiver<Arc<Committed>>, sink: Sink<T>) {
        // Armed once, not per commit: with a thousand subscribers, re-arming these on every
        // commit was a visible share of the cost of fan-out.
        let shutdown = sink.shutdown.clone();
        let cancelled = shutdown.cancelled();
        let closed = sink.out.closed();
        let heartbeat = sleep_until(sink.heartbeat_due(self.heartbeat));
        tokio::pin!(cancelled, closed, heartbeat);
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => return,
                _ = &mut closed => return,
                bell = doorbell.recv() => {
                    let ok = match bell {
                        Ok(commit) => self.deliver_commit(&commit, &sink).await,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, account = self.account, "subscriber lagged; reading the log");
                            match self.store.head(self.account).await {
                                Ok(head) => self.replay_log(head, &sink).await,
                                Err(_) => false,
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => false,
                    };
                    if !ok {
                        return;
                    }
                }
                _ = &mut heartbeat => {
                    // The timer is not moved on every frame sent; when it fires, a frame may
                    // have gone out since, and the heartbeat is due later.
                    if Instant::now() >= sink.heartbeat_due(self.heartbeat)
                        && !sink.send(Frame::Heartbeat).await
                    {
                        return;
                    }
                    heartbeat.as_mut().reset(sink.heartbeat_due(self.heartbeat));
                }
            }
        }
    }

    fn wants(&self, event: &Event) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|chat| *chat == event.chat_guid)
    }

    /// Passes this account's events of one commit, as one batch. Events at or below the
    /// cursor were already passed (by a log replay); a gap means a commit was missed, and the
    /// log fills it before anything newer goes out.
    async fn deliver_commit<T>(&mut self, commit: &Arc<Committed>, sink: &Sink<T>) -> bool {
        let mut batch = Vec::new();
        for (index, (account, event)) in commit.events.iter().enumerate() {
            if *account != self.account || event.sequence <= self.cursor {
                continue;
            }
            // A gap: send what we have, then let the log fill it before anything newer.
            if event.sequence != self.cursor + 1
                && (!sink.send_batch(std::mem::take(&mut batch)).await
                    || !self.replay_log(event.sequence - 1, sink).await)
            {
                return false;
            }
            self.cursor = event.sequence;
            if self.wants(event) {
                batch.push(Frame::Event(Delivery::Committed(commit.clone(), index)));
            }
        }
        sink.send_batch(batch).await
    }

    /// Delivers everything after the cursor up to `up_to` from the log, page by page.
    async fn replay_log<T>(&mut self, up_to: u64, sink: &Sink<T>) -> bool {
        while self.cursor < up_to {
            let page = match self
                .store
                .read_events(self.account, self.cursor, up_to, LIVE_PAGE)
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "log read failed; ending subscription");
                    return false;
                }
            };
            if page.first().is_none_or(|e| e.sequence != self.cursor + 1) {
                // Only retention removes events; say so rather than skip ahead.
                let failure = gap_error(&self.store, self.account, self.cursor).await;
                sink.send(Frame::Failed(failure)).await;
                return false;
            }
            self.cursor = page.last().map_or(self.cursor, |e| e.sequence);
            let wanted = page
                .into_iter()
                .filter(|e| self.wants(e))
                .map(|e| Frame::Event(Delivery::Read(e)));
            if !sink.send_batch(wanted).await {
                return false;
            }
        }
        true
    }
}
