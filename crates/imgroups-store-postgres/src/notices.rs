//! Commit hints across processes, over PostgreSQL's LISTEN/NOTIFY.
//!
//! After each commit the writer hands its notices (`account`, `head`) to [`Hints`]: they are
//! broadcast to this process's listeners at once, and queued for the publisher task, which
//! waits a few milliseconds to coalesce (one `pg_notify` for many commits, one line per
//! account with its newest head) and sends them on a connection of its own — never inside
//! the write transaction, where NOTIFY would take a global lock at commit. Webhook changes
//! travel the same way. A token revocation is announced by the revoking transaction itself
//! (rare, so the lock costs nothing), so a committed revocation is never unannounced.
//!
//! Hints are lossy by design: a payload may be dropped when the publisher's connection fails,
//! and a listener that reconnects has missed whatever was sent meanwhile. Readers treat a
//! notice as "read the log up to here" and also read on gaps and on a periodic check (the
//! server's hub does), so a lost hint delays delivery and never skips an event. After a
//! reconnect the listener assumes it missed something: it forgets checked tokens and tells
//! webhook deliveries to look again.
//!
//! Payload: `<node> <what>`, where `<what>` is `a <account>:<head> …`, `r` (a token was
//! revoked) or `w` (webhooks changed). A process ignores its own payloads: it told its
//! listeners already.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use imgroups_core::port::{Notice, Notices};
use imgroups_core::AccountId;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

/// The NOTIFY channel.
pub(crate) const CHANNEL: &str = "imgroups";
/// How long the publisher waits for more hints before sending.
const COALESCE: Duration = Duration::from_millis(3);
/// PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_000;
/// How many commits a local listener may fall behind (it misses notices, never events).
const NOTICE_BUFFER: usize = 256;
/// Wait before reconnecting a failed listener or publisher connection.
const RECONNECT: Duration = Duration::from_millis(500);

pub(crate) enum Hint {
    Appended(Vec<Notice>),
    Webhooks,
}

/// This process's side of the hints: local fan-out, and the queue to the publisher.
pub(crate) struct Hints {
    node: String,
    local: broadcast::Sender<Notices>,
    webhooks: watch::Sender<u64>,
    /// Bumped whenever tokens checked so far may have been revoked.
    revocations: AtomicU64,
    /// Whether the listener is connected: only then can checked tokens be trusted between
    /// checks (a revocation elsewhere would go unheard otherwise).
    listening: AtomicBool,
    outbox: Mutex<Option<mpsc::UnboundedSender<Hint>>>,
}

impl Hints {
    pub(crate) fn new(node: String) -> (Arc<Self>, mpsc::UnboundedReceiver<Hint>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hints = Hints {
            node,
            local: broadcast::Sender::new(NOTICE_BUFFER),
            webhooks: watch::Sender::new(0),
            revocations: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            outbox: Mutex::new(Some(tx)),
        };
        (Arc::new(hints), rx)
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    fn send(&self, hint: Hint) {
        if let Ok(outbox) = self.outbox.lock() {
            if let Some(outbox) = outbox.as_ref() {
                let _ = outbox.send(hint);
            }
        }
    }

    /// A commit appended to these accounts' logs.
    pub(crate) fn appended(&self, notices: Vec<Notice>) {
        let _ = self.local.send(Notices::from(notices.as_slice()));
        self.send(Hint::Appended(notices));
    }

    /// This process revoked a token (the other processes were told by the revoking
    /// transaction itself).
    pub(crate) fn revoked(&self) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn webhooks_changed(&self) {
        self.webhooks.send_modify(|n| *n += 1);
        self.send(Hint::Webhooks);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Notices> {
        self.local.subscribe()
    }

    pub(crate) fn webhook_changes(&self) -> watch::Receiver<u64> {
        self.webhooks.subscribe()
    }

    /// The revocation generation, if checked tokens may be trusted at all.
    pub(crate) fn token_generation(&self) -> Option<u64> {
        self.listening
            .load(Ordering::SeqCst)
            .then(|| self.revocations.load(Ordering::SeqCst))
    }

    /// Stops queueing for the publisher, which sends what it has and ends.
    pub(crate) fn close(&self) {
        if let Ok(mut outbox) = self.outbox.lock() {
            outbox.take();
        }
    }

    /// A payload from another process.
    fn received(&self, payload: &str) {
        let Some((node, what)) = payload.split_once(' ') else {
            return;
        };
        if node == self.node {
            return;
        }
        let mut words = what.split(' ');
        match words.next() {
            Some("a") => {
                let notices: Vec<Notice> = words
                    .filter_map(|w| {
                        let (account, head) = w.split_once(':')?;
                        Some(Notice {
                            account: AccountId(account.parse().ok()?),
                            head: head.parse().ok()?,
                        })
                    })
                    .collect();
                if !notices.is_empty() {
                    let _ = self.local.send(Notices::from(notices));
                }
            }
            Some("r") => {
                self.revocations.fetch_add(1, Ordering::SeqCst);
            }
            Some("w") => self.webhooks.send_modify(|n| *n += 1),
            _ => tracing::debug!(payload, "unknown hint"),
        }
    }

    /// The listener (re)connected: whatever was sent meanwhile is lost.
    fn resynced(&self, listening: bool) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
        self.listening.store(listening, Ordering::SeqCst);
        if listening {
            self.webhooks.send_modify(|n| *n += 1);
        }
    }
}

/// The payload announcing a revocation (sent inside the revoking transaction, see
/// `admin::revoke_token`).
pub(crate) fn revoked_payload(node: &str) -> String {
    format!("{node} r")
}

/// Sends queued hints, coalesced, until the queue closes; then returns.
pub(crate) fn spawn_publisher(
    hints: Arc<Hints>,
    mut queue: mpsc::UnboundedReceiver<Hint>,
    config: tokio_postgres::Config,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut client: Option<tokio_postgres::Client> = None;
        while let Some(first) = queue.recv().await {
            let mut hints_now = vec![first];
            tokio::time::sleep(COALESCE).await;
            while let Ok(more) = queue.try_recv() {
                hints_now.push(more);
            }
            let payloads = payloads(hints.node(), hints_now);
            if client
                .as_ref()
                .is_none_or(tokio_postgres::Client::is_closed)
            {
                client = match crate::connect(&config, &tokio::runtime::Handle::current()).await {
                    Ok(c) => Some(c),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot send commit hints; they are dropped");
                        None
                    }
                };
            }
            let Some(c) = client.as_ref() else {
                continue;
            };
            for payload in payloads {
                if let Err(err) = c
                    .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                    .await
                {
                    tracing::warn!(error = %err, "a commit hint was dropped");
                    break;
                }
            }
        }
    })
}

