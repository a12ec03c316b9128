//! Testing a bot, end to end, as docs/testing.md tells users to: a server, a tiny welcome bot
//! written with the Rust SDK, a scenario played against it (`imgroups sim play`), and what
//! the bot said checked with `imgroups sim expect`, the console API's `sim:expect` and the
//! SDK's `events().expect(…)`. Also the exit codes a shell test relies on.

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use imgroups_client::expect::{Expectation, Expected, Kind};
use imgroups_client::{Change, Client, EventFilter, GroupChange, MemoryCheckpoint, MessageChange};

use crate::support::{cli, Server, BIN};

const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/fixtures/welcome.toml"
);

/// The bot under test: greets whoever says hi, and whoever joins a group it is in.
async fn welcome_bot(client: Client) -> imgroups_client::Result<()> {
    let mut events = client
        .events()
        .resumable(EventFilter::all(), MemoryCheckpoint::new(0));
    while let Some(delivery) = events.next().await {
        let delivery = delivery?;
        let event = delivery.event().clone();
        let greet = match &event.change {
            _ if event.is_from_me => None,
            Change::Message(MessageChange::Received { message })
                if message
                    .text
                    .as_deref()
                    .is_some_and(|t| t.to_lowercase().starts_with("hi")) =>
            {
                event.actor.as_ref().map(|a| a.address.to_string())
            }
            Change::Group(GroupChange::ParticipantAdded { participant }) => {
                Some(participant.address.to_string())
            }
            _ => None,
        };
        if let Some(who) = greet {
            let text = format!("Welcome, {who}!");
            client
                .messages()
                .send_text(&event.chat_guid, &text, Default::default())
                .await?;
        }
        delivery.ack().await?;
    }
    Ok(())
}

