//! `client.groups()`: group writes, the icon, and live group event streams.

use imgroups_proto::pb;
use imgroups_types::{Address, ChatGuid};

use crate::client::{group_client, Client, Kind};
use crate::error::Result;
use crate::stream::{EventStream, GroupEventStream};
use crate::types::{Chat, GroupIcon};

/// Which events a subscription carries: those of every chat, or of one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    chat: Option<ChatGuid>,
}

impl EventFilter {
    /// Every chat the account can see.
    pub fn all() -> Self {
        EventFilter { chat: None }
    }

    /// One chat (it must be visible to the account when the subscription opens).
    pub fn chat(chat: ChatGuid) -> Self {
        EventFilter { chat: Some(chat) }
    }

    /// The chat this filter is limited to, if any.
    pub fn chat_guid(&self) -> Option<&ChatGuid> {
        self.chat.as_ref()
    }

    /// Whether an event in `chat` passes.
    pub(crate) fn matches(&self, chat: &ChatGuid) -> bool {
        self.chat.as_ref().is_none_or(|c| c == chat)
    }
}

/// Group operations. Get one with [`Client::groups`].
///
/// Writes may carry a `client_message_id` ([`Groups::client_message_id`]): a write repeated
/// with the same id returns the original result instead of applying twice, even across client
/// restarts. Use one id for one logical write only.
#[derive(Debug, Clone)]
pub struct Groups<'a> {
    client: &'a Client,
    client_message_id: Option<String>,
}

