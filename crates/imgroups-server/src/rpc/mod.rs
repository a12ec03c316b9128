//! The operations this server serves: one typed registration per RPC ([`Rpc`], or [`Write`]
//! for the common shape of a write), listed once in [`register`].
//!
//! Both transports are built from that list and from the method table the proto crate
//! generates from our `.proto` files ([`imgroups_proto::methods`]): a gRPC route per
//! registration (`crate::grpc`), and an HTTP route per registration whose method has a
//! `google.api.http` annotation (`crate::http`: verb, path, body or query from the table).
//! Every RPC of the table that is not registered answers UNIMPLEMENTED on both ([`Served`]),
//! and the injected faults, metric labels and `docs/openapi.json` name the same methods.
//!
//! Layout: one file per service ([`group`], [`chat`], [`message`], [`address`]); the event
//! streams are registered here
//! too, but served by `crate::grpc::streams` (they have no HTTP route: SSE is `/v1/events:stream`).

pub(crate) mod address;
pub(crate) mod chat;
pub(crate) mod group;
pub(crate) mod message;

use std::collections::HashSet;
use std::future::Future;
use std::sync::LazyLock;

use imgroups_core::{Command, Error, ErrorKind, Outcome, Result};
use imgroups_proto::methods::{Method, METHODS};
use imgroups_proto::pb;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::{App, Caller};
use crate::grpc::streams::{self, EncodedMethod};
use crate::wire;

/// One unary RPC: its request in, its response out, over any transport.
pub(crate) trait Rpc: Send + Sync + 'static {
    /// The gRPC path, as in the method table (`/photon.imessage.v1.GroupService/SetIcon`).
    const PATH: &'static str;
    /// Whether the request may be as large as an icon (`NetLimits::max_message_bytes` does
    /// not apply; the icon limit does, over both transports).
    const LARGE_BODY: bool = false;
    type Req: prost::Message + DeserializeOwned + Default + Send + 'static;
    type Resp: prost::Message + Serialize + Send + 'static;

    /// Runs the operation for an authenticated caller.
    fn call(
        app: &App,
        caller: &Caller,
        req: Self::Req,
    ) -> impl Future<Output = Result<Self::Resp>> + Send;
}

/// The shape of most writes: the request names one core command (and may carry a
/// `client_message_id`, the idempotency key), and the command's outcome becomes the response.
pub(crate) trait Write: Send + Sync + 'static {
    /// As [`Rpc::PATH`].
    const PATH: &'static str;
    /// As [`Rpc::LARGE_BODY`].
    const LARGE_BODY: bool = false;
    type Req: prost::Message + DeserializeOwned + Default + Send + 'static;
    type Resp: prost::Message + Serialize + Send + 'static;

    /// The command the request asks for, and its `client_message_id`.
    fn command(app: &App, req: Self::Req) -> Result<(Command, Option<String>)>;

    /// The response to the command's outcome.
    fn respond(outcome: Outcome) -> Result<Self::Resp>;
}

impl<W: Write> Rpc for W {
    const PATH: &'static str = W::PATH;
    const LARGE_BODY: bool = W::LARGE_BODY;
    type Req = W::Req;
    type Resp = W::Resp;

    async fn call(app: &App, caller: &Caller, req: W::Req) -> Result<W::Resp> {
        let (command, key) = W::command(app, req)?;
        let outcome = app.write(caller, key, command).await?;
        W::respond(outcome)
    }
}

/// What a registry is told, once per registered operation (see [`register`]).
pub(crate) trait Registry {
    /// A unary RPC.
    fn rpc<R: Rpc>(&mut self);
    /// A server-streaming RPC (gRPC only).
    fn stream<S: EncodedMethod>(&mut self);
}

/// Every operation this server serves: the one list both transports are built from.
pub(crate) fn register(r: &mut impl Registry) {
    // GroupService (docs/protocol.md §1.1)
    r.rpc::<group::SetDisplayName>();
    r.rpc::<group::AddParticipants>();
    r.rpc::<group::RemoveParticipants>();
    r.rpc::<group::LeaveGroup>();
    r.rpc::<group::SetIcon>();
    r.rpc::<group::RemoveIcon>();
    r.rpc::<group::GetIcon>();
    r.stream::<streams::SubscribeGroupEvents>();
    // ChatService (docs/protocol.md §3)
    r.rpc::<chat::CreateChat>();
    r.rpc::<chat::GetChat>();
    r.rpc::<chat::GetChatCount>();
    r.rpc::<chat::MarkChatRead>();
    r.rpc::<chat::SetTyping>();
    r.rpc::<chat::SetBackground>();
    r.rpc::<chat::RemoveBackground>();
    r.rpc::<chat::HasBackground>();
    r.rpc::<chat::ShareContactInfo>();
    r.stream::<streams::SubscribeChatEvents>();
    // MessageService (docs/protocol.md §12)
    r.rpc::<message::SendTextMessage>();
    r.rpc::<message::SetReaction>();
    r.rpc::<message::EditMessage>();
    r.rpc::<message::UnsendMessage>();
    r.rpc::<message::NotifySilencedMessage>();
    r.rpc::<message::GetMessage>();
    r.rpc::<message::ListRecentMessages>();
    r.rpc::<message::ListChatMessages>();
    r.stream::<streams::SubscribeMessageEvents>();
    // AddressService
    r.rpc::<address::GetAddressInfo>();
    r.rpc::<address::GetFocusStatus>();
    r.rpc::<address::GetIMessageAvailability>();
    // PollService: only the stream, heartbeats (polls are not served)
    r.stream::<streams::SubscribePollEvents>();
    // EventService
    r.stream::<streams::CatchUpEvents>();
}

