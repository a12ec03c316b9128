//! What a signed-in client can make the server hold, bounded: paused event streams (SSE and
//! gRPC), request bodies in flight, `Expect: 100-continue`; and the open-file limit, admin
//! tokens and the revocations file. Each test runs the real binary and measures what a user
//! could see.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::support::{cli, clients, Launch, Server};

/// A connection whose reading can be paused: while paused the client reads nothing from its
/// socket, as a stalled or hostile client would, so whatever the server sends piles up in
/// the kernel and then in the server.
struct Pausable {
    io: TcpStream,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    paused: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

impl AsyncRead for Pausable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.gate.paused.load(Ordering::SeqCst) {
            *this.gate.waker.lock().unwrap() = Some(cx.waker().clone());
            // Resumed between the check and storing the waker: go on.
            if this.gate.paused.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pausable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The sequence numbers (`id:` lines) of the complete SSE events in `buffer`, which keeps
/// what follows the last complete event.
fn sse_ids(buffer: &mut Vec<u8>, ids: &mut Vec<u64>) {
    while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
        let block: Vec<u8> = buffer.drain(..end + 2).collect();
        for line in block.split(|b| *b == b'\n') {
            if let Some(id) = line.strip_prefix(b"id: ").or(line.strip_prefix(b"id:")) {
                let id = std::str::from_utf8(id).unwrap().trim().parse().unwrap();
                ids.push(id);
            }
        }
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Paused SSE streams over HTTP/2 cost a bounded amount each, whatever is written meanwhile,
/// and lose nothing: the client advertises the largest windows HTTP/2 allows, then stops
/// reading its sockets while events are written. Every stream, once read again, gets every
/// event in order, exactly once (the ones it did not take come from the log).
///
/// Defaults are sized for a debug build; `IMGROUPS_PAUSED_STREAMS=2000
/// IMGROUPS_PAUSED_WRITES=2000` is the full measurement (run it with `--release`). Measured
/// so: 138 MiB of growth for 2,000 streams (~71 KiB each, the server's 16 KiB queue plus
/// HTTP/2 and allocator overhead; 5.6 GB for 4,000 before), and every stream then read all
/// 2,000 events in order in 36 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_sse_streams_cost_a_bounded_amount_and_lose_nothing() {
    let streams = env_or("IMGROUPS_PAUSED_STREAMS", 400);
    let writes = env_or("IMGROUPS_PAUSED_WRITES", 400);
    let connections = 2;
    let dir = tempfile::tempdir().expect("tempdir");
    // Extra `serve` flags, to measure other settings.
    let extra = std::env::var("IMGROUPS_PAUSED_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let server = Server::start(dir.path(), &extra);
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut c = clients(&channel, &token);
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let (_, head) = c.catch_up(0).await;

    let mut gates = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..connections {
        let tcp = TcpStream::connect(&server.http).await.expect("connect");
        let gate = Arc::new(Gate::default());
        let io = Pausable {
            io: tcp,
            gate: gate.clone(),
        };
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(i32::MAX as u32)
            .initial_connection_window_size(i32::MAX as u32)
            .handshake::<_, Bytes>(io)
            .await
            .expect("h2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.expect("ready");
        for _ in 0..streams / connections {
            let req = http::Request::get(format!("http://{}/v1/events:stream", server.http))
                .header("authorization", format!("Bearer {token}"))
                .body(())
                .unwrap();
            let (response, _) = client.send_request(req, true).expect("send");
            bodies.push(response);
            client = client.ready().await.expect("ready");
        }
        gates.push(gate);
    }
    // Every stream is open and registered once its first frame (a heartbeat) has arrived.
    let mut opened = Vec::new();
    for response in bodies {
        let response = response.await.expect("response");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = body.data().await.expect("a first frame").expect("data");
        let _ = body.flow_control().release_capacity(first.len());
        opened.push(body);
    }
    for gate in &gates {
        gate.pause();
    }
    let (_, before) = server.memory_kib();

    let name = "n".repeat(200);
    let started = Instant::now();
    for i in 0..writes {
        c.rename(&chat, &format!("{name}{i}"))
            .await
            .expect("rename");
    }
    let wrote = started.elapsed();
    // Let the server do whatever it will with what it could not send.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (peak, after) = server.memory_kib();
    let growth_kib = peak.saturating_sub(before);
    eprintln!(
        "{streams} paused SSE streams over {connections} HTTP/2 connections, {writes} writes \
         in {wrote:?}: rss {before} KiB before, {after} KiB after, peak {peak} KiB: \
         growth {growth_kib} KiB = {} bytes per stream",
        growth_kib * 1024 / streams as u64
    );

    if std::env::var_os("IMGROUPS_PAUSED_SETTLE").is_some() {
        // Freed memory goes back to the system after a while: what is really held.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let (_, settled) = server.memory_kib();
        eprintln!("settled: rss {settled} KiB");
    }
    for gate in &gates {
        gate.resume();
    }
    let opened = opened.into_iter().map(|body| (body, Vec::new())).collect();
    read_every_stream(opened, head, writes, sse_ids).await;
    assert_bounded(growth_kib, streams, "paused streams");
}

/// Once the paused streams may read again: reads each until it has the `writes` events after
/// `head` (`parse` takes the complete events' numbers out of the bytes read so far, keeping
/// the rest), and checks each got every one, in order, exactly once.
async fn read_every_stream(
    opened: Vec<(h2::RecvStream, Vec<u8>)>,
    head: u64,
    writes: usize,
    parse: fn(&mut Vec<u8>, &mut Vec<u64>),
) {
    let want: Vec<u64> = (head + 1..=head + writes as u64).collect();
    let started = Instant::now();
    let readers = opened.into_iter().map(|(mut body, mut buffer)| {
        let want = want.clone();
        tokio::spawn(async move {
            let mut numbers = Vec::new();
            while numbers.len() < want.len() {
                let chunk = tokio::time::timeout(Duration::from_secs(120), body.data())
                    .await
                    .expect("events keep coming")
                    .expect("the stream stays open")
                    .expect("data");
                let _ = body.flow_control().release_capacity(chunk.len());
                buffer.extend_from_slice(&chunk);
                parse(&mut buffer, &mut numbers);
            }
            assert_eq!(numbers, want, "every event, in order, exactly once");
        })
    });
    for reader in futures::future::join_all(readers).await {
        reader.expect("reader");
    }
    eprintln!(
        "every stream read all {writes} events in order in {:?}",
        started.elapsed()
    );
}

/// 64 KiB a stream is the goal; the bound leaves room for the allocator's slack.
fn assert_bounded(growth_kib: u64, streams: usize, what: &str) {
    let bound_kib = 32 * 1024 + streams as u64 * 96;
    assert!(
        growth_kib < bound_kib,
        "{what} grew the server by {growth_kib} KiB (bound {bound_kib} KiB)"
    );
}

/// The sequence numbers of the complete gRPC messages (`SubscribeGroupEventsResponse`) in
/// `buffer`, which keeps what follows the last complete message; heartbeats have none.
fn grpc_sequences(buffer: &mut Vec<u8>, sequences: &mut Vec<u64>) {
    use prost::Message;
    while buffer.len() >= 5 {
        assert_eq!(buffer[0], 0, "uncompressed messages");
        let len = u32::from_be_bytes(buffer[1..5].try_into().unwrap()) as usize;
        if buffer.len() < 5 + len {
            return;
        }
        let message: Vec<u8> = buffer.drain(..5 + len).skip(5).collect();
        let frame = imgroups_proto::pb::SubscribeGroupEventsResponse::decode(&message[..])
            .expect("a SubscribeGroupEventsResponse");
        sequences.extend(frame.sequence);
    }
}

/// Issue 26: paused gRPC event streams cost a bounded amount each, as SSE ones do (the
/// HTTP/2 send buffer per stream is `--stream-send-buffer` on the gRPC listener too, not
/// hyper's default ~400 KiB), and lose nothing. The client advertises the largest windows
/// HTTP/2 allows on one connection, opens `SubscribeGroupEvents` streams, stops reading its
/// socket, and renames are written; once it reads again, every stream gets every event in
/// order, exactly once.
///
/// Defaults are sized for a debug build: 400 streams and 2,000 writes of ~250 bytes each, more
/// than hyper's default send buffer of a stream, so that with it each stream would hold
/// ~400 KiB (160 MiB in all; this test failed so before issue 26) against a bound of ~70 MiB.
/// `IMGROUPS_PAUSED_STREAMS` and `IMGROUPS_PAUSED_WRITES` change them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_grpc_streams_cost_a_bounded_amount_and_lose_nothing() {
    let streams = env_or("IMGROUPS_PAUSED_STREAMS", 400);
    let writes = env_or("IMGROUPS_PAUSED_WRITES", 2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = std::env::var("IMGROUPS_PAUSED_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let server = Server::start(dir.path(), &extra);
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut c = clients(&channel, &token);
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let (_, head) = c.catch_up(0).await;

    let tcp = TcpStream::connect(&server.grpc).await.expect("connect");
    let gate = Arc::new(Gate::default());
    let io = Pausable {
        io: tcp,
        gate: gate.clone(),
    };
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(i32::MAX as u32)
        .initial_connection_window_size(i32::MAX as u32)
        .handshake::<_, Bytes>(io)
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let mut responses = Vec::new();
    for _ in 0..streams {
        let req = http::Request::post(format!(
            "http://{}/photon.imessage.v1.GroupService/SubscribeGroupEvents",
            server.grpc
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
        let (response, mut send) = client.send_request(req, false).expect("send");
        // An empty request message: every group.
        send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .expect("request message");
        responses.push(response);
        client = client.ready().await.expect("ready");
    }
    // Every stream is open and registered once its first message (a heartbeat) has arrived.
    let mut opened = Vec::new();
    for response in responses {
        let response = response.await.expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers().get("grpc-status"), None, "not refused");
        let mut body = response.into_body();
        let first = body.data().await.expect("a first frame").expect("data");
        let _ = body.flow_control().release_capacity(first.len());
        let mut buffer = first.to_vec();
        let mut sequences = Vec::new();
        grpc_sequences(&mut buffer, &mut sequences);
        assert!(sequences.is_empty(), "a heartbeat first");
        opened.push((body, buffer));
    }
    gate.pause();
    let (_, before) = server.memory_kib();

    let name = "n".repeat(200);
    let started = Instant::now();
    for i in 0..writes {
        c.rename(&chat, &format!("{name}{i}"))
            .await
            .expect("rename");
    }
    let wrote = started.elapsed();
    // Let the server do whatever it will with what it could not send.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (peak, after) = server.memory_kib();
    let growth_kib = peak.saturating_sub(before);
    eprintln!(
        "{streams} paused gRPC streams over one HTTP/2 connection, {writes} writes in \
         {wrote:?}: rss {before} KiB before, {after} KiB after, peak {peak} KiB: growth \
         {growth_kib} KiB = {} bytes per stream",
        growth_kib * 1024 / streams as u64
    );

    gate.resume();
    read_every_stream(opened, head, writes, grpc_sequences).await;
    assert_bounded(growth_kib, streams, "paused gRPC streams");
}

/// Sends the head of an HTTP/1 POST with `headers` and no body; the answer that comes back
/// without the body having been sent.
async fn post_head_only(http: &str, path: &str, headers: &[(&str, String)]) -> String {
    let mut tcp = TcpStream::connect(http).await.expect("connect");
    let mut head =
        format!("POST {path} HTTP/1.1\r\nhost: {http}\r\ncontent-type: application/json\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.expect("write head");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut answer))
        .await
        .expect("answered without the body")
        .expect("read");
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// `Expect: 100-continue` with a body over the method's limit, or over any route's: refused
/// at once (413), never invited with `100 Continue`.
#[tokio::test]
async fn expect_continue_over_the_limit_is_refused_before_the_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("token");
    for (path, length) in [
        ("/v1/groups:setIcon", 10u64 << 30),
        ("/v1/groups:setDisplayName", 10 << 20),
        ("/v1/webhooks", 10 << 30),
    ] {
        let answer = post_head_only(
            &server.http,
            path,
            &[
                ("authorization", format!("Bearer {token}")),
                ("expect", "100-continue".into()),
                ("content-length", length.to_string()),
            ],
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{path} with {length} bytes: {answer}"
        );
        assert!(answer.contains("tooLarge"), "{answer}");
    }
}

/// Stalled bodies cannot add up past the budget: with 16 MiB setIcon bodies that stall after
/// their head, the server reserves their declared size, refuses what no longer fits with a
/// retryable 413 (`bodiesInFlight`) without reading it, and its memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_bounded_by_the_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[
            "--max-body-bytes-in-flight",
            &(128u64 << 20).to_string(),
            "--max-body-bytes-in-flight-per-account",
            &(64u64 << 20).to_string(),
        ],
    );
    let token = server.token.clone().expect("token");
    let other = server.add_account("other@example.com");
    let (_, before) = server.memory_kib();
    let length: usize = 16 << 20;
    let sent = 8 << 20;
    // Each connection asks to send its body (`Expect: 100-continue`); one invited sends half
    // of it and stalls, kept open until the end; one refused is answered at once.
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for i in 0..150 {
        let token = if i % 2 == 0 { &token } else { &other };
        let mut tcp = TcpStream::connect(&server.http).await.expect("connect");
        let head = format!(
            "POST /v1/groups:setIcon HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {length}\r\n\
             expect: 100-continue\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.expect("head");
        let mut answer = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut answer))
            .await
            .expect("answered")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        if !answer.starts_with("HTTP/1.1 100") {
            refused.push(answer);
            continue;
        }
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..sent >> 20 {
            tcp.write_all(&chunk).await.expect("body");
        }
        held.push(tcp);
    }
    let (peak, _) = server.memory_kib();
    eprintln!(
        "150 stalled 16 MiB bodies: {} held, {} refused; rss {before} KiB before, peak {peak} KiB",
        held.len(),
        refused.len()
    );
    // 128 MiB of budget: 8 bodies of 16 MiB at once, each account at most 4.
    assert!(held.len() <= 8, "{} bodies held", held.len());
    assert!(!refused.is_empty());
    for answer in &refused {
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("bodiesInFlight"), "{answer}");
        assert!(answer.contains("\"retryable\":true"), "{answer}");
    }
    assert!(
        peak < before + 512 * 1024,
        "stalled bodies grew the server to {peak} KiB from {before} KiB"
    );
    // A client that sends its whole body at once (no `Expect`) while the budget is spent
    // still reads the answer: the refused body is read and dropped, not left to reset the
    // connection.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/groups:setIcon", server.http))
        .bearer_auth(&token)
        .body(format!(
            "{{\"chatGuid\":\"any;+;nope\",\"icon\":\"{}\"}}",
            "A".repeat(12 << 20)
        ))
        .send()
        .await
        .expect("answered, not reset");
    assert_eq!(resp.status(), 413);
    assert!(resp.text().await.unwrap().contains("bodiesInFlight"));
    // Once they go, the budget is free again: a small icon call is answered on its merits.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/groups:setIcon", server.http))
        .bearer_auth(&token)
        .body(format!(
            "{{\"chatGuid\":\"any;+;nope\",\"icon\":\"{}\"}}",
            "A".repeat(1 << 20)
        ))
        .send()
        .await
        .expect("answered");
    let body = resp.text().await.expect("body");
    assert!(!body.contains("bodiesInFlight"), "{body}");
}

/// A gRPC message that is still on its way takes its declared size from the budget; past it,
/// RESOURCE_EXHAUSTED with `reason=bodiesInFlight`, retryable, before it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_grpc_messages_are_bounded_by_the_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &[
            "--max-body-bytes-in-flight",
            &(32u64 << 20).to_string(),
            "--max-body-bytes-in-flight-per-account",
            "0",
        ],
    );
    let token = server.token.clone().expect("token");
    let mut answers = Vec::new();
    let mut held = Vec::new();
    for _ in 0..6 {
        let channel = server.channel().await;
        let (answer, call) = stalled_set_icon(channel, &token, 10 << 20);
        match tokio::time::timeout(Duration::from_secs(1), answer).await {
            Ok(Ok(answer)) => answers.push(answer),
            _ => held.push(call),
        }
    }
    // 32 MiB: three 10 MiB messages at once.
    assert_eq!(held.len(), 3, "held {}, answered {answers:?}", held.len());
    for (status, reason, retryable) in &answers {
        assert_eq!(status, "8", "RESOURCE_EXHAUSTED");
        assert_eq!(reason, "bodiesInFlight");
        assert_eq!(retryable, "true");
    }
    for call in held {
        call.abort();
    }
}

