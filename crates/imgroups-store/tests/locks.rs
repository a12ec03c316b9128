//! Reads never need the write lock: while another connection holds it (as the writer does for
//! as long as it is busy), opening read connections and reading still work.

mod common;

use imgroups_core::Address;
use imgroups_store::{admin, open_connection, Durability};

#[test]
fn reads_work_while_the_write_lock_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgroups.db");
    let token = {
        let conn = open_connection(&path, Durability::Normal).unwrap();
        admin::add_account(&conn, &Address::parse("me@example.com").unwrap()).unwrap()
    };
    let store = common::open_store(&path);
    let rt = common::runtime();

    // Someone else (the CLI, say) takes the write lock and keeps it.
    let holder = open_connection(&path, Durability::Normal).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let account = rt.block_on(store.authenticate(token)).unwrap();
    // The first read opens a pooled connection, which checks the schema version.
    assert_eq!(rt.block_on(store.count_chats(account)).unwrap(), 0);
    assert_eq!(rt.block_on(store.head(account)).unwrap(), 0);

    holder.execute_batch("ROLLBACK").unwrap();
    store.close();
}
