//! The Mac backend on fixture chat.db files with the real schemas, the faithful fake helper
//! playing the BlueBubbles helper inside Messages, and the real engine on a SQLite store:
//! what a client of `serve --backend chatdb` sees, without the wire.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use imgroups_chatdb::testing::{
    FakeHelper, FakeHelperOptions, FakeReply, Fixture, Msg, Version, PHOTO_PNG,
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
    let data = tempfile::tempdir().unwrap();
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
        mac.backend(),
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
