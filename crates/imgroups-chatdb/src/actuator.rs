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
pub use bluebubbles::{default_port, BlueBubblesHelper, BASE_PORT, DEFAULT_TIMEOUT, WRITE_GAP};

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

/// A group chat as an action names it: our normal GUID, and the GUID the helper must be given.
///
/// The helper looks the chat up with IMCore's `existingChatWithGUID:`, which takes the chat's
/// GUID as Messages knows it, not our `any;+;…` normal form. On macOS 15/26 `chat.guid` itself
/// is `any;+;…`, which IMCore may reject: such a GUID is rewritten with the row's
/// `chat.service_name` (`iMessage;+;…`), as openclaw/imsg does since its fix for issue #54.
/// Build one with [`ChatDb::helper_chat`] (or [`HelperChat::new`] from the row's columns).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HelperChat {
    guid: ChatGuid,
    helper_guid: String,
}

impl HelperChat {
    /// From a `chat` row: `raw_guid` is `chat.guid`, `service_name` is `chat.service_name`.
    /// An `any;` prefix is replaced by the service name when there is one.
    pub fn new(guid: ChatGuid, raw_guid: &str, service_name: Option<&str>) -> HelperChat {
        let helper_guid = match (raw_guid.strip_prefix("any;"), service_name) {
            (Some(rest), Some(service)) if !service.is_empty() && service != "any" => {
                format!("{service};{rest}")
            }
            _ => raw_guid.to_owned(),
        };
        HelperChat { guid, helper_guid }
    }

    /// From the GUID a helper was given (what a fake helper receives). `None` when it is not a
    /// group GUID.
    pub fn from_helper_guid(helper_guid: &str) -> Option<HelperChat> {
        Some(HelperChat {
            guid: ChatGuid::parse(helper_guid)?,
            helper_guid: helper_guid.to_owned(),
        })
    }

    /// Our normal `any;+;…` GUID.
    pub fn guid(&self) -> &ChatGuid {
        &self.guid
    }

    /// What the helper is sent as `chatGuid`.
    pub fn helper_guid(&self) -> &str {
        &self.helper_guid
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
    /// Set the group photo from an image file. The path must be readable by Messages (the
    /// helper copies it into Messages' attachment store).
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
            | HelperAction::Leave { chat } => chat,
        }
    }
}

impl ChatDb {
    /// The [`HelperChat`] for a group, from its preferred `chat` row (the row
    /// [`ChatDb::groups`] takes name and members from). `None` when there is no such group.
    pub fn helper_chat(&self, guid: &ChatGuid) -> Result<Option<HelperChat>> {
        let Some(group) = self.group(guid.as_str())? else {
            return Ok(None);
        };
        let (Some(&rowid), Some(raw)) = (group.chat_rowids.first(), group.raw_guids.first()) else {
            return Ok(None);
        };
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
        Ok(Some(HelperChat::new(
            group.guid.clone(),
            raw,
            service.as_deref(),
        )))
    }
}
