//! The server-streaming methods, served with [`EncodedCodec`]: their messages are encoded
//! before they reach the transport, straight from the domain event by [`encode`] (no `pb`
//! message is built). Live events are encoded once per commit and the same bytes go to every
//! subscriber (with many subscribers, a message built and encoded per subscriber was most of
//! the cost of fan-out); catch-up encodes each event into a shared buffer, and what moves
//! through the stream is a small handle instead of a whole message. Same wire format, same
//! behaviour as a generated service.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use imgroups_core::{Domain, Event};
use imgroups_proto::pb;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::Status;

use super::guard::{self, Admission};
use super::Grpc;
use crate::app::Caller;
use crate::events::{Filter, Frame};
use crate::wire::encode::{self, Lengths, Measured};
use crate::wire::to_status;

type FrameStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;
pub(crate) type FrameQueue<T> = crate::events::Queue<std::result::Result<T, Status>>;

/// A server-streaming method whose messages are encoded before they reach the transport.
pub(crate) trait EncodedMethod: Send + Sync + 'static {
    /// The gRPC path, as in the method table.
    const PATH: &'static str;
    type Request: Message + Default + Send + 'static;

    /// Checks the request of an admitted caller, then starts the stream.
    fn open(
        grpc: Arc<Grpc>,
        caller: Caller,
        req: Self::Request,
    ) -> impl Future<Output = std::result::Result<FrameQueue<Bytes>, Status>> + Send;
}

/// Live group events (`GroupService/SubscribeGroupEvents`), of every group or one.
pub(crate) struct SubscribeGroupEvents;

impl EncodedMethod for SubscribeGroupEvents {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/SubscribeGroupEvents";
    type Request = pb::SubscribeGroupEventsRequest;

    async fn open(
        grpc: Arc<Grpc>,
        caller: Caller,
        req: Self::Request,
    ) -> std::result::Result<FrameQueue<Bytes>, Status> {
        let filter = grpc
            .guard
            .app
            .subscription_filter(&caller, req.chat_guid)
            .await
            .map_err(to_status)?;
        grpc.streams
            .subscribe(
                &caller.token,
                caller.account,
                Filter::domain(Domain::Group).in_chat(filter),
                group_frame_encoded,
            )
            .await
            .map_err(to_status)
    }
}

/// Live message events (`MessageService/SubscribeMessageEvents`), of every chat or one.
pub(crate) struct SubscribeMessageEvents;

impl EncodedMethod for SubscribeMessageEvents {
    const PATH: &'static str = "/photon.imessage.v1.MessageService/SubscribeMessageEvents";
    type Request = pb::SubscribeMessageEventsRequest;

    async fn open(
        grpc: Arc<Grpc>,
        caller: Caller,
        req: Self::Request,
    ) -> std::result::Result<FrameQueue<Bytes>, Status> {
        live(
            grpc,
            caller,
            req.chat_guid,
            Domain::Message,
            message_frame_encoded,
        )
        .await
    }
}

/// Poll events (`PollService/SubscribePollEvents`): polls are not served, so the stream
/// carries heartbeats only — a client that merges it with the others stays healthy.
pub(crate) struct SubscribePollEvents;

impl EncodedMethod for SubscribePollEvents {
    const PATH: &'static str = "/photon.imessage.v1.PollService/SubscribePollEvents";
    type Request = pb::SubscribePollEventsRequest;

    async fn open(
        grpc: Arc<Grpc>,
        caller: Caller,
        _: Self::Request,
    ) -> std::result::Result<FrameQueue<Bytes>, Status> {
        Ok(grpc
            .streams
            .heartbeats_only(&caller.token, poll_frame_encoded))
    }
}

/// Live chat events (`ChatService/SubscribeChatEvents`: a chat marked read), of every chat
/// or one the caller can see.
pub(crate) struct SubscribeChatEvents;

impl EncodedMethod for SubscribeChatEvents {
    const PATH: &'static str = "/photon.imessage.v1.ChatService/SubscribeChatEvents";
    type Request = pb::SubscribeChatEventsRequest;

    async fn open(
        grpc: Arc<Grpc>,
        caller: Caller,
        req: Self::Request,
    ) -> std::result::Result<FrameQueue<Bytes>, Status> {
        live(
            grpc,
            caller,
            req.chat_guid,
            Domain::Chat,
            chat_frame_encoded,
        )
        .await
    }
}

/// The account's log from a sequence on (`EventService/CatchUpEvents`), then `complete`.
pub(crate) struct CatchUpEvents;

