//! `client.messages()`: send text, read and page through messages, tapbacks, edits,
//! unsends, and live message events.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types::Timestamp;
use imgroups_types::ChatGuid;

use crate::client::{message_client, Client, Kind};
use crate::error::{Code, Error, ErrorKind, Result};
use crate::groups::EventFilter;
use crate::stream::{EventStream, MessageEventStream};
use crate::types::{Message, MessageGuid, MessagePage, Reaction, TextFormat};

/// Options of [`Messages::send_text`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Answer this message (it must be in the same chat).
    pub reply_to: Option<MessageGuid>,
    /// A subject line (at most 1,000 characters).
    pub subject: Option<String>,
    /// A bubble or screen effect, e.g. `com.apple.MobileSMS.expressivesend.impact`.
    pub effect_id: Option<String>,
    /// Styled spans of the text (UTF-16 offsets), all within it.
    pub formatting: Vec<TextFormat>,
    /// Makes the send idempotent: a repeat with the same id returns the first message
    /// instead of sending another. Takes precedence over [`Messages::client_message_id`].
    pub client_message_id: Option<String>,
}

/// Filters and paging of [`Messages::list_in_chat`] and [`Messages::list_recent`]. Every
/// filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Messages per page, 1 to 1,000; the server's default (50) when absent (or 0, as
    /// proto3 cannot tell 0 from absent).
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Only the account's own messages (`true`) or only others' (`false`).
    pub is_from_me: Option<bool>,
    /// Only read (`true`) or unread (`false`) messages; the account's own count as read.
    pub is_read: Option<bool>,
    /// Only messages created before this time (exclusive).
    pub before: Option<SystemTime>,
    /// Only messages created at or after this time.
    pub after: Option<SystemTime>,
}

