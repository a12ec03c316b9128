//! Messages through the store port: what is said in a chat lands, once, in every member
//! account's log and in its own copy, and what happens to a message afterwards (tapbacks,
//! edits, unsends, reads) reaches every copy and every holder's log. Listings page newest
//! first and stay stable while messages arrive. Refused requests change nothing.
//!
//! The engine's rules run unchanged on every store, so these check what a store must get
//! right underneath them: per-account sequences with no gaps, copies found by GUID and by
//! place, filters, and the message kinds of events surviving the round trip through the log
//! and a restart.

use std::sync::Arc;

use imgroups_core::engine::messages::query::Listing;
use imgroups_core::port::{store, SimStore};
use imgroups_core::{
    AccountId, Address, Change, ChatGuid, Command, Engine, ErrorKind, Event, Message, NewMessage,
    Outcome, Reaction, Timestamp,
};

use crate::{engine, Fixture};

/// The three accounts and the engine over the store.
struct Talk {
    store: Arc<dyn SimStore>,
    engine: Engine,
    /// `a@x.com`, `b@x.com`, `c@x.com`.
    ids: [AccountId; 3],
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const ADDRESSES: [&str; 3] = ["a@x.com", "b@x.com", "c@x.com"];

fn address(who: &str) -> Address {
    Address::parse(who).expect("an address")
}

fn direct(with: &str) -> String {
    ChatGuid::direct(&address(with)).to_string()
}

fn text(chat: &str, text: &str) -> Command {
    let message = NewMessage::new(text, None, None, None, Vec::new()).expect("a message");
    Command::send_text(chat, message).expect("a command")
}

fn sent(outcome: Outcome) -> Message {
    match outcome {
        Outcome::Message(message) => *message,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// An upper-case UUID v4, as Messages writes them.
fn is_message_guid(guid: &str) -> bool {
    let groups: Vec<&str> = guid.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && guid
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('A'..='F').contains(&c))
        && groups[2].starts_with('4')
}

impl Talk {
    async fn open(fixture: &dyn Fixture) -> Talk {
        let store = fixture.open();
        let mut ids = [AccountId(0); 3];
        for (i, a) in ADDRESSES.iter().enumerate() {
            ids[i] = store.ensure_account(&address(a)).await.expect("account").0;
        }
        Talk {
            engine: engine(store.clone()),
            store,
            ids,
        }
    }

    async fn run(&self, who: usize, command: Command) -> imgroups_core::Result<Outcome> {
        self.engine.execute(self.ids[who], None, command).await
    }

    async fn say(&self, who: usize, chat: &str, words: &str) -> Message {
        sent(self.run(who, text(chat, words)).await.expect("a send"))
    }

    async fn heads(&self) -> [u64; 3] {
        let mut heads = [0; 3];
        for (i, id) in self.ids.iter().enumerate() {
            heads[i] = self.store.log_bounds(*id).await.expect("bounds").head;
        }
        heads
    }

    /// Each account's events after `heads`.
    async fn since(&self, heads: [u64; 3]) -> [Vec<Event>; 3] {
        let mut out: [Vec<Event>; 3] = Default::default();
        for (i, id) in self.ids.iter().enumerate() {
            out[i] = crate::events_after(&*self.store, *id, heads[i]).await;
            for (n, event) in out[i].iter().enumerate() {
                assert_eq!(
                    event.sequence,
                    heads[i] + n as u64 + 1,
                    "{}'s log has no gap",
                    ADDRESSES[i]
                );
            }
        }
        out
    }

    async fn get(&self, who: usize, guid: &str) -> imgroups_core::Result<Message> {
        self.engine
            .get_message(self.ids[who], guid.to_owned())
            .await
    }

    async fn list(
        &self,
        who: usize,
        chat: Option<&str>,
        listing: Listing,
    ) -> imgroups_core::Result<(Vec<Message>, Option<String>)> {
        self.engine
            .list_messages(self.ids[who], chat.map(str::to_owned), listing)
            .await
    }

    /// Every page of a listing, following the tokens.
    async fn list_all(&self, who: usize, chat: Option<&str>, listing: Listing) -> Vec<Message> {
        let mut all = Vec::new();
        let mut listing = listing;
        loop {
            let (page, next) = self.list(who, chat, listing.clone()).await.expect("a page");
            all.extend(page);
            match next {
                Some(token) => listing.page_token = Some(token),
                None => return all,
            }
        }
    }

    async fn create_group(&self, who: usize, people: &[&str]) -> String {
        let people: Vec<String> = people.iter().map(|p| p.to_string()).collect();
        let cmd = Command::create_chat(&people, None).expect("a command");
        match self.run(who, cmd).await.expect("create") {
            Outcome::Created { chat, .. } => chat.guid.to_string(),
            other => panic!("expected a created chat, got {other:?}"),
        }
    }
}

fn received(event: &Event) -> &Message {
    match &event.change {
        Change::MessageReceived { message } => message,
        other => panic!("expected message.received, got {other:?}"),
    }
}

fn guids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.guid.as_str()).collect()
}

