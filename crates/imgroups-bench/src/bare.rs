//! The baselines: a bare tonic server with the same messages and no work behind them, and a
//! raw SQLite commit loop. Both run as separate processes so they can be pinned like the real
//! server.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types::{Empty, Timestamp};
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use crate::proc::Result;

type Frames<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

/// Same capacity as the real server's commit doorbell.
const FANOUT_BUFFER: usize = 1024;

#[derive(Clone)]
struct Bare {
    fanout: broadcast::Sender<Arc<pb::GroupChangeEvent>>,
}

fn now_ts() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn address(a: &str) -> pb::SingleServiceAddressInfo {
    pb::SingleServiceAddressInfo {
        address: a.to_owned(),
        service: pb::ChatServiceType::Imessage as i32,
        country: None,
    }
}

/// A chat shaped like the real server's answer (two participants).
fn chat(guid: String, name: Option<String>) -> pb::Chat {
    pb::Chat {
        chat_identifier: guid.strip_prefix("any;+;").map(str::to_owned),
        guid,
        group_id: Some("6F9619FF-8B86-D011-B42D-00C04FC964FF".into()),
        display_name: name,
        is_group: true,
        service: pb::ChatServiceType::Imessage as i32,
        is_archived: false,
        is_filtered: false,
        unread_count: Some(0),
        participants: vec![address("a@bench.test"), address("b@bench.test")],
        last_message: None,
    }
}

/// An event shaped like the real server's display-name change.
pub(crate) fn event(guid: &str, name: String) -> pb::GroupChangeEvent {
    pb::GroupChangeEvent {
        chat_guid: guid.to_owned(),
        occurred_at: Some(now_ts()),
        actor: Some(address("me@imgroups.local")),
        is_from_me: true,
        change: Some(pb::group_change_event::Change::DisplayNameChanged(
            pb::GroupDisplayNameChanged { display_name: name },
        )),
    }
}

#[tonic::async_trait]
impl pb::group_service_server::GroupService for Bare {
    async fn set_display_name(
        &self,
        req: Request<pb::SetDisplayNameRequest>,
    ) -> std::result::Result<Response<pb::SetDisplayNameResponse>, Status> {
        let req = req.into_inner();
        if self.fanout.receiver_count() > 0 {
            let _ = self
                .fanout
                .send(Arc::new(event(&req.chat_guid, req.display_name.clone())));
        }
        Ok(Response::new(pb::SetDisplayNameResponse {
            chat: Some(chat(req.chat_guid, Some(req.display_name))),
        }))
    }

    async fn add_participants(
        &self,
        req: Request<pb::AddParticipantsRequest>,
    ) -> std::result::Result<Response<pb::AddParticipantsResponse>, Status> {
        Ok(Response::new(pb::AddParticipantsResponse {
            chat: Some(chat(req.into_inner().chat_guid, None)),
        }))
    }

    async fn remove_participants(
        &self,
        req: Request<pb::RemoveParticipantsRequest>,
    ) -> std::result::Result<Response<pb::RemoveParticipantsResponse>, Status> {
        Ok(Response::new(pb::RemoveParticipantsResponse {
            chat: Some(chat(req.into_inner().chat_guid, None)),
        }))
    }

    async fn leave_group(
        &self,
        _req: Request<pb::LeaveGroupRequest>,
    ) -> std::result::Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn set_icon(
        &self,
        _req: Request<pb::SetIconRequest>,
    ) -> std::result::Result<Response<Empty>, Status> {
        Err(Status::unimplemented("bare"))
    }

    async fn remove_icon(
        &self,
        _req: Request<pb::RemoveIconRequest>,
    ) -> std::result::Result<Response<Empty>, Status> {
        Err(Status::unimplemented("bare"))
    }

    async fn get_icon(
        &self,
        _req: Request<pb::GetIconRequest>,
    ) -> std::result::Result<Response<pb::GetIconResponse>, Status> {
        Err(Status::unimplemented("bare"))
    }

    type SubscribeGroupEventsStream = Frames<pb::SubscribeGroupEventsResponse>;

    async fn subscribe_group_events(
        &self,
        _req: Request<pb::SubscribeGroupEventsRequest>,
    ) -> std::result::Result<Response<Self::SubscribeGroupEventsStream>, Status> {
        use pb::subscribe_group_events_response::Payload;
        let rx = tokio_stream::wrappers::BroadcastStream::new(self.fanout.subscribe());
        let mut seq = 0u64;
        let stream = rx.filter_map(move |item| {
            let out = match item {
                Ok(e) => {
                    seq += 1;
                    Some(Ok(pb::SubscribeGroupEventsResponse {
                        sequence: Some(seq),
                        payload: Some(Payload::GroupChanged((*e).clone())),
                    }))
                }
                // A lagging bare subscriber skips; the client counts what it lost.
                Err(_) => None,
            };
            futures::future::ready(out)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for Bare {
    type CatchUpEventsStream = Frames<pb::CatchUpEventsResponse>;

    /// Streams `x-bench-events` synthetic events, then `complete`.
    async fn catch_up_events(
        &self,
        req: Request<pb::CatchUpEventsRequest>,
    ) -> std::result::Result<Response<Self::CatchUpEventsStream>, Status> {
        use pb::catch_up_events_response::Payload;
        let n: u64 = req
            .metadata()
            .get("x-bench-events")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let guid = "any;+;chat000000000000000001";
        let events = futures::stream::iter(1..=n).map(move |seq| {
            Ok(pb::CatchUpEventsResponse {
                sequence: Some(seq),
                payload: Some(Payload::GroupChanged(event(guid, format!("s{seq}")))),
            })
        });
        let complete = futures::stream::once(async move {
            Ok(pb::CatchUpEventsResponse {
                sequence: None,
                payload: Some(Payload::Complete(pb::CatchUpEventsComplete {
                    head_sequence: n,
                })),
            })
        });
        Ok(Response::new(Box::pin(events.chain(complete))))
    }
}

/// `imgroups-bench bare-server`: serves on 127.0.0.1:0, prints the same start lines as
/// `imgroups serve`, runs until killed.
pub(crate) fn run_server() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (fanout, _) = broadcast::channel(FANOUT_BUFFER);
        let bare = Bare { fanout };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        println!("grpc listening on {local}");
        println!("ready");
        // `Server::tcp_nodelay` does not reach a caller-supplied listener; set it here.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(pb::group_service_server::GroupServiceServer::new(
                bare.clone(),
            ))
            .add_service(pb::event_service_server::EventServiceServer::new(bare))
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    })
}

/// `imgroups-bench sqlite-commit`: one small row per transaction for `secs`, in a WAL database
/// with the given `synchronous` setting; prints `commits_per_s <N>`.
pub(crate) fn run_sqlite(dir: &std::path::Path, durability: &str, secs: f64) -> Result<()> {
    let rate = imgroups_store_sqlite::baseline::raw_commits(dir, durability == "full", secs)?;
    println!("commits_per_s {rate:.1}");
    Ok(())
}
