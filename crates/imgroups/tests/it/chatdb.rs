//! `serve --backend chatdb` against fixture Messages databases with the real schema: the
//! history is imported in date order on the first start, rows written later by another
//! process arrive as events, every row enters the log exactly once across restarts, and writes
//! go through the Messages helper (a fake one that writes what Messages would) and are
//! answered once their change is in chat.db and the log — or refused when there is no helper.

use std::time::{Duration, Instant};

use imgroups_chatdb::testing::{properties, FakeHelper, FakeHelperOptions, Fixture, Msg, Version};
use imgroups_proto::pb;
use imgroups_proto::pb::group_change_event::Change;
use imgroups_testkit::tiny_png;

use crate::support::{cli, clients, Clients, Server};

const ME: &str = "me@icloud.com";

/// A Messages database with one group and three changes in its history (out of ROWID order:
/// the oldest change has the highest ROWID, as after an iCloud backfill), and one group
/// photo.
fn history(version: Version) -> (Fixture, i64) {
    let f = Fixture::new(version);
    let alice = f.handle("alice@example.com");
    let bob = f.handle("bob@example.com");
    let carol = f.handle("+15551230001");
    let dave = f.handle("dave@example.com");
    let photo = "AT-PHOTO-1";
    let png = tiny_png();
    let rel = "Library/Messages/Attachments/ab/photo.png";
    std::fs::create_dir_all(f.home().join("Library/Messages/Attachments/ab")).expect("dirs");
    std::fs::write(f.home().join(rel), &png).expect("photo");
    let attachment = f.attachment(photo, Some(&format!("~/{rel}")), Some("image/png"));
    let chat = f.group(
        "iMessage;+;chat100",
        Some("Book club"),
        Some(properties(Some(photo))),
    );
    for member in [alice, carol, dave] {
        f.member(chat, member);
    }
    // minute 3 first (a higher ROWID for an older row comes below).
    f.post(
        chat,
        Msg {
            guid: "G-LEFT",
            item_type: 3,
            action: 0,
            handle: bob,
            minute: 3,
            rowid: Some(10),
            ..Msg::default()
        },
    );
    f.post(
        chat,
        Msg {
            guid: "G-RENAME",
            item_type: 2,
            from_me: true,
            title: Some("Book club"),
            minute: 1,
            rowid: Some(11),
            ..Msg::default()
        },
    );
    f.post(
        chat,
        Msg {
            guid: "G-ADD",
            item_type: 1,
            action: 0,
            handle: alice,
            other: dave,
            minute: 2,
            rowid: Some(12),
            ..Msg::default()
        },
    );
    let icon = f.post(
        chat,
        Msg {
            guid: "G-ICON",
            item_type: 3,
            action: 1,
            handle: carol,
            minute: 4,
            rowid: Some(13),
            ..Msg::default()
        },
    );
    f.attach(icon, attachment);
    // A plain text message is not a group change.
    f.post(
        chat,
        Msg {
            guid: "G-TEXT",
            text: Some("hello"),
            handle: alice,
            minute: 5,
            ..Msg::default()
        },
    );
    (f, chat)
}

fn serve(f: &Fixture, data: &std::path::Path, extra: &[&str]) -> Server {
    let home = f.home().to_str().expect("utf-8 home").to_owned();
    let mut args = vec![
        "--backend",
        "chatdb",
        "--home",
        &home,
        "--account",
        ME,
        "--chatdb-rescan-ms",
        "200",
    ];
    args.extend_from_slice(extra);
    Server::start(data, &args)
}

/// What the log says, compactly: (sequence, actor, from me, change).
async fn log(c: &mut Clients) -> Vec<(u64, String, bool, String)> {
    let (events, _) = c.catch_up(0).await;
    events
        .into_iter()
        .map(|(seq, e)| {
            let change = match e.change {
                Some(Change::DisplayNameChanged(c)) => format!("renamed {}", c.display_name),
                Some(Change::ParticipantAdded(c)) => format!("added {}", address(c.participant)),
                Some(Change::ParticipantRemoved(c)) => {
                    format!("removed {}", address(c.participant))
                }
                Some(Change::ParticipantLeft(c)) => format!("left {}", address(c.participant)),
                Some(Change::IconChanged(_)) => "icon set".to_owned(),
                Some(Change::IconRemoved(_)) => "icon removed".to_owned(),
                None => "?".to_owned(),
            };
            (seq, address(e.actor), e.is_from_me, change)
        })
        .collect()
}

