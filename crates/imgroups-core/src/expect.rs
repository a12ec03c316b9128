//! Assertions on what an account did: the [`Expectation`] itself (its kinds, matching and
//! errors) lives in `imgroups-types`, shared with the Rust SDK; here are the engine's two
//! parts, the view of a log event as an action ([`observed`]) and the wait for one on an
//! account's log ([`wait`]).
//!
//! "What an account did" is an event of its own log with `is_from_me` set: the account acted
//! (from any of its devices, or through the API). What others did in its chats is in the same
//! log with `is_from_me` false and never matches.
//!
//! [`wait`] reads the account's durable log after a cursor and then waits for new events,
//! woken by the store's commit notices — a doorbell, never the events — and re-reading the
//! log every `recheck` in case a notice was lost or cannot come (a tool beside a server hears
//! no notices of the server's commits).

use std::time::Duration;

pub use imgroups_types::expect::{Expectation, Kind, Observed};

use crate::error::Result;
use crate::model::{AccountId, Change, Event};
use crate::port::Store;

/// The view of an event of the log as an action; `None` for changes nobody in particular did
/// (another person reading my message).
pub fn observed<'a>(event: &'a Event, chat: &'a str) -> Option<Observed<'a>> {
    let (kind, text) = match &event.change {
        Change::MessageReceived { message } => (Kind::Message, Some(message.text.as_str())),
        Change::MessageEdited { text, .. } => (Kind::Edit, Some(text.as_str())),
        Change::MessageUnsent { .. } => (Kind::Unsend, None),
        Change::ReactionAdded { reaction, .. } => (Kind::Reaction, Some(reaction_text(reaction))),
        Change::ReactionRemoved { reaction, .. } => {
            (Kind::Unreaction, Some(reaction_text(reaction)))
        }
        Change::MessageRead { .. } => return None,
        Change::ChatMarkedRead => (Kind::Read, None),
        Change::DisplayNameChanged { display_name } => (Kind::Rename, Some(display_name.as_str())),
        Change::ParticipantAdded { participant } => (Kind::Add, Some(participant.as_str())),
        Change::ParticipantRemoved { participant } => (Kind::Remove, Some(participant.as_str())),
        Change::ParticipantLeft { participant } => (Kind::Leave, Some(participant.as_str())),
        Change::IconChanged | Change::IconRemoved => (Kind::Icon, None),
        Change::BackgroundChanged | Change::BackgroundRemoved => (Kind::Background, None),
    };
    Some(Observed {
        kind,
        chat,
        is_from_me: event.is_from_me,
        text,
    })
}

fn reaction_text(reaction: &crate::model::Reaction) -> &str {
    use crate::model::Reaction;
    match reaction {
        Reaction::Love => "love",
        Reaction::Like => "like",
        Reaction::Dislike => "dislike",
        Reaction::Laugh => "laugh",
        Reaction::Emphasize => "emphasize",
        Reaction::Question => "question",
        Reaction::Emoji(emoji) => emoji,
    }
}

/// Whether the event of the log is one of the actions `expectation` expects.
pub fn matches_event(expectation: &Expectation, event: &Event) -> bool {
    let chat = event.chat_guid.to_string();
    observed(event, &chat).is_some_and(|seen| expectation.matches(&seen))
}

/// What [`wait`] found.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The first event after the cursor that matched.
    Matched(Event),
    /// None did before the deadline: the last [`SEEN_KEPT`] events read after the cursor (by
    /// anyone), oldest first, and the cursor the log reached.
    TimedOut { seen: Vec<Event>, cursor: u64 },
}

/// How many of the events read are kept to show when nothing matched.
pub const SEEN_KEPT: usize = 50;

/// Events read from the log at a time.
const PAGE: usize = 500;

/// Waits until the account's log has an event after `after` that `expectation` matches, or
/// `timeout` passed. `after` continues after a reset as any cursor does; a cursor pruned past
/// is `preconditionFailed` (`reason=cursorTooOld`). The log is read first, so an event
/// already there matches at once even with a zero timeout.
pub async fn wait(
    store: &dyn Store,
    account: AccountId,
    expectation: &Expectation,
    after: u64,
    timeout: Duration,
    recheck: Duration,
) -> Result<Verdict> {
    let deadline = tokio::time::Instant::now() + timeout;
    // Listen first, then read: a commit after the read rings the bell.
    let mut notices = store.notices();
    let mut cursor = after;
    let mut seen: std::collections::VecDeque<Event> = std::collections::VecDeque::new();
    loop {
        let bounds = store.log_bounds(account).await?;
        bounds.check_cursor(cursor)?;
        cursor = bounds.start(cursor);
        while cursor < bounds.head {
            let events = store
                .read_events(account, cursor, bounds.head, PAGE)
                .await?;
            let Some(last) = events.last() else { break };
            cursor = last.sequence;
            for event in events {
                if matches_event(expectation, &event) {
                    return Ok(Verdict::Matched(event));
                }
                if seen.len() == SEEN_KEPT {
                    seen.pop_front();
                }
                seen.push_back(event);
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Verdict::TimedOut {
                seen: seen.into(),
                cursor,
            });
        }
        let until = deadline.min(now + recheck);
        // Wake on a notice of this account's log moving past the cursor, at the recheck, or
        // at the deadline; a lagged or closed channel just means reading the log again.
        loop {
            match tokio::time::timeout_at(until, notices.recv()).await {
                Ok(Ok(batch)) => {
                    if batch
                        .iter()
                        .any(|n| n.account == account && n.head > cursor)
                    {
                        break;
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                    tokio::time::sleep_until(until).await;
                    break;
                }
                Err(_elapsed) => break,
            }
        }
    }
}