impl EncodedMethod for CatchUpEvents {
    const PATH: &'static str = "/photon.imessage.v1.EventService/CatchUpEvents";
    type Request = pb::CatchUpEventsRequest;

    async fn open(
        grpc: Arc<Grpc>,
        caller: Caller,
        req: Self::Request,
    ) -> std::result::Result<FrameQueue<Bytes>, Status> {
        let after = req.after_sequence.unwrap_or(0);
        grpc.streams
            .catch_up(
                &caller.token,
                caller.account,
                after,
                catch_up_frame_encoded,
                catch_up_event_encoded,
            )
            .await
            .map_err(to_status)
    }
}

/// A live stream of one family's events, of every chat the caller sees or of one.
async fn live(
    grpc: Arc<Grpc>,
    caller: Caller,
    chat: Option<String>,
    domain: Domain,
    encode: fn(Frame) -> std::result::Result<Bytes, Status>,
) -> std::result::Result<FrameQueue<Bytes>, Status> {
    let filter = grpc
        .guard
        .app
        .chat_filter(&caller, chat)
        .await
        .map_err(to_status)?;
    grpc.streams
        .subscribe(
            &caller.token,
            caller.account,
            Filter::domain(domain).in_chat(filter),
            encode,
        )
        .await
        .map_err(to_status)
}

/// Serves one call of `M` for a caller the guard admitted, as a generated service would but
/// with [`EncodedCodec`].
pub(crate) async fn serve<M: EncodedMethod>(
    grpc: Arc<Grpc>,
    method: Admission,
    req: Request,
) -> Response {
    let admitted = match guard::admit(&grpc.guard, method, req).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let mut server = tonic::server::Grpc::new(EncodedCodec::<M::Request>::default())
        .apply_max_message_size_config(
            Some(crate::MAX_MESSAGE_BYTES),
            Some(crate::MAX_MESSAGE_BYTES),
        );
    let call = Open::<M> {
        state: Some((grpc, admitted.caller)),
        method: PhantomData,
    };
    let response = server.server_streaming(call, admitted.req).await;
    guard::hold(admitted.permit, response.map(axum::body::Body::new))
}

/// One call of `M`, until tonic hands it the decoded request.
struct Open<M> {
    state: Option<(Arc<Grpc>, Caller)>,
    method: PhantomData<fn() -> M>,
}

type OpenFuture = Pin<
    Box<
        dyn Future<Output = std::result::Result<tonic::Response<FrameStream<Bytes>>, Status>>
            + Send,
    >,
>;

impl<M: EncodedMethod> tonic::server::ServerStreamingService<M::Request> for Open<M> {
    type Response = Bytes;
    type ResponseStream = FrameStream<Bytes>;
    type Future = OpenFuture;

    fn call(&mut self, req: tonic::Request<M::Request>) -> OpenFuture {
        let state = self.state.take();
        Box::pin(async move {
            // tonic calls a service once per request.
            let (grpc, caller) = state.ok_or_else(|| Status::internal("called twice"))?;
            let rx = M::open(grpc, caller, req.into_inner()).await?;
            let frames: FrameStream<Bytes> = Box::pin(crate::events::frames(rx));
            Ok(tonic::Response::new(frames))
        })
    }
}

fn group_frame_encoded(frame: Frame) -> std::result::Result<Bytes, Status> {
    live_frame_encoded(frame, Domain::Group, encode::Response::GroupEvents)
}

fn message_frame_encoded(frame: Frame) -> std::result::Result<Bytes, Status> {
    live_frame_encoded(frame, Domain::Message, encode::Response::MessageEvents)
}

fn chat_frame_encoded(frame: Frame) -> std::result::Result<Bytes, Status> {
    live_frame_encoded(frame, Domain::Chat, encode::Response::ChatEvents)
}

/// A frame of a live stream of `domain`'s events, sent as `response`.
fn live_frame_encoded(
    frame: Frame,
    domain: Domain,
    response: encode::Response,
) -> std::result::Result<Bytes, Status> {
    match frame {
        Frame::Event(delivery) if delivery.change.domain() == domain => {
            Ok(delivery.encoded(live_event_encoded))
        }
        // The stream's filter passes its own family only.
        Frame::Event(_) => Err(Status::internal("a stream got an event of another family")),
        Frame::Heartbeat | Frame::Complete { .. } => {
            encode_shared(|lengths| lengths.heartbeat(response))
        }
        Frame::Failed(err) => Err(to_status(err)),
    }
}

