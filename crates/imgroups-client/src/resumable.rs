//! Resumable subscriptions: the documented recovery flow, done once, correctly.
//!
//! # The flow
//!
//! For every connection (the first one and each reconnect):
//!
//! 1. Open the live subscription and wait until the server has accepted it. From then on the
//!    server holds every matching event committed, in order (it reads them from its log if we
//!    are slow, so nothing is dropped while we are busy with step 2).
//! 2. Catch up from the position: the server freezes its head `H` and replays
//!    `position < sequence ≤ H`, then says `complete(H)`. Every event committed before step 1
//!    has a sequence ≤ `H`; every later one is on the live stream. Together they miss nothing.
//! 3. Deliver the catch-up events, then the live ones, dropping any sequence already delivered
//!    (the overlap between the two), so each event is delivered once and in order.
//! 4. While live, the position only ever moves by exactly one. Events of every kind are
//!    delivered — group, message and chat events — and the server has one live stream per
//!    kind, so the helper opens all three and merges them by sequence: an event that arrives
//!    ahead of its predecessor (on another stream) waits briefly in a reorder buffer. If the
//!    gap does not close within [`GAP_GRACE`] (a skipped sequence, or a kind no live stream
//!    carries), the helper does not step over it: it catches up again from the last
//!    contiguous position (keeping the live streams) and carries on. To see every sequence go
//!    by, the live streams are opened unfiltered and the chat filter is applied here. A server
//!    that does not serve one of the streams (`UNIMPLEMENTED`) simply has no events of that
//!    kind live; catch-up still brings them.
//!
//! Connection failures, a server that stops or restarts, and a catch-up cut short all lead back
//! to step 1 after a backoff (exponential, full jitter, from the client's [`RetryPolicy`]
//! delays, reset once a catch-up completes). The position carried across reconnects is the
//! last event *delivered* to you, so nothing is delivered twice within one `Resumable`.
//!
//! # Acknowledgement and the checkpoint
//!
//! Each item is a [`Delivery`]: the event plus the duty to [`ack`](Delivery::ack) it once it is
//! handled. The checkpoint (what a *new* `Resumable` starts after, e.g. after your process
//! restarts) advances only contiguously: to the highest sequence `S` such that every delivered
//! event `≤ S` was acked (events that did not match the filter count as handled). Acks may come
//! out of order — from concurrent handlers — and the checkpoint still never passes an event that
//! is in flight. `ack` returns once the checkpoint is saved.
//!
//! This choice makes the helper hard to misuse: pulling items ahead (buffering combinators,
//! `take`, a crash between receiving and handling) can never move the checkpoint past an event
//! that was not handled. A delivery dropped without `ack` holds the checkpoint back, so it is
//! delivered again by the next `Resumable` built on the same checkpoint. The guarantee across a
//! crash of *your* process is therefore "at least once, in order, for the events you had not
//! acked"; within one `Resumable`, and across disconnects and server restarts, it is exactly
//! once, in order.
//!
//! [`RetryPolicy`]: crate::RetryPolicy

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::client::{chat_client, group_client, message_client};
use crate::error::{Code, Error, ErrorKind, Result};
use crate::groups::EventFilter;
use crate::stream::{raw, CatchUpStream, LiveFrame, Raw, RawCatchUp};
use crate::types::Event;
use crate::Client;

/// How long an event that arrived ahead of its predecessor waits for it on the other live
/// streams before the helper catches up instead. The three streams of one server are fed by
/// the same commit, so the skew between them is normally far below this.
pub const GAP_GRACE: Duration = Duration::from_millis(200);

/// Events held in the reorder buffer at most; past it the helper catches up at once.
const MAX_REORDER: usize = 1024;

/// Where a [`Resumable`] keeps its position: the last sequence fully handled (0 = none).
///
/// Implementations must make `save` durable before returning (the [`ack`](Delivery::ack)
/// contract depends on it) and must return from `load` the last value saved.
pub trait CheckpointStore: Send + 'static {
    /// The last saved sequence, or 0 when nothing was saved yet.
    fn load(&mut self) -> impl Future<Output = io::Result<u64>> + Send;
    /// Saves a new position; called with increasing values only.
    fn save(&mut self, sequence: u64) -> impl Future<Output = io::Result<()>> + Send;
}

/// A checkpoint kept in memory (lost when the process ends). Clones share the value, so a
/// test or a caller can watch it with [`get`](Self::get).
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpoint {
    value: Arc<AtomicU64>,
}

