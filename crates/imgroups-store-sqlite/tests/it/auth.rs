//! Token checks: a good token is remembered, and a revocation by another process on the same
//! database (as the CLI makes) still takes effect on the very next check.

use imgroups_core::port::{Accounts, Store};
use imgroups_core::{admin, Address, ErrorKind};
use imgroups_store_sqlite::{Config, Durability, Role, SqliteStore};

#[test]
fn revocation_by_another_process_takes_effect_at_once() {
    let fresh = crate::common::Fresh::new();
    let (path, store, rt) = (&fresh.path, &fresh.store, &fresh.rt);
    let token = fresh.add_account("me@example.com");
    let me = Address::parse("me@example.com").unwrap();
    let other = rt.block_on(admin::create_token(store, &me)).unwrap();

    let account = rt.block_on(store.authenticate(&token)).unwrap();
    // Checked again: now from the cache.
    assert_eq!(rt.block_on(store.authenticate(&token)).unwrap(), account);
    assert_eq!(rt.block_on(store.authenticate(&other)).unwrap(), account);

    // The CLI's path: a store of its own on the same database, its own commit.
    let mut config = Config::new(path);
    config.durability = Durability::Normal;
    config.role = Role::Tool;
    let cli = SqliteStore::open(config).unwrap();
    rt.block_on(admin::revoke_token(&cli, &token)).unwrap();
    rt.block_on(cli.close());

    let err = rt.block_on(store.authenticate(&token)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TokenBlocked);
    // The other token of the same account is unaffected, and stays so.
    assert_eq!(rt.block_on(store.authenticate(&other)).unwrap(), account);
    assert_eq!(rt.block_on(store.authenticate(&other)).unwrap(), account);
    let err = rt.block_on(store.authenticate(&token)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TokenBlocked);

    let err = rt.block_on(store.authenticate("imgr_unknown")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    rt.block_on(store.close());
}
