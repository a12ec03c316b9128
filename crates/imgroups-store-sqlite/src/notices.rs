//! Notices of commits, in this process and across processes on one database.
//!
//! In the process that commits, notices go out on a broadcast channel ([`Publisher`]). Other
//! processes on the same database — the CLI acting as a simulated person or changing a
//! webhook — tell a running server through a Unix datagram socket beside the database
//! (`<db>-notices`): the server's store listens there ([`Listener`]) and passes what it hears
//! on to its own listeners. Like PostgreSQL's NOTIFY these are hints: a datagram can be lost
//! (no server, a full queue), and listeners make up for it by reading the log on any gap and
//! on a slow periodic check. They carry no events, only which log moved to which head.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use imgroups_core::port::{Notice, Notices};
use imgroups_core::AccountId;
use tokio::sync::{broadcast, watch};

/// Largest datagram sent: a commit's notices are split over as many as needed.
const MAX_DATAGRAM: usize = 8 * 1024;
/// Longest a listener takes to notice it was told to stop, if the wake-up datagram is lost.
#[cfg(unix)]
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// This process's listeners: commit notices, and a counter of webhook changes.
#[derive(Clone)]
pub(crate) struct Local {
    pub(crate) notices: broadcast::Sender<Notices>,
    pub(crate) webhooks: watch::Sender<u64>,
}

impl Local {
    pub(crate) fn new(capacity: usize) -> Self {
        Local {
            notices: broadcast::channel(capacity).0,
            webhooks: watch::Sender::new(0),
        }
    }