fn reason(err: &imgroups_core::Error) -> Option<&str> {
    err.context_value("reason")
}

/// Sending, in a group and in direct chats, by accounts and by a simulated person.
pub fn messages_are_delivered<F: Fixture>(fixture: F) {
    crate::block_on(async {
        let t = Talk::open(&fixture).await;
        let group = t.create_group(A, &["b@x.com", "c@x.com", "p@x.com"]).await;

        // In a group: every member account gets it at the next place of its log.
        let before = t.heads().await;
        let hello = t.say(A, &group, "hello\nworld").await;
        assert!(is_message_guid(&hello.guid), "{}", hello.guid);
        assert!(hello.is_from_me && hello.is_sent && hello.sender.is_none());
        assert_eq!(hello.text, "hello\nworld");
        assert_eq!(
            hello.chat_guid.as_ref().map(ToString::to_string),
            Some(group.clone())
        );
        let events = t.since(before).await;
        for who in [A, B, C] {
            assert_eq!(events[who].len(), 1, "{} gets one event", ADDRESSES[who]);
            let event = &events[who][0];
            let copy = received(event);
            let mine = who == A;
            assert_eq!(event.chat_guid.to_string(), group);
            assert_eq!(event.is_from_me, mine);
            assert_eq!(event.actor, Some(address("a@x.com")));
            assert_eq!(copy.guid, hello.guid, "one GUID in every view");
            assert_eq!(copy.is_from_me, mine);
            assert_eq!(copy.sender, (!mine).then(|| address("a@x.com")));
            assert_eq!(copy.text, hello.text);
            // The account's stored copy is what its event carried.
            assert_eq!(&t.get(who, &hello.guid).await.expect("its copy"), copy);
        }
        assert_eq!(t.get(A, &hello.guid).await.expect("a's copy"), hello);

        // A simulated person says something: every account hears it from them.
        let before = t.heads().await;
        let p = address("p@x.com");
        let said = sent(
            imgroups_sim::act(&t.engine, &p, text(&group, "from p"))
                .await
                .expect("a puppet's send"),
        );
        let events = t.since(before).await;
        for who in [A, B, C] {
            assert_eq!(events[who].len(), 1);
            let copy = received(&events[who][0]);
            assert_eq!(copy.guid, said.guid);
            assert!(!copy.is_from_me && !events[who][0].is_from_me);
            assert_eq!(copy.sender.as_ref(), Some(&p));
        }

        // A direct chat, started by sending: both sides have it, each under its own GUID.
        let before = t.heads().await;
        let to_b = t.say(A, &direct("b@x.com"), "psst").await;
        let events = t.since(before).await;
        assert_eq!(
            [events[A].len(), events[B].len(), events[C].len()],
            [1, 1, 0]
        );
        assert_eq!(events[A][0].chat_guid.to_string(), direct("b@x.com"));
        assert_eq!(events[B][0].chat_guid.to_string(), direct("a@x.com"));
        let b_copy = t.get(B, &to_b.guid).await.expect("b's copy");
        assert_eq!(
            b_copy.chat_guid.map(|c| c.to_string()),
            Some(direct("a@x.com"))
        );
        assert!(!b_copy.is_from_me);
        let err = t.get(C, &to_b.guid).await.expect_err("c has no copy");
        assert_eq!(err.kind, ErrorKind::MessageNotFound);
        // The address in a direct chat's GUID is compared as an address: any case is the
        // same chat, on both sides, in listings too.
        let shout = t.say(A, "any;-;B@X.com", "same chat").await;
        let b_copy = t.get(B, &shout.guid).await.expect("b's copy");
        assert_eq!(
            b_copy.chat_guid.map(|c| c.to_string()),
            Some(direct("a@x.com"))
        );
        let (page, _) = t
            .list(A, Some(&direct("b@x.com")), Listing::default())
            .await
            .expect("a's direct chat");
        assert_eq!(guids(&page), [&shout.guid, &to_b.guid]);
        let (page, _) = t
            .list(A, Some("any;-;B@X.COM"), Listing::default())
            .await
            .expect("the same chat");
        assert_eq!(guids(&page), [&shout.guid, &to_b.guid]);
        // The answer comes back on b's side of the same chat.
        let reply = t.say(B, &direct("a@x.com"), "yes?").await;
        let a_copy = t.get(A, &reply.guid).await.expect("a's copy");
        assert_eq!(
            a_copy.chat_guid.map(|c| c.to_string()),
            Some(direct("b@x.com"))
        );
        // A person who is not an account: only the sender keeps the chat.
        let before = t.heads().await;
        t.say(C, &direct("q@x.com"), "hi q").await;
        let events = t.since(before).await;
        assert_eq!(
            [events[A].len(), events[B].len(), events[C].len()],
            [0, 0, 1]
        );

        // Refused sends change nothing.
        t.store
            .set_unreachable(&address("u@x.com"), true)
            .await
            .expect("mark unreachable");
        let before = t.heads().await;
        let err = t
            .run(A, text(&direct("u@x.com"), "anyone?"))
            .await
            .expect_err("an unreachable address");
        assert_eq!(err.kind, ErrorKind::AddressNotFound);
        assert_eq!(t.heads().await, before, "a refused send appends nothing");
        let before_reply = t.heads().await;
        let message = NewMessage::new("re", None, None, Some(to_b.guid.clone()), Vec::new())
            .expect("a message");
        let err = t
            .run(A, Command::send_text(&group, message).expect("a command"))
            .await
            .expect_err("a reply to a message of another chat");
        assert_eq!(err.kind, ErrorKind::MessageNotFound);
        assert_eq!(
            t.heads().await,
            before_reply,
            "a refused reply appends nothing"
        );
        let outsider = t.create_group(B, &["c@x.com", "p@x.com", "q@x.com"]).await;
        let before_outsider = t.heads().await;
        let err = t
            .run(A, text(&outsider, "let me in"))
            .await
            .expect_err("not a member");
        assert_eq!(err.kind, ErrorKind::ChatNotFound);
        assert_eq!(t.heads().await, before_outsider);

        // Idempotent: the same key answers the same message, and appends once.
        let before = t.heads().await;
        let key = Some("send-1".to_owned());
        let first = sent(
            t.engine
                .execute(t.ids[A], key.clone(), text(&group, "once"))
                .await
                .expect("a send"),
        );
        let again = sent(
            t.engine
                .execute(t.ids[A], key.clone(), text(&group, "once"))
                .await
                .expect("a replay"),
        );
        assert_eq!(first, again);
        let err = t
            .engine
            .execute(t.ids[A], key, text(&group, "twice"))
            .await
            .expect_err("another request under the key");
        assert_eq!(err.kind, ErrorKind::DuplicateMessage);
        let events = t.since(before).await;
        for who in [A, B, C] {
            assert_eq!(events[who].len(), 1, "one event for {}", ADDRESSES[who]);
            assert_eq!(received(&events[who][0]).guid, first.guid);
        }

        // Everything survives a restart, and the log reads back the same.
        let logs = t.since([0; 3]).await;
        t.store.close().await;
        let t = Talk::open(&fixture).await;
        assert_eq!(t.since([0; 3]).await, logs);
        assert_eq!(
            t.get(B, &hello.guid).await.expect("b's copy").text,
            hello.text
        );

        // The send limits' history: B's messages since the first, newest first, each with
        // its date and whether B sent it — what the whole copies say, at most `limit`.
        let b = t.ids[B];
        let copies: Vec<(Timestamp, bool)> = logs[B]
            .iter()
            .rev()
            .filter_map(|event| match &event.change {
                Change::MessageReceived { message } => {
                    Some((message.date_created, message.is_from_me))
                }
                _ => None,
            })
            .collect();
        assert!(copies.len() >= 3, "{copies:?}");
        let since = hello.date_created;
        let times = store::read(&*t.store, move |r| r.message_times(b, since, 100))
            .await
            .expect("message times");
        assert_eq!(times, copies);
        let two = store::read(&*t.store, move |r| r.message_times(b, since, 2))
            .await
            .expect("message times");
        assert_eq!(two, copies[..2]);
        let later = Timestamp(copies[0].0 .0 + 1);
        let none = store::read(&*t.store, move |r| r.message_times(b, later, 100))
            .await
            .expect("message times");
        assert!(none.is_empty(), "{none:?}");
        t.store.close().await;
    });
}

