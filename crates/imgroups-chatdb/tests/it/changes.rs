//! Golden tests: one fixture with a row for every `(item_type, group_action_type)` pair and
//! the rows that must be ignored, read back on every schema version.

use std::path::Path;

use imgroups_chatdb::{Change, ChangeKind, Party, Timestamp};

use crate::fixture::{properties, Fixture, Msg, Version, ALL, BASE_UNIX_MS};

pub(crate) fn party(p: &Party) -> String {
    match p {
        Party::Me => "me".into(),
        Party::Address(a) => a.clone(),
        Party::Unknown => "?".into(),
    }
}

/// One line per change; paths relative to the fixture's home, times in minutes after the base.
pub(crate) fn render(home: &Path, c: &Change) -> String {
    let kind = match &c.kind {
        ChangeKind::ParticipantAdded { target } => format!("added {}", party(target)),
        ChangeKind::ParticipantRemoved { target } => format!("removed {}", party(target)),
        ChangeKind::Renamed { name } => format!("renamed {name:?}"),
        ChangeKind::Left => "left".into(),
        ChangeKind::IconSet { icon: None } => "icon-set (no attachment)".into(),
        ChangeKind::IconSet { icon: Some(icon) } => format!(
            "icon-set {} {} {}",
            icon.attachment_guid,
            icon.path
                .as_deref()
                .map(|p| p.strip_prefix(home).unwrap_or(p).display().to_string())
                .unwrap_or_else(|| "-".into()),
            icon.mime_type.as_deref().unwrap_or("-"),
        ),
        ChangeKind::IconRemoved => "icon-removed".into(),
        ChangeKind::Unrecognised {
            item_type,
            group_action_type,
        } => format!("unrecognised ({item_type},{group_action_type})"),
    };
    let minutes = (c.occurred_at.unix_millis() - BASE_UNIX_MS) as f64 / 60_000.0;
    format!(
        "{} {} {} by {} at +{minutes}m: {kind}",
        c.rowid,
        c.guid,
        c.chat,
        party(&c.actor)
    )
}

/// The golden fixture; returns it with its expected rendering.
fn every_pair(version: Version) -> Fixture {
    let f = Fixture::new(version);
    let alice = f.handle("+15550001");
    let bob = f.handle("bob@example.com");
    let carol = f.handle("+15550003");
    let hikers = f.group(
        "iMessage;+;chat100",
        Some("Hikers"),
        Some(properties(Some("at_photo_1"))),
    );
    let tahoe_form = f.group("any;+;5f3c9a", None, Some(properties(None)));
    let dm = f.chat("iMessage;-;+15550001", 45, None, None);
    for (chat, h) in [(hikers, alice), (hikers, bob), (tahoe_form, carol)] {
        f.member(chat, h);
    }
    let photo = f.attachment(
        "at_photo_1",
        Some("~/Library/Messages/Attachments/ab/11/at_photo_1/GroupPhotoImage.jpeg"),
        Some("image/jpeg"),
    );
    let m = |guid, item_type, action, minute| Msg {
        guid,
        item_type,
        action,
        minute,
        ..Msg::default()
    };
    f.post(
        hikers,
        Msg {
            handle: alice,
            other: bob,
            ..m("G-ADD", 1, 0, 1)
        },
    );
    f.post(
        hikers,
        Msg {
            from_me: true,
            other: carol,
            ..m("G-REMOVE", 1, 1, 2)
        },
    );
    f.post(
        hikers,
        Msg {
            handle: bob,
            title: Some("Hikers"),
            ..m("G-RENAME", 2, 0, 3)
        },
    );
    f.post(
        tahoe_form,
        Msg {
            from_me: true,
            ..m("G-UNNAME", 2, 0, 4)
        },
    );
    f.post(
        tahoe_form,
        Msg {
            handle: carol,
            ..m("G-LEFT", 3, 0, 5)
        },
    );
    let icon = f.post(
        hikers,
        Msg {
            from_me: true,
            ..m("G-ICON", 3, 1, 6)
        },
    );
    f.attach(icon, photo);
    f.post(
        tahoe_form,
        Msg {
            handle: alice,
            ..m("G-ICON-BARE", 3, 1, 7)
        },
    );
    f.post(
        hikers,
        Msg {
            handle: bob,
            ..m("G-UNICON", 3, 2, 8)
        },
    );
    f.post(
        hikers,
        Msg {
            handle: bob,
            ..m("G-BACKGROUND", 3, 4, 9)
        },
    );
    f.post(
        hikers,
        Msg {
            handle: alice,
            other: alice,
            ..m("G-SELF", 1, 0, 10)
        },
    );
    f.post(
        hikers,
        Msg {
            handle: alice,
            text: Some("hi"),
            ..m("TEXT", 0, 0, 11)
        },
    );
    f.post(
        dm,
        Msg {
            handle: alice,
            title: Some("dm"),
            ..m("DM-RENAME", 2, 0, 12)
        },
    );
    f.post(
        tahoe_form,
        Msg {
            handle: alice,
            other: 0,
            ..m("G-ADD-ME", 1, 0, 13)
        },
    );
    f.post(
        hikers,
        Msg {
            handle: 99,
            other: alice,
            ..m("G-GHOST", 1, 1, 14)
        },
    );
    f.post(
        hikers,
        Msg {
            handle: bob,
            title: Some(""),
            ..m("G-RENAME-EMPTY", 2, 1, 15)
        },
    );
    f
}

