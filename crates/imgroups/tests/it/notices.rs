//! Notices are hints: a change committed by another process whose notice never reaches the
//! server (here: a server that does not listen for other processes at all) is still delivered
//! to live subscribers, by the server's periodic re-read of their logs — late, never skipped.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use imgroups_client::{
    Address as ClientAddress, Client, CreateChatOptions, EventFilter, GroupChange,
};
use imgroups_core::port::Store;
use imgroups_core::{admin, Address, Command, Engine, EngineConfig};
use imgroups_sim::Simulator;
use imgroups_store_sqlite::{Config, Durability, Role, SqliteStore};
use tokio::net::TcpListener;

fn open(db: &std::path::Path) -> SqliteStore {
    let mut config = Config::new(db);
    config.durability = Durability::Normal;
    // Neither store listens for other processes' notices: the server never hears the other
    // "process" below, as when a hint is lost.
    config.role = Role::Tool;
    SqliteStore::open(config).expect("store")
}

fn engine(store: &SqliteStore) -> Arc<Engine> {
    Arc::new(Engine::new(
        Arc::new(store.clone()),
        Simulator::network(),
        EngineConfig::default(),
    ))
}

async fn next(live: &mut imgroups_client::GroupEventStream) -> imgroups_client::GroupEvent {
    tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
        .expect("no error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_notice_is_lost_still_reaches_live_subscribers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("imgroups.db");
    let store = open(&db);
    let me = Address::parse("me@example.com").expect("address");
    let token = admin::add_account(&store, &me).await.expect("account");

    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", grpc.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = imgroups_server::Options {
        recheck: Duration::from_millis(200),
        ..imgroups_server::Options::default()
    };
    let server = tokio::spawn(imgroups_server::serve(
        grpc,
        http,
        engine(&store),
        options,
        imgroups_server::HttpOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));

    let client = Client::builder()
        .address(url)
        .token(token)
        .build()
        .expect("client");
    let people: Vec<ClientAddress> = ["zoe@example.net", "a@example.com", "b@example.com"]
        .iter()
        .map(|a| ClientAddress::parse(a).expect("address"))
        .collect();
    let chat = client
        .chats()
        .create(&people, CreateChatOptions::default())
        .await
        .expect("create")
        .chat
        .guid;
    let mut live = client
        .groups()
        .subscribe_events(EventFilter::all())
        .await
        .expect("subscribe");
    // The server's own write: heard at once, and proof that the subscription is in place.
    client
        .groups()
        .set_display_name(&chat, "Ours")
        .await
        .expect("rename");
    assert_eq!(next(&mut live).await.sequence, 1);

    // Another process: its commit's notice goes nowhere.
    let other = open(&db);
    let zoe = Address::parse("zoe@example.net").expect("address");
    let rename = Command::set_display_name(&chat.to_string(), "Zoe's").expect("command");
    imgroups_sim::act(&engine(&other), &zoe, rename)
        .await
        .expect("zoe renames");
    other.close().await;

    let event = next(&mut live).await;
    assert_eq!(event.sequence, 2, "no event skipped");
    assert!(!event.is_from_me);
    assert_eq!(
        event.actor.as_ref().map(|a| a.address.as_str()),
        Some("zoe@example.net")
    );
    assert_eq!(
        event.change,
        GroupChange::DisplayNameChanged {
            display_name: "Zoe's".into()
        }
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown within 10 s")
        .expect("join")
        .expect("serve");
    store.close().await;
}