/// Tapbacks, edits, unsends and what each refuses.
pub fn messages_change<F: Fixture>(fixture: F) {
    crate::block_on(async {
        let t = Talk::open(&fixture).await;
        let group = t.create_group(A, &["b@x.com", "c@x.com", "p@x.com"]).await;
        let m = t.say(A, &group, "react to me").await;
        let react = |kind: Reaction, set: bool| {
            Command::react(&group, &m.guid, kind, set).expect("a command")
        };

        // A tapback reaches every holder; another one replaces it; removing it removes it.
        let before = t.heads().await;
        let got = sent(t.run(B, react(Reaction::Love, true)).await.expect("love"));
        assert_eq!(got.reactions.len(), 1);
        assert_eq!(got.reactions[0].reaction, Reaction::Love);
        assert!(got.reactions[0].is_from_me, "b's own view");
        t.run(B, react(Reaction::Like, true)).await.expect("like");
        let events = t.since(before).await;
        for who in [A, B, C] {
            let changes: Vec<&Change> = events[who].iter().map(|e| &e.change).collect();
            assert_eq!(
                changes,
                [
                    &Change::ReactionAdded {
                        message_guid: m.guid.clone(),
                        reaction: Reaction::Love
                    },
                    &Change::ReactionRemoved {
                        message_guid: m.guid.clone(),
                        reaction: Reaction::Love
                    },
                    &Change::ReactionAdded {
                        message_guid: m.guid.clone(),
                        reaction: Reaction::Like
                    },
                ],
                "{}'s log",
                ADDRESSES[who]
            );
            assert!(events[who]
                .iter()
                .all(|e| e.actor == Some(address("b@x.com")) && e.is_from_me == (who == B)));
            let copy = t.get(who, &m.guid).await.expect("a copy");
            let kinds: Vec<(&Reaction, &Address)> = copy
                .reactions
                .iter()
                .map(|r| (&r.reaction, &r.sender))
                .collect();
            assert_eq!(kinds, [(&Reaction::Like, &address("b@x.com"))]);
        }
        // Setting the same one again, or removing one that is not there: nothing happens.
        let before = t.heads().await;
        t.run(B, react(Reaction::Like, true))
            .await
            .expect("like again");
        t.run(B, react(Reaction::Laugh, false))
            .await
            .expect("not there");
        t.run(C, react(Reaction::Love, false))
            .await
            .expect("not c's");
        assert_eq!(t.heads().await, before);
        // An emoji, from c, beside b's.
        t.run(C, react(Reaction::Emoji("🎉".into()), true))
            .await
            .expect("an emoji");
        t.run(B, react(Reaction::Like, false))
            .await
            .expect("unlike");
        let copy = t.get(A, &m.guid).await.expect("a's copy");
        assert_eq!(copy.reactions.len(), 1);
        assert_eq!(copy.reactions[0].reaction, Reaction::Emoji("🎉".into()));
        assert_eq!(copy.reactions[0].sender, address("c@x.com"));

        // Edits: the sender only, at most five.
        let before = t.heads().await;
        let err = t
            .run(
                B,
                Command::edit(&group, &m.guid, "mine now").expect("a command"),
            )
            .await
            .expect_err("not b's");
        assert_eq!(err.kind, ErrorKind::PreconditionFailed);
        assert_eq!(reason(&err), Some("notFromMe"));
        assert_eq!(t.heads().await, before);
        for n in 1..=5 {
            let edited = sent(
                t.run(
                    A,
                    Command::edit(&group, &m.guid, &format!("take {n}")).expect("a command"),
                )
                .await
                .expect("an edit"),
            );
            assert_eq!(edited.edits, n);
            assert!(edited.date_edited.is_some());
        }
        let mid = t.heads().await;
        let err = t
            .run(
                A,
                Command::edit(&group, &m.guid, "take 6").expect("a command"),
            )
            .await
            .expect_err("a sixth edit");
        assert_eq!(reason(&err), Some("tooManyEdits"));
        assert_eq!(t.heads().await, mid, "a refused edit appends nothing");
        let events = t.since(before).await;
        for who in [A, B, C] {
            assert_eq!(events[who].len(), 5);
            for (n, event) in events[who].iter().enumerate() {
                match &event.change {
                    Change::MessageEdited {
                        message_guid, text, ..
                    } => {
                        assert_eq!(message_guid, &m.guid);
                        assert_eq!(text, &format!("take {}", n + 1));
                    }
                    other => panic!("expected message.edited, got {other:?}"),
                }
            }
            let copy = t.get(who, &m.guid).await.expect("a copy");
            assert_eq!((copy.text.as_str(), copy.edits), ("take 5", 5));
        }

        // Refusals that change nothing: unknown messages, and messages of another chat.
        let before = t.heads().await;
        for (who, cmd) in [
            (
                B,
                Command::react(
                    &group,
                    "00000000-0000-4000-8000-000000000000",
                    Reaction::Love,
                    true,
                ),
            ),
            (A, Command::edit(&group, "NOT-A-MESSAGE", "x")),
            (A, Command::unsend(&group, "NOT-A-MESSAGE")),
        ] {
            let err = t
                .run(who, cmd.expect("a command"))
                .await
                .expect_err("unknown");
            assert_eq!(err.kind, ErrorKind::MessageNotFound);
        }
        let elsewhere = t.say(A, &direct("b@x.com"), "elsewhere").await;
        let mid = t.heads().await;
        let err = t
            .run(
                B,
                Command::react(&group, &elsewhere.guid, Reaction::Love, true).expect("cmd"),
            )
            .await
            .expect_err("a message of another chat");
        assert_eq!(err.kind, ErrorKind::MessageNotFound);
        assert_eq!(t.heads().await, mid);
        assert_eq!(t.since(before).await.map(|e| e.len()), [1, 1, 0]);

        // Unsend: the content is gone from every copy; nothing more can be done to it.
        let gone = t.say(A, &group, "oops").await;
        let before = t.heads().await;
        let err = t
            .run(B, Command::unsend(&group, &gone.guid).expect("a command"))
            .await
            .expect_err("not b's");
        assert_eq!(reason(&err), Some("notFromMe"));
        assert_eq!(
            t.run(A, Command::unsend(&group, &gone.guid).expect("a command"))
                .await
                .expect("an unsend"),
            Outcome::Empty
        );
        let events = t.since(before).await;
        for who in [A, B, C] {
            assert_eq!(events[who].len(), 1);
            assert!(matches!(
                &events[who][0].change,
                Change::MessageUnsent { message_guid, .. } if *message_guid == gone.guid
            ));
            let copy = t.get(who, &gone.guid).await.expect("what is left");
            assert!(copy.text.is_empty() && copy.date_retracted.is_some());
            assert!(copy.formatting.is_empty() && copy.subject.is_none());
        }
        let before = t.heads().await;
        for (who, cmd) in [
            (A, Command::unsend(&group, &gone.guid)),
            (A, Command::edit(&group, &gone.guid, "back")),
            (B, Command::react(&group, &gone.guid, Reaction::Love, true)),
        ] {
            let err = t
                .run(who, cmd.expect("a command"))
                .await
                .expect_err("unsent");
            assert_eq!(err.kind, ErrorKind::PreconditionFailed);
            assert_eq!(reason(&err), Some("messageUnsent"));
        }
        assert_eq!(t.heads().await, before);

        // Every kind reads back the same after a restart.
        let logs = t.since([0; 3]).await;
        t.store.close().await;
        let t = Talk::open(&fixture).await;
        assert_eq!(t.since([0; 3]).await, logs);
        t.store.close().await;
    });
}

