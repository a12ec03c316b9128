//! `client.events()`: the durable log — catch-up replays and resumable subscriptions.

use imgroups_proto::pb;

use crate::client::{event_client, Client};
use crate::error::Result;
use crate::groups::EventFilter;
use crate::resumable::{CheckpointStore, Resumable};
use crate::stream::CatchUpStream;

/// Event-log operations. Get one with [`Client::events`].
#[derive(Debug, Clone)]
pub struct Events<'a> {
    client: &'a Client,
}

impl<'a> Events<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Events { client }
    }

    /// Replays every event (group, message and chat events) with `after < sequence ≤ head`
    /// (the head is fixed when the call starts; `after = 0` means from the start), then yields
    /// [`CatchUpEvent::Complete`](crate::CatchUpEvent::Complete) and ends. An event log pruned past `after` fails with
    /// `preconditionFailed` (`reason=cursorTooOld`; its kind is `Validation`) rather than
    /// skipping events.
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
    /// use imgroups_client::CatchUpEvent;
    ///
    /// client.groups().set_display_name(&chat, "Weekend").await?;
    /// let mut replay = client.events().catch_up(0).await?;
    /// let mut seen = 0;
    /// while let Some(item) = replay.next().await {
    ///     match item? {
    ///         CatchUpEvent::Group(event) => seen = event.sequence,
    ///         CatchUpEvent::Complete { head_sequence } => assert_eq!(seen, head_sequence),
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn catch_up(&self, after: u64) -> Result<CatchUpStream> {
        let req = pb::CatchUpEventsRequest {
            after_sequence: (after > 0).then_some(after),
        };
        let frames = self
            .client
            .inner
            .open_stream(req, |ch, r| async move {
                event_client(ch).catch_up_events(r).await
            })
            .await?;
        Ok(CatchUpStream::new(frames))
    }

    /// A subscription that survives disconnects and restarts, delivering every matching
    /// event of every kind (group, message, chat) exactly once, in order, from the position saved in `checkpoint`. See
    /// [`Resumable`].
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
    /// use imgroups_client::{EventFilter, MemoryCheckpoint};
    ///
    /// client.groups().set_display_name(&chat, "Weekend").await?;
    /// // A checkpoint in memory for the example; `FileCheckpoint` survives restarts.
    /// let checkpoint = MemoryCheckpoint::new(0);
    /// let mut events = client.events().resumable(EventFilter::chat(chat), checkpoint.clone());
    /// let delivery = events.next().await.expect("an event")?;
    /// let sequence = delivery.event().sequence;
    /// assert_eq!(delivery.event_type(), "group.changed");
    /// delivery.ack().await?;
    /// assert_eq!(checkpoint.get(), sequence);
    /// # Ok(()) }
    /// ```
    pub fn resumable<C: CheckpointStore>(
        &self,
        filter: EventFilter,
        checkpoint: C,
    ) -> Resumable<C> {
        Resumable::new(self.client.clone(), filter, checkpoint)
    }
}
