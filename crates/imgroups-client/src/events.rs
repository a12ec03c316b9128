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
use crate::types::{CatchUpEvent, ChatEvent, Event, GroupEvent, MessageEvent};

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

/// A catch-up replay ([`Events::catch_up`]): the events of every kind in order, then
/// [`CatchUpEvent::Complete`], then the end. A stream that ends without `Complete` was cut
/// short. Changes this SDK does not know are skipped.
pub struct CatchUpStream {
    inner: BoxStream<'static, Result<RawCatchUp>>,
}

/// A catch-up frame as the resumable subscription reads it: unknown changes keep their
/// sequence.
pub(crate) enum RawCatchUp {
    // Boxed: an event is large next to a sequence number.
    Event(u64, Option<Box<Event>>),
    Complete(u64),
}

impl std::fmt::Debug for CatchUpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatchUpStream")
    }
}

/// The event of a catch-up frame; `None` for heartbeats and frames without a sequence.
fn read(frame: pb::CatchUpEventsResponse) -> Option<Result<RawCatchUp>> {
    use pb::catch_up_events_response::Payload;
    let sequence = match frame {
        pb::CatchUpEventsResponse {
            payload: Some(Payload::Complete(c)),
            ..
        } => return Some(Ok(RawCatchUp::Complete(c.head_sequence))),
        pb::CatchUpEventsResponse {
            sequence: Some(sequence),
            ..
        } => sequence,
        pb::CatchUpEventsResponse { sequence: None, .. } => return None,
    };
    let event = match frame.payload? {
        Payload::GroupChanged(e) => GroupEvent::from_wire(sequence, e).map(|e| e.map(Event::from)),
        Payload::MessageChanged(e) => {
            MessageEvent::from_wire(sequence, e).map(|e| e.map(Event::from))
        }
        Payload::ChatChanged(e) => ChatEvent::from_wire(sequence, e).map(|e| e.map(Event::from)),
        // Polls are not served yet; their sequences still count.
        Payload::PollChanged(_) => Ok(None),
        Payload::Complete(_) | Payload::Heartbeat(_) => return None,
    };
    Some(event.map(|e| RawCatchUp::Event(sequence, e.map(Box::new))))
}

impl CatchUpStream {
    fn new(frames: tonic::Streaming<pb::CatchUpEventsResponse>) -> Self {
        let inner = frames
            .filter_map(|frame| async move {
                match frame {
                    Err(status) => Some(Err(Error::from_status(&status))),
                    Ok(frame) => read(frame),
                }
            })
            .scan(false, |ended, item| {
                // Nothing follows `Complete` or an error.
                if *ended {
                    return futures::future::ready(None);
                }
                *ended = matches!(item, Err(_) | Ok(RawCatchUp::Complete(_)));
                futures::future::ready(Some(item))
            })
            .boxed();
        CatchUpStream { inner }
    }

    /// The next frame, unknown changes included.
    pub(crate) async fn next_raw(&mut self) -> Option<Result<RawCatchUp>> {
        self.inner.next().await
    }
}

impl Stream for CatchUpStream {
    type Item = Result<CatchUpEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match self.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(RawCatchUp::Event(_, None)))) => continue,
                Poll::Ready(Some(Ok(RawCatchUp::Event(_, Some(event))))) => {
                    Poll::Ready(Some(Ok((*event).into_catch_up())))
                }
                Poll::Ready(Some(Ok(RawCatchUp::Complete(head_sequence)))) => {
                    Poll::Ready(Some(Ok(CatchUpEvent::Complete { head_sequence })))
                }
                Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}
