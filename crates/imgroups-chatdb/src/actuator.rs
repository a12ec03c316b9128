//! The write side: the actuator port and what it is asked to do.
//!
//! Messages has no API for group changes; something running inside Messages.app has to make
//! them ([`BlueBubblesHelper`] speaks to the BlueBubbles Private API helper, see `bluebubbles`).
//! An actuator only *asks*: [`Actuator::perform`] returns once the helper says it did the
//! action, not once the change is in chat.db. The caller answers its own client only after it
//! has also *observed* the change in chat.db (ack, then observe), so the event and the answer
//! agree.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::db::ChatDb;
use crate::error::{Context, Result};
use crate::guid::ChatGuid;

mod bluebubbles;

#[cfg(feature = "testing")]
pub(crate) use bluebubbles::wire;
pub use bluebubbles::{
    default_port, BlueBubblesHelper, HelperOptions, PeerCheck, ProcessCheck, ADMISSION_WAIT,
    ANSWER_HOLD, BASE_PORT, DEFAULT_TIMEOUT, MAX_HANDSHAKES, MAX_LINE_BYTES, MESSAGES_BUNDLE_ID,
    MESSAGES_EXECUTABLES, WRITE_GAP,
};

/// Performs group changes in Messages.
///
/// Object-safe (`Box<dyn Actuator>`, `Arc<dyn Actuator>`), so the backend can hold "the helper"
/// or "read-only" without knowing which.
#[async_trait]
pub trait Actuator: Send + Sync {
    /// Asks Messages to do `action`; `Ok` once the helper acknowledged it.
    ///
    /// [`ActuatorError::NotConnected`] and [`ActuatorError::Timeout`] leave the outcome
    /// unknown (the helper may have done it and failed to say so): the caller treats them as
    /// retryable and keeps watching chat.db.
    async fn perform(&self, action: &HelperAction) -> Result<(), ActuatorError>;
}

/// Why an action was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActuatorError {
    /// No helper is connected, or its connection dropped before it answered.
    #[error("the Messages helper is not connected")]
    NotConnected,
    /// The helper answered with an error (its own text, e.g. `Chat does not exist!`).
    #[error("the Messages helper rejected the action: {0}")]
    Rejected(String),
    /// The helper did not answer in time. It may still do the action.
    #[error("the Messages helper did not answer in time")]
    Timeout,
}

/// A group chat as an action names it: our normal GUID, and the GUID the helper is sent.
///
/// The helper looks the chat up with one exact `existingChatWithGUID:` (`BlueBubblesHelper.m`
/// `getChat::`), and the BlueBubbles server sends `chat.guid` exactly as chat.db holds it; so
/// the helper GUID is always the `chat` row's own `guid`, `any;+;…` on macOS 15/26 included
/// (Photon's imessage-kit found on macOS 26 that `any;+;<id>` works where `iMessage;+;<id>`
/// fails). Build one with [`ChatDb::helper_chat`] (or [`HelperChat::new`] from the row).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HelperChat {
    /// `None` for a direct chat.
    guid: Option<ChatGuid>,
    helper_guid: String,
    sms: bool,
}

impl HelperChat {
    /// From a `chat` row: `raw_guid` is `chat.guid` (sent as it is), `service_name` is
    /// `chat.service_name`, which says whether the group is an SMS/RCS one.
    pub fn new(guid: ChatGuid, raw_guid: &str, service_name: Option<&str>) -> HelperChat {
        let service = service_name
            .filter(|s| !s.is_empty() && *s != "any")
            .or_else(|| raw_guid.split(';').next());
        let sms = matches!(service, Some("SMS" | "RCS"));
        HelperChat {
            guid: Some(guid),
            helper_guid: raw_guid.to_owned(),
            sms,
        }
    }

    /// A direct chat from its `chat` row (`style` 45): `raw_guid` is `chat.guid`, sent as it
    /// is, as for groups.
    pub fn direct(raw_guid: &str, service_name: Option<&str>) -> HelperChat {
        let mut chat = HelperChat::new(
            ChatGuid::from_identifier("direct").expect("a valid identifier"),
            raw_guid,
            service_name,
        );
        chat.guid = None;
        chat
    }

