//! `client.events().expect(…)`: waits until the client's own account did something expected
//! — sent a message matching a pattern in a chat, reacted, renamed a group — reading its
//! event log after a cursor and then live. What counts is
//! [`imgroups_types::expect::Expectation`]'s, the same as `imgroups sim expect` and the
//! console API's `sim:expect`.

use std::time::Duration;

use futures::StreamExt;
use imgroups_types::expect::Observed;
pub use imgroups_types::expect::{Expectation, Kind};

use crate::error::Result;
use crate::events::Events;
use crate::groups::EventFilter;
use crate::resumable::MemoryCheckpoint;
use crate::types::{Change, ChatChange, Event, GroupChange, MessageChange, Reaction};

/// How many of the events read are kept to show when nothing matched.
const SEEN_KEPT: usize = 50;

/// What [`Events::expect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// The first event after the cursor that matched.
    Matched(Event),
    /// Nothing matched within the timeout: the last events read after the cursor (by anyone,
    /// oldest first).
    NotMet {
        /// What the log showed instead.
        seen: Vec<Event>,
    },
}

impl Expected {
    /// The matched event, if any.
    pub fn matched(&self) -> Option<&Event> {
        match self {
            Expected::Matched(event) => Some(event),
            Expected::NotMet { .. } => None,
        }
    }
}

impl Events<'_> {
    /// Waits up to `timeout` until this client's account does something `expectation` asks
    /// for, looking at its log after `after` (0: from the start) and then live. Only the
    /// account's own actions count (events with `is_from_me`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// # let people = ["bob@example.com", "carol@example.com", "dave@example.com"]
    /// #     .map(|a| imgroups_client::Address::parse(a).unwrap());
    /// # let chat = client.chats().create(&people, Default::default()).await?.chat.guid;
    /// use std::time::Duration;
    /// use imgroups_client::expect::{Expectation, Kind};
    ///
    /// client.messages().send_text(&chat, "Welcome, everyone!", Default::default()).await?;
    /// let welcome = Expectation::new(Kind::Message, None, Some("(?i)welcome"))?;
    /// let found = client.events().expect(&welcome, 0, Duration::from_secs(5)).await?;
    /// assert!(found.matched().is_some());
    /// # Ok(()) }
    /// ```
    pub async fn expect(
        &self,
        expectation: &Expectation,
        after: u64,
        timeout: Duration,
    ) -> Result<Expected> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.resumable(EventFilter::all(), MemoryCheckpoint::new(after));
        let mut seen = std::collections::VecDeque::new();
        loop {
            let delivery = match tokio::time::timeout_at(deadline, events.next()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(delivery)) => delivery?,
            };
            let event = delivery.event();
            let chat = event.chat_guid.to_string();
            if observed(event, &chat).is_some_and(|o| expectation.matches(&o)) {
                return Ok(Expected::Matched(event.clone()));
            }
            if seen.len() == SEEN_KEPT {
                seen.pop_front();
            }
            seen.push_back(event.clone());
        }
        Ok(Expected::NotMet { seen: seen.into() })
    }
}

/// The SDK's event as an expectation sees it.
fn observed<'a>(event: &'a Event, chat: &'a str) -> Option<Observed<'a>> {
    let reaction = |r: &'a Reaction| -> Option<&'a str> {
        match r {
            Reaction::Emoji(emoji) => Some(emoji.as_str()),
            other => Some(other.kind()),
        }
    };
    let (kind, text) = match &event.change {
        Change::Message(change) => match change {
            MessageChange::Received { message } => (Kind::Message, message.text.as_deref()),
            MessageChange::Edited { text, .. } => (Kind::Edit, text.as_deref()),
            MessageChange::Unsent { .. } => (Kind::Unsend, None),
            MessageChange::ReactionAdded { reaction: r, .. } => (Kind::Reaction, reaction(r)),
            MessageChange::ReactionRemoved { reaction: r, .. } => (Kind::Unreaction, reaction(r)),
            MessageChange::Read { .. } => return None,
        },
        Change::Group(change) => match change {
            GroupChange::DisplayNameChanged { display_name } => {
                (Kind::Rename, Some(display_name.as_str()))
            }
            GroupChange::ParticipantAdded { participant } => {
                (Kind::Add, Some(participant.address.as_str()))
            }
            GroupChange::ParticipantRemoved { participant } => {
                (Kind::Remove, Some(participant.address.as_str()))
            }
            GroupChange::ParticipantLeft { participant } => {
                (Kind::Leave, Some(participant.address.as_str()))
            }
            GroupChange::IconChanged | GroupChange::IconRemoved => (Kind::Icon, None),
        },
        Change::Chat(change) => match change {
            ChatChange::MarkedRead => (Kind::Read, None),
            ChatChange::BackgroundChanged | ChatChange::BackgroundRemoved => {
                (Kind::Background, None)
            }
            ChatChange::Archived | ChatChange::Unarchived => return None,
        },
    };
    Some(Observed {
        kind,
        chat,
        is_from_me: event.is_from_me,
        text,
    })
}
