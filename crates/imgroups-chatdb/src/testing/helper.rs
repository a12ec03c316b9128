//! [`FakeHelper`]: the helper's end of the BlueBubbles socket protocol (see
//! `actuator/bluebubbles.rs` for the facts), backed by [`FakeMessages`].
//!
//! Like the real helper it connects to the server, greets it with a `ping` event, handles
//! requests one at a time in arrival order, and answers `{"transactionId": …}` (with `"error"`
//! on failure), `\r\n`-terminated. Unlike the real one it frames requests by line, so it does
//! not need the server's pause between requests, and it does not reconnect by itself (the
//! `imgroups-fake-helper` binary does).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actuator::wire;

use super::messages::FakeMessages;

/// How the fake answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FakeReply {
    /// Applies the action to chat.db and acknowledges it (or answers with the error the real
    /// helper would give, e.g. `Chat does not exist!`).
    #[default]
    Apply,
    /// Applies nothing and answers with this error.
    Reject(String),
    /// Applies nothing and never answers (to test timeouts).
    Silent,
}

/// Options for [`FakeHelper::connect`].
#[derive(Clone, Debug, Default)]
pub struct FakeHelperOptions {
    /// Waited before handling each request.
    pub delay: Duration,
    pub reply: FakeReply,
}

/// A running fake helper connection. Dropping it closes the connection.
pub struct FakeHelper {
    task: JoinHandle<io::Result<()>>,
    handled: watch::Receiver<usize>,
}

impl FakeHelper {
    /// Connects to a [`BlueBubblesHelper`](crate::BlueBubblesHelper) at `addr` and serves
    /// requests against the chat.db at `db` until the server closes the connection.
    pub async fn connect(
        addr: SocketAddr,
        db: impl Into<PathBuf>,
        options: FakeHelperOptions,
    ) -> io::Result<FakeHelper> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let messages = FakeMessages::new(db);
        let (count, handled) = watch::channel(0);
        let task = tokio::spawn(serve(stream, messages, options, count));
        Ok(FakeHelper { task, handled })
    }

    /// How many requests it has handled (answered, or for [`FakeReply::Silent`], read).
    pub fn handled(&self) -> usize {
        *self.handled.borrow()
    }

    /// Waits until it has handled `n` requests (or its connection ended).
    pub async fn wait_handled(&self, n: usize) {
        let mut handled = self.handled.clone();
        let _ = handled.wait_for(|&h| h >= n).await;
    }

    /// Runs until the server closes the connection.
    pub async fn closed(mut self) -> io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        }
    }

    /// Closes the connection, as a helper does when Messages quits.
    pub async fn disconnect(mut self) {
        self.task.abort();
        // The socket is closed once the task is gone.
        let _ = (&mut self.task).await;
    }
}

impl Drop for FakeHelper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: TcpStream,
    messages: FakeMessages,
    options: FakeHelperOptions,
    handled: watch::Sender<usize>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    write.write_all(wire::ping().as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let Some(request) = wire::parse_request(line.trim()) else {
            continue;
        };
        if !options.delay.is_zero() {
            tokio::time::sleep(options.delay).await;
        }
        let error = match (&options.reply, request.action) {
            (FakeReply::Silent, _) => {
                handled.send_modify(|h| *h += 1);
                continue;
            }
            (FakeReply::Reject(message), _) => Some(message.clone()),
            // The real helper ignores actions it does not know.
            (FakeReply::Apply, Err(name)) if !is_group_action(&name) => {
                handled.send_modify(|h| *h += 1);
                continue;
            }
            (FakeReply::Apply, Err(_)) => Some("Chat does not exist!".to_owned()),
            (FakeReply::Apply, Ok(action)) => {
                let messages = messages.clone();
                match tokio::task::spawn_blocking(move || messages.apply(&action)).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(format!("fake helper failed: {e}")),
                }
            }
        };
        if let Some(transaction) = request.transaction {
            write
                .write_all(wire::answer(&transaction, error.as_deref()).as_bytes())
                .await?;
        }
        handled.send_modify(|h| *h += 1);
    }
    Ok(())
}

fn is_group_action(name: &str) -> bool {
    matches!(
        name,
        "set-display-name"
            | "add-participant"
            | "remove-participant"
            | "update-group-photo"
            | "leave-chat"
    )
}