/// Runs the binary; its exit code, stdout and stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run imgroups");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_scenario_drives_a_bot_and_expect_checks_what_it_said() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let data = server.dir.to_str().unwrap().to_owned();
    let token = server.add_account("bot@example.com");
    let client = Client::builder()
        .address(format!("http://{}", server.grpc))
        .token(token)
        .build()
        .expect("client");
    let bot = tokio::spawn(welcome_bot(client.clone()));

    // The timeline, without touching anything.
    let (code, timeline, _) = run(&["sim", "play", SCENARIO, "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(timeline.lines().count(), 6, "{timeline}");
    assert!(
        timeline.contains("zoe@example.net say \"hi bot\" in party"),
        "{timeline}"
    );

    let play = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || run(&["sim", "play", SCENARIO, "--data", &data]))
    };
    let (code, played, stderr) = play.await.expect("play");
    assert_eq!(code, 0, "{played}\n{stderr}");
    assert_eq!(played.lines().count(), 6, "{played}");
    assert!(
        played.contains("message \"Welcome, zoe@example.net!\" by me"),
        "{played}"
    );

    // What the bot said, from the CLI: met at once, as the log has it.
    let (code, out, err) = run(&[
        "sim",
        "expect",
        "bot@example.com",
        "--kind",
        "message",
        "--matching",
        "Welcome, carol",
        "--data",
        &data,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("message \"Welcome, carol@example.com!\" by me"),
        "{out}"
    );
    let (code, out, _) = run(&[
        "sim",
        "expect",
        "bot@example.com",
        "--kind",
        "message",
        "--matching",
        "carol",
        "--json",
        "--data",
        &data,
    ]);
    assert_eq!(code, 0);
    let event: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(event["type"], "message.received");
    assert_eq!(event["isFromMe"], true);

    // Not met: exit 1, and stderr shows what the log had instead (zoe's hi among it).
    let (code, _, err) = run(&[
        "sim",
        "expect",
        "bot@example.com",
        "--kind",
        "rename",
        "--matching",
        "Bot party",
        "--timeout",
        "200ms",
        "--data",
        &data,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bot@example.com did not do a rename matching /Bot party/"),
        "{err}"
    );
    assert!(
        err.contains("message \"hi bot\" by zoe@example.net"),
        "{err}"
    );
    // Others' actions never count as the bot's.
    let (code, _, _) = run(&[
        "sim",
        "expect",
        "bot@example.com",
        "--matching",
        "^hi bot$",
        "--timeout",
        "100ms",
        "--data",
        &data,
    ]);
    assert_eq!(code, 1);
    // `--since now` skips what is already in the log.
    let (code, _, _) = run(&[
        "sim",
        "expect",
        "bot@example.com",
        "--matching",
        "carol",
        "--since",
        "now",
        "--timeout",
        "100ms",
        "--data",
        &data,
    ]);
    assert_eq!(code, 1);
    // A cursor (the sequence of the last greeting) waits for what comes after it, live.
    let since = event["sequence"].as_u64().expect("sequence").to_string();
    let waiting = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            run(&[
                "sim",
                "expect",
                "bot@example.com",
                "--kind",
                "message",
                "--matching",
                "dave",
                "--since",
                &since,
                "--timeout",
                "20s",
                "--data",
                &data,
            ])
        })
    };
    let chat = played
        .lines()
        .find_map(|l| l.split(" -> ").nth(1).filter(|g| g.starts_with("any;+;")))
        .expect("the group's GUID in play's output")
        .to_owned();
    cli(&[
        "sim",
        "act",
        "erin@example.com",
        "add",
        &chat,
        "dave@example.com",
        "--data",
        &data,
    ]);
    let (code, out, err) = waiting.await.expect("expect");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Welcome, dave@example.com!"), "{out}");

    // Usage: exit 2.
    assert_eq!(
        run(&["sim", "expect", "bot@example.com", "--kind", "dance"]).0,
        2
    );
    let (code, _, err) = run(&["sim", "expect", "nobody@example.com", "--data", &data]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&[
        "sim",
        "expect",
        "bot@example.com",
        "--matching",
        "(",
        "--data",
        &data,
    ]);
    assert_eq!((code, err.contains("bad pattern")), (2, true), "{err}");

    // The same through the console API, with an admin token.
    let admin = cli(&["admin", "token", "--data", &data]);
    let http = reqwest::Client::new();
    let ask = |body: serde_json::Value| {
        http.post(format!("http://{}/console/api/sim:expect", server.http))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let answer = ask(serde_json::json!({
        "account": "bot@example.com", "kind": "message", "chat": chat, "matching": "Welcome, zoe"
    }))
    .await
    .expect("post")
    .text()
    .await
    .expect("body");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(answer["matched"], true, "{answer}");
    assert_eq!(answer["event"]["isFromMe"], true);
    let cursor = answer["cursor"].as_u64().expect("cursor");
    let answer = ask(serde_json::json!({
        "account": "bot@example.com", "kind": "leave", "since": cursor, "timeoutMs": 200
    }))
    .await
    .expect("post")
    .text()
    .await
    .expect("body");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(answer["matched"], false, "{answer}");
    assert!(!answer["seen"].as_array().expect("seen").is_empty());
    let refused = ask(serde_json::json!({"account": "bot@example.com", "kind": "dance"}))
        .await
        .expect("post");
    assert_eq!(refused.status(), 400);

    // And through the Rust SDK, with the bot's own token.
    let welcome =
        Expectation::new(Kind::Message, Some(&chat), Some("^Welcome, alice")).expect("ok");
    let found = client
        .events()
        .expect(&welcome, 0, Duration::from_millis(300))
        .await
        .expect("expect");
    let Expected::NotMet { seen } = found else {
        panic!("the bot never greeted alice");
    };
    assert!(!seen.is_empty());
    let zoe = Expectation::new(Kind::Message, Some(&chat), Some("^Welcome, zoe")).expect("ok");
    let found = client
        .events()
        .expect(&zoe, 0, Duration::from_secs(10))
        .await
        .expect("expect");
    assert!(found.matched().is_some_and(|e| e.is_from_me));

    bot.abort();
}

#[test]
fn a_bad_scenario_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[step]]\nas = \"zoe@example.net\"\ndo = \"say\"\nchat = \"party\"\ntext = \"hi\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["sim", "play", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml:4:8: no chat is named \"party\""),
        "{err}"
    );
}