fn address(handle: Option<pb::SingleServiceAddressInfo>) -> String {
    handle.map(|h| h.address).unwrap_or_default()
}

async fn until_len(c: &mut Clients, n: usize) -> Vec<(u64, String, bool, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = log(c).await;
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "only {} events: {events:?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn history_is_imported_in_date_order_then_new_rows_arrive_once_across_restarts() {
    for version in [Version::Tahoe, Version::Sierra] {
        let (f, chat) = history(version);
        let data = tempfile::tempdir().expect("data");
        let server = serve(&f, data.path(), &[]);
        let token = server.token.clone().expect("first start prints a token");
        let channel = server.channel().await;
        let mut me = clients(&channel, &token);

        let expected = vec![
            (1, ME.to_owned(), true, "renamed Book club".to_owned()),
            (
                2,
                "alice@example.com".to_owned(),
                false,
                "added dave@example.com".to_owned(),
            ),
            (
                3,
                "bob@example.com".to_owned(),
                false,
                "left bob@example.com".to_owned(),
            ),
            (4, "+15551230001".to_owned(), false, "icon set".to_owned()),
        ];
        assert_eq!(log(&mut me).await, expected, "{version:?}");
        let group = me.get_chat("any;+;chat100").await;
        assert_eq!(group.display_name.as_deref(), Some("Book club"));
        let mut members: Vec<String> = group
            .participants
            .iter()
            .map(|p| p.address.clone())
            .collect();
        members.sort();
        assert_eq!(
            members,
            ["+15551230001", "alice@example.com", "dave@example.com"]
        );
        let icon = me
            .groups
            .get_icon(pb::GetIconRequest {
                chat_guid: "any;+;chat100".to_owned(),
            })
            .await
            .expect("the group photo")
            .into_inner();
        assert_eq!(icon.data, tiny_png());

        // The history's text messages are in the log too, after the group changes by date:
        // the live rename follows them.
        let messages = me.catch_up_sequences(0).await.len() as u64 - 4;
        // Another process (this test) writes a rename, as Messages does: it arrives live.
        let alice = 1; // the first handle's ROWID
        f.post(
            chat,
            Msg {
                guid: "G-LIVE",
                item_type: 2,
                handle: alice,
                title: Some("Readers"),
                minute: 10,
                ..Msg::default()
            },
        );
        let events = until_len(&mut me, 5).await;
        assert_eq!(
            events[4],
            (
                5 + messages,
                "alice@example.com".to_owned(),
                false,
                "renamed Readers".to_owned()
            )
        );

        // Down: a row written meanwhile is recorded once on the next start; nothing repeats.
        server.stop();
        f.post(
            chat,
            Msg {
                guid: "G-DOWN",
                item_type: 1,
                action: 1,
                handle: alice,
                other: 4, // dave
                minute: 11,
                ..Msg::default()
            },
        );
        let server = serve(&f, data.path(), &[]);
        let channel = server.channel().await;
        let mut me = clients(&channel, &token);
        let events = until_len(&mut me, 6).await;
        assert_eq!(events.len(), 6, "{events:?}");
        assert_eq!(
            events[5],
            (
                6 + messages,
                "alice@example.com".to_owned(),
                false,
                "removed dave@example.com".to_owned()
            )
        );
        // And once more after a restart with nothing new: still six.
        server.stop();
        let server = serve(&f, data.path(), &[]);
        let channel = server.channel().await;
        let mut me = clients(&channel, &token);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(log(&mut me).await.len(), 6);
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_go_through_the_helper_and_answer_once_chat_db_shows_them() {
    let (f, _) = history(Version::Tahoe);
    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &["--helper", "127.0.0.1:0"]);
    let helper = server.helper.clone().expect("helper address printed");
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let head = log(&mut me).await.len() as u64;

    // No helper connected yet: unavailable, retryable, nothing recorded.
    let err = me
        .rename("any;+;chat100", "Too early")
        .await
        .expect_err("no helper yet");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    let fake = FakeHelper::connect(
        helper.parse().expect("addr"),
        f.path(),
        FakeHelperOptions::default(),
    )
    .await
    .expect("fake helper connects");
    // The answer carries the new name, and the event is already in the log.
    let chat = loop {
        match me.rename("any;+;chat100", "Renamed on the Mac").await {
            Ok(chat) => break chat,
            Err(err) if err.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("rename failed: {err:?}"),
        }
    };
    assert_eq!(chat.display_name.as_deref(), Some("Renamed on the Mac"));
    let events = log(&mut me).await;
    assert_eq!(
        events.last().map(|e| (e.1.as_str(), e.2, e.3.as_str())),
        Some((ME, true, "renamed Renamed on the Mac"))
    );
    assert_eq!(events.len() as u64, head + 1);

    let added = me
        .groups
        .add_participants(pb::AddParticipantsRequest {
            chat_guid: "any;+;chat100".to_owned(),
            addresses: vec!["erin@example.com".to_owned()],
            client_message_id: None,
        })
        .await
        .expect("add through the helper")
        .into_inner()
        .chat
        .expect("chat");
    assert!(added
        .participants
        .iter()
        .any(|p| p.address == "erin@example.com"));
    let events = log(&mut me).await;
    assert_eq!(
        events.last().map(|e| e.3.as_str()),
        Some("added erin@example.com")
    );

    me.groups
        .remove_icon(pb::RemoveIconRequest {
            chat_guid: "any;+;chat100".to_owned(),
            client_message_id: None,
        })
        .await
        .expect("remove the icon through the helper");
    let events = log(&mut me).await;
    assert_eq!(events.last().map(|e| e.3.as_str()), Some("icon removed"));
    // The rules still run first: nobody waits for Messages to refuse a non-member.
    let err = me
        .groups
        .remove_participants(pb::RemoveParticipantsRequest {
            chat_guid: "any;+;chat100".to_owned(),
            addresses: vec!["nobody@example.com".to_owned()],
            client_message_id: None,
        })
        .await
        .expect_err("not a member");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        fake.handled(),
        3,
        "only the accepted writes reached the helper"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_helper_the_backend_is_read_only() {
    let (f, _) = history(Version::Monterey);
    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &[]);
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let err = me
        .rename("any;+;chat100", "Nope")
        .await
        .expect_err("read-only");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        err.metadata()
            .get("error-code")
            .and_then(|v| v.to_str().ok()),
        Some("operationNotSupported")
    );
    assert!(err.message().contains("--helper"), "{err:?}");
    // Creating chats is not something this backend does.
    let err = me
        .chats
        .create_chat(pb::CreateChatRequest {
            addresses: vec!["a@example.com".to_owned(), "b@example.com".to_owned()],
            service: pb::ChatServiceType::Imessage as i32,
            ..Default::default()
        })
        .await
        .expect_err("no chat creation");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    // The log mirrors chat.db: the console cannot reset it, import a snapshot or seed it.
    let admin = cli(&[
        "admin",
        "token",
        "--data",
        data.path().to_str().expect("utf-8"),
    ]);
    let http = reqwest::Client::new();
    // Exporting is reading: a Mac's log can be saved as a snapshot, not replaced by one.
    let snapshot = http
        .get(format!("http://{}/console/api/sim/snapshot", server.http))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("export");
    assert!(snapshot.status().is_success(), "{}", snapshot.status());
    let snapshot = snapshot.text().await.expect("snapshot");
    for (path, body) in [
        ("sim:reset", "{}".to_owned()),
        (
            "sim:seed?reset=true",
            "accounts = [\"x@example.com\"]\n".to_owned(),
        ),
        ("sim/snapshot:import", snapshot.clone()),
    ] {
        let answer = http
            .post(format!("http://{}/console/api/{path}", server.http))
            .bearer_auth(&admin)
            .body(body)
            .send()
            .await
            .expect("post");
        let status = answer.status();
        let text = answer.text().await.expect("body");
        assert!(status.is_client_error(), "{path}: {status} {text}");
        assert!(text.contains("operationNotSupported"), "{path}: {text}");
    }
    // Nor can the CLI beside the server, which opens the store without asking the server:
    // the store itself says it mirrors a Mac.
    let dir = data.path().to_str().expect("utf-8");
    let file = |name: &str, text: &str| {
        let path = data.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8").to_owned()
    };
    let world = file("world.json", &snapshot);
    let seed = file("seed.toml", "accounts = [\"x@example.com\"]\n");
    for args in [
        vec!["sim", "reset", "--data", dir],
        vec!["sim", "snapshot", "import", &world, "--data", dir],
        vec!["sim", "seed", &seed, "--data", dir],
        vec![
            "sim",
            "act",
            "bob@example.com",
            "rename",
            "any;-;chat",
            "Nope",
            "--data",
            dir,
        ],
    ] {
        let out = std::process::Command::new(crate::support::BIN)
            .args(&args)
            .output()
            .expect("run imgroups");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must be refused");
        assert!(
            stderr.contains("operationNotSupported") && stderr.contains("mirrors a Mac's chat.db"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(log(&mut me).await.len(), 4, "nothing recorded");
    server.stop();
}

// Watcher robustness: this test process is the other process writing chat.db, as Messages is
// for the server. Each case ends with the whole log compared, so a row recorded twice, lost or
// out of order shows.

/// The history's four changes, as `log` shows them.
fn imported() -> Vec<String> {
    vec![
        "renamed Book club".to_owned(),
        "added dave@example.com".to_owned(),
        "left bob@example.com".to_owned(),
        "icon set".to_owned(),
    ]
}

/// A rename by alice, as Messages writes it, without its `chat_message_join` row.
fn rename_row(f: &Fixture, guid: &str, title: &str, minute: i64) -> i64 {
    f.message(Msg {
        guid,
        item_type: 2,
        handle: 1, // alice
        title: Some(title),
        minute,
        ..Msg::default()
    })
}

/// A rename by alice, committed with its join row.
fn rename(f: &Fixture, chat: i64, guid: &str, title: &str, minute: i64) {
    let id = rename_row(f, guid, title, minute);
    f.join(chat, id);
}

/// The group changes in the log, in sequence order, after checking the log's sequences (of
/// every kind: the chat.db's messages are in it too) are 1, 2, 3, ….
async fn changes(c: &mut Clients) -> Vec<String> {
    let events = log(c).await;
    let sequences = c.catch_up_sequences(0).await;
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "{events:?}"
    );
    events.into_iter().map(|e| e.3).collect()
}

/// Waits for `n` events, then a little longer to see that no more come, and returns them.
async fn settled(c: &mut Clients, n: usize) -> Vec<String> {
    until_len(c, n).await;
    // Longer than two re-scans (200 ms each): a duplicate would be there by now.
    tokio::time::sleep(Duration::from_millis(600)).await;
    changes(c).await
}

fn expect(tail: &[&str]) -> Vec<String> {
    let mut all = imported();
    all.extend(tail.iter().map(|s| (*s).to_owned()));
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_whose_join_row_comes_later_is_recorded_once_when_the_join_arrives() {
    let (f, chat) = history(Version::Tahoe);
    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &[]);
    let channel = server.channel().await;
    let mut me = clients(&channel, server.token.as_deref().expect("token"));
    until_len(&mut me, 4).await;

    // Messages commits the message first, its join row in a later transaction.
    let late = rename_row(&f, "G-LATE", "Late", 10);
    // A complete row after it: once it is in the log, the server has scanned past the late one.
    rename(&f, chat, "G-AFTER", "After", 11);
    assert_eq!(settled(&mut me, 5).await, expect(&["renamed After"]));

    f.join(chat, late);
    assert_eq!(
        settled(&mut me, 6).await,
        expect(&["renamed After", "renamed Late"])
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_arrive_across_wal_checkpoints_with_truncate() {
    let (f, chat) = history(Version::Tahoe);
    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &[]);
    let channel = server.channel().await;
    let mut me = clients(&channel, server.token.as_deref().expect("token"));
    until_len(&mut me, 4).await;

    let mut want = Vec::new();
    for (i, name) in ["One", "Two", "Three"].into_iter().enumerate() {
        f.checkpoint_truncate();
        let wal = f.path().with_extension("db-wal");
        assert_eq!(
            std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
            0,
            "the WAL was cut"
        );
        rename(&f, chat, &format!("G-CK-{i}"), name, 10 + i as i64);
        want.push(format!("renamed {name}"));
        until_len(&mut me, 4 + want.len()).await;
    }
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(settled(&mut me, 7).await, expect(&want));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_arrive_after_the_wal_is_deleted_and_recreated() {
    let (mut f, chat) = history(Version::Tahoe);
    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &[]);
    let channel = server.channel().await;
    let mut me = clients(&channel, server.token.as_deref().expect("token"));
    until_len(&mut me, 4).await;

    let mut want = Vec::new();
    for (i, name) in ["One", "Two", "Three"].into_iter().enumerate() {
        // Messages quits: everything checkpointed, its connection closed, the WAL gone; it
        // starts again and writes into a new WAL file (a new inode).
        assert!(f.checkpoint_truncate(), "checkpoint completed");
        f.reopen(|db| {
            let wal = db.with_extension("db-wal");
            if wal.exists() {
                std::fs::remove_file(&wal).expect("delete the WAL");
            }
        });
        rename(&f, chat, &format!("G-WAL-{i}"), name, 10 + i as i64);
        assert!(
            f.path().with_extension("db-wal").exists(),
            "the writer made a new WAL"
        );
        want.push(format!("renamed {name}"));
        until_len(&mut me, 4 + want.len()).await;
    }
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(settled(&mut me, 7).await, expect(&want));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfilled_row_arriving_live_is_recorded_once() {
    let (f, chat) = history(Version::Tahoe);
    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &[]);
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    until_len(&mut me, 4).await;

    rename(&f, chat, "G-NEW", "New", 10);
    until_len(&mut me, 5).await;
    // iCloud backfill: a row older than everything in the log, with the newest ROWID. It is
    // news to this log, so it is appended (with its old date), once.
    rename(&f, chat, "G-BACKFILL", "From the archive", 0);
    let want = expect(&["renamed New", "renamed From the archive"]);
    assert_eq!(settled(&mut me, 6).await, want);

    server.stop();
    let server = serve(&f, data.path(), &[]);
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    assert_eq!(
        settled(&mut me, 6).await,
        want,
        "still once after a restart"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_once_and_in_order_across_restarts_late_joins_and_checkpoints() {
    let (mut f, chat) = history(Version::Tahoe);
    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &[]);
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    until_len(&mut me, 4).await;

    rename(&f, chat, "G-A", "A", 10);
    // B's join row comes only while the server is down: B is pending in the stored cursor.
    let b = rename_row(&f, "G-B", "B", 11);
    rename(&f, chat, "G-C", "C", 12);
    assert_eq!(
        settled(&mut me, 6).await,
        expect(&["renamed A", "renamed C"])
    );
    server.stop();

    // Down: the join arrives, Messages writes D, checkpoints, quits and drops its WAL.
    f.join(chat, b);
    rename(&f, chat, "G-D", "D", 13);
    assert!(f.checkpoint_truncate(), "checkpoint completed");
    f.reopen(|db| {
        let _ = std::fs::remove_file(db.with_extension("db-wal"));
    });

    let server = serve(&f, data.path(), &[]);
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let want = expect(&["renamed A", "renamed C", "renamed B", "renamed D"]);
    assert_eq!(settled(&mut me, 8).await, want);

    rename(&f, chat, "G-E", "E", 14);
    let mut want = want;
    want.push("renamed E".to_owned());
    assert_eq!(settled(&mut me, 9).await, want);

    // Nothing new: nothing repeats.
    server.stop();
    let server = serve(&f, data.path(), &[]);
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    assert_eq!(settled(&mut me, 9).await, want);
    server.stop();
}

/// Issue 26: names from chat.db used to enter the log raw. A group whose `chat.display_name`
/// and a rename's `group_title` carry ESC, BEL, RLO, NUL and LF and are 5,035 characters long;
/// a group named with zero-width characters only and renamed to blanks; a name that is not
/// even UTF-8; a member whose handle hides a zero-width space. Every change is kept (the
/// renames happened) and nothing stops the import, but what the API and the SSE stream serve
/// is the sanitised name, and the hidden handle is left out.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_from_chat_db_are_stored_and_served_sanitised() {
    let f = Fixture::new(Version::Tahoe);
    let alice = f.handle("alice@example.com");
    let bob = f.handle("bob@example.com");
    let hidden = f.handle("12345\u{200b}");
    let hostile = format!(
        "\u{1b}]0;owned\u{7}\u{202e}evil\0\n{}",
        "x".repeat(5_035 - 17)
    );
    assert_eq!(hostile.chars().count(), 5_035);
    // Control characters become U+FFFD, the line break a space, the override goes; 255
    // characters and an ellipsis are kept.
    let sanitised = format!("\u{fffd}]0;owned\u{fffd}evil\u{fffd} {}…", "x".repeat(239));
    assert_eq!(sanitised.chars().count(), 256);

    let chat = f.group("iMessage;+;chat700", Some(&hostile), None);
    for member in [alice, bob, hidden] {
        f.member(chat, member);
    }
    f.post(
        chat,
        Msg {
            guid: "G-HOSTILE",
            item_type: 2,
            handle: alice,
            title: Some(&hostile),
            minute: 1,
            ..Msg::default()
        },
    );
    let blank = f.group("iMessage;+;chat701", Some("\u{200b}\u{3164}"), None);
    for member in [alice, bob] {
        f.member(blank, member);
    }
    f.post(
        blank,
        Msg {
            guid: "G-BLANK",
            item_type: 2,
            handle: bob,
            title: Some("\u{2800}\u{feff}\u{200d}"),
            minute: 2,
            ..Msg::default()
        },
    );
    let mangled = f.group("iMessage;+;chat702", Some("placeholder"), None);
    for member in [alice, bob] {
        f.member(mangled, member);
    }
    // "Name" and an unpaired surrogate as SQLite stores it: not UTF-8.
    rusqlite::Connection::open(f.path())
        .expect("chat.db")
        .execute(
            "UPDATE chat SET display_name = CAST(x'4e616d65eda080' AS TEXT) WHERE ROWID = ?1",
            [mangled],
        )
        .expect("update");

    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &[]);
    let token = server.token.clone().expect("first start prints a token");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);

    let events = log(&mut me).await;
    assert_eq!(
        events,
        vec![
            (
                1,
                "alice@example.com".to_owned(),
                false,
                format!("renamed {sanitised}")
            ),
            // Blanks only: the rename happened, to no name.
            (
                2,
                "bob@example.com".to_owned(),
                false,
                "renamed ".to_owned()
            ),
        ]
    );
    let group = me.get_chat("any;+;chat700").await;
    assert_eq!(group.display_name.as_deref(), Some(sanitised.as_str()));
    let mut members: Vec<String> = group
        .participants
        .iter()
        .map(|p| p.address.clone())
        .collect();
    members.sort();
    assert_eq!(members, ["alice@example.com", "bob@example.com"]);
    let blank = me.get_chat("any;+;chat701").await;
    assert_eq!(blank.display_name.unwrap_or_default(), "");
    let mangled = me.get_chat("any;+;chat702").await;
    assert_eq!(
        mangled.display_name.as_deref(),
        Some("Name\u{fffd}\u{fffd}\u{fffd}")
    );

    // The same over HTTP: the SSE stream carries the sanitised name.
    let mut sse = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/events:stream?afterSequence=0",
            server.http
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);
    let mut text = String::new();
    let quoted = serde_json::to_string(&sanitised).expect("json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("id: 2\n") {
        assert!(Instant::now() < deadline, "no second event: {text}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), sse.chunk())
            .await
            .expect("an event in time")
            .expect("chunk")
            .expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&quoted), "{text}");
    for raw in ["\\u001b", "\\u0007", "\\u0000", "\u{202e}", "\\n"] {
        assert!(!text.contains(raw), "{raw} served: {text}");
    }
    server.stop();
}

