//! Messages, tapbacks, edits, unsends, reads and addresses, between two accounts on the real
//! server.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use imgroups_client::{
    ChatGuid, Client, ErrorKind, EventFilter, ListOptions, MessageChange, MessageEvent,
    MessageEventStream, MessageGuid, Reaction, SendOptions, TextFormat,
};

use crate::harness::{addr, group, Clients, Server, ME};

const BOB: &str = "bob@example.com";

async fn next(stream: &mut MessageEventStream) -> MessageEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("no error")
}

/// `ME` and the account `BOB`, and the direct chat between them in each one's view.
async fn two_accounts(server: &Server) -> (Client, Client, ChatGuid, ChatGuid) {
    let me = server.client();
    let bob = server.client_for(&server.add_account(BOB).await);
    let mine = ChatGuid::parse(&format!("any;-;{BOB}")).unwrap();
    let his = ChatGuid::parse(&format!("any;-;{ME}")).unwrap();
    (me, bob, mine, his)
}

fn send(text: &str) -> (String, SendOptions) {
    (text.to_owned(), SendOptions::default())
}

#[tokio::test]
async fn a_conversation_between_two_accounts() {
    let server = Server::start().await;
    let (me, bob, mine, his) = two_accounts(&server).await;
    let mut my_events = me.messages().subscribe(EventFilter::all()).await.unwrap();

    // A direct chat needs no chats.create: the first message makes it for both sides.
    let (text, options) = send("Dinner at 8?");
    let hello = me
        .messages()
        .send_text(&mine, &text, options)
        .await
        .unwrap();
    assert!(hello.is_from_me && hello.is_sent && hello.is_delivered);
    assert_eq!(hello.sender, None);
    assert_eq!(hello.chat_guid(), Some(&mine));
    let guid = hello.guid.as_str();
    assert_eq!(guid.len(), 36, "an upper-case UUID: {guid}");
    assert_eq!(guid, guid.to_uppercase());

    // Bob sees the same GUID, from me.
    let seen = bob.messages().get(&hello.guid).await.unwrap();
    assert!(!seen.is_from_me);
    assert_eq!(seen.sender.as_ref().unwrap().address, addr(ME));
    assert_eq!(seen.chat_guid(), Some(&his));
    assert_eq!(seen.text.as_deref(), Some("Dinner at 8?"));

    let options = SendOptions {
        reply_to: Some(hello.guid.clone()),
        subject: Some("Re: dinner".into()),
        formatting: vec![TextFormat::new("bold", 0, 3)],
        ..SendOptions::default()
    };
    let reply = bob
        .messages()
        .send_text(&his, "Yes!", options)
        .await
        .unwrap();
    assert_eq!(reply.reply_to.as_ref(), Some(&hello.guid));
    assert_eq!(reply.subject.as_deref(), Some("Re: dinner"));
    assert_eq!(reply.formatting, [TextFormat::new("bold", 0, 3)]);

    // My log: my message, then Bob's, each once, in order.
    let first = next(&mut my_events).await;
    assert!(first.is_from_me);
    let MessageChange::Received { message } = &first.change else {
        panic!("{first:?}")
    };
    assert_eq!(message.guid, hello.guid);
    let second = next(&mut my_events).await;
    assert_eq!(second.sequence, first.sequence + 1);
    assert!(!second.is_from_me);
    assert_eq!(second.chat_guid, mine);
    assert_eq!(second.change.message_guid(), &reply.guid);
    assert_eq!(second.change.event_type(), "message.received");
    assert!(second.to_line().contains("message.received"));
    let json: serde_json::Value = serde_json::from_str(&second.to_json()).unwrap();
    assert_eq!(json["type"], "message.received");
    assert_eq!(json["message"]["text"], "Yes!");
    assert_eq!(json["message"]["replyTo"], hello.guid.as_str());

    // Reading: Bob's unread message becomes read; I learn nothing of my own.
    let unread = ListOptions {
        is_read: Some(false),
        ..ListOptions::default()
    };
    let page = me
        .messages()
        .list_in_chat(&mine, unread.clone())
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    me.chats().mark_read(&mine).await.unwrap();
    let page = me.messages().list_in_chat(&mine, unread).await.unwrap();
    assert!(page.messages.is_empty());
    // Bob's copy of his message now says when I read it.
    let his_copy = bob.messages().get(&reply.guid).await.unwrap();
    assert!(his_copy.date_read.is_some());

    // Typing is accepted in a visible chat only.
    me.chats().set_typing(&mine, true).await.unwrap();
    me.chats().set_typing(&mine, false).await.unwrap();
    let err = me
        .chats()
        .set_typing(&ChatGuid::parse("any;+;nosuchchat").unwrap(), true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "chatNotFound");
}

