//! gRPC transport: authenticates, unwraps, calls [`App`], wraps. Nothing else.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use imgroups_core::{Event, Result};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types::Empty;
use prost::Message;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::{Request, Response, Status};

use crate::api::{unimplemented, App, Caller};
use crate::events::{Delivery, Frame, Streams};
use crate::wire::{self, to_status};

type GrpcResult<T> = std::result::Result<Response<T>, Status>;
type FrameStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

/// The services, sharing one application.
#[derive(Clone)]
pub(crate) struct Grpc {
    pub(crate) app: App,
    pub(crate) streams: Streams,
}

impl Grpc {
    /// The caller [`crate::guard::grpc_guard`] authenticated before the message was read; a
    /// request that did not pass through it (a service mounted alone) is authenticated here.
    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller> {
        if let Some(caller) = req.extensions().get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = |name: &str| req.metadata().get(name).and_then(|v| v.to_str().ok());
        self.app
            .caller(header("authorization"), header("x-idempotency-key"))
            .await
    }

    /// Authenticates, then runs `f` with the caller and the request body.
    async fn unary<Req, Resp, Fut>(
        &self,
        req: Request<Req>,
        f: impl FnOnce(App, Caller, Req) -> Fut,
    ) -> GrpcResult<Resp>
    where
        Fut: std::future::Future<Output = Result<Resp>>,
    {
        let caller = self.caller(&req).await.map_err(to_status)?;
        f(self.app.clone(), caller, req.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn unsupported<Req, Resp>(&self, req: Request<Req>, method: &str) -> GrpcResult<Resp> {
        self.caller(&req).await.map_err(to_status)?;
        Err(to_status(unimplemented(method)))
    }
}

fn boxed<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<Vec<std::result::Result<T, Status>>>,
) -> FrameStream<T> {
    Box::pin(crate::events::frames(rx))
}

fn group_message(e: &Event) -> pb::SubscribeGroupEventsResponse {
    use pb::subscribe_group_events_response::Payload;
    pb::SubscribeGroupEventsResponse {
        sequence: Some(e.sequence),
        payload: Some(Payload::GroupChanged(wire::group_event(e))),
    }
}

fn group_frame(frame: Frame) -> std::result::Result<pb::SubscribeGroupEventsResponse, Status> {
    use pb::subscribe_group_events_response::Payload;
    Ok(match frame {
        Frame::Event(e) => group_message(&e),
        Frame::Heartbeat | Frame::Complete { .. } => pb::SubscribeGroupEventsResponse {
            sequence: None,
            payload: Some(Payload::Heartbeat(pb::Heartbeat {})),
        },
        Frame::Failed(err) => return Err(to_status(err)),
    })
}

fn chat_frame(frame: Frame) -> std::result::Result<pb::SubscribeChatEventsResponse, Status> {
    use pb::subscribe_chat_events_response::Payload;
    if let Frame::Failed(err) = frame {
        return Err(to_status(err));
    }
    // This server produces no chat events; the stream carries heartbeats only.
    Ok(pb::SubscribeChatEventsResponse {
        sequence: None,
        payload: Some(Payload::Heartbeat(pb::Heartbeat {})),
    })
}

fn catch_up_frame(frame: Frame) -> std::result::Result<pb::CatchUpEventsResponse, Status> {
    use pb::catch_up_events_response::Payload;
    Ok(match frame {
        Frame::Event(e) => pb::CatchUpEventsResponse {
            sequence: Some(e.sequence),
            payload: Some(Payload::GroupChanged(match e {
                Delivery::Read(event) => wire::group_event_owned(event),
                Delivery::Shared(..) => wire::group_event(&e),
            })),
        },
        Frame::Complete { head } => pb::CatchUpEventsResponse {
            sequence: None,
            payload: Some(Payload::Complete(pb::CatchUpEventsComplete {
                head_sequence: head,
            })),
        },
        Frame::Heartbeat => pb::CatchUpEventsResponse {
            sequence: None,
            payload: Some(Payload::Heartbeat(pb::Heartbeat {})),
        },
        Frame::Failed(err) => return Err(to_status(err)),
    })
}

#[tonic::async_trait]
impl pb::group_service_server::GroupService for Grpc {
    async fn set_display_name(
        &self,
        req: Request<pb::SetDisplayNameRequest>,
    ) -> GrpcResult<pb::SetDisplayNameResponse> {
        self.unary(req, |app, caller, req| async move {
            app.set_display_name(&caller, req).await
        })
        .await
    }

