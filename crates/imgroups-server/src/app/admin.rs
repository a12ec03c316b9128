//! What the operator's web console does, with an admin token (`crate::http::console` only
//! decodes and encodes): the engine calls the API makes, the store's administration
//! (accounts, tokens), the simulator's controls (directory, injected faults), and overviews
//! across accounts (logs, webhooks).

use std::sync::Arc;

use imgroups_core::port::{
    AccountInfo, AdminTokenInfo, Fault, LogBounds, ResetScope, SimControls, TokenInfo, Webhook,
};
use imgroups_core::{
    admin, AccountId, Address, Chat, ChatGuid, Command, Engine, Error, Event, FaultId, Limits,
    Outcome, Result, TokenId,
};

use crate::faults::{FaultRequest, Faults};

/// The console's application.
#[derive(Clone)]
pub(crate) struct AdminApp {
    engine: Arc<Engine>,
    pub(crate) limits: Limits,
    /// The simulator's directory and faults ([`crate::Options::sim`]); `None` on a Mac.
    sim: Option<Arc<dyn SimControls>>,
    /// This process's armed faults, re-read at once after a change made here.
    faults: Arc<Faults>,
    /// Typing indicators, shared with the API's `chats.setTyping`.
    typing: Arc<super::Typing>,
    /// The tokens of open streams and the reset epoch: a reset made here ends this process's
    /// streams at once.
    revocations: Arc<crate::revocation::Revocations>,
}

/// A chat as the console's conversation view shows it: the newest messages and the group
/// changes (and background changes) among them, oldest first, and who is typing.
pub(crate) struct Conversation {
    pub(crate) chat: Chat,
    pub(crate) items: Vec<Item>,
    pub(crate) typing: Vec<Address>,
}

/// One line of a conversation.
pub(crate) enum Item {
    Message(Box<imgroups_core::Message>),
    /// A group change, as the grey line Messages shows.
    Change(Event),
}

impl Item {
    fn at(&self) -> imgroups_core::Timestamp {
        match self {
            Item::Message(m) => m.date_created,
            Item::Change(e) => e.occurred_at,
        }
    }
}

/// How far back in the account's log the conversation view looks for group changes.
const CHANGES_SCANNED: usize = 1000;

/// What a seed made: each account made now with its first token, the chats and messages
/// the file named (`id`) with their GUIDs, in file order, and the counts.
#[derive(Default)]
pub(crate) struct SeedReport {
    pub(crate) tokens: Vec<(Address, String)>,
    pub(crate) chats: Vec<(String, String)>,
    pub(crate) messages: Vec<(String, String)>,
    pub(crate) seeded: imgroups_scenario::seed::Seeded,
}

/// One page of an account's log, newest first, and where the log stands.
pub(crate) struct EventsPage {
    pub(crate) bounds: LogBounds,
    pub(crate) events: Vec<Event>,
}

impl AdminApp {
    pub(crate) fn new(
        engine: Arc<Engine>,
        limits: Limits,
        sim: Option<Arc<dyn SimControls>>,
        faults: Arc<Faults>,
        typing: Arc<super::Typing>,
        revocations: Arc<crate::revocation::Revocations>,
    ) -> Self {
        AdminApp {
            engine,
            limits,
            sim,
            faults,
            typing,
            revocations,
        }
    }

    /// Resets the simulator ([`imgroups_core::port::Store::reset`]): this process's open
    /// streams end with `reason=reset` at once (other processes' within a moment), its
    /// armed faults are re-read and its typing indicators forgotten.
    pub(crate) async fn reset(&self, scope: ResetScope) -> Result<u64> {
        self.simulated_world("a reset")?;
        let store = self.engine.store();
        store.reset(scope).await?;
        let resets = store.resets().await?;
        self.revocations.saw_resets(resets);
        self.faults.refresh().await;
        self.typing.clear();
        Ok(resets)
    }

    /// The simulated world as one snapshot ([`imgroups_core::snapshot`]).
    pub(crate) async fn export(&self) -> Result<imgroups_core::snapshot::Snapshot> {
        self.engine.store().export().await
    }

    /// Replaces the simulated world with `world` (checked already): a reset, as far as open
    /// streams, faults and typing indicators go (see [`AdminApp::reset`]).
    pub(crate) async fn import(&self, world: imgroups_core::snapshot::Snapshot) -> Result<u64> {
        self.simulated_world("a snapshot import")?;
        let store = self.engine.store();
        store.import(world).await?;
        let resets = store.resets().await?;
        self.revocations.saw_resets(resets);
        self.faults.refresh().await;
        self.typing.clear();
        Ok(resets)
    }

