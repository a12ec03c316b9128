//! Live subscriptions and catch-up.

use std::time::Duration;

use futures::StreamExt;
use imgroups_client::{CatchUpEvent, ErrorKind, EventFilter, GroupChange, GroupEvent};

use crate::harness::{addr, group, Clients, Server, ME};

async fn next(stream: &mut imgroups_client::GroupEventStream) -> GroupEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("no error")
}

#[tokio::test]
async fn live_events_in_order_with_heartbeats_hidden() {
    // Heartbeats every 50 ms: the stream must never surface them.
    let server = Server::start_with_heartbeat(Duration::from_millis(50)).await;
    let client = server.client();
    let chat = group(&client, &["bob@example.com", "carol@example.com"]).await;
    let mut live = client
        .groups()
        .subscribe_events(EventFilter::all())
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(200)).await; // a few heartbeats go by
    client.groups().set_display_name(&chat, "A").await.unwrap();
    client
        .groups()
        .add_participants(&chat, &[addr("dave@example.com")])
        .await
        .unwrap();

    let first = next(&mut live).await;
    assert_eq!(first.sequence, 1);
    assert_eq!(first.chat_guid, chat);
    assert!(first.is_from_me);
    assert_eq!(first.actor.as_ref().unwrap().address.as_str(), ME);
    assert_eq!(
        first.change,
        GroupChange::DisplayNameChanged {
            display_name: "A".into()
        }
    );
    let second = next(&mut live).await;
    assert_eq!(second.sequence, 2);
    assert!(
        matches!(&second.change, GroupChange::ParticipantAdded { participant } if participant.address.as_str() == "dave@example.com")
    );
    let json: serde_json::Value = serde_json::from_str(&second.to_json()).unwrap();
    assert_eq!(json["type"], "group.changed");
    assert_eq!(json["change"]["type"], "participantAdded");
    assert_eq!(json["change"]["participant"]["address"], "dave@example.com");
}

#[tokio::test]
async fn filtered_subscription_and_catch_up() {
    let server = Server::start().await;
    let client = server.client();
    let a = group(&client, &["bob@example.com", "carol@example.com"]).await;
    let b = group(&client, &["dave@example.com", "erin@example.com"]).await;
    let mut only_b = client
        .groups()
        .subscribe_events(EventFilter::chat(b.clone()))
        .await
        .unwrap();

    client.groups().set_display_name(&a, "A").await.unwrap();
    client.groups().set_display_name(&b, "B").await.unwrap();
    let e = next(&mut only_b).await;
    assert_eq!((e.sequence, &e.chat_guid), (2, &b));

    // Catch-up after 1: exactly 2, then complete(2).
    let items: Vec<_> = client.events().catch_up(1).await.unwrap().collect().await;
    let items: Vec<CatchUpEvent> = items.into_iter().map(Result::unwrap).collect();
    assert_eq!(items.len(), 2);
    assert!(matches!(&items[0], CatchUpEvent::Group(e) if e.sequence == 2));
    assert_eq!(items[1], CatchUpEvent::Complete { head_sequence: 2 });

    // A filter on a chat that is not visible is refused when the stream opens.
    let missing = imgroups_client::ChatGuid::parse("any;+;chat999999999999999999").unwrap();
    let err = client
        .groups()
        .subscribe_events(EventFilter::chat(missing))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}