/// What is registered, by method: which RPCs of the table this server serves, and so which
/// answer UNIMPLEMENTED and how.
pub(crate) struct Served {
    paths: HashSet<&'static str>,
    /// Services with at least one registered method (`GroupService`, …).
    services: HashSet<&'static str>,
}

static SERVED: LazyLock<Served> = LazyLock::new(|| {
    struct Paths(Vec<&'static str>);
    impl Registry for Paths {
        fn rpc<R: Rpc>(&mut self) {
            self.0.push(R::PATH);
        }
        fn stream<S: EncodedMethod>(&mut self) {
            self.0.push(S::PATH);
        }
    }
    let mut registered = Paths(Vec::new());
    register(&mut registered);
    let mut served = Served {
        paths: HashSet::new(),
        services: HashSet::new(),
    };
    for path in registered.0 {
        match imgroups_proto::methods::method(path) {
            Some(method) => {
                served.paths.insert(method.path);
                served.services.insert(method.service);
            }
            // A registration the table does not know would never be routed: a bug, caught
            // by `every_registration_is_in_the_table`.
            None => tracing::error!(path, "registered RPC missing from the method table"),
        }
    }
    served
});

impl Served {
    pub(crate) fn get() -> &'static Served {
        &SERVED
    }

    /// Whether `method` is registered.
    pub(crate) fn serves(&self, method: &Method) -> bool {
        self.paths.contains(method.path)
    }

    /// Whether at least one method of `service` is registered. The methods of such a service
    /// pass the same checks as the served ones (token, rate, size) before an UNIMPLEMENTED
    /// answer; those of a service not served at all are answered without a look at the token,
    /// as gRPC's own fallback answers an unknown service.
    pub(crate) fn serves_service(&self, service: &str) -> bool {
        self.services.contains(service)
    }

    /// The methods of the table that are not registered, in table order.
    pub(crate) fn unimplemented(&self) -> impl Iterator<Item = &'static Method> + '_ {
        METHODS.iter().filter(|m| !self.serves(m))
    }

    /// The methods of the services this server serves (in part or whole), in table order:
    /// the ones its guard checks, faults may name, and health reports on.
    pub(crate) fn methods(&self) -> impl Iterator<Item = &'static Method> + '_ {
        METHODS.iter().filter(|m| self.serves_service(m.service))
    }

    /// The `method` an UNIMPLEMENTED answer names: the RPC's name in a service served in part
    /// (`MarkChatRead`), the full path without its slash in one not served at all
    /// (`photon.imessage.v1.MessageService/SendTextMessage`), as gRPC's fallback names it.
    pub(crate) fn unimplemented_name(&self, method: &Method) -> &'static str {
        if self.serves_service(method.service) {
            method.name
        } else {
            method.path.trim_start_matches('/')
        }
    }
}

/// The full name of a method's service (`photon.imessage.v1.GroupService`).
pub(crate) fn service_path(method: &Method) -> &'static str {
    let path = method.path.trim_start_matches('/');
    path.rsplit_once('/').map_or(path, |(service, _)| service)
}

/// The answer for an RPC this server does not implement.
pub(crate) fn unimplemented(method: &str) -> Error {
    Error::new(
        ErrorKind::Unimplemented,
        // Lower case like every message, whatever case the method's name starts with.
        format!("this server does not support {method}"),
    )
    .with("method", method)
}

/// The chat a write answers with.
pub(crate) fn chat_of(outcome: Outcome) -> Result<pb::Chat> {
    match outcome {
        Outcome::Chat(chat) | Outcome::Created { chat, .. } => Ok(wire::chat(&chat)),
        Outcome::Empty | Outcome::Message(_) => {
            tracing::error!("write returned no chat");
            Err(Error::internal())
        }
    }
}

/// The message a write answers with.
pub(crate) fn message_of(outcome: Outcome) -> Result<pb::Message> {
    match outcome {
        Outcome::Message(message) => Ok(wire::message(&message)),
        Outcome::Created {
            message: Some(message),
            ..
        } => Ok(wire::message(&message)),
        Outcome::Empty | Outcome::Chat(_) | Outcome::Created { .. } => {
            tracing::error!("write returned no message");
            Err(Error::internal())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registration_is_in_the_table() {
        struct Check(Vec<&'static str>);
        impl Registry for Check {
            fn rpc<R: Rpc>(&mut self) {
                let method = imgroups_proto::methods::method(R::PATH);
                assert!(
                    method.is_some_and(|m| !m.server_streaming && !m.client_streaming),
                    "{} is not a unary RPC of the table",
                    R::PATH
                );
                self.0.push(R::PATH);
            }
            fn stream<S: EncodedMethod>(&mut self) {
                let method = imgroups_proto::methods::method(S::PATH);
                assert!(
                    method.is_some_and(|m| m.server_streaming),
                    "{} is not a server-streaming RPC of the table",
                    S::PATH
                );
                self.0.push(S::PATH);
            }
        }
        let mut check = Check(Vec::new());
        register(&mut check);
        let unique: HashSet<_> = check.0.iter().collect();
        assert_eq!(unique.len(), check.0.len(), "an RPC is registered twice");
    }

    #[test]
    fn unimplemented_names_as_before() {
        let served = Served::get();
        let name = |path: &str| {
            served.unimplemented_name(imgroups_proto::methods::method(path).expect("in the table"))
        };
        assert_eq!(
            name("/photon.imessage.v1.MessageService/PlaceSticker"),
            "PlaceSticker"
        );
        assert_eq!(
            name("/photon.imessage.v1.AttachmentService/UploadAttachment"),
            "photon.imessage.v1.AttachmentService/UploadAttachment"
        );
    }
}
