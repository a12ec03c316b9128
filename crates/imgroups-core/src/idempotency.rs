//! Idempotent writes, defined once for every store.
//!
//! - The key is the request's `client_message_id`, else the `x-idempotency-key` header; it is
//!   scoped to (account, method) and remembered for a configurable time (24 h by default).
//! - The same request again under a key returns the first answer — success or a final error —
//!   with no new effect and no new event. A request is "the same" when its
//!   [`Command::fingerprint`] is.
//! - A different request under a used key fails with `duplicateMessage`.
//! - The answer is recorded in the transaction that makes the effect, so a crash between
//!   commit and response cannot turn a retry into a second write. Transient failures are not
//!   recorded: retrying them can succeed.
//!
//! Stores provide only "look up" and "record with the effect" ([`Tx::idempotency_get`],
//! [`Tx::idempotency_put`]). A retry that arrives while the first is still running waits for
//! it, because both run in write transactions and the second sees the first's record.

use std::time::Duration;

use crate::command::Command;
use crate::error::{Error, ErrorKind, Reason, Result};
use crate::model::{AccountId, Outcome, Timestamp};
use crate::port::tx::{KeyScope, Recorded, Tx};

/// How long keys are remembered by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest idempotency key accepted, in bytes. Keys are stored (and echoed in
/// `duplicateMessage` errors) for a day; UUIDs and ULIDs need 36, hashes 64, and a
/// 10 MB key must not be kept for 24 hours.
pub const MAX_KEY_BYTES: usize = 256;

/// Refuses a key longer than [`MAX_KEY_BYTES`]. `field` names where it came from:
/// `clientMessageId`, or the `x-idempotency-key` header.
pub fn check_key(key: &str, field: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(format!(
            "idempotency key is longer than {MAX_KEY_BYTES} bytes"
        ))
        .with("field", field)
        .because(Reason::TooLong)
        .with("limit", MAX_KEY_BYTES));
    }
    Ok(())
}

/// A request made under an idempotency key.
#[derive(Debug, Clone)]
pub struct Keyed {
    method: &'static str,
    key: String,
    fingerprint: Vec<u8>,
}

impl Keyed {
    /// `None` when there is no key. Call outside the store's transaction: fingerprinting a
    /// 10 MiB icon is not free, and the writer should not wait for it.
    pub fn new(key: Option<String>, command: &Command) -> Option<Keyed> {
        key.map(|key| Keyed {
            method: command.method(),
            key,
            fingerprint: command.fingerprint(),
        })
    }

    fn scope(&self, account: AccountId) -> KeyScope<'_> {
        KeyScope {
            account,
            method: self.method,
            key: &self.key,
        }
    }
}

/// Writes answered from their stored outcome (`imgroups_idempotency_replays_total`; the
/// server renders it).
static REPLAYS: std::sync::LazyLock<metrics::Counter> =
    std::sync::LazyLock::new(|| metrics::counter!("imgroups_idempotency_replays_total"));

/// Runs `effect` as `account` under `keyed` (see the module docs), inside `tx`.
pub fn run(
    tx: &mut dyn Tx,
    account: AccountId,
    keyed: Option<&Keyed>,
    ttl: Duration,
    effect: impl FnOnce(&mut dyn Tx) -> Result<Outcome>,
) -> Result<Outcome> {
    let Some(keyed) = keyed else {
        return effect(tx);
    };
    if let Some(first) = replay(tx, account, keyed, ttl)? {
        return first;
    }
    let answer = effect(tx);
    remember(tx, account, keyed, &answer)?;
    answer
}

/// The answer first given under `keyed`, if there is one that has not expired
/// (`duplicateMessage` if the key was used for a different request).
pub fn replay(
    tx: &mut dyn Tx,
    account: AccountId,
    keyed: &Keyed,
    ttl: Duration,
) -> Result<Option<Result<Outcome>>> {
    let now = tx.now();
    let not_before = Timestamp(
        now.0
            .saturating_sub(ttl.as_nanos().min(i64::MAX as u128) as i64),
    );
    let Some(first) = tx.idempotency_get(keyed.scope(account), not_before)? else {
        return Ok(None);
    };
    if first.fingerprint != keyed.fingerprint {
        return Err(Error::new(
            ErrorKind::DuplicateMessage,
            "this idempotency key was already used for a different request",
        )
        .with("field", "clientMessageId")
        .with("key", &keyed.key));
    }
    REPLAYS.increment(1);
    let answer = serde_json::from_str::<Result<Outcome>>(&first.outcome).map_err(|err| {
        tracing::error!(error = %err, "stored idempotent outcome is unreadable");
        Error::internal()
    })?;
    Ok(Some(answer))
}

/// Records `answer` under `keyed`, unless it is a transient failure (which a retry may turn
/// into something else).
pub fn remember(
    tx: &mut dyn Tx,
    account: AccountId,
    keyed: &Keyed,
    answer: &Result<Outcome>,
) -> Result<()> {
    let remember = match answer {
        Ok(_) => true,
        Err(err) => err.is_final(),
    };
    if !remember {
        return Ok(());
    }
    let outcome = serde_json::to_string(answer).map_err(|err| {
        tracing::error!(error = %err, "cannot encode an outcome");
        Error::internal()
    })?;
    let record = Recorded {
        fingerprint: keyed.fingerprint.clone(),
        outcome,
    };
    let now = tx.now();
    tx.idempotency_put(keyed.scope(account), &record, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_capped_naming_where_they_came_from() {
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES), "clientMessageId").is_ok());
        let err = check_key(&"k".repeat(10 * 1024 * 1024), "x-idempotency-key").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert_eq!(err.context_value("field"), Some("x-idempotency-key"));
        assert_eq!(err.context_value("reason"), Some("tooLong"));
        assert_eq!(err.context_value("limit"), Some("256"));
    }
}
