//! Event delivery: live subscriptions and catch-up, both read from the durable log.
//!
//! The log is the truth. The store's notices carry no events — only "this account's log now
//! ends at sequence N" — and may be lost (across processes they are hints). So:
//!
//! - The [`Hub`] reads each notified account's new events from the log **once** for every
//!   live subscriber in this process, and broadcasts them as a [`Batch`] whose wire encodings
//!   are made once and shared. It reads only for accounts someone here is subscribed to, and
//!   also re-reads their heads on a slow periodic check, so a lost notice delays delivery but
//!   never skips an event.
//! - A live subscriber keeps a cursor (the last sequence it has passed) and takes events from
//!   batches only while they continue its cursor exactly; whenever it falls behind (the
//!   broadcast lagged, or a gap shows up) it reads the log from its cursor instead. So it is
//!   never skipped ahead, and its memory is bounded: the broadcast buffer is shared and fixed,
//!   and log reads are paged.
//! - What a live subscriber has queued for its client is weighed ([`Weigh`]) and capped at
//!   [`LIVE_BUDGET`] bytes. A subscriber whose client does not read stops taking events at
//!   the cap and keeps only its cursor; once the client reads again it goes on from the log.
//!   So a paused subscriber costs its budget, whatever is written meanwhile (the transport's
//!   own buffer per stream is bounded separately, `crate::net`).
//! - Every stream holds the token it was opened with (`crate::revocation`) and ends with
//!   `tokenBlocked` soon after that token is revoked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use imgroups_core::port::{EachEvent, Notice, Notices, Store};
use imgroups_core::{AccountId, ChatGuid, Domain, Event, Result};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics;
use crate::revocation::{Held, Revocations, Token};

/// Batches queued per live stream before its task waits for the client: deep enough to ride
/// out bursts of small commits without falling back to the log. What the queue may hold in
/// bytes is [`LIVE_BUDGET`], which usually binds first.
const LIVE_QUEUE: usize = 32;
/// Bytes of encoded frames a live stream may have waiting for its client. At the budget its
/// task takes no more events (the log keeps them); it may overshoot by [`LIVE_CHUNK`] events.
/// Large enough for a burst of a few dozen events without a trip to the log; small enough
/// that a paused stream costs tens of KiB, with the transport's buffers, not megabytes.
pub(crate) const LIVE_BUDGET: usize = 16 * 1024;
/// Events read from the log per query by a live subscriber that fell behind.
const LIVE_PAGE: usize = 64;
/// Most events a live stream queues at once when its client has not taken everything yet: a
/// stream at its budget overshoots it by at most this many.
const LIVE_CHUNK: usize = 16;
/// A cursor beyond the head, for catch-up and SSE alike: those events do not exist (a cursor
/// from another server or a restored backup), and an empty answer would hide that.
fn beyond_head(after: u64, head: u64) -> imgroups_core::Error {
    imgroups_core::Error::invalid(format!(
        "sequence {after} is beyond the latest event {head}"
    ))
    .because(imgroups_core::Reason::BeyondHead)
    .with("field", "afterSequence")
    .with("head", head)
}

/// Batches queued per catch-up stream: pages are large, and the next one is read ahead.
const CATCH_UP_QUEUE: usize = 4;
/// Events read from the log per query by a catch-up.
const PAGE: usize = 2048;
/// Capacity of the hub's broadcast: how many batches a live subscriber may fall behind before
/// it has to read the log itself.
const HUB_BUFFER: usize = 256;
/// Most events the hub reads for one account after one notice. Further behind (a burst the
/// hub could not keep up with), it skips ahead and the subscribers, seeing the gap, read what
/// they need from the log themselves.
const HUB_MOST: u64 = 4 * LIVE_PAGE as u64;

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
/// a hub's batch and shared, with its encoding, by every live subscriber.
pub(crate) enum Delivery {
    Read(Event),
    Shared(Arc<Batch>, usize),
}