    /// From the GUID a helper was given (what a fake helper receives): a group GUID, or a
    /// direct chat's (`<service>;-;<address>`). `None` for anything else.
    pub fn from_helper_guid(helper_guid: &str) -> Option<HelperChat> {
        if let Some(guid) = ChatGuid::parse(helper_guid) {
            return Some(HelperChat::new(guid, helper_guid, None));
        }
        let mut parts = helper_guid.splitn(3, ';');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(service), Some("-"), Some(address))
                if !service.is_empty() && !address.is_empty() =>
            {
                Some(HelperChat::direct(helper_guid, None))
            }
            _ => None,
        }
    }

    /// Our normal `any;+;…` GUID; `None` for a direct chat.
    pub fn guid(&self) -> Option<&ChatGuid> {
        self.guid.as_ref()
    }

    /// Whether this is a direct chat.
    pub fn is_direct(&self) -> bool {
        self.guid.is_none()
    }

    /// What the helper is sent as `chatGuid`: `chat.guid`, unchanged.
    pub fn helper_guid(&self) -> &str {
        &self.helper_guid
    }

    /// An SMS or RCS group: the helper acts through the iMessage account only
    /// (`inviteParticipantsToiMessageChat:`, `leaveiMessageGroup`), so such a group cannot be
    /// changed through it.
    pub fn is_sms(&self) -> bool {
        self.sms
    }
}

/// One group change to make, as the helper protocol knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelperAction {
    /// Set the group's display name (`""` clears it).
    Rename {
        chat: HelperChat,
        name: String,
    },
    AddParticipant {
        chat: HelperChat,
        address: String,
    },
    RemoveParticipant {
        chat: HelperChat,
        address: String,
    },
    /// Set the group photo from an image file. The file must be where Messages may read it
    /// (under `~/Library/Messages/Attachments`): the helper copies it into Messages' attachment
    /// store, and when it cannot, it *removes* the photo and still answers success.
    SetIcon {
        chat: HelperChat,
        file: PathBuf,
    },
    RemoveIcon {
        chat: HelperChat,
    },
    /// The account owner leaves the group.
    Leave {
        chat: HelperChat,
    },
    /// Send a text (`send-message`), in a group or a direct chat.
    SendMessage {
        chat: HelperChat,
        text: String,
        subject: Option<String>,
        effect: Option<String>,
        /// The message this one answers (`selectedMessageGuid`, part 0).
        reply_to: Option<String>,
    },
    /// Set or remove a tapback (`send-reaction`): `reaction` is `love`, `like`, `dislike`,
    /// `laugh`, `emphasize` or `question`, with a `-` in front to remove it.
    SendReaction {
        chat: HelperChat,
        message: String,
        reaction: String,
    },
    /// Change the text of my message (`edit-message`, part 0).
    EditMessage {
        chat: HelperChat,
        message: String,
        text: String,
    },
    /// Unsend my message (`unsend-message`, part 0).
    UnsendMessage {
        chat: HelperChat,
        message: String,
    },
    /// Mark everything received in the chat read (`mark-chat-read`).
    MarkChatRead {
        chat: HelperChat,
    },
    /// Show (`start-typing`) or hide (`stop-typing`) my typing indicator in the chat. Transient:
    /// Messages writes nothing to chat.db for it (the helper sets `IMChat.localUserIsTyping`).
    SetTyping {
        chat: HelperChat,
        typing: bool,
    },
}

impl HelperAction {
    /// The chat the action is about.
    pub fn chat(&self) -> &HelperChat {
        match self {
            HelperAction::Rename { chat, .. }
            | HelperAction::AddParticipant { chat, .. }
            | HelperAction::RemoveParticipant { chat, .. }
            | HelperAction::SetIcon { chat, .. }
            | HelperAction::RemoveIcon { chat }
            | HelperAction::Leave { chat }
            | HelperAction::SendMessage { chat, .. }
            | HelperAction::SendReaction { chat, .. }
            | HelperAction::EditMessage { chat, .. }
            | HelperAction::UnsendMessage { chat, .. }
            | HelperAction::MarkChatRead { chat }
            | HelperAction::SetTyping { chat, .. } => chat,
        }
    }
}