/// An event as its family's live stream sends it, to every subscriber alike. Its own
/// allocation, not a slice of the shared buffer: a commit's encoding lives as long as the
/// commit sits in the doorbell's buffer, and would pin a whole chunk.
fn live_event_encoded(event: &Event) -> Bytes {
    ENCODER.with_borrow_mut(|scratch| {
        let frame = scratch.lengths.live_event(event);
        let mut encoded = Vec::with_capacity(frame.encoded_len());
        frame.write(&mut encoded);
        encoded.into()
    })
}

/// A frame that did not fill the room measured for it: never (both walk the same fields), but
/// a stream fails rather than send a damaged frame.
fn unwritable() -> Status {
    tracing::error!("an event frame did not fill its measured length");
    Status::internal("internal error")
}

/// Poll streams carry heartbeats only.
fn poll_frame_encoded(frame: Frame) -> std::result::Result<Bytes, Status> {
    if let Frame::Failed(err) = frame {
        return Err(to_status(err));
    }
    encode_shared(|lengths| lengths.heartbeat(encode::Response::PollEvents))
}

fn catch_up_event_encoded(event: &Event) -> std::result::Result<Bytes, Status> {
    encode_shared(|lengths| lengths.catch_up_event(event))
}

fn catch_up_frame_encoded(frame: Frame) -> std::result::Result<Bytes, Status> {
    match frame {
        Frame::Event(event) => catch_up_event_encoded(&event),
        Frame::Complete { head } => encode_shared(|lengths| lengths.complete(head)),
        Frame::Heartbeat => encode_shared(|lengths| lengths.heartbeat(encode::Response::CatchUp)),
        Frame::Failed(err) => Err(to_status(err)),
    }
}

/// Where this thread encodes frames.
#[derive(Default)]
struct Scratch {
    /// Where [`encode_shared`] encodes: consecutive frames share one allocation.
    buffer: BytesMut,
    lengths: Lengths,
}

thread_local! {
    static ENCODER: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Allocation size for [`Scratch::buffer`]: a few hundred events.
const ENCODE_CHUNK: usize = 64 * 1024;

/// The frame `measure` measures, carved out of a buffer shared with the frames encoded before
/// and after it on this thread (a catch-up sends a million of them; one allocation each
/// showed). The chunk is freed once every frame cut from it has been sent, so use it only for
/// bytes that are sent and dropped, not kept.
fn encode_shared<'e>(
    measure: impl for<'l> FnOnce(&'l mut Lengths) -> Measured<'l, 'e>,
) -> std::result::Result<Bytes, Status> {
    ENCODER.with_borrow_mut(|scratch| {
        let Scratch { buffer, lengths } = scratch;
        let frame = measure(lengths);
        let len = frame.encoded_len();
        if buffer.capacity() < len {
            buffer.reserve(len.max(ENCODE_CHUNK));
        }
        // Written into room of its measured size (`buffer` is empty: each frame is split off).
        buffer.resize(len, 0);
        let filled = frame.write_exact(buffer);
        let encoded = buffer.split().freeze();
        match filled {
            true => Ok(encoded),
            false => Err(unwritable()),
        }
    })
}

/// A codec whose responses arrive already encoded (see [`EncodedMethod`]);
/// requests are decoded as usual.
struct EncodedCodec<Req>(PhantomData<Req>);

impl<Req> Default for EncodedCodec<Req> {
    fn default() -> Self {
        EncodedCodec(PhantomData)
    }
}

impl<Req: prost::Message + Default + Send + 'static> Codec for EncodedCodec<Req> {
    type Encode = Bytes;
    type Decode = Req;
    type Encoder = EncodedEncoder;
    type Decoder = tonic_prost::ProstDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

struct EncodedEncoder;

/// Bytes of frames tonic gathers before it hands them to the connection, and the size of the
/// buffer it gathers them in.
///
/// Why not tonic's defaults (32 KiB gathered in a buffer of 8 KiB): once a batch is handed
/// over, the buffer is shared with it, and each time it grows it is allocated anew and what
/// was gathered so far is copied, so a catch-up's frames were copied more than once on the
/// way. Gathered 16 KiB at a time in 64 KiB (the most a handed-over buffer is regrown to at
/// once), three batches fit before the buffer moves on, and what moves is one batch in the
/// making. 16 KiB is HTTP/2's default frame, a hundred-odd events of a catch-up.
const GATHER_BYTES: usize = 16 * 1024;
const GATHER_BUFFER: usize = 64 * 1024;

impl Encoder for EncodedEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> std::result::Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(GATHER_BUFFER, GATHER_BYTES)
    }
}