/// Payloads for `hints`: one line per account with its newest head, split under the size
/// limit.
fn payloads(node: &str, hints: Vec<Hint>) -> Vec<String> {
    let mut heads: BTreeMap<AccountId, u64> = BTreeMap::new();
    let mut webhooks = false;
    for hint in hints {
        match hint {
            Hint::Appended(notices) => {
                for n in notices {
                    let head = heads.entry(n.account).or_default();
                    *head = (*head).max(n.head);
                }
            }
            Hint::Webhooks => webhooks = true,
        }
    }
    let mut out = Vec::new();
    if webhooks {
        out.push(format!("{node} w"));
    }
    let mut line = String::new();
    for (account, head) in heads {
        if line.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut line));
        }
        if line.is_empty() {
            line = format!("{node} a");
        }
        line.push_str(&format!(" {}:{head}", account.0));
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// Listens for other processes' hints until `stop` fires, reconnecting as needed.
pub(crate) fn spawn_listener(
    hints: Arc<Hints>,
    config: tokio_postgres::Config,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut stop = stop;
        loop {
            let session = listen(&hints, &config);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = session => {}
            }
            hints.resynced(false);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(RECONNECT) => {}
            }
        }
        hints.resynced(false);
    })
}

/// One listening session; returns when its connection fails.
async fn listen(hints: &Hints, config: &tokio_postgres::Config) {
    let (client, mut connection) = match config.connect(tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for other processes' commits");
            return;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(Some(n.payload().to_owned()));
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "the hint listener's connection failed");
                    break;
                }
            }
        }
        let _ = tx.send(None);
    });
    if let Err(err) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        tracing::warn!(error = %err, "cannot LISTEN");
        driver.abort();
        return;
    }
    hints.resynced(true);
    while let Some(Some(payload)) = rx.recv().await {
        hints.received(&payload);
    }
    driver.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_coalesce_to_the_newest_head_per_account() {
        let n = |account, head| Notice {
            account: AccountId(account),
            head,
        };
        let out = payloads(
            "n1",
            vec![
                Hint::Appended(vec![n(1, 3), n(2, 7)]),
                Hint::Webhooks,
                Hint::Appended(vec![n(1, 5)]),
            ],
        );
        assert_eq!(out, vec!["n1 w".to_owned(), "n1 a 1:5 2:7".to_owned()]);
    }

    #[test]
    fn received_hints_from_other_nodes_only() {
        let (hints, _rx) = Hints::new("me".into());
        let mut notices = hints.subscribe();
        hints.received("me a 1:1");
        hints.received("other a 1:4 2:9");
        let got = notices.try_recv().expect("one notice");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].head, 9);
        assert!(notices.try_recv().is_err());
        let generation = hints.revocations.load(Ordering::SeqCst);
        hints.received("other r");
        assert_eq!(hints.revocations.load(Ordering::SeqCst), generation + 1);
    }

    #[test]
    fn long_payloads_are_split() {
        let notices = (0..2_000)
            .map(|a| Notice {
                account: AccountId(a),
                head: 1_000_000,
            })
            .collect();
        let out = payloads("node", vec![Hint::Appended(notices)]);
        assert!(out.len() > 1);
        assert!(out.iter().all(|p| p.len() < 8_000));
    }
}
