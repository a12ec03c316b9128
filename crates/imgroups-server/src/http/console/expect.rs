//! `POST /console/api/sim:expect`: waits, up to a timeout, for an account to do something —
//! send a message matching a pattern in a chat, react, rename a group, … — and answers what
//! it did, or what it saw instead. A long poll on the account's durable log: the events after
//! the cursor are read first, then the live subscription every stream uses brings new ones
//! as they commit, so nothing polls and nothing is missed between the two.
//! What counts is [`imgroups_core::expect`]'s, shared with `imgroups sim expect`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use imgroups_core::expect::{Expectation, Kind, SEEN_KEPT};
use imgroups_core::{Error, Event};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, event_json, ok, AdminToken, Reply};
use crate::events::{Filter, Frame, Weighed};
use crate::http::Http;

/// Without `timeoutMs`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a request may wait: a long poll holds a connection and a stream.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectBody {
    #[serde(default)]
    account: String,
    kind: Option<String>,
    chat: Option<String>,
    matching: Option<String>,
    /// A sequence of the account's log, or `"now"`; default 0 (the whole log since the last
    /// reset).
    since: Option<Since>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Since {
    Sequence(u64),
    Word(String),
}

/// Waits for the expected action; answers `{matched: true, event, cursor}` or, once the
/// timeout passed, `{matched: false, seen, cursor}` (`seen`: the last events after `since`,
/// by anyone, oldest first). `cursor` is where the next expectation may start.
pub(super) async fn expect(
    State(h): State<Http>,
    admin: AdminToken,
    req: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    let req: ExpectBody = body(req)?;
    let account = super::account(&h, &req.account)
        .await
        .map_err(|e| e.with("field", "account"))?;
    let kind = match req.kind.as_deref() {
        Some(kind) => Kind::parse(kind)?,
        None => Kind::Any,
    };
    let expectation = Expectation::new(kind, req.chat.as_deref(), req.matching.as_deref())?;
    let after = match req.since {
        None => 0,
        Some(Since::Sequence(n)) => n,
        // The head now; the subscription continues from it.
        Some(Since::Word(word)) if word == "now" => {
            h.admin.events(account, None, 1).await?.bounds.head
        }
        Some(Since::Word(word)) => {
            return Err(Error::invalid(format!(
                "since is a sequence number or \"now\", not {word:?}"
            ))
            .with("field", "since")
            .into())
        }
    };
    let timeout = match req.timeout_ms {
        Some(ms) if Duration::from_millis(ms) > MAX_TIMEOUT => {
            return Err(
                Error::invalid(format!("timeoutMs is at most {}", MAX_TIMEOUT.as_millis()))
                    .with("field", "timeoutMs")
                    .with("limit", MAX_TIMEOUT.as_millis())
                    .into(),
            )
        }
        Some(ms) => Duration::from_millis(ms),
        None => DEFAULT_TIMEOUT,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let queue = h
        .streams
        .subscribe_after(&admin.0, account, Filter::default(), Some(after), weigh)
        .await?;
    let mut frames = std::pin::pin!(crate::events::frames(queue));
    let mut seen: std::collections::VecDeque<Event> = std::collections::VecDeque::new();
    let mut cursor = after;
    loop {
        let frame =
            match tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut frames)).await {
                Err(_elapsed) => break,
                Ok(Some(weighed)) => weighed.frame,
                Ok(None) => return Err(Error::unavailable("the server is shutting down").into()),
            };
        match frame {
            Frame::Event(delivery) => {
                cursor = delivery.sequence;
                if imgroups_core::expect::matches_event(&expectation, &delivery) {
                    return ok(json!({
                        "matched": true,
                        "event": event_json(&delivery),
                        "cursor": cursor,
                    }));
                }
                if seen.len() == SEEN_KEPT {
                    seen.pop_front();
                }
                seen.push_back(delivery.to_event());
            }
            Frame::Heartbeat | Frame::Complete { .. } => {}
            Frame::Failed(err) => return Err(err.into()),
        }
    }
    let seen: Vec<Value> = seen.iter().map(event_json).collect();
    ok(json!({ "matched": false, "seen": seen, "cursor": cursor }))
}

fn weigh(frame: Frame) -> Weighed<Frame> {
    // Taken as soon as it is queued: the weight only needs to be positive.
    Weighed { frame, bytes: 64 }
}
