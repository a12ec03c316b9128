//! The Mac backend on fixture chat.db files with the real schemas, the faithful fake helper
//! playing the BlueBubbles helper inside Messages, and the real engine on a SQLite store:
//! what a client of `serve --backend chatdb` sees, without the wire.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use imgroups_chatdb::testing::{
    attributed_body, FakeHelper, FakeHelperOptions, FakeReply, Fixture, Msg, Version, PHOTO_PNG,
};
use imgroups_chatdb::{Actuator, BlueBubblesHelper, HelperOptions};
use imgroups_core::{
    admin, AccountId, Address, ChatGuid, Command, Engine, EngineConfig, ErrorKind, Mutation,
    Outcome,
};
use imgroups_macos::{Mac, MacOptions, Running};
use imgroups_store_sqlite::{Config, SqliteStore};

const ME: &str = "me@icloud.com";

struct Backend {
    engine: Arc<Engine>,
    me: AccountId,
    helper: Arc<BlueBubblesHelper>,
    _running: Running,
    _data: tempfile::TempDir,
}

/// The backend over `home`'s chat.db, with a helper listener and `write_timeout`.
async fn start(home: &Path, write_timeout: Duration) -> Backend {
    start_with(home, tempfile::tempdir().unwrap(), write_timeout).await
}

/// [`start`] on the store in `data` (a restart, when it was used before).
async fn start_with(home: &Path, data: tempfile::TempDir, write_timeout: Duration) -> Backend {
    let store = Arc::new(SqliteStore::open(Config::new(data.path().join("imgroups.db"))).unwrap());
    let helper = Arc::new(
        BlueBubblesHelper::bind_with("127.0.0.1:0", HelperOptions::default())
            .await
            .unwrap()
            .with_write_gap(Duration::from_millis(5))
            .with_timeout(Duration::from_secs(10)),
    );
    let mac = Mac::new(MacOptions {
        home: home.to_owned(),
        me: Address::parse(ME).unwrap(),
        helper: Some(helper.clone() as Arc<dyn Actuator>),
        rescan: Duration::from_millis(100),
        write_timeout,
    })
    .unwrap();
    let engine = Arc::new(Engine::new(
        store.clone(),
        mac.network(),
        EngineConfig::default(),
    ));
    let (me, _) = admin::ensure_account(&*store, &Address::parse(ME).unwrap())
        .await
        .unwrap();
    let handle = tokio::runtime::Handle::current();
    let started = engine.clone();
    let (_, running) = tokio::task::spawn_blocking(move || mac.start(started, handle))
        .await
        .unwrap()
        .unwrap();
    Backend {
        engine,
        me,
        helper,
        _running: running,
        _data: data,
    }
}

impl Backend {
    /// Stops the server (the watcher thread joined, the store closed), keeping its data.
    fn stop(self) -> tempfile::TempDir {
        let Backend {
            engine,
            _running,
            _data,
            ..
        } = self;
        _running.stop();
        drop(engine);
        _data
    }

    /// The account's whole log, as event type names.
    async fn log(&self) -> Vec<imgroups_core::Event> {
        let store = self.engine.store();
        let head = store.log_bounds(self.me).await.unwrap().head;
        store.read_events(self.me, 0, head, 10_000).await.unwrap()
    }

    async fn messages(&self, chat: &str) -> Vec<imgroups_core::Message> {
        self.engine
            .list_messages(
                self.me,
                Some(chat.to_owned()),
                imgroups_core::engine::messages::query::Listing::default(),
            )
            .await
            .unwrap()
            .0
    }

    async fn fake(&self, f: &Fixture, reply: FakeReply) -> FakeHelper {
        let options = FakeHelperOptions {
            reply,
            ..FakeHelperOptions::default()
        };
        let fake = FakeHelper::connect(self.helper.local_addr(), f.path(), options)
            .await
            .unwrap();
        self.helper.connected().await;
        fake
    }

    async fn write(&self, chat: &str, mutation: Mutation) -> imgroups_core::Result<Outcome> {
        let command = Command::Group {
            chat: ChatGuid::group(chat),
            mutation,
        };
        self.engine.execute(self.me, None, command).await
    }

    async fn members(&self, chat: &str) -> Vec<String> {
        let chat = self
            .engine
            .get_chat(self.me, format!("any;+;{chat}"))
            .await
            .expect("the chat is there");
        let mut members: Vec<String> = chat.participants.iter().map(|a| a.to_string()).collect();
        members.sort();
        members
    }
}

