//! The engine's side of an observed network (a Mac's chat.db): changes come in as batches
//! read from the network's own record, each recorded once, with the network's cursor in the
//! same transaction; and an account's write is checked here, carried out by the network, and
//! answered once the network has seen it happen ([`Engine::execute`] hands it to
//! [`crate::port::ObservedNetwork`]).

use std::sync::Arc;

use crate::command::{Command, Mutation};
use crate::error::{Error, ErrorKind, Result};
use crate::idempotency::{self, Keyed};
use crate::ids::{Address, ChatGuid};
use crate::model::{AccountId, Outcome};
use crate::port::{ObservedNetwork, Tx};

use super::observe_messages::{self, ObservedMessages};
use super::rules::{self, Checks, Decision, Observed};
use super::Engine;

/// A group as the network reports it, to create it in the store the first time it is seen, or
/// to bring the store's state in line with the network's (state only: no events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedGroup {
    pub chat: ChatGuid,
    /// Shared by every member; the chat identifier where the network has none.
    pub group_id: String,
    pub display_name: Option<String>,
    /// Every member, the account included while it is in the group.
    pub members: Vec<Address>,
    /// The icon's bytes and MIME type.
    pub icon: Option<(Vec<u8>, String)>,
}

/// What one read of the network found, recorded in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ObservedBatch {
    /// Names the source, for its cursor and its ids (e.g. `chatdb`).
    pub source: String,
    /// Where the next read resumes; saved with the events.
    pub cursor: String,
    /// Groups to create before the changes, if the store does not have them yet, in the state
    /// they had before this batch's changes.
    pub new_groups: Vec<ObservedGroup>,
    /// The changes, in the order they happened, each with its id in the source: a change
    /// whose id was recorded before is skipped.
    pub changes: Vec<(String, Observed)>,
    /// After the changes, the state of these groups is set to this (the network is the truth;
    /// nothing is logged for the difference).
    pub settle: Vec<ObservedGroup>,
}

/// Where a transaction of [`Engine::record_import`] stands in a long import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkImport {
    /// The import's first transaction ([`Tx::begin_bulk_import`] before its parts).
    pub begin: bool,
    /// Its last ([`Tx::end_bulk_import`] after its parts).
    pub end: bool,
}

/// One part of what an observed network recorded together ([`Engine::record_history`]).
#[derive(Debug, Clone)]
pub enum ObservedPart {
    /// Group changes (and the groups they need).
    Changes(ObservedBatch),
    /// Message events.
    Messages(ObservedMessages),
}

