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
use tokio::sync::broadcast;

/// Largest datagram sent: a commit's notices are split over as many as needed.
const MAX_DATAGRAM: usize = 8 * 1024;
/// Longest a listener takes to notice it was told to stop, if the wake-up datagram is lost.
#[cfg(unix)]
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Where a commit's notices go.
pub(crate) struct Publisher {
    local: broadcast::Sender<Notices>,
    /// The socket of a server on the same database, for a process that does not serve.
    remote: Option<PathBuf>,
}

impl Publisher {
    /// Notices for this process's listeners only.
    pub(crate) fn local(local: broadcast::Sender<Notices>) -> Self {
        Publisher {
            local,
            remote: None,
        }
    }

    /// Notices for this process's listeners and for a server listening at `socket`.
    pub(crate) fn with_remote(local: broadcast::Sender<Notices>, socket: PathBuf) -> Self {
        Publisher {
            local,
            remote: Some(socket),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Notices> {
        self.local.subscribe()
    }

    /// Sends `notices` to whoever listens; nobody listening is fine.
    pub(crate) fn publish(&self, notices: Notices) {
        if let Some(socket) = &self.remote {
            send(socket, &notices);
        }
        let _ = self.local.send(notices);
    }
}

/// One notice per line: `appended <account> <head>` or `webhooks`.
fn encode(notices: &[Notice]) -> Vec<String> {
    let mut datagrams = vec![String::new()];
    for notice in notices {
        let line = match notice {
            Notice::Appended { account, head } => format!("appended {account} {head}\n"),
            Notice::Webhooks => "webhooks\n".to_owned(),
        };
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

/// What a datagram says; lines that are not notices are ignored.
fn decode(datagram: &[u8]) -> Vec<Notice> {
    let text = String::from_utf8_lossy(datagram);
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_ascii_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("appended"), Some(account), Some(head)) => Some(Notice::Appended {
                    account: AccountId(account.parse().ok()?),
                    head: head.parse().ok()?,
                }),
                (Some("webhooks"), None, None) => Some(Notice::Webhooks),
                _ => None,
            }
        })
        .collect()
}

#[cfg(unix)]
fn send(socket: &std::path::Path, notices: &[Notice]) {
    use std::os::unix::net::UnixDatagram;
    let Ok(sender) = UnixDatagram::unbound() else {
        return;
    };
    // A server that is not reading right now loses the hint rather than stall this process.
    let _ = sender.set_nonblocking(true);
    for datagram in encode(notices) {
        // No server listening (or a stale socket) is the normal case for a tool.
        let _ = sender.send_to(datagram.as_bytes(), socket);
    }
}

#[cfg(not(unix))]
fn send(_socket: &std::path::Path, _notices: &[Notice]) {}

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
    pub(crate) fn start(path: PathBuf, local: broadcast::Sender<Notices>) -> Option<Listener> {
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
                        Ok(n) => {
                            let notices = decode(&buffer[..n]);
                            if !notices.is_empty() {
                                let _ = local.send(notices.into());
                            }
                        }
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
    pub(crate) fn start(_path: PathBuf, _local: broadcast::Sender<Notices>) -> Option<Listener> {
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
            .map(|i| Notice::Appended {
                account: AccountId(i),
                head: 1_000_000 + i as u64,
            })
            .chain([Notice::Webhooks])
            .collect();
        let datagrams = encode(&notices);
        assert!(datagrams.len() > 1);
        assert!(datagrams.iter().all(|d| d.len() <= MAX_DATAGRAM));
        let back: Vec<Notice> = datagrams
            .iter()
            .flat_map(|d| decode(d.as_bytes()))
            .collect();
        assert_eq!(back, notices);
        assert!(decode(b"appended x 1\nnonsense\n\n").is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_listener_hears_another_process_and_a_second_one_stands_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-notices");
        let (local, mut heard) = broadcast::channel(8);
        let listener = Listener::start(path.clone(), local.clone()).expect("listening");
        assert!(Listener::start(path.clone(), local.clone()).is_none());

        let (other, _) = broadcast::channel(8);
        let tool = Publisher::with_remote(other, path.clone());
        let sent = Notice::Appended {
            account: AccountId(3),
            head: 7,
        };
        tool.publish(vec![sent].into());
        let got = heard.blocking_recv().unwrap();
        assert_eq!(&got[..], &[sent]);

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
