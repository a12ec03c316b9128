//! The write side: `BlueBubblesHelper` ⇄ `FakeHelper` over a real socket, and what the fake's
//! Messages writes, read back through `ChatDb::scan` — which proves the fake writes rows the
//! reader understands.

use std::sync::Arc;
use std::time::Duration;

use imgroups_chatdb::mac::system::RealSystem;
use imgroups_chatdb::testing::{
    FakeHelper, FakeHelperOptions, FakeReply, Fixture, ScriptedSystem, TypingSeen, Version, ALL,
};
use imgroups_chatdb::{
    Actuator, ActuatorError, BlueBubblesHelper, ChangeKind, ChatDb, ChatGuid, Cursor, HelperAction,
    HelperChat, HelperOptions, Party, PeerCheck, ProcessCheck, MESSAGES_EXECUTABLES,
};

/// A server end with a short pause between requests (the fake frames by line; a pause still
/// runs, so the real code path is exercised).
async fn server() -> BlueBubblesHelper {
    BlueBubblesHelper::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_write_gap(Duration::from_millis(5))
        .with_timeout(Duration::from_secs(10))
}

async fn fake(server: &BlueBubblesHelper, f: &Fixture, reply: FakeReply) -> FakeHelper {
    let options = FakeHelperOptions {
        reply,
        ..FakeHelperOptions::default()
    };
    let helper = FakeHelper::connect(server.local_addr(), f.path(), options)
        .await
        .unwrap();
    server.connected().await;
    helper
}

/// A group with alice and bob, its raw GUID in this version's form; on macOS 26 the row says
/// `any;+;…` with `service_name = iMessage`, as real Tahoe databases do.
fn group(f: &Fixture) -> (ChatGuid, HelperChat) {
    let raw = if f.version == Version::Tahoe {
        "any;+;chat42"
    } else {
        "iMessage;+;chat42"
    };
    let chat = f.group(raw, Some("Before"), None);
    f.conn
        .execute(
            "UPDATE chat SET service_name = 'iMessage' WHERE ROWID = ?1",
            [chat],
        )
        .unwrap();
    let alice = f.handle("alice@example.com");
    let bob = f.handle("bob@example.com");
    f.member(chat, alice);
    f.member(chat, bob);
    let guid = ChatGuid::parse(raw).unwrap();
    let helper_chat = f.open().helper_chat(&guid).unwrap().unwrap();
    (guid, helper_chat)
}

