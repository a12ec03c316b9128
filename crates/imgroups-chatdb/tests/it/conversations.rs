//! Message rows of group and direct chats, on every layout: what is said (in `text`, or only in
//! `attributedBody`), tapbacks, replies, edits, unsends and read receipts, whole and
//! incrementally.

use imgroups_chatdb::testing::{attributed_body, Fixture, Msg, Version, ALL};
use imgroups_chatdb::{
    Conversation, MessageCursor, MessageEvent, MessageEventKind, Party, Tapback, Timestamp,
};

struct Chats {
    group: i64,
    direct: i64,
    alice: i64,
    bob: i64,
}

fn chats(f: &Fixture) -> Chats {
    let alice = f.handle("alice@example.com");
    let bob = f.handle("+15550002222");
    let group = f.group("iMessage;+;chat77", Some("Team"), None);
    f.member(group, alice);
    f.member(group, bob);
    let direct = f.direct("iMessage", "+15550002222", bob);
    Chats {
        group,
        direct,
        alice,
        bob,
    }
}

fn said(e: &MessageEvent) -> (&str, &str) {
    match &e.kind {
        MessageEventKind::Said { text, .. } => (e.guid.as_str(), text.as_str()),
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn messages_of_groups_and_direct_chats_with_text_from_either_column() {
    for version in ALL {
        let f = Fixture::new(version);
        let c = chats(&f);
        f.post(
            c.group,
            Msg {
                guid: "G-1",
                text: Some("hello all"),
                handle: c.alice,
                minute: 1,
                ..Msg::default()
            },
        );
        // macOS 13 and later: the text only in attributedBody.
        let body_only = f.post(
            c.group,
            Msg {
                guid: "G-2",
                text: None,
                from_me: true,
                minute: 2,
                ..Msg::default()
            },
        );
        f.set(
            body_only,
            "attributedBody",
            attributed_body("see you at 8 ❤️"),
        );
        let dm = f.post(
            c.direct,
            Msg {
                guid: "D-1",
                text: Some("psst"),
                handle: c.bob,
                minute: 3,
                ..Msg::default()
            },
        );
        f.set(dm, "thread_originator_guid", "G-1");
        f.set(dm, "subject", "re");
        // Attachments only: no text anywhere; nothing to serve yet.
        f.post(
            c.group,
            Msg {
                guid: "G-3",
                text: None,
                handle: c.alice,
                minute: 4,
                ..Msg::default()
            },
        );
        let events = f.open().all_messages().unwrap();
        let texts: Vec<_> = events.iter().map(said).collect();
        assert_eq!(
            texts,
            [
                ("G-1", "hello all"),
                ("G-2", "see you at 8 ❤️"),
                ("D-1", "psst")
            ],
            "{version:?}"
        );
        assert_eq!(
            events[0].chat,
            Conversation::Group(imgroups_chatdb::ChatGuid::parse("any;+;chat77").unwrap())
        );
        assert_eq!(events[0].actor, Party::Address("alice@example.com".into()));
        assert_eq!(events[1].actor, Party::Me);
        assert_eq!(events[2].chat, Conversation::Direct("+15550002222".into()));
        let MessageEventKind::Said {
            reply_to, subject, ..
        } = &events[2].kind
        else {
            unreachable!()
        };
        if version != Version::Sierra {
            assert_eq!(reply_to.as_deref(), Some("G-1"), "{version:?}");
        }
        assert_eq!(subject.as_deref(), Some("re"));
        assert_eq!(
            events[0].at,
            Timestamp::from_unix_nanos(
                (imgroups_chatdb::testing::BASE_UNIX_MS + 60_000) * 1_000_000
            )
        );
    }
}

#[test]
fn tapbacks_set_and_removed_with_their_target() {
    for version in ALL {
        let f = Fixture::new(version);
        let c = chats(&f);
        f.post(
            c.group,
            Msg {
                guid: "G-1",
                text: Some("hello"),
                handle: c.alice,
                minute: 1,
                ..Msg::default()
            },
        );
        for (guid, kind, minute) in [("R-1", 2000, 2), ("R-2", 3000, 3), ("R-3", 2003, 4)] {
            let r = f.post(
                c.group,
                Msg {
                    guid,
                    text: Some("Loved “hello”"),
                    from_me: true,
                    minute,
                    ..Msg::default()
                },
            );
            f.set(r, "associated_message_type", kind);
            f.set(r, "associated_message_guid", "p:0/G-1");
        }
        let events = f.open().all_messages().unwrap();
        let reactions: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.kind {
                MessageEventKind::Reaction {
                    target,
                    tapback,
                    set,
                } => Some((e.guid.as_str(), target.as_str(), tapback.clone(), *set)),
                _ => None,
            })
            .collect();
        assert_eq!(
            reactions,
            [
                ("R-1", "G-1", Tapback::Love, true),
                ("R-2", "G-1", Tapback::Love, false),
                ("R-3", "G-1", Tapback::Laugh, true),
            ],
            "{version:?}"
        );
    }
}

#[test]
fn emoji_tapbacks_on_macos_26() {
    let f = Fixture::new(Version::Tahoe);
    let c = chats(&f);
    f.post(
        c.direct,
        Msg {
            guid: "D-1",
            text: Some("hi"),
            from_me: true,
            minute: 1,
            ..Msg::default()
        },
    );
    let r = f.post(
        c.direct,
        Msg {
            guid: "R-1",
            text: Some("Reacted 🔥 to “hi”"),
            handle: c.bob,
            minute: 2,
            ..Msg::default()
        },
    );
    f.set(r, "associated_message_type", 2006);
    f.set(r, "associated_message_guid", "p:0/D-1");
    f.set(r, "associated_message_emoji", "🔥");
    let events = f.open().all_messages().unwrap();
    assert_eq!(
        events[1].kind,
        MessageEventKind::Reaction {
            target: "D-1".into(),
            tapback: Tapback::Emoji("🔥".into()),
            set: true
        }
    );
    assert_eq!(events[1].actor, Party::Address("+15550002222".into()));
}

/// Edits, unsends and receipts change rows already read: found by their dates, each once.
#[test]
fn edits_unsends_and_receipts_are_found_once_each() {
    for version in [Version::Ventura, Version::Tahoe] {
        let f = Fixture::new(version);
        let c = chats(&f);
        let mine = f.post(
            c.direct,
            Msg {
                guid: "D-1",
                text: Some("draft"),
                from_me: true,
                minute: 1,
                ..Msg::default()
            },
        );
        let other = f.post(
            c.group,
            Msg {
                guid: "G-1",
                text: Some("oops"),
                from_me: true,
                minute: 2,
                ..Msg::default()
            },
        );
        let db = f.open();
        let first = db.scan_messages(&MessageCursor::start()).unwrap();
        assert_eq!(first.events.len(), 2);
        let cursor = first.cursor;

        // Nothing changed: nothing new.
        let again = db.scan_messages(&cursor).unwrap();
        assert!(again.events.is_empty());
        assert_eq!(again.cursor, cursor);

        f.set(mine, "text", "final");
        f.set(mine, "date_edited", f.date(3));
        f.set(mine, "date_read", f.date(4));
        f.set(other, "text", "");
        f.set(other, "date_retracted", f.date(5));
        let scan = db.scan_messages(&cursor).unwrap();
        let seen: Vec<_> = scan
            .events
            .iter()
            .map(|e| (e.guid.as_str(), e.kind.clone(), e.actor.clone(), e.id()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "D-1",
                    MessageEventKind::Edited {
                        text: "final".into()
                    },
                    Party::Me,
                    format!("D-1/edit/{}", f.date(3))
                ),
                (
                    "D-1",
                    MessageEventKind::Read,
                    Party::Address("+15550002222".into()),
                    "D-1/read".into()
                ),
                (
                    "G-1",
                    MessageEventKind::Unsent,
                    Party::Me,
                    "G-1/unsent".into()
                ),
            ],
            "{version:?}"
        );
        // A second edit is a new event; the rest is not repeated.
        f.set(mine, "text", "final 2");
        f.set(mine, "date_edited", f.date(6));
        let later = db.scan_messages(&scan.cursor).unwrap();
        assert_eq!(later.events.len(), 1);
        assert_eq!(
            later.events[0].kind,
            MessageEventKind::Edited {
                text: "final 2".into()
            }
        );
        assert!(db.scan_messages(&later.cursor).unwrap().events.is_empty());

        // Read whole again, each message comes once, as it is now.
        let whole = db.all_messages().unwrap();
        assert_eq!(whole.len(), 2);
        let MessageEventKind::Said {
            text,
            edited_at,
            read_at,
            retracted_at,
            ..
        } = &whole[0].kind
        else {
            unreachable!()
        };
        assert_eq!(text, "final 2");
        assert!(edited_at.is_some() && read_at.is_some() && retracted_at.is_none());
        let MessageEventKind::Said {
            text, retracted_at, ..
        } = &whole[1].kind
        else {
            unreachable!()
        };
        assert_eq!(text, "");
        assert!(retracted_at.is_some());
    }
}

/// A message committed before its chat join is read once the join is there.
#[test]
fn a_message_without_its_chat_yet_comes_later() {
    let f = Fixture::new(Version::Tahoe);
    let c = chats(&f);
    let id = f.message(Msg {
        guid: "G-1",
        text: Some("early"),
        handle: c.alice,
        minute: 1,
        ..Msg::default()
    });
    let db = f.open();
    let scan = db.scan_messages(&MessageCursor::start()).unwrap();
    assert!(scan.events.is_empty());
    f.join(c.group, id);
    let scan = db.scan_messages(&scan.cursor).unwrap();
    assert_eq!(
        scan.events.iter().map(said).collect::<Vec<_>>(),
        [("G-1", "early")]
    );
    assert!(db.scan_messages(&scan.cursor).unwrap().events.is_empty());
}