    async fn add_participants(
        &self,
        req: Request<pb::AddParticipantsRequest>,
    ) -> GrpcResult<pb::AddParticipantsResponse> {
        self.unary(req, |app, caller, req| async move {
            app.add_participants(&caller, req).await
        })
        .await
    }

    async fn remove_participants(
        &self,
        req: Request<pb::RemoveParticipantsRequest>,
    ) -> GrpcResult<pb::RemoveParticipantsResponse> {
        self.unary(req, |app, caller, req| async move {
            app.remove_participants(&caller, req).await
        })
        .await
    }

    async fn leave_group(&self, req: Request<pb::LeaveGroupRequest>) -> GrpcResult<Empty> {
        self.unary(req, |app, caller, req| async move {
            app.leave_group(&caller, req).await.map(|()| Empty {})
        })
        .await
    }

    async fn set_icon(&self, req: Request<pb::SetIconRequest>) -> GrpcResult<Empty> {
        self.unary(req, |app, caller, req| async move {
            app.set_icon(&caller, req).await.map(|()| Empty {})
        })
        .await
    }

    async fn remove_icon(&self, req: Request<pb::RemoveIconRequest>) -> GrpcResult<Empty> {
        self.unary(req, |app, caller, req| async move {
            app.remove_icon(&caller, req).await.map(|()| Empty {})
        })
        .await
    }

    async fn get_icon(&self, req: Request<pb::GetIconRequest>) -> GrpcResult<pb::GetIconResponse> {
        self.unary(req, |app, caller, req| async move {
            app.get_icon(&caller, req).await
        })
        .await
    }

    type SubscribeGroupEventsStream = FrameStream<pb::SubscribeGroupEventsResponse>;

    /// Reached only where this service is mounted on its own: [`serve`](crate::serve) routes
    /// the method to [`Encoded`]`<`[`SubscribeGroupEvents`]`>` instead.
    async fn subscribe_group_events(
        &self,
        req: Request<pb::SubscribeGroupEventsRequest>,
    ) -> GrpcResult<Self::SubscribeGroupEventsStream> {
        let rx = self.open_group_events(req, group_frame).await?;
        Ok(Response::new(boxed(rx)))
    }
}

impl Grpc {
    /// Authenticates a `CatchUpEvents` request, then starts its stream.
    async fn open_catch_up<T: Send + 'static>(
        &self,
        req: Request<pb::CatchUpEventsRequest>,
        map: fn(Frame) -> T,
    ) -> std::result::Result<tokio::sync::mpsc::Receiver<Vec<T>>, Status> {
        let caller = self.caller(&req).await.map_err(to_status)?;
        let after = req.into_inner().after_sequence.unwrap_or(0);
        self.streams
            .catch_up(&caller.token, caller.account, after, map)
            .await
            .map_err(to_status)
    }

    /// Authenticates and checks a `SubscribeGroupEvents` request, then starts its stream.
    async fn open_group_events<T: Send + 'static>(
        &self,
        req: Request<pb::SubscribeGroupEventsRequest>,
        map: fn(Frame) -> T,
    ) -> std::result::Result<tokio::sync::mpsc::Receiver<Vec<T>>, Status> {
        let caller = self.caller(&req).await.map_err(to_status)?;
        let filter = self
            .app
            .subscription_filter(&caller, req.into_inner().chat_guid)
            .await
            .map_err(to_status)?;
        self.streams
            .subscribe(&caller.token, caller.account, filter, map)
            .await
            .map_err(to_status)
    }
}