/// Marking a chat read, and read receipts in direct chats only.
pub fn messages_are_read<F: Fixture>(fixture: F) {
    crate::block_on(async {
        let t = Talk::open(&fixture).await;
        let group = t.create_group(A, &["b@x.com", "c@x.com", "p@x.com"]).await;
        let one = t.say(A, &group, "one").await;
        let two = t.say(C, &group, "two").await;
        let mine = t.say(B, &group, "mine").await;
        let unread = Listing {
            is_read: Some(false),
            ..Listing::default()
        };
        let (page, _) = t
            .list(B, Some(&group), unread.clone())
            .await
            .expect("a page");
        assert_eq!(
            guids(&page),
            [&two.guid, &one.guid],
            "b's own message counts as read"
        );

        // In a group: only the reader's log hears of it.
        let before = t.heads().await;
        t.run(B, Command::mark_read(&group).expect("a command"))
            .await
            .expect("mark read");
        let events = t.since(before).await;
        assert_eq!(
            [events[A].len(), events[B].len(), events[C].len()],
            [0, 1, 0]
        );
        assert_eq!(events[B][0].change, Change::ChatMarkedRead);
        assert_eq!(events[B][0].chat_guid.to_string(), group);
        assert!(t
            .get(B, &one.guid)
            .await
            .expect("b's copy")
            .date_read
            .is_some());
        assert!(t
            .get(C, &one.guid)
            .await
            .expect("c's copy")
            .date_read
            .is_none());
        assert!(t
            .get(A, &one.guid)
            .await
            .expect("a's copy")
            .date_read
            .is_none());
        assert!(t
            .get(B, &mine.guid)
            .await
            .expect("b's own")
            .date_read
            .is_none());
        let (page, _) = t
            .list(B, Some(&group), unread.clone())
            .await
            .expect("a page");
        assert!(page.is_empty());
        // Nothing unread: nothing happens.
        let before = t.heads().await;
        t.run(B, Command::mark_read(&group).expect("a command"))
            .await
            .expect("mark read again");
        assert_eq!(t.heads().await, before);

        // In a direct chat: the sender gets a receipt for each message newly read.
        let d1 = t.say(A, &direct("b@x.com"), "d1").await;
        let d2 = t.say(A, &direct("b@x.com"), "d2").await;
        let from_b = t.say(B, &direct("a@x.com"), "from b").await;
        let before = t.heads().await;
        t.run(
            B,
            Command::mark_read(&direct("a@x.com")).expect("a command"),
        )
        .await
        .expect("mark read");
        let events = t.since(before).await;
        assert_eq!(events[B].len(), 1);
        assert_eq!(events[B][0].change, Change::ChatMarkedRead);
        assert_eq!(events[B][0].chat_guid.to_string(), direct("a@x.com"));
        let mut receipts: Vec<&str> = events[A]
            .iter()
            .map(|e| match &e.change {
                Change::MessageRead { message_guid, .. } => message_guid.as_str(),
                other => panic!("expected message.read, got {other:?}"),
            })
            .collect();
        receipts.sort_unstable();
        let mut want = [d1.guid.as_str(), d2.guid.as_str()];
        want.sort_unstable();
        assert_eq!(receipts, want);
        assert!(events[A]
            .iter()
            .all(|e| !e.is_from_me && e.chat_guid.to_string() == direct("b@x.com")));
        assert!(events[C].is_empty());
        for guid in [&d1.guid, &d2.guid] {
            assert!(t.get(A, guid).await.expect("a's copy").date_read.is_some());
            assert!(t.get(B, guid).await.expect("b's copy").date_read.is_some());
        }
        assert!(t
            .get(A, &from_b.guid)
            .await
            .expect("unread")
            .date_read
            .is_none());
        let before = t.heads().await;
        t.run(
            B,
            Command::mark_read(&direct("a@x.com")).expect("a command"),
        )
        .await
        .expect("mark read again");
        assert_eq!(t.heads().await, before, "nothing new was read");

        let err = t
            .run(
                A,
                Command::mark_read(&direct("z@x.com")).expect("a command"),
            )
            .await
            .expect_err("no such chat");
        assert_eq!(err.kind, ErrorKind::ChatNotFound);
        assert_eq!(t.heads().await, before);
        t.store.close().await;
    });
}