/// The `grpc-status`, `error-context-reason` and `x-retryable` of an answer.
type Answer = (String, String, String);

/// A request body announcing a `declared`-byte message, sending 1 MiB of it, then stalling.
struct Stalled {
    declared: u32,
    sent: bool,
}

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        if this.sent {
            return Poll::Pending;
        }
        this.sent = true;
        let mut start = vec![0u8];
        start.extend_from_slice(&this.declared.to_be_bytes());
        start.resize(5 + (1 << 20), 0);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(start)))))
    }
}

/// A raw `SetIcon` call with a [`Stalled`] body: its answer when one comes, and the call.
fn stalled_set_icon(
    mut channel: tonic::transport::Channel,
    token: &str,
    declared: u32,
) -> (
    tokio::sync::oneshot::Receiver<Answer>,
    tokio::task::JoinHandle<()>,
) {
    use tonic::codegen::Service;
    let req = http::Request::builder()
        .method("POST")
        .uri("/photon.imessage.v1.GroupService/SetIcon")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(tonic::body::Body::new(Stalled {
            declared,
            sent: false,
        }))
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let call = tokio::spawn(async move {
        if futures::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .is_err()
        {
            return;
        }
        if let Ok(resp) = channel.call(req).await {
            let h = resp.headers();
            let get = |n: &str| {
                h.get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let _ = tx.send((
                get("grpc-status"),
                get("error-context-reason"),
                get("x-retryable"),
            ));
            // Keep the connection while the test runs.
            std::future::pending::<()>().await;
        }
    });
    (rx, call)
}

/// `imgroups admin token list` and `revoke`: a revoked admin token is refused by the console
/// API at once, and its open console event stream ends with `tokenBlocked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens_are_listed_and_revoked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let first = cli(&["admin", "token", "--data", data]);
    let second = cli(&["admin", "token", "--data", data]);
    let list = std::process::Command::new(crate::support::BIN)
        .args(["admin", "token", "list", "--data", data])
        .output()
        .expect("list");
    let list = String::from_utf8(list.stdout).unwrap();
    let ids: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(
        !list.contains(&first) && !list.contains(&second),
        "never the tokens"
    );

    let http = reqwest::Client::new();
    let console = |token: &str, path: &str| {
        http.get(format!("http://{}/console/api/{path}", server.http))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(console(&first, "session").await.unwrap().status(), 200);
    let listed = console(&first, "admin-tokens")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 2, "{listed}");

    // An open console stream, then the token revoked by its text from the CLI.
    let account = "me@imgroups.local";
    let mut stream = console(&first, &format!("events:stream?account={account}"))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let revoked = std::process::Command::new(crate::support::BIN)
        .args(["admin", "token", "revoke", &first, "--data", data])
        .output()
        .expect("revoke");
    assert!(revoked.status.success(), "{revoked:?}");
    let status = console(&first, "session").await.unwrap().status();
    assert_eq!(status, 401, "refused at once");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("tokenBlocked") {
        assert!(Instant::now() < deadline, "the stream did not end: {seen}");
        match tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(
        seen.contains("event: error") && seen.contains("tokenBlocked"),
        "{seen}"
    );

    // The other, revoked by id from the console itself: its own next call is refused.
    let id: i64 = ids[1].parse().unwrap();
    let resp = http
        .post(format!(
            "http://{}/console/api/admin-tokens:revoke",
            server.http
        ))
        .bearer_auth(&second)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "id": id }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(console(&second, "session").await.unwrap().status(), 401);
    // Unknown ones are named as such.
    let out = std::process::Command::new(crate::support::BIN)
        .args(["admin", "token", "revoke", "999", "--data", data])
        .output()
        .expect("revoke");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such admin token"));
}

