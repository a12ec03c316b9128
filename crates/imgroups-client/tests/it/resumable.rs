//! The resumable helper: exactly once, in order, across disconnects, server restarts and
//! concurrent writers.

use std::time::Duration;

use futures::StreamExt;
use imgroups_client::{
    CatchUpEvent, ChatGuid, Client, ErrorKind, EventFilter, FileCheckpoint, MemoryCheckpoint,
    SendOptions,
};
use tokio::sync::mpsc;

use crate::harness::{group, Clients, Server};

const WAIT: Duration = Duration::from_secs(30);

/// Renames `chat` `count` times, each rename a distinct logical write with its own
/// `client_message_id`, retried by hand across server restarts until acknowledged. Every
/// acknowledged rename is exactly one event.
async fn rename_many(client: Client, chat: ChatGuid, tag: &'static str, count: usize) {
    for i in 0..count {
        let id = format!("{tag}-{i}");
        let name = format!("{tag} {i}");
        loop {
            match client
                .groups()
                .client_message_id(id.clone())
                .set_display_name(&chat, &name)
                .await
            {
                Ok(_) => break,
                Err(err) if err.kind() == ErrorKind::Connection || err.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(err) => panic!("write {id} failed: {err:?}"),
            }
        }
    }
}

/// Consumes a resumable stream into `tx`, acking each delivery.
fn consume(
    client: Client,
    filter: EventFilter,
    checkpoint: MemoryCheckpoint,
) -> mpsc::UnboundedReceiver<u64> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut events = client.events().resumable(filter, checkpoint);
        while let Some(delivery) = events.next().await {
            let delivery = delivery.expect("resumable never fails on disconnects");
            let seq = delivery.sequence;
            delivery.ack().await.unwrap();
            if tx.send(seq).is_err() {
                return;
            }
        }
    });
    rx
}

async fn take(rx: &mut mpsc::UnboundedReceiver<u64>, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        let seq = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {out:?}"))
            .expect("stream ended");
        out.push(seq);
    }
    out
}