#[tokio::test]
async fn sends_are_validated_and_idempotent() {
    let server = Server::start().await;
    let me = server.client();
    let chat = group(&me, &["carol@example.com", "dave@example.com"]).await;

    let err = me
        .messages()
        .send_text(&chat, "   ", SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.context_value("field"), Some("text"));
    let long = "x".repeat(20_001);
    let err = me
        .messages()
        .send_text(&chat, &long, SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.context_value("reason"), Some("tooLong"));

    let ghost = MessageGuid::parse("00000000-0000-4000-8000-000000000000").unwrap();
    let options = SendOptions {
        reply_to: Some(ghost.clone()),
        ..SendOptions::default()
    };
    let err = me
        .messages()
        .send_text(&chat, "hi", options)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "messageNotFound");
    let err = me.messages().get(&ghost).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.code(), "messageNotFound");

    // The same client_message_id: one message.
    let options = SendOptions {
        client_message_id: Some("send-1".into()),
        ..SendOptions::default()
    };
    let a = me
        .messages()
        .send_text(&chat, "once", options.clone())
        .await
        .unwrap();
    let b = me
        .messages()
        .send_text(&chat, "once", options)
        .await
        .unwrap();
    assert_eq!(a.guid, b.guid);
    let all: Vec<_> = me
        .messages()
        .list_all(Some(&chat), ListOptions::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 1);

    // A malformed GUID never leaves the client.
    let err = MessageGuid::parse("two words").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!("lvoe".parse::<Reaction>().is_err());
    assert_eq!(
        "🎉".parse::<Reaction>().unwrap(),
        Reaction::Emoji("🎉".into())
    );
}

#[tokio::test]
async fn reactions_replace_and_remove_with_events() {
    let server = Server::start().await;
    let (me, bob, mine, his) = two_accounts(&server).await;
    let sent = me
        .messages()
        .send_text(&mine, "Ship it", SendOptions::default())
        .await
        .unwrap();
    let mut my_events = me
        .messages()
        .subscribe(EventFilter::chat(mine.clone()))
        .await
        .unwrap();

    let liked = bob
        .messages()
        .set_reaction(&his, &sent.guid, &Reaction::Like, true)
        .await
        .unwrap();
    assert_eq!(liked.reactions.len(), 1);
    assert!(liked.reactions[0].is_from_me);

    // Another tapback replaces the first: removed, then added.
    bob.messages()
        .set_reaction(&his, &sent.guid, &Reaction::Love, true)
        .await
        .unwrap();
    let mine_now = me.messages().get(&sent.guid).await.unwrap();
    assert_eq!(mine_now.reactions.len(), 1);
    assert_eq!(mine_now.reactions[0].reaction, Reaction::Love);
    assert_eq!(
        mine_now.reactions[0].sender.as_ref().unwrap().address,
        addr(BOB)
    );

    // Taking off one that is not there: success, nothing changes, no event.
    bob.messages()
        .set_reaction(&his, &sent.guid, &Reaction::Laugh, false)
        .await
        .unwrap();
    bob.messages()
        .set_reaction(&his, &sent.guid, &Reaction::Love, false)
        .await
        .unwrap();

    let mut kinds = Vec::new();
    for _ in 0..4 {
        let event = next(&mut my_events).await;
        assert_eq!(event.actor.as_ref().unwrap().address, addr(BOB));
        let reaction = match &event.change {
            MessageChange::ReactionAdded { reaction, .. }
            | MessageChange::ReactionRemoved { reaction, .. } => reaction.to_string(),
            other => panic!("{other:?}"),
        };
        kinds.push(format!("{} {reaction}", event.change.event_type()));
    }
    assert_eq!(
        kinds,
        [
            "message.reactionAdded like",
            "message.reactionRemoved like",
            "message.reactionAdded love",
            "message.reactionRemoved love",
        ]
    );
    assert!(me
        .messages()
        .get(&sent.guid)
        .await
        .unwrap()
        .reactions
        .is_empty());

    let err = bob
        .messages()
        .set_reaction(&his, &sent.guid, &Reaction::Sticker, true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "operationNotSupported");
}