/// The revocations file beside the database is created 0600, as the database is.
#[cfg(unix)]
#[tokio::test]
async fn the_revocations_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let token = server.add_account("x@example.com");
    cli(&["token", "revoke", &token, "--data", data]);
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("-revocations"))
        .expect("a revocations file");
    let mode = file.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{:?} is {mode:o}", file.path());
}

/// With a low open-file limit, the connection cap comes down to fit it, said once with the
/// reason; the server keeps answering writes while idle peers hold every connection place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_fits_the_open_file_limit() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("prlimit not found: skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let log_path = logs.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let launch = Launch {
        under: &["prlimit", "--nofile=256:256"],
        stderr: Some(std::process::Stdio::from(log)),
        ..Launch::default()
    };
    let server = Server::start_with(dir.path(), &[], launch);
    let (grpc, http) = (server.grpc.clone(), server.http.clone());
    let token = server.token.clone().expect("token (first start)");
    // Idle peers: far more than the open-file limit allows.
    let mut idle = Vec::new();
    for _ in 0..300 {
        if let Ok(tcp) = TcpStream::connect(&http).await {
            idle.push(tcp);
        }
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .expect("a gRPC connection still fits");
    let mut c = clients(&channel, &token);
    let chat = tokio::time::timeout(
        Duration::from_secs(10),
        c.create_group(&["alice@example.com", "bob@example.com"]),
    )
    .await
    .expect("writes still answer");
    tokio::time::timeout(Duration::from_secs(10), c.rename(&chat, "still here"))
        .await
        .expect("in time")
        .expect("rename");
    drop(idle);
    server.kill9();
    let stderr = std::fs::read_to_string(&log_path).expect("read the log");
    let lowered: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("connection cap is lowered"))
        .collect();
    assert_eq!(lowered.len(), 1, "said once: {stderr}");
    assert!(lowered[0].contains("max_connections=64"), "{}", lowered[0]);
    let over = stderr
        .lines()
        .filter(|l| l.contains("connection limit reached"))
        .count();
    assert!(over <= 3, "{over} lines about the cap in a burst: {stderr}");
}

