//! Checkpoints run off the write path, yet under writes that never pause the WAL is still copied
//! back into the database file and started over, so it stays bounded; and nothing is lost.

use imgroups_core::port::{Log, Store};
use imgroups_core::{Command, Outcome};
use imgroups_store_sqlite::{Config, Durability, SqliteStore};

const PAGE: u64 = 4096 + 24; // a WAL frame: one page and its header

#[test]
fn under_sustained_writes_the_wal_stays_bounded_and_every_write_lands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgroups.db");
    let wal = dir.path().join("imgroups.db-wal");
    let mut config = Config::new(&path);
    config.durability = Durability::Normal;
    config.checkpoint_frames = 64;
    let store = SqliteStore::open(config).unwrap();
    let rt = crate::common::runtime();
    let me = crate::common::account(&rt, &store, "me@x.com");
    let engine = std::sync::Arc::new(crate::common::engine(&store));

    let people = ["p@x.com".to_owned(), "q@x.com".to_owned()];
    let chat = match rt
        .block_on(engine.execute(me, None, Command::create_chat(&people, None).unwrap()))
        .unwrap()
    {
        Outcome::Created { chat, .. } => chat.guid.to_string(),
        other => panic!("expected a created chat, got {other:?}"),
    };

    let start = rt.block_on(store.log_bounds(me)).unwrap().head;

    // Renames 16 at a time (so commits carry several), 6,000 in all: without checkpoints the
    // WAL reaches about 2,100 frames; with them, about 80 here.
    let renames = 6_000;
    let mut longest_wal = 0;
    rt.block_on(async {
        for round in 0..renames / 16 {
            let mut batch = tokio::task::JoinSet::new();
            for i in 0..16 {
                let (engine, chat) = (engine.clone(), chat.clone());
                let name = format!("name {}", round * 16 + i);
                batch.spawn(async move {
                    let cmd = Command::set_display_name(&chat, &name).unwrap();
                    engine.execute(me, None, cmd).await
                });
            }
            while let Some(done) = batch.join_next().await {
                done.unwrap().unwrap();
            }
            longest_wal = longest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        let last = Command::set_display_name(&chat, "last").unwrap();
        engine.execute(me, None, last).await.unwrap();
    });
    let renamed = (renames / 16) * 16;
    assert!(
        longest_wal < 8 * 64 * PAGE,
        "the WAL reached {longest_wal} bytes ({} frames) with checkpoints every 64 frames",
        longest_wal / PAGE
    );
    let check = |store: &SqliteStore| {
        let head = rt.block_on(store.log_bounds(me)).unwrap().head;
        assert_eq!(head, start + renamed as u64 + 1, "one event per change");
        let got = rt
            .block_on(crate::common::engine(store).get_chat(me, chat.clone()))
            .unwrap();
        assert_eq!(got.display_name.as_deref(), Some("last"));
    };
    check(&store);
    rt.block_on(store.close());
    check(&crate::common::open_store(&path));
}