/// `kill -9` in the middle of a first start on a long history (messages and group changes,
/// recorded in many transactions), then a restart on the same data directory: every message
/// and every group change of the history is in the log exactly once, in date order, without
/// gaps.
#[tokio::test(flavor = "multi_thread")]
async fn a_first_start_killed_midway_records_every_row_once_after_the_restart() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    use imgroups_chatdb::testing::BulkSpec;
    use imgroups_proto::pb::catch_up_events_response::Payload;
    use imgroups_proto::pb::message_change_event::Change as MessageChange;

    let f = Fixture::new(Version::Tahoe);
    let history = f.bulk(&BulkSpec::new(30_000, 1_500, 12), ME);
    let data = tempfile::tempdir().expect("data");
    let home = f.home().to_str().expect("utf-8 home").to_owned();
    let data_dir = data.path().to_str().expect("utf-8 data").to_owned();
    // Started by hand: `Server::start` waits for `ready`, which follows the import.
    let mut child = Command::new(crate::support::BIN)
        .args(["serve", "--data", &data_dir])
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--backend", "chatdb", "--home", &home, "--account", ME])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn imgroups serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first progress line comes after the first transaction of the history.
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("a progress line while the history is recorded");
        assert!(
            !line.contains("chat.db read; watching"),
            "the import ended before it could be interrupted: {line}"
        );
        if line.contains("recording chat.db's history") {
            break;
        }
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let token = std::fs::read_to_string(data.path().join("token")).expect("token file");
    // The killed import had dropped the unique index of message GUIDs (its bodies were found
    // in memory): the restart builds it again, and the resumed import drops it and builds it
    // at its end.
    let guid_index = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .and_then(|db| {
                db.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'message_bodies_by_guid'",
                    [],
                    |r| r.get(0),
                )
            })
            .expect("the store's schema")
    };
    assert_eq!(guid_index(&data.path().join("imgroups.db")), 0);

    let server = serve(&f, data.path(), &[]);
    let channel = server.channel().await;
    let mut events = clients(&channel, token.trim()).events;
    let mut stream = events
        .catch_up_events(pb::CatchUpEventsRequest {
            after_sequence: Some(0),
        })
        .await
        .expect("catch up")
        .into_inner();
    let (mut seqs, mut received, mut changes, mut head) = (Vec::new(), Vec::new(), 0u64, None);
    let mut last = (0i64, 0i32);
    let mut out_of_order = 0;
    while let Some(frame) = stream.message().await.expect("a catch-up frame") {
        let at = match &frame.payload {
            Some(Payload::Complete(c)) => {
                head = Some(c.head_sequence);
                continue;
            }
            Some(Payload::Heartbeat(_)) | None => continue,
            Some(Payload::GroupChanged(e)) => {
                changes += 1;
                e.occurred_at.as_ref()
            }
            Some(Payload::MessageChanged(e)) => {
                if let Some(MessageChange::MessageReceived(r)) = &e.change {
                    received.push(r.message.as_ref().expect("a message").guid.clone());
                }
                e.occurred_at.as_ref()
            }
            Some(Payload::ChatChanged(e)) => e.occurred_at.as_ref(),
            Some(_) => None,
        };
        seqs.push(frame.sequence.expect("event frames carry a sequence"));
        let at = at.map(|t| (t.seconds, t.nanos)).unwrap_or_default();
        if at < last {
            out_of_order += 1;
        }
        last = at;
    }
    let head = head.expect("catch-up ends with complete");
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "the log has no gap");
    assert_eq!(out_of_order, 0, "the log follows chat.db's dates");
    assert_eq!(changes, history.events, "every group change once");
    let said = history.messages - history.change_rows;
    assert_eq!(received.len() as u64, said, "every message once");
    received.sort();
    received.dedup();
    assert_eq!(received.len() as u64, said, "no message twice");
    // The killed first start had dropped the listing indexes in its first transaction (a long
    // import builds them once, at its end): they are back.
    let db = rusqlite::Connection::open(data.path().join("imgroups.db")).expect("open the store");
    let indexes: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'chat_messages' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("the store's indexes");
    assert_eq!(
        indexes,
        [
            "chat_messages_by_body",
            "chat_messages_by_chat",
            "chat_messages_unread",
            "chat_messages_unread_by_chat"
        ]
    );
    assert_eq!(guid_index(&data.path().join("imgroups.db")), 1);
    let (bodies, guids): (i64, i64) = db
        .query_row(
            "SELECT count(*), count(DISTINCT guid) FROM message_bodies",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("bodies");
    assert_eq!(
        (bodies, guids),
        (said as i64, said as i64),
        "one body per message"
    );
    server.stop();
}

