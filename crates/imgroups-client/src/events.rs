//! `client.events()`: the durable log — catch-up replays and resumable subscriptions.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use imgroups_proto::pb;

use crate::client::{event_client, Client};
use crate::error::{Error, Result};
use crate::groups::EventFilter;
use crate::resumable::{CheckpointStore, Resumable};
use crate::types::{CatchUpEvent, GroupEvent};

/// Event-log operations. Get one with [`Client::events`].
#[derive(Debug, Clone)]
pub struct Events<'a> {
    client: &'a Client,
}

impl<'a> Events<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Events { client }
    }

    /// Replays every event with `after < sequence ≤ head` (the head is fixed when the call
    /// starts; `after = 0` means from the start), then yields
    /// [`CatchUpEvent::Complete`] and ends. An event log pruned past `after` fails with
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
    /// event exactly once, in order, from the position saved in `checkpoint`. See
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

/// A catch-up replay ([`Events::catch_up`]): group events in order, then
/// [`CatchUpEvent::Complete`], then the end. A stream that ends without `Complete` was cut
/// short.
pub struct CatchUpStream {
    inner: BoxStream<'static, Result<CatchUpEvent>>,
}

impl std::fmt::Debug for CatchUpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatchUpStream")
    }
}

impl CatchUpStream {
    fn new(frames: tonic::Streaming<pb::CatchUpEventsResponse>) -> Self {
        use pb::catch_up_events_response::Payload;
        let inner = frames
            .filter_map(|frame| async move {
                match frame {
                    Err(status) => Some(Err(Error::from_status(&status))),
                    Ok(pb::CatchUpEventsResponse {
                        payload: Some(Payload::Complete(c)),
                        ..
                    }) => Some(Ok(CatchUpEvent::Complete {
                        head_sequence: c.head_sequence,
                    })),
                    Ok(pb::CatchUpEventsResponse {
                        sequence: Some(sequence),
                        payload: Some(Payload::GroupChanged(event)),
                    }) => GroupEvent::from_wire(sequence, event)
                        .map(|e| e.map(CatchUpEvent::Group))
                        .transpose(),
                    // Heartbeats, and message/chat/poll events this SDK does not surface.
                    Ok(_) => None,
                }
            })
            .scan(false, |ended, item| {
                // Nothing follows `Complete` or an error.
                if *ended {
                    return futures::future::ready(None);
                }
                *ended = matches!(item, Err(_) | Ok(CatchUpEvent::Complete { .. }));
                futures::future::ready(Some(item))
            })
            .boxed();
        CatchUpStream { inner }
    }
}

impl Stream for CatchUpStream {
    type Item = Result<CatchUpEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}
