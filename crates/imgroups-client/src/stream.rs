//! Event streams: the frames of `Subscribe{Group,Message,Chat}Events` read into events, the
//! public [`EventStream`] over them, and the catch-up replay ([`CatchUpStream`]). Both the
//! plain calls (`crate::events`) and the resumable subscription (`crate::resumable`) read
//! frames through here.
//!
//! Each subscription is read first into raw items, `(sequence, Option<event>)`: `None` for a
//! frame with a sequence whose change this SDK does not know. The public streams skip those,
//! as the official SDK does; the resumable subscription counts their sequences, so a change
//! it cannot show never looks like a gap.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use imgroups_proto::pb;

use crate::error::{Error, Result};
use crate::types::{CatchUpEvent, ChatEvent, Event, GroupEvent, MessageEvent};

/// One frame with a sequence: the event, or `None` for a change this SDK does not know.
pub(crate) type Raw<E> = Result<(u64, Option<E>)>;

/// A frame of one of the live subscriptions.
pub(crate) trait LiveFrame: Send + 'static {
    type Event: Send + 'static;

    /// `None` for a frame without a sequence or an event (heartbeats).
    fn read(self) -> Option<Raw<Self::Event>>;
}

impl LiveFrame for pb::SubscribeGroupEventsResponse {
    type Event = GroupEvent;

    fn read(self) -> Option<Raw<GroupEvent>> {
        use pb::subscribe_group_events_response::Payload;
        match self {
            pb::SubscribeGroupEventsResponse {
                sequence: Some(sequence),
                payload: Some(Payload::GroupChanged(event)),
            } => Some(GroupEvent::from_wire(sequence, event).map(|e| (sequence, e))),
            _ => None,
        }
    }
}

impl LiveFrame for pb::SubscribeMessageEventsResponse {
    type Event = MessageEvent;

    fn read(self) -> Option<Raw<MessageEvent>> {
        use pb::subscribe_message_events_response::Payload;
        match self {
            pb::SubscribeMessageEventsResponse {
                sequence: Some(sequence),
                payload: Some(Payload::MessageChanged(event)),
            } => Some(MessageEvent::from_wire(sequence, event).map(|e| (sequence, e))),
            _ => None,
        }
    }
}

impl LiveFrame for pb::SubscribeChatEventsResponse {
    type Event = ChatEvent;

    fn read(self) -> Option<Raw<ChatEvent>> {
        use pb::subscribe_chat_events_response::Payload;
        match self {
            pb::SubscribeChatEventsResponse {
                sequence: Some(sequence),
                payload: Some(Payload::ChatChanged(event)),
            } => Some(ChatEvent::from_wire(sequence, event).map(|e| (sequence, e))),
            _ => None,
        }
    }
}

/// The raw items of a subscription: every frame with a sequence, then the end; a transport
/// error is one `Err` item and ends it.
pub(crate) fn raw<F: LiveFrame>(frames: tonic::Streaming<F>) -> BoxStream<'static, Raw<F::Event>> {
    frames
        .filter_map(|frame| async move {
            match frame {
                Err(status) => Some(Err(Error::from_status(&status))),
                Ok(frame) => frame.read(),
            }
        })
        .scan(false, |failed, item| {
            // Stop after the first error so callers see exactly one.
            if *failed {
                return futures::future::ready(None);
            }
            *failed = item.is_err();
            futures::future::ready(Some(item))
        })
        .boxed()
}

/// Live events of one kind: [`GroupEventStream`], [`MessageEventStream`],
/// [`ChatEventStream`]. Heartbeats and changes this SDK does not know are skipped. Ends with
/// `None` when the server closes the stream; an `Err` item ends it too.
pub struct EventStream<E> {
    inner: BoxStream<'static, Result<E>>,
}

/// Live group events ([`Groups::subscribe_events`](crate::Groups::subscribe_events)).
pub type GroupEventStream = EventStream<GroupEvent>;
/// Live message events ([`Messages::subscribe`](crate::Messages::subscribe)).
pub type MessageEventStream = EventStream<MessageEvent>;
/// Live chat events ([`Chats::subscribe_events`](crate::Chats::subscribe_events)).
pub type ChatEventStream = EventStream<ChatEvent>;

impl<E> std::fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStream")
    }
}

impl<E: Send + 'static> EventStream<E> {
    pub(crate) fn new<F: LiveFrame<Event = E>>(frames: tonic::Streaming<F>) -> Self {
        let inner = raw(frames)
            .filter_map(|item| async move {
                match item {
                    Ok((_, event)) => event.map(Ok),
                    Err(err) => Some(Err(err)),
                }
            })
            .boxed();
        EventStream { inner }
    }
}

impl<E> Stream for EventStream<E> {
    type Item = Result<E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// A catch-up replay ([`crate::Events::catch_up`]): the events of every kind in order, then
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
fn catch_up_item(frame: pb::CatchUpEventsResponse) -> Option<Result<RawCatchUp>> {
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
    pub(crate) fn new(frames: tonic::Streaming<pb::CatchUpEventsResponse>) -> Self {
        let inner = frames
            .filter_map(|frame| async move {
                match frame {
                    Err(status) => Some(Err(Error::from_status(&status))),
                    Ok(frame) => catch_up_item(frame),
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