/// Listing: newest first, filters, tokens bound to their listing, and pages that neither
/// repeat nor skip while messages arrive.
pub fn messages_are_listed<F: Fixture>(fixture: F) {
    crate::block_on(async {
        let t = Talk::open(&fixture).await;
        let group = t.create_group(A, &["b@x.com", "c@x.com", "p@x.com"]).await;
        let other = direct("b@x.com");
        let mut said = Vec::new();
        for n in 0..30 {
            let who = if n % 3 == 0 { B } else { A };
            said.push((who, t.say(who, &group, &format!("m{n}")).await));
            if n % 10 == 0 {
                t.say(A, &other, &format!("d{n}")).await;
            }
        }
        let newest_first: Vec<&str> = said.iter().rev().map(|(_, m)| m.guid.as_str()).collect();
        let all = t.list_all(A, Some(&group), Listing::default()).await;
        assert_eq!(guids(&all), newest_first);
        assert!(all
            .iter()
            .all(|m| m.chat_guid.as_ref().map(ToString::to_string) == Some(group.clone())));

        // Pages of 7, with messages arriving (in this chat and another) between pages.
        let listing = Listing {
            page_size: Some(7),
            ..Listing::default()
        };
        let (first, mut token) = t
            .list(A, Some(&group), listing.clone())
            .await
            .expect("page");
        assert_eq!(first.len(), 7);
        let mut paged = first;
        let mut pages = 1;
        while let Some(next) = token {
            t.say(B, &group, "meanwhile").await;
            t.say(A, &other, "meanwhile").await;
            let (page, after) = t
                .list(
                    A,
                    Some(&group),
                    Listing {
                        page_token: Some(next),
                        ..listing.clone()
                    },
                )
                .await
                .expect("a page");
            assert!(page.len() <= 7);
            paged.extend(page);
            token = after;
            pages += 1;
        }
        assert_eq!(pages, 5, "30 messages in pages of 7");
        assert_eq!(guids(&paged), newest_first, "no page repeats or skips");

        // Filters.
        let from_me = t
            .list_all(
                A,
                Some(&group),
                Listing {
                    is_from_me: Some(true),
                    page_size: Some(4),
                    ..Listing::default()
                },
            )
            .await;
        let want: Vec<&str> = said
            .iter()
            .rev()
            .filter(|(who, _)| *who == A)
            .map(|(_, m)| m.guid.as_str())
            .collect();
        assert_eq!(guids(&from_me), want);
        let unread_b: Vec<Message> = t
            .list_all(
                B,
                Some(&group),
                Listing {
                    is_read: Some(false),
                    ..Listing::default()
                },
            )
            .await;
        assert!(unread_b
            .iter()
            .all(|m| !m.is_from_me && m.date_read.is_none()));
        let b_all = t.list_all(B, Some(&group), Listing::default()).await;
        assert_eq!(
            unread_b.len(),
            b_all.iter().filter(|m| !m.is_from_me).count()
        );
        // Between two times: created at or after `after`, strictly before `before`.
        let (lo, hi) = (said[5].1.date_created, said[20].1.date_created);
        let window = t
            .list_all(
                A,
                Some(&group),
                Listing {
                    after: Some(lo),
                    before: Some(hi),
                    page_size: Some(3),
                    ..Listing::default()
                },
            )
            .await;
        let a_all = t.list_all(A, Some(&group), Listing::default()).await;
        let want: Vec<&str> = a_all
            .iter()
            .filter(|m| m.date_created >= lo && m.date_created < hi)
            .map(|m| m.guid.as_str())
            .collect();
        assert!(want.len() >= 14, "the window holds m5..m19 at least");
        assert_eq!(guids(&window), want);

        // Every chat: the account's recent messages, newest first, across chats.
        let recent = t.list_all(A, None, Listing::default()).await;
        let places: Vec<(String, &str)> = recent
            .iter()
            .map(|m| {
                (
                    m.chat_guid
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    m.guid.as_str(),
                )
            })
            .collect();
        let in_group = places.iter().filter(|(c, _)| *c == group).count();
        let in_direct = places.iter().filter(|(c, _)| *c == other).count();
        assert_eq!(in_group, a_all.len());
        assert_eq!(
            in_group + in_direct,
            places.len(),
            "a's two chats, nothing else"
        );
        assert!(in_direct >= 3 + 4);
        let (top, _) = t
            .list(
                A,
                None,
                Listing {
                    page_size: Some(1),
                    ..Listing::default()
                },
            )
            .await
            .expect("a page");
        assert_eq!(top[0].text, "meanwhile", "the newest of all");

        // Tokens are bound to their listing; sizes are bounded.
        let (_, token) = t
            .list(A, Some(&group), listing.clone())
            .await
            .expect("page");
        let token = token.expect("more than one page");
        for (chat, bad) in [
            (Some(other.as_str()), token.clone()),
            (None, token.clone()),
            (Some(group.as_str()), "zz.nope".to_owned()),
        ] {
            let err = t
                .list(
                    A,
                    chat,
                    Listing {
                        page_token: Some(bad),
                        ..Listing::default()
                    },
                )
                .await
                .expect_err("a token of another listing");
            assert_eq!(err.kind, ErrorKind::InvalidArgument);
            assert_eq!(reason(&err), Some("invalidPageToken"));
        }
        for size in [-1, 1001] {
            let err = t
                .list(
                    A,
                    Some(&group),
                    Listing {
                        page_size: Some(size),
                        ..Listing::default()
                    },
                )
                .await
                .expect_err("a page size out of range");
            assert_eq!(reason(&err), Some("outOfRange"));
        }
        for n in 0..20 {
            t.say(C, &group, &format!("more {n}")).await;
        }
        let (page, next) = t
            .list(A, Some(&group), Listing::default())
            .await
            .expect("page");
        assert_eq!(page.len(), 50, "the default page size");
        let (rest, last) = t
            .list(
                A,
                Some(&group),
                Listing {
                    page_token: next,
                    page_size: Some(0),
                    ..Listing::default()
                },
            )
            .await
            .expect("page");
        assert_eq!(
            (rest.len(), last),
            (4, None),
            "54 in all, the last page says so"
        );
        let err = t
            .list(C, Some(&other), Listing::default())
            .await
            .expect_err("not c's chat");
        assert_eq!(err.kind, ErrorKind::ChatNotFound);
        t.store.close().await;
    });
}