    /// Applies a checked seed file (after a reset, with `reset`) as `imgroups sim seed` does
    /// beside the server, and collects what it made. Its steps run on an engine of their
    /// own over the same store and backend, without send limits: a seed is a test's set-up,
    /// not the line's traffic (and the CLI's seeds are not counted either). The outer error
    /// is the reset's; the inner one a refused step, the steps before it staying done.
    pub(crate) async fn seed(
        &self,
        seed: &imgroups_scenario::Scenario,
        reset: bool,
    ) -> Result<std::result::Result<SeedReport, imgroups_scenario::Failed>> {
        use imgroups_scenario::seed::Made;
        self.simulated_world("a seed")?;
        if reset {
            self.reset(ResetScope { accounts: false }).await?;
        }
        let engine = Engine::new(
            self.engine.store().clone(),
            self.engine.network().clone(),
            imgroups_core::EngineConfig::default(),
        );
        let mut report = SeedReport::default();
        let seeded = imgroups_scenario::seed::apply(&engine, seed, |made| match made {
            Made::Token { address, token } => {
                report.tokens.push((address.clone(), token.to_owned()));
            }
            Made::Chat { id, guid } => report.chats.push((id.to_owned(), guid.to_owned())),
            Made::Message { id, guid } => {
                report.messages.push((id.to_owned(), guid.to_owned()));
            }
        })
        .await;
        Ok(seeded.map(|seeded| SeedReport { seeded, ..report }))
    }

    /// The store's controllable clock (`None`: it runs on the system's time).
    pub(crate) async fn clock(&self) -> Result<Option<imgroups_core::clock::SimClock>> {
        self.engine.store().clock().await
    }

    /// Moves the store's controllable clock forward by `nanos`; faults it ran out stop
    /// applying here at once.
    pub(crate) async fn advance_clock(&self, nanos: i64) -> Result<imgroups_core::clock::SimClock> {
        let clock = self.engine.store().advance_clock(nanos).await?;
        self.faults.refresh().await;
        Ok(clock)
    }

    /// The chat as `account` sees it: its newest `limit` messages with the group changes
    /// among them (from the account's last [`CHANGES_SCANNED`] events), oldest first, and who
    /// is typing in it now.
    pub(crate) async fn conversation(
        &self,
        account: AccountId,
        chat: String,
        limit: usize,
    ) -> Result<Conversation> {
        let chat = self.engine.get_chat(account, chat).await?;
        let listing = imgroups_core::engine::messages::query::Listing {
            page_size: Some(limit as i64),
            ..Default::default()
        };
        let (messages, more) = self
            .engine
            .list_messages(account, Some(chat.guid.to_string()), listing)
            .await?;
        // Changes older than the oldest message shown belong to an earlier page.
        let since = match more {
            Some(_) => messages.last().map(|m| m.date_created),
            None => None,
        };
        let recent = self.events(account, None, CHANGES_SCANNED).await?;
        let mut items: Vec<Item> = recent
            .events
            .into_iter()
            .filter(|e| {
                let shown = e.change.domain() == imgroups_core::Domain::Group
                    || matches!(
                        e.change,
                        imgroups_core::Change::BackgroundChanged
                            | imgroups_core::Change::BackgroundRemoved
                    );
                e.chat_guid == chat.guid
                    && shown
                    && since.is_none_or(|since| e.occurred_at >= since)
            })
            .map(Item::Change)
            .chain(messages.into_iter().map(|m| Item::Message(Box::new(m))))
            .collect();
        items.sort_by_key(Item::at);
        let me = self.engine.account_address(account).await?;
        let now = self.engine.store().now().await?;
        let typing = self.typing.seen_by(&me, &chat.guid, now);
        Ok(Conversation {
            chat,
            items,
            typing,
        })
    }

