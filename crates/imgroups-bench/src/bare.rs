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
    /// Messages "sent", for distinct GUIDs.
    sent: Arc<std::sync::atomic::AtomicU64>,
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

/// A message shaped like the real server's answer to a send in a group (`wire::message`).
pub(crate) fn message(guid: String, text: String, chat: &str, from_me: bool) -> pb::Message {
    pb::Message {
        guid,
        content: Some(pb::MessageContent {
            text: Some(text),
            ..Default::default()
        }),
        date_created: Some(now_ts()),
        date_delivered: from_me.then(now_ts),
        sender: (!from_me).then(|| address("b@bench.test")),
        is_from_me: from_me,
        is_sent: true,
        is_delivered: true,
        chat_guids: vec![chat.to_owned()],
        ..Default::default()
    }
}

/// A GUID shaped like the real server's (upper-case UUID), from a number.
fn guid_of(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012X}")
}

/// Events of the kinds and in the proportions of the M3 log ([`crate::seed::MIX`]): what the
/// real server streams for each, with synthetic content of the same size.
fn mixed_event(seq: u64, chat: &str) -> pb::catch_up_events_response::Payload {
    use pb::catch_up_events_response::Payload;
    use pb::message_change_event::Change;
    let me = || Some(address("me@imgroups.local"));
    let envelope = |change: Change, from_me: bool| {
        Payload::MessageChanged(pb::MessageChangeEvent {
            chat_guid: chat.to_owned(),
            occurred_at: Some(now_ts()),
            actor: if from_me {
                me()
            } else {
                Some(address("b@bench.test"))
            },
            is_from_me: from_me,
            change: Some(change),
        })
    };
    use crate::seed::{Step, MIX};
    let step = MIX[(seq % MIX.len() as u64) as usize];
    match step {
        Step::Rename => Payload::GroupChanged(event(chat, format!("r{seq}"))),
        Step::Churn => {
            let mut e = event(chat, String::new());
            e.change = Some(pb::group_change_event::Change::ParticipantAdded(
                pb::GroupParticipantAdded {
                    participant: Some(address("p1x@bench.test")),
                },
            ));
            Payload::GroupChanged(e)
        }
        Step::TheySay | Step::ISay => {
            let from_me = step == Step::ISay;
            envelope(
                Change::MessageReceived(pb::MessageReceived {
                    message: Some(message(guid_of(seq), crate::seed::text(seq), chat, from_me)),
                }),
                from_me,
            )
        }
        Step::React => envelope(
            Change::ReactionAdded(pb::MessageReactionAdded {
                message_guid: guid_of(seq),
                target_part_index: None,
                reaction: Some(pb::MessageReaction {
                    kind: pb::MessageReactionKind::Love as i32,
                    emoji: None,
                }),
            }),
            true,
        ),
        Step::Edit => envelope(
            Change::MessageEdited(pb::MessageEdited {
                message_guid: guid_of(seq),
                content: Some(pb::MessageContent {
                    text: Some(crate::seed::text(seq)),
                    ..Default::default()
                }),
                edited_at: Some(now_ts()),
            }),
            true,
        ),
        Step::MarkRead => Payload::ChatChanged(pb::ChatChangeEvent {
            chat_guid: chat.to_owned(),
            occurred_at: Some(now_ts()),
            actor: me(),
            is_from_me: true,
            change: Some(pb::chat_change_event::Change::MarkedRead(
                pb::ChatMarkedRead {},
            )),
        }),
    }
}

fn not_here<T>() -> std::result::Result<Response<T>, Status> {
    Err(Status::unimplemented("bare"))
}