impl Delivery {
    /// The event's wire encoding by `encode`: made once per batch for live deliveries.
    pub(crate) fn encoded(&self, encode: fn(&Event) -> Bytes) -> Bytes {
        match self {
            Delivery::Read(event) => encode(event),
            Delivery::Shared(batch, index) => batch.encoded(*index, encode),
        }
    }

    /// The event itself, copied out of a shared batch.
    pub(crate) fn to_event(&self) -> Event {
        (**self).clone()
    }
}

impl std::ops::Deref for Delivery {
    type Target = Event;

    fn deref(&self) -> &Event {
        match self {
            Delivery::Read(event) => event,
            Delivery::Shared(batch, index) => &batch.events[*index],
        }
    }
}

/// New events of one account, read once by the [`Hub`] for every live subscriber.
#[derive(Debug)]
pub(crate) struct Batch {
    account: AccountId,
    /// Consecutive sequences, in order.
    events: Vec<Event>,
    /// Per event, its wire encoding once a transport has made it: see [`Batch::encoded`].
    encoded: Box<[OnceLock<Bytes>]>,
}

impl Batch {
    fn new(account: AccountId, events: Vec<Event>) -> Self {
        let encoded = events.iter().map(|_| OnceLock::new()).collect();
        Batch {
            account,
            events,
            encoded,
        }
    }

    /// The encoding of event `index`, made by `encode` the first time anyone asks and shared
    /// after that: a batch going out to a thousand live subscribers is encoded once, not a
    /// thousand times. There is one slot per event, so only one encoding may use it (the
    /// gRPC server's; other transports encode for themselves).
    ///
    /// # Panics
    /// If `index` is not an index of `events`.
    fn encoded(&self, index: usize, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        self.encoded[index]
            .get_or_init(|| encode(&self.events[index]))
            .clone()
    }
}

/// Reads new events once per notified account for every live subscriber in this process.
///
/// While nobody here watches any account, the hub does not read its notices at all (a server
/// under writes with no live subscriber would otherwise wake it for every commit); the first
/// watch wakes it, and it then catches up on everything it let pass by re-reading the heads.
pub(crate) struct Hub {
    store: Arc<dyn Store>,
    interest: Mutex<HashMap<AccountId, Interest>>,
    batches: broadcast::Sender<Arc<Batch>>,
    /// Rung when the first watch of an idle hub begins.
    watched: Notify,
}

/// Live subscribers of one account, and how far the hub has read its log for them.
struct Interest {
    subscribers: usize,
    /// `None` until a subscriber says where it starts ([`Watch::start_at`]) or the hub first
    /// reads for them.
    read_through: Option<u64>,
}

/// One subscriber's interest in an account; withdrawn when dropped.
pub(crate) struct Watch {
    hub: Arc<Hub>,
    account: AccountId,
    /// Counted in `imgroups_live_subscribers` while it lives.
    _counted: metrics::Open,
}