impl<'a> Groups<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Groups {
            client,
            client_message_id: None,
        }
    }

    /// Sets the `client_message_id` (field 100) sent with the next writes made through this
    /// handle.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// let groups = client.groups().client_message_id("rename-42");
    /// let first = groups.set_display_name(&chat, "Weekend").await?;
    /// // A retry after a lost answer (same id) returns the original result, applied once.
    /// let again = groups.set_display_name(&chat, "Weekend").await?;
    /// assert_eq!(first, again);
    /// # Ok(()) }
    /// ```
    pub fn client_message_id(mut self, id: impl Into<String>) -> Self {
        self.client_message_id = Some(id.into());
        self
    }

    /// Renames a group. The name is trimmed by the server; empty → validation error. Returns
    /// the updated chat.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// let chat = client.groups().set_display_name(&chat, "  Weekend  ").await?;
    /// assert_eq!(chat.display_name, "Weekend");
    /// # Ok(()) }
    /// ```
    pub async fn set_display_name(&self, chat: &ChatGuid, display_name: &str) -> Result<Chat> {
        let req = pb::SetDisplayNameRequest {
            chat_guid: chat.to_string(),
            display_name: display_name.trim().to_owned(),
            client_message_id: self.client_message_id.clone(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                group_client(ch).set_display_name(r).await
            })
            .await?;
        Chat::from_wire(resp.chat)
    }

    /// Adds people (all or none). Returns the updated chat.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// use imgroups_client::Address;
    ///
    /// let erin = Address::parse("erin@example.com")?;
    /// let chat = client.groups().add_participants(&chat, &[erin.clone()]).await?;
    /// assert!(chat.participants.iter().any(|p| p.address == erin));
    /// # Ok(()) }
    /// ```
    pub async fn add_participants(&self, chat: &ChatGuid, addresses: &[Address]) -> Result<Chat> {
        let req = pb::AddParticipantsRequest {
            chat_guid: chat.to_string(),
            addresses: addresses.iter().map(Address::to_string).collect(),
            client_message_id: self.client_message_id.clone(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                group_client(ch).add_participants(r).await
            })
            .await?;
        Chat::from_wire(resp.chat)
    }

    /// Removes people (all or none). Returns the updated chat.
    ///
    /// Apple's rule: a removal needs at least 3 other participants before it and must leave
    /// at least 2 (else `preconditionFailed`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// use imgroups_client::Address;
    ///
    /// let dave = Address::parse("dave@example.com")?;
    /// let chat = client.groups().remove_participants(&chat, &[dave.clone()]).await?;
    /// assert!(chat.participants.iter().all(|p| p.address != dave));
    /// # Ok(()) }
    /// ```
    pub async fn remove_participants(
        &self,
        chat: &ChatGuid,
        addresses: &[Address],
    ) -> Result<Chat> {
        let req = pb::RemoveParticipantsRequest {
            chat_guid: chat.to_string(),
            addresses: addresses.iter().map(Address::to_string).collect(),
            client_message_id: self.client_message_id.clone(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                group_client(ch).remove_participants(r).await
            })
            .await?;
        Chat::from_wire(resp.chat)
    }

    /// Leaves a group; afterwards it is invisible to this account until someone adds it back.
    ///
    /// Apple's rule: allowed only while the group has at least 3 participants besides this
    /// account (else `preconditionFailed`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// use imgroups_client::ErrorKind;
    ///
    /// client.groups().leave(&chat).await?;
    /// let gone = client.chats().get(&chat).await.unwrap_err();
    /// assert_eq!(gone.kind(), ErrorKind::NotFound);
    /// assert_eq!(gone.code(), "chatNotFound");
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self, chat: &ChatGuid) -> Result<()> {
        let req = pb::LeaveGroupRequest {
            chat_guid: chat.to_string(),
            client_message_id: self.client_message_id.clone(),
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                group_client(ch).leave_group(r).await
            })
            .await?;
        Ok(())
    }

    /// Sets the group icon. The server detects the type from the bytes (PNG, JPEG, GIF, HEIC,
    /// HEIF) and refuses anything else.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// // The bytes of a PNG, JPEG, GIF, HEIC or HEIF image, e.g. `std::fs::read("icon.png")`.
    /// # let png = imgroups_testkit::tiny_png();
    /// client.groups().set_icon(&chat, png.clone()).await?;
    /// assert_eq!(client.groups().get_icon(&chat).await?.data, png);
    /// # Ok(()) }
    /// ```
    pub async fn set_icon(&self, chat: &ChatGuid, data: impl Into<Vec<u8>>) -> Result<()> {
        let req = pb::SetIconRequest {
            chat_guid: chat.to_string(),
            data: data.into(),
            client_message_id: self.client_message_id.clone(),
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                group_client(ch).set_icon(r).await
            })
            .await?;
        Ok(())
    }

    /// Downloads the icon: exact bytes and MIME type. No icon → not found
    /// (`groupIconNotFound`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// use imgroups_client::ErrorKind;
    ///
    /// match client.groups().get_icon(&chat).await {
    ///     Ok(icon) => println!("{} bytes of {}", icon.data.len(), icon.mime_type),
    ///     Err(err) if err.code() == "groupIconNotFound" => println!("no icon yet"),
    ///     Err(err) => return Err(err),
    /// }
    /// # client.groups().set_icon(&chat, imgroups_testkit::tiny_png()).await?;
    /// # let icon = client.groups().get_icon(&chat).await?;
    /// # assert_eq!(icon.mime_type, "image/png");
    /// # Ok(()) }
    /// ```
    pub async fn get_icon(&self, chat: &ChatGuid) -> Result<GroupIcon> {
        let req = pb::GetIconRequest {
            chat_guid: chat.to_string(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                group_client(ch).get_icon(r).await
            })
            .await?;
        Ok(GroupIcon {
            data: resp.data,
            mime_type: resp.mime_type,
        })
    }

    /// Removes the icon; succeeds when there is none.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// # client.groups().set_icon(&chat, imgroups_testkit::tiny_png()).await?;
    /// client.groups().remove_icon(&chat).await?;
    /// client.groups().remove_icon(&chat).await?; // none left: still fine
    /// let err = client.groups().get_icon(&chat).await.unwrap_err();
    /// assert_eq!(err.code(), "groupIconNotFound");
    /// # Ok(()) }
    /// ```
    pub async fn remove_icon(&self, chat: &ChatGuid) -> Result<()> {
        let req = pb::RemoveIconRequest {
            chat_guid: chat.to_string(),
            client_message_id: self.client_message_id.clone(),
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                group_client(ch).remove_icon(r).await
            })
            .await?;
        Ok(())
    }

    /// Opens a live subscription: every matching event committed after this returns, in
    /// order, exactly once, until the stream is dropped or the connection ends. Heartbeats are
    /// hidden. Nothing is replayed and nothing is resumed; for that see
    /// [`Events::resumable`](crate::Events::resumable).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// use futures::StreamExt;
    /// use imgroups_client::{EventFilter, GroupChange};
    ///
    /// let mut events = client.groups().subscribe_events(EventFilter::chat(chat.clone())).await?;
    /// client.groups().set_display_name(&chat, "Weekend").await?;
    /// let event = events.next().await.expect("an event")?;
    /// assert!(matches!(&event.change, GroupChange::DisplayNameChanged { .. }));
    /// assert!(event.is_from_me);
    /// println!("#{} {}", event.sequence, event.to_line());
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_events(&self, filter: EventFilter) -> Result<GroupEventStream> {
        let req = pb::SubscribeGroupEventsRequest {
            chat_guid: filter.chat.as_ref().map(ChatGuid::to_string),
        };
        let frames = self
            .client
            .inner
            .open_stream(req, |ch, r| async move {
                group_client(ch).subscribe_group_events(r).await
            })
            .await?;
        Ok(EventStream::new(frames))
    }
}
