//! The engine: turns a validated [`Command`] into a decision against current state, applies it
//! through a [`Tx`] and records the resulting events for every account that can see the group.
//!
//! Validation happens in two steps. Constructors (`Command::set_display_name`, …) check
//! everything that depends only on the request, so malformed input never reaches storage;
//! [`execute`] checks everything that depends on state, inside the write transaction, so the
//! check and the change are atomic.
//!
//! Every rule is checked before the first write (see [`crate::port`]): in each arm of
//! [`execute`] all the `return Err(..)`s come before any `tx` call that writes.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::ids::{Address, ChatGuid, ChatKind};
use crate::image;
use crate::model::{AccountId, Change, Chat, InitialMessage, Message, Outcome, Timestamp};
use crate::port::{GroupRow, NewEvent, Reader, Tx};

/// An iMessage group holds at most this many members, the local account included.
pub const MAX_GROUP_MEMBERS: usize = 32;
/// Longest display name accepted, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
/// Removal needs at least this many other participants before it…
const MIN_OTHERS_TO_REMOVE: usize = 3;
/// …and must leave at least this many.
const MIN_OTHERS_AFTER_REMOVE: usize = 2;
/// Leaving needs at least this many other participants.
const MIN_OTHERS_TO_LEAVE: usize = 3;

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
    SetDisplayName {
        chat: ChatGuid,
        name: String,
    },
    AddParticipants {
        chat: ChatGuid,
        addresses: Vec<Address>,
    },
    RemoveParticipants {
        chat: ChatGuid,
        addresses: Vec<Address>,
    },
    Leave {
        chat: ChatGuid,
    },
    SetIcon {
        chat: ChatGuid,
        data: Vec<u8>,
        mime: String,
    },
    RemoveIcon {
        chat: ChatGuid,
    },
    CreateChat {
        addresses: Vec<Address>,
        message: Option<InitialMessage>,
    },
}

