//! Token checks: a good token is remembered, and a revocation from another connection (as the
//! CLI makes, in another process) still takes effect on the very next check.

use imgroups_core::{Address, ErrorKind};
use imgroups_store::{admin, open_connection, Config, Durability, Store};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn revocation_by_another_connection_takes_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgroups.db");
    let (token, other) = {
        let conn = open_connection(&path, Durability::Normal).unwrap();
        let me = Address::parse("me@example.com").unwrap();
        (
            admin::add_account(&conn, &me).unwrap(),
            admin::create_token(&conn, &me).unwrap(),
        )
    };
    let mut config = Config::new(&path);
    config.durability = Durability::Normal;
    let store = Store::open(config).unwrap();
    let rt = runtime();

    let account = rt.block_on(store.authenticate(token.clone())).unwrap();
    // Checked again: now from the cache.
    assert_eq!(
        rt.block_on(store.authenticate(token.clone())).unwrap(),
        account
    );
    assert_eq!(
        rt.block_on(store.authenticate(other.clone())).unwrap(),
        account
    );

    // The CLI's path: its own connection, its own commit.
    let cli = open_connection(&path, Durability::Normal).unwrap();
    admin::revoke_token(&cli, &token).unwrap();

    let err = rt.block_on(store.authenticate(token.clone())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TokenBlocked);
    // The other token of the same account is unaffected, and stays so.
    assert_eq!(
        rt.block_on(store.authenticate(other.clone())).unwrap(),
        account
    );
    assert_eq!(rt.block_on(store.authenticate(other)).unwrap(), account);
    let err = rt.block_on(store.authenticate(token)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TokenBlocked);

    let err = rt
        .block_on(store.authenticate("imgr_unknown".into()))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    store.close();
}
