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

/// Messages I received and then read — in Messages on this Mac or on another device, which
/// sets their `date_read` — are found once, as one read per chat and scan, by me, with each
/// message's own read date; a message first seen already read carries its read state instead.
#[test]
fn my_reads_from_any_device_are_found_once_per_chat() {
    for version in ALL {
        let f = Fixture::new(version);
        let c = chats(&f);
        let post = |chat, guid, handle, minute| {
            f.post(
                chat,
                Msg {
                    guid,
                    text: Some("hi"),
                    handle,
                    minute,
                    ..Msg::default()
                },
            )
        };
        let g1 = post(c.group, "G-1", c.alice, 1);
        let g2 = post(c.group, "G-2", c.bob, 2);
        let d1 = post(c.direct, "D-1", c.bob, 3);
        let mine = f.post(
            c.group,
            Msg {
                guid: "G-MINE",
                text: Some("mine"),
                from_me: true,
                minute: 4,
                ..Msg::default()
            },
        );
        let db = f.open();
        let first = db.scan_messages(&MessageCursor::start()).unwrap();
        assert_eq!(first.events.len(), 4, "{version:?}");
        // The cursor survives as text, as the caller stores it.
        let cursor: MessageCursor = first.cursor.to_string().parse().unwrap();

        // Read on the phone: both group messages, then the direct one; my own message's
        // `date_read` is no read of mine.
        for (row, minute) in [(g1, 10), (g2, 11), (d1, 12), (mine, 13)] {
            f.set(row, "is_read", 1);
            f.set(row, "date_read", f.date(minute));
        }
        let scan = db.scan_messages(&cursor).unwrap();
        let reads: Vec<_> = scan
            .events
            .iter()
            .map(|e| (e.chat.clone(), e.actor.clone(), e.kind.clone(), e.id()))
            .collect();
        let ts = |minute| Timestamp::from_apple(f.date(minute));
        assert_eq!(
            reads,
            [
                (
                    Conversation::Group(imgroups_chatdb::ChatGuid::parse("any;+;chat77").unwrap()),
                    Party::Me,
                    MessageEventKind::MarkedRead {
                        messages: vec![("G-1".into(), ts(10)), ("G-2".into(), ts(11))]
                    },
                    format!("G-2/seen/{}", f.date(11)),
                ),
                (
                    Conversation::Direct("+15550002222".into()),
                    Party::Me,
                    MessageEventKind::MarkedRead {
                        messages: vec![("D-1".into(), ts(12))]
                    },
                    format!("D-1/seen/{}", f.date(12)),
                ),
            ],
            "{version:?}"
        );
        assert_eq!(scan.events[0].at, ts(11), "dated by the newest read");
        // Found once.
        let again = db.scan_messages(&scan.cursor).unwrap();
        assert!(again.events.is_empty(), "{:?}", again.events);

        // A message that arrives read (the chat was open) says so itself; no read event.
        let g3 = post(c.group, "G-3", c.alice, 20);
        f.set(g3, "is_read", 1);
        f.set(g3, "date_read", f.date(21));
        let arrived = db.scan_messages(&again.cursor).unwrap();
        assert_eq!(arrived.events.len(), 1);
        let MessageEventKind::Said { read_at, .. } = &arrived.events[0].kind else {
            panic!("{:?}", arrived.events[0].kind);
        };
        assert_eq!(*read_at, Some(ts(21)));
        assert!(db.scan_messages(&arrived.cursor).unwrap().events.is_empty());

        // A cursor of the previous version (no read mark) finds the reads in the window again;
        // the caller's state tells what it recorded already.
        let old = format!("m1:{}:0:0:0", arrived.cursor.after_rowid());
        let upgraded = db.scan_messages(&old.parse().unwrap()).unwrap();
        assert!(upgraded
            .events
            .iter()
            .all(|e| matches!(e.kind, MessageEventKind::MarkedRead { .. })));
        assert!(db
            .scan_messages(&upgraded.cursor)
            .unwrap()
            .events
            .is_empty());
    }
}