impl Command {
    pub fn set_display_name(chat: &str, name: &str) -> Result<Self> {
        let chat = group_guid(chat)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(
                Error::invalid("display name must not be empty").with("field", "displayName")
            );
        }
        if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(Error::invalid(format!(
                "display name is longer than {MAX_DISPLAY_NAME_CHARS} characters"
            ))
            .with("field", "displayName")
            .with("reason", "tooLong")
            .with("limit", MAX_DISPLAY_NAME_CHARS));
        }
        Ok(Command::SetDisplayName {
            chat,
            name: name.to_owned(),
        })
    }

    pub fn add_participants(chat: &str, addresses: &[String]) -> Result<Self> {
        Ok(Command::AddParticipants {
            chat: group_guid(chat)?,
            addresses: Address::parse_list(addresses)?,
        })
    }

    pub fn remove_participants(chat: &str, addresses: &[String]) -> Result<Self> {
        Ok(Command::RemoveParticipants {
            chat: group_guid(chat)?,
            addresses: Address::parse_list(addresses)?,
        })
    }

    pub fn leave(chat: &str) -> Result<Self> {
        Ok(Command::Leave {
            chat: group_guid(chat)?,
        })
    }

    pub fn set_icon(chat: &str, data: Vec<u8>, limits: &Limits) -> Result<Self> {
        let chat = group_guid(chat)?;
        if data.len() > limits.max_icon_bytes {
            return Err(Error::invalid(format!(
                "icon is larger than {} bytes",
                limits.max_icon_bytes
            ))
            .with("field", "data")
            .with("reason", "tooLarge")
            .with("limit", limits.max_icon_bytes));
        }
        let kind = image::sniff(&data)?;
        Ok(Command::SetIcon {
            chat,
            data,
            mime: kind.mime().to_owned(),
        })
    }

    pub fn remove_icon(chat: &str) -> Result<Self> {
        Ok(Command::RemoveIcon {
            chat: group_guid(chat)?,
        })
    }

    pub fn create_chat(addresses: &[String], message: Option<InitialMessage>) -> Result<Self> {
        let addresses = Address::parse_list(addresses)?;
        if addresses.len() >= MAX_GROUP_MEMBERS {
            return Err(Error::precondition(
                "groupFull",
                format!("a group holds at most {MAX_GROUP_MEMBERS} members including you"),
            )
            .with("limit", MAX_GROUP_MEMBERS));
        }
        Ok(Command::CreateChat { addresses, message })
    }

    /// The RPC this command came from; idempotency keys are scoped to it.
    pub fn method(&self) -> &'static str {
        match self {
            Command::SetDisplayName { .. } => "SetDisplayName",
            Command::AddParticipants { .. } => "AddParticipants",
            Command::RemoveParticipants { .. } => "RemoveParticipants",
            Command::Leave { .. } => "LeaveGroup",
            Command::SetIcon { .. } => "SetIcon",
            Command::RemoveIcon { .. } => "RemoveIcon",
            Command::CreateChat { .. } => "CreateChat",
        }
    }

    /// A digest of the normalised request, so that a reused idempotency key can be told apart
    /// from a genuine retry.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        field(self.method().as_bytes());
        match self {
            Command::SetDisplayName { chat, name } => {
                field(chat.to_string().as_bytes());
                field(name.as_bytes());
            }
            Command::AddParticipants { chat, addresses }
            | Command::RemoveParticipants { chat, addresses } => {
                field(chat.to_string().as_bytes());
                addresses.iter().for_each(|a| field(a.as_str().as_bytes()));
            }
            Command::Leave { chat } | Command::RemoveIcon { chat } => {
                field(chat.to_string().as_bytes())
            }
            Command::SetIcon { chat, data, .. } => {
                field(chat.to_string().as_bytes());
                field(&Sha256::digest(data));
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

/// Parses a GUID for a group method: a direct chat is refused before anything is read.
fn group_guid(input: &str) -> Result<ChatGuid> {
    let guid = ChatGuid::parse(input)?;
    guid.require_group()?;
    Ok(guid)
}

/// Applies one command as `account` at commit time `now`.
pub fn execute<T: Tx>(
    tx: &mut T,
    account: AccountId,
    now: Timestamp,
    command: &Command,
) -> Result<Outcome> {
    let me = tx.account_address(account)?;
    match command {
        Command::SetDisplayName { chat, name } => {
            let (mut group, members) = visible_group(tx, &me, chat)?;
            if group.display_name.as_deref() != Some(name.as_str()) {
                tx.set_display_name(group.key, name)?;
                group.display_name = Some(name.clone());
                let change = Change::DisplayNameChanged {
                    display_name: name.clone(),
                };
                record(tx, now, chat, &me, &members, &[change])?;
            }
            Ok(Outcome::Chat(group_view(&me, &group, &members)))
        }
        Command::AddParticipants { chat, addresses } => {
            let (group, mut members) = visible_group(tx, &me, chat)?;
            for address in addresses {
                if tx.is_unreachable(address)? {
                    return Err(address_not_found(address));
                }
            }
            for address in addresses {
                if members.contains(address) {
                    return Err(Error::precondition(
                        "alreadyParticipant",
                        format!("{address} is already in the group"),
                    )
                    .with("address", address)
                    .with("chatguid", chat));
                }
            }
            if members.len() + addresses.len() > MAX_GROUP_MEMBERS {
                return Err(group_full().with("chatguid", chat));
            }
            for address in addresses {
                tx.add_member(group.key, address)?;
                members.push(address.clone());
            }
            let changes: Vec<Change> = addresses
                .iter()
                .map(|a| Change::ParticipantAdded {
                    participant: a.clone(),
                })
                .collect();
            record(tx, now, chat, &me, &members, &changes)?;
            Ok(Outcome::Chat(group_view(&me, &group, &members)))
        }
        Command::RemoveParticipants { chat, addresses } => {
            let (group, members) = visible_group(tx, &me, chat)?;
            if addresses.contains(&me) {
                return Err(Error::precondition(
                    "useLeave",
                    "you cannot remove yourself; leave the group instead",
                )
                .with("address", &me)
                .with("chatguid", chat));
            }
            for address in addresses {
                if !members.contains(address) {
                    return Err(Error::precondition(
                        "notParticipant",
                        format!("{address} is not in the group"),
                    )
                    .with("address", address)
                    .with("chatguid", chat));
                }
            }
            let others = members.len() - 1;
            if others < MIN_OTHERS_TO_REMOVE || others - addresses.len() < MIN_OTHERS_AFTER_REMOVE {
                return Err(Error::precondition(
                    "groupTooSmall",
                    format!(
                        "removal needs at least {MIN_OTHERS_TO_REMOVE} other participants and must leave at least {MIN_OTHERS_AFTER_REMOVE}"
                    ),
                )
                .with("chatguid", chat)
                .with("limit", MIN_OTHERS_AFTER_REMOVE));
            }
            let changes: Vec<Change> = addresses
                .iter()
                .map(|a| Change::ParticipantRemoved {
                    participant: a.clone(),
                })
                .collect();
            // The removed still see their own removal: the audience is the group before.
            record(tx, now, chat, &me, &members, &changes)?;
            for address in addresses {
                tx.remove_member(group.key, address)?;
            }
            let remaining: Vec<Address> = members
                .into_iter()
                .filter(|m| !addresses.contains(m))
                .collect();
            Ok(Outcome::Chat(group_view(&me, &group, &remaining)))
        }
        Command::Leave { chat } => {
            let (group, members) = visible_group(tx, &me, chat)?;
            if members.len() - 1 < MIN_OTHERS_TO_LEAVE {
                return Err(Error::precondition(
                    "groupTooSmall",
                    format!("leaving needs at least {MIN_OTHERS_TO_LEAVE} other participants"),
                )
                .with("chatguid", chat)
                .with("limit", MIN_OTHERS_TO_LEAVE));
            }
            let change = Change::ParticipantLeft {
                participant: me.clone(),
            };
            record(tx, now, chat, &me, &members, &[change])?;
            tx.remove_member(group.key, &me)?;
            Ok(Outcome::Empty)
        }
        Command::SetIcon { chat, data, mime } => {
            let (group, members) = visible_group(tx, &me, chat)?;
            let hash = Sha256::digest(data).to_vec();
            if group.icon_hash.as_deref() != Some(hash.as_slice()) {
                tx.set_icon(group.key, data, mime, &hash)?;
                record(tx, now, chat, &me, &members, &[Change::IconChanged])?;
            }
            Ok(Outcome::Empty)
        }
        Command::RemoveIcon { chat } => {
            let (group, members) = visible_group(tx, &me, chat)?;
            if group.icon_hash.is_some() {
                tx.clear_icon(group.key)?;
                record(tx, now, chat, &me, &members, &[Change::IconRemoved])?;
            }
            Ok(Outcome::Empty)
        }
        Command::CreateChat { addresses, message } => {
            create_chat(tx, account, &me, now, addresses, message.as_ref())
        }
    }
}

fn create_chat<T: Tx>(
    tx: &mut T,
    account: AccountId,
    me: &Address,
    now: Timestamp,
    addresses: &[Address],
    message: Option<&InitialMessage>,
) -> Result<Outcome> {
    for address in addresses {
        if tx.is_unreachable(address)? {
            return Err(address_not_found(address));
        }
    }
    let chat = if let [other] = addresses {
        if other == me {
            return Err(
                Error::invalid("you cannot start a direct chat with yourself")
                    .with("field", "addresses")
                    .with("address", other),
            );
        }
        tx.ensure_direct_chat(account, other, now)?;
        direct_view(other)
    } else {
        if addresses.contains(me) {
            return Err(Error::precondition(
                "alreadyParticipant",
                "you are always a member of the groups you create",
            )
            .with("address", me));
        }
        match existing_group(tx, me, addresses)? {
            Some((group, members)) => group_view(me, &group, &members),
            None => new_group(tx, me, now, addresses)?,
        }
    };
    let message = match message {
        Some(initial) => {
            let message = Message {
                guid: uuid::Uuid::new_v4().to_string().to_uppercase(),
                text: initial.text.clone(),
                subject: initial.subject.clone(),
                date_created: now,
                is_from_me: true,
                is_sent: true,
            };
            tx.insert_message(account, &chat.guid.to_string(), &message)?;
            Some(message)
        }
        None => None,
    };
    Ok(Outcome::Created { chat, message })
}

/// Like Messages.app: creating a group whose members equal a group I can see resolves to it.
fn existing_group<T: Tx>(
    tx: &mut T,
    me: &Address,
    wanted: &[Address],
) -> Result<Option<(GroupRow, Vec<Address>)>> {
    let mut wanted_sorted = wanted.to_vec();
    wanted_sorted.sort();
    let mut everyone = Vec::with_capacity(wanted.len() + 1);
    everyone.push(me.clone());
    everyone.extend_from_slice(wanted);
    for group in tx.groups_with_all(&everyone)? {
        let members = tx.members(group.key)?;
        let mut others: Vec<Address> = members.iter().filter(|m| *m != me).cloned().collect();
        others.sort();
        if others == wanted_sorted {
            return Ok(Some((group, members)));
        }
    }
    Ok(None)
}

fn new_group<T: Tx>(tx: &mut T, me: &Address, now: Timestamp, others: &[Address]) -> Result<Chat> {
    let group_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let (key, identifier) = loop {
        let identifier = format!(
            "chat{:018}",
            rand::rng().random_range(0..1_000_000_000_000_000_000u64)
        );
        if let Some(key) = tx.create_group(&identifier, &group_id, now)? {
            break (key, identifier);
        }
    };
    let mut members = Vec::with_capacity(others.len() + 1);
    for address in std::iter::once(me).chain(others) {
        tx.add_member(key, address)?;
        members.push(address.clone());
    }
    let guid = ChatGuid::group(&identifier);
    // Creation is not an event for the creator; every other account learns it was added.
    let guid_text = guid.to_string();
    for (account, address) in tx.accounts_for(others)? {
        let change = Change::ParticipantAdded {
            participant: address.clone(),
        };
        tx.append_event(
            account,
            NewEvent {
                chat_guid: &guid_text,
                occurred_at: now,
                is_from_me: false,
                actor: Some(me),
                change: &change,
            },
        )?;
    }
    let group = GroupRow {
        key,
        identifier,
        group_id,
        display_name: None,
        icon_hash: None,
    };
    Ok(group_view(me, &group, &members))
}

/// Appends `changes` to the log of every account in `audience` (the members who can see the
/// change), `isFromMe` only for the actor's own account.
fn record<T: Tx>(
    tx: &mut T,
    now: Timestamp,
    chat: &ChatGuid,
    actor: &Address,
    audience: &[Address],
    changes: &[Change],
) -> Result<()> {
    let guid = chat.to_string();
    for (account, address) in tx.accounts_for(audience)? {
        for change in changes {
            tx.append_event(
                account,
                NewEvent {
                    chat_guid: &guid,
                    occurred_at: now,
                    is_from_me: &address == actor,
                    actor: Some(actor),
                    change,
                },
            )?;
        }
    }
    Ok(())
}

/// The group behind `chat` with its members, if `me` can see it.
fn visible_group<R: Reader>(
    r: &mut R,
    me: &Address,
    chat: &ChatGuid,
) -> Result<(GroupRow, Vec<Address>)> {
    let identifier = chat.require_group()?;
    let group = r
        .group(identifier)?
        .ok_or_else(|| Error::chat_not_found(chat))?;
    let members = r.members(group.key)?;
    if !members.contains(me) {
        return Err(Error::chat_not_found(chat));
    }
    Ok((group, members))
}

fn group_view(me: &Address, group: &GroupRow, members: &[Address]) -> Chat {
    Chat {
        guid: ChatGuid::group(&group.identifier),
        chat_identifier: group.identifier.clone(),
        group_id: Some(group.group_id.clone()),
        display_name: group.display_name.clone(),
        is_group: true,
        participants: members.iter().filter(|m| *m != me).cloned().collect(),
    }
}

fn direct_view(other: &Address) -> Chat {
    Chat {
        guid: ChatGuid::direct(other),
        chat_identifier: other.to_string(),
        group_id: None,
        display_name: None,
        is_group: false,
        participants: vec![other.clone()],
    }
}

fn address_not_found(address: &Address) -> Error {
    Error::new(
        ErrorKind::AddressNotFound,
        format!("{address} is not reachable on imessage"),
    )
    .with("address", address)
}

fn group_full() -> Error {
    Error::precondition(
        "groupFull",
        format!("a group holds at most {MAX_GROUP_MEMBERS} members including you"),
    )
    .with("limit", MAX_GROUP_MEMBERS)
}

/// Read-side operations: answered from a snapshot, never from a write transaction.
pub mod query {
    use super::*;

    pub fn get_chat<R: Reader>(r: &mut R, account: AccountId, chat: &str) -> Result<Chat> {
        let chat = ChatGuid::parse(chat)?;
        let me = r.account_address(account)?;
        match chat.kind() {
            ChatKind::Group => {
                let (group, members) = visible_group(r, &me, &chat)?;
                Ok(group_view(&me, &group, &members))
            }
            ChatKind::Direct => {
                let other = Address::parse(chat.id()).map_err(|_| Error::chat_not_found(&chat))?;
                if r.has_direct_chat(account, &other)? {
                    Ok(direct_view(&other))
                } else {
                    Err(Error::chat_not_found(&chat))
                }
            }
        }
    }

    /// The icon's bytes and MIME type.
    pub fn get_icon<R: Reader>(
        r: &mut R,
        account: AccountId,
        chat: &str,
    ) -> Result<(Vec<u8>, String)> {
        let chat = group_guid(chat)?;
        let me = r.account_address(account)?;
        let (group, _) = visible_group(r, &me, &chat)?;
        r.icon(group.key)?.ok_or_else(|| {
            Error::new(
                ErrorKind::GroupIconNotFound,
                format!("group {chat} has no custom icon"),
            )
            .with("chatguid", &chat)
        })
    }

    /// Chats visible to the account. Nothing is archived in the simulator, so
    /// `include_archived` does not change the answer.
    pub fn count_chats<R: Reader>(r: &mut R, account: AccountId) -> Result<u64> {
        let me = r.account_address(account)?;
        let groups = r.groups_of(&me)?.len() as u64;
        Ok(groups + r.count_direct_chats(account)?)
    }
}
