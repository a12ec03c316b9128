//! Every operation against the real server.

use futures::StreamExt;
use imgroups_client::{
    CatchUpEvent, ChatKind, CreateChatOptions, ErrorKind, EventFilter, GroupChange, Service,
};

use crate::harness::{addr, group, png, Clients, Server, ME};

#[tokio::test]
async fn chats_create_get_count() {
    let server = Server::start().await;
    let client = server.client();
    assert_eq!(client.chats().count(false).await.unwrap(), 0);

    let created = client
        .chats()
        .create(
            &[addr("bob@example.com"), addr("+1 555 123 4567")],
            CreateChatOptions {
                message: Some("hello".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let chat = &created.chat;
    assert!(chat.is_group);
    assert_eq!(chat.guid.kind(), ChatKind::Group);
    assert!(chat.guid.to_string().starts_with("any;+;chat"));
    assert_eq!(chat.display_name, "");
    assert_eq!(chat.service, Service::IMessage);
    let people: Vec<String> = chat
        .participants
        .iter()
        .map(|p| p.address.to_string())
        .collect();
    assert_eq!(people, ["bob@example.com", "+15551234567"]);
    let message = created.initial_message.as_ref().unwrap();
    assert_eq!(message.text.as_deref(), Some("hello"));
    assert!(message.is_from_me);

    let fetched = client.chats().get(&chat.guid).await.unwrap();
    assert_eq!(&fetched, chat);

    let direct = client
        .chats()
        .create(&[addr("carol@example.com")], CreateChatOptions::default())
        .await
        .unwrap();
    assert_eq!(direct.chat.guid.kind(), ChatKind::Direct);
    assert!(!direct.chat.is_group);
    assert_eq!(client.chats().count(false).await.unwrap(), 2);
}

#[tokio::test]
async fn group_writes_and_icon() {
    let server = Server::start().await;
    let client = server.client();
    let chat = group(&client, &["bob@example.com", "carol@example.com"]).await;
    let groups = client.groups();

    let renamed = groups.set_display_name(&chat, "  Weekend  ").await.unwrap();
    assert_eq!(renamed.display_name, "Weekend");

    let added = groups
        .add_participants(&chat, &[addr("dave@example.com"), addr("erin@example.com")])
        .await
        .unwrap();
    assert_eq!(added.participants.len(), 4);

    let removed = groups
        .remove_participants(&chat, &[addr("erin@example.com")])
        .await
        .unwrap();
    assert_eq!(removed.participants.len(), 3);
    assert!(removed
        .participants
        .iter()
        .all(|p| p.address.as_str() != "erin@example.com"));

    let err = groups.get_icon(&chat).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.code(), "groupIconNotFound");

    groups.set_icon(&chat, png()).await.unwrap();
    let icon = groups.get_icon(&chat).await.unwrap();
    assert_eq!(icon.data, png());
    assert_eq!(icon.mime_type, "image/png");
    groups.remove_icon(&chat).await.unwrap();
    groups.remove_icon(&chat).await.unwrap(); // repeat is fine
    assert_eq!(
        groups.get_icon(&chat).await.unwrap_err().code(),
        "groupIconNotFound"
    );

    groups.leave(&chat).await.unwrap();
    let err = client.chats().get(&chat).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.code(), "chatNotFound");
    assert_eq!(
        err.context_value("chatguid"),
        Some(chat.to_string().as_str())
    );

    // Every write shows up in the log, in order, with the public shape.
    let mut replay = client.events().catch_up(0).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(item) = replay.next().await {
        match item.unwrap() {
            CatchUpEvent::Group(e) => {
                assert_eq!(e.chat_guid, chat);
                assert!(e.is_from_me);
                assert_eq!(e.actor.as_ref().unwrap().address.as_str(), ME);
                kinds.push((e.sequence, e.change.type_name()));
            }
            CatchUpEvent::Complete { head_sequence } => assert_eq!(head_sequence, 7),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        kinds,
        [
            (1, "displayNameChanged"),
            (2, "participantAdded"),
            (3, "participantAdded"),
            (4, "participantRemoved"),
            (5, "iconChanged"),
            (6, "iconRemoved"),
            (7, "participantLeft"),
        ]
    );
}

#[tokio::test]
async fn client_message_id_makes_a_write_idempotent() {
    let server = Server::start().await;
    let client = server.client();
    let chat = group(&client, &["bob@example.com", "carol@example.com"]).await;

    let first = client
        .groups()
        .client_message_id("rename-1")
        .set_display_name(&chat, "Once")
        .await
        .unwrap();
    // Someone else renames; the replay still answers the original result.
    client
        .groups()
        .set_display_name(&chat, "Other")
        .await
        .unwrap();
    let again = client
        .groups()
        .client_message_id("rename-1")
        .set_display_name(&chat, "Once")
        .await
        .unwrap();
    assert_eq!(first, again);

    // The same id for a different write is refused.
    let err = client
        .groups()
        .client_message_id("rename-1")
        .set_display_name(&chat, "Different")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.code(), "duplicateMessage");

    let mut replay = client.events().catch_up(0).await.unwrap();
    let mut names = 0;
    while let Some(Ok(CatchUpEvent::Group(e))) = replay.next().await {
        if let GroupChange::DisplayNameChanged { .. } = e.change {
            names += 1;
        }
    }
    assert_eq!(names, 2);
}

#[tokio::test]
async fn other_members_see_changes_and_can_add_me_back() {
    let server = Server::start().await;
    let me = server.client();
    let bob = server.client_for(&server.add_account("bob@example.com").await);
    let chat = group(
        &me,
        &["bob@example.com", "carol@example.com", "dave@example.com"],
    )
    .await;

    let mut bobs = bob
        .groups()
        .subscribe_events(EventFilter::chat(chat.clone()))
        .await
        .unwrap();
    me.groups().leave(&chat).await.unwrap();
    let seen = bobs.next().await.unwrap().unwrap();
    assert!(!seen.is_from_me);
    assert!(
        matches!(&seen.change, GroupChange::ParticipantLeft { participant } if participant.address.as_str() == ME)
    );

    bob.groups()
        .add_participants(&chat, &[addr(ME)])
        .await
        .unwrap();
    let visible = me.chats().get(&chat).await.unwrap();
    assert_eq!(visible.participants.len(), 3);
}