#[tokio::test]
async fn edit_and_unsend_follow_apples_rules() {
    let server = Server::start().await;
    let (me, bob, mine, his) = two_accounts(&server).await;
    let sent = me
        .messages()
        .send_text(&mine, "See you at 7", SendOptions::default())
        .await
        .unwrap();
    let mut bobs_events = bob.messages().subscribe(EventFilter::all()).await.unwrap();

    let edited = me
        .messages()
        .edit(&mine, &sent.guid, "See you at 8")
        .await
        .unwrap();
    assert_eq!(edited.text.as_deref(), Some("See you at 8"));
    assert!(edited.date_edited.is_some());
    let event = next(&mut bobs_events).await;
    let MessageChange::Edited { text, .. } = &event.change else {
        panic!("{event:?}")
    };
    assert_eq!(text.as_deref(), Some("See you at 8"));
    assert_eq!(
        bob.messages()
            .get(&sent.guid)
            .await
            .unwrap()
            .text
            .as_deref(),
        Some("See you at 8")
    );

    // Only your own.
    let err = bob
        .messages()
        .edit(&his, &sent.guid, "no")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "preconditionFailed");
    assert_eq!(err.context_value("reason"), Some("notFromMe"));
    let err = bob.messages().unsend(&his, &sent.guid).await.unwrap_err();
    assert_eq!(err.context_value("reason"), Some("notFromMe"));

    // At most 5 edits.
    for i in 2..=5 {
        me.messages()
            .edit(&mine, &sent.guid, &format!("edit {i}"))
            .await
            .unwrap();
    }
    let err = me
        .messages()
        .edit(&mine, &sent.guid, "edit 6")
        .await
        .unwrap_err();
    assert_eq!(err.context_value("reason"), Some("tooManyEdits"));

    me.messages().unsend(&mine, &sent.guid).await.unwrap();
    let gone = bob.messages().get(&sent.guid).await.unwrap();
    assert!(gone.is_unsent());
    assert_eq!(gone.text, None);
    let err = me.messages().unsend(&mine, &sent.guid).await.unwrap_err();
    assert_eq!(err.context_value("reason"), Some("messageUnsent"));
    let err = bob
        .messages()
        .set_reaction(&his, &sent.guid, &Reaction::Like, true)
        .await
        .unwrap_err();
    assert_eq!(err.context_value("reason"), Some("messageUnsent"));

    // Bob's stream: 4 more edits, then the unsend.
    let mut last = None;
    for _ in 0..5 {
        last = Some(next(&mut bobs_events).await);
    }
    let last = last.unwrap();
    assert!(
        matches!(last.change, MessageChange::Unsent { .. }),
        "{last:?}"
    );
    assert!(last.to_line().contains("message.unsent"));

    // Notify anyway: the message must be in the chat.
    me.messages()
        .notify_silenced(&mine, &sent.guid)
        .await
        .unwrap();
    let other = group(&me, &["carol@example.com", "dave@example.com"]).await;
    let err = me
        .messages()
        .notify_silenced(&other, &sent.guid)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "messageNotFound");
}

