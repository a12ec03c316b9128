//! Runs the real `imgroups` binary on a data directory and talks to it with the generated
//! gRPC clients, the way a user's program would.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use imgroups_proto::pb;
use imgroups_proto::pb::chat_service_client::ChatServiceClient;
use imgroups_proto::pb::event_service_client::EventServiceClient;
use imgroups_proto::pb::group_service_client::GroupServiceClient;
use imgroups_proto::pb::subscribe_group_events_response::Payload;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status, Streaming};

pub const BIN: &str = env!("CARGO_BIN_EXE_imgroups");

pub struct Server {
    child: Child,
    pub dir: PathBuf,
    pub grpc: String,
    /// The HTTP/JSON listener's `HOST:PORT`.
    pub http: String,
    /// The web console's URL (the `console` line).
    pub console: Option<String>,
    /// The default account's token (first start only; kept across restarts by the test).
    pub token: Option<String>,
    /// Where the Messages helper is awaited (`serve --backend chatdb --helper`).
    pub helper: Option<String>,
    /// The metrics listener of its own (`serve --metrics`).
    pub metrics: Option<String>,
    /// Every stdout line up to and including `ready`.
    pub lines: Vec<String>,
}

/// How [`Server::start_with`] runs `imgroups serve`, beyond its arguments. The default is
/// what [`Server::start`] does.
#[derive(Default)]
pub struct Launch<'a> {
    /// Environment variables to add (`RUST_LOG`, say).
    pub env: &'a [(&'a str, &'a str)],
    /// Where stderr goes (a log file, read once the server has exited); discarded by default.
    pub stderr: Option<Stdio>,
    /// A program and its arguments that run the server (`prlimit --nofile=256:256`).
    pub under: &'a [&'a str],
}

impl Server {
    /// Starts `imgroups serve` on `dir` and waits for its `ready` line.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(dir, extra, Launch::default())
    }

    /// [`Server::start`], run as `launch` says.
    pub fn start_with(dir: &Path, extra: &[&str], launch: Launch<'_>) -> Server {
        let mut command = match launch.under.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .arg("serve")
            .arg("--data")
            .arg(dir)
            .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(extra)
            .envs(launch.env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(launch.stderr.unwrap_or_else(Stdio::null))
            .spawn()
            .expect("spawn imgroups serve");
        let rx = lines_of(child.stdout.take().expect("stdout"));
        let mut grpc = None;
        let mut http = None;
        let mut token = None;
        let mut helper = None;
        let mut console = None;
        let mut metrics = None;
        let mut lines = Vec::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("server printed `ready` within 30 s");
            if let Some(addr) = line.strip_prefix("grpc listening on ") {
                grpc = Some(addr.to_owned());
            } else if let Some(addr) = line.strip_prefix("http listening on ") {
                http = Some(addr.to_owned());
            } else if let Some(url) = line.strip_prefix("console ") {
                console = Some(url.to_owned());
            } else if let Some(addr) = line.strip_prefix("helper listening on ") {
                helper = Some(addr.to_owned());
            } else if let Some(addr) = line.strip_prefix("metrics listening on ") {
                metrics = Some(addr.to_owned());
            } else if let Some(t) = line.strip_prefix("token ") {
                token = Some(t.to_owned());
            }
            let ready = line == "ready";
            lines.push(line);
            if ready {
                break;
            }
        }
        Server {
            child,
            dir: dir.to_owned(),
            grpc: grpc.expect("grpc address printed"),
            http: http.expect("http address printed"),
            console,
            token,
            helper,
            metrics,
            lines,
        }
    }

    /// The URL of `path` on the HTTP listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        self.terminate();
        self.wait_success();
    }

    /// SIGTERM, as an orchestrator sends it; the server may still be draining on return.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }

    /// Waits for the process to exit; it must exit 0.
    pub fn wait_success(&mut self) {
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    }

    /// `imgroups account add`: a new account and its token.
    pub fn add_account(&self, address: &str) -> String {
        cli(&[
            "account",
            "add",
            address,
            "--data",
            self.dir.to_str().expect("utf-8 dir"),
        ])
    }

    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.grpc))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    /// Peak and current resident memory of the server process, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines `read` gives (a child's stdout or stderr), on a channel fed by a thread of their
