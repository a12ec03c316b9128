//! Seeding message datasets fast: straight into a fresh data directory, through the SQLite
//! store and the engine's own rules ([`rules::execute`]), thousands of commands per
//! transaction, `synchronous=NORMAL`, no server and no gRPC. A million sends through the API
//! would take minutes and measure nothing the workloads need; the rows written here are the
//! rows a send writes (same rules, same encodings), only committed in bigger batches.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use imgroups_core::engine::rules;
use imgroups_core::port::{Log, NewEvent, Store, Tx};
use imgroups_core::{
    admin, AccountId, Address, Change, ChatGuid, Command, NewMessage, Outcome, Reaction,
};
use imgroups_sim::Simulator;
use imgroups_store_sqlite::{Config, Durability, Role, SqliteStore};

use crate::proc::Result;
use crate::progress;

/// One step of the M3 log's cycle, as the account `A` whose log is read sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A renames the group (group event).
    Rename,
    /// B says something (message.received, unread for A).
    TheySay,
    /// A says something (message.received, from A).
    ISay,
    /// A puts a tapback on B's latest message (message.reactionAdded).
    React,
    /// A edits its latest message (message.edited).
    Edit,
    /// A reads the chat (chat.markedRead). Written by [`mark_read`], not the rule: see there.
    MarkRead,
    /// A adds a puppet, or removes it again (group event).
    Churn,
}

/// The M3 cycle: 10 events in A's log (2 group, 7 message, 1 chat; B's log gets the 9
/// that are not A's read marker).
pub(crate) const MIX: [Step; 10] = [
    Step::Rename,
    Step::TheySay,
    Step::TheySay,
    Step::ISay,
    Step::React,
    Step::Edit,
    Step::MarkRead,
    Step::TheySay,
    Step::ISay,
    Step::Churn,
];

/// A plain text message of a typical length (about 45 characters), numbered so every one
/// differs.
pub(crate) fn text(n: u64) -> String {
    format!("m{n} running late, see you at the station at 6?")
}

/// The store of a data directory, opened as a tool (as `imgroups account add` does), with
/// `synchronous=NORMAL`: a seed is rebuilt, never recovered.
pub(crate) struct Seeder {
    store: SqliteStore,
}

impl Seeder {
    pub(crate) fn open(dir: &std::path::Path) -> Result<Self> {
        let mut config = Config::new(dir.join("imgroups.db"));
        config.durability = Durability::Normal;
        config.role = Role::Tool;
        Ok(Seeder {
            store: SqliteStore::open(config)?,
        })
    }

    /// A new account (what `imgroups account add` does): its id and its token.
    pub(crate) async fn account(&self, address: &str) -> Result<(AccountId, String)> {
        let address = Address::parse(address)?;
        let token = admin::add_account(&self.store, &address).await?;
        let id = admin::account(&self.store, &address).await?;
        Ok((id, token))
    }

    /// A new admin token (what `imgroups admin token` does).
    pub(crate) async fn admin_token(&self) -> Result<String> {
        Ok(admin::create_admin_token(&self.store).await?)
    }

    /// Runs `work` in one write transaction and returns what it returned.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn Tx) -> imgroups_core::Result<T> + Send + 'static,
    ) -> Result<T> {
        let slot = Arc::new(Mutex::new(None));
        let out = slot.clone();
        self.store
            .write(Box::new(move |tx| {
                let value = work(tx)?;
                if let Ok(mut out) = out.lock() {
                    *out = Some(value);
                }
                Ok(Outcome::Empty)
            }))
            .await?;
        let value = slot.lock().map_err(|_| "seed slot poisoned")?.take();
        value.ok_or_else(|| "seed transaction returned nothing".into())
    }

    /// The head of `account`'s log.
    pub(crate) async fn head(&self, account: AccountId) -> Result<u64> {
        Ok(self.store.log_bounds(account).await?.head)
    }

    pub(crate) async fn close(self) {
        self.store.close().await;
    }
}

/// `account` applies `command` through the engine's rules (what a request does inside the
/// writer's transaction).
fn apply(tx: &mut dyn Tx, account: AccountId, command: &Command) -> imgroups_core::Result<Outcome> {
    rules::execute(tx, &Simulator, account, command)
}

