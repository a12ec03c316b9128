//! Group chats: GUID forms, names, members, icons from `chat.properties`.

use std::path::PathBuf;

use imgroups_chatdb::{ChatDb, Group, Icon};

use crate::fixture::{properties, Fixture, ALL};

fn names(groups: &[Group]) -> Vec<(&str, Option<&str>, Vec<&str>)> {
    groups
        .iter()
        .map(|g| {
            (
                g.guid.as_str(),
                g.display_name.as_deref(),
                g.participants.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

#[test]
fn both_guid_forms_names_members_and_icons() {
    for version in ALL {
        let f = Fixture::new(version);
        let alice = f.handle("+15550001");
        let bob = f.handle("bob@example.com");
        let old = f.group(
            "iMessage;+;chat100",
            Some("Hikers"),
            Some(properties(Some("at_1"))),
        );
        let new = f.group("any;+;5f3c9a", Some(""), Some(properties(None)));
        let dm = f.chat("iMessage;-;+15550001", 45, None, None);
        for (c, h) in [(old, bob), (old, alice), (new, alice), (dm, alice)] {
            f.member(c, h);
        }
        f.attachment(
            "at_1",
            Some("~/Library/Messages/Attachments/ab/11/at_1/IMG_0001.HEIC"),
            None,
        );
        let db = f.open();
        let groups = db.groups().unwrap();
        assert_eq!(
            names(&groups),
            [
                ("any;+;5f3c9a", None, vec!["+15550001"]),
                (
                    "any;+;chat100",
                    Some("Hikers"),
                    vec!["+15550001", "bob@example.com"]
                ),
            ],
            "{version:?}"
        );
        assert_eq!(groups[0].icon, None);
        assert_eq!(
            groups[1].icon,
            Some(Icon {
                attachment_guid: "at_1".into(),
                path: Some(
                    f.home()
                        .join("Library/Messages/Attachments/ab/11/at_1/IMG_0001.HEIC")
                ),
                mime_type: Some("image/heic".into()),
            }),
            "mime type guessed from the extension when the column is empty"
        );
        assert_eq!(groups[1].raw_guids, ["iMessage;+;chat100"]);
        // Looking a group up by either form finds the same group.
        for form in ["iMessage;+;chat100", "any;+;chat100", "SMS;+;chat100"] {
            assert_eq!(db.group(form).unwrap().as_ref(), Some(&groups[1]), "{form}");
        }
        assert_eq!(db.group("iMessage;-;+15550001").unwrap(), None);
    }
}

#[test]
fn rows_sharing_a_guid_merge_and_the_newest_form_wins() {
    let f = Fixture::new(crate::fixture::Version::Monterey);
    let alice = f.handle("+15550001");
    let bob = f.handle("+15550002");
    let sms = f.group("SMS;+;chat7", Some("old sms name"), None);
    let imessage = f.group("iMessage;+;chat7", Some("imessage name"), None);
    f.member(sms, alice);
    f.member(imessage, bob);
    let db = f.open();
    let groups = db.groups().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].raw_guids, ["iMessage;+;chat7", "SMS;+;chat7"]);
    assert_eq!(groups[0].chat_rowids, [imessage, sms]);
    assert_eq!(groups[0].display_name.as_deref(), Some("imessage name"));
    assert_eq!(groups[0].participants, ["+15550002"]);

    let any = f.group("any;+;chat7", Some("newest"), None);
    let groups = ChatDb::open(f.home()).unwrap().groups().unwrap();
    assert_eq!(groups[0].chat_rowids, [any, imessage, sms]);
    assert_eq!(groups[0].display_name.as_deref(), Some("newest"));
}

#[test]
fn icon_edge_cases() {
    let f = Fixture::new(crate::fixture::Version::Tahoe);
    f.group("any;+;nulprops", None, None);
    f.group("any;+;garbage", None, Some(b"bplist00 not really".to_vec()));
    f.group("any;+;missing", None, Some(properties(Some("at_gone"))));
    f.group("any;+;absolute", None, Some(properties(Some("at_abs"))));
    f.group(
        "any;+;undownloaded",
        None,
        Some(properties(Some("at_nofile"))),
    );
    f.attachment(
        "at_abs",
        Some("/var/folders/x/photo.png"),
        Some("image/png"),
    );
    f.attachment("at_nofile", None, None);
    let groups = f.open().groups().unwrap();
    let icons = groups
        .iter()
        .map(|g| (g.guid.identifier(), g.icon.clone()))
        .collect::<Vec<_>>();
    let icon = |guid: &str, path: Option<&str>, mime: Option<&str>| {
        Some(Icon {
            attachment_guid: guid.into(),
            path: path.map(PathBuf::from),
            mime_type: mime.map(str::to_owned),
        })
    };
    assert_eq!(
        icons,
        [
            (
                "absolute",
                icon(
                    "at_abs",
                    Some("/var/folders/x/photo.png"),
                    Some("image/png")
                )
            ),
            ("garbage", None),
            ("missing", icon("at_gone", None, None)),
            ("nulprops", None),
            ("undownloaded", icon("at_nofile", None, None)),
        ]
    );
}
