//! Writes as the engine receives them: validated against everything that does not depend on
//! state, so malformed input never reaches a store or a backend.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Reason, Result};
use crate::ids::{Address, ChatGuid};
use crate::image;
use crate::model::InitialMessage;

/// An iMessage group holds at most this many members, the local account included.
pub const MAX_GROUP_MEMBERS: usize = 32;
/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;

/// Limits that operators may configure.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_icon_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_icon_bytes: 10 * 1024 * 1024,
        }
    }
}

/// A write, validated against everything that does not depend on state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A change to an existing group.
    Group { chat: ChatGuid, mutation: Mutation },
    /// `chats.create`: a direct chat with one address, or a group with two or more.
    CreateChat {
        addresses: Vec<Address>,
        message: Option<InitialMessage>,
    },
}

/// One change to a group's state, by whoever makes it: an account through the API, a person
/// in the simulated network, or someone on a real device whose change was observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    SetDisplayName(String),
    AddParticipants(Vec<Address>),
    RemoveParticipants(Vec<Address>),
    /// The actor leaves.
    Leave,
    /// A new icon: build it with [`Mutation::set_icon`].
    SetIcon {
        data: Vec<u8>,
        /// Detected from the bytes.
        mime: String,
        /// SHA-256 of `data`, computed once, outside the store's transaction.
        hash: Vec<u8>,
    },
    RemoveIcon,
}

impl Mutation {
    /// A new icon: the type is detected from the bytes (never trusted from a caller), and a
    /// truncated or unknown image is refused.
    pub fn set_icon(data: Vec<u8>) -> Result<Self> {
        let mime = image::sniff(&data)?.mime().to_owned();
        let hash = Sha256::digest(&data).to_vec();
        Ok(Mutation::SetIcon { data, mime, hash })
    }

    /// The RPC that makes this change; idempotency keys are scoped to it.
    pub fn method(&self) -> &'static str {
        match self {
            Mutation::SetDisplayName(_) => "SetDisplayName",
            Mutation::AddParticipants(_) => "AddParticipants",
            Mutation::RemoveParticipants(_) => "RemoveParticipants",
            Mutation::Leave => "LeaveGroup",
            Mutation::SetIcon { .. } => "SetIcon",
            Mutation::RemoveIcon => "RemoveIcon",
        }
    }
}

impl Command {
    pub fn set_display_name(chat: &str, name: &str) -> Result<Self> {
        let chat = group_guid(chat)?;
        Ok(Self::group(
            chat,
            Mutation::SetDisplayName(display_name(name)?),
        ))
    }

    pub fn add_participants(chat: &str, addresses: &[String]) -> Result<Self> {
        let chat = group_guid(chat)?;
        let addresses = Address::parse_list(addresses)?;
        Ok(Self::group(chat, Mutation::AddParticipants(addresses)))
    }

    pub fn remove_participants(chat: &str, addresses: &[String]) -> Result<Self> {
        let chat = group_guid(chat)?;
        let addresses = Address::parse_list(addresses)?;
        Ok(Self::group(chat, Mutation::RemoveParticipants(addresses)))
    }

    pub fn leave(chat: &str) -> Result<Self> {
        Ok(Self::group(group_guid(chat)?, Mutation::Leave))
    }

    pub fn set_icon(chat: &str, data: Vec<u8>, limits: &Limits) -> Result<Self> {
        let chat = group_guid(chat)?;
        if data.len() > limits.max_icon_bytes {
            return Err(Error::invalid(format!(
                "icon is larger than {} bytes",
                limits.max_icon_bytes
            ))
            .with("field", "data")
            .because(Reason::TooLarge)
            .with("limit", limits.max_icon_bytes));
        }
        Ok(Self::group(chat, Mutation::set_icon(data)?))
    }

    pub fn remove_icon(chat: &str) -> Result<Self> {
        Ok(Self::group(group_guid(chat)?, Mutation::RemoveIcon))
    }

    pub fn create_chat(addresses: &[String], message: Option<InitialMessage>) -> Result<Self> {
        let addresses = Address::parse_list(addresses)?;
        if addresses.len() >= MAX_GROUP_MEMBERS {
            return Err(crate::engine::group_full());
        }
        Ok(Command::CreateChat { addresses, message })
    }

    fn group(chat: ChatGuid, mutation: Mutation) -> Self {
        Command::Group { chat, mutation }
    }

    /// The RPC this command came from; idempotency keys are scoped to it.
    pub fn method(&self) -> &'static str {
        match self {
            Command::Group { mutation, .. } => mutation.method(),
            Command::CreateChat { .. } => "CreateChat",
        }
    }

    /// A digest of the normalised request, so that a reused idempotency key can be told apart
    /// from a genuine retry. Stored with each key: changing what goes in (or its order) would
    /// turn retries of requests made before an upgrade into `duplicateMessage`.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(self.method().as_bytes());
        match self {
            Command::Group { chat, mutation } => {
                field(chat.to_string().as_bytes());
                match mutation {
                    Mutation::SetDisplayName(name) => field(name.as_bytes()),
                    Mutation::AddParticipants(addresses)
                    | Mutation::RemoveParticipants(addresses) => {
                        addresses.iter().for_each(|a| field(a.as_str().as_bytes()))
                    }
                    Mutation::Leave | Mutation::RemoveIcon => {}
                    Mutation::SetIcon { hash, .. } => field(hash),
                }
            }
            Command::CreateChat { addresses, message } => {
                addresses.iter().for_each(|a| field(a.as_str().as_bytes()));
                if let Some(m) = message {
                    field(m.text.as_bytes());
                    field(m.subject.as_deref().unwrap_or("\0none").as_bytes());
                    field(m.effect_id.as_deref().unwrap_or("\0none").as_bytes());
                }
            }
        }
        hash.finalize().to_vec()
    }
}

/// A display name as stored: trimmed, not empty, not too long.
fn display_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid("display name must not be empty").with("field", "displayName"));
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(Error::invalid(format!(
            "display name is longer than {MAX_DISPLAY_NAME_CHARS} characters"
        ))
        .with("field", "displayName")
        .because(Reason::TooLong)
        .with("limit", MAX_DISPLAY_NAME_CHARS));
    }
    Ok(name.to_owned())
}

/// Parses a GUID for a group method: a direct chat is refused before anything is read.
pub(crate) fn group_guid(input: &str) -> Result<ChatGuid> {
    let guid = ChatGuid::parse(input)?;
    guid.require_group()?;
    Ok(guid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint is stored with idempotency keys, so it must not drift: these digests
    /// were computed by the code that wrote the records a running server may still hold.
    #[test]
    fn fingerprints_are_stable() {
        let rename = Command::set_display_name("any;+;chat1", " Weekend ").unwrap();
        let leave = Command::leave("iMessage;+;chat1").unwrap();
        assert_eq!(
            hex(&rename.fingerprint()),
            "5355af3d044bc5acb8878980615449af2e55b4f9882a259c52487c51af22868e"
        );
        assert_ne!(rename.fingerprint(), leave.fingerprint());
        assert_eq!(
            leave.fingerprint(),
            Command::leave("any;+;chat1").unwrap().fingerprint()
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