/// The helper port of the built server, as the attacks tried it: a 64 MiB line
/// without a newline is cut off (the line cap is 1 MiB by default) while the server's memory
/// grows by far less than the line; another process greeting as Messages does not take the
/// line from the live helper; and `--helper` on a non-loopback address is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_servers_helper_port_cuts_off_floods_and_keeps_its_helper() {
    use imgroups_chatdb::testing::FakeReply;
    use tokio::io::AsyncWriteExt;

    let (f, _) = history(Version::Tahoe);
    let data = tempfile::tempdir().expect("data");
    let server = serve(&f, data.path(), &["--helper", "127.0.0.1:0"]);
    let helper: std::net::SocketAddr = server
        .helper
        .clone()
        .expect("helper address printed")
        .parse()
        .expect("addr");
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let _fake = FakeHelper::connect(helper, f.path(), FakeHelperOptions::default())
        .await
        .expect("fake helper connects");
    rename_through_the_helper(&mut me, "Before the flood").await;

    // 64 MiB without a newline, in 64 KiB writes, the server's memory read as it goes.
    let (_, before) = server.memory_kib();
    let mut flood = tokio::net::TcpStream::connect(helper)
        .await
        .expect("connect");
    let chunk = vec![b'x'; 64 * 1024];
    let (mut sent, mut peak) = (0usize, before);
    let cut = loop {
        match tokio::time::timeout(Duration::from_secs(10), flood.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
        peak = peak.max(server.memory_kib().1);
        if sent >= 64 * 1024 * 1024 {
            // All of it written: only a close that comes now still counts.
            break flood.write_all(b"x\n").await.is_err() || {
                tokio::time::sleep(Duration::from_millis(500)).await;
                flood.write_all(&chunk).await.is_err()
            };
        }
    };
    peak = peak.max(server.memory_kib().1);
    assert!(
        cut,
        "the flood's connection was not closed ({sent} bytes sent)"
    );
    assert!(
        peak.saturating_sub(before) < 32 * 1024,
        "the server grew by {} KiB during a {} KiB line",
        peak.saturating_sub(before),
        sent / 1024
    );

    // An impostor greeting as Messages is turned away; the live helper keeps the line.
    let impostor = FakeHelper::connect(
        helper,
        f.path(),
        FakeHelperOptions {
            reply: FakeReply::Reject("stolen".into()),
            ..FakeHelperOptions::default()
        },
    )
    .await
    .expect("impostor connects");
    tokio::time::timeout(Duration::from_secs(10), impostor.closed())
        .await
        .expect("the impostor's connection is closed")
        .ok();
    let chat = rename_through_the_helper(&mut me, "After the impostor").await;
    assert_eq!(chat.display_name.as_deref(), Some("After the impostor"));
    drop(me);

    // Listening for the helper on every interface needs saying so.
    let home = f.home().to_str().expect("utf-8 home").to_owned();
    let other = tempfile::tempdir().expect("data");
    let refused = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--data"])
        .arg(other.path())
        .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--backend", "chatdb", "--home", &home, "--account", ME])
        .args(["--helper", "0.0.0.0:0"])
        .output()
        .expect("run serve");
    assert!(
        !refused.status.success(),
        "serve --helper 0.0.0.0:0 started"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--helper-allow-remote"), "{stderr}");
}

/// Renames chat100, waiting while the helper is not there yet (`UNAVAILABLE`).
async fn rename_through_the_helper(me: &mut Clients, name: &str) -> pb::Chat {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match me.rename("any;+;chat100", name).await {
            Ok(chat) => break chat,
            Err(err) if err.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("rename failed: {err:?}"),
        }
    }
}
