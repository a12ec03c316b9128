//! The write side: `BlueBubblesHelper` ⇄ `FakeHelper` over a real socket, and what the fake's
//! Messages writes, read back through `ChatDb::scan` — which proves the fake writes rows the
//! reader understands.

use std::sync::Arc;
use std::time::Duration;

use imgroups_chatdb::testing::{FakeHelper, FakeHelperOptions, FakeReply, Fixture, Version, ALL};
use imgroups_chatdb::{
    Actuator, ActuatorError, BlueBubblesHelper, ChangeKind, ChatDb, ChatGuid, Cursor, HelperAction,
    HelperChat, Party,
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

#[test]
fn helper_guids_use_the_service_name_for_any() {
    let guid = ChatGuid::parse("any;+;abc").unwrap();
    let chat = HelperChat::new(guid.clone(), "any;+;abc", Some("iMessage"));
    assert_eq!(chat.helper_guid(), "iMessage;+;abc");
    assert_eq!(chat.guid(), &guid);
    let kept = HelperChat::new(guid.clone(), "iMessage;+;abc", Some("iMessage"));
    assert_eq!(kept.helper_guid(), "iMessage;+;abc");
    let no_service = HelperChat::new(guid, "any;+;abc", None);
    assert_eq!(no_service.helper_guid(), "any;+;abc");
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
            assert_eq!(chat.helper_guid(), "iMessage;+;chat42");
        }
        let server = server().await;
        let _helper = fake(&server, &f, FakeReply::Apply).await;
        let db = f.open();
        let mut cursor = db.scan(&Cursor::start()).unwrap().cursor;
        let photo = f.home().join("photo.png");
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