impl Watch {
    /// The subscriber starts at `head` (it reads the log up to there itself): the hub need
    /// read only what comes after, unless it already reads for someone else.
    pub(crate) fn start_at(&self, head: u64) {
        if let Ok(mut interest) = self.hub.interest.lock() {
            if let Some(entry) = interest.get_mut(&self.account) {
                entry.read_through.get_or_insert(head);
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(mut interest) = self.hub.interest.lock() {
            if let Some(entry) = interest.get_mut(&self.account) {
                entry.subscribers -= 1;
                if entry.subscribers == 0 {
                    interest.remove(&self.account);
                }
            }
        }
    }
}

impl Hub {
    /// Starts the hub (ended by `shutdown`; `tasks` waits for it). Besides notices, it
    /// re-reads the heads of watched accounts every `recheck`.
    ///
    /// The hub runs on a thread of its own, with a small runtime, not as a task among the
    /// streams: right after it hands out a batch, a thousand stream tasks are queued on the
    /// server's runtime, and a hub task woken by the next notice would queue behind all of
    /// them, so each commit's delivery would wait for the previous one's to finish. On its
    /// own thread it reads and hands out the next batch meanwhile, as the store's syncer used
    /// to when notices carried the events (BENCHMARKS.md, session 5).
    pub(crate) fn start(
        store: Arc<dyn Store>,
        recheck: Duration,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> std::io::Result<Arc<Hub>> {
        // Subscribe before anyone can watch: no notice after a watch begins is missed.
        let notices = store.notices();
        let (batches, _) = broadcast::channel(HUB_BUFFER);
        let hub = Arc::new(Hub {
            store,
            interest: Mutex::new(HashMap::new()),
            batches,
            watched: Notify::new(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (finished, done) = tokio::sync::oneshot::channel::<()>();
        let run = hub.clone().run(notices, recheck, shutdown);
        std::thread::Builder::new()
            .name("imgroups-hub".into())
            .spawn(move || {
                runtime.block_on(run);
                let _ = finished.send(());
            })?;
        // Shutdown waits for the thread through this task.
        tasks.spawn(async move {
            let _ = done.await;
        });
        Ok(hub)
    }

    /// Registers interest in `account`'s new events. Call before reading where the
    /// subscriber's cursor starts: every batch the hub reads after this is received.
    pub(crate) fn watch(
        self: &Arc<Self>,
        account: AccountId,
    ) -> (Watch, broadcast::Receiver<Arc<Batch>>) {
        let batches = self.batches.subscribe();
        if let Ok(mut interest) = self.interest.lock() {
            if interest.is_empty() {
                self.watched.notify_one();
            }
            interest
                .entry(account)
                .or_insert(Interest {
                    subscribers: 0,
                    read_through: None,
                })
                .subscribers += 1;
        }
        let watch = Watch {
            hub: self.clone(),
            account,
            _counted: metrics::Open::new(&metrics::hot().live_subscribers),
        };
        (watch, batches)
    }

    async fn run(
        self: Arc<Self>,
        mut notices: broadcast::Receiver<Notices>,
        recheck: Duration,
        shutdown: CancellationToken,
    ) {
        let mut check = tokio::time::interval(recheck);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.idle() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.watched.notified() => {}
                }
                // Skip what was let pass; the heads read next cover it (anything committed
                // before the new receiver existed is in them).
                notices = notices.resubscribe();
                let mut heads = HashMap::new();
                self.watched_heads(&mut heads).await;
                for (account, head) in heads {
                    self.read(account, head).await;
                }
                continue;
            }
            let heads = tokio::select! {
                _ = shutdown.cancelled() => return,
                notice = notices.recv() => match notice {
                    Ok(first) => {
                        // Everything already queued, coalesced: one read per account.
                        let mut heads = HashMap::new();
                        note_heads(&mut heads, &first);
                        let mut lagged = false;
                        loop {
                            match notices.try_recv() {
                                Ok(more) => note_heads(&mut heads, &more),
                                Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                                Err(_) => break,
                            }
                        }
                        if lagged {
                            self.watched_heads(&mut heads).await;
                        }
                        heads
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "hub missed notices; re-reading heads");
                        let mut heads = HashMap::new();
                        self.watched_heads(&mut heads).await;
                        heads
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = check.tick() => {
                    let mut heads = HashMap::new();
                    self.watched_heads(&mut heads).await;
                    heads
                }
            };
            for (account, head) in heads {
                self.read(account, head).await;
            }
        }
    }

    /// Whether nobody here watches any account.
    fn idle(&self) -> bool {
        self.interest.lock().map(|i| i.is_empty()).unwrap_or(false)
    }

    /// The current head of every watched account, read from the store.
    async fn watched_heads(&self, heads: &mut HashMap<AccountId, u64>) {
        let accounts: Vec<AccountId> = match self.interest.lock() {
            Ok(interest) => interest.keys().copied().collect(),
            Err(_) => return,
        };
        for account in accounts {
            match self.store.log_bounds(account).await {
                Ok(bounds) => {
                    let head = heads.entry(account).or_insert(0);
                    *head = (*head).max(bounds.head);
                }
                Err(err) => tracing::warn!(error = %err, %account, "hub: cannot read a head"),
            }
        }
    }

    /// Reads `account`'s events up to `head` that the hub has not read yet, if anyone here
    /// watches it, and broadcasts them.
    async fn read(&self, account: AccountId, head: u64) {
        let from = match self.interest.lock() {
            Ok(interest) => match interest.get(&account) {
                None => return,
                Some(Interest {
                    read_through: Some(read),
                    ..
                }) if *read >= head => return,
                Some(Interest { read_through, .. }) => {
                    read_through.unwrap_or(0).max(head.saturating_sub(HUB_MOST))
                }
            },
            Err(_) => return,
        };
        let mut cursor = from;
        while cursor < head {
            let page = match self
                .store
                .read_events(account, cursor, head, LIVE_PAGE)
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    // The next notice or check tries again; subscribers never skip.
                    tracing::warn!(error = %err, %account, "hub: cannot read the log");
                    break;
                }
            };
            let Some(last) = page.last().map(|e| e.sequence) else {
                break;
            };
            cursor = last;
            // No receivers is fine: nobody is listening right now.
            let _ = self.batches.send(Arc::new(Batch::new(account, page)));
        }
        if let Ok(mut interest) = self.interest.lock() {
            if let Some(entry) = interest.get_mut(&account) {
                entry.read_through = Some(entry.read_through.unwrap_or(0).max(cursor));
            }
        }
    }
}

fn note_heads(heads: &mut HashMap<AccountId, u64>, notices: &[Notice]) {
    for Notice { account, head } in notices {
        let known = heads.entry(*account).or_insert(0);
        *known = (*known).max(*head);
    }
}

/// How many bytes a queued frame holds, near enough: its encoding's length.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

impl<E> Weigh for std::result::Result<Bytes, E> {
    fn weight(&self) -> usize {
        self.as_ref().map_or(0, Bytes::len)
    }
}

/// A frame and its weight, for transports whose frame type does not tell (SSE's events).
pub(crate) struct Weighed<T> {
    pub(crate) frame: T,
    pub(crate) bytes: usize,
}

impl<T> Weigh for Weighed<T> {
    fn weight(&self) -> usize {
        self.bytes
    }
}

/// What one stream has queued for its client and the transport has not taken yet.
struct Ledger {
    queued: AtomicUsize,
    /// Above this, the stream's task waits for its client ([`Sink::room`]).
    budget: usize,
    /// Rung when `queued` falls below `budget` again.
    drained: Notify,
}

impl Ledger {
    fn new(budget: usize) -> Arc<Self> {
        Arc::new(Ledger {
            queued: AtomicUsize::new(0),
            budget,
            drained: Notify::new(),
        })
    }

    fn taken(&self, bytes: usize) {
        let before = self.queued.fetch_sub(bytes, Ordering::AcqRel);
        if before >= self.budget && before - bytes < self.budget {
            self.drained.notify_one();
        }
    }
}

/// The receiving end of one stream: the frames its task queued, for [`frames`].
pub(crate) struct Queue<T> {
    rx: mpsc::Receiver<Vec<T>>,
    ledger: Arc<Ledger>,
}

/// The frames of a stream task, one by one, as a transport sends them. A frame leaves the
/// stream's budget when the transport takes it, which it does only as fast as its own
/// bounded buffer drains to the client.
pub(crate) fn frames<T: Weigh + Send + 'static>(
    queue: Queue<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    use futures::StreamExt;
    let Queue { rx, ledger } = queue;
    tokio_stream::wrappers::ReceiverStream::new(rx)
        .flat_map(futures::stream::iter)
        .map(move |frame| {
            ledger.taken(frame.weight());
            frame
        })
}

/// A queue of `depth` batches and `budget` bytes, and its receiving end.
fn queue<T>(depth: usize, budget: usize) -> (mpsc::Sender<Vec<T>>, Arc<Ledger>, Queue<T>) {
    let (out, rx) = mpsc::channel(depth);
    let ledger = Ledger::new(budget);
    let queue = Queue {
        rx,
        ledger: ledger.clone(),
    };
    (out, ledger, queue)
}

/// Owns every stream task, so shutdown can end them and wait for them.
#[derive(Clone)]
pub(crate) struct Streams {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) heartbeat: Duration,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// The tokens of open streams, so a revoked token's streams end.
    pub(crate) revocations: Arc<Revocations>,
}

