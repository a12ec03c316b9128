//! A simulator reset ([`Store::reset`]): the world is cleared, sequences never go back, and
//! accounts and tokens stay unless asked.

use imgroups_core::command::NewMessage;
use imgroups_core::port::{NewFault, ResetScope, WebhookUrl};
use imgroups_core::tokens::{new_admin_token, new_token};
use imgroups_core::{Address, Command, Engine, EngineConfig, ErrorKind, Outcome};
use imgroups_sim::Simulator;

use crate::{block_on, png, Fixture};

/// Reset clears chats, messages, icons, logs, idempotency records, faults and the directory;
/// keeps accounts, tokens and heads; moves webhook cursors to the head; a cursor from before
/// continues after it; and survives a restart. A full reset removes accounts and their
/// tokens, never admin tokens.
pub fn reset<F: Fixture>(fixture: F) {
    block_on(async {
        let store = fixture.open();
        let engine = Engine::new(store.clone(), Simulator::network(), EngineConfig::default());
        let me = Address::parse("a@x.com").expect("address");
        let (account, _) = store.ensure_account(&me).await.expect("account");
        let (other, _) = store
            .ensure_account(&Address::parse("b@x.com").expect("address"))
            .await
            .expect("account");
        let (token, hash) = new_token();
        store.add_token(account, hash).await.expect("token");
        let (admin, hash) = new_admin_token();
        store.add_admin_token(hash).await.expect("admin token");
        assert_eq!(store.resets().await.expect("resets"), 0);

        let people: Vec<String> = ["b@x.com", "p@x.com", "q@x.com"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        let create = Command::create_chat(&people, None).expect("command");
        let key = Some("create-1".to_owned());
        let chat = match engine.execute(account, key.clone(), create.clone()).await {
            Ok(Outcome::Created { chat, .. }) => chat.guid,
            other => panic!("expected a created chat, got {other:?}"),
        };
        let icon = Command::Group {
            chat: chat.clone(),
            mutation: imgroups_core::Mutation::set_icon(png(3)).expect("icon"),
        };
        engine.execute(account, None, icon).await.expect("icon");
        let say = |chat: &imgroups_core::ChatGuid| {
            Command::send_text(
                &chat.to_string(),
                NewMessage {
                    text: "hello".into(),
                    subject: None,
                    effect_id: None,
                    reply_to: None,
                    formatting: Vec::new(),
                },
            )
            .expect("command")
        };
        engine
            .execute(account, None, say(&chat))
            .await
            .expect("message");
        store
            .set_unreachable(&Address::parse("u@x.com").expect("address"), true)
            .await
            .expect("unreachable");
        store
            .add_fault(&NewFault {
                account,
                method: "*".into(),
                error_code: Some("databaseError".into()),
                retryable: true,
                latency_ms: 0,
                count: None,
                until: None,
            })
            .await
            .expect("fault");
        let url = WebhookUrl::parse("http://127.0.0.1:9/hook").expect("url");
        let hook = store
            .add_webhook(account, &url, "secret")
            .await
            .expect("webhook");
        let before = store.log_bounds(account).await.expect("bounds");
        let other_before = store.log_bounds(other).await.expect("bounds");
        assert!(before.head >= 2 && other_before.head >= 2);

        store.reset(ResetScope::default()).await.expect("reset");

        assert_eq!(store.resets().await.expect("resets"), 1);
        for (id, was) in [(account, before), (other, other_before)] {
            let now = store.log_bounds(id).await.expect("bounds");
            assert_eq!(now.head, was.head, "sequences never go back");
            assert_eq!(now.reset_through, was.head);
            now.check_cursor(0).expect("an old cursor is fine");
            assert_eq!(now.start(0), was.head);
            let left = store
                .read_events(id, 0, now.head, 100)
                .await
                .expect("events");
            assert!(left.is_empty(), "the log is empty: {left:?}");
        }
        let gone = engine.get_chat(account, chat.to_string()).await;
        assert_eq!(gone.map(drop).unwrap_err().kind, ErrorKind::ChatNotFound);
        assert_eq!(engine.count_chats(account).await.expect("count"), 0);
        assert_eq!(engine.count_chats(other).await.expect("count"), 0);
        assert!(store.unreachable().await.expect("directory").is_empty());
        assert!(store.faults().await.expect("faults").is_empty());
        let hook = store
            .webhook(hook.id)
            .await
            .expect("webhook")
            .expect("kept");
        assert_eq!(
            hook.cursor, before.head,
            "a webhook's cursor moves to the head"
        );
        assert_eq!(store.list_accounts().await.expect("accounts").len(), 2);
        assert_eq!(store.authenticate(&token).await.expect("token"), account);

        // The same idempotency key runs again: its record is gone with the chat it made.
        let again = match engine.execute(account, key, create).await {
            Ok(Outcome::Created { chat, .. }) => chat.guid,
            other => panic!("expected a created chat, got {other:?}"),
        };
        assert_ne!(again, chat);
        engine
            .execute(account, None, say(&again))
            .await
            .expect("message");
        let after = store.log_bounds(account).await.expect("bounds");
        assert_eq!(after.head, before.head + 1);
        let events = store
            .read_events(account, after.start(0), after.head, 100)
            .await
            .expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].sequence, before.head + 1);

        // Durable, and the writer forgot what it cached: a restart sees the same.
        store.close().await;
        let store = fixture.open();
        let engine = Engine::new(store.clone(), Simulator::network(), EngineConfig::default());
        assert_eq!(store.resets().await.expect("resets"), 1);
        assert_eq!(engine.count_chats(account).await.expect("count"), 1);
        assert_eq!(
            store
                .log_bounds(account)
                .await
                .expect("bounds")
                .reset_through,
            before.head
        );

        store
            .reset(ResetScope { accounts: true })
            .await
            .expect("full reset");
        assert_eq!(store.resets().await.expect("resets"), 2);
        assert!(store.list_accounts().await.expect("accounts").is_empty());
        assert!(store.list_tokens().await.expect("tokens").is_empty());
        assert!(store.webhooks(None).await.expect("webhooks").is_empty());
        let refused = store.authenticate(&token).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Unauthenticated);
        store
            .authenticate_admin(&admin)
            .await
            .expect("admin tokens stay");
        // A new account starts its own log, and writes work at once.
        let (fresh, created) = store.ensure_account(&me).await.expect("account");
        assert!(created);
        let create = Command::create_chat(&people, None).expect("command");
        let chat = match engine.execute(fresh, None, create).await {
            Ok(Outcome::Created { chat, .. }) => chat.guid,
            other => panic!("expected a created chat, got {other:?}"),
        };
        engine
            .execute(fresh, None, say(&chat))
            .await
            .expect("message");
        let bounds = store.log_bounds(fresh).await.expect("bounds");
        assert_eq!(bounds.head, 1);
        let events = store
            .read_events(fresh, bounds.start(0), bounds.head, 100)
            .await
            .expect("events");
        assert_eq!(events.len(), 1);
        store.close().await;
    });
}
