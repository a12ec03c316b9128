//! The rules, applied inside one write transaction: a validated [`Command`] (or an observed
//! change) is checked against current state and recorded through the [`Tx`] — state and the
//! events of every account that can see the group. On a recorded network (the simulator)
//! recording is all there is to it; on an observed one (a Mac), [`decide`] checks without
//! recording and the change is recorded when the network is seen to make it ([`ingest`]).
//!
//! Validation happens in two steps. [`Command`]'s constructors check everything that depends
//! only on the request, so malformed input never reaches storage; [`execute`] checks everything
//! that depends on state, inside the write transaction, so the check and the change are atomic.
//!
//! Every rule is checked before the first write (see [`crate::port::tx`]): `check` runs
//! before `apply` writes anything.
//!
//! Our own writes ([`execute`]) and changes made by someone else ([`ingest`]) are recorded by
//! the same `apply`, so both produce the same events for the same audience.

use std::borrow::Cow;

use crate::command::{group_full, Command, Mutation, MAX_GROUP_MEMBERS};
use crate::error::{Error, ErrorKind, Reason, Result};
use crate::ids::{Address, ChatGuid, ChatKind};
use crate::model::{AccountId, Change, Chat, InitialMessage, Outcome, Timestamp};
use crate::port::backend::RecordedNetwork;
use crate::port::tx::{GroupRow, NewEvent, Reader, Tx};

/// Removal needs at least this many other participants before it…
const MIN_OTHERS_TO_REMOVE: usize = 3;
/// …and must leave at least this many.
const MIN_OTHERS_AFTER_REMOVE: usize = 2;
/// Leaving needs at least this many other participants.
const MIN_OTHERS_TO_LEAVE: usize = 3;

/// A change to a group made by someone else, outside this server: a person in the simulated
/// network, or someone on a real device whose change was observed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub chat: ChatGuid,
    /// Who made it (for [`Mutation::Leave`], who left).
    pub actor: Address,
    /// When it happened; `None`: now.
    pub occurred_at: Option<Timestamp>,
    pub mutation: Mutation,
}

/// Which checks an observed change goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Checked like our own writes, with the same errors: the simulated network holds its
    /// people to iMessage's rules (a non-member cannot act, a group keeps its minimum size…).
    Enforce,
    /// It has happened: record whatever part of it is not already reflected.
    Trust,
}

/// Applies `command` as `account` on a recorded network.
pub fn execute(
    tx: &mut dyn Tx,
    network: &dyn RecordedNetwork,
    account: AccountId,
    command: &Command,
) -> Result<Outcome> {
    let me = tx.account_address(account)?;
    let now = tx.now();
    match command {
        Command::Group { chat, mutation } => {
            let (mut group, members) = visible_group(tx, &me, chat)?;
            check(tx, Some(network), &me, chat, &members, mutation)?;
            let members = match effective(&group, &members, &me, mutation) {
                Some(change) => apply(tx, chat, &mut group, members, &me, now, &change)?,
                None => members,
            };
            Ok(match mutation {
                Mutation::SetDisplayName(_)
                | Mutation::AddParticipants(_)
                | Mutation::RemoveParticipants(_) => {
                    Outcome::Chat(group_view(&me, &group, &members))
                }
                Mutation::Leave | Mutation::SetIcon { .. } | Mutation::RemoveIcon => Outcome::Empty,
            })
        }
        Command::CreateChat { addresses, message } => {
            create_chat(tx, network, account, &me, now, addresses, message.as_ref())
        }
        Command::Message { chat, op } => super::messages::execute(tx, network, &me, chat, op),
    }
}

/// A change an account asked for, checked and reduced to what it changes: for an observed
/// network, which carries changes out itself ([`crate::port::ObservedNetwork`]).
#[derive(Debug, Clone)]
pub struct Decision {
    pub chat: ChatGuid,
    /// The account's address: who makes the change.
    pub actor: Address,
    pub mutation: Mutation,
}

/// Checks `command` as `account` exactly as [`execute`] would, changing nothing, and returns
/// the part of it that changes something (`None`: the state already says so). Whether an
/// added address can be reached is the observed network's to say when it carries the change
/// out. Creating chats is not something an observed network does here: `operationNotSupported`.
pub fn decide(tx: &mut dyn Tx, account: AccountId, command: &Command) -> Result<Option<Decision>> {
    let me = tx.account_address(account)?;
    match command {
        Command::Group { chat, mutation } => {
            let (group, members) = visible_group(tx, &me, chat)?;
            check(tx, None, &me, chat, &members, mutation)?;
            Ok(
                effective(&group, &members, &me, mutation).map(|change| Decision {
                    chat: chat.clone(),
                    actor: me.clone(),
                    mutation: change.into_owned(),
                }),
            )
        }
        Command::CreateChat { .. } => Err(Error::not_supported(
            "creating chats is not supported on this backend: create the group in Messages",
        )),
        Command::Message { .. } => Err(Error::not_supported(
            "messages are not served on this backend yet: only group changes are",
        )),
    }
}

