//! `client.chats()`: create, get and count chats; mark them read, typing, chat events.

use imgroups_proto::pb;
use imgroups_types::{Address, ChatGuid};

use crate::client::{chat_client, Client, Kind};
use crate::error::Result;
use crate::groups::EventFilter;
use crate::stream::{ChatEventStream, EventStream};
use crate::types::{Chat, CreateChatResult, Message};

/// Options of [`Chats::create`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateChatOptions {
    /// A first message, stored and returned as a snapshot.
    pub message: Option<String>,
    /// A subject line for the first message.
    pub subject: Option<String>,
    /// An Apple effect identifier for the first message.
    pub effect: Option<String>,
    /// Makes the create idempotent: a repeat returns the original result.
    pub client_message_id: Option<String>,
}

/// Chat operations. Get one with [`Client::chats`].
#[derive(Debug, Clone)]
pub struct Chats<'a> {
    client: &'a Client,
}

impl<'a> Chats<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Chats { client }
    }

    /// One address: the direct chat with it (created or resolved). Two or more: a group with
    /// them; a group with exactly this set of people that is already visible is returned
    /// instead of a new one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// use imgroups_client::{Address, CreateChatOptions};
    ///
    /// let people = [Address::parse("bob@example.com")?, Address::parse("carol@example.com")?];
    /// let options = CreateChatOptions {
    ///     message: Some("Hello both".to_owned()),
    ///     client_message_id: Some("create-1".to_owned()), // a retry returns the same group
    ///     ..CreateChatOptions::default()
    /// };
    /// let created = client.chats().create(&people, options.clone()).await?;
    /// let again = client.chats().create(&people, options).await?;
    /// assert_eq!(created.chat.guid, again.chat.guid);
    /// # Ok(()) }
    /// ```
    pub async fn create(
        &self,
        addresses: &[Address],
        options: CreateChatOptions,
    ) -> Result<CreateChatResult> {
        let initial_message = options.message.map(|text| pb::CreateChatInitialMessage {
            text,
            attributed_body: None,
            effect_id: options.effect,
            subject: options.subject,
        });
        let req = pb::CreateChatRequest {
            addresses: addresses.iter().map(Address::to_string).collect(),
            service: pb::ChatServiceType::Imessage as i32,
            initial_message,
            client_message_id: options.client_message_id,
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                chat_client(ch).create_chat(r).await
            })
            .await?;
        Ok(CreateChatResult {
            chat: Chat::from_wire(resp.chat)?,
            initial_message: resp.initial_message.map(Message::from_wire).transpose()?,
        })
    }

    /// The chat, or not found (`chatNotFound`).
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
    /// let group = client.chats().get(&chat).await?;
    /// println!("{} with {} people", group.guid, group.participants.len());
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, chat: &ChatGuid) -> Result<Chat> {
        let req = pb::GetChatRequest {
            chat_guid: chat.to_string(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                chat_client(ch).get_chat(r).await
            })
            .await?;
        Chat::from_wire(resp.chat)
    }

    /// How many chats the account can see (archived ones too when `include_archived`).
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
    /// assert_eq!(client.chats().count(false).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn count(&self, include_archived: bool) -> Result<u64> {
        let req = pb::GetChatCountRequest { include_archived };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                chat_client(ch).get_chat_count(r).await
            })
            .await?;
        Ok(u64::try_from(resp.count).unwrap_or(0))
    }

    /// Marks every unread incoming message of the chat read. The account's log gets
    /// `chat.markedRead` when something was unread; in a direct chat the other side learns
    /// that its messages were read (`message.read`). No read receipts in groups.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// client.chats().mark_read(&chat).await?;
    /// # Ok(()) }
    /// ```
    pub async fn mark_read(&self, chat: &ChatGuid) -> Result<()> {
        let req = pb::MarkChatReadRequest {
            chat_guid: chat.to_string(),
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                chat_client(ch).mark_chat_read(r).await
            })
            .await?;
        Ok(())
    }

    /// Shows (`true`) or hides the account's typing indicator in a chat it can see. Typing
    /// is transient: never stored, no event.
    pub async fn set_typing(&self, chat: &ChatGuid, is_typing: bool) -> Result<()> {
        let req = pb::SetTypingRequest {
            chat_guid: chat.to_string(),
            is_typing,
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                chat_client(ch).set_typing(r).await
            })
            .await?;
        Ok(())
    }

    /// Sets the chat's background, shared by everyone in it (`chat.backgroundChanged` in every
    /// member's log). The image is checked like a group icon: PNG, JPEG, GIF, HEIC or HEIF.
    pub async fn set_background(&self, chat: &ChatGuid, data: Vec<u8>) -> Result<()> {
        let req = pb::SetBackgroundRequest {
            chat_guid: chat.to_string(),
            data,
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                chat_client(ch).set_background(r).await
            })
            .await?;
        Ok(())
    }

    /// Removes the chat's background (`chat.backgroundRemoved`); none to remove changes
    /// nothing.
    pub async fn remove_background(&self, chat: &ChatGuid) -> Result<()> {
        let req = pb::RemoveBackgroundRequest {
            chat_guid: chat.to_string(),
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                chat_client(ch).remove_background(r).await
            })
            .await?;
        Ok(())
    }

    /// Whether the chat has a background.
    pub async fn has_background(&self, chat: &ChatGuid) -> Result<bool> {
        let req = pb::HasBackgroundRequest {
            chat_guid: chat.to_string(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                chat_client(ch).has_background(r).await
            })
            .await?;
        Ok(resp.background_present)
    }

    /// Shares the account's name and photo with the chat.
    pub async fn share_contact_info(&self, chat: &ChatGuid) -> Result<()> {
        let req = pb::ShareContactInfoRequest {
            chat_guid: chat.to_string(),
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                chat_client(ch).share_contact_info(r).await
            })
            .await?;
        Ok(())
    }

    /// Opens a live subscription to chat events (`chat.markedRead`, …) of every chat or one.
    pub async fn subscribe_events(&self, filter: EventFilter) -> Result<ChatEventStream> {
        let req = pb::SubscribeChatEventsRequest {
            chat_guid: filter.chat_guid().map(ChatGuid::to_string),
        };
        let frames = self
            .client
            .inner
            .open_stream(req, |ch, r| async move {
                chat_client(ch).subscribe_chat_events(r).await
            })
            .await?;
        Ok(EventStream::new(frames))
    }
}
