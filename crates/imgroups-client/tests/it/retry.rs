//! Retries, idempotency keys, deadlines, and the error classes the real server never sends
//! (rate limit, other), against a scripted fake GroupService.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgroups_client::{ChatGuid, Client, Code, ErrorKind, RetryPolicy};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types::Empty;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

type Reply = Result<pb::SetDisplayNameResponse, Status>;

#[derive(Clone, Default)]
pub(crate) struct Fake {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    keys: Arc<Mutex<Vec<Option<String>>>>,
    /// Sequences the live stream sends (with heartbeats between), then it stays open.
    pub(crate) live: Arc<Mutex<Vec<u64>>>,
}

pub(crate) fn group_event(sequence: u64) -> pb::GroupChangeEvent {
    pb::GroupChangeEvent {
        chat_guid: "any;+;chat1".into(),
        occurred_at: Some(imgroups_proto::pbjson_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        actor: None,
        is_from_me: false,
        change: Some(pb::group_change_event::Change::DisplayNameChanged(
            pb::GroupDisplayNameChanged {
                display_name: format!("name {sequence}"),
            },
        )),
    }
}

fn failure(code: Code, error_code: &'static str, retryable: bool) -> Status {
    let mut meta = MetadataMap::new();
    meta.insert("error-code", MetadataValue::from_static(error_code));
    if retryable {
        meta.insert("x-retryable", MetadataValue::from_static("true"));
    }
    meta.insert(
        "error-context-reason",
        MetadataValue::from_static("scripted"),
    );
    Status::with_metadata(code, "scripted failure", meta)
}

fn ok_chat() -> Reply {
    Ok(pb::SetDisplayNameResponse {
        chat: Some(pb::Chat {
            guid: "any;+;chat1".into(),
            display_name: Some("Weekend".into()),
            is_group: true,
            service: pb::ChatServiceType::Imessage as i32,
            ..Default::default()
        }),
    })
}

type EventStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<pb::SubscribeGroupEventsResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl pb::group_service_server::GroupService for Fake {
    async fn set_display_name(
        &self,
        req: Request<pb::SetDisplayNameRequest>,
    ) -> Result<Response<pb::SetDisplayNameResponse>, Status> {
        let key = req
            .metadata()
            .get("x-idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.keys.lock().unwrap().push(key);
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(ok_chat);
        reply.map(Response::new)
    }
    async fn add_participants(
        &self,
        _: Request<pb::AddParticipantsRequest>,
    ) -> Result<Response<pb::AddParticipantsResponse>, Status> {
        Err(failure(Code::Unimplemented, "operationNotSupported", false))
    }
    async fn remove_participants(
        &self,
        _: Request<pb::RemoveParticipantsRequest>,
    ) -> Result<Response<pb::RemoveParticipantsResponse>, Status> {
        Err(failure(Code::Unimplemented, "operationNotSupported", false))
    }
    async fn leave_group(
        &self,
        _: Request<pb::LeaveGroupRequest>,
    ) -> Result<Response<Empty>, Status> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(Response::new(Empty {}))
    }
    async fn set_icon(&self, _: Request<pb::SetIconRequest>) -> Result<Response<Empty>, Status> {
        Err(failure(Code::Unimplemented, "operationNotSupported", false))
    }
    async fn remove_icon(
        &self,
        _: Request<pb::RemoveIconRequest>,
    ) -> Result<Response<Empty>, Status> {
        Err(failure(Code::Internal, "internalError", false))
    }
    async fn get_icon(
        &self,
        _: Request<pb::GetIconRequest>,
    ) -> Result<Response<pb::GetIconResponse>, Status> {
        Err(failure(Code::ResourceExhausted, "burstRateExceeded", false))
    }
    type SubscribeGroupEventsStream = EventStream;
    async fn subscribe_group_events(
        &self,
        _: Request<pb::SubscribeGroupEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        use pb::subscribe_group_events_response::Payload;
        let mut frames = Vec::new();
        for seq in self.live.lock().unwrap().iter().copied() {
            frames.push(Ok(pb::SubscribeGroupEventsResponse {
                sequence: None,
                payload: Some(Payload::Heartbeat(pb::Heartbeat {})),
            }));
            frames.push(Ok(pb::SubscribeGroupEventsResponse {
                sequence: Some(seq),
                payload: Some(Payload::GroupChanged(group_event(seq))),
            }));
        }
        let stream =
            futures::StreamExt::chain(futures::stream::iter(frames), futures::stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }
}

pub(crate) async fn start_with_events(fake: Fake, events: crate::gaps::FakeLog) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::group_service_server::GroupServiceServer::new(fake))
            .add_service(pb::event_service_server::EventServiceServer::new(events))
            .serve_with_incoming(tokio_stream_incoming(listener)),
    );
    format!("http://{addr}")
}

async fn start(fake: Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::group_service_server::GroupServiceServer::new(fake))
            .serve_with_incoming(tokio_stream_incoming(listener)),
    );
    format!("http://{addr}")
}

fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    })
}

fn client(url: String, retry: RetryPolicy) -> Client {
    Client::builder()
        .address(url)
        .token("t")
        .retry(retry)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn chat() -> ChatGuid {
    ChatGuid::parse("any;+;chat1").unwrap()
}

#[tokio::test]
async fn retryable_failures_are_retried_with_one_idempotency_key() {
    let fake = Fake::default();
    fake.replies.lock().unwrap().extend([
        Err(failure(Code::Unavailable, "databaseError", true)),
        Err(failure(Code::Unavailable, "databaseError", true)),
        ok_chat(),
    ]);
    let client = client(start(fake.clone()).await, fast());
    let chat = client
        .groups()
        .set_display_name(&chat(), "Weekend")
        .await
        .unwrap();
    assert_eq!(chat.display_name, "Weekend");
    let keys = fake.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(keys[0].is_some());
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");

    // A new logical call gets a new key.
    client
        .groups()
        .set_display_name(&chat.guid, "Weekend")
        .await
        .unwrap();
    let keys = fake.keys.lock().unwrap().clone();
    assert_ne!(keys[3], keys[0]);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_skip_non_retryable() {
    let fake = Fake::default();
    fake.replies.lock().unwrap().extend(
        std::iter::repeat_with(|| Err(failure(Code::Unavailable, "databaseError", true))).take(10),
    );
    let url = start(fake.clone()).await;
    let err = client(url.clone(), fast())
        .groups()
        .set_display_name(&chat(), "x")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.is_retryable());
    assert_eq!(fake.keys.lock().unwrap().len(), 4);

    fake.replies.lock().unwrap().clear();
    fake.keys.lock().unwrap().clear();
    fake.replies.lock().unwrap().push_back(Err(failure(
        Code::Unavailable,
        "serviceUnavailable",
        false,
    )));
    let err = client(url, fast())
        .groups()
        .set_display_name(&chat(), "x")
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        fake.keys.lock().unwrap().len(),
        1,
        "not marked retryable: one attempt"
    );
}

#[tokio::test]
async fn rate_limit_other_and_timeout_classes() {
    let url = start(Fake::default()).await;
    let client = client(url, fast());

    let err = client.groups().get_icon(&chat()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimit);
    assert_eq!(err.code(), "burstRateExceeded");
    assert_eq!(err.context_value("reason"), Some("scripted"));

    let err = client.groups().remove_icon(&chat()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    assert_eq!(err.code(), "internalError");
    assert_eq!(err.grpc_code(), Code::Internal);

    let err = client.groups().leave(&chat()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert_eq!(err.grpc_code(), Code::DeadlineExceeded);
    assert_eq!(err.code(), "timeout");
}
