//! imgroups on a Mac: reads the Messages database (`chat.db`) read-only and turns it into what
//! the SDK sees (group chats, their members and icons, and group changes), and asks Messages to
//! make group changes and send, react, edit and unsend messages through the BlueBubbles Private
//! API helper. Plain Rust that builds and is
//! tested on Linux; nothing here is macOS-specific but the default paths.
//!
//! Layout:
//! - [`ChatDb`] (`db`): opens `HOME/Library/Messages/chat.db` with `SQLITE_OPEN_READ_ONLY`;
//!   lists group chats ([`Group`]) and detects the account's own address.
//! - `changes`: decodes group-change rows into [`Change`]s; the incremental read
//!   ([`ChatDb::scan`], [`Cursor`]) and its contract.
//! - `conversations`: message rows of group and direct chats (`style` 43 and 45) decoded into
//!   [`MessageEvent`]s (said, tapbacks, edits, unsends, read receipts, my reads) and their incremental
//!   read ([`ChatDb::scan_messages`], [`MessageCursor`]), also a window of rows at a time in
//!   date order ([`ChatDb::message_windows`]); its module doc has the table.
//! - `typedstream`: the text of `message.attributedBody` ([`attributed_text`]), our own reader
//!   of Apple's typedstream format (the Rust ones that exist are GPL-3.0).
//! - `schema`: probes which columns this database has (`PRAGMA table_info`); every query is
//!   built from it, so a column missing on one macOS version reads as its default.
//! - `guid`: the `any;+;…` normal form of group GUIDs ([`ChatGuid`]).
//! - `time`: `message.date` in seconds or nanoseconds since 2001 ([`Timestamp`]).
//! - `watch`: a doorbell ([`Watcher`]): file notifications on chat.db, its WAL and their
//!   directory, re-armed when the WAL is replaced, plus a periodic re-scan.
//! - `actuator`: the write side. The [`Actuator`] port ([`HelperAction`]s on a
//!   [`HelperChat`], which carries `chat.guid` unchanged) and [`BlueBubblesHelper`], which
//!   listens for the BlueBubbles helper inside Messages.app, admits only this user's Messages
//!   ([`HelperOptions`], [`ProcessCheck`]) and speaks its socket protocol
//!   (`actuator/bluebubbles.rs` lists the protocol facts and their sources).
//! - [`mac`]: what needs a real Mac, behind a trait so it is tested on Linux:
//!   [`mac::launch`] starts Messages with the helper loaded (as the BlueBubbles server does)
//!   and names each way that fails; [`mac::system`] is the operating system it and the peer
//!   check use (`lsof`, `csrutil`, `killall`, spawning Messages).
//! - `testing` (feature `testing`): test doubles for this and other crates: the fixture
//!   chat.db builder, `FakeMessages` (writes what Messages writes for an action), `FakeHelper`
//!   (behaves as the real helper's source does, each behaviour citing it) and the
//!   `imgroups-fake-helper` binary (`--db PATH --connect ADDR [--delay-ms N]`),
//!   `ScriptedSystem`, and `attributedBody` blobs in the shape Messages writes.
//!
//! # From chat.db to imgroups
//!
//! Chats: a row of `chat` with `style = 43` is a group (45 is a one-to-one chat).
//!
//! | imgroups | chat.db |
//! |---|---|
//! | chat GUID | `chat.guid` as `any;+;<identifier>` (`iMessage;+;chat1`, `SMS;+;chat1` and `any;+;chat1` are all `any;+;chat1`; rows sharing one are merged, see [`ChatDb::groups`]); the helper is sent `chat.guid` itself |
//! | SMS/RCS group | `chat.service_name` `SMS`/`RCS` (or that GUID prefix) on every row: listed, not changeable through the helper ([`HelperChat::is_sms`]) |
//! | display name | `chat.display_name` (empty = none) |
//! | participants | `chat_handle_join` → `handle.id` (current members, me excluded) |
//! | icon | `chat.properties` (a binary plist) key `groupPhotoGuid` → `attachment.guid` → `attachment.filename` (`~` = the home directory) and `mime_type` |
//!
//! Group changes: a `message` row with `item_type` 1, 2 or 3, joined by `chat_message_join` to
//! a group chat. The event's dedupe key is `message.guid`; `occurredAt` is `message.date`
//! (nanoseconds since 2001-01-01 UTC, or seconds on macOS before 10.13, told apart by size).
//!
//! | `item_type` | `group_action_type` | [`ChangeKind`] | subject |
//! |---|---|---|---|
//! | 1 | 0 | `ParticipantAdded` | target: `other_handle` → `handle.id` |
//! | 1 | 1 | `ParticipantRemoved` | target: `other_handle` → `handle.id` |
//! | 2 | any | `Renamed` | new name: `group_title` (empty = name cleared) |
//! | 3 | 0 | `Left` | the actor left |
//! | 3 | 1 | `IconSet` | the photo: the row's attachment, if any |
//! | 3 | 2 | `IconRemoved` | |
//! | 1 | 0 with `other_handle = handle_id` | `Unrecognised` | read by some tools as a number change |
//! | 3 | 4, 6, others | `Unrecognised` | chat backgrounds and actions of newer systems |
//!
//! The actor ([`Party`]) is me when `is_from_me = 1` or `handle_id = 0`, else `handle_id` →
//! `handle.id`. A target `other_handle = 0` is read as me (unverified: no public source shows
//! how "you were added/removed" is stored). "Me" is an address the caller knows (`--account`)
//! or [`ChatDb::detect_account`] finds.
//!
//! Missing columns (probed, so older or newer layouts still read): no `group_action_type` reads
//! as 0, no `other_handle` as handle 0, no `group_title` as no name, no `chat.properties` as no
//! icon, no `chat.display_name` as no name.
//!
//! Text people choose (`chat.display_name`, `message.group_title`, `handle.id`) is returned as
//! chat.db has it, except that bytes which are not UTF-8 read as U+FFFD rather than failing
//! the read; what a name may contain is the reader's policy (imgroups-macos applies core's).
//!
//! # Reading as rows arrive
//!
//! [`ChatDb::scan`] returns the changes after a [`Cursor`] and the next cursor: the highest
//! ROWID looked at plus the group-change ROWIDs still waiting for their `chat_message_join`
//! row. ROWIDs are not chronological (iCloud backfill), so a scan can return old changes; each
//! comes once, with its own date. The caller stores the cursor (as text) in the same
//! transaction as the events it made, and dedupes by `message.guid`, which only matters after a
//! rebuilt, renumbered database ([`Scan::restarted`]). [`Watcher`] says when to scan.
//!
//! # Tests
//!
//! On Linux, against databases built in temp dirs from the real layouts of macOS 10.12
//! (dates in seconds), 12, 13 (whose layout 14 keeps for what we read) and 26
//! (`src/testing/schema/*.sql`, facts trimmed from public schema dumps, with the triggers that
//! call Messages-only functions kept and those functions stubbed).
//! The write side is tested end to end: [`BlueBubblesHelper`] sends each action over a socket
//! to the fake helper, whose fake Messages writes the rows, which [`ChatDb::scan`] reads back.
//!
//! # Not done yet
//!
//! - Checked against a real helper on a real Mac: the protocol is implemented from the
//!   helper's public sources only; what Messages writes when I leave a group (besides the
//!   `(3, 0)` row) is unknown, so the fake writes only that row.
//!
//! The serve wiring (import into the log, the cursor stored with the events, the watch loop,
//! writes answered once observed) is `imgroups-macos`.