/// A server-streaming method served with [`EncodedCodec`]: its messages are encoded before
/// they reach the transport. Live events are encoded once per commit and the same bytes go to
/// every subscriber (with many subscribers, a message built and encoded per subscriber was most
/// of the cost of fan-out); catch-up encodes each event into a shared buffer, and what moves
/// through the stream is a small handle instead of a whole message. Same wire format, same
/// behaviour as the generated service.
pub(crate) trait EncodedMethod: Send + Sync + 'static {
    const PATH: &'static str;
    type Request: Message + Default + Send + 'static;

    /// Authenticates and checks the request, then starts the stream.
    fn open(
        grpc: Grpc,
        req: Request<Self::Request>,
    ) -> impl Future<Output = std::result::Result<FrameQueue<Bytes>, Status>> + Send;
}

type FrameQueue<T> = tokio::sync::mpsc::Receiver<Vec<std::result::Result<T, Status>>>;

pub(crate) struct SubscribeGroupEvents;

impl EncodedMethod for SubscribeGroupEvents {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/SubscribeGroupEvents";
    type Request = pb::SubscribeGroupEventsRequest;

    async fn open(
        grpc: Grpc,
        req: Request<Self::Request>,
    ) -> std::result::Result<FrameQueue<Bytes>, Status> {
        grpc.open_group_events(req, group_frame_encoded).await
    }
}

pub(crate) struct CatchUpEvents;

impl EncodedMethod for CatchUpEvents {
    const PATH: &'static str = "/photon.imessage.v1.EventService/CatchUpEvents";
    type Request = pb::CatchUpEventsRequest;

    async fn open(
        grpc: Grpc,
        req: Request<Self::Request>,
    ) -> std::result::Result<FrameQueue<Bytes>, Status> {
        grpc.open_catch_up(req, catch_up_frame_encoded).await
    }
}

/// The route for one [`EncodedMethod`].
pub(crate) struct Encoded<M>(Grpc, PhantomData<M>);

impl<M> Clone for Encoded<M> {
    fn clone(&self) -> Self {
        Encoded(self.0.clone(), PhantomData)
    }
}

impl<M: EncodedMethod> Encoded<M> {
    pub(crate) fn new(grpc: Grpc) -> Self {
        Encoded(grpc, PhantomData)
    }

    /// Serves one call, as the generated service would but with [`EncodedCodec`].
    pub(crate) async fn serve(
        self,
        req: http::Request<axum::body::Body>,
    ) -> http::Response<tonic::body::Body> {
        let mut grpc = tonic::server::Grpc::new(EncodedCodec::<M::Request>::default())
            .apply_max_message_size_config(
                Some(crate::MAX_MESSAGE_BYTES),
                Some(crate::MAX_MESSAGE_BYTES),
            );
        grpc.server_streaming(self, req).await
    }
}

impl<M: EncodedMethod> tonic::server::ServerStreamingService<M::Request> for Encoded<M> {
    type Response = Bytes;
    type ResponseStream = FrameStream<Bytes>;
    type Future = Pin<Box<dyn Future<Output = GrpcResult<FrameStream<Bytes>>> + Send>>;

    fn call(&mut self, req: Request<M::Request>) -> Self::Future {
        let grpc = self.0.clone();
        Box::pin(async move {
            let rx = M::open(grpc, req).await?;
            Ok(Response::new(boxed(rx)))
        })
    }
}

fn group_frame_encoded(frame: Frame) -> std::result::Result<Bytes, Status> {
    Ok(match frame {
        // Its own allocation, not a slice of the shared buffer: a commit's encoding lives as
        // long as the commit sits in the doorbell's buffer, and would pin a whole chunk.
        Frame::Event(delivery) => delivery.encoded(|e| group_message(e).encode_to_vec().into()),
        other => encode_shared(&group_frame(other)?),
    })
}

fn catch_up_frame_encoded(frame: Frame) -> std::result::Result<Bytes, Status> {
    catch_up_frame(frame).map(|message| encode_shared(&message))
}

