//! The controllable clock of deterministic runs ([`Store::set_clock`]): the store's time and
//! the identifiers it hands out follow the seed and the clock, for the engine's writes and
//! for fault time limits, and survive a restart.

use std::sync::Arc;

use imgroups_core::clock::{group_identifier, guid, seeded_id, SIM_EPOCH};
use imgroups_core::command::NewMessage;
use imgroups_core::port::{NewFault, SimStore};
use imgroups_core::{
    AccountId, Address, ChatGuid, Command, Engine, EngineConfig, ErrorKind, Message, Outcome,
    Timestamp,
};
use imgroups_sim::Simulator;

use crate::{block_on, Fixture};

const SECOND: i64 = 1_000_000_000;

async fn say(engine: &Engine, account: AccountId, chat: &ChatGuid, text: &str) -> Message {
    let command = Command::send_text(
        &chat.to_string(),
        NewMessage {
            text: text.into(),
            subject: None,
            effect_id: None,
            reply_to: None,
            formatting: Vec::new(),
        },
    )
    .expect("command");
    match engine.execute(account, None, command).await {
        Ok(Outcome::Message(message)) => *message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn engine(store: &Arc<dyn SimStore>) -> Engine {
    Engine::new(store.clone(), Simulator::network(), EngineConfig::default())
}

/// Without a clock the store cannot be moved; with one, group names, GUIDs and dates are the
/// seed's and the clock's, a move is seen by the next write and by fault time limits, the
/// clock never goes back, a restart keeps it, another seed is refused, and taking it away
/// gives back the system's time.
pub fn clock<F: Fixture>(fixture: F) {
    block_on(async {
        let store = fixture.open();
        assert_eq!(store.clock().await.expect("clock"), None);
        let refused = store.advance_clock(SECOND).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::PreconditionFailed, "{refused:?}");
        assert!(refused
            .context
            .contains(&("reason".into(), "clockNotControllable".into())));

        let started = store
            .set_clock(Some(7))
            .await
            .expect("set")
            .expect("a clock");
        assert_eq!((started.now, started.seed, started.ids), (SIM_EPOCH, 7, 0));
        assert_eq!(store.now().await.expect("now"), SIM_EPOCH);
        let me = Address::parse("a@x.com").expect("address");
        let (account, _) = store.ensure_account(&me).await.expect("account");

        // A group takes two identifiers (its name, its id), a message one.
        let people = vec!["p@x.com".to_owned(), "q@x.com".to_owned()];
        let create = Command::create_chat(&people, None).expect("command");
        let chat = match engine(&store).execute(account, None, create).await {
            Ok(Outcome::Created { chat, .. }) => chat,
            other => panic!("expected a created chat, got {other:?}"),
        };
        assert_eq!(chat.chat_identifier, group_identifier(seeded_id(7, 1)));
        assert_eq!(
            chat.group_id.as_deref(),
            Some(guid(seeded_id(7, 2)).as_str())
        );
        let first = say(&engine(&store), account, &chat.guid, "one").await;
        assert_eq!(first.guid, guid(seeded_id(7, 3)));
        assert_eq!(first.date_created, SIM_EPOCH);

        // A fault for a minute of the store's time.
        let until = Timestamp(store.now().await.expect("now").0 + 60 * SECOND);
        store
            .add_fault(&NewFault {
                account,
                method: "SetDisplayName".into(),
                error_code: Some("databaseError".into()),
                retryable: false,
                latency_ms: 0,
                count: None,
                until: Some(until),
            })
            .await
            .expect("fault");
        assert_eq!(store.faults().await.expect("faults").len(), 1);

        let moved = store.advance_clock(90 * SECOND).await.expect("advance");
        assert_eq!(moved.now, Timestamp(SIM_EPOCH.0 + 90 * SECOND));
        assert!(store.faults().await.expect("faults").is_empty(), "run out");
        let second = say(&engine(&store), account, &chat.guid, "two").await;
        assert_eq!(second.guid, guid(seeded_id(7, 4)));
        assert_eq!(second.date_created, moved.now);

        let back = store.advance_clock(-SECOND).await.unwrap_err();
        assert_eq!(back.kind, ErrorKind::InvalidArgument, "{back:?}");
        assert_eq!(
            store.clock().await.expect("clock").expect("clock").now,
            moved.now
        );

        // A restart continues the run; only the same seed may continue it.
        store.close().await;
        let store = fixture.open();
        let kept = store.clock().await.expect("clock").expect("kept");
        assert_eq!((kept.now, kept.seed, kept.ids), (moved.now, 7, 4));
        assert_eq!(
            store.set_clock(Some(7)).await.expect("same seed"),
            Some(kept)
        );
        let other = store.set_clock(Some(8)).await.unwrap_err();
        assert_eq!(other.kind, ErrorKind::PreconditionFailed, "{other:?}");
        let third = say(&engine(&store), account, &chat.guid, "three").await;
        assert_eq!(third.guid, guid(seeded_id(7, 5)));

        // Without the clock: the system's time and random identifiers again.
        assert_eq!(store.set_clock(None).await.expect("unset"), None);
        let fourth = say(&engine(&store), account, &chat.guid, "four").await;
        assert_ne!(fourth.guid, guid(seeded_id(7, 6)));
        assert!(fourth.date_created > moved.now);
        store.close().await;
    });
}
