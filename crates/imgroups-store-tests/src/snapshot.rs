//! Snapshots ([`Store::export`], [`Store::import`]): a world exported and imported elsewhere
//! is the same world (same file, same tokens, same chats and logs), and importing over a
//! world that moved on brings the exported one back.

use std::sync::Arc;

use imgroups_core::command::{Limits, NewMessage};
use imgroups_core::port::{NewFault, Store, WebhookUrl};
use imgroups_core::snapshot::Snapshot;
use imgroups_core::tokens::new_token;
use imgroups_core::{
    Address, ChatGuid, Command, Engine, EngineConfig, ErrorKind, Mutation, Outcome, Reaction,
};
use imgroups_sim::Simulator;

use crate::{block_on, png, Fixture};

fn engine(store: &Arc<dyn Store>) -> Engine {
    Engine::new(store.clone(), Arc::new(Simulator), EngineConfig::default())
}

fn say(chat: &ChatGuid, text: &str) -> Command {
    Command::send_text(
        &chat.to_string(),
        NewMessage {
            text: text.into(),
            subject: Some("re".into()),
            effect_id: None,
            reply_to: None,
            formatting: Vec::new(),
        },
    )
    .expect("command")
}

/// A world with something of every kind the file holds, exported from `fixture`, imported
/// into `other` (a store of its own): the second export is the same bytes; the imported
/// world's token, chats, messages and log answer as before; the import counts as a reset and
/// survives a restart; and importing the file again over a world that moved on brings the
/// exported world back, log heads included, with writes continuing after it.
pub fn snapshot<F: Fixture>(fixture: F, other: F) {
    block_on(async {
        let store = fixture.open();
        store.set_clock(Some(11)).await.expect("clock");
        let engine = engine(&store);
        let me = Address::parse("a@x.com").expect("address");
        let (account, _) = store.ensure_account(&me).await.expect("account");
        let (friend, _) = store
            .ensure_account(&Address::parse("b@x.com").expect("address"))
            .await
            .expect("account");
        let (token, hash) = new_token();
        store.add_token(account, hash).await.expect("token");
        let people: Vec<String> = ["b@x.com", "p@x.com", "q@x.com"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        let chat = match engine
            .execute(
                account,
                None,
                Command::create_chat(&people, None).expect("command"),
            )
            .await
        {
            Ok(Outcome::Created { chat, .. }) => chat.guid,
            other => panic!("expected a created chat, got {other:?}"),
        };
        let rename = Command::set_display_name(&chat.to_string(), "Dinner").expect("rename");
        engine.execute(account, None, rename).await.expect("rename");
        let icon = Command::Group {
            chat: chat.clone(),
            mutation: Mutation::set_icon(png(4)).expect("icon"),
        };
        engine.execute(account, None, icon).await.expect("icon");
        let sent = match engine.execute(account, None, say(&chat, "hi 👋")).await {
            Ok(Outcome::Message(message)) => message.guid,
            other => panic!("expected a message, got {other:?}"),
        };
        let react = Command::react(&chat.to_string(), &sent, Reaction::Like, true).expect("react");
        engine.execute(friend, None, react).await.expect("react");
        let background = Command::set_background(&chat.to_string(), png(5), &Limits::default())
            .expect("background");
        engine
            .execute(account, None, background)
            .await
            .expect("background");
        let direct = ChatGuid::parse("any;-;z@x.com").expect("guid");
        engine
            .execute(account, None, say(&direct, "direct"))
            .await
            .expect("direct message");
        store
            .set_unreachable(&Address::parse("u@x.com").expect("address"), true)
            .await
            .expect("unreachable");
        store
            .add_fault(&NewFault {
                account: friend,
                method: "SendText".into(),
                error_code: Some("databaseError".into()),
                retryable: true,
                latency_ms: 5,
                count: Some(2),
                until: None,
            })
            .await
            .expect("fault");
        let url = WebhookUrl::parse("http://127.0.0.1:9/hook").expect("url");
        store
            .add_webhook(account, &url, "secret")
            .await
            .expect("webhook");

        let exported = store.export().await.expect("export");
        let file = exported.to_json();
        assert_eq!(Snapshot::from_json(&file).expect("reads back"), exported);
        assert_eq!(exported.accounts.len(), 2);
        assert_eq!(exported.groups.len(), 1);
        assert_eq!(exported.groups[0].members.len(), 4);
        assert!(exported.groups[0].icon.is_some());
        assert_eq!(exported.backgrounds.len(), 1);
        assert_eq!(exported.unreachable, ["u@x.com"]);
        assert!(exported.clock.is_some());
        let mine = &exported.accounts[0];
        assert_eq!(mine.address, "a@x.com");
        assert_eq!(mine.tokens.len(), 1);
        assert_eq!(mine.direct_chats.len(), 1);
        assert_eq!(mine.webhooks.len(), 1);
        assert_eq!(mine.messages.len(), 2);
        assert_eq!(mine.events.len() as u64, mine.head_seq);
        assert_eq!(exported.accounts[1].faults.len(), 1);

        // Into a store of its own: the same file comes out, and the world answers.
        let copy = other.open();
        copy.import(exported.clone()).await.expect("import");
        assert_eq!(copy.export().await.expect("export").to_json(), file);
        assert_eq!(copy.resets().await.expect("resets"), 1);
        assert_eq!(copy.authenticate(&token).await.expect("token"), account);
        let copied = self::engine(&copy);
        let seen = copied
            .get_chat(account, chat.to_string())
            .await
            .expect("chat");
        assert_eq!(seen.display_name.as_deref(), Some("Dinner"));
        let message = copied
            .get_message(friend, sent.clone())
            .await
            .expect("message");
        assert_eq!(message.text, "hi 👋");
        let bounds = copy.log_bounds(account).await.expect("bounds");
        assert_eq!(bounds.head, mine.head_seq);
        let events = copy
            .read_events(account, 0, bounds.head, 100)
            .await
            .expect("events");
        assert_eq!(events.len() as u64, bounds.head);
        assert_eq!(copy.faults().await.expect("faults").len(), 1);
        copy.close().await;
        let copy = other.open();
        assert_eq!(
            copy.export().await.expect("after a restart").to_json(),
            file
        );
        copy.close().await;

        // Over a world that moved on: the exported one comes back, heads included.
        engine
            .execute(account, None, say(&chat, "later"))
            .await
            .expect("message");
        let (_, hash) = new_token();
        let (late, _) = store
            .ensure_account(&Address::parse("late@x.com").expect("address"))
            .await
            .expect("account");
        store.add_token(late, hash).await.expect("token");
        store.import(exported.clone()).await.expect("import");
        assert_eq!(store.export().await.expect("export").to_json(), file);
        assert_eq!(store.resets().await.expect("resets"), 1);
        let gone = store
            .find_account(&Address::parse("late@x.com").expect("address"))
            .await
            .expect("find");
        assert_eq!(gone, None, "accounts the snapshot does not have are gone");
        let engine = self::engine(&store);
        let later = engine.execute(account, None, say(&chat, "after")).await;
        assert!(matches!(later, Ok(Outcome::Message(_))), "{later:?}");
        let bounds = store.log_bounds(account).await.expect("bounds");
        assert_eq!(bounds.head, mine.head_seq + 1);
        // A token made after the import does not take an imported one's id.
        let (_, hash) = new_token();
        let id = store.add_token(account, hash).await.expect("token");
        assert!(id.0 > mine.tokens[0].id);
        let missing = engine
            .get_message(account, "nope".into())
            .await
            .unwrap_err();
        assert_eq!(missing.kind, ErrorKind::MessageNotFound);
        store.close().await;
    });
}
