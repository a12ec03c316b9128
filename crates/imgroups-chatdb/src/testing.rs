//! Test doubles (feature `testing`), for this crate's tests and other crates' (as a
//! dev-dependency with the feature on). Everything here panics on setup failures: it is test
//! code.
//!
//! - [`Fixture`]: a chat.db with the real layout of a macOS version, in a temp dir, with
//!   no-op stand-ins for the SQL functions only Messages defines.
//! - [`BulkSpec`] / [`Fixture::bulk`]: a large, consistent history written fast (benchmarks);
//!   [`LiveWriter`]: commits one group change at a time, as Messages does.
//! - [`FakeMessages`]: applies a [`HelperAction`](crate::HelperAction) to a chat.db by
//!   writing, from its own connection, the rows Messages writes for it.
//! - [`FakeHelper`]: the BlueBubbles helper's end of the socket protocol, behaving as the real
//!   helper's source does (each behaviour cites it), applying actions with [`FakeMessages`];
//!   also the `imgroups-fake-helper` binary.
//! - [`ScriptedSystem`]: a [`System`](crate::mac::system::System) with scripted command
//!   answers, for the launcher's and the peer check's tests.
//! - [`attributed_body`] / [`sample_bodies`]: `message.attributedBody` blobs in the shape
//!   Messages writes.
//! - [`book_club`]: a small group chat with a history, written into a [`Fixture`].

mod bulk;
mod fixture;
mod helper;
mod messages;
mod sample;
mod system;
mod typedstream;

pub use bulk::{
    bulk_address, bulk_group_guid, bulk_message_guid, BulkHistory, BulkSpec, LiveWriter,
};
pub use fixture::{
    properties, register_messages_functions, Fixture, Msg, Version, ALL, BASE_SECS, BASE_UNIX_MS,
};
pub use helper::{FakeHelper, FakeHelperOptions, FakeReply, TypingSeen};
pub use messages::{Applied, FakeMessages, FakeMessagesError};
pub use sample::{
    book_club, more_chats, BookClub, BOOK_CLUB, DIRECT_CHAT, PHOTO_PNG, SMS_GROUP, TEXT_ONLY_GROUP,
};
pub use system::{ScriptedChild, ScriptedSystem};
pub use typedstream::{attributed_body, sample_bodies};