    fn hear(&self, heard: Heard) {
        match heard {
            Heard::Appended(notices) => {
                // Nobody listening is fine.
                let _ = self.notices.send(notices);
            }
            Heard::Webhooks => {
                self.webhooks.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

/// What one process tells another.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    Appended(Notices),
    /// Webhook endpoints changed.
    Webhooks,
}

/// Where a commit's notices go.
pub(crate) struct Publisher {
    local: Local,
    /// The socket of a server on the same database, for a process that does not serve.
    remote: Option<PathBuf>,
}

impl Publisher {
    /// Notices for this process's listeners only.
    pub(crate) fn local(local: Local) -> Self {
        Publisher {
            local,
            remote: None,
        }
    }

    /// Notices for this process's listeners and for a server listening at `socket`.
    pub(crate) fn with_remote(local: Local, socket: PathBuf) -> Self {
        Publisher {
            local,
            remote: Some(socket),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Notices> {
        self.local.notices.subscribe()
    }

    pub(crate) fn webhook_changes(&self) -> watch::Receiver<u64> {
        self.local.webhooks.subscribe()
    }

    /// Sends a commit's `notices` to whoever listens.
    pub(crate) fn publish(&self, notices: Notices) {
        self.tell(Heard::Appended(notices));
    }

    /// Tells whoever listens that webhook endpoints changed.
    pub(crate) fn webhooks_changed(&self) {
        self.tell(Heard::Webhooks);
    }

    fn tell(&self, heard: Heard) {
        if let Some(socket) = &self.remote {
            send(socket, &heard);
        }
        self.local.hear(heard);
    }
}

/// One line per notice, `appended <account> <head>`, or the line `webhooks`.
fn encode(heard: &Heard) -> Vec<String> {
    let notices = match heard {
        Heard::Appended(notices) => notices,
        Heard::Webhooks => return vec!["webhooks\n".to_owned()],
    };
    let mut datagrams = vec![String::new()];
    for Notice { account, head } in notices.iter() {
        let line = format!("appended {account} {head}\n");
        if datagrams
            .last()
            .is_some_and(|d| d.len() + line.len() > MAX_DATAGRAM)
        {
            datagrams.push(String::new());
        }
        if let Some(datagram) = datagrams.last_mut() {
            datagram.push_str(&line);
        }
    }
    datagrams
}

/// What a datagram says; lines that say nothing known are ignored.
fn decode(datagram: &[u8]) -> Vec<Heard> {
    let text = String::from_utf8_lossy(datagram);
    let mut notices = Vec::new();
    let mut webhooks = false;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("appended"), Some(account), Some(head), None) => {
                if let (Ok(account), Ok(head)) = (account.parse(), head.parse()) {
                    notices.push(Notice {
                        account: AccountId(account),
                        head,
                    });
                }
            }
            (Some("webhooks"), None, None, None) => webhooks = true,
            _ => {}
        }
    }
    let mut heard = Vec::new();
    if !notices.is_empty() {
        heard.push(Heard::Appended(notices.into()));
    }
    if webhooks {
        heard.push(Heard::Webhooks);
    }
    heard
}

#[cfg(unix)]
fn send(socket: &std::path::Path, heard: &Heard) {
    use std::os::unix::net::UnixDatagram;
    let Ok(sender) = UnixDatagram::unbound() else {
        return;
    };
    // A server that is not reading right now loses the hint rather than stall this process.
    let _ = sender.set_nonblocking(true);
    for datagram in encode(heard) {
        // No server listening (or a stale socket) is the normal case for a tool.
        let _ = sender.send_to(datagram.as_bytes(), socket);
    }
}

#[cfg(not(unix))]
fn send(_socket: &std::path::Path, _heard: &Heard) {}

/// Receives other processes' notices at a socket beside the database and publishes them here.
pub(crate) struct Listener {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Listens at `path`, unless another live server already does (or the socket cannot be
    /// made): then other processes' changes reach this one only through the periodic check.
    #[cfg(unix)]
    pub(crate) fn start(path: PathBuf, local: Local) -> Option<Listener> {
        use std::os::unix::net::UnixDatagram;
        if path.exists() {
            let probe = UnixDatagram::unbound().and_then(|p| p.connect(&path));
            match probe {
                Ok(()) => {
                    tracing::warn!(
                        socket = %path.display(),
                        "another server listens on this database; not listening for other processes' notices"
                    );
                    return None;
                }
                // Left behind by a server that did not stop cleanly.
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let socket = match UnixDatagram::bind(&path) {
            Ok(socket) => socket,
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    socket = %path.display(),
                    "cannot listen for other processes' notices; their changes reach live streams only through the periodic check"
                );
                return None;
            }
        };
        // Stopping wakes the receive with a datagram; should that not arrive (the directory
        // is already gone), the receive still gives up this often to look at the flag.
        if let Err(err) = socket.set_read_timeout(Some(STOP_POLL)) {
            tracing::warn!(error = %err, "cannot set a timeout on the notice socket");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("imgroups-notices".into())
            .spawn(move || {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let received = socket.recv(&mut buffer);
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    match received {
                        Ok(n) => decode(&buffer[..n]).into_iter().for_each(|h| local.hear(h)),
                        Err(err)
                            if matches!(
                                err.kind(),
                                std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::Interrupted
                            ) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "notice socket failed; no longer listening");
                            return;
                        }
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Listener {
                path,
                stop,
                thread: Some(thread),
            }),
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the notice listener");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    #[cfg(not(unix))]
    pub(crate) fn start(_path: PathBuf, _local: Local) -> Option<Listener> {
        None
    }

    /// Stops listening and removes the socket.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked receive.
        #[cfg(unix)]
        if let Ok(waker) = std::os::unix::net::UnixDatagram::unbound() {
            let _ = waker.send_to(b"", &self.path);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_survive_the_trip_and_split_over_datagrams() {
        let notices: Vec<Notice> = (0..1000)
            .map(|i| Notice {
                account: AccountId(i),
                head: 1_000_000 + i as u64,
            })
            .collect();
        let heard = Heard::Appended(notices.clone().into());
        let datagrams = encode(&heard);
        assert!(datagrams.len() > 1);
        assert!(datagrams.iter().all(|d| d.len() <= MAX_DATAGRAM));
        let back: Vec<Notice> = datagrams
            .iter()
            .flat_map(|d| decode(d.as_bytes()))
            .flat_map(|h| match h {
                Heard::Appended(n) => n.to_vec(),
                Heard::Webhooks => panic!("no webhook change was sent"),
            })
            .collect();
        assert_eq!(back, notices);
        assert_eq!(
            decode(encode(&Heard::Webhooks)[0].as_bytes()),
            vec![Heard::Webhooks]
        );
        assert!(decode(b"appended x 1\nappended 1 2 3\nnonsense\n\n").is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_listener_hears_another_process_and_a_second_one_stands_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-notices");
        let local = Local::new(8);
        let mut heard = local.notices.subscribe();
        let mut webhooks = local.webhooks.subscribe();
        let listener = Listener::start(path.clone(), local.clone()).expect("listening");
        assert!(Listener::start(path.clone(), local.clone()).is_none());

        let tool = Publisher::with_remote(Local::new(8), path.clone());
        let sent = Notice {
            account: AccountId(3),
            head: 7,
        };
        tool.publish(vec![sent].into());
        let got = heard.blocking_recv().unwrap();
        assert_eq!(&got[..], &[sent]);
        tool.webhooks_changed();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), webhooks.changed())
                .await
                .expect("heard the webhook change")
                .unwrap();
        });

        listener.stop();
        assert!(!path.exists());
        // A socket left behind by a server that died is taken over.
        let stale = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        drop(stale);
        let again = Listener::start(path.clone(), local.clone()).expect("stale socket replaced");
        again.stop();

        // Its directory deleted under it (a test's temporary directory, say), a listener
        // still stops.
        let gone = Listener::start(path.clone(), local).expect("listening");
        std::fs::remove_file(&path).unwrap();
        let (stopped, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            gone.stop();
            let _ = stopped.send(());
        });
        done.recv_timeout(std::time::Duration::from_secs(10))
            .expect("stopped without its socket file");
    }
}