/// What a store may keep once for every member ([`Tx::deliver_message`]): each member's
/// `message.received` goes on showing the message as it was delivered while the member's copy
/// changes (an edit, a tapback, a read, an unsend), and after a restart. Copies delivered read
/// (a backend's history) read back read, in their events too; a message delivered again under
/// a GUID already kept (a backend recording it twice) reaches the new copies as well.
///
/// [`Tx::deliver_message`]: imgroups_core::port::Tx::deliver_message
pub fn messages_keep_as_delivered<F: Fixture>(fixture: F) {
    crate::block_on(async {
        let t = Talk::open(&fixture).await;
        let group = t.create_group(A, &["b@x.com", "c@x.com", "p@x.com"]).await;
        let before = t.heads().await;
        let m = t.say(A, &group, "first words").await;
        let delivered = t.since(before).await;
        let copies: Vec<Message> = [A, B, C]
            .iter()
            .map(|who| received(&delivered[*who][0]).clone())
            .collect();
        let other = t.say(B, &group, "to unsend").await;

        for (who, command) in [
            (A, Command::edit(&group, &m.guid, "second words")),
            (B, Command::react(&group, &m.guid, Reaction::Love, true)),
            (C, Command::mark_read(&group)),
            (B, Command::unsend(&group, &other.guid)),
        ] {
            t.run(who, command.expect("a command"))
                .await
                .expect("a change");
        }
        check_kept(&t, &m, &other, &delivered, &copies).await;
        t.store.close().await;
        let t = Talk::open(&fixture).await;
        check_kept(&t, &m, &other, &delivered, &copies).await;

        // Delivered straight through the port, read already for one copy and not the other.
        let chat = ChatGuid::parse(&group).expect("a chat");
        let p = address("p@x.com");
        let message = Message {
            guid: "0F0F0F0F-0000-4000-8000-000000000001".into(),
            text: "from the history".into(),
            subject: Some("old".into()),
            date_created: Timestamp(1_000),
            is_from_me: false,
            is_sent: true,
            chat_guid: None,
            sender: Some(p.clone()),
            effect_id: None,
            reply_to: Some(m.guid.clone()),
            formatting: Vec::new(),
            date_read: None,
            date_edited: Some(Timestamp(2_000)),
            edits: 1,
            date_retracted: None,
            reactions: Vec::new(),
        };
        let read_at = Some(Timestamp(3_000));
        let ids = t.ids;
        let before = t.heads().await;
        let deliver = |accounts: Vec<(AccountId, Option<Timestamp>)>| {
            let (message, chat, p) = (message.clone(), chat.clone(), p.clone());
            crate::write_tx(&*t.store, move |tx| {
                let copies: Vec<imgroups_core::port::Delivery<'_>> = accounts
                    .iter()
                    .map(|(account, date_read)| imgroups_core::port::Delivery {
                        account: *account,
                        chat_guid: &chat,
                        is_from_me: false,
                        date_read: *date_read,
                    })
                    .collect();
                tx.deliver_message(&message, &p, Timestamp(1_000), &copies)
            })
        };
        let places = deliver(vec![(ids[A], read_at), (ids[B], None)])
            .await
            .expect("delivered");
        assert_eq!(places, [before[A] + 1, before[B] + 1]);
        // Delivered again, to C, under the same GUID.
        let again = deliver(vec![(ids[C], None)]).await.expect("delivered");
        assert_eq!(again, [before[C] + 1]);
        let events = t.since(before).await;
        for (who, date_read) in [(A, read_at), (B, None), (C, None)] {
            let expected = Message {
                chat_guid: Some(chat.clone()),
                date_read,
                ..message.clone()
            };
            assert_eq!(events[who].len(), 1);
            assert_eq!(received(&events[who][0]), &expected);
            assert_eq!(events[who][0].actor.as_ref(), Some(&p));
            assert_eq!(t.get(who, &message.guid).await.expect("a copy"), expected);
        }
        let (unread, _) = t
            .list(
                A,
                Some(&group),
                Listing {
                    is_read: Some(false),
                    ..Listing::default()
                },
            )
            .await
            .expect("a's unread");
        assert!(!guids(&unread).contains(&message.guid.as_str()));
        t.store.close().await;
    });
}