/// Records `observed` in the log of every local account that can see the group, with the same
/// events our own write of that change would have produced. `network`: on a recorded network,
/// what [`Checks::Enforce`] asks whether an added address can be reached; `None` on an observed
/// one, whose own record is all there is to go by.
pub fn ingest(
    tx: &mut dyn Tx,
    network: Option<&dyn RecordedNetwork>,
    observed: &Observed,
    checks: Checks,
) -> Result<()> {
    let Observed {
        chat,
        actor,
        occurred_at,
        mutation,
    } = observed;
    let at = occurred_at.unwrap_or_else(|| tx.now());
    let (mut group, members) = match checks {
        Checks::Enforce => {
            let (group, members) = visible_group(tx, actor, chat)?;
            check(tx, network, actor, chat, &members, mutation)?;
            (group, members)
        }
        Checks::Trust => {
            let identifier = chat.require_group()?;
            let group = tx
                .group(identifier)?
                .ok_or_else(|| Error::chat_not_found(chat))?;
            let members = tx.members(group.key)?;
            (group, members)
        }
    };
    if let Some(change) = effective(&group, &members, actor, mutation) {
        apply(tx, chat, &mut group, members, actor, at, &change)?;
    }
    Ok(())
}

/// Every rule a change by `me` must pass, given the group's current `members`. Whether an
/// added address can be reached is asked of `network`, a recorded network; an observed one
/// (`None`) refuses an unreachable address itself, when it carries the change out.
fn check(
    tx: &mut dyn Tx,
    network: Option<&dyn RecordedNetwork>,
    me: &Address,
    chat: &ChatGuid,
    members: &[Address],
    mutation: &Mutation,
) -> Result<()> {
    match mutation {
        Mutation::SetDisplayName(_) | Mutation::SetIcon { .. } | Mutation::RemoveIcon => Ok(()),
        Mutation::AddParticipants(addresses) => {
            if let Some(network) = network {
                for address in addresses {
                    network.reachable(tx, address)?;
                }
            }
            for address in addresses {
                if members.contains(address) {
                    return Err(Error::precondition(
                        Reason::AlreadyParticipant,
                        format!("{address} is already in the group"),
                    )
                    .with("address", address)
                    .with("chatguid", chat));
                }
            }
            if members.len() + addresses.len() > MAX_GROUP_MEMBERS {
                return Err(group_full().with("chatguid", chat));
            }
            Ok(())
        }
        Mutation::RemoveParticipants(addresses) => {
            if addresses.contains(me) {
                return Err(Error::precondition(
                    Reason::UseLeave,
                    "you cannot remove yourself; leave the group instead",
                )
                .with("address", me)
                .with("chatguid", chat));
            }
            for address in addresses {
                if !members.contains(address) {
                    return Err(Error::precondition(
                        Reason::NotParticipant,
                        format!("{address} is not in the group"),
                    )
                    .with("address", address)
                    .with("chatguid", chat));
                }
            }
            let others = members.len() - 1;
            if others < MIN_OTHERS_TO_REMOVE || others - addresses.len() < MIN_OTHERS_AFTER_REMOVE {
                return Err(Error::precondition(
                    Reason::GroupTooSmall,
                    format!(
                        "removal needs at least {MIN_OTHERS_TO_REMOVE} other participants and must leave at least {MIN_OTHERS_AFTER_REMOVE}"
                    ),
                )
                .with("chatguid", chat)
                .with("limit", MIN_OTHERS_AFTER_REMOVE));
            }
            Ok(())
        }
        Mutation::Leave => {
            if members.len() - 1 < MIN_OTHERS_TO_LEAVE {
                return Err(Error::precondition(
                    Reason::GroupTooSmall,
                    format!("leaving needs at least {MIN_OTHERS_TO_LEAVE} other participants"),
                )
                .with("chatguid", chat)
                .with("limit", MIN_OTHERS_TO_LEAVE));
            }
            Ok(())
        }
    }
}