impl MemoryCheckpoint {
    /// Starts after `sequence` (0: from the beginning of the log).
    pub fn new(sequence: u64) -> Self {
        MemoryCheckpoint {
            value: Arc::new(AtomicU64::new(sequence)),
        }
    }

    /// The current checkpoint.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }
}

impl CheckpointStore for MemoryCheckpoint {
    async fn load(&mut self) -> io::Result<u64> {
        Ok(self.get())
    }

    async fn save(&mut self, sequence: u64) -> io::Result<()> {
        self.value.store(sequence, Ordering::SeqCst);
        Ok(())
    }
}

/// A checkpoint in a file: the sequence in decimal and a newline. Saved atomically — written
/// to a temporary file beside it, synced, then renamed over it — so a crash leaves either the
/// old or the new value, never a torn one. A missing file means 0.
#[derive(Debug, Clone)]
pub struct FileCheckpoint {
    path: PathBuf,
}

impl FileCheckpoint {
    /// A checkpoint kept in the file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCheckpoint { path: path.into() }
    }

    /// The file the checkpoint is kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file now (0 when missing).
    pub fn read(path: &Path) -> io::Result<u64> {
        match std::fs::read_to_string(path) {
            Ok(text) => text.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a sequence number", path.display()),
                )
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(err) => Err(err),
        }
    }

    fn write(path: &Path, sequence: u64) -> io::Result<()> {
        use std::io::Write;
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "checkpoint path has no file name",
            )
        })?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        {
            let mut file = std::fs::File::create(&tmp)?;
            writeln!(file, "{sequence}")?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable. Directories cannot be opened for syncing on every
        // platform; where they cannot, the rename is as durable as the OS makes it.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl CheckpointStore for FileCheckpoint {
    async fn load(&mut self) -> io::Result<u64> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || FileCheckpoint::read(&path))
            .await
            .map_err(io::Error::other)?
    }

    async fn save(&mut self, sequence: u64) -> io::Result<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || FileCheckpoint::write(&path, sequence))
            .await
            .map_err(io::Error::other)?
    }
}

fn checkpoint_error(err: io::Error) -> Error {
    Error::local(
        ErrorKind::Other,
        Code::Internal,
        "checkpointError",
        format!("checkpoint store failed: {err}"),
    )
}

/// Position bookkeeping shared by the stream and the acks.
struct Tracker<C> {
    store: C,
    /// The last value saved (or loaded).
    saved: u64,
    /// Every event ≤ `seen` was delivered or did not match the filter.
    seen: u64,
    /// Delivered, not yet acked.
    pending: BTreeSet<u64>,
}

impl<C: CheckpointStore> Tracker<C> {
    /// The highest position with nothing in flight at or below it.
    fn target(&self) -> u64 {
        match self.pending.first() {
            Some(first) => self.seen.min(first - 1),
            None => self.seen,
        }
    }

    async fn flush(&mut self) -> Result<()> {
        let target = self.target();
        if target > self.saved {
            self.store.save(target).await.map_err(checkpoint_error)?;
            self.saved = target;
        }
        Ok(())
    }
}

/// One delivered event and the duty to [`ack`](Self::ack) it once handled. Derefs to the
/// [`Event`] (of any kind: match on its [`change`](Event::change)).
#[must_use = "ack the delivery once the event is handled, or it is delivered again after a restart"]
pub struct Delivery<C: CheckpointStore> {
    // Boxed: deliveries move through the driver's steps, and an event is large.
    event: Box<Event>,
    tracker: Arc<Mutex<Tracker<C>>>,
}

impl<C: CheckpointStore> fmt::Debug for Delivery<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event)
            .finish()
    }
}

impl<C: CheckpointStore> Deref for Delivery<C> {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

impl<C: CheckpointStore> Delivery<C> {
    /// The event delivered (also reachable through `Deref`).
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Marks the event handled and saves the checkpoint as far as it can now go (it does not
    /// pass an earlier event that is still unacked). Returns once saved.
    pub async fn ack(self) -> Result<()> {
        let mut tracker = self.tracker.lock().await;
        tracker.pending.remove(&self.event.sequence);
        tracker.flush().await
    }
}

type ReconnectHook = Arc<dyn Fn(&Error, u32) + Send + Sync>;

/// A subscription that reconnects by itself and delivers every matching event — group,
/// message and chat events — exactly once, in order, as [`Delivery`] items; see the [module docs](self) for the flow and the
/// checkpoint rules. Make one with [`Events::resumable`](crate::Events::resumable).
///
/// Errors that reconnecting cannot fix — bad token, a filtered chat that is not visible, a
/// failing checkpoint store — are yielded once and end the stream. Connection problems are
/// retried forever; watch them with [`on_reconnect`](Self::on_reconnect).
pub struct Resumable<C: CheckpointStore> {
    driver: Option<Driver<C>>,
    stream: Option<BoxStream<'static, Result<Delivery<C>>>>,
}

impl<C: CheckpointStore> fmt::Debug for Resumable<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resumable")
    }
}