/// A stream task's way out: frames go to the client until it disconnects or the server stops.
struct Sink<T> {
    out: mpsc::Sender<Vec<T>>,
    /// The weight of what `out` holds, and of what the transport has not taken yet.
    ledger: Arc<Ledger>,
    map: fn(Frame) -> T,
    /// Cancelled when the server shuts down or the stream's token is revoked ([`Held::stop`]).
    shutdown: CancellationToken,
    /// The registration of the stream's token.
    held: Held,
    /// The server's own shutdown.
    server: CancellationToken,
    born: Instant,
    /// When a frame was last handed to the client, in milliseconds after `born`.
    last_sent_ms: AtomicU64,
    /// Counted in `imgroups_streams_open` while the stream is open.
    _open: metrics::Open,
}

impl<T: Weigh> Sink<T> {
    /// `kind` is the `imgroups_streams_open` gauge this stream counts in.
    fn new(
        out: mpsc::Sender<Vec<T>>,
        ledger: Arc<Ledger>,
        map: fn(Frame) -> T,
        held: Held,
        server: CancellationToken,
        kind: &'static metrics::Gauge,
    ) -> Self {
        Sink {
            out,
            ledger,
            map,
            shutdown: held.stop().clone(),
            held,
            server,
            born: Instant::now(),
            last_sent_ms: AtomicU64::new(0),
            _open: metrics::Open::new(kind),
        }
    }