/// The part of `mutation` by `actor` that would change the group: `None` if nothing would
/// (a rename to the current name, the current icon again, no icon to remove; and, for
/// observed changes, adds of members, removes of non-members, a leave by a non-member).
fn effective<'m>(
    group: &GroupRow,
    members: &[Address],
    actor: &Address,
    mutation: &'m Mutation,
) -> Option<Cow<'m, Mutation>> {
    let unchanged = Cow::Borrowed(mutation);
    let change = match mutation {
        Mutation::SetDisplayName(name) => {
            (group.display_name.as_deref() != Some(name.as_str())).then_some(unchanged)?
        }
        Mutation::AddParticipants(addresses) => {
            let new = |a: &&Address| !members.contains(a);
            if !addresses.is_empty() && addresses.iter().all(|a| new(&a)) {
                unchanged
            } else {
                let new: Vec<Address> = addresses.iter().filter(new).cloned().collect();
                (!new.is_empty()).then_some(Cow::Owned(Mutation::AddParticipants(new)))?
            }
        }
        Mutation::RemoveParticipants(addresses) => {
            let member = |a: &&Address| members.contains(a);
            if !addresses.is_empty() && addresses.iter().all(|a| member(&a)) {
                unchanged
            } else {
                let gone: Vec<Address> = addresses.iter().filter(member).cloned().collect();
                (!gone.is_empty()).then_some(Cow::Owned(Mutation::RemoveParticipants(gone)))?
            }
        }
        Mutation::Leave => members.contains(actor).then_some(unchanged)?,
        Mutation::SetIcon { hash, .. } => {
            (group.icon_hash.as_deref() != Some(hash.as_slice())).then_some(unchanged)?
        }
        Mutation::RemoveIcon => group.icon_hash.is_some().then_some(unchanged)?,
    };
    Some(change)
}

/// Writes `change` (which [`effective`] kept) and records its events; returns the members
/// after it. `group` is updated to match.
fn apply(
    tx: &mut dyn Tx,
    chat: &ChatGuid,
    group: &mut GroupRow,
    mut members: Vec<Address>,
    actor: &Address,
    at: Timestamp,
    change: &Mutation,
) -> Result<Vec<Address>> {
    match change {
        Mutation::SetDisplayName(name) => {
            tx.set_display_name(group.key, name)?;
            group.display_name = Some(name.clone());
            let change = Change::DisplayNameChanged {
                display_name: name.clone(),
            };
            record(tx, at, chat, actor, &members, &[change])?;
        }
        Mutation::AddParticipants(addresses) => {
            for address in addresses {
                tx.add_member(group.key, address)?;
                members.push(address.clone());
            }
            // The added see their own addition: the audience is the group after.
            let changes: Vec<Change> = addresses
                .iter()
                .map(|a| Change::ParticipantAdded {
                    participant: a.clone(),
                })
                .collect();
            record(tx, at, chat, actor, &members, &changes)?;
        }
        Mutation::RemoveParticipants(addresses) => {
            let changes: Vec<Change> = addresses
                .iter()
                .map(|a| Change::ParticipantRemoved {
                    participant: a.clone(),
                })
                .collect();
            // The removed still see their own removal: the audience is the group before.
            record(tx, at, chat, actor, &members, &changes)?;
            for address in addresses {
                tx.remove_member(group.key, address)?;
            }
            members.retain(|m| !addresses.contains(m));
        }
        Mutation::Leave => {
            let change = Change::ParticipantLeft {
                participant: actor.clone(),
            };
            record(tx, at, chat, actor, &members, &[change])?;
            tx.remove_member(group.key, actor)?;
            members.retain(|m| m != actor);
        }
        Mutation::SetIcon { data, mime, hash } => {
            tx.set_icon(group.key, data, mime, hash)?;
            group.icon_hash = Some(hash.clone());
            record(tx, at, chat, actor, &members, &[Change::IconChanged])?;
        }
        Mutation::RemoveIcon => {
            tx.clear_icon(group.key)?;
            group.icon_hash = None;
            record(tx, at, chat, actor, &members, &[Change::IconRemoved])?;
        }
    }
    Ok(members)
}

fn create_chat(
    tx: &mut dyn Tx,
    network: &dyn RecordedNetwork,
    account: AccountId,
    me: &Address,
    now: Timestamp,
    addresses: &[Address],
    message: Option<&InitialMessage>,
) -> Result<Outcome> {
    for address in addresses {
        network.reachable(tx, address)?;
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
                Reason::AlreadyParticipant,
                "you are always a member of the groups you create",
            )
            .with("address", me));
        }
        match existing_group(tx, me, addresses)? {
            Some((group, members)) => group_view(me, &group, &members),
            None => new_group(tx, network, me, now, addresses)?,
        }
    };
    // The first message is a message like any other: every member receives it.
    let message = match message {
        Some(initial) => {
            let new = crate::command::NewMessage {
                text: initial.text.clone(),
                subject: initial.subject.clone(),
                effect_id: initial.effect_id.clone(),
                reply_to: None,
                formatting: Vec::new(),
            };
            let sent = super::messages::send_new(tx, network, me, &chat.guid, &new)?;
            Some(Box::new(sent))
        }
        None => None,
    };
    Ok(Outcome::Created { chat, message })
}