/// A group row with its members, `service_name` set, and text messages only (no group-change
/// row at all, as Messages writes a new group).
fn text_only_group(f: &Fixture, guid: &str, service: &str, members: &[&str]) -> i64 {
    let chat = f.group(guid, None, None);
    f.set_service(chat, service);
    for (i, member) in members.iter().enumerate() {
        let handle = f.handle(member);
        f.member(chat, handle);
        let message = format!("{guid}-TEXT-{i}");
        f.post(
            chat,
            Msg {
                guid: &message,
                text: Some("hello"),
                handle,
                minute: i as i64,
                ..Msg::default()
            },
        );
    }
    chat
}

/// Bug 2 (and 1): a group Messages created has no group-change row; it is listed, readable and
/// writable all the same — here with macOS 26's `any;+;` GUID, which reaches the helper as it is.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_with_only_text_messages_is_there_and_writable() {
    let f = Fixture::new(Version::Tahoe);
    text_only_group(
        &f,
        "any;+;7f00aa",
        "iMessage",
        &["alice@example.com", "+15550001111"],
    );
    let backend = start(f.home(), Duration::from_secs(10)).await;
    assert_eq!(
        backend.members("7f00aa").await,
        ["+15550001111", "alice@example.com"]
    );
    let _helper = backend.fake(&f, FakeReply::Apply).await;
    let Outcome::Chat(chat) = backend
        .write("7f00aa", Mutation::SetDisplayName("Found".into()))
        .await
        .expect("renamed through the helper")
    else {
        panic!("a rename answers the chat");
    };
    assert_eq!(chat.display_name.as_deref(), Some("Found"));

    // A group created while the server runs is found too.
    text_only_group(&f, "any;+;9e11bb", "iMessage", &["carol@example.com"]);
    let mut tries = 0;
    while backend
        .engine
        .get_chat(backend.me, "any;+;9e11bb".into())
        .await
        .is_err()
    {
        tries += 1;
        assert!(tries < 200, "the new group never appeared");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Bug 4: the icon file is written where Messages may read it, so the photo is set (the
/// helper would otherwise remove it and still answer success).
#[tokio::test(flavor = "multi_thread")]
async fn set_icon_sets_the_photo_in_messages() {
    let f = Fixture::new(Version::Monterey);
    text_only_group(&f, "iMessage;+;chat55", "iMessage", &["alice@example.com"]);
    let backend = start(f.home(), Duration::from_secs(3)).await;
    let _helper = backend.fake(&f, FakeReply::Apply).await;
    backend
        .write("chat55", Mutation::set_icon(PHOTO_PNG.to_vec()).unwrap())
        .await
        .expect("the icon is set");
    let (data, mime) = backend
        .engine
        .get_icon(backend.me, "any;+;chat55".into())
        .await
        .expect("an icon");
    assert_eq!(data, PHOTO_PNG);
    assert_eq!(mime, "image/png");
    let group = f.open().group("any;+;chat55").unwrap().unwrap();
    let stored = group
        .icon
        .and_then(|i| i.path)
        .expect("Messages has the photo");
    assert!(stored.starts_with(f.home().join("Library/Messages/Attachments")));
}

/// Handles that are no e-mail or E.164 number are members too, kept as Messages has them.
#[tokio::test(flavor = "multi_thread")]
async fn short_codes_and_numbers_without_a_country_are_kept() {
    let f = Fixture::new(Version::Tahoe);
    text_only_group(
        &f,
        "any;+;5c0de",
        "iMessage",
        &["alice@example.com", "262966", "5551234567"],
    );
    let backend = start(f.home(), Duration::from_secs(5)).await;
    assert_eq!(
        backend.members("5c0de").await,
        ["262966", "5551234567", "alice@example.com"]
    );
}

/// SMS and RCS groups are listed; writes are refused with a reason, before Messages is asked.
#[tokio::test(flavor = "multi_thread")]
async fn an_sms_group_is_listed_and_its_writes_are_refused() {
    let f = Fixture::new(Version::Tahoe);
    text_only_group(&f, "any;+;5a5a5a", "SMS", &["+15550002222", "+15550003333"]);
    let backend = start(f.home(), Duration::from_secs(5)).await;
    assert_eq!(
        backend.members("5a5a5a").await,
        ["+15550002222", "+15550003333"]
    );
    let helper = backend.fake(&f, FakeReply::Apply).await;
    let err = backend
        .write("5a5a5a", Mutation::SetDisplayName("Nope".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::OperationNotSupported, "{err:?}");
    assert!(err.message.contains("SMS/RCS"), "{}", err.message);
    assert_eq!(helper.handled(), 0, "Messages was not asked");
}

/// A write Messages acknowledged but that does not show in chat.db is not retryable: a retry
/// would make the same change again.
#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_write_that_does_not_show_is_final() {
    let f = Fixture::new(Version::Tahoe);
    text_only_group(&f, "any;+;ac4", "iMessage", &["alice@example.com"]);
    let backend = start(f.home(), Duration::from_millis(500)).await;
    let helper = backend.fake(&f, FakeReply::AckOnly).await;
    let err = backend
        .write("ac4", Mutation::SetDisplayName("Later".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err:?}");
    assert_eq!(err.retryable, Some(false), "{err:?}");
    assert_eq!(helper.handled(), 1);

    // Nothing reached Messages at all: that one may be retried.
    helper.disconnect().await;
    backend.helper.disconnected().await;
    let err = backend
        .write("ac4", Mutation::SetDisplayName("Later".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_ne!(err.retryable, Some(false), "{err:?}");
}

/// The Full Disk Access error is the one docs/mac.md shows.
#[test]
fn the_full_disk_access_text_is_the_documented_one() {
    let home = tempfile::tempdir().unwrap();
    let err = match Mac::new(MacOptions {
        home: home.path().to_owned(),
        me: Address::parse(ME).unwrap(),
        helper: None,
        rescan: Duration::from_secs(1),
        write_timeout: Duration::from_secs(1),
    }) {
        Ok(_) => panic!("opened a missing chat.db"),
        Err(err) => err,
    };
    assert!(err.contains(imgroups_macos::FULL_DISK_ACCESS_HINT), "{err}");
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/mac.md"))
            .expect("docs/mac.md");
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(imgroups_macos::FULL_DISK_ACCESS_HINT),
        "docs/mac.md must quote: {}",
        imgroups_macos::FULL_DISK_ACCESS_HINT
    );
}

fn guid(n: u32) -> String {
    format!("5A5A0000-0000-4000-8000-{n:012}")
}

fn kinds(log: &[imgroups_core::Event]) -> Vec<&'static str> {
    log.iter().map(|e| e.change.event_type()).collect()
}

/// What people said in a group and a direct chat — in `text` or only in `attributedBody`,
/// with a reply, a tapback, an edit, a read receipt and an unsend — enters the log in date
/// order, each row once, across restarts; the listings show each message as it is now.
#[tokio::test(flavor = "multi_thread")]
async fn conversations_enter_the_log_once_across_restarts() {
    let f = Fixture::new(Version::Tahoe);
    let alice = f.handle("alice@example.com");
    let bob = f.handle("+15550002222");
    let group = f.group("any;+;5a5a01", Some("Team"), None);
    f.member(group, alice);
    f.member(group, bob);
    let direct = f.direct("any", "+15550002222", bob);
    let (g1, g2, g3, d1, d2, g4) = (guid(1), guid(2), guid(3), guid(4), guid(5), guid(6));
    f.post(
        group,
        Msg {
            guid: &g1,
            text: Some("hello team"),
            handle: alice,
            minute: 1,
            ..Msg::default()
        },
    );
    let mine = f.post(
        group,
        Msg {
            guid: &g2,
            text: None,
            from_me: true,
            minute: 2,
            ..Msg::default()
        },
    );
    f.set(mine, "attributedBody", attributed_body("hi alice"));
    f.set(mine, "thread_originator_guid", g1.as_str());
    let love = f.post(
        group,
        Msg {
            guid: &g3,
            text: Some("Loved “hi alice”"),
            handle: alice,
            minute: 3,
            ..Msg::default()
        },
    );
    f.set(love, "associated_message_type", 2000);
    f.set(love, "associated_message_guid", format!("p:0/{g2}"));
    let dm = f.post(
        direct,
        Msg {
            guid: &d1,
            text: Some("psst"),
            from_me: true,
            minute: 4,
            ..Msg::default()
        },
    );

    let backend = start(f.home(), Duration::from_secs(10)).await;
    // The history is recorded before the start returns.
    assert_eq!(
        kinds(&backend.log().await),
        [
            "message.received",
            "message.received",
            "message.reactionAdded",
            "message.received"
        ]
    );
    let in_group = backend.messages("any;+;5a5a01").await;
    let texts: Vec<_> = in_group.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hi alice", "hello team"]);
    assert!(in_group[0].is_from_me && in_group[0].sender.is_none());
    assert_eq!(in_group[0].reply_to.as_deref(), Some(g1.as_str()));
    assert_eq!(in_group[0].reactions.len(), 1);
    assert_eq!(
        in_group[0].reactions[0].reaction,
        imgroups_core::Reaction::Love
    );
    assert_eq!(
        in_group[0].reactions[0].sender.as_str(),
        "alice@example.com"
    );
    assert_eq!(
        in_group[1].sender.as_ref().map(|a| a.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(backend.messages("any;-;+15550002222").await[0].text, "psst");

    // Live: Messages edits my direct message, bob reads it, then writes; I unsend in the group.
    f.set(dm, "text", "psst!");
    f.set(dm, "date_edited", f.date(5));
    f.set(dm, "date_read", f.date(6));
    f.post(
        direct,
        Msg {
            guid: &d2,
            text: Some("yo"),
            handle: bob,
            minute: 7,
            ..Msg::default()
        },
    );
    f.set(mine, "date_retracted", f.date(8));
    f.set(mine, "attributedBody", rusqlite_null());
    let want = [
        "message.received",
        "message.received",
        "message.reactionAdded",
        "message.received",
        "message.edited",
        "message.read",
        "message.received",
        "message.unsent",
    ];
    let mut tries = 0;
    while backend.log().await.len() < want.len() {
        tries += 1;
        assert!(tries < 400, "got {:?}", kinds(&backend.log().await));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = backend.log().await;
    assert_eq!(kinds(&log), want);
    let direct_now = backend.messages("any;-;+15550002222").await;
    assert_eq!(direct_now[0].text, "yo");
    assert_eq!(
        direct_now[0].sender.as_ref().unwrap().as_str(),
        "+15550002222"
    );
    assert_eq!(direct_now[1].text, "psst!");
    assert_eq!(direct_now[1].edits, 1);
    assert!(direct_now[1].date_read.is_some());
    let unsent = &backend.messages("any;+;5a5a01").await[0];
    assert!(unsent.date_retracted.is_some() && unsent.text.is_empty());

    // A restart records nothing twice, and goes on where it stopped.
    let data = backend.stop();
    f.post(
        group,
        Msg {
            guid: &g4,
            text: Some("while you were away"),
            handle: bob,
            minute: 9,
            ..Msg::default()
        },
    );
    let backend = start_with(f.home(), data, Duration::from_secs(10)).await;
    let after = backend.log().await;
    assert_eq!(after.len(), want.len() + 1, "{:?}", kinds(&after));
    assert_eq!(after[..want.len()], log[..]);
    assert_eq!(kinds(&after[want.len()..]), ["message.received"]);
    let data = backend.stop();
    let backend = start_with(f.home(), data, Duration::from_secs(10)).await;
    assert_eq!(backend.log().await.len(), want.len() + 1);
}

fn rusqlite_null() -> Option<Vec<u8>> {
    None
}

fn sent(outcome: Outcome) -> imgroups_core::Message {
    match outcome {
        Outcome::Message(m) => *m,
        other => panic!("not a message: {other:?}"),
    }
}

/// Every message write goes to Messages through the helper and is answered once its row is
/// read back from chat.db: send (with a reply), tapback set and removed, edit, unsend and mark
/// read, in a group and in a direct chat; the rules run first, as on the simulator.
#[tokio::test(flavor = "multi_thread")]
async fn message_writes_go_through_the_helper_and_answer_once_observed() {
    for version in [Version::Ventura, Version::Tahoe] {
        let f = Fixture::new(version);
        let alice = f.handle("alice@example.com");
        let bob = f.handle("+15550002222");
        let group = f.group(
            if version == Version::Tahoe {
                "any;+;5a5a02"
            } else {
                "iMessage;+;5a5a02"
            },
            Some("Team"),
            None,
        );
        f.member(group, alice);
        let direct = f.direct(
            if version == Version::Tahoe {
                "any"
            } else {
                "iMessage"
            },
            "+15550002222",
            bob,
        );
        let old = guid(11);
        f.post(
            group,
            Msg {
                guid: &old,
                text: Some("hello"),
                handle: alice,
                minute: 1,
                ..Msg::default()
            },
        );
        let mine_long_ago = guid(12);
        f.post(
            direct,
            Msg {
                guid: &mine_long_ago,
                text: Some("long ago"),
                from_me: true,
                minute: 2,
                ..Msg::default()
            },
        );
        f.post(
            direct,
            Msg {
                guid: &guid(13),
                text: Some("unread"),
                handle: bob,
                minute: 3,
                ..Msg::default()
            },
        );
        let backend = start(f.home(), Duration::from_secs(10)).await;
        let _helper = backend.fake(&f, FakeReply::Apply).await;
        let me = backend.me;
        let run = |command: imgroups_core::Result<Command>| {
            let engine = backend.engine.clone();
            async move { engine.execute(me, None, command.unwrap()).await }
        };

        for chat in ["any;+;5a5a02", "any;-;+15550002222"] {
            let new = imgroups_core::command::NewMessage {
                text: format!("sent to {chat}"),
                subject: None,
                effect_id: None,
                reply_to: chat.contains(";+;").then(|| old.clone()),
                formatting: Vec::new(),
            };
            let message = sent(run(Command::send_text(chat, new)).await.expect("sent"));
            assert_eq!(message.text, format!("sent to {chat}"), "{version:?}");
            assert!(message.is_from_me);
            assert_eq!(message.chat_guid.as_ref().unwrap().to_string(), chat);
            let listed = backend.messages(chat).await;
            assert_eq!(
                listed[0].guid, message.guid,
                "the answer is what chat.db has"
            );

            let reacted = sent(
                run(Command::react(
                    chat,
                    &message.guid,
                    imgroups_core::Reaction::Laugh,
                    true,
                ))
                .await
                .expect("tapback set"),
            );
            assert_eq!(reacted.reactions.len(), 1);
            let cleared = sent(
                run(Command::react(
                    chat,
                    &message.guid,
                    imgroups_core::Reaction::Laugh,
                    false,
                ))
                .await
                .expect("tapback removed"),
            );
            assert!(cleared.reactions.is_empty());

            let edited = sent(
                run(Command::edit(chat, &message.guid, "better"))
                    .await
                    .unwrap(),
            );
            assert_eq!(edited.text, "better");
            assert_eq!(edited.edits, 1);

            let unsent = run(Command::unsend(chat, &message.guid)).await.unwrap();
            assert_eq!(unsent, Outcome::Empty);
            let gone = backend
                .engine
                .get_message(me, message.guid.clone())
                .await
                .unwrap();
            assert!(gone.date_retracted.is_some() && gone.text.is_empty());
        }
        // The group's reply names its target.
        let replied = backend.messages("any;+;5a5a02").await;
        assert!(replied
            .iter()
            .any(|m| m.reply_to.as_deref() == Some(old.as_str())));

        // The rules first: not my message, too old to edit, unknown message.
        let err = run(Command::edit("any;+;5a5a02", &old, "mine now"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::PreconditionFailed, "{err}");
        let err = run(Command::edit("any;-;+15550002222", &mine_long_ago, "late"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::PreconditionFailed, "{err}");
        let err = run(Command::unsend("any;+;5a5a02", &guid(99)))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::MessageNotFound, "{err}");
        let err = run(Command::react(
            "any;+;5a5a02",
            &old,
            imgroups_core::Reaction::Emoji("🔥".into()),
            true,
        ))
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::OperationNotSupported, "{err}");

        // Mark read reaches Messages, and is answered once its read is in the log.
        assert_eq!(
            run(Command::mark_read("any;-;+15550002222")).await.unwrap(),
            Outcome::Empty
        );
        let unread: i64 = f
            .conn
            .query_row(
                "SELECT count(*) FROM message WHERE is_from_me = 0 AND coalesce(date_read, 0) = 0 \
                 AND ROWID IN (SELECT message_id FROM chat_message_join WHERE chat_id = ?1)",
                [direct],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unread, 0);

        // Each write is in the log once: 2 × (sent, tapback added, removed, edited, unsent),
        // then the read.
        let log = backend.log().await;
        let mine: Vec<_> = kinds(&log).into_iter().skip(3).collect();
        let mut want = [
            "message.received",
            "message.reactionAdded",
            "message.reactionRemoved",
            "message.edited",
            "message.unsent",
        ]
        .repeat(2);
        want.push("chat.markedRead");
        assert_eq!(mine, want, "{version:?}");
    }
}

/// The first start's history follows chat.db's dates across group changes and messages.
#[tokio::test(flavor = "multi_thread")]
async fn history_of_messages_and_group_changes_is_in_date_order() {
    let f = Fixture::new(Version::Tahoe);
    let alice = f.handle("alice@example.com");
    let group = f.group("any;+;5a5a03", Some("Later name"), None);
    f.member(group, alice);
    // Inserted out of date order (as an iCloud backfill does): only the dates order them.
    for (n, minute, item_type) in [(3, 3, 0), (1, 1, 0), (2, 2, 2), (4, 4, 2), (5, 5, 0)] {
        let name = guid(20 + n);
        f.post(
            group,
            Msg {
                guid: &name,
                text: (item_type == 0).then_some("said"),
                item_type,
                title: (item_type == 2).then_some(if minute == 2 {
                    "First name"
                } else {
                    "Later name"
                }),
                handle: alice,
                minute,
                ..Msg::default()
            },
        );
    }
    let backend = start(f.home(), Duration::from_secs(10)).await;
    let log = backend.log().await;
    assert_eq!(
        kinds(&log),
        [
            "message.received",
            "group.changed",
            "message.received",
            "group.changed",
            "message.received"
        ]
    );
    let dates: Vec<_> = log.iter().map(|e| e.occurred_at).collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
}

/// A first start on a long history (a bulk import: the store finds message bodies by GUID in
/// memory, the unique GUID index dropped until its end) with GUIDs that come back: a message
/// joined to two chats (two rows of the scan, one GUID), a reply and tapbacks that refer to
/// earlier GUIDs. Every message is received once, the reply and the tapbacks land on the right
/// messages, and a restart records nothing again.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_first_import_keeps_one_message_per_guid_and_its_links() {
    use imgroups_chatdb::testing::BulkSpec;

    let f = Fixture::new(Version::Tahoe);
    // More than two chunks of rows (ingest's `CHUNK`): a bulk import.
    let history = f.bulk(&BulkSpec::new(11_000, 100, 3), ME);
    let alice = f.handle("alice@example.com");
    let bob = f.handle("+15550002222");
    let team = f.group("any;+;5a5a01", Some("Team"), None);
    let other = f.group("any;+;5a5a02", Some("Other"), None);
    for chat in [team, other] {
        f.member(chat, alice);
        f.member(chat, bob);
    }
    // After the bulk history's dates (2 s a row).
    let (g1, g2, g3, g4) = (guid(31), guid(32), guid(33), guid(34));
    let hello = f.post(
        team,
        Msg {
            guid: &g1,
            text: Some("hello team"),
            handle: alice,
            minute: 1_000,
            ..Msg::default()
        },
    );
    f.join(other, hello);
    let reply = f.post(
        team,
        Msg {
            guid: &g2,
            text: Some("hi alice"),
            from_me: true,
            minute: 1_001,
            ..Msg::default()
        },
    );
    f.set(reply, "thread_originator_guid", g1.as_str());
    let love = f.post(
        team,
        Msg {
            guid: &g3,
            text: Some("Loved “hello team”"),
            handle: bob,
            minute: 1_002,
            ..Msg::default()
        },
    );
    f.set(love, "associated_message_type", 2000);
    f.set(love, "associated_message_guid", format!("p:0/{g1}"));
    let like = f.post(
        team,
        Msg {
            guid: &g4,
            text: Some("Liked “hi alice”"),
            handle: alice,
            minute: 1_003,
            ..Msg::default()
        },
    );
    f.set(like, "associated_message_type", 2001);
    f.set(like, "associated_message_guid", format!("p:0/{g2}"));

    let backend = start(f.home(), Duration::from_secs(30)).await;
    let log = whole_log(&backend).await;
    let received: Vec<String> = log
        .iter()
        .filter_map(|e| match &e.change {
            imgroups_core::Change::MessageReceived { message } => Some(message.guid.clone()),
            _ => None,
        })
        .collect();
    let said = history.messages - history.change_rows;
    assert_eq!(received.len() as u64, said + 2, "every message once");
    let mut unique = received.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), received.len(), "no message twice");
    assert_eq!(received.iter().filter(|g| **g == g1).count(), 1);
    assert_eq!(
        kinds(&log)
            .iter()
            .filter(|k| **k == "message.reactionAdded")
            .count(),
        2
    );
    let in_team = backend.messages("any;+;5a5a01").await;
    let find = |guid: &str| {
        in_team
            .iter()
            .find(|m| m.guid == guid)
            .unwrap_or_else(|| panic!("{guid} listed"))
    };
    let (hello, reply) = (find(&g1), find(&g2));
    assert_eq!(hello.text, "hello team");
    assert_eq!(hello.reactions.len(), 1);
    assert_eq!(hello.reactions[0].reaction, imgroups_core::Reaction::Love);
    assert_eq!(hello.reactions[0].sender.as_str(), "+15550002222");
    assert_eq!(reply.reply_to.as_deref(), Some(g1.as_str()));
    assert!(reply.is_from_me);
    assert_eq!(reply.reactions.len(), 1);
    assert_eq!(reply.reactions[0].reaction, imgroups_core::Reaction::Like);
    assert_eq!(reply.reactions[0].sender.as_str(), "alice@example.com");
    assert_eq!(
        in_team.len(),
        2,
        "the tapbacks are no messages of their own"
    );

    // A restart reads nothing again.
    let data = backend.stop();
    let backend = start_with(f.home(), data, Duration::from_secs(30)).await;
    assert_eq!(whole_log(&backend).await.len(), log.len());
}

/// The account's whole log, however long.
async fn whole_log(backend: &Backend) -> Vec<imgroups_core::Event> {
    let store = backend.engine.store();
    let head = store.log_bounds(backend.me).await.unwrap().head;
    store
        .read_events(backend.me, 0, head, 100_000)
        .await
        .unwrap()
}

/// Waits until the log holds `n` events.
async fn log_of(backend: &Backend, n: usize) -> Vec<imgroups_core::Event> {
    let mut tries = 0;
    loop {
        let log = backend.log().await;
        if log.len() >= n {
            return log;
        }
        tries += 1;
        assert!(tries < 400, "got {:?}", kinds(&log));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// My read state from any device: messages I received and read later (on the phone, or in
/// Messages on the Mac), whose `date_read` chat.db then sets, are read in the listings, and
/// the log gets one `chat.markedRead` per chat, by me, as `chats.markRead` gives on the
/// simulator; each once, across restarts. `chats.markRead` itself answers once its
/// `chat.markedRead` is in the log.
#[tokio::test(flavor = "multi_thread")]
async fn my_reads_from_any_device_enter_the_log_once() {
    let f = Fixture::new(Version::Tahoe);
    let alice = f.handle("alice@example.com");
    let bob = f.handle("+15550002222");
    let group = f.group("any;+;5a5a04", Some("Team"), None);
    f.member(group, alice);
    let direct = f.direct("any", "+15550002222", bob);
    let post = |chat, n, handle, minute| {
        f.post(
            chat,
            Msg {
                guid: &guid(n),
                text: Some("unread"),
                handle,
                minute,
                ..Msg::default()
            },
        )
    };
    let g1 = post(group, 31, alice, 1);
    let g2 = post(group, 32, alice, 2);
    post(direct, 33, bob, 3);

    let backend = start(f.home(), Duration::from_secs(10)).await;
    assert_eq!(kinds(&backend.log().await), ["message.received"; 3]);
    assert!(backend
        .messages("any;+;5a5a04")
        .await
        .iter()
        .all(|m| !m.is_read()));

    // Read on the phone: both group messages, in one transaction as Messages writes them.
    f.conn
        .execute(
            "UPDATE message SET is_read = 1, \
             date_read = CASE ROWID WHEN ?1 THEN ?2 ELSE ?4 END WHERE ROWID IN (?1, ?3)",
            [g1, f.date(10), g2, f.date(11)],
        )
        .unwrap();
    let log = log_of(&backend, 4).await;
    assert_eq!(log.len(), 4, "one event for the chat: {:?}", kinds(&log));
    let read = &log[3];
    assert_eq!(read.change, imgroups_core::Change::ChatMarkedRead);
    assert_eq!(read.chat_guid.to_string(), "any;+;5a5a04");
    assert!(read.is_from_me);
    assert_eq!(read.actor.as_ref().map(|a| a.as_str()), Some(ME));
    let in_group = backend.messages("any;+;5a5a04").await;
    assert!(in_group.iter().all(|m| m.is_read()), "{in_group:?}");
    assert_eq!(
        in_group[0].date_read.map(|t| t.0),
        Some(imgroups_chatdb::Timestamp::from_apple(f.date(11)).unix_nanos()),
        "chat.db's read date"
    );
    assert!(!backend.messages("any;-;+15550002222").await[0].is_read());

    // Across restarts: recorded once.
    let data = backend.stop();
    let backend = start_with(f.home(), data, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.log().await, log);

    // Mark read through Messages: answered once the read is in the log.
    let _helper = backend.fake(&f, FakeReply::Apply).await;
    let mark = |chat: &str| {
        let engine = backend.engine.clone();
        let command = Command::mark_read(chat).unwrap();
        let me = backend.me;
        async move { engine.execute(me, None, command).await }
    };
    assert_eq!(mark("any;-;+15550002222").await.unwrap(), Outcome::Empty);
    let log = backend.log().await;
    assert_eq!(kinds(&log[4..]), ["chat.markedRead"]);
    assert_eq!(log[4].chat_guid.to_string(), "any;-;+15550002222");
    assert!(backend.messages("any;-;+15550002222").await[0].is_read());
    // Nothing unread: answered at once, nothing recorded.
    assert_eq!(mark("any;+;5a5a04").await.unwrap(), Outcome::Empty);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.log().await.len(), 5);
    let data = backend.stop();
    let backend = start_with(f.home(), data, Duration::from_secs(10)).await;
    assert_eq!(backend.log().await.len(), 5);
}

/// `chats.setTyping` reaches Messages with the chat's GUID as chat.db holds it, and stays
/// transient (nothing in the log); an SMS chat is refused as every write there is, an unknown
/// chat is `chatNotFound`, and without a helper it is refused as every write is.
#[tokio::test(flavor = "multi_thread")]
async fn typing_indicators_reach_messages_and_are_not_logged() {
    let f = Fixture::new(Version::Tahoe);
    text_only_group(&f, "any;+;7e5701", "iMessage", &["alice@example.com"]);
    text_only_group(&f, "any;+;5a5a05", "SMS", &["+15550002222"]);
    let bob = f.handle("+15550003333");
    f.post(
        f.direct("any", "+15550003333", bob),
        Msg {
            guid: &guid(41),
            text: Some("hey"),
            handle: bob,
            minute: 5,
            ..Msg::default()
        },
    );
    let backend = start(f.home(), Duration::from_secs(10)).await;
    let before = backend.log().await;
    let helper = backend.fake(&f, FakeReply::Apply).await;
    let typing = |chat: &str, on: bool| {
        let engine = backend.engine.clone();
        let (chat, me) = (chat.to_owned(), backend.me);
        async move { engine.set_typing(me, chat, on).await }
    };
    typing("any;+;7e5701", true).await.expect("shown");
    typing("any;+;7e5701", false).await.expect("hidden");
    typing("any;-;+15550003333", true).await.expect("shown");
    let seen: Vec<_> = helper
        .typing()
        .into_iter()
        .map(|t| (t.chat_guid, t.typing))
        .collect();
    assert_eq!(
        seen,
        [
            ("any;+;7e5701".to_owned(), true),
            ("any;+;7e5701".to_owned(), false),
            ("any;-;+15550003333".to_owned(), true),
        ]
    );

    let err = typing("any;+;5a5a05", true).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::OperationNotSupported, "{err:?}");
    assert!(err.message.contains("SMS/RCS"), "{}", err.message);
    let err = typing("any;+;nosuchchat", true).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ChatNotFound, "{err:?}");
    assert_eq!(helper.typing().len(), 3, "Messages was not asked");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.log().await, before, "nothing logged");

    // Without a helper, as every write.
    helper.disconnect().await;
    let data = backend.stop();
    let store = Arc::new(SqliteStore::open(Config::new(data.path().join("imgroups.db"))).unwrap());
    let mac = Mac::new(MacOptions {
        home: f.home().to_owned(),
        me: Address::parse(ME).unwrap(),
        helper: None,
        rescan: Duration::from_millis(100),
        write_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let engine = Arc::new(Engine::new(
        store.clone(),
        mac.network(),
        EngineConfig::default(),
    ));
    let (me, _) = admin::ensure_account(&*store, &Address::parse(ME).unwrap())
        .await
        .unwrap();
    let err = engine
        .set_typing(me, "any;+;7e5701".into(), true)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::OperationNotSupported, "{err:?}");
    assert!(err.message.contains("--helper"), "{}", err.message);
}