    /// Ends a stream stopped because its token was revoked with `tokenBlocked`, its final
    /// status (what a call with that token gets), and one stopped by a simulator reset with
    /// `preconditionFailed`, `reason=reset`. Does nothing for other endings.
    async fn finish(&self) {
        let Some(error) = self.held.ending() else {
            return;
        };
        let last = (self.map)(Frame::Failed(error));
        // Charged like every frame: the transport takes its weight off when it sends it.
        self.ledger
            .queued
            .fetch_add(last.weight(), Ordering::AcqRel);
        let last = vec![last];
        tokio::select! {
            _ = self.out.send(last) => {}
            _ = self.server.cancelled() => {}
        }
    }

    /// False once the stream should end.
    async fn send(&self, frame: Frame) -> bool {
        self.send_batch(vec![frame]).await
    }

    /// Sends several frames as one queue item: per-frame channel hand-offs dominate the cost
    /// of a catch-up otherwise. An empty batch sends nothing.
    async fn send_batch(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        let mut events = 0;
        let batch: Vec<T> = frames
            .into_iter()
            .map(|frame| {
                events += u64::from(matches!(frame, Frame::Event(_)));
                (self.map)(frame)
            })
            .collect();
        self.send_mapped(batch, events).await
    }

    /// Sends frames already mapped (with this sink's `map`), of which `events` are events, as
    /// one queue item.
    async fn send_mapped(&self, batch: Vec<T>, events: u64) -> bool {
        let bytes = batch.iter().map(Weigh::weight).sum::<usize>();
        if batch.is_empty() {
            return true;
        }
        // Charged before it is queued, so the transport never takes more than was charged.
        self.ledger.queued.fetch_add(bytes, Ordering::AcqRel);
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
            // Counted per batch, not per event: one atomic add per queue item.
            if events > 0 {
                metrics::hot().events_delivered.increment(events);
            }
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

    /// Whether the stream is under its budget: its client has taken what was queued, near
    /// enough.
    fn has_room(&self) -> bool {
        self.ledger.queued.load(Ordering::Acquire) < self.ledger.budget
    }

    /// Whether the transport has taken everything queued.
    fn is_drained(&self) -> bool {
        self.ledger.queued.load(Ordering::Acquire) == 0
    }

    /// Waits until the stream is under its budget; false once the stream should end. A task
    /// waiting here holds no frame, only its cursor: the events it did not take stay in the
    /// log (and in the hub's shared buffer) until it reads them.
    async fn room(&self) -> bool {
        loop {
            let drained = self.ledger.drained.notified();
            if self.has_room() {
                return true;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.out.closed() => return false,
                _ = self.shutdown.cancelled() => return false,
            }
        }
    }

    /// When a heartbeat is due: `heartbeat` after the last frame this client actually got
    /// (commits for other accounts or chats do not count as traffic).
    fn heartbeat_due(&self, heartbeat: Duration) -> Instant {
        self.born + Duration::from_millis(self.last_sent_ms.load(Ordering::Relaxed)) + heartbeat
    }
}

/// The error for a log read that did not continue the cursor: a reset cleared what the reader
/// needed (`reason=reset`), retention pruned it (`cursorTooOld`), or — never expected — the
/// log has a hole.
async fn gap_error(store: &dyn Store, account: AccountId, cursor: u64) -> imgroups_core::Error {
    let failure = match store.log_bounds(account).await {
        // A simulator reset cleared the events after the cursor while the stream ran.
        Ok(bounds) if bounds.reset_through > cursor => Some(imgroups_core::port::reset_error()),
        Ok(bounds) => bounds.check_cursor(cursor).err(),
        Err(err) => Some(err),
    };
    failure.unwrap_or_else(|| {
        tracing::error!(%account, cursor, "the event log has a gap");
        imgroups_core::Error::internal()
    })
}

impl Streams {
    /// Starts a live-only subscription for `account`: every event committed after this call,
    /// matching `filter`, in order, exactly once. The first frame is a heartbeat (the
    /// subscription is in place); later ones follow `heartbeat` of silence.
    pub(crate) async fn subscribe<T: Weigh + Send + 'static>(
        &self,
        token: &Token,
        account: AccountId,
        filter: Filter,
        map: fn(Frame) -> T,
    ) -> Result<Queue<T>> {
        self.subscribe_after(token, account, filter, None, map)
            .await
    }

