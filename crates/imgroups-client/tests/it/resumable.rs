//! The resumable helper: exactly once, in order, across disconnects, server restarts and
//! concurrent writers.

use std::time::Duration;

use futures::StreamExt;
use imgroups_client::{ChatGuid, Client, ErrorKind, EventFilter, FileCheckpoint, MemoryCheckpoint};
use tokio::sync::mpsc;

use crate::harness::{group, Server};

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