/// `account` creates a group with `others`; its GUID.
pub(crate) fn create_group(
    tx: &mut dyn Tx,
    account: AccountId,
    others: &[String],
) -> imgroups_core::Result<String> {
    match apply(tx, account, &Command::create_chat(others, None)?)? {
        Outcome::Created { chat, .. } | Outcome::Chat(chat) => Ok(chat.guid.to_string()),
        Outcome::Empty | Outcome::Message(_) => Err(imgroups_core::Error::internal()),
    }
}

/// `account` says `text` in `chat`; the message's GUID.
pub(crate) fn say(
    tx: &mut dyn Tx,
    account: AccountId,
    chat: &str,
    text: &str,
) -> imgroups_core::Result<String> {
    let message = NewMessage::new(text, None, None, None, Vec::new())?;
    match apply(tx, account, &Command::send_text(chat, message)?)? {
        Outcome::Message(m) => Ok(m.guid),
        Outcome::Empty | Outcome::Chat(_) | Outcome::Created { .. } => {
            Err(imgroups_core::Error::internal())
        }
    }
}

/// Commands per seeding transaction.
const PER_TX: u64 = 5_000;

/// Messages of M2's quiet chat.
pub(crate) const QUIET: u64 = 60;

/// M2's dataset.
pub(crate) struct BigChat {
    pub(crate) token: String,
    /// The chat of `n` messages, `text(0)` the oldest.
    pub(crate) chat: String,
    /// A chat of [`QUIET`] messages, all older than the big chat's.
    pub(crate) quiet: String,
}

/// M2's dataset: a fresh data directory whose account `reader@bench.test` holds a quiet group
/// chat of [`QUIET`] messages, then a group chat of `n` messages (both with two people who
/// are not accounts), all sent by the account.
pub(crate) async fn one_big_chat(dir: &std::path::Path, n: u64) -> Result<BigChat> {
    let started = Instant::now();
    let seeder = Seeder::open(dir)?;
    let (me, token) = seeder.account("reader@bench.test").await?;
    let (quiet, chat) = seeder
        .run(move |tx| {
            let quiet = create_group(
                tx,
                me,
                &["p3@bench.test".to_owned(), "p4@bench.test".to_owned()],
            )?;
            for j in 0..QUIET {
                say(tx, me, &quiet, &text(j))?;
            }
            let chat = create_group(
                tx,
                me,
                &["p1@bench.test".to_owned(), "p2@bench.test".to_owned()],
            )?;
            Ok((quiet, chat))
        })
        .await?;
    let mut done = 0u64;
    while done < n {
        let (lo, hi) = (done, (done + PER_TX).min(n));
        let chat = chat.clone();
        seeder
            .run(move |tx| {
                for j in lo..hi {
                    say(tx, me, &chat, &text(j))?;
                }
                Ok(())
            })
            .await?;
        done = hi;
        if done.is_multiple_of(100_000) {
            progress(format!("seeding M2: {done}/{n} messages"));
        }
    }
    seeder.close().await;
    progress(format!(
        "seeding M2: {n} messages in {:.1} s ({:.0}/s, in-process through the engine's rules)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64().max(1e-9)
    ));
    Ok(BigChat { token, chat, quiet })
}

/// M3's dataset.
pub(crate) struct Mixed {
    /// The token of A, whose log is read.
    pub(crate) token: String,
    /// A's head (the events of its log).
    pub(crate) head: u64,
    pub(crate) groups: u64,
    pub(crate) seed_secs: f64,
}

/// Per group of the M3 dataset: what the next steps act on.
#[derive(Default, Clone)]
struct GroupState {
    guid: String,
    theirs: String,
    mine: String,
    churned: bool,
    /// B's messages A has not read yet.
    unread: Vec<String>,
}

