//! Typing indicators: transient, as in iMessage. Kept in memory by the process that was told
//! (never stored, never in the log), so a restart forgets them, and one expires on its own
//! after a minute without a refresh, as Messages hides a stalled indicator — a minute of the
//! store's time, so a controllable clock (`serve --seed`) runs them out too. The console
//! shows them in its conversation view.

use std::collections::HashMap;
use std::sync::Mutex;

use imgroups_core::{Address, ChatGuid, Timestamp};

/// How long an indicator shows without being set again, in nanoseconds.
const EXPIRES_AFTER: i64 = 60 * 1_000_000_000;

/// Whether an indicator set at `since` still shows at `now`.
fn showing(since: Timestamp, now: Timestamp) -> bool {
    now.0.saturating_sub(since.0) < EXPIRES_AFTER
}

/// Who is typing where, by the typist's address and the chat as the typist sees it.
#[derive(Default)]
pub(crate) struct Typing {
    shown: Mutex<HashMap<(Address, ChatGuid), Timestamp>>,
}

impl Typing {
    /// Shows (`on`) or hides `who`'s indicator in `chat` (as `who` sees it), at `now` (the
    /// store's time).
    pub(crate) fn set(&self, who: &Address, chat: &ChatGuid, on: bool, now: Timestamp) {
        // A poisoned lock only means another request panicked mid-update of a map of
        // timestamps: what it holds is still usable.
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        shown.retain(|_, since| showing(*since, now));
        let key = (who.clone(), chat.clone());
        if on {
            shown.insert(key, now);
        } else {
            shown.remove(&key);
        }
    }

    /// Who `viewer` sees typing in `chat` (as `viewer` sees it): in a group, anyone else
    /// typing in it; in a direct chat, the other person typing to `viewer`.
    /// Forgets every indicator (the chats they were shown in are gone after a reset).
    pub(crate) fn clear(&self) {
        self.shown.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn seen_by(
        &self,
        viewer: &Address,
        chat: &ChatGuid,
        now: Timestamp,
    ) -> Vec<Address> {
        let shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        let mut typing: Vec<Address> = shown
            .iter()
            .filter(|(_, since)| showing(**since, now))
            .filter(|((who, at), _)| {
                who != viewer
                    && match chat.kind() {
                        imgroups_core::ChatKind::Group => at == chat,
                        imgroups_core::ChatKind::Direct => {
                            who.as_str() == chat.id() && *at == ChatGuid::direct(viewer)
                        }
                    }
            })
            .map(|((who, _), _)| who.clone())
            .collect();
        typing.sort();
        typing
    }
}
