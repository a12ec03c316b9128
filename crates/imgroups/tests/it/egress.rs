//! Webhooks cannot be turned against the server's own network: https only by default, no
//! loopback, private, link-local or metadata destinations unless allowed, checked when an
//! endpoint is registered and again at every delivery, with failure texts that do not tell a
//! closed port from a silent one; and a cap on endpoints per account.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{cli, clients, Server};

const LOCAL: [&str; 3] = ["--webhook-allow-http", "--webhook-allow-net", "127.0.0.0/8"];

async fn add(server: &Server, url: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/webhooks", server.http))
        .bearer_auth(server.token.as_deref().unwrap())
        .header("content-type", "application/json")
        .body(json!({ "url": url }).to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Stops the server off the runtime: the client connection's task must stay free to answer
/// the server's GOAWAY, or the graceful shutdown waits for the keepalive to give up on it.
async fn stop(server: Server) {
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
}

#[tokio::test]
async fn special_purpose_and_plain_http_destinations_are_refused_at_registration() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for (url, says) in [
        ("http://example.com/hook", "only https://"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "special-purpose",
        ),
        ("https://127.0.0.1:22/", "special-purpose"),
        ("https://localhost:22/", "special-purpose"),
        ("https://10.0.0.1/hook", "special-purpose"),
        ("https://[::1]/hook", "special-purpose"),
        ("https://[::ffff:127.0.0.1]/hook", "special-purpose"),
        ("https://[fd00:ec2::254]/", "special-purpose"),
    ] {
        let (status, body) = add(&server, url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["errorCode"], "invalidArgument", "{url}: {body}");
        assert_eq!(body["context"]["field"], "url", "{url}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(says), "{url}: {message}");
    }
    let list = cli(&["webhook", "list", "--data", dir.path().to_str().unwrap()]);
    assert!(list.is_empty(), "nothing registered: {list}");
    server.stop();
}

/// An endpoint the API would refuse, registered by the operator with the CLI (which does not
/// know the server's policy): every delivery is refused before a connection is made, with a
/// `lastError` that says so.
#[tokio::test]
async fn deliveries_are_checked_again_and_never_connect_to_a_refused_address() {
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    receiver.set_nonblocking(true).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || loop {
        if let Ok((_conn, _)) = receiver.accept() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(5));
    });

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--webhook-backoff-ms",
            "10",
            "--webhook-max-backoff-ms",
            "20",
        ],
    );
    let url = format!("http://127.0.0.1:{port}/hook");
    cli(&[
        "webhook",
        "add",
        &url,
        "--account",
        "me@imgroups.local",
        "--data",
        data,
    ]);
    let channel = server.channel().await;
    let mut c = clients(&channel, server.token.as_deref().unwrap());
    let chat = c.create_group(&["a@example.com", "b@example.com"]).await;
    c.rename(&chat, "an event to deliver").await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let line = cli(&["webhook", "list", "--json", "--data", data]);
        let listed: Value = serde_json::from_str(&line).unwrap();
        if listed["failures"].as_u64().unwrap_or(0) >= 2 {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "no failed delivery recorded: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        listed["lastError"],
        "destination not allowed by the server's webhook policy"
    );
    assert_eq!(listed["cursor"], 0);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no connection was made"
    );
    drop((c, channel));
    stop(server).await;
}

/// A closed port and a port that never answers read the same in `lastError`.
#[tokio::test]
async fn failures_do_not_tell_a_closed_port_from_a_silent_one() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    // Accepts (the kernel does, from the backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();

    let dir = tempfile::tempdir().unwrap();
    let mut args = LOCAL.to_vec();
    args.extend(["--webhook-timeout-ms", "300", "--webhook-backoff-ms", "10"]);
    args.extend(["--webhook-max-backoff-ms", "20"]);
    let server = Server::start(dir.path(), &args);
    for port in [closed_port, silent_port] {
        let (status, body) = add(&server, &format!("http://127.0.0.1:{port}/hook")).await;
        assert_eq!(status, 200, "{body}");
    }
    let channel = server.channel().await;
    let mut c = clients(&channel, server.token.as_deref().unwrap());
    let chat = c.create_group(&["a@example.com", "b@example.com"]).await;
    c.rename(&chat, "an event to deliver").await.unwrap();

    let data = dir.path().to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let errors = loop {
        let out = cli(&["webhook", "list", "--json", "--data", data]);
        let errors: Vec<String> = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| v["lastError"].as_str().map(str::to_owned))
            .collect();
        if errors.len() == 2 {
            break errors;
        }
        assert!(Instant::now() < deadline, "failures not recorded: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(errors[0], errors[1]);
    assert_eq!(errors[0], "no answer (connection failed or timed out)");
    drop((c, channel, silent));
    stop(server).await;
}

#[tokio::test]
async fn an_account_has_at_most_the_configured_number_of_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = LOCAL.to_vec();
    args.extend(["--webhook-max-per-account", "2"]);
    let server = Server::start(dir.path(), &args);
    for i in 0..2 {
        let (status, body) = add(&server, &format!("http://127.0.0.1:9/hook{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = add(&server, "http://127.0.0.1:9/hook3").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorCode"], "preconditionFailed", "{body}");
    assert_eq!(body["context"]["limit"], "2", "{body}");
    server.stop();
}