/// M3's dataset: accounts A and B in `events / 100` groups (each with a puppet too), going
/// round the groups through [`MIX`] until A's log holds about `events` events (creating the
/// groups gives each a few first).
pub(crate) async fn mixed_log(dir: &std::path::Path, events: u64) -> Result<Mixed> {
    let started = Instant::now();
    let seeder = Seeder::open(dir)?;
    let (a, token) = seeder.account("mixa@bench.test").await?;
    let (b, _) = seeder.account("mixb@bench.test").await?;
    let groups = (events / 100).max(1);
    let mut states: Vec<GroupState> = Vec::with_capacity(groups as usize);
    let mut made = 0u64;
    while made < groups {
        let (lo, hi) = (made, (made + PER_TX).min(groups));
        let guids = seeder
            .run(move |tx| {
                (lo..hi)
                    .map(|g| {
                        create_group(
                            tx,
                            a,
                            &["mixb@bench.test".to_owned(), format!("q{g}@bench.test")],
                        )
                    })
                    .collect::<imgroups_core::Result<Vec<_>>>()
            })
            .await?;
        states.extend(guids.into_iter().map(|guid| GroupState {
            guid,
            ..GroupState::default()
        }));
        made = hi;
    }
    let after_create = seeder.head(a).await?;
    let cycles = events.saturating_sub(after_create) / MIX.len() as u64;
    let per_tx = (PER_TX / MIX.len() as u64).max(1);
    let mut done = 0u64;
    while done < cycles {
        let (lo, hi) = (done, (done + per_tx).min(cycles));
        // The states travel into the transaction and back out.
        let all = std::mem::take(&mut states);
        states = seeder
            .run(move |tx| {
                let mut all = all;
                for c in lo..hi {
                    let g = (c % groups) as usize;
                    cycle(tx, a, b, c, g, &mut all[g])?;
                }
                Ok(all)
            })
            .await?;
        done = hi;
        if (done * MIX.len() as u64) % 100_000 < per_tx * MIX.len() as u64 {
            progress(format!(
                "seeding M3: {}/{events} events in A's log",
                after_create + done * MIX.len() as u64
            ));
        }
    }
    let head = seeder.head(a).await?;
    seeder.close().await;
    let seed_secs = started.elapsed().as_secs_f64();
    progress(format!(
        "seeding M3: {head} events in A's log ({groups} groups) in {seed_secs:.1} s"
    ));
    Ok(Mixed {
        token,
        head,
        groups,
        seed_secs,
    })
}

/// One turn of [`MIX`] in group `g` (cycle `c`).
fn cycle(
    tx: &mut dyn Tx,
    a: AccountId,
    b: AccountId,
    c: u64,
    g: usize,
    st: &mut GroupState,
) -> imgroups_core::Result<()> {
    let chat = st.guid.clone();
    for (k, step) in MIX.iter().enumerate() {
        let n = c * MIX.len() as u64 + k as u64;
        match step {
            Step::Rename => {
                apply(tx, a, &Command::set_display_name(&chat, &format!("r{c}"))?)?;
            }
            Step::TheySay => {
                st.theirs = say(tx, b, &chat, &text(n))?;
                st.unread.push(st.theirs.clone());
            }
            Step::ISay => st.mine = say(tx, a, &chat, &text(n))?,
            Step::React => {
                apply(
                    tx,
                    a,
                    &Command::react(&chat, &st.theirs, Reaction::Love, true)?,
                )?;
            }
            Step::Edit => {
                apply(tx, a, &Command::edit(&chat, &st.mine, &text(n))?)?;
            }
            Step::MarkRead => mark_read(tx, a, &chat, std::mem::take(&mut st.unread))?,
            Step::Churn => {
                let puppet = [format!("p{g}x@bench.test")];
                let command = if st.churned {
                    Command::remove_participants(&chat, &puppet)?
                } else {
                    Command::add_participants(&chat, &puppet)?
                };
                apply(tx, a, &command)?;
                st.churned = !st.churned;
            }
        }
    }
    Ok(())
}

/// What `chats.markRead` by `account` writes in a group where `unread` are the messages it has
/// not read: each marked read in its view, and one `chat.markedRead` in its log (groups send
/// no receipts).
///
/// Written here rather than by the rule because the rule finds the unread messages with a
/// listing whose plan walks every message of the account, not of the chat (`chat_messages`'
/// primary key, see BENCHMARKS.md, M2): each mark-read costs O(account's messages), and a
/// seed of a million events through it would take hours.
fn mark_read(
    tx: &mut dyn Tx,
    account: AccountId,
    chat: &str,
    unread: Vec<String>,
) -> imgroups_core::Result<()> {
    if unread.is_empty() {
        return Ok(());
    }
    let now = tx.now();
    for guid in &unread {
        if let Some((place, mut message)) = tx.message(account, guid)? {
            message.date_read = Some(now);
            tx.put_message(account, place, &message)?;
        }
    }
    let me = tx.account_address(account)?;
    let chat = ChatGuid::parse(chat)?;
    tx.append_event(
        account,
        NewEvent {
            chat_guid: &chat,
            occurred_at: now,
            is_from_me: true,
            actor: Some(&me),
            change: &Change::ChatMarkedRead,
        },
    )?;
    Ok(())
}