    /// Checks an admin token (`imgroups admin token`); account tokens are refused.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<()> {
        self.engine.store().authenticate_admin(token).await
    }

    /// The account with this address (`addressNotFound` if there is none).
    pub(crate) async fn account(&self, address: &str) -> Result<AccountId> {
        let address = Address::parse(address)?;
        admin::account(&**self.engine.store(), &address).await
    }

    /// Every account, and every token of every account.
    pub(crate) async fn accounts(&self) -> Result<(Vec<AccountInfo>, Vec<TokenInfo>)> {
        let store = self.engine.store();
        Ok((store.list_accounts().await?, store.list_tokens().await?))
    }

    /// A new account; its first token.
    pub(crate) async fn add_account(&self, address: &Address) -> Result<String> {
        admin::add_account(&**self.engine.store(), address).await
    }

    /// Another token for an account.
    pub(crate) async fn create_token(&self, address: &Address) -> Result<String> {
        admin::create_token(&**self.engine.store(), address).await
    }

    pub(crate) async fn revoke_token(&self, id: i64) -> Result<TokenId> {
        admin::revoke_token(&**self.engine.store(), &id.to_string()).await
    }

    /// Every admin token.
    pub(crate) async fn admin_tokens(&self) -> Result<Vec<AdminTokenInfo>> {
        self.engine.store().list_admin_tokens().await
    }

    /// Revokes an admin token by id.
    pub(crate) async fn revoke_admin_token(&self, id: i64) -> Result<TokenId> {
        admin::revoke_admin_token(&**self.engine.store(), &id.to_string()).await
    }

    /// One page of the account's groups, newest first: the total, and each group with its
    /// icon's hash.
    pub(crate) async fn groups(
        &self,
        account: AccountId,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<(Chat, Option<Vec<u8>>)>)> {
        self.engine.list_groups(account, offset, limit).await
    }

    /// A group's icon as the account sees it: bytes and MIME type.
    pub(crate) async fn icon(&self, account: AccountId, chat: String) -> Result<(Vec<u8>, String)> {
        self.engine.get_icon(account, chat).await
    }

    /// Up to `limit` events of the account's log with a sequence below `before` (default:
    /// from the newest), newest first.
    pub(crate) async fn events(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<EventsPage> {
        let store = self.engine.store();
        let bounds = store.log_bounds(account).await?;
        let up_to = before
            .map_or(bounds.head, |before| before.saturating_sub(1))
            .min(bounds.head);
        let after = up_to
            .saturating_sub(limit as u64)
            .max(bounds.pruned_through)
            .max(bounds.reset_through);
        let mut events = store.read_events(account, after, up_to, limit).await?;
        events.reverse();
        Ok(EventsPage { bounds, events })
    }

    /// Creates a group as the account, named `name` when that is not empty.
    pub(crate) async fn create_group(
        &self,
        account: AccountId,
        addresses: &[String],
        name: &str,
    ) -> Result<ChatGuid> {
        let command = Command::create_chat(addresses, None)?;
        let chat = match self.engine.execute(account, None, command).await? {
            Outcome::Created { chat, .. } | Outcome::Chat(chat) => chat,
            Outcome::Empty | Outcome::Message(_) => return Err(Error::internal()),
        };
        let name = name.trim();
        if !name.is_empty() {
            let rename = Command::set_display_name(&chat.guid.to_string(), name)?;
            self.engine.execute(account, None, rename).await?;
        }
        Ok(chat.guid)
    }

    /// Runs a group change, or says or does something in a chat, as the account, or as
    /// `puppet` (a simulated person) whom the account then sees act, under the same rules
    /// either way.
    pub(crate) async fn perform(
        &self,
        account: AccountId,
        puppet: Option<&str>,
        command: Command,
    ) -> Result<Outcome> {
        match puppet {
            None => self.engine.execute(account, None, command).await,
            Some(puppet) => {
                let puppet = Address::parse(puppet).map_err(|e| e.with("field", "puppet"))?;
                self.engine.act_as(&puppet, command).await
            }
        }
    }

    /// The simulator's controls, or `operationNotSupported` when the server does not run the
    /// simulated network.
    fn sim(&self) -> Result<&Arc<dyn SimControls>> {
        self.sim.as_ref().ok_or_else(|| {
            Error::not_supported(
                "the directory and injected faults are the simulator's; \
                 this server does not run it",
            )
        })
    }

    /// `operationNotSupported` unless the server runs the simulated network: on a Mac the log
    /// mirrors chat.db, so a reset, an import or a seed would replace what Messages holds with
    /// a world that is not there (and the next read of chat.db would not bring it back).
    fn simulated_world(&self, what: &str) -> Result<()> {
        if self.sim.is_some() {
            return Ok(());
        }
        Err(Error::not_supported(format!(
            "{what} replaces the simulated world; this server does not run the simulator \
             (its log mirrors a Mac's chat.db)"
        )))
    }

    /// The simulator's unreachable addresses, and the armed faults (none of either without
    /// the simulator).
    pub(crate) async fn simulator(&self) -> Result<(Vec<Address>, Vec<Fault>)> {
        match &self.sim {
            Some(sim) => Ok((sim.unreachable().await?, sim.faults().await?)),
            None => Ok((Vec::new(), Vec::new())),
        }
    }

    pub(crate) async fn set_unreachable(&self, address: &Address, unreachable: bool) -> Result<()> {
        self.sim()?.set_unreachable(address, unreachable).await
    }

    /// Arms a fault for the account with this address; it applies in this process at once.
    pub(crate) async fn add_fault(
        &self,
        request: &FaultRequest<'_>,
        account: &str,
    ) -> Result<Fault> {
        let sim = self.sim()?;
        request.check()?;
        let account = self.account(account).await?;
        let fault = sim
            .add_fault(&request.fault(account, self.engine.store().now().await?)?)
            .await?;
        self.faults.refresh().await;
        Ok(fault)
    }

    /// Disarms the faults of one account, or the one with `id`, or all; how many.
    pub(crate) async fn clear_faults(&self, account: Option<&str>, id: Option<i64>) -> Result<u64> {
        let sim = self.sim()?;
        let account = match account.filter(|a| !a.trim().is_empty()) {
            Some(address) => Some(self.account(address).await?),
            None => None,
        };
        let cleared = sim.clear_faults(account, id.map(FaultId)).await?;
        self.faults.refresh().await;
        Ok(cleared)
    }

    /// Every webhook endpoint, with the head of its account's log.
    pub(crate) async fn webhooks(&self) -> Result<Vec<(Webhook, u64)>> {
        let store = self.engine.store();
        let hooks = store.webhooks(None).await?;
        let mut list = Vec::with_capacity(hooks.len());
        for hook in hooks {
            let head = store.log_bounds(hook.account).await?.head;
            list.push((hook, head));
        }
        Ok(list)
    }
}