    /// Catch-up then live, handed off server-side: with `after`, first replays
    /// `after < sequence <= head` from the log, then continues live from the same cursor, so
    /// there is no gap and no duplicate between the two. Without `after` it is
    /// [`Self::subscribe`]. An `after` beyond the head is refused: those events do not exist.
    pub(crate) async fn subscribe_after<T: Weigh + Send + 'static>(
        &self,
        token: &Token,
        account: AccountId,
        filter: Filter,
        after: Option<u64>,
        map: fn(Frame) -> T,
    ) -> Result<Queue<T>> {
        // Watch first, then read the head: anything committed after the head read arrives in
        // a batch (or is found in the log), so nothing falls between the two.
        let (watch, batches) = self.hub.watch(account);
        let bounds = self.store.log_bounds(account).await?;
        watch.start_at(bounds.head);
        let head = bounds.head;
        let cursor = match after {
            Some(after) if after > head => return Err(beyond_head(after, head)),
            Some(after) => {
                bounds.check_cursor(after)?;
                // A cursor from before a reset continues after it.
                bounds.start(after)
            }
            None => head,
        };
        let (out, ledger, rx) = queue(LIVE_QUEUE, LIVE_BUDGET);
        let sink = Sink::new(
            out,
            ledger,
            map,
            self.revocations.hold(token),
            self.shutdown.clone(),
            &metrics::hot().streams_live,
        );
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
            // The backlog first; the batches queue up (or lag, then the log is re-read) while
            // it is sent, and `run` skips whatever the replay already passed.
            if live.replay_log(head, &sink).await {
                live.run(batches, &sink).await;
            }
            drop(watch);
            sink.finish().await;
        });
        Ok(rx)
    }

    /// A stream of heartbeats only, for event families this server never produces.
    pub(crate) fn heartbeats_only<T: Weigh + Send + 'static>(
        &self,
        token: &Token,
        map: fn(Frame) -> T,
    ) -> Queue<T> {
        // Room for the last heartbeat and a final error.
        let (out, ledger, rx) = queue(2, usize::MAX);
        let sink = Sink::new(
            out,
            ledger,
            map,
            self.revocations.hold(token),
            self.shutdown.clone(),
            &metrics::hot().streams_heartbeats,
        );
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
                    _ = sink.shutdown.cancelled() => break,
                }
            }
            sink.finish().await;
        });
        rx
    }

    /// Replays `after < sequence <= head` (head frozen now), then `Complete { head }`. Each
    /// event is mapped by `map_event` from the row it was read from (lent: the store reads
    /// the next row into it), the other frames by `map`.
    pub(crate) async fn catch_up<T: Weigh + Send + 'static>(
        &self,
        token: &Token,
        account: AccountId,
        after: u64,
        map: fn(Frame) -> T,
        map_event: fn(&Event) -> T,
    ) -> Result<Queue<T>> {
        let bounds = self.store.log_bounds(account).await?;
        if after > bounds.head {
            return Err(beyond_head(after, bounds.head));
        }
        bounds.check_cursor(after)?;
        // A cursor from before a reset continues after it.
        let after = bounds.start(after);
        let head = bounds.head;
        // A catch-up ends at the head it started at, so its queue is bounded by pages: its
        // budget is the queue's depth.
        let (out, ledger, rx) = queue(CATCH_UP_QUEUE, usize::MAX);
        let sink = Sink::new(
            out,
            ledger,
            map,
            self.revocations.hold(token),
            self.shutdown.clone(),
            &metrics::hot().streams_catch_up,
        );
        let store = self.store.clone();
        let tasks = self.tasks.clone();
        self.tasks.spawn(async move {
            let sink = &sink;
            let body = async move {
                // Read-ahead tasks are owned too: shutdown waits for them.
                // Each page is mapped (a gRPC stream: encoded) where it is read, event by
                // event: see `Log::read_events_each`.
                let read = |cursor: u64| {
                    let store = store.clone();
                    tasks.spawn(async move {
                        let page = Arc::new(Mutex::new(Vec::with_capacity(PAGE)));
                        let into = page.clone();
                        let each: EachEvent = Box::new(move |event| {
                            let frame = map_event(event);
                            into.lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(frame);
                        });
                        let read = store
                            .read_events_each(account, cursor, head, PAGE, each)
                            .await?;
                        let frames = std::mem::take(
                            &mut *page
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner),
                        );
                        Ok::<_, imgroups_core::Error>((read, frames))
                    })
                };
                // While one page goes out, the next is read.
                let mut cursor = after;
                let mut next = (cursor < head).then(|| read(cursor));
                while let Some(pending) = next.take() {
                    // A revoked token's catch-up stops here, and so does one a reset cut
                    // short; a shutdown lets it finish, as ever.
                    if sink.held.ending().is_some() {
                        return;
                    }
                    let (span, page) = match pending.await {
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
                    let Some((_, last)) = span.filter(|&(first, _)| first == cursor + 1) else {
                        // Retention pruned what we were about to send: fail, never skip.
                        sink.send(Frame::Failed(gap_error(&*store, account, cursor).await))
                            .await;
                        return;
                    };
                    metrics::hot().catch_up_read.increment(page.len() as u64);
                    cursor = last;
                    if cursor < head {
                        next = Some(read(cursor));
                    }
                    let events = page.len() as u64;
                    if !sink.send_mapped(page, events).await {
                        return;
                    }
                }
                if sink.held.ending().is_none() {
                    sink.send(Frame::Complete { head }).await;
                }
            };
            body.await;
            sink.finish().await;
        });
        Ok(rx)
    }
}