/// Like Messages.app: creating a group whose members equal a group I can see resolves to it.
fn existing_group(
    tx: &mut dyn Tx,
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

fn new_group(
    tx: &mut dyn Tx,
    network: &dyn RecordedNetwork,
    me: &Address,
    now: Timestamp,
    others: &[Address],
) -> Result<Chat> {
    // A free identifier is found before anything is written (identifiers are 18 random
    // digits: a second try is already rare).
    let identity = loop {
        let identity = network.new_group(tx)?;
        if tx.group(&identity.identifier)?.is_none() {
            break identity;
        }
    };
    let guid = ChatGuid::group(&identity.identifier);
    let mut members = Vec::with_capacity(others.len() + 1);
    members.push(me.clone());
    members.extend_from_slice(others);
    let key = tx
        .create_group(&identity.identifier, &identity.group_id, now)?
        .ok_or_else(|| {
            tracing::error!(identifier = %identity.identifier, "a free group identifier was taken");
            Error::internal()
        })?;
    for address in &members {
        tx.add_member(key, address)?;
    }
    // Creation is not an event for the creator; every other account learns it was added.
    for (account, address) in audience(tx, others)? {
        let change = Change::ParticipantAdded {
            participant: address.clone(),
        };
        tx.append_event(
            account,
            NewEvent {
                chat_guid: &guid,
                occurred_at: now,
                is_from_me: false,
                actor: Some(me),
                change: &change,
            },
        )?;
    }
    let group = GroupRow {
        key,
        identifier: identity.identifier,
        group_id: identity.group_id,
        display_name: None,
        icon_hash: None,
    };
    Ok(group_view(me, &group, &members))
}

/// Appends `changes` to the log of every account among `members` (the members who can see the
/// change), `isFromMe` only for the actor's own account.
fn record(
    tx: &mut dyn Tx,
    at: Timestamp,
    chat: &ChatGuid,
    actor: &Address,
    members: &[Address],
    changes: &[Change],
) -> Result<()> {
    for (account, address) in audience(tx, members)? {
        for change in changes {
            tx.append_event(
                account,
                NewEvent {
                    chat_guid: chat,
                    occurred_at: at,
                    is_from_me: &address == actor,
                    actor: Some(actor),
                    change,
                },
            )?;
        }
    }
    Ok(())
}

/// The audience of a group with these members: the local accounts among them, with their
/// addresses, in the order given — the accounts that keep a view and a log of it. (Asked of
/// one address, it says which local account that address is, if any.) The same on every
/// network: the store knows which addresses are accounts.
pub(crate) fn audience(tx: &mut dyn Tx, members: &[Address]) -> Result<Vec<(AccountId, Address)>> {
    tx.accounts_for(members)
}

/// The group behind `chat` with its members, if `me` can see it.
pub(crate) fn visible_group<R: Reader + ?Sized>(
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

/// `addressNotFound` for `address`: what a recorded network answers for an address it cannot
/// reach.
pub fn address_not_found(address: &Address) -> Error {
    Error::new(
        ErrorKind::AddressNotFound,
        format!("{address} is not reachable on imessage"),
    )
    .with("address", address)
}

/// Read-side operations: answered from a snapshot, never from a write transaction.
pub mod query {
    use super::*;

    pub fn get_chat<R: Reader + ?Sized>(r: &mut R, account: AccountId, chat: &str) -> Result<Chat> {
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
    pub fn get_icon<R: Reader + ?Sized>(
        r: &mut R,
        account: AccountId,
        chat: &str,
    ) -> Result<(Vec<u8>, String)> {
        let chat = crate::command::group_guid(chat)?;
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

    /// One page of an account's groups: how many there are in all, and the page's groups,
    /// each with its icon's hash (`None`: no custom icon).
    pub type GroupPage = (u64, Vec<(Chat, Option<Vec<u8>>)>);

    /// One page of the groups `account` is in, newest first. For browsing (the console), not
    /// the wire API.
    pub fn list_groups<R: Reader + ?Sized>(
        r: &mut R,
        account: AccountId,
        offset: usize,
        limit: usize,
    ) -> Result<GroupPage> {
        let me = r.account_address(account)?;
        let mut groups = r.groups_of(&me)?;
        groups.sort_unstable_by_key(|group| std::cmp::Reverse(group.key));
        let total = groups.len() as u64;
        let mut page = Vec::new();
        for group in groups.into_iter().skip(offset).take(limit) {
            let members = r.members(group.key)?;
            let icon = group.icon_hash.clone();
            page.push((group_view(&me, &group, &members), icon));
        }
        Ok((total, page))
    }

    /// Chats visible to the account. Nothing is archived in the simulator, so
    /// `include_archived` does not change the answer.
    pub fn count_chats<R: Reader + ?Sized>(r: &mut R, account: AccountId) -> Result<u64> {
        let me = r.account_address(account)?;
        let groups = r.groups_of(&me)?.len() as u64;
        Ok(groups + r.count_direct_chats(account)?)
    }
}