#[tokio::test]
async fn catches_up_then_goes_live() {
    let server = Server::start().await;
    let client = server.client();
    let chat = group(&client, &["bob@example.com", "carol@example.com"]).await;
    rename_many(client.clone(), chat.clone(), "before", 5).await;

    let checkpoint = MemoryCheckpoint::new(2);
    let mut rx = consume(client.clone(), EventFilter::all(), checkpoint.clone());
    assert_eq!(take(&mut rx, 3).await, [3, 4, 5]);
    rename_many(client.clone(), chat.clone(), "after", 3).await;
    assert_eq!(take(&mut rx, 3).await, [6, 7, 8]);
    // The ack that sent 8 saved the checkpoint first.
    assert_eq!(checkpoint.get(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_in_order_across_restarts_and_concurrent_writers() {
    let mut server = Server::start().await;
    let me = server.client();
    let bob = server.client_for(&server.add_account("bob@example.com").await);
    let chat = group(&me, &["bob@example.com", "carol@example.com"]).await;
    let checkpoint = MemoryCheckpoint::new(0);
    let mut rx = consume(me.clone(), EventFilter::all(), checkpoint.clone());

    const PER_WRITER: usize = 40;
    let writers = [
        tokio::spawn(rename_many(me.clone(), chat.clone(), "me", PER_WRITER)),
        tokio::spawn(rename_many(bob.clone(), chat.clone(), "bob", PER_WRITER)),
    ];
    // Restart the server (same directory, same port) three times while writes flow.
    let mut got = take(&mut rx, 5).await;
    for _ in 0..3 {
        server.restart().await;
        got.extend(take(&mut rx, 5).await);
    }
    for w in writers {
        w.await.unwrap();
    }
    let total = 2 * PER_WRITER;
    got.extend(take(&mut rx, total - got.len()).await);
    let expected: Vec<u64> = (1..=total as u64).collect();
    assert_eq!(got, expected, "every event exactly once, in order");
    // Nothing more arrives.
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_err());
    assert_eq!(checkpoint.get(), total as u64);
}

#[tokio::test]
async fn file_checkpoint_resumes_a_new_subscription_after_the_acked_events() {
    let server = Server::start().await;
    let client = server.client();
    let chat = group(&client, &["bob@example.com", "carol@example.com"]).await;
    rename_many(client.clone(), chat.clone(), "a", 6).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.checkpoint");

    {
        let mut events = client
            .events()
            .resumable(EventFilter::all(), FileCheckpoint::new(&path));
        for expected in 1..=4 {
            let d = tokio::time::timeout(WAIT, events.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(d.sequence, expected);
            if expected <= 3 {
                d.ack().await.unwrap();
            } // 4 is received but never acked: as if the process died handling it.
        }
    }
    assert_eq!(FileCheckpoint::read(&path).unwrap(), 3);

    let mut events = client
        .events()
        .resumable(EventFilter::all(), FileCheckpoint::new(&path));
    let mut got = Vec::new();
    for _ in 4..=6 {
        let d = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push(d.sequence);
        d.ack().await.unwrap();
    }
    assert_eq!(got, [4, 5, 6]);
    assert_eq!(FileCheckpoint::read(&path).unwrap(), 6);
}

#[tokio::test]
async fn out_of_order_acks_never_pass_an_unacked_event() {
    let server = Server::start().await;
    let client = server.client();
    let chat = group(&client, &["bob@example.com", "carol@example.com"]).await;
    rename_many(client.clone(), chat.clone(), "a", 3).await;
    let checkpoint = MemoryCheckpoint::new(0);
    let mut events = client
        .events()
        .resumable(EventFilter::all(), checkpoint.clone());
    let one = events.next().await.unwrap().unwrap();
    let two = events.next().await.unwrap().unwrap();
    let three = events.next().await.unwrap().unwrap();
    three.ack().await.unwrap();
    two.ack().await.unwrap();
    assert_eq!(checkpoint.get(), 0, "1 is still being handled");
    one.ack().await.unwrap();
    assert_eq!(checkpoint.get(), 3);
}

#[tokio::test]
async fn filtered_resumable_skips_other_chats_and_advances_past_them() {
    let mut server = Server::start().await;
    let client = server.client();
    let a = group(&client, &["bob@example.com", "carol@example.com"]).await;
    let b = group(&client, &["dave@example.com", "erin@example.com"]).await;
    rename_many(client.clone(), a.clone(), "a", 2).await; // 1, 2
    rename_many(client.clone(), b.clone(), "b", 2).await; // 3, 4
    rename_many(client.clone(), a.clone(), "a2", 1).await; // 5

    let checkpoint = MemoryCheckpoint::new(0);
    let mut rx = consume(
        client.clone(),
        EventFilter::chat(b.clone()),
        checkpoint.clone(),
    );
    assert_eq!(take(&mut rx, 2).await, [3, 4]);
    // After catch-up completed at 5 and 3, 4 were acked, the checkpoint is past chat a's 5.
    tokio::time::timeout(WAIT, async {
        while checkpoint.get() < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    server.restart().await;
    rename_many(client.clone(), a.clone(), "a3", 1).await; // 6
    rename_many(client.clone(), b.clone(), "b2", 1).await; // 7
    assert_eq!(take(&mut rx, 1).await, [7]);
}

#[tokio::test]
async fn unrecoverable_errors_end_the_stream() {
    let server = Server::start().await;
    let client = server.client_for("bad-token");
    let mut events = client
        .events()
        .resumable(EventFilter::all(), MemoryCheckpoint::new(0));
    let err = events.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(events.next().await.is_none());
}

/// Retries a write across server restarts until it is acknowledged.
async fn retrying<T, F, Fut>(mut write: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = imgroups_client::Result<T>>,
{
    loop {
        match write().await {
            Ok(value) => return value,
            Err(err) if err.kind() == ErrorKind::Connection || err.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => panic!("write failed: {err:?}"),
        }
    }
}

/// One round of writes that gives `ME` exactly three events of three kinds: a rename
/// (group), a message from Bob (message), and reading it (chat).
async fn three_kinds(me: &Client, bob: &Client, chat: &ChatGuid, tag: &str) {
    let name = &format!("{tag} name");
    retrying(|| async move {
        me.groups()
            .client_message_id(format!("{tag}-rename"))
            .set_display_name(chat, name)
            .await
    })
    .await;
    let text = &format!("{tag} text");
    retrying(|| async move {
        let options = SendOptions {
            client_message_id: Some(format!("{tag}-send")),
            ..SendOptions::default()
        };
        bob.messages().send_text(chat, text, options).await
    })
    .await;
    // Reading twice reads nothing the second time: no second event.
    retrying(|| async move { me.chats().mark_read(chat).await }).await;
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<(u64, String)>) -> (u64, String) {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("stream open")
}

/// Every (sequence, type) of `ME`'s log, from a catch-up.
async fn log_of(client: &Client) -> Vec<(u64, String)> {
    let mut replay = client.events().catch_up(0).await.unwrap();
    let mut out = Vec::new();
    while let Some(item) = replay.next().await {
        match item.unwrap() {
            CatchUpEvent::Group(e) => out.push((e.sequence, "group.changed".to_owned())),
            CatchUpEvent::Message(e) => out.push((e.sequence, e.change.event_type().to_owned())),
            CatchUpEvent::Chat(e) => out.push((e.sequence, e.change.event_type().to_owned())),
            CatchUpEvent::Complete { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_exactly_once_in_order_across_catch_up_live_and_restarts() {
    let mut server = Server::start().await;
    let me = server.client();
    let bob = server.client_for(&server.add_account("bob@example.com").await);
    let chat = group(&me, &["bob@example.com", "carol@example.com"]).await;
    for round in 0..3 {
        three_kinds(&me, &bob, &chat, &format!("before{round}")).await;
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer = me.clone();
    let checkpoint = MemoryCheckpoint::new(0);
    let saved = checkpoint.clone();
    tokio::spawn(async move {
        let mut events = consumer.events().resumable(EventFilter::all(), checkpoint);
        while let Some(delivery) = events.next().await {
            let delivery = delivery.expect("resumable never fails on disconnects");
            let item = (delivery.sequence, delivery.event_type().to_owned());
            delivery.ack().await.unwrap();
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    for _ in 0..9 {
        got.push(recv(&mut rx).await);
    }

    // Live: two writers at once, so kinds from the three live streams interleave.
    let bob_alone = {
        let (bob, chat) = (bob.clone(), chat.clone());
        tokio::spawn(async move {
            for i in 0..10 {
                let (bob, chat, text) = (&bob, &chat, &format!("bob {i}"));
                retrying(|| async move {
                    let options = SendOptions {
                        client_message_id: Some(format!("bob-{i}")),
                        ..SendOptions::default()
                    };
                    bob.messages().send_text(chat, text, options).await
                })
                .await;
            }
        })
    };
    for round in 0..3 {
        three_kinds(&me, &bob, &chat, &format!("live{round}")).await;
    }
    server.restart().await;
    for round in 0..3 {
        three_kinds(&me, &bob, &chat, &format!("after{round}")).await;
    }
    bob_alone.await.unwrap();

    let log = log_of(&me).await;
    assert_eq!(log.len(), 9 + 18 + 10, "{log:?}");
    while got.len() < log.len() {
        got.push(recv(&mut rx).await);
    }
    assert_eq!(
        got, log,
        "every event of every kind, exactly once, in order"
    );
    let kinds: std::collections::BTreeSet<_> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["chat.markedRead", "group.changed", "message.received"]
    );
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_err());
    assert_eq!(saved.get(), log.len() as u64);
}

#[tokio::test]
async fn a_filtered_resumable_carries_every_kind_of_its_chat() {
    let server = Server::start().await;
    let me = server.client();
    let bob = server.client_for(&server.add_account("bob@example.com").await);
    let a = group(&me, &["bob@example.com", "carol@example.com"]).await;
    let b = group(&me, &["bob@example.com", "dave@example.com"]).await;
    three_kinds(&me, &bob, &a, "a").await; // 1, 2, 3
    three_kinds(&me, &bob, &b, "b").await; // 4, 5, 6
    let mut events = me
        .events()
        .resumable(EventFilter::chat(b.clone()), MemoryCheckpoint::new(0));
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(d.chat_guid, b);
        got.push((d.sequence, d.event_type()));
        d.ack().await.unwrap();
    }
    assert_eq!(
        got,
        [
            (4, "group.changed"),
            (5, "message.received"),
            (6, "chat.markedRead")
        ]
    );
}