/// Each copy of `m` shows its edit, the tapback and (C's) the read, and of `other` the
/// unsend, while each member's log shows both as delivered.
async fn check_kept(
    t: &Talk,
    m: &Message,
    other: &Message,
    delivered: &[Vec<Event>; 3],
    copies: &[Message],
) {
    let log = t.since([0; 3]).await;
    for who in [A, B, C] {
        let now = t.get(who, &m.guid).await.expect("a copy");
        assert_eq!(now.text, "second words");
        assert_eq!(now.edits, 1);
        assert_eq!(now.reactions.len(), 1);
        assert_eq!(now.reactions[0].is_from_me, who == B);
        assert_eq!(now.date_read.is_some(), who == C);
        let delivery = |guid: &str| {
            log[who]
                .iter()
                .find(|e| matches!(&e.change, Change::MessageReceived { message } if message.guid == guid))
                .expect("its delivery")
        };
        let event = delivery(&m.guid);
        assert_eq!(
            event, &delivered[who][0],
            "{} sees it as delivered",
            ADDRESSES[who]
        );
        assert_eq!(received(event), &copies[who]);
        assert_eq!(received(event).text, "first words");
        assert_eq!(received(delivery(&other.guid)).text, "to unsend");
        let unsent = t.get(who, &other.guid).await.expect("a copy");
        assert!(unsent.is_unsent() && unsent.text.is_empty());
    }
}
