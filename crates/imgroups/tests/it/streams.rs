//! Live streams: many subscribers, a consumer that stops reading, shutdown.

use std::time::Duration;

use futures::future::join_all;
use imgroups_proto::pb;
use imgroups_proto::pb::subscribe_group_events_response::Payload;

use crate::support::{clients, renamed_to, Server};

const BOB: &str = "bob@example.com";

/// Reads `count` events from a live stream, skipping heartbeats.
async fn take_events(
    stream: &mut tonic::Streaming<pb::SubscribeGroupEventsResponse>,
    count: usize,
) -> Vec<(u64, pb::GroupChangeEvent)> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let frame = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("next frame within 60 s")
            .expect("stream healthy")
            .expect("stream still open");
        if let Some(Payload::GroupChanged(e)) = frame.payload {
            out.push((frame.sequence.expect("event frames carry a sequence"), e));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_each_receive_every_event_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--durability", "normal"]);
    let me_token = server.token.clone().unwrap();
    let bob_token = server.add_account(BOB);
    let mut me = clients(&server.channel().await, &me_token);
    let group = me
        .create_group(&[BOB, "carol@example.com", "dave@example.com"])
        .await;

    // Several connections, as a fleet of consumers would have.
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(server.channel().await);
    }
    let mut streams = Vec::new();
    for i in 0..1000 {
        let mut bob = clients(&channels[i % channels.len()], &bob_token);
        let filter = (i % 2 == 0).then(|| group.clone());
        let stream = bob
            .groups
            .subscribe_group_events(pb::SubscribeGroupEventsRequest { chat_guid: filter })
            .await
            .expect("subscribe")
            .into_inner();
        streams.push(stream);
    }
    let (_, head) = clients(&channels[0], &bob_token).catch_up(0).await;

    const CHANGES: usize = 20;
    for i in 0..CHANGES {
        me.rename(&group, &format!("name {i}")).await.unwrap();
    }
    let received = join_all(streams.iter_mut().map(|s| take_events(s, CHANGES))).await;
    for events in received {
        let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
        let expected: Vec<u64> = (head + 1..=head + CHANGES as u64).collect();
        assert_eq!(seqs, expected);
        for (i, (_, e)) in events.iter().enumerate() {
            assert_eq!(renamed_to(e), Some(format!("name {i}").as_str()));
            assert!(!e.is_from_me);
            assert_eq!(e.actor.as_ref().unwrap().address, "me@imgroups.local");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_gets_all_100k_events_in_order_with_bounded_memory() {
    const WRITES: usize = 100_000;
    const WRITERS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--durability", "normal"]);
    let me_token = server.token.clone().unwrap();
    let bob_token = server.add_account(BOB);
    let channel = server.channel().await;
    let mut me = clients(&channel, &me_token);
    let mut groups = Vec::new();
    for i in 0..8 {
        let extra = format!("x{i}@example.com");
        groups.push(me.create_group(&[BOB, "carol@example.com", &extra]).await);
    }

    // Bob subscribes on his own connection and then does not read at all.
    let bob_channel = server.channel().await;
    let mut bob = clients(&bob_channel, &bob_token);
    let (_, start) = bob.catch_up(0).await;
    let mut stalled = bob
        .groups
        .subscribe_group_events(pb::SubscribeGroupEventsRequest { chat_guid: None })
        .await
        .unwrap()
        .into_inner();

    // Warm up so the baseline includes caches, pools and buffers in steady use.
    for i in 0..2_000 {
        me.rename(&groups[i % groups.len()], &format!("warm {i}"))
            .await
            .unwrap();
    }
    let (_, rss_before) = server.memory_kib();

    let writers = (0..WRITERS).map(|w| {
        let mut c = clients(&channel, &me_token);
        let groups = groups.clone();
        tokio::spawn(async move {
            for i in (w..WRITES).step_by(WRITERS) {
                c.rename(&groups[i % groups.len()], &format!("n{i}"))
                    .await
                    .unwrap();
            }
        })
    });
    for w in join_all(writers).await {
        w.unwrap();
    }
    let (peak, rss_after) = server.memory_kib();
    let growth_mib = rss_after.saturating_sub(rss_before) / 1024;
    eprintln!("server rss before {rss_before} KiB, after {rss_after} KiB, peak {peak} KiB");
    assert!(
        growth_mib < 64,
        "a stalled subscriber must not make the server buffer events: grew {growth_mib} MiB"
    );

    // Now read: everything since subscribing, in order, exactly once.
    let total = 2_000 + WRITES;
    let events = take_events(&mut stalled, total).await;
    for (i, (seq, _)) in events.iter().enumerate() {
        assert_eq!(*seq, start + 1 + i as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_promptly_and_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().unwrap();
    let mut me = clients(&server.channel().await, &token);
    let mut stream = me
        .groups
        .subscribe_group_events(pb::SubscribeGroupEventsRequest { chat_guid: None })
        .await
        .unwrap()
        .into_inner();
    // The first frame says the subscription is in place.
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.payload, Some(Payload::Heartbeat(_))));
    assert_eq!(first.sequence, None);
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(frame)) if matches!(frame.payload, Some(Payload::Heartbeat(_))) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("stream ended within 10 s of SIGTERM");
    assert!(
        matches!(end, Ok(None)),
        "the stream ends with OK, got {end:?}"
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("server exited within 10 s")
        .unwrap();
}