impl ObservedPart {
    /// Its changes or message events.
    pub fn len(&self) -> usize {
        match self {
            ObservedPart::Changes(batch) => batch.changes.len() + batch.new_groups.len(),
            ObservedPart::Messages(batch) => batch.items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Engine {
    /// Records a batch from an observed network: new groups, then each change not recorded
    /// before (to the logs of the accounts in the group, by the rules with
    /// [`Checks::Trust`]), then the settled state and the cursor — all in one transaction.
    /// Returns how many changes were recorded now. A change the rules cannot place (its group
    /// is unknown, say) is skipped with a warning, so one odd row cannot stop the stream.
    pub async fn record_observed(&self, batch: ObservedBatch) -> Result<usize> {
        let recorded = self
            .record_history(vec![ObservedPart::Changes(batch)])
            .await?;
        Ok(recorded.iter().map(|(count, _)| count).sum())
    }

    /// Records `parts` in order, all in one transaction, each as [`Engine::record_observed`]
    /// or [`Engine::record_messages`] would alone; returns each part with how many of its
    /// items were recorded now. A long history interleaves group changes and messages by date
    /// in many small parts; recorded one transaction each, a first start waited for one commit
    /// per part (minutes for a million messages). The parts come back rather than being
    /// copied beforehand: the caller tells its waiters what they held, and a first start's
    /// million messages need not be cloned for that.
    pub async fn record_history(
        &self,
        parts: Vec<ObservedPart>,
    ) -> Result<Vec<(usize, ObservedPart)>> {
        self.record_import(parts, BulkImport::default()).await
    }

    /// [`Engine::record_history`] as a step of a long import: with `bulk.begin` the store may
    /// stop maintaining what only listings read before these parts
    /// ([`Tx::begin_bulk_import`]), with `bulk.end` it builds it again after them, in the
    /// same transaction.
    pub async fn record_import(
        &self,
        parts: Vec<ObservedPart>,
        bulk: BulkImport,
    ) -> Result<Vec<(usize, ObservedPart)>> {
        let (tx_recorded, rx_recorded) = tokio::sync::oneshot::channel();
        self.store
            .write(Box::new(move |tx| {
                if bulk.begin {
                    tx.begin_bulk_import()?;
                }
                let mut counts = Vec::with_capacity(parts.len());
                let mut keepers = observe_messages::Keepers::default();
                for part in &parts {
                    counts.push(match part {
                        ObservedPart::Changes(batch) => {
                            let recorded = record_batch(tx, batch)?;
                            keepers.changed(batch);
                            recorded
                        }
                        ObservedPart::Messages(batch) => {
                            observe_messages::record(tx, batch, &mut keepers)?
                        }
                    });
                }
                drop(keepers);
                if bulk.end {
                    tx.end_bulk_import()?;
                }
                let _ = tx_recorded.send(counts.into_iter().zip(parts).collect());
                Ok(Outcome::Empty)
            }))
            .await?;
        rx_recorded.await.map_err(|_| Error::internal())
    }

    /// [`Engine::execute`] on an observed network, which carries changes out itself: the
    /// rules run in a transaction that changes nothing, the network carries the change out
    /// and returns once it has recorded what it observed, and the answer is read from the
    /// state after it.
    pub(super) async fn execute_observed(
        &self,
        network: Arc<dyn ObservedNetwork>,
        account: AccountId,
        key: Option<String>,
        command: Command,
    ) -> Result<Outcome> {
        if matches!(command, Command::Message { .. }) {
            return self
                .execute_observed_message(network, account, key, command)
                .await;
        }
        let keyed = Keyed::new(key, &command).map(Arc::new);
        // Shared with the checking transaction rather than copied (an icon may be 10 MiB).
        let command = Arc::new(command);
        let ttl = self.config.idempotency_ttl;
        let (tx_step, rx_step) = tokio::sync::oneshot::channel();
        let step_keyed = keyed.clone();
        let step_command = command.clone();
        self.store
            .write(Box::new(move |tx| {
                let step = decide_step(tx, account, step_keyed.as_deref(), ttl, &step_command)?;
                let _ = tx_step.send(step);
                Ok(Outcome::Empty)
            }))
            .await?;
        let decision = match rx_step.await.map_err(|_| Error::internal())? {
            Step::Replay(answer) | Step::Refused(answer) => return answer,
            Step::Decided(decision) => decision,
        };
        let answer = match decision {
            Some(d) => match network.carry_out(&d.chat, &d.actor, &d.mutation).await {
                Ok(()) => self.answer(account, &command).await,
                Err(err) => Err(err),
            },
            None => self.answer(account, &command).await,
        };
        if let Some(keyed) = keyed {
            let remembered = answer.clone();
            self.store
                .write(Box::new(move |tx| {
                    idempotency::remember(tx, account, &keyed, &remembered)?;
                    Ok(Outcome::Empty)
                }))
                .await?;
        }
        answer
    }

    /// What a group write answers, read after the change: the chat for a rename or a
    /// membership change, nothing for the others.
    async fn answer(&self, account: AccountId, command: &Command) -> Result<Outcome> {
        match command {
            Command::Group { chat, mutation } => match mutation {
                Mutation::SetDisplayName(_)
                | Mutation::AddParticipants(_)
                | Mutation::RemoveParticipants(_) => self
                    .get_chat(account, chat.to_string())
                    .await
                    .map(Outcome::Chat),
                Mutation::Leave | Mutation::SetIcon { .. } | Mutation::RemoveIcon => {
                    Ok(Outcome::Empty)
                }
            },
            // `decide` refuses these before anything is carried out.
            Command::CreateChat { .. } | Command::Message { .. } => Err(Error::internal()),
        }
    }
}

/// What the checking transaction found.
enum Step {
    /// The key was used before: this is the first answer.
    Replay(Result<Outcome>),
    /// The rules refused (the refusal is remembered under the key, like any final answer).
    Refused(Result<Outcome>),
    Decided(Option<Decision>),
}

fn decide_step(
    tx: &mut dyn Tx,
    account: AccountId,
    keyed: Option<&Keyed>,
    ttl: std::time::Duration,
    command: &Command,
) -> Result<Step> {
    if let Some(keyed) = keyed {
        if let Some(first) = idempotency::replay(tx, account, keyed, ttl)? {
            return Ok(Step::Replay(first));
        }
    }
    match rules::decide(tx, account, command) {
        Ok(decision) => Ok(Step::Decided(decision)),
        Err(err) if is_store_failure(&err) => Err(err),
        Err(err) => {
            let refused = Err(err);
            if let Some(keyed) = keyed {
                idempotency::remember(tx, account, keyed, &refused)?;
            }
            Ok(Step::Refused(refused))
        }
    }
}

/// An error of the store itself (the whole transaction must fail), not of the request.
fn is_store_failure(err: &Error) -> bool {
    matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Internal)
}

fn record_batch(tx: &mut dyn Tx, batch: &ObservedBatch) -> Result<usize> {
    for group in &batch.new_groups {
        let identifier = group.chat.require_group()?;
        if tx.group(identifier)?.is_some() {
            continue;
        }
        let now = tx.now();
        let Some(key) = tx.create_group(identifier, &group.group_id, now)? else {
            continue;
        };
        for member in &group.members {
            tx.add_member(key, member)?;
        }
        settle_group(tx, key, group)?;
    }
    let mut recorded = 0;
    for (id, observed) in &batch.changes {
        if !tx.mark_observed(&batch.source, id)? {
            continue;
        }
        match rules::ingest(tx, None, observed, Checks::Trust) {
            Ok(()) => recorded += 1,
            Err(err) if is_store_failure(&err) => return Err(err),
            Err(err) => tracing::warn!(
                source = %batch.source,
                id = %id,
                chat = %observed.chat,
                error = %err,
                "observed change skipped"
            ),
        }
    }
    for group in &batch.settle {
        let identifier = group.chat.require_group()?;
        let Some(row) = tx.group(identifier)? else {
            continue;
        };
        let members = tx.members(row.key)?;
        for member in members.iter().filter(|m| !group.members.contains(m)) {
            tx.remove_member(row.key, member)?;
        }
        for member in group.members.iter().filter(|m| !members.contains(m)) {
            tx.add_member(row.key, member)?;
        }
        if row.display_name != group.display_name {
            tx.set_display_name(row.key, group.display_name.as_deref().unwrap_or(""))?;
        }
        settle_icon(tx, row.key, row.icon_hash.as_deref(), group)?;
    }
    tx.set_observer_cursor(&batch.source, &batch.cursor)?;
    Ok(recorded)
}

/// Name and icon of a group just created.
fn settle_group(tx: &mut dyn Tx, key: crate::model::GroupKey, group: &ObservedGroup) -> Result<()> {
    if let Some(name) = group.display_name.as_deref().filter(|n| !n.is_empty()) {
        tx.set_display_name(key, name)?;
    }
    settle_icon(tx, key, None, group)
}

fn settle_icon(
    tx: &mut dyn Tx,
    key: crate::model::GroupKey,
    current: Option<&[u8]>,
    group: &ObservedGroup,
) -> Result<()> {
    use sha2::Digest;
    match &group.icon {
        Some((data, mime)) => {
            let hash = sha2::Sha256::digest(data).to_vec();
            if current != Some(hash.as_slice()) {
                tx.set_icon(key, data, mime, &hash)?;
            }
        }
        None => {
            if current.is_some() {
                tx.clear_icon(key)?;
            }
        }
    }
    Ok(())
}