#[tokio::test]
async fn paging_never_repeats_or_skips() {
    let server = Server::start().await;
    let me = server.client();
    let chat = group(&me, &["carol@example.com", "dave@example.com"]).await;
    let other = group(&me, &["erin@example.com", "frank@example.com"]).await;
    for i in 0..7 {
        me.messages()
            .send_text(&chat, &format!("m{i}"), SendOptions::default())
            .await
            .unwrap();
    }
    me.messages()
        .send_text(&other, "elsewhere", SendOptions::default())
        .await
        .unwrap();

    let mut options = ListOptions {
        page_size: Some(3),
        ..ListOptions::default()
    };
    let mut texts = Vec::new();
    let mut pages = 0;
    loop {
        let page = me
            .messages()
            .list_in_chat(&chat, options.clone())
            .await
            .unwrap();
        pages += 1;
        if pages == 1 {
            // A message arriving between pages is newer than every page: never in them.
            me.messages()
                .send_text(&chat, "late", SendOptions::default())
                .await
                .unwrap();
        }
        texts.extend(page.messages.into_iter().filter_map(|m| m.text));
        match page.next_page_token {
            Some(token) => options.page_token = Some(token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(texts, ["m6", "m5", "m4", "m3", "m2", "m1", "m0"]);

    // Every page at once, as a stream.
    let all: Vec<String> = me
        .messages()
        .list_all(
            Some(&chat),
            ListOptions {
                page_size: Some(2),
                ..ListOptions::default()
            },
        )
        .map_ok(|m| m.text.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(all[0], "late");

    // Recent: every chat, newest first.
    let recent = me
        .messages()
        .list_recent(ListOptions {
            page_size: Some(2),
            ..ListOptions::default()
        })
        .await
        .unwrap();
    let recent: Vec<_> = recent
        .messages
        .iter()
        .filter_map(|m| m.text.as_deref())
        .collect();
    assert_eq!(recent, ["late", "elsewhere"]);
    let mine_only = ListOptions {
        is_from_me: Some(false),
        ..ListOptions::default()
    };
    assert!(me
        .messages()
        .list_recent(mine_only)
        .await
        .unwrap()
        .messages
        .is_empty());

    // Bad paging is refused.
    let bad = ListOptions {
        page_size: Some(1001),
        ..ListOptions::default()
    };
    let err = me.messages().list_in_chat(&chat, bad).await.unwrap_err();
    assert_eq!(err.context_value("field"), Some("pageSize"));
    assert_eq!(err.context_value("reason"), Some("outOfRange"));
    let forged = ListOptions {
        page_token: Some("forged".into()),
        ..ListOptions::default()
    };
    let err = me.messages().list_in_chat(&chat, forged).await.unwrap_err();
    assert_eq!(err.context_value("reason"), Some("invalidPageToken"));
}

#[tokio::test]
async fn addresses_report_reachability() {
    let server = Server::start().await;
    let me = server.client();
    let bob = addr(BOB);
    let info = me.addresses().info(&bob).await.unwrap();
    assert_eq!(info.address, BOB);
    assert_eq!(info.services, [imgroups_client::Service::IMessage]);
    assert!(me.addresses().is_imessage_available(&bob).await.unwrap());
    assert!(!me.addresses().is_silenced_by_focus(&bob).await.unwrap());

    server.mark_unreachable("nobody@example.com").await;
    let nobody = addr("nobody@example.com");
    assert!(!me.addresses().is_imessage_available(&nobody).await.unwrap());
    assert!(me
        .addresses()
        .info(&nobody)
        .await
        .unwrap()
        .services
        .is_empty());
    // An unreachable address gets no direct chat.
    let direct = ChatGuid::parse("any;-;nobody@example.com").unwrap();
    let err = me
        .messages()
        .send_text(&direct, "hello?", SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "addressNotFound");
}

#[tokio::test]
async fn backgrounds_are_shared_by_the_chat() {
    let server = Server::start().await;
    let (me, bob, mine, his) = two_accounts(&server).await;
    let (text, options) = send("hi");
    me.messages()
        .send_text(&mine, &text, options)
        .await
        .unwrap();
    assert!(!bob.chats().has_background(&his).await.unwrap());

    me.chats()
        .set_background(&mine, crate::harness::png())
        .await
        .unwrap();
    assert!(
        bob.chats().has_background(&his).await.unwrap(),
        "one background for both sides"
    );
    let err = me
        .chats()
        .set_background(&mine, b"not an image".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalidArgument");
    assert_eq!(err.context_value("field"), Some("data"));
    me.chats().share_contact_info(&mine).await.unwrap();
    bob.chats().remove_background(&his).await.unwrap();
    assert!(!me.chats().has_background(&mine).await.unwrap());
}
