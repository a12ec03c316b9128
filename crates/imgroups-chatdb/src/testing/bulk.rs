//! Large fixture databases, fast: a whole Messages history (plain messages in group and direct
//! chats, and group changes of every kind) written in one transaction with prepared
//! statements, for benchmarks and tests of the import at scale; and [`LiveWriter`], which
//! commits one group change at a time the way Messages does (message row and its chat join in
//! one transaction), from a connection of its own.
//!
//! The history is consistent: an addition adds someone who is not in the group, a removal or
//! a leave takes out someone who is, a rename always changes the name, a photo removal follows
//! a photo; the account ("me") stays in every group. So every recognised change is one event
//! in the account's log, and [`BulkHistory::events`] is exactly what an import must record.

use rusqlite::{params, Connection};

use super::fixture::{Fixture, BASE_SECS};

/// What to build.
#[derive(Clone, Debug)]
pub struct BulkSpec {
    /// `message` rows in all.
    pub messages: u64,
    /// Of those, group changes (`item_type` 1–3), spread evenly over the history.
    pub changes: u64,
    /// Group chats; each change and half of the plain messages go to one of them at random.
    pub groups: u64,
    /// Members of each group at the start of its history (me not counted).
    pub members: usize,
    /// Other people (`handle` rows); group members and direct chats are drawn from them.
    pub handles: u64,
    /// One-to-one chats, for the other half of the plain messages.
    pub direct_chats: u64,
    /// Seed of the (deterministic) choices.
    pub seed: u64,
}

impl BulkSpec {
    /// `messages` rows of which `changes` are group changes, over `groups` groups, with
    /// sizes of the other parts in proportion.
    pub fn new(messages: u64, changes: u64, groups: u64) -> BulkSpec {
        BulkSpec {
            messages,
            changes,
            groups: groups.max(1),
            members: 6,
            handles: (groups * 4).max(32),
            direct_chats: (groups / 2).max(1),
            seed: 0x5eed,
        }
    }
}

/// What was built.
#[derive(Clone, Debug)]
pub struct BulkHistory {
    pub messages: u64,
    /// Group-change rows (recognised or not).
    pub change_rows: u64,
    /// Of those, the ones that are events in the account's log.
    pub events: u64,
    /// The groups' `chat` ROWIDs and their handles' ROWIDs at the end (me not counted).
    pub groups: Vec<(i64, Vec<i64>)>,
    /// The ROWID of the last `message` row.
    pub last_rowid: i64,
}

/// A small deterministic generator (SplitMix64): no dependency, same history every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One group's state while its history is written.
struct GroupState {
    rowid: i64,
    members: Vec<i64>,
    has_icon: bool,
    renames: u64,
}

/// The columns of a `message` insert for one row.
struct Row<'a> {
    guid: &'a str,
    text: Option<&'a str>,
    /// 0: me.
    handle: i64,
    item_type: i64,
    action: i64,
    other: i64,
    title: Option<&'a str>,
    date: i64,
}

/// Prepared inserts for `message` and `chat_message_join`, in whichever layout the fixture has.
struct Inserts {
    message: String,
    join: String,
}

impl Inserts {
    fn for_conn(conn: &Connection) -> Inserts {
        let caller = has_column(conn, "message", "destination_caller_id");
        let message = format!(
            "INSERT INTO message (guid, text, handle_id, service, account, date, is_from_me, \
             is_finished, item_type, other_handle, group_title, group_action_type{}) \
             VALUES (?1, ?2, ?3, 'iMessage', ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10{})",
            if caller {
                ", destination_caller_id"
            } else {
                ""
            },
            if caller { ", ?11" } else { "" },
        );
        let join = if has_column(conn, "chat_message_join", "message_date") {
            "INSERT INTO chat_message_join (chat_id, message_id, message_date) VALUES (?1, ?2, ?3)"
        } else {
            "INSERT INTO chat_message_join (chat_id, message_id) VALUES (?1, ?2)"
        };
        Inserts {
            message,
            join: join.to_owned(),
        }
    }

    /// Inserts `row` joined to `chat`; returns its ROWID.
    fn post(&self, conn: &Connection, me: &str, chat: i64, row: &Row<'_>) -> i64 {
        let from_me = row.handle == 0;
        let account = from_me.then(|| format!("e:{me}"));
        let caller = from_me.then_some(me);
        let mut stmt = conn.prepare_cached(&self.message).unwrap();
        let has_caller = stmt.parameter_count() == 11;
        let base = params![
            row.guid,
            row.text,
            row.handle,
            account,
            row.date,
            from_me,
            row.item_type,
            row.other,
            row.title,
            row.action,
        ];
        if has_caller {
            let mut all: Vec<&dyn rusqlite::ToSql> = base.to_vec();
            all.push(&caller);
            stmt.execute(all.as_slice()).unwrap();
        } else {
            stmt.execute(base).unwrap();
        }
        let id = conn.last_insert_rowid();
        let mut join = conn.prepare_cached(&self.join).unwrap();
        if join.parameter_count() == 3 {
            join.execute(params![chat, id, row.date]).unwrap();
        } else {
            join.execute(params![chat, id]).unwrap();
        }
        id
    }
}

