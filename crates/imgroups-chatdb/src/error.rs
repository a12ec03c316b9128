//! The crate's one error type. SQLite's own error type stays inside: callers see what went
//! wrong in chat.db terms and the SQLite message as the source.

use std::fmt;
use std::path::PathBuf;

/// Why reading chat.db failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be opened (missing, or no Full Disk Access on a Mac).
    #[error("cannot open {path} read-only")]
    Open {
        path: PathBuf,
        #[source]
        source: SqlError,
    },
    /// A table or column this crate cannot do without is absent: not a Messages database, or
    /// a layout nobody has seen yet.
    #[error("chat.db has no {table}.{column}")]
    MissingColumn {
        table: &'static str,
        column: &'static str,
    },
    /// A group chat row whose GUID cannot be turned into the `any;+;…` form.
    #[error("chat {rowid} has an unusable guid {guid:?}")]
    InvalidChatGuid { rowid: i64, guid: String },
    /// A stored cursor that this version cannot read.
    #[error("invalid chat.db cursor {0:?}")]
    InvalidCursor(String),
    /// A query failed (database locked for too long, corrupt file, …).
    #[error("chat.db query failed: {context}")]
    Query {
        context: &'static str,
        #[source]
        source: SqlError,
    },
}

/// An SQLite failure, opaque so that no SQLite type is part of this crate's API.
pub struct SqlError(pub(crate) rusqlite::Error);

impl fmt::Debug for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SqlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a what-were-we-doing to an SQLite error.
pub(crate) trait Context<T> {
    fn context(self, context: &'static str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn context(self, context: &'static str) -> Result<T> {
        self.map_err(|e| Error::Query {
            context,
            source: SqlError(e),
        })
    }
}
