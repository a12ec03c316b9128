//! The client subcommands (`groups`, `chats`, `events tail`) run as the real binary against
//! a real `imgroups serve` on a temporary data directory.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, lines_of, BIN};

/// `imgroups serve` (the test harness's, [`support::Server`]) on a temporary data directory,
/// with what the client commands need: its URL and the default account's token.
struct Server {
    /// Dropped first (fields drop in order): the process stops before its directory goes.
    _serve: support::Server,
    dir: tempfile::TempDir,
    url: String,
    token: String,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let serve = support::Server::start(dir.path(), &[]);
        Server {
            url: format!("http://{}", serve.grpc),
            token: serve.token.clone().unwrap(),
            _serve: serve,
            dir,
        }
    }

    /// `imgroups ARGS` with the server and token in the environment.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("IMGROUPS_SERVER", &self.url)
            .env("IMGROUPS_TOKEN", &self.token)
            .env_remove("IMGROUPS_DATA")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn add_account(&self, address: &str) -> String {
        let out = Command::new(BIN)
            .args(["account", "add", address, "--data"])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn group(&self) -> String {
        self.ok(&["chats", "create", "bob@example.com", "carol@example.com"])
            .trim()
            .to_owned()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn png(path: &Path) {
    std::fs::write(path, imgroups_testkit::tiny_png()).unwrap();
}

/// Waits for a child with a deadline.
fn wait(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < within, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_operation() {
    let server = Server::start();
    assert_eq!(server.ok(&["chats", "count"]).trim(), "0");
    let chat = server.group();
    assert!(chat.starts_with("any;+;chat"), "{chat}");

    let out = server.ok(&["groups", "rename", &chat, "Weekend"]);
    assert!(out.contains("name\tWeekend"), "{out}");
    let out = server.ok(&[
        "groups",
        "add",
        &chat,
        "dave@example.com",
        "+1 555 123 4567",
    ]);
    assert!(out.contains("+15551234567"), "{out}");
    let out = server.ok(&["groups", "remove", &chat, "+15551234567"]);
    assert!(!out.contains("+15551234567"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let icon = dir.path().join("icon.png");
    let back = dir.path().join("back.png");
    png(&icon);
    server.ok(&["groups", "icon", "set", &chat, icon.to_str().unwrap()]);
    server.ok(&["groups", "icon", "get", &chat, "-o", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&icon).unwrap(), std::fs::read(&back).unwrap());
    server.ok(&["groups", "icon", "rm", &chat]);
    let out = server.run(&["groups", "icon", "get", &chat, "-o", back.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("(groupIconNotFound)"),
        "{}",
        stderr(&out)
    );

    let out = server.ok(&["chats", "get", &chat]);
    assert!(out.contains(&format!("guid\t{chat}")), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&server.ok(&["chats", "get", &chat, "--json"])).unwrap();
    assert_eq!(json["displayName"], "Weekend");
    assert_eq!(server.ok(&["chats", "count"]).trim(), "1");

    server.ok(&["groups", "leave", &chat]);
    assert_eq!(server.ok(&["chats", "count"]).trim(), "0");

    // Flags instead of the environment.
    let out = Command::new(BIN)
        .args([
            "chats",
            "count",
            "--server",
            &server.url,
            "--token",
            &server.token,
        ])
        .env_remove("IMGROUPS_SERVER")
        .env_remove("IMGROUPS_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn errors_are_one_line_with_documented_exit_codes() {
    let server = Server::start();

    // 4: not found.
    let missing = "any;+;chat000000000000000001";
    let out = server.run(&["chats", "get", missing]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        stderr(&out),
        format!("error: chat {missing} not found (chatNotFound)\n")
    );

    // 3: authentication.
    let out = server
        .cmd(&["chats", "count"])
        .env("IMGROUPS_TOKEN", "nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).ends_with("(unauthenticated)\n"),
        "{}",
        stderr(&out)
    );

    // 2: usage, from clap and from malformed identifiers.
    assert_eq!(server.run(&["groups", "rename"]).status.code(), Some(2));
    let out = server.run(&["groups", "rename", "not-a-guid", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: invalid chat guid"),
        "{}",
        stderr(&out)
    );
    let chat = server.group();
    assert_eq!(
        server.run(&["groups", "add", &chat, "bob"]).status.code(),
        Some(2)
    );

    // 1: the operation failed.
    let out = server.run(&["groups", "add", &chat, "bob@example.com"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with("(preconditionFailed)\n"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);

    // 5: the server cannot be reached.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = server
        .cmd(&["chats", "count"])
        .env("IMGROUPS_SERVER", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}

#[test]
fn events_tail_catches_up_then_follows_and_exits_cleanly_on_a_closed_pipe() {
    let server = Server::start();
    let chat = server.group();
    server.ok(&["groups", "rename", &chat, "One"]);
    server.ok(&["groups", "rename", &chat, "Two"]);

    // --from 1 --json: event 2 from the log, then live.
    let mut tail = server
        .cmd(&["events", "tail", "--from", "1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(tail.stdout.take().unwrap());
    let first: serde_json::Value =
        serde_json::from_str(&lines.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(first["sequence"], 2);
    assert_eq!(first["type"], "group.changed");
    assert_eq!(first["change"]["displayName"], "Two");
    server.ok(&["groups", "rename", &chat, "Three"]);
    let live: serde_json::Value =
        serde_json::from_str(&lines.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(live["sequence"], 3);

    // `| head`: the reader goes away; the next write makes tail notice and exit 0.
    drop(lines);
    std::thread::sleep(Duration::from_millis(100)); // the reader thread closes the pipe
    server.ok(&["groups", "rename", &chat, "Four"]);
    server.ok(&["groups", "rename", &chat, "Five"]);
    assert!(wait(&mut tail, Duration::from_secs(30)).success());

    // Live only, human-readable, filtered to the chat.
    let other = server
        .ok(&["chats", "create", "dave@example.com", "erin@example.com"])
        .trim()
        .to_owned();
    let mut tail = server
        .cmd(&["events", "tail", "--chat", &chat])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(tail.stdout.take().unwrap());
    // The subscription is open once tail is running; retry the write until a line shows.
    let mut line = None;
    for i in 0..50 {
        server.ok(&["groups", "rename", &other, &format!("Other {i}")]);
        server.ok(&["groups", "rename", &chat, &format!("Mine {i}")]);
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
            line = Some(l);
            break;
        }
    }
    let line = line.expect("a live line");
    assert!(
        line.contains(&chat) && line.contains("displayNameChanged"),
        "{line}"
    );
    assert!(line.contains("by me"), "{line}");
    assert!(!line.contains(&other), "{line}");
    let _ = tail.kill();
    let _ = tail.wait();

    // Events by someone else show who did it.
    let bob = server.add_account("bob@example.com");
    let out = server
        .cmd(&["groups", "rename", &chat, "Bob's"])
        .env("IMGROUPS_TOKEN", &bob)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `mac messages` checks its library before it touches Messages: a missing one is named, on one
/// line, exit 1 (the rest of the launcher is tested against a scripted system in
/// imgroups-chatdb, since it needs a Mac).
#[test]
fn mac_messages_names_a_missing_helper_library() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("BlueBubblesHelper.dylib");
    let out = Command::new(BIN)
        .args(["mac", "messages", "--helper-dylib"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.ends_with("(internalError)\n"), "{text}");
    assert_eq!(text.lines().count(), 1);
    assert!(out.stdout.is_empty());
}

#[test]
fn messages_chats_and_addresses() {
    let server = Server::start();
    let chat = server.group();

    // send: the GUID, an upper-case UUID.
    let first = server.ok(&["messages", "send", &chat, "Dinner at 8?"]);
    let first = first.trim();
    assert_eq!(first.len(), 36, "{first}");
    let reply = server.ok(&[
        "messages",
        "send",
        &chat,
        "Or 9",
        "--reply-to",
        first,
        "--subject",
        "time",
    ]);
    let reply = reply.trim();
    let out = server.ok(&["messages", "get", reply]);
    assert!(out.contains(&format!("guid\t{reply}\n")), "{out}");
    assert!(out.contains(&format!("chat\t{chat}\n")), "{out}");
    assert!(out.contains("from\tme\n"), "{out}");
    assert!(out.contains("text\tOr 9\n"), "{out}");
    assert!(out.contains("subject\ttime\n"), "{out}");
    assert!(out.contains(&format!("replyTo\t{first}\n")), "{out}");

    // list: newest first, GUID, time, sender, text.
    let out = server.ok(&["messages", "list", &chat]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with(&format!("{reply}\t")), "{out}");
    assert!(lines[0].ends_with("\tme\tOr 9"), "{out}");
    assert!(lines[1].ends_with("\tme\tDinner at 8?"), "{out}");

    // One page at a time: the next page's token on stderr; --all reads them all.
    let out = server.run(&["messages", "list", &chat, "--page-size", "1"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let token = stderr(&out)
        .trim()
        .strip_prefix("more: --page-token ")
        .and_then(|rest| rest.strip_suffix(" (or --all)"))
        .unwrap_or_else(|| panic!("{}", stderr(&out)))
        .to_owned();
    let out = server.run(&[
        "messages",
        "list",
        &chat,
        "--page-size",
        "1",
        "--page-token",
        &token,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("\tme\tDinner at 8?\n"));
    assert_eq!(stderr(&out), "", "the last page has no next");
    let out = server.ok(&["messages", "list", &chat, "--page-size", "1", "--all"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let json: serde_json::Value = serde_json::from_str(&server.ok(&[
        "messages",
        "list",
        &chat,
        "--page-size",
        "1",
        "--json",
    ]))
    .unwrap();
    assert_eq!(json["messages"][0]["text"], "Or 9");
    assert!(json["nextPageToken"].is_string());
    let out = server.ok(&[
        "messages",
        "list",
        &chat,
        "--all",
        "--page-size",
        "1",
        "--json",
    ]);
    let texts: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].to_string())
        .collect();
    assert_eq!(texts, ["\"Or 9\"", "\"Dinner at 8?\""]);
    let out = server.ok(&["messages", "recent", "--page-size", "1"]);
    assert!(out.starts_with(reply), "{out}");

    // Tapbacks, edit, unsend.
    let out = server.ok(&["messages", "react", &chat, first, "love"]);
    assert!(out.contains("reactions\tlove by me\n"), "{out}");
    let out = server.ok(&["messages", "react", &chat, first, "🎉"]);
    assert!(out.contains("reactions\t🎉 by me\n"), "{out}");
    let out = server.ok(&["messages", "unreact", &chat, first, "🎉"]);
    assert!(!out.contains("reactions"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&server.ok(&[
        "messages",
        "edit",
        &chat,
        first,
        "Dinner at 9?",
        "--json",
    ]))
    .unwrap();
    assert_eq!(json["text"], "Dinner at 9?");
    assert!(json["dateEdited"].is_string());
    server.ok(&["messages", "unsend", &chat, reply]);
    let out = server.ok(&["messages", "get", reply]);
    assert!(out.contains("text\t(unsent)\n"), "{out}");

    // Chats: read and typing.
    assert_eq!(server.ok(&["chats", "read", &chat]), "");
    assert_eq!(server.ok(&["chats", "typing", &chat, "on"]), "");
    let json: serde_json::Value =
        serde_json::from_str(&server.ok(&["chats", "typing", &chat, "off", "--json"])).unwrap();
    assert_eq!(json["chatGuid"], chat.as_str());

    // Addresses.
    let out = server.ok(&["addresses", "check", "bob@example.com"]);
    assert!(out.contains("imessage\ttrue\n"), "{out}");
    assert!(out.contains("services\tiMessage\n"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&server.ok(&["addresses", "check", "bob@example.com", "--json"]))
            .unwrap();
    assert_eq!(json["isIMessageAvailable"], true);

    // A puppet answers with `say --reply-to`; the account sees it from them.
    let out = Command::new(BIN)
        .args([
            "sim",
            "act",
            "bob@example.com",
            "say",
            &chat,
            "8 is fine",
            "--reply-to",
            first,
        ])
        .env("IMGROUPS_DATA", server.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let guid = String::from_utf8(out.stdout).unwrap();
    let out = server.ok(&["messages", "get", guid.trim()]);
    assert!(out.contains("from\tbob@example.com\n"), "{out}");
    assert!(out.contains(&format!("replyTo\t{first}\n")), "{out}");
}

#[test]
fn message_errors_have_the_documented_exit_codes() {
    let server = Server::start();
    let chat = server.group();
    let guid = server.ok(&["messages", "send", &chat, "hi"]);
    let guid = guid.trim();

    // 2: usage (malformed GUIDs, an unknown tapback, a bad switch).
    let out = server.run(&["messages", "get", "two words"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with("(invalidArgument)\n"),
        "{}",
        stderr(&out)
    );
    let out = server.run(&["messages", "react", &chat, guid, "lvoe"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        server
            .run(&["chats", "typing", &chat, "maybe"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        server.run(&["messages", "send", "nope", "x"]).status.code(),
        Some(2)
    );

    // 4: not found.
    let out = server.run(&["messages", "get", "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).ends_with("(messageNotFound)\n"),
        "{}",
        stderr(&out)
    );
    let out = server.run(&["chats", "read", "any;+;chat000000000000000001"]);
    assert_eq!(out.status.code(), Some(4));

    // 1: the server refused.
    let out = server.run(&["messages", "send", &chat, "   "]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with("(invalidArgument)\n"),
        "{}",
        stderr(&out)
    );
    server.ok(&["messages", "unsend", &chat, guid]);
    let out = server.run(&["messages", "unsend", &chat, guid, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_str(&stderr(&out)).unwrap();
    assert_eq!(err["error"]["code"], "preconditionFailed");
}