/// `Library/Messages/Attachments/test` under the fixture's home, created.
fn attachments(f: &Fixture) -> std::path::PathBuf {
    let dir = f.home().join("Library/Messages/Attachments/test");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Performs `action` and returns the one change the next scan sees, checking it is mine and
/// in the right chat.
async fn perform_and_scan(
    server: &BlueBubblesHelper,
    db: &ChatDb,
    cursor: &mut Cursor,
    guid: &ChatGuid,
    action: HelperAction,
) -> ChangeKind {
    server.perform(&action).await.unwrap();
    let scan = db.scan(cursor).unwrap();
    *cursor = scan.cursor;
    assert_eq!(scan.changes.len(), 1, "{action:?}: {:?}", scan.changes);
    let change = scan.changes.into_iter().next().unwrap();
    assert_eq!(change.actor, Party::Me, "{action:?}");
    assert_eq!(&change.chat, guid, "{action:?}");
    change.kind
}

/// Bug: `any;+;X` used to be rewritten to `iMessage;+;X`, which the helper's exact
/// `existingChatWithGUID:` does not find on macOS 15/26. The GUID goes out as chat.db has it.
#[test]
fn helper_guids_are_chat_guid_unchanged() {
    let guid = ChatGuid::parse("any;+;abc").unwrap();
    let chat = HelperChat::new(guid.clone(), "any;+;abc", Some("iMessage"));
    assert_eq!(chat.helper_guid(), "any;+;abc");
    assert_eq!(chat.guid(), Some(&guid));
    assert!(!chat.is_sms());
    let kept = HelperChat::new(guid.clone(), "iMessage;+;abc", Some("iMessage"));
    assert_eq!(kept.helper_guid(), "iMessage;+;abc");
    assert!(HelperChat::new(guid.clone(), "any;+;abc", Some("SMS")).is_sms());
    assert!(HelperChat::new(guid.clone(), "RCS;+;abc", None).is_sms());
    assert!(!HelperChat::new(guid, "any;+;abc", None).is_sms());
    assert_eq!(imgroups_chatdb::default_port(501), 45670);
    assert_eq!(imgroups_chatdb::default_port(502), 45671);
    assert_eq!(imgroups_chatdb::default_port(0), 45670);
    assert_eq!(imgroups_chatdb::default_port(1_000_000), 65535);
}

#[tokio::test]
async fn every_action_round_trips_and_is_read_back() {
    for version in ALL {
        let f = Fixture::new(version);
        let (guid, chat) = group(&f);
        if version == Version::Tahoe {
            assert_eq!(chat.helper_guid(), "any;+;chat42");
        }
        let server = server().await;
        let _helper = fake(&server, &f, FakeReply::Apply).await;
        let db = f.open();
        let mut cursor = db.scan(&Cursor::start()).unwrap().cursor;
        // Where Messages may read it (the helper removes the photo otherwise).
        let photo = attachments(&f).join("photo.png");
        std::fs::write(&photo, b"\x89PNG not really").unwrap();

        let kind = perform_and_scan(
            &server,
            &db,
            &mut cursor,
            &guid,
            HelperAction::Rename {
                chat: chat.clone(),
                name: "Trip".into(),
            },
        )
        .await;
        assert_eq!(
            kind,
            ChangeKind::Renamed {
                name: Some("Trip".into())
            }
        );
        let g = db.group(guid.as_str()).unwrap().unwrap();
        assert_eq!(g.display_name.as_deref(), Some("Trip"), "{version:?}");

        let kind = perform_and_scan(
            &server,
            &db,
            &mut cursor,
            &guid,
            HelperAction::AddParticipant {
                chat: chat.clone(),
                address: "carol@example.com".into(),
            },
        )
        .await;
        assert_eq!(
            kind,
            ChangeKind::ParticipantAdded {
                target: Party::Address("carol@example.com".into())
            }
        );

        let kind = perform_and_scan(
            &server,
            &db,
            &mut cursor,
            &guid,
            HelperAction::RemoveParticipant {
                chat: chat.clone(),
                address: "bob@example.com".into(),
            },
        )
        .await;
        assert_eq!(
            kind,
            ChangeKind::ParticipantRemoved {
                target: Party::Address("bob@example.com".into())
            }
        );
        let g = db.group(guid.as_str()).unwrap().unwrap();
        assert_eq!(g.participants, ["alice@example.com", "carol@example.com"]);

        let kind = perform_and_scan(
            &server,
            &db,
            &mut cursor,
            &guid,
            HelperAction::SetIcon {
                chat: chat.clone(),
                file: photo.clone(),
            },
        )
        .await;
        let ChangeKind::IconSet { icon: Some(icon) } = kind else {
            panic!("{version:?}: {kind:?}");
        };
        let stored = icon.path.clone().expect("the photo's path");
        assert!(stored.starts_with(f.home().join("Library/Messages/Attachments")));
        assert_eq!(
            std::fs::read(&stored).unwrap(),
            std::fs::read(&photo).unwrap()
        );
        assert_eq!(icon.mime_type.as_deref(), Some("image/png"));
        let g = db.group(guid.as_str()).unwrap().unwrap();
        assert_eq!(
            g.icon.as_ref(),
            Some(&icon),
            "groupPhotoGuid names the new attachment"
        );

        let kind = perform_and_scan(
            &server,
            &db,
            &mut cursor,
            &guid,
            HelperAction::RemoveIcon { chat: chat.clone() },
        )
        .await;
        assert_eq!(kind, ChangeKind::IconRemoved);
        assert_eq!(db.group(guid.as_str()).unwrap().unwrap().icon, None);

        let kind = perform_and_scan(
            &server,
            &db,
            &mut cursor,
            &guid,
            HelperAction::Leave { chat: chat.clone() },
        )
        .await;
        assert_eq!(kind, ChangeKind::Left);
    }
}

#[tokio::test]
async fn concurrent_actions_are_each_answered() {
    let f = Fixture::new(Version::Tahoe);
    let (guid, chat) = group(&f);
    let server = Arc::new(server().await);
    let _helper = fake(&server, &f, FakeReply::Apply).await;
    let actions = [
        HelperAction::Rename {
            chat: chat.clone(),
            name: "One".into(),
        },
        HelperAction::AddParticipant {
            chat: chat.clone(),
            address: "+15550001".into(),
        },
        HelperAction::RemoveParticipant {
            chat: chat.clone(),
            address: "alice@example.com".into(),
        },
    ];
    let tasks: Vec<_> = actions
        .into_iter()
        .map(|action| {
            let server = server.clone();
            tokio::spawn(async move { server.perform(&action).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let changes = f.open().scan(&Cursor::start()).unwrap().changes;
    assert_eq!(changes.len(), 3);
    assert!(changes
        .iter()
        .all(|c| c.chat == guid && c.actor == Party::Me));
}

#[tokio::test]
async fn not_connected_without_a_helper() {
    let f = Fixture::new(Version::Monterey);
    let (_, chat) = group(&f);
    let server = server().await;
    assert!(!server.is_connected());
    let err = server
        .perform(&HelperAction::Leave { chat })
        .await
        .unwrap_err();
    assert_eq!(err, ActuatorError::NotConnected);
    assert!(f.open().scan(&Cursor::start()).unwrap().changes.is_empty());
}

#[tokio::test]
async fn a_helper_that_reconnects_is_used_again() {
    let f = Fixture::new(Version::Tahoe);
    let (_, chat) = group(&f);
    let server = server().await;
    let rename = |name: &str| HelperAction::Rename {
        chat: chat.clone(),
        name: name.into(),
    };

    let first = fake(&server, &f, FakeReply::Apply).await;
    server.perform(&rename("A")).await.unwrap();
    first.disconnect().await;
    server.disconnected().await;
    assert_eq!(
        server.perform(&rename("B")).await.unwrap_err(),
        ActuatorError::NotConnected
    );

    let _second = fake(&server, &f, FakeReply::Apply).await;
    server.perform(&rename("C")).await.unwrap();
    let names: Vec<_> = f
        .open()
        .scan(&Cursor::start())
        .unwrap()
        .changes
        .into_iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(
        names,
        [
            ChangeKind::Renamed {
                name: Some("A".into())
            },
            ChangeKind::Renamed {
                name: Some("C".into())
            },
        ]
    );
}

#[tokio::test]
async fn a_silent_helper_times_out() {
    let f = Fixture::new(Version::Tahoe);
    let (_, chat) = group(&f);
    let server = server().await.with_timeout(Duration::from_millis(300));
    let helper = fake(&server, &f, FakeReply::Silent).await;
    let err = server
        .perform(&HelperAction::Leave { chat })
        .await
        .unwrap_err();
    assert_eq!(err, ActuatorError::Timeout);
    assert_eq!(helper.handled(), 1, "the request did arrive");
    assert!(f.open().scan(&Cursor::start()).unwrap().changes.is_empty());
}

#[tokio::test]
async fn a_helper_that_drops_before_answering_fails_the_action_at_once() {
    let f = Fixture::new(Version::Tahoe);
    let (_, chat) = group(&f);
    // A long timeout: the action must fail because the connection closed, not time out.
    let server = server().await.with_timeout(Duration::from_secs(60));
    let helper = fake(&server, &f, FakeReply::Silent).await;
    let leave = HelperAction::Leave { chat };
    let perform = server.perform(&leave);
    let drop_helper = async {
        helper.wait_handled(1).await;
        helper.disconnect().await;
    };
    let (result, ()) = tokio::join!(perform, drop_helper);
    assert_eq!(result.unwrap_err(), ActuatorError::NotConnected);
}

#[tokio::test]
async fn the_helpers_errors_are_rejections() {
    let f = Fixture::new(Version::Monterey);
    let (_, chat) = group(&f);
    let server = server().await;
    let _helper = fake(
        &server,
        &f,
        FakeReply::Reject("Failed to add address to chat!".into()),
    )
    .await;
    let err = server
        .perform(&HelperAction::AddParticipant {
            chat,
            address: "dave@example.com".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ActuatorError::Rejected("Failed to add address to chat!".into())
    );
}

#[tokio::test]
async fn an_unknown_chat_or_non_member_is_rejected_as_messages_would() {
    let f = Fixture::new(Version::Tahoe);
    let (_, chat) = group(&f);
    let server = server().await;
    let _helper = fake(&server, &f, FakeReply::Apply).await;
    let missing = HelperChat::from_helper_guid("iMessage;+;nosuchchat").unwrap();
    let err = server
        .perform(&HelperAction::Leave { chat: missing })
        .await
        .unwrap_err();
    assert_eq!(err, ActuatorError::Rejected("Chat does not exist!".into()));
    let err = server
        .perform(&HelperAction::RemoveParticipant {
            chat,
            address: "nobody@example.com".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ActuatorError::Rejected("Failed to remove address from chat!".into())
    );
    assert!(f.open().scan(&Cursor::start()).unwrap().changes.is_empty());
}

/// The binary other languages' tests run: it connects, applies and acknowledges.
#[tokio::test]
async fn the_fake_helper_binary_serves_a_server() {
    let f = Fixture::new(Version::Tahoe);
    let (guid, chat) = group(&f);
    let server = server().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgroups-fake-helper"))
        .arg("--db")
        .arg(f.path())
        .arg("--connect")
        .arg(server.local_addr().to_string())
        .arg("--delay-ms")
        .arg("1")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    server.connected().await;
    server
        .perform(&HelperAction::Rename {
            chat,
            name: "From the binary".into(),
        })
        .await
        .unwrap();
    let changes = f.open().scan(&Cursor::start()).unwrap().changes;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].chat, guid);
    child.kill().await.unwrap();
}

/// Bug 1, end to end: on macOS 26 chat.db says `any;+;chat42`; the faithful fake looks that up
/// exactly, as the real helper does, so a rename must be sent with that GUID to work.
#[tokio::test]
async fn a_tahoe_any_guid_is_found_by_the_helper() {
    let f = Fixture::new(Version::Tahoe);
    let (guid, chat) = group(&f);
    let server = server().await;
    let _helper = fake(&server, &f, FakeReply::Apply).await;
    server
        .perform(&HelperAction::Rename {
            chat,
            name: "Found".into(),
        })
        .await
        .expect("the helper finds any;+;chat42");
    let g = f.open().group(guid.as_str()).unwrap().unwrap();
    assert_eq!(g.display_name.as_deref(), Some("Found"));
}

/// The faithful fake: a file Messages may not read makes the helper remove the photo, and it
/// still answers success (BlueBubblesHelper.m `update-group-photo`).
#[tokio::test]
async fn a_photo_outside_the_attachments_folder_removes_the_group_photo() {
    let f = Fixture::new(Version::Monterey);
    let (guid, chat) = group(&f);
    let server = server().await;
    let _helper = fake(&server, &f, FakeReply::Apply).await;
    let inside = attachments(&f).join("in.png");
    std::fs::write(&inside, b"\x89PNG").unwrap();
    server
        .perform(&HelperAction::SetIcon {
            chat: chat.clone(),
            file: inside,
        })
        .await
        .unwrap();
    assert!(f
        .open()
        .group(guid.as_str())
        .unwrap()
        .unwrap()
        .icon
        .is_some());
    let outside = f.home().join("elsewhere.png");
    std::fs::write(&outside, b"\x89PNG").unwrap();
    server
        .perform(&HelperAction::SetIcon {
            chat,
            file: outside,
        })
        .await
        .expect("answered success all the same");
    let changes = f.open().scan(&Cursor::start()).unwrap().changes;
    assert_eq!(
        changes.last().map(|c| &c.kind),
        Some(&ChangeKind::IconRemoved)
    );
    assert_eq!(f.open().group(guid.as_str()).unwrap().unwrap().icon, None);
}

/// Bug 5: a second connection (another injected app, or anything else greeting as Messages)
/// does not take the line from a helper that still answers.
#[tokio::test]
async fn a_second_connection_does_not_take_the_line_from_a_live_helper() {
    let f = Fixture::new(Version::Tahoe);
    let (guid, chat) = group(&f);
    let server = server().await;
    let first = fake(&server, &f, FakeReply::Apply).await;
    let connection = server.connection();
    // An impostor greeting as Messages: refused, since the first one answers the probe.
    let impostor = FakeHelper::connect(
        server.local_addr(),
        f.path(),
        FakeHelperOptions {
            reply: FakeReply::Reject("stolen".into()),
            ..FakeHelperOptions::default()
        },
    )
    .await
    .unwrap();
    first.wait_handled(1).await;
    let closed = impostor.closed();
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the impostor's connection is closed")
        .ok();
    assert_eq!(
        server.connection(),
        connection,
        "the first helper keeps the line"
    );
    server
        .perform(&HelperAction::Rename {
            chat,
            name: "Still mine".into(),
        })
        .await
        .expect("the write reaches the first helper");
    assert_eq!(
        f.open()
            .group(guid.as_str())
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Still mine")
    );
    assert_eq!(first.handled(), 2, "the probe, then the rename");
}

/// A helper that no longer answers is replaced by a new Messages connection.
#[tokio::test]
async fn a_helper_that_does_not_answer_is_replaced() {
    let f = Fixture::new(Version::Tahoe);
    let (_, chat) = group(&f);
    let options = HelperOptions {
        probe_timeout: Duration::from_millis(200),
        ..HelperOptions::default()
    };
    let server = BlueBubblesHelper::bind_with("127.0.0.1:0", options)
        .await
        .unwrap()
        .with_write_gap(Duration::from_millis(5))
        .with_timeout(Duration::from_secs(10));
    let _stuck = fake(&server, &f, FakeReply::Silent).await;
    let stuck = server.connection();
    let _fresh = FakeHelper::connect(server.local_addr(), f.path(), FakeHelperOptions::default())
        .await
        .unwrap();
    let mut rx = 0;
    while server.connection() == stuck {
        rx += 1;
        assert!(rx < 500, "the new helper never took over");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server
        .perform(&HelperAction::Rename {
            chat,
            name: "New".into(),
        })
        .await
        .expect("the new helper answers");
}

/// Another injected app (its `ping` names FaceTime) is not given writes.
#[tokio::test]
async fn a_helper_inside_another_app_is_not_given_writes() {
    let f = Fixture::new(Version::Tahoe);
    let (_, chat) = group(&f);
    let server = server().await;
    let facetime = FakeHelper::connect(
        server.local_addr(),
        f.path(),
        FakeHelperOptions {
            process: Some("com.apple.FaceTime".into()),
            ..FakeHelperOptions::default()
        },
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), facetime.closed())
        .await
        .expect("closed by the server")
        .ok();
    assert!(!server.is_connected());
    let err = server
        .perform(&HelperAction::Leave { chat })
        .await
        .unwrap_err();
    assert_eq!(err, ActuatorError::NotConnected);
}

/// A connection that never ends its line is cut off at the cap, holding no more than it.
#[tokio::test]
async fn an_endless_line_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let f = Fixture::new(Version::Tahoe);
    let (_, _) = group(&f);
    let options = HelperOptions {
        max_line: 64 * 1024,
        ..HelperOptions::default()
    };
    let server = BlueBubblesHelper::bind_with("127.0.0.1:0", options)
        .await
        .unwrap();
    let _helper = fake(&server, &f, FakeReply::Apply).await;
    let mut flood = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0;
    let cut = loop {
        match tokio::time::timeout(Duration::from_secs(5), flood.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
        if sent > 64 * 1024 * 1024 {
            break false;
        }
    };
    assert!(cut, "the connection was closed after {sent} bytes");
    assert!(server.is_connected(), "the real helper keeps the line");
}

/// Only loopback addresses, unless asked.
#[tokio::test]
async fn a_non_loopback_address_is_refused_unless_allowed() {
    let err = match BlueBubblesHelper::bind("0.0.0.0:0").await {
        Ok(_) => panic!("bound 0.0.0.0"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("--helper-allow-remote"), "{err}");
    let allowed = HelperOptions {
        allow_remote: true,
        ..HelperOptions::default()
    };
    BlueBubblesHelper::bind_with("0.0.0.0:0", allowed)
        .await
        .expect("allowed explicitly");
}

/// The peer check: a connection from a process that does not run the expected program is
/// closed before anything is read (here the test itself is "not Messages").
#[tokio::test]
async fn a_process_that_is_not_messages_is_refused() {
    let f = Fixture::new(Version::Tahoe);
    let (_, _) = group(&f);
    let only_messages = HelperOptions {
        peer: Some(Arc::new(ProcessCheck::running(
            Arc::new(RealSystem),
            MESSAGES_EXECUTABLES
                .iter()
                .map(std::path::PathBuf::from)
                .collect(),
        ))),
        ..HelperOptions::default()
    };
    let server = BlueBubblesHelper::bind_with("127.0.0.1:0", only_messages)
        .await
        .unwrap();
    let helper = FakeHelper::connect(server.local_addr(), f.path(), FakeHelperOptions::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), helper.closed())
        .await
        .expect("refused")
        .ok();
    assert!(!server.is_connected());

    // The same process passes the default check (this user's processes, off macOS).
    let server = BlueBubblesHelper::bind_with("127.0.0.1:0", HelperOptions::default())
        .await
        .unwrap();
    let _helper = FakeHelper::connect(server.local_addr(), f.path(), FakeHelperOptions::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.connected())
        .await
        .expect("admitted");
}

/// The check's decisions on scripted `lsof` answers: another user, another program.
#[test]
fn the_peer_check_refuses_other_users_and_other_programs() {
    let listener: std::net::SocketAddr = "127.0.0.1:45670".parse().unwrap();
    let peer: std::net::SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let messages = MESSAGES_EXECUTABLES[0];
    let check = |uid: u32, exe: &str| {
        let system = Arc::new(ScriptedSystem::new(501));
        system.answer(
            "lsof",
            0,
            &format!("p77\nu{uid}\nn127.0.0.1:50000->127.0.0.1:45670\nn{exe}\n"),
        );
        ProcessCheck::running(system, vec![messages.into()]).check(listener, peer)
    };
    assert!(check(501, messages).is_ok());
    let other_user = check(502, messages).unwrap_err();
    assert!(other_user.contains("user 502"), "{other_user}");
    let other_program = check(501, "/usr/bin/nc").unwrap_err();
    assert!(other_program.contains("not Messages"), "{other_program}");
    let no_lsof = ProcessCheck::same_user(Arc::new(ScriptedSystem::new(501)))
        .check(listener, peer)
        .unwrap_err();
    assert!(no_lsof.contains("lsof"), "{no_lsof}");
}

/// Typing indicators reach Messages as `start-typing` / `stop-typing` with `chat.guid` exactly
/// as chat.db holds it, in groups and direct chats; Messages stores nothing for them; an
/// unknown chat is refused as the real helper refuses it.
#[tokio::test]
async fn typing_indicators_reach_messages_with_the_chat_guid_unchanged() {
    for version in [Version::Monterey, Version::Tahoe] {
        let f = Fixture::new(version);
        let (_, chat) = group(&f);
        let bob = f.handle("+15550002222");
        let service = if version == Version::Tahoe {
            "any"
        } else {
            "iMessage"
        };
        f.direct(service, "+15550002222", bob);
        let direct = f
            .open()
            .direct_helper_chat("+15550002222")
            .unwrap()
            .expect("the direct chat");
        let server = server().await;
        let helper = fake(&server, &f, FakeReply::Apply).await;
        let before = f.open().all_messages().unwrap().len();

        for (chat, typing) in [(&chat, true), (&chat, false), (&direct, true)] {
            server
                .perform(&HelperAction::SetTyping {
                    chat: chat.clone(),
                    typing,
                })
                .await
                .unwrap();
        }
        let raw_group = if version == Version::Tahoe {
            "any;+;chat42"
        } else {
            "iMessage;+;chat42"
        };
        let raw_direct = format!("{service};-;+15550002222");
        assert_eq!(
            helper.typing(),
            [
                TypingSeen {
                    chat_guid: raw_group.into(),
                    typing: true
                },
                TypingSeen {
                    chat_guid: raw_group.into(),
                    typing: false
                },
                TypingSeen {
                    chat_guid: raw_direct,
                    typing: true
                },
            ],
            "{version:?}"
        );
        assert_eq!(f.open().all_messages().unwrap().len(), before, "no row");

        let missing = HelperChat::from_helper_guid("iMessage;+;nosuchchat").unwrap();
        let err = server
            .perform(&HelperAction::SetTyping {
                chat: missing,
                typing: true,
            })
            .await
            .unwrap_err();
        assert_eq!(err, ActuatorError::Rejected("Chat does not exist!".into()));
        assert_eq!(helper.typing().len(), 3, "nothing shown");
    }
}

/// The binary prints each typing indicator it carried out, for tests in other languages.
#[tokio::test]
async fn the_fake_helper_binary_prints_typing_indicators() {
    use tokio::io::AsyncBufReadExt;

    let f = Fixture::new(Version::Tahoe);
    let (_, chat) = group(&f);
    let server = server().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgroups-fake-helper"))
        .arg("--db")
        .arg(f.path())
        .arg("--connect")
        .arg(server.local_addr().to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    server.connected().await;
    for typing in [true, false] {
        server
            .perform(&HelperAction::SetTyping {
                chat: chat.clone(),
                typing,
            })
            .await
            .unwrap();
    }
    let mut printed = Vec::new();
    while printed.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a line within 10 s")
            .unwrap()
            .expect("the binary runs");
        printed.push(line);
    }
    assert!(printed[0].starts_with("connected "), "{printed:?}");
    assert_eq!(
        printed[1..],
        ["typing on any;+;chat42", "typing off any;+;chat42"]
    );
    child.kill().await.unwrap();
}