#[tonic::async_trait]
impl pb::message_service_server::MessageService for Bare {
    /// Answers with the message as the real server would, stored nowhere.
    async fn send_text_message(
        &self,
        req: Request<pb::SendTextMessageRequest>,
    ) -> std::result::Result<Response<pb::MessageResponse>, Status> {
        let req = req.into_inner();
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(pb::MessageResponse {
            message: Some(message(guid_of(n), req.text, &req.chat_guid, true)),
            mini_app_card_session: None,
        }))
    }

    async fn send_attachment_message(
        &self,
        _req: Request<pb::SendAttachmentMessageRequest>,
    ) -> std::result::Result<Response<pb::MessageResponse>, Status> {
        not_here()
    }

    async fn send_multipart_message(
        &self,
        _req: Request<pb::SendMultipartMessageRequest>,
    ) -> std::result::Result<Response<pb::MessageResponse>, Status> {
        not_here()
    }

    async fn send_customized_mini_app_message(
        &self,
        _req: Request<pb::SendCustomizedMiniAppMessageRequest>,
    ) -> std::result::Result<Response<pb::MessageResponse>, Status> {
        not_here()
    }

    async fn update_customized_mini_app_message(
        &self,
        _req: Request<pb::UpdateCustomizedMiniAppMessageRequest>,
    ) -> std::result::Result<Response<pb::MessageResponse>, Status> {
        not_here()
    }

    async fn edit_message(
        &self,
        _req: Request<pb::EditMessageRequest>,
    ) -> std::result::Result<Response<pb::MessageResponse>, Status> {
        not_here()
    }

    async fn unsend_message(
        &self,
        _req: Request<pb::UnsendMessageRequest>,
    ) -> std::result::Result<Response<Empty>, Status> {
        not_here()
    }

    async fn set_reaction(
        &self,
        _req: Request<pb::SetReactionRequest>,
    ) -> std::result::Result<Response<pb::MessageResponse>, Status> {
        not_here()
    }

    async fn place_sticker(
        &self,
        _req: Request<pb::PlaceStickerRequest>,
    ) -> std::result::Result<Response<pb::MessageResponse>, Status> {
        not_here()
    }

    async fn notify_silenced_message(
        &self,
        _req: Request<pb::NotifySilencedMessageRequest>,
    ) -> std::result::Result<Response<Empty>, Status> {
        not_here()
    }

    async fn get_message(
        &self,
        _req: Request<pb::GetMessageRequest>,
    ) -> std::result::Result<Response<pb::GetMessageResponse>, Status> {
        not_here()
    }

    async fn list_recent_messages(
        &self,
        _req: Request<pb::ListRecentMessagesRequest>,
    ) -> std::result::Result<Response<pb::ListRecentMessagesResponse>, Status> {
        not_here()
    }

    /// A full page of synthetic messages of the seeded chat's shape, newest first, and a
    /// token; built per call, as the real server decodes its rows per call.
    async fn list_chat_messages(
        &self,
        req: Request<pb::ListChatMessagesRequest>,
    ) -> std::result::Result<Response<pb::ListChatMessagesResponse>, Status> {
        let req = req.into_inner();
        let size = req.page_size.filter(|n| *n > 0).unwrap_or(50) as u64;
        let top = 1_000_000u64;
        let messages = (0..size)
            .map(|k| {
                let n = top - 1 - k;
                message(guid_of(n), crate::seed::text(n), &req.chat_guid, true)
            })
            .collect();
        Ok(Response::new(pb::ListChatMessagesResponse {
            messages,
            next_page_token: Some(format!("{:x}.0badc0de", top - size)),
        }))
    }

    async fn get_embedded_media(
        &self,
        _req: Request<pb::GetEmbeddedMediaRequest>,
    ) -> std::result::Result<Response<pb::GetEmbeddedMediaResponse>, Status> {
        not_here()
    }

    type SubscribeMessageEventsStream = Frames<pb::SubscribeMessageEventsResponse>;

    async fn subscribe_message_events(
        &self,
        _req: Request<pb::SubscribeMessageEventsRequest>,
    ) -> std::result::Result<Response<Self::SubscribeMessageEventsStream>, Status> {
        not_here()
    }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for Bare {
    type CatchUpEventsStream = Frames<pb::CatchUpEventsResponse>;

    /// Streams `x-bench-events` synthetic events, then `complete`: display-name changes, or
    /// with `x-bench-mix` the kinds of the M3 log in its proportions.
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
        let mixed = req.metadata().get("x-bench-mix").is_some();
        let guid = "any;+;chat000000000000000001";
        let events = futures::stream::iter(1..=n).map(move |seq| {
            Ok(pb::CatchUpEventsResponse {
                sequence: Some(seq),
                payload: Some(if mixed {
                    mixed_event(seq, guid)
                } else {
                    Payload::GroupChanged(event(guid, format!("s{seq}")))
                }),
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
        let bare = Bare {
            fanout,
            sent: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
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
            .add_service(pb::message_service_server::MessageServiceServer::new(
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