const GOLDEN: &str = "\
1 G-ADD any;+;chat100 by +15550001 at +1m: added bob@example.com
2 G-REMOVE any;+;chat100 by me at +2m: removed +15550003
3 G-RENAME any;+;chat100 by bob@example.com at +3m: renamed Some(\"Hikers\")
4 G-UNNAME any;+;5f3c9a by me at +4m: renamed None
5 G-LEFT any;+;5f3c9a by +15550003 at +5m: left
6 G-ICON any;+;chat100 by me at +6m: icon-set at_photo_1 Library/Messages/Attachments/ab/11/at_photo_1/GroupPhotoImage.jpeg image/jpeg
7 G-ICON-BARE any;+;5f3c9a by +15550001 at +7m: icon-set (no attachment)
8 G-UNICON any;+;chat100 by bob@example.com at +8m: icon-removed
9 G-BACKGROUND any;+;chat100 by bob@example.com at +9m: unrecognised (3,4)
10 G-SELF any;+;chat100 by +15550001 at +10m: unrecognised (1,0)
13 G-ADD-ME any;+;5f3c9a by +15550001 at +13m: added me
14 G-GHOST any;+;chat100 by ? at +14m: removed +15550001
15 G-RENAME-EMPTY any;+;chat100 by bob@example.com at +15m: renamed None";

#[test]
fn every_pair_on_every_schema() {
    for version in ALL {
        let f = every_pair(version);
        let db = f.open();
        let changes = db.all_changes().unwrap();
        let got = changes
            .iter()
            .map(|c| render(f.home(), c))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(got, GOLDEN, "{version:?}");
        // Exact instant, not only minutes: 2024-01-01 00:01:00 UTC.
        assert_eq!(changes[0].occurred_at.unix_millis(), BASE_UNIX_MS + 60_000);
        assert_eq!(
            changes[0].occurred_at,
            Timestamp::from_unix_nanos((BASE_UNIX_MS + 60_000) * 1_000_000)
        );
    }
}

#[test]
fn seconds_and_nanoseconds_in_one_database() {
    // A database migrated from before macOS 10.13 can hold old rows in seconds.
    let f = Fixture::new(Version::Tahoe);
    let chat = f.group("iMessage;+;chat1", None, None);
    let old = f.post(
        chat,
        Msg {
            guid: "OLD",
            item_type: 3,
            action: 2,
            from_me: true,
            ..Msg::default()
        },
    );
    f.conn
        .execute(
            "UPDATE message SET date = ?1 WHERE ROWID = ?2",
            [crate::fixture::BASE_SECS, old],
        )
        .unwrap();
    f.post(
        chat,
        Msg {
            guid: "NEW",
            item_type: 3,
            action: 2,
            from_me: true,
            minute: 1,
            ..Msg::default()
        },
    );
    let changes = f.open().all_changes().unwrap();
    let times = changes
        .iter()
        .map(|c| c.occurred_at.unix_millis() - BASE_UNIX_MS)
        .collect::<Vec<_>>();
    assert_eq!(times, [0, 60_000]);
}

#[test]
fn import_order_is_date_then_rowid() {
    let f = Fixture::new(Version::Monterey);
    let chat = f.group("any;+;abc", None, None);
    let rename = |guid, minute| Msg {
        guid,
        item_type: 2,
        from_me: true,
        title: Some(guid),
        minute,
        ..Msg::default()
    };
    f.post(chat, rename("C", 30));
    f.post(chat, rename("A", 10));
    f.post(chat, rename("B2", 20));
    f.post(chat, rename("B1", 20));
    let order = f
        .open()
        .all_changes()
        .unwrap()
        .into_iter()
        .map(|c| (c.guid, c.rowid))
        .collect::<Vec<_>>();
    let order = order
        .iter()
        .map(|(g, r)| format!("{g}@{r}"))
        .collect::<Vec<_>>();
    assert_eq!(order, ["A@2", "B2@3", "B1@4", "C@1"]);
}
