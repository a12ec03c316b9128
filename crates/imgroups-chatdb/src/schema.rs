//! Which columns this chat.db has. Apple adds columns with most macOS releases and the group
//! columns themselves are not in every database, so every query is written from this probe:
//! a missing optional column reads as its default (`0` or `NULL`) instead of failing.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;

use crate::error::{Context, Error, Result};

/// The tables this crate reads and, for each, which of its columns exist.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    tables: BTreeMap<&'static str, BTreeSet<String>>,
}

const TABLES: [&str; 7] = [
    "chat",
    "handle",
    "message",
    "chat_handle_join",
    "chat_message_join",
    "attachment",
    "message_attachment_join",
];

/// Without these nothing can be read.
const REQUIRED: [(&str, &str); 12] = [
    ("chat", "guid"),
    ("chat", "style"),
    ("handle", "id"),
    ("message", "guid"),
    ("message", "date"),
    ("message", "item_type"),
    ("message", "handle_id"),
    ("message", "is_from_me"),
    ("chat_handle_join", "chat_id"),
    ("chat_handle_join", "handle_id"),
    ("chat_message_join", "chat_id"),
    ("chat_message_join", "message_id"),
];

impl Schema {
    pub(crate) fn probe(conn: &Connection) -> Result<Schema> {
        let mut tables = BTreeMap::new();
        for table in TABLES {
            // `pragma_table_info` is empty for a table that does not exist.
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_table_info(?1)")
                .context("probing columns")?;
            let columns = stmt
                .query_map([table], |row| row.get::<_, String>(0))
                .context("probing columns")?
                .collect::<rusqlite::Result<BTreeSet<_>>>()
                .context("probing columns")?
                .into_iter()
                .map(|c| c.to_ascii_lowercase())
                .collect::<BTreeSet<_>>();
            if !columns.is_empty() {
                tables.insert(table, columns);
            }
        }
        let schema = Schema { tables };
        for (table, column) in REQUIRED {
            if !schema.has(table, column) {
                return Err(Error::MissingColumn { table, column });
            }
        }
        Ok(schema)
    }

    /// Whether `table.column` exists (names compared case-insensitively, as SQLite does).
    pub fn has(&self, table: &str, column: &str) -> bool {
        self.tables
            .get(table)
            .is_some_and(|cols| cols.contains(&column.to_ascii_lowercase()))
    }

    /// Whether the table exists at all.
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// `alias.column` when the column exists, else the literal `default`.
    pub(crate) fn col(&self, table: &str, alias: &str, column: &str, default: &str) -> String {
        if self.has(table, column) {
            format!("{alias}.{column}")
        } else {
            default.to_owned()
        }
    }

    /// Whether icons can be resolved (the attachment tables exist with a guid).
    pub(crate) fn has_attachments(&self) -> bool {
        self.has("attachment", "guid") && self.has_table("message_attachment_join")
    }
}