impl ChatDb {
    /// The [`HelperChat`] for the direct chat with `address` (a `chat` row of `style` 45 whose
    /// `chat_identifier` is the address): the iMessage row first, then the newest. `None` when
    /// there is none (Messages has never talked with that address on this Mac).
    pub fn direct_helper_chat(&self, address: &str) -> Result<Option<HelperChat>> {
        let s = &self.schema;
        let sql = format!(
            "SELECT c.guid, {service} FROM chat c WHERE c.style = {style} AND ({ident} = ?1 \
             OR c.guid LIKE '%;-;' || ?1) ORDER BY c.ROWID DESC",
            service = s.col("chat", "c", "service_name", "NULL"),
            ident = s.col("chat", "c", "chat_identifier", "NULL"),
            style = crate::conversations::DIRECT_STYLE,
        );
        let mut stmt = self.conn.prepare(&sql).context("finding a direct chat")?;
        let chats = stmt
            .query_map([address], |r| {
                Ok(HelperChat::direct(
                    &r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?.as_deref(),
                ))
            })
            .context("finding a direct chat")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("finding a direct chat")?;
        let imessage = chats.iter().position(|c| !c.is_sms());
        Ok(imessage
            .map(|i| chats[i].clone())
            .or_else(|| chats.into_iter().next()))
    }

    /// Whether the chat's `chat` row (`chat.guid` as the helper is sent it) has recent messages
    /// I received and have not read (`date_read` unset, among the newest
    /// [`UPDATE_WINDOW`](crate::UPDATE_WINDOW) rows): whether marking it read changes what
    /// [`ChatDb::scan_messages`] reads.
    pub fn has_unread(&self, chat: &HelperChat) -> Result<bool> {
        let s = &self.schema;
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM message m \
               JOIN chat_message_join j ON j.message_id = m.ROWID \
               JOIN chat c ON c.ROWID = j.chat_id \
             WHERE c.guid = ?1 AND m.is_from_me = 0 AND m.item_type = 0 \
               AND coalesce({assoc}, 0) = 0 AND coalesce({read}, 0) = 0 \
               AND m.ROWID > (SELECT coalesce(max(ROWID), 0) FROM message) - {window})",
            assoc = s.col("message", "m", "associated_message_type", "0"),
            read = s.col("message", "m", "date_read", "0"),
            window = crate::conversations::UPDATE_WINDOW,
        );
        self.conn
            .query_row(&sql, [chat.helper_guid()], |r| r.get::<_, bool>(0))
            .context("looking for unread messages")
    }

    /// The [`HelperChat`] for a group: among its `chat` rows (in the order [`ChatDb::groups`]
    /// prefers them), the first iMessage one, else the first. `None` when there is no such
    /// group.
    pub fn helper_chat(&self, guid: &ChatGuid) -> Result<Option<HelperChat>> {
        let Some(group) = self.group(guid.as_str())? else {
            return Ok(None);
        };
        let mut chats = Vec::with_capacity(group.chat_rowids.len());
        for (&rowid, raw) in group.chat_rowids.iter().zip(&group.raw_guids) {
            let service: Option<String> = if self.schema.has("chat", "service_name") {
                self.conn
                    .query_row(
                        "SELECT service_name FROM chat WHERE ROWID = ?1",
                        [rowid],
                        |r| r.get(0),
                    )
                    .context("reading chat.service_name")?
            } else {
                None
            };
            chats.push(HelperChat::new(group.guid.clone(), raw, service.as_deref()));
        }
        let imessage = chats.iter().position(|c| !c.is_sms()).unwrap_or(0);
        Ok((!chats.is_empty()).then(|| chats.swap_remove(imessage)))
    }
}
