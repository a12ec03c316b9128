//! Deterministic runs (`serve --seed N`) against the real binary: the same operations on two
//! fresh seeded servers give byte-identical logs (GUIDs, group names and timestamps
//! included); the controllable clock moves only with `sim clock advance` (CLI beside the
//! running server, or the console's API), never backwards, and moves every rule that reads
//! the time: message dates, the edit and unsend windows, fault time limits and idempotency
//! expiry.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use imgroups_store_tests::pg::TestDatabase;

use crate::support::{cli, Server, BIN};

pub(crate) fn data(server: &Server) -> &str {
    server.dir.to_str().expect("utf-8 dir")
}

/// A JSON request over HTTP: its status and JSON answer.
pub(crate) async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = req.send().await.expect("http call");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(crate) async fn post(server: &Server, path: &str, token: &str, body: Value) -> (u16, Value) {
    let url = format!("http://{}{path}", server.http);
    call(reqwest::Method::POST, &url, token, Some(body)).await
}

/// `POST path` that must succeed.
pub(crate) async fn ok(server: &Server, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = post(server, path, token, body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

pub(crate) async fn create_chat(server: &Server, token: &str, addresses: &[&str]) -> String {
    let answer = ok(
        server,
        "/v1/chats",
        token,
        json!({ "addresses": addresses }),
    )
    .await;
    answer["chat"]["guid"]
        .as_str()
        .expect("chat guid")
        .to_owned()
}

async fn send(server: &Server, token: &str, chat: &str, text: &str) -> Value {
    let answer = ok(
        server,
        "/v1/messages:sendText",
        token,
        json!({ "chatGuid": chat, "text": text }),
    )
    .await;
    answer["message"].clone()
}

fn target(chat: &str, message: &str) -> Value {
    json!({ "chatGuid": chat, "messageGuid": message })
}

/// A CLI command's exit code, stdout and stderr.
pub(crate) fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run imgroups");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// An account's whole log through the console's API, as the server sends it.
async fn log_of(server: &Server, admin: &str, account: &str) -> String {
    let url = format!(
        "http://{}/console/api/events?account={account}&limit=200",
        server.http
    );
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(admin)
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

/// One scripted session on a fresh server started with `--seed seed`, on a fresh SQLite
/// store or, with `database`, on that PostgreSQL database: an account and puppets create,
/// talk, edit, react and rename while the clock is moved. Answers both accounts' logs.
async fn session(seed: &str, database: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8").to_owned();
    let store: Vec<String> = match database {
        Some(url) => vec!["--database-url".into(), url.into()],
        None => vec!["--data".into(), data_dir],
    };
    let mut serve_args = vec!["--seed", seed];
    if let Some(url) = database {
        serve_args.extend(["--database-url", url]);
    }
    let server = Server::start(dir.path(), &serve_args);
    // A CLI command on this server's store.
    let on_store = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(store.iter().map(String::as_str));
        cli(&all)
    };
    let me = server.token.clone().expect("token");
    let bob = on_store(&["account", "add", "bob@example.com"]);
    let admin = on_store(&["admin", "token"]);

    let chat = create_chat(
        &server,
        &me,
        &["bob@example.com", "zoe@example.net", "carol@example.com"],
    )
    .await;
    let hello = send(&server, &me, &chat, "hello").await;
    let hello = hello["guid"].as_str().expect("guid").to_owned();
    let zoe = on_store(&["sim", "act", "zoe@example.net", "say", &chat, "hi bot"]);
    on_store(&["sim", "act", "zoe@example.net", "unsend", &chat, &zoe]);
    on_store(&["sim", "clock", "advance", "90s"]);
    // Bob sees the group under the same GUID (one group row).
    send(&server, &bob, &chat, "hey all").await;
    ok(
        &server,
        "/v1/messages:edit",
        &me,
        json!({ "target": target(&chat, &hello), "newText": "hello!" }),
    )
    .await;
    on_store(&[
        "sim",
        "act",
        "zoe@example.net",
        "react",
        &chat,
        &hello,
        "love",
    ]);
    on_store(&[
        "sim",
        "act",
        "zoe@example.net",
        "rename",
        &chat,
        "Zoe's party",
    ]);
    on_store(&["sim", "clock", "advance", "1h"]);
    let direct = create_chat(&server, &me, &["dave@example.com"]).await;
    send(&server, &me, &direct, "just us").await;
    let second = create_chat(&server, &bob, &["me@imgroups.local", "erin@example.com"]).await;
    send(&server, &bob, &second, "another group").await;

    let logs = format!(
        "{}\n{}",
        log_of(&server, &admin, "me@imgroups.local").await,
        log_of(&server, &admin, "bob@example.com").await
    );
    server.stop();
    logs
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_with_the_same_seed_give_byte_identical_logs() {
    let first = session("7", None).await;
    let second = session("7", None).await;
    assert!(
        first == second,
        "two --seed 7 runs differ:\n{first}\n---\n{second}"
    );
    // Everything happened on the controllable clock, which starts at 2026-01-01.
    assert!(first.contains("\"2026-01-01T00:00:00.000Z\""), "{first}");
    assert!(first.contains("\"2026-01-01T00:01:30.000Z\""), "{first}");
    assert!(first.contains("\"2026-01-01T01:01:30.000Z\""), "{first}");
    assert!(first.contains("Zoe's party") && first.contains("hello!"));
    // Another seed: other GUIDs and group names, the same times.
    let other = session("8", None).await;
    assert_ne!(first, other);
    let times = |log: &str| {
        log.match_indices("occurredAt")
            .map(|(i, _)| log[i..i + 40].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(times(&first), times(&other));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edit_and_unsend_windows_follow_the_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--seed", "1"]);
    let me = server.token.clone().expect("token");
    let chat = create_chat(&server, &me, &["bob@example.com", "carol@example.com"]).await;
    let first = send(&server, &me, &chat, "one").await;
    let first = first["guid"].as_str().expect("guid").to_owned();
    let second = send(&server, &me, &chat, "two").await;
    let second = second["guid"].as_str().expect("guid").to_owned();
    let advance = |by: &str| {
        let shown = cli(&["sim", "clock", "advance", by, "--data", data(&server)]);
        assert!(shown.ends_with("seed 1"), "{shown}");
        shown
    };

    // 3 minutes later: the 2-minute unsend window has closed, the 15-minute edit one has not.
    assert_eq!(advance("3m"), "2026-01-01T00:03:00Z seed 1");
    let (status, answer) = post(
        &server,
        "/v1/messages:unsend",
        &me,
        json!({ "target": target(&chat, &first) }),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errorCode"], "preconditionFailed");
    assert_eq!(
        answer["context"]["reason"], "unsendWindowClosed",
        "{answer}"
    );
    let edited = ok(
        &server,
        "/v1/messages:edit",
        &me,
        json!({ "target": target(&chat, &first), "newText": "one, edited" }),
    )
    .await;
    assert_eq!(
        edited["message"]["dateEdited"], "2026-01-01T00:03:00+00:00",
        "{edited}"
    );

    // 16 minutes after sending: the edit window has closed too.
    advance("13m");
    let (status, answer) = post(
        &server,
        "/v1/messages:edit",
        &me,
        json!({ "target": target(&chat, &second), "newText": "too late" }),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["context"]["reason"], "editWindowClosed", "{answer}");

    // A message sent now is dated now, and can be unsent a minute later.
    let third = send(&server, &me, &chat, "three").await;
    assert_eq!(third["dateCreated"], "2026-01-01T00:16:00+00:00", "{third}");
    advance("1m");
    ok(
        &server,
        "/v1/messages:unsend",
        &me,
        json!({ "target": target(&chat, third["guid"].as_str().expect("guid")) }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clock_never_goes_back_and_moves_only_when_controllable() {
    // Without --seed: the system's clock, which cannot be moved.
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = Server::start(dir.path(), &[]);
    let admin = cli(&["admin", "token", "--data", data(&plain)]);
    let shown = cli(&["sim", "clock", "show", "--data", data(&plain)]);
    assert!(shown.ends_with(" system"), "{shown}");
    let (code, _, err) = run(&["sim", "clock", "advance", "10m", "--data", data(&plain)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("serve --seed N") && err.ends_with("(preconditionFailed)"),
        "{err}"
    );
    let url = format!("http://{}/console/api/sim/clock:advance", plain.http);
    let (status, answer) = call(
        reqwest::Method::POST,
        &url,
        &admin,
        Some(json!({"by": "1m"})),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["context"]["reason"], "clockNotControllable",
        "{answer}"
    );
    plain.stop();

    // With --seed: forward only; a refused move changes nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--seed", "3"]);
    let admin = cli(&["admin", "token", "--data", data(&server)]);
    for bad in ["-5m", "-1s"] {
        let (code, _, err) = run(&["sim", "clock", "advance", bad, "--data", data(&server)]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("the clock cannot go back"), "{err}");
        assert!(err.ends_with("(invalidArgument)"), "{err}");
    }
    let (code, _, err) = run(&[
        "sim",
        "clock",
        "advance",
        "10 parsecs",
        "--data",
        data(&server),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a duration"), "{err}");
    assert_eq!(
        cli(&["sim", "clock", "show", "--data", data(&server)]),
        "2026-01-01T00:00:00Z seed 3"
    );
    let clock_url = format!("http://{}/console/api/sim/clock", server.http);
    let (status, answer) = call(
        reqwest::Method::POST,
        &format!("{clock_url}:advance"),
        &admin,
        Some(json!({"by": "-1m"})),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errorCode"], "invalidArgument", "{answer}");
    let (status, answer) = call(
        reqwest::Method::POST,
        &format!("{clock_url}:advance"),
        &admin,
        Some(json!({"by": "1h30m"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["controllable"], true);
    assert_eq!(answer["seed"], 3);
    assert_eq!(answer["now"], 1_767_225_600_000i64 + 5_400_000);
    let (_, shown) = call(reqwest::Method::GET, &clock_url, &admin, None).await;
    assert_eq!(shown, answer);

    // A restart with the same seed continues the run; another seed is refused; no seed
    // gives the store back to the system's clock.
    server.stop();
    let again = Server::start(dir.path(), &["--seed", "3"]);
    assert_eq!(
        cli(&["sim", "clock", "show", "--data", data(&again)]),
        "2026-01-01T01:30:00Z seed 3"
    );
    again.stop();
    let refused = Command::new(BIN)
        .args([
            "serve",
            "--data",
            dir.path().to_str().expect("utf-8"),
            "--seed",
            "4",
        ])
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .output()
        .expect("serve");
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("started with seed 3, not 4"), "{err}");
    let plain = Server::start(dir.path(), &[]);
    let shown = cli(&["sim", "clock", "show", "--data", data(&plain)]);
    assert!(shown.ends_with(" system"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_time_limits_and_idempotency_keys_run_out_on_the_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--seed", "5"]);
    let me = server.token.clone().expect("token");
    let chat = create_chat(&server, &me, &["bob@example.com", "carol@example.com"]).await;

    cli(&[
        "sim",
        "fault",
        "add",
        "me@imgroups.local",
        "--method",
        "SetDisplayName",
        "--code",
        "databaseError",
        "--for-secs",
        "60",
        "--data",
        data(&server),
    ]);
    let listed = cli(&["sim", "fault", "list", "--data", data(&server)]);
    assert!(listed.contains("2026-01-01T00:01:00Z"), "{listed}");
    let rename = json!({ "chatGuid": chat, "displayName": "renamed" });
    // Faults made by the CLI reach the server within a quarter of a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, answer) =
            post(&server, "/v1/groups:setDisplayName", &me, rename.clone()).await;
        if status == 503 {
            assert_eq!(answer["errorCode"], "databaseError");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fault never applied: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Wall-clock time does not run the fault out; the controllable clock does, at once.
    cli(&["sim", "clock", "advance", "59s", "--data", data(&server)]);
    let (status, _) = post(&server, "/v1/groups:setDisplayName", &me, rename.clone()).await;
    assert_eq!(status, 503);
    cli(&["sim", "clock", "advance", "1s", "--data", data(&server)]);
    ok(&server, "/v1/groups:setDisplayName", &me, rename).await;

    // An idempotency key is remembered for a day of the store's time (the default TTL).
    let keyed = json!({ "chatGuid": chat, "text": "once", "clientMessageId": "k-1" });
    let first = ok(&server, "/v1/messages:sendText", &me, keyed.clone()).await;
    cli(&["sim", "clock", "advance", "23h", "--data", data(&server)]);
    let repeat = ok(&server, "/v1/messages:sendText", &me, keyed.clone()).await;
    assert_eq!(
        first, repeat,
        "a repeat within the TTL returns the original answer"
    );
    cli(&["sim", "clock", "advance", "2h", "--data", data(&server)]);
    let later = ok(&server, "/v1/messages:sendText", &me, keyed).await;
    assert_ne!(
        first["message"]["guid"], later["message"]["guid"],
        "{later}"
    );
    assert_eq!(later["message"]["dateCreated"], "2026-01-02T01:01:00+00:00");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeded_run_on_postgresql_gives_the_log_it_gives_on_sqlite() {
    let Some(db) = TestDatabase::create("clock_seeded") else {
        return;
    };
    let on_postgres = session("7", Some(&db.url)).await;
    let on_sqlite = session("7", None).await;
    assert!(
        on_postgres == on_sqlite,
        "the stores differ:\n{on_postgres}\n---\n{on_sqlite}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typing_indicator_runs_out_after_a_minute_of_the_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--seed", "2"]);
    let me = server.token.clone().expect("token");
    let bob = server.add_account("bob@example.com");
    let admin = cli(&["admin", "token", "--data", data(&server)]);
    let chat = create_chat(&server, &me, &["bob@example.com", "carol@example.com"]).await;
    ok(
        &server,
        "/v1/chats:setTyping",
        &bob,
        json!({ "chatGuid": chat, "isTyping": true }),
    )
    .await;
    let typing = async || {
        let url = format!(
            "http://{}/console/api/conversation?account=me@imgroups.local&chat={}",
            server.http,
            chat.replace(';', "%3B").replace('+', "%2B")
        );
        let (status, answer) = call(reqwest::Method::GET, &url, &admin, None).await;
        assert_eq!(status, 200, "{answer}");
        answer["typing"].clone()
    };
    assert_eq!(typing().await, json!(["bob@example.com"]));
    cli(&["sim", "clock", "advance", "59s", "--data", data(&server)]);
    assert_eq!(typing().await, json!(["bob@example.com"]));
    cli(&["sim", "clock", "advance", "1s", "--data", data(&server)]);
    assert_eq!(typing().await, json!([]));
}

/// A scenario with an account, puppets and a wait, for `sim play`.
const SCENARIO: &str = r#"
[[step]]
as = "me@imgroups.local"
do = "create"
id = "trip"
addresses = ["zoe@example.net", "alice@example.com", "erin@example.com"]
name = "Road trip"

[[step]]
after = "30s"
as = "zoe@example.net"
do = "say"
chat = "trip"
text = "who is driving?"
id = "question"

[[step]]
as = "me@imgroups.local"
do = "reply"
chat = "trip"
message = "question"
text = "I am!"

[[step]]
id = "answer"
wait = { for = "message", from = "me@imgroups.local", chat = "trip", matching = "I am", timeout = "5s" }

[[step]]
at = "10m"
as = "zoe@example.net"
do = "react"
chat = "trip"
message = "answer"
reaction = "love"

[[step]]
as = "alice@example.com"
do = "add"
chat = "trip"
addresses = ["carol@example.com", "dave@example.com"]
"#;

/// Plays [`SCENARIO`] on a fresh `--seed 7` server: what it printed, and both accounts' logs.
async fn played() -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("trip.toml");
    std::fs::write(&scenario, SCENARIO).expect("scenario");
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir, &["--seed", "7"]);
    server.add_account("alice@example.com");
    let admin = cli(&["admin", "token", "--data", data(&server)]);
    let (code, out, err) = run(&[
        "sim",
        "play",
        scenario.to_str().expect("utf-8"),
        "--data",
        data(&server),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    // The scenario's times moved the controllable clock (nothing slept): ten minutes in all.
    let clock = cli(&["sim", "clock", "show", "--data", data(&server)]);
    assert_eq!(clock.trim(), "2026-01-01T00:10:00Z seed 7", "{out}");
    let logs = format!(
        "{}\n{}",
        log_of(&server, &admin, "me@imgroups.local").await,
        log_of(&server, &admin, "alice@example.com").await
    );
    server.stop();
    (out, logs)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_played_twice_under_a_seed_gives_identical_logs() {
    let (first_out, first) = played().await;
    let (_, second) = played().await;
    assert!(
        first.contains("Road trip") && first.contains("I am!"),
        "{first}"
    );
    assert!(first == second, "two runs differ:\n{first}\n---\n{second}");
    // Each step at its time on the clock: zoe's question 30 s in, her tapback at 10 min.
    assert!(first_out.contains(" 30.000s]"), "{first_out}");
    assert!(first_out.contains(" 600.000s]"), "{first_out}");
    assert!(first.contains("2026-01-01T00:00:30"), "{first}");
    assert!(first.contains("2026-01-01T00:10:00"), "{first}");
    // What play printed names the same GUIDs, the first of the seed's draws.
    let chat = imgroups_core::clock::group_identifier(imgroups_core::clock::seeded_id(7, 1));
    assert!(first_out.contains(&chat), "{first_out}");
}
