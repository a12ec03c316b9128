//! [`book_club`]: one small group chat with a history, the same on every layout, for tests
//! that need a populated chat.db rather than a particular row (the `imgroups-fake-helper
//! fixture` command writes it for the Node conformance suite).

use super::fixture::{properties, Fixture, Msg};

/// The group's GUID.
pub const BOOK_CLUB: &str = "iMessage;+;chat100";

/// What [`book_club`] wrote, for assertions.
#[derive(Clone, Debug)]
pub struct BookClub {
    /// [`BOOK_CLUB`].
    pub guid: &'static str,
    /// The `chat` row.
    pub chat: i64,
    /// The members other than me, as `handle.id`, in `chat_handle_join` order.
    pub members: [&'static str; 4],
}

/// A 1×1 PNG, the group photo: the bytes of `imgroups_core::testing::tiny_png`, kept here
/// because this crate depends on nothing of ours.
pub const PHOTO_PNG: [u8; 68] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x02, 0x00,
    0x00, 0x05, 0x00, 0x01, 0x7a, 0x5e, 0xab, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

/// Writes "Book club" ([`BOOK_CLUB`]) into `f`: four other members (alice, +15551230001,
/// dave, erin), the group photo on disk, and this history (minutes after the fixture's base
/// date), inserted out of ROWID order as after an iCloud backfill so that only the dates give
/// the order:
///
/// 1. I name the group "Book club";
/// 2. alice adds dave;
/// 3. bob leaves;
/// 4. +15551230001 sets the group photo;
/// 5. alice adds erin;
/// 6. alice writes "hello" (not a group change).
pub fn book_club(f: &Fixture) -> BookClub {
    let alice = f.handle("alice@example.com");
    let bob = f.handle("bob@example.com");
    let carol = f.handle("+15551230001");
    let dave = f.handle("dave@example.com");
    let erin = f.handle("erin@example.com");
    let photo = "AT-BOOK-CLUB-PHOTO";
    let rel = "Library/Messages/Attachments/bc/book-club.png";
    std::fs::create_dir_all(f.home().join("Library/Messages/Attachments/bc")).unwrap();
    std::fs::write(f.home().join(rel), PHOTO_PNG).unwrap();
    let attachment = f.attachment(photo, Some(&format!("~/{rel}")), Some("image/png"));
    let chat = f.group(BOOK_CLUB, Some("Book club"), Some(properties(Some(photo))));
    for member in [alice, carol, dave, erin] {
        f.member(chat, member);
    }
    let change = |guid, item_type, action, handle, other, minute, rowid| {
        f.post(
            chat,
            Msg {
                guid,
                item_type,
                action,
                from_me: handle == 0,
                handle,
                other,
                title: (item_type == 2).then_some("Book club"),
                minute,
                rowid: Some(rowid),
                ..Msg::default()
            },
        )
    };
    change("BC-LEFT", 3, 0, bob, 0, 3, 10);
    change("BC-RENAME", 2, 0, 0, 0, 1, 11);
    change("BC-ADD-DAVE", 1, 0, alice, dave, 2, 12);
    let icon = change("BC-ICON", 3, 1, carol, 0, 4, 13);
    f.attach(icon, attachment);
    change("BC-ADD-ERIN", 1, 0, alice, erin, 5, 14);
    f.post(
        chat,
        Msg {
            guid: "BC-TEXT",
            text: Some("hello"),
            handle: alice,
            minute: 6,
            ..Msg::default()
        },
    );
    BookClub {
        guid: BOOK_CLUB,
        chat,
        members: [
            "alice@example.com",
            "+15551230001",
            "dave@example.com",
            "erin@example.com",
        ],
    }
}

/// The chats [`more_chats`] writes.
pub const TEXT_ONLY_GROUP: &str = "any;+;7e3a91c2";
pub const SMS_GROUP: &str = "any;+;5a5a5a5a";
pub const DIRECT_CHAT: &str = "any;-;+15550009999";

/// Writes, besides [`book_club`], the chats a real Mac has that are not "a group with a
/// history": a group in macOS 26's `any;+;` form (`service_name` iMessage) with only text
/// messages — Messages writes no group-change row for a group's first members — and four other
/// members, one of them a short code; an SMS group (`service_name` SMS) with two numbers; and a
/// one-to-one chat (`style` 45).
pub fn more_chats(f: &Fixture) {
    let group = f.group(TEXT_ONLY_GROUP, None, None);
    f.set_service(group, "iMessage");
    for (i, member) in [
        "gina@example.com",
        "hank@example.com",
        "+15551230002",
        "262966",
    ]
    .into_iter()
    .enumerate()
    {
        let handle = f.handle(member);
        f.member(group, handle);
        let guid = format!("TEXT-ONLY-{i}");
        f.post(
            group,
            Msg {
                guid: &guid,
                text: Some("hi"),
                handle,
                minute: 20 + i as i64,
                ..Msg::default()
            },
        );
    }
    let sms = f.group(SMS_GROUP, None, None);
    f.set_service(sms, "SMS");
    for member in ["+15550002222", "+15550003333"] {
        let handle = f.handle(member);
        f.member(sms, handle);
    }
    let direct = f.chat(DIRECT_CHAT, 45, None, None);
    f.set_service(direct, "iMessage");
    let ivy = f.handle("+15550009999");
    f.member(direct, ivy);
    f.post(
        direct,
        Msg {
            guid: "DIRECT-1",
            text: Some("hey"),
            handle: ivy,
            minute: 30,
            ..Msg::default()
        },
    );
}
