//! The store a command works on: PostgreSQL with `--database-url`, else SQLite in the data
//! directory. The one place (with `cmd::serve`, which picks the backend) where the binary
//! picks concrete implementations of the ports.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use imgroups_core::port::SimStore;
use imgroups_core::{Error, ErrorKind};
use imgroups_store_postgres::PgStore;
use imgroups_store_sqlite::{Config, Durability, SqliteStore};
use sha2::{Digest, Sha256};

use crate::cli::DataArg;

/// Whether a store is opened by the server or by a tool beside it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Serve,
    Tool,
}

/// How a store is opened.
pub(crate) struct StoreOptions {
    pub(crate) role: Role,
    pub(crate) durability: Durability,
    pub(crate) retain_events: Option<u64>,
}

impl StoreOptions {
    /// A tool beside any server on the store: the server hears of its commits at once.
    pub(crate) fn tool() -> Self {
        StoreOptions {
            role: Role::Tool,
            durability: Durability::Full,
            retain_events: None,
        }
    }
}

/// Opens the store `data` names. Both stores keep the simulator's state beside the store port
/// ([`imgroups_core::port::sim`]), so the handle is both: an `Arc<dyn Store>` for the engine
/// and an `Arc<dyn SimControls>` for the simulator's controls (`imgroups sim`, and the server
/// when it runs the simulator).
pub(crate) fn open(data: &DataArg, options: StoreOptions) -> Result<Arc<dyn SimStore>, Error> {
    if let Some(url) = &data.database_url {
        let mut config = imgroups_store_postgres::Config::new(url);
        config.retain_events = options.retain_events;
        config.role = match options.role {
            Role::Serve => imgroups_store_postgres::Role::Serve,
            Role::Tool => imgroups_store_postgres::Role::Tool,
        };
        return Ok(Arc::new(PgStore::open(config)?));
    }
    let mut config = Config::new(data.db()?);
    config.durability = options.durability;
    config.retain_events = options.retain_events;
    config.role = match options.role {
        Role::Serve => imgroups_store_sqlite::Role::Serve,
        Role::Tool => imgroups_store_sqlite::Role::Tool,
    };
    Ok(Arc::new(SqliteStore::open(config)?))
}

/// Runs `work` on `store`, then closes the store whatever `work` returned: every way out
/// of a command that opened a store passes here, so none leaves it unclosed.
pub(crate) async fn closing<F, Fut, T>(store: Arc<dyn SimStore>, work: F) -> Result<T, Error>
where
    F: FnOnce(Arc<dyn SimStore>) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let result = work(store.clone()).await;
    store.close().await;
    result
}

/// Runs `work` on the store `data` names, as a tool beside any server running on it. An
/// error saying that something does not exist names the store it was looked for in, so a
/// command pointed at the wrong store (a forgotten `--database-url`) says so.
pub(crate) fn with_store<F, Fut>(data: &DataArg, work: F) -> Result<(), Error>
where
    F: FnOnce(Arc<dyn SimStore>) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    crate::runtime(tokio::runtime::Builder::new_current_thread())?
        .block_on(async move {
            let store = open(data, StoreOptions::tool())?;
            closing(store, work).await
        })
        .map_err(|err| in_store(err, data))
}

/// `err`, its message naming the store if it says something was not found there.
pub(crate) fn in_store(mut err: Error, data: &DataArg) -> Error {
    let missing = match err.kind {
        ErrorKind::ChatNotFound | ErrorKind::AddressNotFound | ErrorKind::GroupIconNotFound => true,
        // An unknown token (`token revoke`) or webhook id (`webhook rm`).
        ErrorKind::Unauthenticated => true,
        ErrorKind::InvalidArgument => matches!(err.context_value("field"), Some("id" | "token")),
        _ => false,
    };
    if missing {
        if let Some(name) = name(data) {
            err.message = format!("{} in {name}", err.message);
        }
    }
    err
}

