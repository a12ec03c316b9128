//! Reads never need the write lock: while another connection holds it (as the writer does for
//! as long as it is busy), opening read connections and reading still work.

use imgroups_core::port::{Accounts, Log, Store};

#[test]
fn reads_work_while_the_write_lock_is_held() {
    let fresh = crate::common::Fresh::new();
    let (store, rt) = (&fresh.store, &fresh.rt);
    let token = fresh.add_account("me@example.com");
    let engine = crate::common::engine(store);

    // Someone else (the CLI, say) takes the write lock and keeps it.
    let holder = rusqlite::Connection::open(&fresh.path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let account = rt.block_on(store.authenticate(&token)).unwrap();
    // The first read opens a pooled connection, which checks the schema version.
    assert_eq!(rt.block_on(engine.count_chats(account)).unwrap(), 0);
    assert_eq!(rt.block_on(store.log_bounds(account)).unwrap().head, 0);

    holder.execute_batch("ROLLBACK").unwrap();
    rt.block_on(store.close());
}
