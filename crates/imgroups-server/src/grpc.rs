//! gRPC transport: authenticates, unwraps, calls [`App`], wraps. Nothing else.

use std::pin::Pin;

use futures::Stream;
use imgroups_core::{ChatGuid, Result};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types::Empty;
use tonic::{Request, Response, Status};

use crate::api::{unimplemented, App, Caller};
use crate::events::{Frame, Streams};
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
    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller> {
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

fn group_frame(frame: Frame) -> std::result::Result<pb::SubscribeGroupEventsResponse, Status> {
    use pb::subscribe_group_events_response::Payload;
    Ok(match frame {
        Frame::Event(e) => pb::SubscribeGroupEventsResponse {
            sequence: Some(e.sequence),
            payload: Some(Payload::GroupChanged(wire::group_event(&e))),
        },
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
            payload: Some(Payload::GroupChanged(wire::group_event(&e))),
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

    async fn subscribe_group_events(
        &self,
        req: Request<pb::SubscribeGroupEventsRequest>,
    ) -> GrpcResult<Self::SubscribeGroupEventsStream> {
        let caller = self.caller(&req).await.map_err(to_status)?;
        let filter = match req.into_inner().chat_guid.filter(|c| !c.trim().is_empty()) {
            Some(chat) => {
                let guid = ChatGuid::parse(&chat).map_err(to_status)?;
                guid.require_group().map_err(to_status)?;
                // Only a group I can see may be watched.
                self.app
                    .store
                    .get_chat(caller.account, chat)
                    .await
                    .map_err(to_status)?;
                Some(guid)
            }
            None => None,
        };
        let rx = self
            .streams
            .subscribe(caller.account, filter, group_frame)
            .await
            .map_err(to_status)?;
        Ok(Response::new(boxed(rx)))
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
                .store
                .get_chat(caller.account, chat)
                .await
                .map_err(to_status)?;
        }
        Ok(Response::new(boxed(
            self.streams.heartbeats_only(chat_frame),
        )))
    }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for Grpc {
    type CatchUpEventsStream = FrameStream<pb::CatchUpEventsResponse>;

    async fn catch_up_events(
        &self,
        req: Request<pb::CatchUpEventsRequest>,
    ) -> GrpcResult<Self::CatchUpEventsStream> {
        let caller = self.caller(&req).await.map_err(to_status)?;
        let after = req.into_inner().after_sequence.unwrap_or(0);
        let rx = self
            .streams
            .catch_up(caller.account, after, catch_up_frame)
            .await
            .map_err(to_status)?;
        Ok(Response::new(boxed(rx)))
    }
}