fn timestamp(t: SystemTime) -> Timestamp {
    let (seconds, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            // Before 1970: whole seconds, rounded towards the past.
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() == 0 {
                (-secs, 0)
            } else {
                (-secs - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    };
    Timestamp {
        seconds,
        nanos: i32::try_from(nanos).unwrap_or(0),
    }
}

impl ListOptions {
    fn page_size(&self) -> Result<Option<i32>> {
        self.page_size
            .map(|n| {
                i32::try_from(n).map_err(|_| {
                    Error::local(
                        ErrorKind::Validation,
                        Code::InvalidArgument,
                        "invalidArgument",
                        format!("page size {n} is too large"),
                    )
                    .with_context("field", "pageSize")
                })
            })
            .transpose()
    }
}

/// Message operations. Get one with [`Client::messages`].
///
/// Writes may carry a `client_message_id` ([`Messages::client_message_id`]): a write repeated
/// with the same id returns the original result instead of applying twice. Use one id for one
/// logical write only.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    client: &'a Client,
    client_message_id: Option<String>,
}

impl<'a> Messages<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Messages {
            client,
            client_message_id: None,
        }
    }

    /// Sets the `client_message_id` (field 100) sent with the next writes made through this
    /// handle.
    pub fn client_message_id(mut self, id: impl Into<String>) -> Self {
        self.client_message_id = Some(id.into());
        self
    }

    /// Sends a text message to a chat the account can see (`chatNotFound` otherwise). A
    /// direct chat `any;-;ADDRESS` needs no [`Chats::create`](crate::Chats::create) first.
    /// Returns the message as stored.
    ///
    /// The server refuses empty text, more than 20,000 characters, control characters other
    /// than newline and tab (`invalidArgument`, `field=text`), and a `reply_to` that is not a
    /// message of the chat (`messageNotFound`).
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
    /// use imgroups_client::{SendOptions, TextFormat};
    ///
    /// let first = client.messages().send_text(&chat, "Dinner at 8?", Default::default()).await?;
    /// let options = SendOptions {
    ///     reply_to: Some(first.guid.clone()),
    ///     formatting: vec![TextFormat::new("bold", 0, 3)],
    ///     ..SendOptions::default()
    /// };
    /// let reply = client.messages().send_text(&chat, "Yes!", options).await?;
    /// assert_eq!(reply.reply_to.as_ref(), Some(&first.guid));
    /// assert!(reply.is_from_me);
    /// # Ok(()) }
    /// ```
    pub async fn send_text(
        &self,
        chat: &ChatGuid,
        text: &str,
        options: SendOptions,
    ) -> Result<Message> {
        let req = pb::SendTextMessageRequest {
            chat_guid: chat.to_string(),
            text: text.to_owned(),
            reply_to: options.reply_to.map(|guid| pb::ReplyTarget {
                message_guid: guid.as_str().to_owned(),
                target_part_index: None,
            }),
            subject: options.subject,
            effect_id: options.effect_id,
            enable_data_detection: None,
            enable_link_preview: None,
            formatting: options.formatting.iter().map(TextFormat::to_wire).collect(),
            client_message_id: options
                .client_message_id
                .or_else(|| self.client_message_id.clone()),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                message_client(ch).send_text_message(r).await
            })
            .await?;
        message_of(resp.message)
    }

    /// One message in the account's view, or `messageNotFound`. An unsent message has
    /// [`date_retracted`](Message::date_retracted) set and no text.
    pub async fn get(&self, guid: &MessageGuid) -> Result<Message> {
        let req = pb::GetMessageRequest {
            message_guid: guid.as_str().to_owned(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                message_client(ch).get_message(r).await
            })
            .await?;
        message_of(resp.message)
    }

    /// One page of a chat's messages, newest first. Page tokens stay valid while new
    /// messages arrive: paging on never repeats or skips one.
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
    /// # for text in ["one", "two", "three"] {
    /// #     client.messages().send_text(&chat, text, Default::default()).await?;
    /// # }
    /// use imgroups_client::ListOptions;
    ///
    /// let mut options = ListOptions { page_size: Some(2), ..ListOptions::default() };
    /// let first = client.messages().list_in_chat(&chat, options.clone()).await?;
    /// assert_eq!(first.messages[0].text.as_deref(), Some("three"));
    /// options.page_token = first.next_page_token;
    /// let second = client.messages().list_in_chat(&chat, options).await?;
    /// assert_eq!(second.messages.len(), 1);
    /// assert!(second.next_page_token.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn list_in_chat(&self, chat: &ChatGuid, options: ListOptions) -> Result<MessagePage> {
        let req = pb::ListChatMessagesRequest {
            chat_guid: chat.to_string(),
            page_size: options.page_size()?,
            page_token: options.page_token,
            is_from_me: options.is_from_me,
            is_read: options.is_read,
            before: options.before.map(timestamp),
            after: options.after.map(timestamp),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                message_client(ch).list_chat_messages(r).await
            })
            .await?;
        page(resp.messages, resp.next_page_token)
    }

    /// One page of the account's messages in every chat, newest first.
    pub async fn list_recent(&self, options: ListOptions) -> Result<MessagePage> {
        let req = pb::ListRecentMessagesRequest {
            page_size: options.page_size()?,
            page_token: options.page_token,
            is_from_me: options.is_from_me,
            is_read: options.is_read,
            before: options.before.map(timestamp),
            after: options.after.map(timestamp),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                message_client(ch).list_recent_messages(r).await
            })
            .await?;
        page(resp.messages, resp.next_page_token)
    }

    /// Every message of a chat (or, with `chat = None`, of every chat) that passes the
    /// filters, newest first, fetched a page at a time as the stream is read. `page_token`
    /// in `options` starts from that page. A failed page is one `Err` item and ends the
    /// stream.
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
    /// # for text in ["one", "two", "three"] {
    /// #     client.messages().send_text(&chat, text, Default::default()).await?;
    /// # }
    /// use futures::TryStreamExt;
    /// use imgroups_client::ListOptions;
    ///
    /// let options = ListOptions { page_size: Some(2), ..ListOptions::default() };
    /// let all: Vec<_> = client.messages().list_all(Some(&chat), options).try_collect().await?;
    /// let texts: Vec<_> = all.iter().filter_map(|m| m.text.as_deref()).collect();
    /// assert_eq!(texts, ["three", "two", "one"]);
    /// # Ok(()) }
    /// ```
    pub fn list_all(
        &self,
        chat: Option<&ChatGuid>,
        options: ListOptions,
    ) -> BoxStream<'static, Result<Message>> {
        let client = self.client.clone();
        let chat = chat.cloned();
        // State: the options of the next page, or `None` once the last page was read.
        futures::stream::try_unfold(Some(options), move |next| {
            let client = client.clone();
            let chat = chat.clone();
            async move {
                let Some(options) = next else {
                    return Ok(None);
                };
                let page = match &chat {
                    Some(chat) => {
                        client
                            .messages()
                            .list_in_chat(chat, options.clone())
                            .await?
                    }
                    None => client.messages().list_recent(options.clone()).await?,
                };
                let next = page.next_page_token.map(|token| ListOptions {
                    page_token: Some(token),
                    ..options
                });
                Ok::<_, Error>(Some((
                    futures::stream::iter(page.messages.into_iter().map(Ok)),
                    next,
                )))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// Puts a tapback on a message (`set = true`) or takes it off. One tapback per person per
    /// message: setting another replaces the first; taking off one that is not there changes
    /// nothing. Returns the message with its tapbacks.
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
    /// use imgroups_client::Reaction;
    ///
    /// let sent = client.messages().send_text(&chat, "Ship it", Default::default()).await?;
    /// let liked = client.messages().set_reaction(&chat, &sent.guid, &Reaction::Like, true).await?;
    /// assert_eq!(liked.reactions[0].reaction, Reaction::Like);
    /// let party: Reaction = "🎉".parse()?;
    /// let changed = client.messages().set_reaction(&chat, &sent.guid, &party, true).await?;
    /// assert_eq!(changed.reactions.len(), 1); // replaced, not added
    /// # Ok(()) }
    /// ```
    pub async fn set_reaction(
        &self,
        chat: &ChatGuid,
        message: &MessageGuid,
        reaction: &Reaction,
        set: bool,
    ) -> Result<Message> {
        let req = pb::SetReactionRequest {
            target: Some(target(chat, message)),
            reaction: Some(reaction.to_wire()),
            is_set: set,
            client_message_id: self.client_message_id.clone(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                message_client(ch).set_reaction(r).await
            })
            .await?;
        message_of(resp.message)
    }

    /// Edits one of the account's own messages (`preconditionFailed`: `notFromMe`,
    /// `messageUnsent`, and Apple's limits `editWindowClosed` after 15 minutes,
    /// `tooManyEdits` after 5). Returns the message.
    pub async fn edit(
        &self,
        chat: &ChatGuid,
        message: &MessageGuid,
        new_text: &str,
    ) -> Result<Message> {
        let req = pb::EditMessageRequest {
            target: Some(target(chat, message)),
            new_text: new_text.to_owned(),
            backward_compat_text: None,
            client_message_id: self.client_message_id.clone(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                message_client(ch).edit_message(r).await
            })
            .await?;
        message_of(resp.message)
    }

    /// Unsends one of the account's own messages, within 2 minutes of sending it
    /// (`preconditionFailed`: `notFromMe`, `unsendWindowClosed`, `messageUnsent`).
    pub async fn unsend(&self, chat: &ChatGuid, message: &MessageGuid) -> Result<()> {
        let req = pb::UnsendMessageRequest {
            target: Some(target(chat, message)),
            client_message_id: self.client_message_id.clone(),
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                message_client(ch).unsend_message(r).await
            })
            .await?;
        Ok(())
    }

    /// "Notify Anyway": tells the sender of a message Focus held back that it was seen. The
    /// message must be in the chat (`messageNotFound`).
    pub async fn notify_silenced(&self, chat: &ChatGuid, message: &MessageGuid) -> Result<()> {
        let req = pb::NotifySilencedMessageRequest {
            chat_guid: chat.to_string(),
            message_guid: message.as_str().to_owned(),
            client_message_id: self.client_message_id.clone(),
        };
        self.client
            .inner
            .unary(Kind::Write, req, |ch, r| async move {
                message_client(ch).notify_silenced_message(r).await
            })
            .await?;
        Ok(())
    }

    /// Opens a live subscription to message events (received, edited, unsent, read,
    /// tapbacks) of every chat or one: every event committed after this returns, in order,
    /// until the stream is dropped or the connection ends. For a replay and resuming, see
    /// [`Events::resumable`](crate::Events::resumable).
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
    /// use futures::{StreamExt, TryStreamExt};
    /// use imgroups_client::{EventFilter, MessageChange};
    ///
    /// let mut events = client.messages().subscribe(EventFilter::chat(chat.clone())).await?;
    /// client.messages().send_text(&chat, "hello", Default::default()).await?;
    /// let event = events.next().await.expect("an event")?;
    /// let MessageChange::Received { message } = &event.change else { panic!() };
    /// assert_eq!(message.text.as_deref(), Some("hello"));
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self, filter: EventFilter) -> Result<MessageEventStream> {
        let req = pb::SubscribeMessageEventsRequest {
            chat_guid: filter.chat_guid().map(ChatGuid::to_string),
        };
        let frames = self
            .client
            .inner
            .open_stream(req, |ch, r| async move {
                message_client(ch).subscribe_message_events(r).await
            })
            .await?;
        Ok(EventStream::new(frames))
    }
}

fn target(chat: &ChatGuid, message: &MessageGuid) -> pb::MessageTarget {
    pb::MessageTarget {
        chat_guid: chat.to_string(),
        message_guid: message.as_str().to_owned(),
        target_part_index: None,
    }
}

fn message_of(m: Option<pb::Message>) -> Result<Message> {
    Message::from_wire(m.ok_or_else(|| Error::malformed("expected message in response"))?)
}

fn page(messages: Vec<pb::Message>, next_page_token: Option<String>) -> Result<MessagePage> {
    Ok(MessagePage {
        messages: messages
            .into_iter()
            .map(Message::from_wire)
            .collect::<Result<_>>()?,
        next_page_token: next_page_token.filter(|t| !t.is_empty()),
    })
}