/// own, so a test can wait for one with a deadline.
pub fn lines_of(read: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs a CLI command and returns its single stdout line.
pub fn cli(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run imgroups");
    assert!(
        out.status.success(),
        "imgroups {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .trim()
        .to_owned()
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Auth(MetadataValue<tonic::metadata::Ascii>);

impl Auth {
    /// `authorization: Bearer TOKEN` on every request.
    pub fn bearer(token: &str) -> Auth {
        Auth(format!("Bearer {token}").parse().expect("ascii token"))
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Authed = InterceptedService<Channel, Auth>;

pub struct Clients {
    pub groups: GroupServiceClient<Authed>,
    pub chats: ChatServiceClient<Authed>,
    pub events: EventServiceClient<Authed>,
}

pub fn clients(channel: &Channel, token: &str) -> Clients {
    let auth = Auth::bearer(token);
    Clients {
        groups: GroupServiceClient::with_interceptor(channel.clone(), auth.clone()),
        chats: ChatServiceClient::with_interceptor(channel.clone(), auth.clone()),
        events: EventServiceClient::with_interceptor(channel.clone(), auth),
    }
}

impl Clients {
    /// Creates a group with `others` and returns its GUID.
    pub async fn create_group(&mut self, others: &[&str]) -> String {
        let resp = self
            .chats
            .create_chat(pb::CreateChatRequest {
                addresses: others.iter().map(|s| s.to_string()).collect(),
                service: pb::ChatServiceType::Imessage as i32,
                ..Default::default()
            })
            .await
            .expect("create group")
            .into_inner();
        resp.chat.expect("chat").guid
    }

    pub async fn rename(&mut self, chat: &str, name: &str) -> Result<pb::Chat, Status> {
        self.groups
            .set_display_name(pb::SetDisplayNameRequest {
                chat_guid: chat.to_owned(),
                display_name: name.to_owned(),
                client_message_id: None,
            })
            .await
            .map(|r| r.into_inner().chat.expect("chat"))
    }

    /// The chat as this account sees it.
    pub async fn get_chat(&mut self, chat: &str) -> pb::Chat {
        self.chats
            .get_chat(pb::GetChatRequest {
                chat_guid: chat.to_owned(),
            })
            .await
            .expect("get chat")
            .into_inner()
            .chat
            .expect("chat")
    }

    /// How a catch-up from 0 is refused (it must be).
    pub async fn catch_up_status(&mut self) -> Status {
        let opened = self
            .events
            .catch_up_events(pb::CatchUpEventsRequest {
                after_sequence: Some(0),
            })
            .await;
        match opened {
            Err(status) => status,
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Err(status) => return status,
                        Ok(None) => panic!("the catch-up was not refused"),
                        Ok(Some(_)) => {}
                    }
                }
            }
        }
    }

    /// The sequences of every event in the log after `after`, whatever its kind.
    pub async fn catch_up_sequences(&mut self, after: u64) -> Vec<u64> {
        let mut stream = self
            .events
            .catch_up_events(pb::CatchUpEventsRequest {
                after_sequence: Some(after),
            })
            .await
            .expect("catch up")
            .into_inner();
        let mut sequences = Vec::new();
        while let Some(frame) = stream.message().await.expect("catch-up frame") {
            sequences.extend(frame.sequence);
        }
        sequences
    }

    /// The group events in the log after `after`: (events, head from the complete frame).
    pub async fn catch_up(&mut self, after: u64) -> (Vec<(u64, pb::GroupChangeEvent)>, u64) {
        use pb::catch_up_events_response::Payload;
        let mut stream = self
            .events
            .catch_up_events(pb::CatchUpEventsRequest {
                after_sequence: Some(after),
            })
            .await
            .expect("catch up")
            .into_inner();
        let mut events = Vec::new();
        let mut head = None;
        while let Some(frame) = stream.message().await.expect("catch-up frame") {
            match frame.payload {
                Some(Payload::GroupChanged(e)) => {
                    events.push((frame.sequence.expect("event frames carry a sequence"), e))
                }
                Some(Payload::Complete(c)) => head = Some(c.head_sequence),
                _ => {}
            }
        }
        (events, head.expect("catch-up ends with complete"))
    }
}

/// The display name a change sets, if it is a rename.
pub fn renamed_to(e: &pb::GroupChangeEvent) -> Option<&str> {
    match &e.change {
        Some(pb::group_change_event::Change::DisplayNameChanged(c)) => Some(&c.display_name),
        _ => None,
    }
}

/// How long a test waits for a stream to end or a page to show something.
pub const WITHIN: Duration = Duration::from_secs(10);

/// An account-wide live group stream, past its first heartbeat.
pub async fn live(
    channel: &tonic::transport::Channel,
    token: &str,
) -> Streaming<pb::SubscribeGroupEventsResponse> {
    let mut stream = clients(channel, token)
        .groups
        .subscribe_group_events(pb::SubscribeGroupEventsRequest { chat_guid: None })
        .await
        .expect("subscribe")
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("first frame")
        .expect("a frame");
    assert!(matches!(first.payload, Some(Payload::Heartbeat(_))));
    stream
}

/// The error `stream` ends with (within [`WITHIN`]); its events before are skipped.
pub async fn ends_with(mut stream: Streaming<pb::SubscribeGroupEventsResponse>) -> Status {
    tokio::time::timeout(WITHIN, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without an error"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends after the reset")
}

/// `status` is how a stream ends at a reset (or an import): `FAILED_PRECONDITION`,
/// `error-code: preconditionFailed`, `reason=reset`.
pub fn assert_reset(status: &Status) {
    let meta = |key: &str| {
        status
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(meta("error-code").as_deref(), Some("preconditionFailed"));
    assert_eq!(
        meta("error-context-reason").as_deref(),
        Some("reset"),
        "{status:?}"
    );
}