/// Which events a live stream passes: of one chat or all, of one family or all.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) chat: Option<ChatGuid>,
    pub(crate) domain: Option<Domain>,
}

impl Filter {
    /// Every event of one family.
    pub(crate) fn domain(domain: Domain) -> Self {
        Filter {
            chat: None,
            domain: Some(domain),
        }
    }

    pub(crate) fn in_chat(mut self, chat: Option<ChatGuid>) -> Self {
        self.chat = chat;
        self
    }

    fn wants(&self, event: &Event) -> bool {
        self.chat
            .as_ref()
            .is_none_or(|chat| *chat == event.chat_guid)
            && self.domain.is_none_or(|d| event.change.domain() == d)
    }
}

struct Live {
    store: Arc<dyn Store>,
    account: AccountId,
    filter: Filter,
    /// The last sequence passed (delivered or filtered out).
    cursor: u64,
    heartbeat: Duration,
}

impl Live {
    async fn run<T: Weigh>(mut self, mut batches: broadcast::Receiver<Arc<Batch>>, sink: &Sink<T>) {
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
                batch = batches.recv() => {
                    let ok = match batch {
                        Ok(batch) if batch.account != self.account => true,
                        Ok(batch) => self.deliver_batch(&batch, sink).await,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, account = %self.account, "subscriber lagged; reading the log");
                            match self.store.log_bounds(self.account).await {
                                Ok(bounds) => self.replay_log(bounds.head, sink).await,
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
                    // have gone out since, and the heartbeat is due later. A client that has
                    // not taken what is queued needs no heartbeat.
                    if Instant::now() >= sink.heartbeat_due(self.heartbeat)
                        && sink.has_room()
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
        self.filter.wants(event)
    }

    /// Passes the events of one of this account's batches, as one queue item. Events at or
    /// below the cursor were already passed (by a log replay); a gap means events were
    /// missed, and the log fills it before anything newer goes out.
    async fn deliver_batch<T: Weigh>(&mut self, shared: &Arc<Batch>, sink: &Sink<T>) -> bool {
        // A client that has not taken what is queued: wait, holding nothing of our own. Batches
        // meanwhile pass by; the first one after this shows the gap and the log fills it.
        if !sink.room().await {
            return false;
        }
        let mut batch = Vec::new();
        for (index, event) in shared.events.iter().enumerate() {
            if event.sequence <= self.cursor {
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
                batch.push(Frame::Event(Delivery::Shared(shared.clone(), index)));
                // A large batch (the hub read a burst) goes out in chunks, each once the
                // client has room: what waits is the shared batch, not copies of it.
                if batch.len() == LIVE_CHUNK
                    && (!sink.send_batch(std::mem::take(&mut batch)).await || !sink.room().await)
                {
                    return false;
                }
            }
        }
        sink.send_batch(batch).await
    }

    /// Delivers everything after the cursor up to `up_to` from the log, page by page.
    async fn replay_log<T: Weigh>(&mut self, up_to: u64, sink: &Sink<T>) -> bool {
        while self.cursor < up_to {
            // Read a page only once the client has room for it; a small one unless the client
            // has taken everything, so a stream at its budget overshoots it by little.
            if !sink.room().await {
                return false;
            }
            let page_size = if sink.is_drained() {
                LIVE_PAGE
            } else {
                LIVE_CHUNK
            };
            let page = match self
                .store
                .read_events(self.account, self.cursor, up_to, page_size)
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
                let failure = gap_error(&*self.store, self.account, self.cursor).await;
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
