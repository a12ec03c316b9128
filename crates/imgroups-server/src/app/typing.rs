//! Typing indicators: transient, as in iMessage. Kept in memory by the process that was told
//! (never stored, never in the log), so a restart forgets them, and one expires on its own
//! after a minute without a refresh, as Messages hides a stalled indicator. The console shows
//! them in its conversation view.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use imgroups_core::{Address, ChatGuid};

/// How long an indicator shows without being set again.
const EXPIRES_AFTER: Duration = Duration::from_secs(60);

/// Who is typing where, by the typist's address and the chat as the typist sees it.
#[derive(Default)]
pub(crate) struct Typing {
    shown: Mutex<HashMap<(Address, ChatGuid), Instant>>,
}

impl Typing {
    /// Shows (`on`) or hides `who`'s indicator in `chat` (as `who` sees it).
    pub(crate) fn set(&self, who: &Address, chat: &ChatGuid, on: bool) {
        // A poisoned lock only means another request panicked mid-update of a map of
        // timestamps: what it holds is still usable.
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        shown.retain(|_, since| since.elapsed() < EXPIRES_AFTER);
        let key = (who.clone(), chat.clone());
        if on {
            shown.insert(key, Instant::now());
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

    pub(crate) fn seen_by(&self, viewer: &Address, chat: &ChatGuid) -> Vec<Address> {
        let shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        let mut typing: Vec<Address> = shown
            .iter()
            .filter(|(_, since)| since.elapsed() < EXPIRES_AFTER)
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