/// The same over HTTP/1.1, one connection per stream as a browser's `EventSource` opens them
/// (the issue measured 2.05 GB for 4,000 such streams and 4,000 writes): each paused stream
/// costs a bounded amount, and every stream, once read again, gets every event in order,
/// exactly once. `IMGROUPS_PAUSED_H1_STREAMS` sets how many (200 by default, sized for a
/// debug build and the test's open-file limit). Measured so (debug build): 200 streams and
/// 2,000 writes of ~500 bytes each (~1 MB per stream not read): 1,984 KiB of growth in all,
/// ~10 KB per stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_http1_sse_streams_cost_a_bounded_amount_and_lose_nothing() {
    let streams = env_or("IMGROUPS_PAUSED_H1_STREAMS", 200);
    let writes = env_or("IMGROUPS_PAUSED_WRITES", 400);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut c = clients(&channel, &token);
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let (_, head) = c.catch_up(0).await;

    let mut opened = Vec::new();
    let addr: std::net::SocketAddr = server.http.parse().expect("http address");
    for _ in 0..streams {
        // A small receive buffer, so that what the client does not read stays in the server
        // rather than in the kernel's buffers for this connection (they would hold the whole
        // test's events on loopback).
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = socket.connect(addr).await.expect("connect");
        let gate = Arc::new(Gate::default());
        let mut io = Pausable {
            io: tcp,
            gate: gate.clone(),
        };
        let request = format!(
            "GET /v1/events:stream HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\r\n",
            server.http
        );
        io.write_all(request.as_bytes()).await.expect("request");
        // The response's head, then its first chunk (a heartbeat): the stream is registered.
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let body_at = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = io.read(&mut buf).await.expect("read the head");
            assert!(n > 0, "closed before the head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head_text = String::from_utf8_lossy(&raw[..body_at]).to_ascii_lowercase();
        assert!(head_text.starts_with("http/1.1 200"), "{head_text}");
        assert!(
            head_text.contains("transfer-encoding: chunked"),
            "{head_text}"
        );
        let mut chunked = raw.split_off(body_at);
        let mut data = Vec::new();
        while data.is_empty() {
            dechunk(&mut chunked, &mut data);
            if data.is_empty() {
                let n = io.read(&mut buf).await.expect("read the first chunk");
                assert!(n > 0, "closed before the first frame");
                chunked.extend_from_slice(&buf[..n]);
            }
        }
        gate.pause();
        opened.push((io, gate, chunked, data));
    }
    let (_, before) = server.memory_kib();

    let name = "n".repeat(200);
    for i in 0..writes {
        c.rename(&chat, &format!("{name}{i}"))
            .await
            .expect("rename");
    }
    // Let the server do whatever it will with what it could not send.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (peak, _) = server.memory_kib();
    let growth_kib = peak.saturating_sub(before);
    eprintln!(
        "{streams} paused SSE streams over HTTP/1.1, {writes} writes: growth {growth_kib} KiB \
         = {} bytes per stream",
        growth_kib * 1024 / streams as u64
    );

    let want: Vec<u64> = (head + 1..=head + writes as u64).collect();
    let readers = opened
        .into_iter()
        .map(|(mut io, gate, mut chunked, mut data)| {
            let want = want.clone();
            tokio::spawn(async move {
                gate.resume();
                let mut numbers = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    dechunk(&mut chunked, &mut data);
                    sse_ids(&mut data, &mut numbers);
                    if numbers.len() >= want.len() {
                        break;
                    }
                    let n = tokio::time::timeout(Duration::from_secs(120), io.read(&mut buf))
                        .await
                        .expect("events keep coming")
                        .expect("read");
                    assert!(n > 0, "the stream stays open");
                    chunked.extend_from_slice(&buf[..n]);
                }
                assert_eq!(numbers, want, "every event, in order, exactly once");
            })
        });
    for reader in futures::future::join_all(readers).await {
        reader.expect("reader");
    }
    assert_bounded(growth_kib, streams, "paused HTTP/1.1 streams");
}

/// Moves the data of the complete chunks at the front of `raw` (HTTP/1.1 chunked transfer
/// coding) to the end of `data`, keeping an incomplete one in `raw`.
fn dechunk(raw: &mut Vec<u8>, data: &mut Vec<u8>) {
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let line = std::str::from_utf8(&raw[..eol]).expect("a chunk size line");
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).expect("a chunk size");
        assert!(size > 0, "the stream ended");
        if raw.len() < eol + 2 + size + 2 {
            return;
        }
        data.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw.drain(..eol + 2 + size + 2);
    }
}