fn has_column(conn: &Connection, table: &str, column: &str) -> bool {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}

/// The address of bulk handle number `i` (1-based).
pub fn bulk_address(i: u64) -> String {
    format!("user{i}@example.com")
}

/// The GUID of bulk message number `i` (0-based): a random-looking UUID in Messages' form
/// (`8C1D6C47-2E63-4F4B-9D0C-6C3F0E1A2B3C`), as a real history's are, so that an import
/// meets GUIDs in no particular order (a store's unique index on them then grows at random
/// places, not at its right edge); the same for the same `i` on every run.
pub fn bulk_message_guid(i: u64) -> String {
    let mut rng = Rng(i);
    let (hi, lo) = (rng.next(), rng.next());
    format!(
        "{:08X}-{:04X}-4{:03X}-{:04X}-{:012X}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0x0FFF,
        0x8000 | (lo >> 48) & 0x3FFF,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// The GUID of bulk group number `g` (0-based).
pub fn bulk_group_guid(g: u64) -> String {
    format!("iMessage;+;chat{g:06}")
}

impl Fixture {
    /// Writes the history `spec` describes (see the module doc) into this empty fixture, in
    /// one transaction; `me` is the account's address. Message `i` is dated `2 i` seconds
    /// after [`BASE_SECS`].
    pub fn bulk(&self, spec: &BulkSpec, me: &str) -> BulkHistory {
        let conn = &self.conn;
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        conn.pragma_update(None, "cache_size", -65_536).unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        let mut rng = Rng(spec.seed);

        let handles: Vec<i64> = (1..=spec.handles)
            .map(|i| self.handle(&bulk_address(i)))
            .collect();
        let mut groups: Vec<GroupState> = (0..spec.groups)
            .map(|g| {
                let rowid = self.group(&bulk_group_guid(g), None, None);
                let mut members = Vec::new();
                while members.len() < spec.members.min(handles.len()) {
                    let h = handles[rng.below(handles.len() as u64) as usize];
                    if !members.contains(&h) {
                        members.push(h);
                    }
                }
                GroupState {
                    rowid,
                    members,
                    has_icon: false,
                    renames: 0,
                }
            })
            .collect();
        let direct: Vec<(i64, i64)> = (0..spec.direct_chats)
            .map(|i| {
                let h = handles[(i % handles.len() as u64) as usize];
                let chat = self.chat(
                    &format!("iMessage;-;{}", bulk_address(i + 1)),
                    45,
                    None,
                    None,
                );
                self.member(chat, h);
                (chat, h)
            })
            .collect();

        let inserts = Inserts::for_conn(conn);
        let every = (spec.messages / spec.changes.max(1)).max(1);
        let (mut change_rows, mut events, mut last_rowid) = (0u64, 0u64, 0i64);
        for i in 0..spec.messages {
            let secs = BASE_SECS + 2 * i as i64;
            let date = if self.version.nanos() {
                secs * 1_000_000_000
            } else {
                secs
            };
            let guid = bulk_message_guid(i);
            let is_change = i % every == every - 1 && change_rows < spec.changes;
            if !is_change {
                let text = format!("message {i}");
                let (chat, handle) = if rng.below(2) == 0 {
                    let g = &groups[rng.below(groups.len() as u64) as usize];
                    (
                        g.rowid,
                        g.members[rng.below(g.members.len() as u64) as usize],
                    )
                } else {
                    direct[rng.below(direct.len() as u64) as usize]
                };
                let handle = if rng.below(10) < 3 { 0 } else { handle };
                let row = Row {
                    guid: &guid,
                    text: Some(&text),
                    handle,
                    item_type: 0,
                    action: 0,
                    other: 0,
                    title: None,
                    date,
                };
                last_rowid = inserts.post(conn, me, chat, &row);
                continue;
            }
            change_rows += 1;
            let g = rng.below(groups.len() as u64) as usize;
            let group = &mut groups[g];
            let actor = |rng: &mut Rng, members: &[i64]| {
                if rng.below(10) < 3 {
                    0
                } else {
                    members[rng.below(members.len() as u64) as usize]
                }
            };
            let roll = rng.below(100);
            let shrinkable = group.members.len() > 3;
            let mut title = None;
            let (item_type, action, handle, other, event) = match roll {
                // Removal (when there are enough members left).
                25..=44 if shrinkable => {
                    let k = rng.below(group.members.len() as u64) as usize;
                    let target = group.members.remove(k);
                    (1, 1, actor(&mut rng, &group.members), target, true)
                }
                45..=69 => {
                    group.renames += 1;
                    title = Some(format!("Group {g} #{}", group.renames));
                    (2, 0, actor(&mut rng, &group.members), 0, true)
                }
                // Someone leaves.
                70..=79 if shrinkable => {
                    let k = rng.below(group.members.len() as u64) as usize;
                    let who = group.members.remove(k);
                    (3, 0, who, 0, true)
                }
                80..=94 if group.has_icon && roll >= 88 => {
                    group.has_icon = false;
                    (3, 2, actor(&mut rng, &group.members), 0, true)
                }
                80..=94 => {
                    group.has_icon = true;
                    (3, 1, actor(&mut rng, &group.members), 0, true)
                }
                // An action this version does not model (a chat background, say): no event.
                95..=99 => (3, 4, actor(&mut rng, &group.members), 0, false),
                // Addition: the default, also when a removal or a leave would shrink the group
                // too much.
                _ => {
                    let target = loop {
                        let h = handles[rng.below(handles.len() as u64) as usize];
                        if !group.members.contains(&h) {
                            break h;
                        }
                    };
                    let by = actor(&mut rng, &group.members);
                    group.members.push(target);
                    (1, 0, by, target, true)
                }
            };
            events += u64::from(event);
            let row = Row {
                guid: &guid,
                text: None,
                handle,
                item_type,
                action,
                other,
                title: title.as_deref(),
                date,
            };
            let chat = group.rowid;
            last_rowid = inserts.post(conn, me, chat, &row);
        }
        // The groups as they are at the end; names as the last rename left them.
        for (g, group) in groups.iter().enumerate() {
            for &h in &group.members {
                self.member(group.rowid, h);
            }
            if group.renames > 0 {
                conn.execute(
                    "UPDATE chat SET display_name = ?1 WHERE ROWID = ?2",
                    params![format!("Group {g} #{}", group.renames), group.rowid],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        BulkHistory {
            messages: spec.messages,
            change_rows,
            events,
            groups: groups.into_iter().map(|g| (g.rowid, g.members)).collect(),
            last_rowid,
        }
    }
}

/// Commits group changes one at a time, as Messages does: the `message` row and its
/// `chat_message_join` row in one transaction, on a database in WAL mode, from a connection of
/// its own (open it in another process to measure what a reader sees).
pub struct LiveWriter {
    conn: Connection,
    inserts: Inserts,
    nanos: bool,
    me: String,
}

impl LiveWriter {
    /// Opens the fixture database at `path` (built by [`Fixture`] for `version`) for writing.
    pub fn open(path: &std::path::Path, version: super::Version, me: &str) -> LiveWriter {
        let conn = Connection::open(path).unwrap();
        super::fixture::register_messages_functions(&conn);
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        // What Messages runs with: WAL, every commit durable.
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        let inserts = Inserts::for_conn(&conn);
        LiveWriter {
            conn,
            inserts,
            nanos: version.nanos(),
            me: me.to_owned(),
        }
    }

    /// Commits "`handle` renamed group `chat` to `name`", dated now; returns its ROWID once
    /// committed.
    pub fn rename(&self, chat: i64, handle: i64, guid: &str, name: &str) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Apple's epoch is 2001-01-01.
        let apple = now.as_nanos() as i64 - 978_307_200 * 1_000_000_000;
        let date = if self.nanos {
            apple
        } else {
            apple / 1_000_000_000
        };
        let tx = self.conn.unchecked_transaction().unwrap();
        let row = Row {
            guid,
            text: None,
            handle,
            item_type: 2,
            action: 0,
            other: 0,
            title: Some(name),
            date,
        };
        let id = self.inserts.post(&self.conn, &self.me, chat, &row);
        tx.commit().unwrap();
        id
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::bulk_message_guid;

    /// Bulk message GUIDs look like Messages' own (upper-case UUID v4) and do not repeat.
    #[test]
    fn message_guids_are_distinct_uuids() {
        let mut seen = HashSet::new();
        for i in 0..20_000 {
            let guid = bulk_message_guid(i);
            let parts: Vec<&str> = guid.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{guid}"
            );
            assert!(parts[2].starts_with('4'), "{guid}");
            assert!(
                guid.chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase()),
                "{guid}"
            );
            assert!(seen.insert(guid));
        }
    }
}
