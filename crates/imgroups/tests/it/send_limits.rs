//! `serve --limits FILE` against the real binary: each send limit refuses with the official
//! SDK's code (HTTP 429, `RESOURCE_EXHAUSTED`), a `retryafter` context entry and a
//! `Retry-After` header, and the same send succeeds once the controllable clock has moved
//! by that many seconds. Each limit is tried on an account of its own, so one line's history
//! never trips another's limit.

use serde_json::{json, Value};

use crate::clock::{create_chat, data, ok, post, run};
use crate::support::{cli, Server};

/// Small numbers, so each limit is reached in a few sends.
const LIMITS: &str = "\
messages_per_day = 4
burst_messages = 2
burst_window_secs = 10
recipients_per_day = 2
new_contacts_per_day = 1
duplicate_messages = 2
duplicate_window_secs = 3600
";

struct Line<'s> {
    server: &'s Server,
    token: String,
}

impl Line<'_> {
    async fn chat_with(&self, address: &str) -> String {
        create_chat(self.server, &self.token, &[address]).await
    }

    async fn send(&self, chat: &str, text: &str) -> (u16, Value) {
        let body = json!({ "chatGuid": chat, "text": text });
        post(self.server, "/v1/messages:sendText", &self.token, body).await
    }

    async fn sends(&self, chat: &str, text: &str) {
        ok(
            self.server,
            "/v1/messages:sendText",
            &self.token,
            json!({ "chatGuid": chat, "text": text }),
        )
        .await;
    }

    /// A refused send: its `errorCode` and retry hint in seconds.
    async fn refused(&self, chat: &str, text: &str) -> (String, u64) {
        let (status, answer) = self.send(chat, text).await;
        assert_eq!(status, 429, "{answer}");
        assert_eq!(answer["code"], "resource_exhausted", "{answer}");
        assert_eq!(answer["retryable"], true, "{answer}");
        let retry = answer["context"]["retryafter"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("a retry hint");
        (
            answer["errorCode"].as_str().expect("code").to_owned(),
            retry,
        )
    }
}

fn advance(server: &Server, secs: u64) {
    cli(&[
        "sim",
        "clock",
        "advance",
        &format!("{secs}s"),
        "--data",
        data(server),
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_send_limit_answers_with_the_sdk_code_and_lifts_after_its_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("limits.toml");
    std::fs::write(&file, LIMITS).expect("limits file");
    let data_dir = dir.path().join("data");
    let server = Server::start(
        &data_dir,
        &["--seed", "1", "--limits", file.to_str().expect("utf-8")],
    );
    let line = |address: &str| Line {
        server: &server,
        token: server.add_account(address),
    };

    // Burst: 2 in 10 s; the third waits for the first to leave the window.
    let burst = line("burst@example.com");
    let chat = burst.chat_with("x@example.com").await;
    burst.sends(&chat, "one").await;
    burst.sends(&chat, "two").await;
    let (code, wait) = burst.refused(&chat, "three").await;
    assert_eq!((code.as_str(), wait), ("burstRateExceeded", 10));
    // Over HTTP the hint is also the standard header, which the SDK's HTTP transport reads.
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/messages:sendText", server.http))
        .bearer_auth(&burst.token)
        .header("content-type", "application/json")
        .body(json!({ "chatGuid": chat, "text": "three" }).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.headers()["retry-after"], "10");
    // A chat the line cannot see is refused as such, whatever the limits would say.
    let (status, answer) = burst.send("any;+;chat000000000000000001", "three").await;
    assert_eq!(
        (status, &answer["errorCode"]),
        (404, &json!("chatNotFound")),
        "{answer}"
    );
    advance(&server, 9);
    assert_eq!(
        burst.refused(&chat, "three").await,
        ("burstRateExceeded".into(), 1)
    );
    advance(&server, 1);
    burst.sends(&chat, "three").await;

    // Daily: 4 in 24 h (the same line, 10 s after its first message).
    burst.sends(&chat, "four").await;
    let (code, wait) = burst.refused(&chat, "five").await;
    assert_eq!((code.as_str(), wait), ("dailyLimitExceeded", 86_400 - 10));
    advance(&server, wait);
    burst.sends(&chat, "five").await;

    // Duplicates: the same text twice an hour (spaced out, so the burst limit stays quiet).
    let dup = line("dup@example.com");
    let chat = dup.chat_with("x@example.com").await;
    dup.sends(&chat, "promo").await;
    advance(&server, 10);
    dup.sends(&chat, "promo").await;
    advance(&server, 10);
    let (code, wait) = dup.refused(&chat, "promo").await;
    assert_eq!((code.as_str(), wait), ("contentDuplicateExceeded", 3580));
    dup.sends(&chat, "something else").await;
    advance(&server, wait);
    dup.sends(&chat, "promo").await;

    // New contacts: 1 person never messaged before per day.
    let new = line("new@example.com");
    let first = new.chat_with("p@example.com").await;
    let second = new.chat_with("q@example.com").await;
    new.sends(&first, "hello p").await;
    advance(&server, 60);
    let (code, wait) = new.refused(&second, "hello q").await;
    assert_eq!((code.as_str(), wait), ("newContactThrottled", 86_400 - 60));
    new.sends(&first, "p is not new").await;
    advance(&server, wait);
    new.sends(&second, "hello q").await;

    // Recipients: 2 different people per day, old contacts included (one new person a day:
    // x on day one, y on day two).
    let many = line("many@example.com");
    let (x, y, z) = (
        many.chat_with("x@example.com").await,
        many.chat_with("y@example.com").await,
        many.chat_with("z@example.com").await,
    );
    many.sends(&x, "day one").await;
    advance(&server, 86_400);
    many.sends(&y, "day two").await;
    advance(&server, 86_400);
    many.sends(&x, "day three, x").await;
    advance(&server, 10);
    many.sends(&y, "day three, y").await;
    advance(&server, 10);
    let (code, wait) = many.refused(&z, "day three, z").await;
    assert_eq!(
        (code.as_str(), wait),
        ("recipientLimitExceeded", 86_400 - 20)
    );
    advance(&server, wait);
    many.sends(&z, "day three, z").await;

    // Puppets are people, not lines: never limited (x writes to dup, as x sees that chat).
    for text in ["a", "b", "c", "d", "e"] {
        cli(&[
            "sim",
            "act",
            "x@example.com",
            "say",
            "any;-;dup@example.com",
            text,
            "--data",
            data(&server),
        ]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_limits_file_stops_serve_with_a_precise_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("typo.toml", "mesages_per_day = 3\n", "mesages_per_day"),
        ("half.toml", "burst_messages = 3\n", "go together"),
        ("zero.toml", "messages_per_day = 0\n", "at least 1"),
    ];
    for (name, text, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        let (code, _, err) = run(&[
            "serve",
            "--data",
            dir.path().join("data").to_str().expect("utf-8"),
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--limits",
            file.to_str().expect("utf-8"),
        ]);
        assert_ne!(code, 0, "{name}");
        assert!(
            err.contains(expected) && err.contains(name),
            "{name}: {err}"
        );
    }
    let data_dir = dir.path().join("data");
    let (code, _, err) = run(&[
        "serve",
        "--data",
        data_dir.to_str().expect("utf-8"),
        "--limits",
        "/nonexistent/limits.toml",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read the limits file"), "{err}");
    // The refused starts made no store.
    assert!(!data_dir.join("imgroups.db").exists());
}
