//! Durability of messages: every message the server acknowledged before a `kill -9` is there
//! after the restart, for the sender and the recipients, by GUID, in its chat's listing and in
//! the catch-up of every log, exactly once; and the logs go on without a gap. On SQLite, and
//! on PostgreSQL with two processes (one killed), where every node must agree.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgroups_proto::pb;
use imgroups_proto::pb::catch_up_events_response::Payload;
use imgroups_proto::pb::message_change_event::Change;
use imgroups_proto::pb::message_service_client::MessageServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use imgroups_store_tests::pg::TestDatabase;

use crate::support::{cli, clients, Auth, Server};

const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

type Messages = MessageServiceClient<InterceptedService<Channel, Auth>>;

fn messages(channel: &Channel, token: &str) -> Messages {
    MessageServiceClient::with_interceptor(channel.clone(), Auth::bearer(token))
}

/// The GUIDs `message.received` delivered to the caller's log, after checking that the whole
/// log (every kind) is numbered 1..=head.
async fn received(channel: &Channel, token: &str) -> Vec<String> {
    let mut events = clients(channel, token).events;
    let mut stream = events
        .catch_up_events(pb::CatchUpEventsRequest {
            after_sequence: Some(0),
        })
        .await
        .expect("catch up")
        .into_inner();
    let (mut seqs, mut guids, mut head) = (Vec::new(), Vec::new(), None);
    while let Some(frame) = stream.message().await.expect("a catch-up frame") {
        match frame.payload {
            Some(Payload::Complete(c)) => head = Some(c.head_sequence),
            Some(Payload::Heartbeat(_)) | None => {}
            Some(payload) => {
                seqs.push(frame.sequence.expect("event frames carry a sequence"));
                if let Payload::MessageChanged(pb::MessageChangeEvent {
                    change: Some(Change::MessageReceived(r)),
                    ..
                }) = payload
                {
                    guids.push(r.message.expect("a message").guid);
                }
            }
        }
    }
    let head = head.expect("catch-up ends with complete");
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "the log has no gap");
    guids
}

/// Every message of `chat` in the caller's view, following the page tokens.
async fn listed(client: &mut Messages, chat: &str) -> Vec<pb::Message> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_chat_messages(pb::ListChatMessagesRequest {
                chat_guid: chat.to_owned(),
                page_size: Some(100),
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("a page")
            .into_inner();
        all.extend(page.messages);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_sending_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let bob = server.add_account(BOB);
    kill_9_while_sending(vec![(dir, server)], &[], bob).await;
}

/// The same on PostgreSQL, with two `serve` processes on one database: senders on both, one
/// of them killed, its acknowledged messages there on both nodes once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_of_two_nodes_while_sending_loses_no_acknowledged_message() {
    let Some(db) = TestDatabase::create("crash_messages") else {
        return;
    };
    let args = ["--database-url", db.url.as_str()];
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), &args);
        nodes.push((dir, server));
    }
    let bob = cli(&["account", "add", BOB, "--database-url", &db.url]);
    kill_9_while_sending(nodes, &args, bob).await;
}

/// Senders on every node send unique texts as the default account (whose token the first
/// node printed), half in a group and half to Bob directly, and remember what was
/// acknowledged; the first node is killed, and restarted with `args`.
async fn kill_9_while_sending(
    mut nodes: Vec<(tempfile::TempDir, Server)>,
    args: &[&str],
    bob_token: String,
) {
    let me_token = nodes[0]
        .1
        .token
        .clone()
        .expect("first start prints a token");
    let mut channels = Vec::new();
    for (_, server) in &nodes {
        channels.push(server.channel().await);
    }
    let group = clients(&channels[0], &me_token)
        .create_group(&[BOB, CAROL, "p@example.com"])
        .await;
    let direct = format!("any;-;{BOB}");
    let chats = Arc::new([group.clone(), direct.clone()]);

    // (chat, guid, text) of every acknowledged send.
    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for w in 0..12 {
        let mut client = messages(&channels[w % channels.len()], &me_token);
        let (chats, acked, stop) = (chats.clone(), acked.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..10_000u32 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let chat = &chats[(w + i as usize) % 2];
                let text = format!("w{w}-{i}");
                let sent = client
                    .send_text_message(pb::SendTextMessageRequest {
                        chat_guid: chat.clone(),
                        text: text.clone(),
                        ..Default::default()
                    })
                    .await;
                match sent {
                    Ok(resp) => {
                        let message = resp.into_inner().message.expect("the message");
                        acked
                            .lock()
                            .unwrap()
                            .push((chat.clone(), message.guid, text));
                    }
                    Err(_) => return, // the server died under us
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (dir, killed) = nodes.remove(0);
    killed.kill9();
    // The other node's senders go on a moment longer, then stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "messages were acknowledged before the kill"
    );

    let server = Server::start(dir.path(), args);
    nodes.insert(0, (dir, server));
    for (_, node) in &nodes {
        let channel = node.channel().await;
        check(&channel, &me_token, &bob_token, &acked, &chats[..], &direct).await;
    }

    // The logs go on from where they were.
    let channel = nodes[0].1.channel().await;
    let before = received(&channel, &bob_token).await.len();
    messages(&channel, &me_token)
        .send_text_message(pb::SendTextMessageRequest {
            chat_guid: group.clone(),
            text: "after the crash".into(),
            ..Default::default()
        })
        .await
        .expect("a send after the restart");
    assert_eq!(received(&channel, &bob_token).await.len(), before + 1);
    for (_, node) in nodes {
        node.stop();
    }
}

/// Every acknowledged message is there for me and for Bob: once in the catch-up, once in its
/// chat's listing, and by GUID with its text.
async fn check(
    channel: &Channel,
    me_token: &str,
    bob_token: &str,
    acked: &[(String, String, String)],
    chats: &[String],
    direct: &str,
) {
    for (who, token) in [("me", me_token), ("bob", bob_token)] {
        let mut client = messages(channel, token);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for guid in received(channel, token).await {
            *counts.entry(guid).or_default() += 1;
        }
        assert!(counts.values().all(|n| *n == 1), "{who}: delivered once");
        let mut in_chats: HashMap<String, String> = HashMap::new();
        for chat in chats {
            for m in listed(&mut client, &view_of(who, chat, direct)).await {
                assert!(
                    in_chats.insert(m.guid.clone(), chat.clone()).is_none(),
                    "{who}: {} listed once",
                    m.guid
                );
            }
        }
        for (chat, guid, text) in acked {
            assert_eq!(counts.get(guid), Some(&1), "{who}: {text} in the catch-up");
            assert_eq!(
                in_chats.get(guid),
                Some(chat),
                "{who}: {text} listed in its chat"
            );
            let got = client
                .get_message(pb::GetMessageRequest {
                    message_guid: guid.clone(),
                })
                .await
                .unwrap_or_else(|e| panic!("{who}: {text} survived kill -9: {e}"))
                .into_inner()
                .message
                .expect("a message");
            assert_eq!(
                got.content.and_then(|c| c.text).as_deref(),
                Some(text.as_str())
            );
            assert_eq!(got.is_from_me, who == "me");
        }
    }
}

/// The GUID under which `who` sees `chat`: Bob sees the direct chat as one with me (the
/// server's default account).
fn view_of(who: &str, chat: &str, direct: &str) -> String {
    if who == "bob" && chat == direct {
        "any;-;me@imgroups.local".to_owned()
    } else {
        chat.to_owned()
    }
}