mod actuator;
mod changes;
mod conversations;
mod db;
mod error;
mod guid;
pub mod mac;
mod schema;
mod time;
mod typedstream;
mod watch;

#[cfg(feature = "testing")]
pub mod testing;

pub use actuator::{
    default_port, Actuator, ActuatorError, BlueBubblesHelper, HelperAction, HelperChat,
    HelperOptions, PeerCheck, ProcessCheck, ADMISSION_WAIT, ANSWER_HOLD, BASE_PORT,
    DEFAULT_TIMEOUT, MAX_HANDSHAKES, MAX_LINE_BYTES, MESSAGES_BUNDLE_ID, MESSAGES_EXECUTABLES,
    WRITE_GAP,
};
pub use changes::{Change, ChangeKind, Cursor, Party, Scan, MAX_PENDING, PENDING_WINDOW};
pub use conversations::{
    Conversation, MessageCursor, MessageEvent, MessageEventKind, MessageScan, MessageWindows,
    Tapback, DIRECT_STYLE, UPDATE_WINDOW, WINDOW,
};
pub use db::{group_photo_guid, ChatDb, Group, Icon, GROUP_STYLE};
pub use error::{Error, Result, SqlError};
pub use guid::{ChatGuid, GROUP_PREFIX};
pub use schema::Schema;
pub use time::{Timestamp, APPLE_EPOCH_UNIX_SECS, NANOS_THRESHOLD};
pub use typedstream::{attributed_text, TypedStreamError};
pub use watch::{Wake, WatchError, Watcher, SETTLE};