/// Read a window at a time, a scan gives the same events in the same order as read whole,
/// whatever the window's size and however far the dates stray from ROWID order; and a scan
/// cut short after any event resumes from its `through` cursor with exactly the events after
/// it, ending at the same cursor.
#[test]
fn windows_and_resumed_scans_give_the_whole_scan_in_date_order() {
    let f = Fixture::new(Version::Tahoe);
    let c = chats(&f);
    // Minutes out of ROWID order (a backfill), two rows of one minute, rows from a window
    // back, and one row without its chat yet.
    let minutes = [5, 3, 9, 1, 7, 7, 2, 40, 8, 6, 4, 30, 10, 0, 11, 12];
    for (i, minute) in minutes.iter().enumerate() {
        let guid = format!("W-{i}");
        let text = format!("text {i}");
        let chat = if i % 3 == 0 { c.direct } else { c.group };
        f.post(
            chat,
            Msg {
                guid: &guid,
                text: Some(&text),
                handle: if i % 2 == 0 { c.alice } else { c.bob },
                from_me: i % 4 == 1,
                minute: *minute,
                ..Msg::default()
            },
        );
    }
    f.message(Msg {
        guid: "W-NO-CHAT",
        text: Some("later"),
        handle: c.alice,
        minute: 13,
        ..Msg::default()
    });
    let db = f.open();
    let whole = db.scan_messages(&MessageCursor::start()).unwrap();
    assert_eq!(whole.events.len(), minutes.len());
    let keys: Vec<_> = whole.events.iter().map(MessageEvent::sort_key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "date order");
    for size in 1..=5 {
        let mut windows = db.message_windows(&MessageCursor::start(), size).unwrap();
        assert!(windows.first_read());
        let mut events = Vec::new();
        while let Some(mut window) = windows.next_window().unwrap() {
            assert!(window.len() <= size);
            events.append(&mut window);
        }
        assert_eq!(events, whole.events, "windows of {size}");
        assert_eq!(windows.cursor(), Some(&whole.cursor));
    }
    for cut in 0..whole.events.len() {
        let windows = db.message_windows(&MessageCursor::start(), 3).unwrap();
        let through = windows.through(whole.events[cut].sort_key());
        let text = through.to_string();
        let mut resumed = db.message_windows(&text.parse().unwrap(), 3).unwrap();
        assert!(resumed.first_read());
        let mut events = Vec::new();
        while let Some(mut window) = resumed.next_window().unwrap() {
            events.append(&mut window);
        }
        assert_eq!(events, whole.events[cut + 1..], "resumed after event {cut}");
        assert_eq!(resumed.cursor(), Some(&whole.cursor));
    }
    // A later scan is no first read.
    assert!(!db.message_windows(&whole.cursor, 3).unwrap().first_read());
}

/// A message joined to several chats is the first chat's by `chat_message_join.chat_id`,
/// whatever order the joins were written in (the rows come by ROWID only; each message's
/// joins are ordered by chat in Rust): in one scan, in windows of any size, and in the
/// events of an edit found later.
#[test]
fn a_message_in_two_chats_is_the_lower_chats_in_every_read() {
    for version in ALL {
        let f = Fixture::new(version);
        let alice = f.handle("alice@example.com");
        let first = f.group("iMessage;+;chatA", Some("A"), None);
        let second = f.group("iMessage;+;chatB", Some("B"), None);
        for chat in [first, second] {
            f.member(chat, alice);
        }
        // Joined to the later chat first, then to the earlier one.
        let late_join = f.post(
            second,
            Msg {
                guid: "J-1",
                text: Some("twice"),
                handle: alice,
                minute: 1,
                ..Msg::default()
            },
        );
        f.join(first, late_join);
        let early_join = f.post(
            first,
            Msg {
                guid: "J-2",
                text: Some("twice too"),
                from_me: true,
                minute: 2,
                ..Msg::default()
            },
        );
        f.join(second, early_join);
        let chat_a = Conversation::Group(imgroups_chatdb::ChatGuid::parse("any;+;chatA").unwrap());
        let db = f.open();
        let whole = db.scan_messages(&MessageCursor::start()).unwrap();
        let seen: Vec<_> = whole
            .events
            .iter()
            .map(|e| (e.guid.as_str(), e.chat.clone()))
            .collect();
        assert_eq!(
            seen,
            [("J-1", chat_a.clone()), ("J-2", chat_a.clone())],
            "{version:?}"
        );
        for size in 1..=3 {
            let mut windows = db.message_windows(&MessageCursor::start(), size).unwrap();
            let mut events = Vec::new();
            while let Some(mut window) = windows.next_window().unwrap() {
                events.append(&mut window);
            }
            assert_eq!(events, whole.events, "{version:?}, windows of {size}");
        }
        if f.set(late_join, "date_edited", f.date(3)) {
            f.set(late_join, "text", "twice, edited");
            let scan = db.scan_messages(&whole.cursor).unwrap();
            let edits: Vec<_> = scan
                .events
                .iter()
                .map(|e| (e.guid.as_str(), e.chat.clone(), e.kind.clone()))
                .collect();
            assert_eq!(
                edits,
                [(
                    "J-1",
                    chat_a.clone(),
                    MessageEventKind::Edited {
                        text: "twice, edited".into()
                    }
                )],
                "{version:?}"
            );
        }
    }
}
