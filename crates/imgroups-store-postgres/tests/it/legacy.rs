//! Messages kept before messages had places (the first messages of `chats.create`, moved over
//! by the migration below every other message, at negative places) list and page like any
//! other: to the end, each once.

use std::sync::Arc;

use imgroups_core::engine::messages::query::Listing;
use imgroups_core::port::{Accounts, Store};
use imgroups_core::{Address, Engine, EngineConfig};
use imgroups_sim::Simulator;
use imgroups_store_postgres::Role;

use crate::PgFixture;

#[test]
fn messages_moved_over_by_the_migration_page_to_the_end() {
    let Some(fixture) = PgFixture::new("legacy_messages") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = fixture.store(Role::Serve);
        let me = Address::parse("me@x.com").unwrap();
        let me = store.ensure_account(&me).await.unwrap().0;
        // What the migration writes for each old row.
        let (client, connection) = tokio_postgres::connect(&fixture.db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for n in 1..=5i64 {
            client
                .execute(
                    "INSERT INTO chat_messages
                         (account_id, place, guid, chat_guid, created_at, is_from_me, is_read, body)
                     SELECT $1, $2, $3, 'any;+;chat1', $4, true, true,
                            json_build_object('guid', $3::text, 'text', 'old', 'subject', NULL,
                                              'date_created', $4::bigint, 'is_from_me', true,
                                              'is_sent', true)::text",
                    &[&me.0, &-n, &format!("L{n}"), &(1_000 + n)],
                )
                .await
                .unwrap();
        }
        let engine = Engine::new(
            Arc::new(store.clone()),
            Simulator::network(),
            EngineConfig::default(),
        );
        let mut listing = Listing {
            page_size: Some(2),
            ..Listing::default()
        };
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (page, next) = engine
                .list_messages(me, None, listing.clone())
                .await
                .unwrap();
            seen.extend(page.into_iter().map(|m| m.guid));
            match next {
                Some(token) => listing.page_token = Some(token),
                None => break,
            }
        }
        assert_eq!(
            seen,
            ["L1", "L2", "L3", "L4", "L5"],
            "each once, then the end"
        );
        let old = engine.get_message(me, "L3".into()).await.unwrap();
        assert_eq!(old.text, "old");
        store.close().await;
    });
}