impl<C: CheckpointStore> Resumable<C> {
    pub(crate) fn new(client: Client, filter: EventFilter, store: C) -> Self {
        Resumable {
            driver: Some(Driver {
                client,
                filter,
                store: Some(store),
                tracker: None,
                phase: Phase::Disconnected,
                reorder: BTreeMap::new(),
                gap_since: None,
                failures: 0,
                done: false,
                on_reconnect: None,
            }),
            stream: None,
        }
    }

    /// Called before each reconnect with the failure and the consecutive-failure count
    /// (1, 2, …), e.g. to log it. Set it before polling.
    pub fn on_reconnect(mut self, hook: impl Fn(&Error, u32) + Send + Sync + 'static) -> Self {
        if let Some(driver) = &mut self.driver {
            driver.on_reconnect = Some(Arc::new(hook));
        }
        self
    }
}

// Nothing in `Resumable` is pinned in place: the driver is moved out by value and the stream
// is boxed.
impl<C: CheckpointStore> Unpin for Resumable<C> {}

impl<C: CheckpointStore> Stream for Resumable<C> {
    type Item = Result<Delivery<C>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stream.is_none() {
            let Some(driver) = self.driver.take() else {
                return Poll::Ready(None);
            };
            // `unfold` asks the driver for an item only when the consumer polls, so nothing is
            // read ahead of the consumer.
            let stream = futures::stream::unfold(driver, |mut d| async move {
                d.next().await.map(|item| (item, d))
            })
            .boxed();
            self.stream = Some(stream);
        }
        match &mut self.stream {
            Some(stream) => stream.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

/// The live streams of every kind, merged: `(sequence, event)` in arrival order, which may
/// differ from sequence order across kinds.
type Live = BoxStream<'static, Raw<Event>>;

enum Phase {
    Disconnected,
    CatchingUp { live: Live, catch_up: CatchUpStream },
    Live { live: Live },
}

struct Driver<C: CheckpointStore> {
    client: Client,
    filter: EventFilter,
    /// Until the first poll loads it into the tracker.
    store: Option<C>,
    tracker: Option<Arc<Mutex<Tracker<C>>>>,
    phase: Phase,
    /// Live events that arrived ahead of a sequence not seen yet, by sequence.
    reorder: BTreeMap<u64, Option<Event>>,
    /// Since when the first event of `reorder` has waited for its predecessor.
    gap_since: Option<Instant>,
    /// Consecutive failed connections.
    failures: u32,
    done: bool,
    on_reconnect: Option<ReconnectHook>,
}

/// What to do with one frame.
enum Step<C: CheckpointStore> {
    Yield(Result<Delivery<C>>),
    Continue,
}

fn closed(what: &str) -> Error {
    Error::local(
        ErrorKind::Connection,
        Code::Unavailable,
        "serviceUnavailable",
        what.to_owned(),
    )
}

/// One kind's live stream as merged items; a stream the server does not serve is none at
/// all, and the end of a served one is an error (so the merged stream ends with it).
async fn open<F, Fut>(opened: Fut) -> Result<Option<Live>>
where
    F: LiveFrame,
    Event: From<F::Event>,
    Fut: Future<Output = Result<tonic::Streaming<F>>>,
{
    match opened.await {
        Ok(frames) => Ok(Some(
            raw(frames)
                .map(|item| item.map(|(seq, e)| (seq, e.map(Event::from))))
                .chain(futures::stream::once(async {
                    Err(closed("the server closed the event stream"))
                }))
                .boxed(),
        )),
        Err(err) if err.grpc_code() == Code::Unimplemented => Ok(None),
        Err(err) => Err(err),
    }
}

impl<C: CheckpointStore> Driver<C> {
    async fn tracker(&mut self) -> Result<Arc<Mutex<Tracker<C>>>> {
        if let Some(tracker) = &self.tracker {
            return Ok(tracker.clone());
        }
        let Some(mut store) = self.store.take() else {
            return Err(checkpoint_error(io::Error::other("checkpoint store lost")));
        };
        let saved = store.load().await.map_err(checkpoint_error)?;
        let tracker = Arc::new(Mutex::new(Tracker {
            store,
            saved,
            seen: saved,
            pending: BTreeSet::new(),
        }));
        self.tracker = Some(tracker.clone());
        Ok(tracker)
    }

    async fn next(&mut self) -> Option<Result<Delivery<C>>> {
        if self.done {
            return None;
        }
        let tracker = match self.tracker().await {
            Ok(t) => t,
            Err(err) => return self.fail(err),
        };
        loop {
            let step = match std::mem::replace(&mut self.phase, Phase::Disconnected) {
                Phase::Disconnected => self.connect(&tracker).await,
                Phase::CatchingUp { live, mut catch_up } => match catch_up.next_raw().await {
                    Some(Ok(RawCatchUp::Event(sequence, event))) => {
                        self.phase = Phase::CatchingUp { live, catch_up };
                        self.offer(&tracker, sequence, event.map(|e| *e)).await
                    }
                    Some(Ok(RawCatchUp::Complete(head_sequence))) => {
                        self.failures = 0;
                        self.phase = Phase::Live { live };
                        let mut t = tracker.lock().await;
                        t.seen = t.seen.max(head_sequence);
                        match t.flush().await {
                            Ok(()) => Step::Continue,
                            Err(err) => Step::Yield(Err(err)),
                        }
                    }
                    Some(Err(err)) => self.disconnected(err),
                    None => self.disconnected(closed("catch-up ended before it completed")),
                },
                Phase::Live { live } => self.live(&tracker, live).await,
            };
            match step {
                Step::Continue => continue,
                Step::Yield(Err(err)) => return self.fail(err),
                Step::Yield(ok) => return Some(ok),
            }
        }
    }

    fn fail(&mut self, err: Error) -> Option<Result<Delivery<C>>> {
        self.done = true;
        self.phase = Phase::Disconnected;
        Some(Err(err))
    }

    /// One step while live: the next event in sequence from the reorder buffer or the
    /// streams, or a catch-up when a gap stays open.
    async fn live(&mut self, tracker: &Arc<Mutex<Tracker<C>>>, mut live: Live) -> Step<C> {
        let seen = tracker.lock().await.seen;
        // What catch-up or an earlier delivery already covered.
        while let Some(entry) = self.reorder.first_entry() {
            if *entry.key() > seen {
                break;
            }
            entry.remove();
        }
        if let Some(entry) = self.reorder.first_entry() {
            if *entry.key() == seen + 1 {
                let (sequence, event) = entry.remove_entry();
                self.gap_since = None;
                self.phase = Phase::Live { live };
                return self.offer(tracker, sequence, event).await;
            }
        }
        let gap_since = match (self.reorder.is_empty(), self.gap_since) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => Some(Instant::now()),
        };
        self.gap_since = gap_since;
        let next = match gap_since {
            None => live.next().await,
            // Cancel safety: dropping `next()` of a stream loses no item.
            Some(since) => match tokio::time::timeout_at(since + GAP_GRACE, live.next()).await {
                Ok(next) => next,
                Err(_) => return self.catch_up_again(live, seen).await,
            },
        };
        match next {
            Some(Ok((sequence, event))) => {
                if sequence > seen {
                    self.reorder.insert(sequence, event);
                }
                if self.reorder.len() > MAX_REORDER {
                    return self.catch_up_again(live, seen).await;
                }
                // The next round delivers it if it is next, or starts waiting for the gap.
                self.phase = Phase::Live { live };
                Step::Continue
            }
            Some(Err(err)) => self.disconnected(err),
            None => self.disconnected(closed("the server closed the event stream")),
        }
    }

    /// A live gap did not close: replay from the last contiguous position on the same live
    /// streams. Every event past the gap was committed before the replay starts, so the
    /// replay brings it.
    async fn catch_up_again(&mut self, live: Live, after: u64) -> Step<C> {
        self.gap_since = None;
        match self.client.events().catch_up(after).await {
            Ok(catch_up) => {
                self.phase = Phase::CatchingUp { live, catch_up };
                Step::Continue
            }
            Err(err) => self.disconnected(err),
        }
    }

    /// Delivers an event unless it was already delivered, is of a kind this SDK does not
    /// know, or does not match the filter; its sequence counts as seen in every case.
    async fn offer(
        &mut self,
        tracker: &Arc<Mutex<Tracker<C>>>,
        sequence: u64,
        event: Option<Event>,
    ) -> Step<C> {
        let mut t = tracker.lock().await;
        if sequence <= t.seen {
            return Step::Continue; // the overlap between catch-up and live
        }
        t.seen = sequence;
        let Some(event) = event.filter(|e| self.filter.matches(&e.chat_guid)) else {
            // Catch-up and the live streams are not filtered by the server.
            return Step::Continue;
        };
        t.pending.insert(sequence);
        Step::Yield(Ok(Delivery {
            event: Box::new(event),
            tracker: tracker.clone(),
        }))
    }

    /// A stream broke: reconnect if that can help, else give up with the error.
    fn disconnected(&mut self, err: Error) -> Step<C> {
        if !err.is_transient() {
            return Step::Yield(Err(err));
        }
        self.failures += 1;
        if let Some(hook) = &self.on_reconnect {
            hook(&err, self.failures);
        }
        self.phase = Phase::Disconnected;
        Step::Continue
    }

    /// Steps 1 and 2 of the flow: live first, then catch-up from the position.
    async fn connect(&mut self, tracker: &Arc<Mutex<Tracker<C>>>) -> Step<C> {
        // A new connection replays everything after the position: what waited is replayed.
        self.reorder.clear();
        self.gap_since = None;
        if self.failures > 0 {
            let delay = self.client.inner.retry.delay(self.failures);
            tokio::time::sleep(delay).await;
        }
        // The live streams are unfiltered and the filter applied here, so that every sequence
        // passes by and a gap can be seen (a filtered stream has gaps by design). A filtered
        // chat must still be visible: check it as the server would.
        if let Some(chat) = self.filter.chat_guid() {
            if let Err(err) = self.client.chats().get(chat).await {
                return self.disconnected(err);
            }
        }
        let live = match open_live(&self.client).await {
            Ok(live) => live,
            Err(err) => return self.disconnected(err),
        };
        let after = tracker.lock().await.seen;
        match self.client.events().catch_up(after).await {
            Ok(catch_up) => {
                self.phase = Phase::CatchingUp { live, catch_up };
                Step::Continue
            }
            Err(err) => self.disconnected(err),
        }
    }
}

/// The group, message and chat streams, each accepted by the server, merged. (A free
/// function: the driver, which holds streams, is not `Sync`, and this future must be `Send`.)
async fn open_live(client: &Client) -> Result<Live> {
    let inner = &client.inner;
    let group = open(inner.open_stream(
        imgroups_proto::pb::SubscribeGroupEventsRequest { chat_guid: None },
        |ch, r| async move { group_client(ch).subscribe_group_events(r).await },
    ))
    .await?;
    let message = open(inner.open_stream(
        imgroups_proto::pb::SubscribeMessageEventsRequest { chat_guid: None },
        |ch, r| async move { message_client(ch).subscribe_message_events(r).await },
    ))
    .await?;
    let chat = open(inner.open_stream(
        imgroups_proto::pb::SubscribeChatEventsRequest { chat_guid: None },
        |ch, r| async move { chat_client(ch).subscribe_chat_events(r).await },
    ))
    .await?;
    let streams: Vec<Live> = [group, message, chat].into_iter().flatten().collect();
    Ok(futures::stream::select_all(streams).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_checkpoint_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let mut cp = FileCheckpoint::new(&path);
        assert_eq!(cp.load().await.unwrap(), 0);
        cp.save(41).await.unwrap();
        cp.save(42).await.unwrap();
        assert_eq!(cp.load().await.unwrap(), 42);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "42\n");
        assert!(!dir.path().join("cp.tmp").exists());
        std::fs::write(&path, "garbage").unwrap();
        assert!(cp.load().await.is_err());
    }

    #[tokio::test]
    async fn checkpoint_advances_only_contiguously() {
        let store = MemoryCheckpoint::new(0);
        let mut t = Tracker {
            store: store.clone(),
            saved: 0,
            seen: 0,
            pending: BTreeSet::new(),
        };
        for seq in 1..=3 {
            t.seen = seq;
            t.pending.insert(seq);
        }
        t.pending.remove(&2);
        t.flush().await.unwrap();
        assert_eq!(store.get(), 0, "1 is still in flight");
        t.pending.remove(&1);
        t.flush().await.unwrap();
        assert_eq!(store.get(), 2);
        t.seen = 10; // 4..=10 did not match the filter
        t.pending.remove(&3);
        t.flush().await.unwrap();
        assert_eq!(store.get(), 10);
    }
}