thread_local! {
    /// Where [`encode_shared`] encodes: consecutive messages share one allocation.
    static ENCODE_BUFFER: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// Allocation size for [`ENCODE_BUFFER`]: a few hundred events.
const ENCODE_CHUNK: usize = 64 * 1024;

/// `message`'s encoding, carved out of a buffer shared with the messages encoded before and
/// after it on this thread (a catch-up sends a million of them; one allocation each showed).
/// The chunk is freed once every message cut from it has been sent, so use it only for bytes
/// that are sent and dropped, not kept.
fn encode_shared(message: &impl Message) -> Bytes {
    ENCODE_BUFFER.with_borrow_mut(|buffer| {
        let len = message.encoded_len();
        if buffer.capacity() < len {
            buffer.reserve(len.max(ENCODE_CHUNK));
        }
        let encoded = message.encode(buffer);
        debug_assert!(encoded.is_ok(), "room was reserved above");
        buffer.split().freeze()
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

impl Encoder for EncodedEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> std::result::Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

#[tonic::async_trait]
impl pb::chat_service_server::ChatService for Grpc {
    async fn create_chat(
        &self,
        req: Request<pb::CreateChatRequest>,
    ) -> GrpcResult<pb::CreateChatResponse> {
        self.unary(req, |app, caller, req| async move {
            app.create_chat(&caller, req).await
        })
        .await
    }

    async fn get_chat(&self, req: Request<pb::GetChatRequest>) -> GrpcResult<pb::GetChatResponse> {
        self.unary(req, |app, caller, req| async move {
            app.get_chat(&caller, req).await
        })
        .await
    }

    async fn get_chat_count(
        &self,
        req: Request<pb::GetChatCountRequest>,
    ) -> GrpcResult<pb::GetChatCountResponse> {
        self.unary(req, |app, caller, req| async move {
            app.get_chat_count(&caller, req).await
        })
        .await
    }

    async fn mark_chat_read(&self, req: Request<pb::MarkChatReadRequest>) -> GrpcResult<Empty> {
        self.unsupported(req, "MarkChatRead").await
    }

    async fn set_background(&self, req: Request<pb::SetBackgroundRequest>) -> GrpcResult<Empty> {
        self.unsupported(req, "SetBackground").await
    }

    async fn remove_background(
        &self,
        req: Request<pb::RemoveBackgroundRequest>,
    ) -> GrpcResult<Empty> {
        self.unsupported(req, "RemoveBackground").await
    }

    async fn share_contact_info(
        &self,
        req: Request<pb::ShareContactInfoRequest>,
    ) -> GrpcResult<Empty> {
        self.unsupported(req, "ShareContactInfo").await
    }

    async fn set_typing(&self, req: Request<pb::SetTypingRequest>) -> GrpcResult<Empty> {
        self.unsupported(req, "SetTyping").await
    }

    async fn has_background(
        &self,
        req: Request<pb::HasBackgroundRequest>,
    ) -> GrpcResult<pb::HasBackgroundResponse> {
        self.unsupported(req, "HasBackground").await
    }

    type SubscribeChatEventsStream = FrameStream<pb::SubscribeChatEventsResponse>;

    async fn subscribe_chat_events(
        &self,
        req: Request<pb::SubscribeChatEventsRequest>,
    ) -> GrpcResult<Self::SubscribeChatEventsStream> {
        let caller = self.caller(&req).await.map_err(to_status)?;
        if let Some(chat) = req.into_inner().chat_guid.filter(|c| !c.trim().is_empty()) {
            self.app
                .engine
                .get_chat(caller.account, chat)
                .await
                .map_err(to_status)?;
        }
        Ok(Response::new(boxed(
            self.streams.heartbeats_only(&caller.token, chat_frame),
        )))
    }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for Grpc {
    type CatchUpEventsStream = FrameStream<pb::CatchUpEventsResponse>;

    /// Reached only where this service is mounted on its own: [`serve`](crate::serve) routes
    /// the method to [`Encoded`]`<`[`CatchUpEvents`]`>` instead.
    async fn catch_up_events(
        &self,
        req: Request<pb::CatchUpEventsRequest>,
    ) -> GrpcResult<Self::CatchUpEventsStream> {
        let rx = self.open_catch_up(req, catch_up_frame).await?;
        Ok(Response::new(boxed(rx)))
    }
}