/// `operationNotSupported` when the store at `data` mirrors a Mac's chat.db (a server with
/// `--backend chatdb` keeps its chat.db cursors there): `what` would write the simulated world
/// into the mirror of what Messages holds, and the next read of chat.db would not undo it. The
/// console refuses the same on such a server; this is the CLI's side, which opens the store
/// without a server and so cannot ask which backend uses it.
pub(crate) async fn simulated_world(
    store: &dyn SimStore,
    data: &DataArg,
    what: &str,
) -> Result<(), Error> {
    let mirrors = imgroups_core::port::store::read(store, |r| {
        Ok(r.observer_cursor(imgroups_macos::SOURCE)?.is_some()
            || r.observer_cursor(imgroups_macos::MESSAGES_SOURCE)?
                .is_some())
    })
    .await?;
    if !mirrors {
        return Ok(());
    }
    let store = name(data).unwrap_or_else(|| "this store".to_owned());
    Err(Error::not_supported(format!(
        "{what} replaces the simulated world, and {store} mirrors a Mac's chat.db (a server \
         with --backend chatdb uses it); use another data directory"
    )))
}

/// The store `data` names, for people: `the SQLite store at DIR/imgroups.db` or `the
/// PostgreSQL database URL` (without its password).
pub(crate) fn name(data: &DataArg) -> Option<String> {
    match &data.database_url {
        Some(url) => Some(format!(
            "the PostgreSQL database {}",
            crate::config::redact_url(url)
        )),
        None => Some(format!("the SQLite store at {}", data.db().ok()?.display())),
    }
}

/// Where `serve` writes the default account's first token: `DIR/token` for the SQLite store
/// in DIR; for PostgreSQL `DIR/token-postgres-<HASH>`, HASH naming the database (the first
/// 12 hex digits of the SHA-256 of its URL without the password). So a server on another
/// store with the same data directory never overwrites the token of the first.
pub(crate) fn token_file(data: &DataArg) -> Result<PathBuf, Error> {
    let dir = data.dir()?;
    Ok(match &data.database_url {
        None => dir.join("token"),
        Some(url) => {
            let digest = Sha256::digest(crate::config::redact_url(url).as_bytes());
            let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            dir.join(format!("token-postgres-{hash}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(dir: &str, url: Option<&str>) -> DataArg {
        DataArg {
            dir: Some(PathBuf::from(dir)),
            database_url: url.map(str::to_owned),
        }
    }

    #[test]
    fn token_files_are_per_store() {
        let sqlite = token_file(&data("/d", None)).expect("path");
        assert_eq!(sqlite, PathBuf::from("/d/token"));
        let one = token_file(&data("/d", Some("postgres://u:pw@h/one"))).expect("path");
        let two = token_file(&data("/d", Some("postgres://u@h/two"))).expect("path");
        assert_ne!(one, two);
        assert_ne!(one, sqlite);
        let name = one.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            name.starts_with("token-postgres-") && name.len() == 27,
            "{name}"
        );
        // The password is not part of the database's identity.
        let again = token_file(&data("/d", Some("postgres://u:other@h/one"))).expect("path");
        assert_eq!(one, again);
    }

    #[test]
    fn not_found_errors_name_the_store() {
        let err = in_store(Error::chat_not_found(&"any;+;x"), &data("/d", None));
        assert_eq!(
            err.message,
            "chat any;+;x not found in the SQLite store at /d/imgroups.db"
        );
        let err = in_store(
            Error::new(ErrorKind::AddressNotFound, "no account a@b.co"),
            &data("/d", Some("postgres://u:secret@h/db")),
        );
        assert_eq!(
            err.message,
            "no account a@b.co in the PostgreSQL database postgres://u:<redacted>@h/db"
        );
        // Bad input is about the input, not the store.
        let err = in_store(Error::invalid("bad"), &data("/d", None));
        assert_eq!(err.message, "bad");
    }
}
