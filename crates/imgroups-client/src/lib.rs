//! Rust SDK for imgroups — and for any server speaking Photon's Advanced iMessage API
//! (`photon.imessage.v1`) over gRPC: group chats (rename, members, icon, leave), chats
//! (create, get, count, mark read, typing), messages (send, read, page, tapbacks, edit,
//! unsend), addresses, and the durable, sequenced event log of all of them.
//!
//! The shape follows the official TypeScript SDK (`@photon-ai/advanced-imessage`):
//! `client.groups()`, `client.chats()`, `client.events()`, the same error classes, the same
//! event shape.
//!
//! Layout:
//! - [`client`](Client): the builder (address, token, TLS, timeout, retries) and the one
//!   place every call goes through.
//! - [`Groups`], [`Chats`], [`Messages`], [`Addresses`], [`Events`]: the operations.
//! - [`Error`] / [`ErrorKind`]: typed errors carrying `code`, `retryable`, gRPC status and
//!   `context` from the server's trailers.
//! - [`Chat`], [`Message`], [`Reaction`], [`Event`] ([`GroupEvent`], [`MessageEvent`],
//!   [`ChatEvent`]), …: public value types.
//! - [`expect`]: waiting until the account did something expected ([`Events::expect`]), as
//!   a bot's tests assert what it did.
//! - [`resumable`]: a subscription that survives disconnects with exactly-once, in-order
//!   delivery and a pluggable checkpoint.
//!
//! Identifiers are the validated newtypes [`ChatGuid`] and [`Address`]: a value of either type
//! is well formed, so malformed input is refused before anything is sent.
//!
//! # Connecting
//!
//! ```no_run
//! use imgroups_client::{Client, RetryPolicy};
//! use std::time::Duration;
//!
//! # async fn run() -> imgroups_client::Result<()> {
//! let client = Client::builder()
//!     .address("http://127.0.0.1:50051") // https://… for TLS
//!     .token(std::env::var("IMGROUPS_TOKEN").unwrap_or_default())
//!     .timeout(Duration::from_secs(10))
//!     .retry(RetryPolicy::default()) // retries only what the server marks retryable
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! A token can also come from an async provider, called for every request:
//!
//! ```no_run
//! # async fn run() -> imgroups_client::Result<()> {
//! let client = imgroups_client::Client::builder()
//!     .token_provider(|| async { Ok("fresh-token".to_owned()) })
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! # Chats
//!
//! The examples below run as tests against a server started in-process; the lines that
//! start it are hidden.
//!
//! ```
//! use imgroups_client::{Address, Client, CreateChatOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> imgroups_client::Result<()> {
//! # let server = imgroups_testkit::Server::start().await;
//! # let client = Client::builder().address(server.url()).token(server.token()).build()?;
//! let people = [Address::parse("bob@example.com")?, Address::parse("+15551234567")?];
//! let created = client.chats().create(&people, CreateChatOptions::default()).await?;
//! let chat = client.chats().get(&created.chat.guid).await?;
//! assert_eq!(chat.participants.len(), 2); // the others: never the calling account
//! assert_eq!(client.chats().count(false).await?, 1);
//! # Ok(()) }
//! ```
//!
//! # Groups
//!
//! Every operation of `client.groups()`, on a group `chat` of this account with three
//! other people:
//!
//! ```
//! use imgroups_client::{Address, Client};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> imgroups_client::Result<()> {
//! # let server = imgroups_testkit::Server::start().await;
//! # let client = Client::builder().address(server.url()).token(server.token()).build()?;
//! # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
//! #     .map(|a| imgroups_client::Address::parse(a).unwrap());
//! # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
//! let groups = client.groups();
//!
//! let renamed = groups.set_display_name(&chat, "Weekend").await?;
//! assert_eq!(renamed.display_name, "Weekend");
//!
//! let erin = Address::parse("erin@example.com")?;
//! groups.add_participants(&chat, &[erin.clone()]).await?;
//! groups.remove_participants(&chat, &[erin]).await?;
//!
//! // The bytes of a PNG, JPEG, GIF, HEIC or HEIF image, e.g. `std::fs::read("icon.png")`.
//! # let png = imgroups_testkit::tiny_png();
//! groups.set_icon(&chat, png).await?;
//! let icon = groups.get_icon(&chat).await?;
//! println!("{} bytes of {}", icon.data.len(), icon.mime_type);
//! groups.remove_icon(&chat).await?;
//!
//! // Idempotent write: a repeat with the same id returns the original result.
//! client.groups().client_message_id("rename-42").set_display_name(&chat, "Sunday").await?;
//!
//! groups.leave(&chat).await?;
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! ```
//! use imgroups_client::{ChatGuid, Client, ErrorKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> imgroups_client::Result<()> {
//! # let server = imgroups_testkit::Server::start().await;
//! # let client = Client::builder().address(server.url()).token(server.token()).build()?;
//! let chat = ChatGuid::parse("any;+;chat000000000000000000")?;
//! match client.groups().get_icon(&chat).await {
//!     Ok(icon) => println!("{}", icon.mime_type),
//!     Err(err) if err.kind() == ErrorKind::NotFound => {
//!         // `groupIconNotFound` or `chatNotFound`
//!         println!("{} ({:?})", err.code(), err.context_value("chatguid"));
//!         # assert_eq!(err.code(), "chatNotFound");
//!     }
//!     Err(err) => return Err(err),
//! }
//! # Ok(()) }
//! ```
//!
//! # Live events
//!
//! ```
//! use futures::StreamExt;
//! use imgroups_client::{Address, Client, EventFilter, GroupChange};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> imgroups_client::Result<()> {
//! # let server = imgroups_testkit::Server::start().await;
//! # let client = Client::builder().address(server.url()).token(server.token()).build()?;
//! # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
//! #     .map(|a| imgroups_client::Address::parse(a).unwrap());
//! # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
//! let mut events = client.groups().subscribe_events(EventFilter::all()).await?;
//! # client.groups().add_participants(&chat, &[Address::parse("erin@example.com")?]).await?;
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     if let GroupChange::ParticipantAdded { participant } = &event.change {
//!         println!("#{} welcome {}", event.sequence, participant.address);
//!         # break;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Catch-up
//!
//! ```
//! use futures::StreamExt;
//! use imgroups_client::{CatchUpEvent, Client};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> imgroups_client::Result<()> {
//! # let server = imgroups_testkit::Server::start().await;
//! # let client = Client::builder().address(server.url()).token(server.token()).build()?;
//! # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
//! #     .map(|a| imgroups_client::Address::parse(a).unwrap());
//! # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
//! # client.groups().set_display_name(&chat, "Weekend").await?;
//! let mut replay = client.events().catch_up(0).await?; // everything after sequence 0
//! while let Some(item) = replay.next().await {
//!     match item? {
//!         CatchUpEvent::Group(event) => println!("{}", event.to_line()),
//!         CatchUpEvent::Complete { head_sequence } => println!("up to date at {head_sequence}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Resumable subscription
//!
//! ```
//! use futures::StreamExt;
//! use imgroups_client::{Client, EventFilter, FileCheckpoint};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> imgroups_client::Result<()> {
//! # let server = imgroups_testkit::Server::start().await;
//! # let client = Client::builder().address(server.url()).token(server.token()).build()?;
//! # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
//! #     .map(|a| imgroups_client::Address::parse(a).unwrap());
//! # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
//! # let checkpoint_file = server.dir().join("group-events.checkpoint");
//! # client.groups().set_display_name(&chat, "Weekend").await?;
//! // checkpoint_file: e.g. "group-events.checkpoint"; the stream resumes after the
//! // sequence saved there, across reconnects and restarts of this program.
//! let mut events = client
//!     .events()
//!     .resumable(EventFilter::all(), FileCheckpoint::new(&checkpoint_file));
//! while let Some(delivery) = events.next().await {
//!     let delivery = delivery?;
//!     println!("{}", delivery.to_line()); // handle the event…
//!     delivery.ack().await?; // …then ack: the checkpoint moves past it
//!     # break;
//! }
//! # assert!(FileCheckpoint::read(&checkpoint_file).unwrap() > 0);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod addresses;
mod chats;
mod client;
mod error;
mod events;
pub mod expect;
mod groups;
mod messages;
pub mod resumable;
mod stream;
mod types;

pub use addresses::Addresses;
pub use chats::{Chats, CreateChatOptions};
pub use client::{Client, ClientBuilder, RetryPolicy, DEFAULT_ADDRESS};
pub use error::{Code, Error, ErrorKind, Result};
pub use events::Events;
pub use groups::{EventFilter, Groups};
pub use imgroups_types::{Address, ChatGuid, ChatKind};
pub use messages::{ListOptions, Messages, SendOptions};
pub use resumable::{CheckpointStore, Delivery, FileCheckpoint, MemoryCheckpoint, Resumable};
pub use stream::{
    CatchUpStream, ChatEventStream, EventStream, GroupEventStream, MessageEventStream,
};
pub use types::{
    rfc3339, AddressInfo, AppliedReaction, CatchUpEvent, Change, Chat, ChatChange, ChatEvent,
    CreateChatResult, Event, GroupChange, GroupEvent, GroupIcon, Message, MessageChange,
    MessageEvent, MessageGuid, MessagePage, Participant, Reaction, Service, TextFormat,
};
