//! `serve`: gRPC and HTTP from one call, one shutdown that also ends open SSE streams and
//! webhook deliveries.

use std::sync::Arc;
use std::time::Duration;

use imgroups_core::port::Store;
use imgroups_core::{admin, Address, Engine, EngineConfig};
use imgroups_sim::Simulator;
use imgroups_store_sqlite::{Config, Durability, SqliteStore};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_grpc_share_one_server_and_one_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("imgroups.db");
    let mut config = Config::new(&db);
    config.durability = Durability::Normal;
    let store = SqliteStore::open(config).expect("store");
    let me = Address::parse("me@example.com").expect("address");
    let token = admin::add_account(&store, &me).await.expect("account");
    let engine = Arc::new(Engine::new(
        Arc::new(store.clone()),
        Simulator::network(),
        EngineConfig::default(),
    ));
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", http.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(imgroups_server::serve(
        grpc,
        http,
        engine,
        imgroups_server::Options::default(),
        imgroups_server::HttpOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/v1/chats"))
        .bearer_auth(&token)
        .body(r#"{"addresses":["a@example.com","b@example.com"]}"#)
        .send()
        .await
        .expect("create")
        .bytes()
        .await
        .expect("body");
    let created: serde_json::Value = serde_json::from_slice(&created).expect("json");
    let guid = created["chat"]["guid"].as_str().expect("guid").to_owned();
    let renamed = client
        .post(format!("{base}/v1/groups:setDisplayName"))
        .bearer_auth(&token)
        .body(serde_json::json!({ "chatGuid": guid, "displayName": "Trip" }).to_string())
        .send()
        .await
        .expect("rename");
    assert_eq!(renamed.status(), 200);
    assert_eq!(
        renamed.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
    let body: serde_json::Value =
        serde_json::from_slice(&renamed.bytes().await.expect("body")).expect("json");
    assert_eq!(body["chat"]["displayName"], "Trip");

    // An open SSE stream must not hold the shutdown up.
    let mut sse = client
        .get(format!("{base}/v1/events:stream?afterSequence=0"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);
    let first = sse.chunk().await.expect("chunk").expect("an event");
    let text = String::from_utf8_lossy(&first);
    assert!(text.starts_with("id: 1\n"), "{text}");

    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown within 10 s")
        .expect("join");
    result.expect("serve");
    // The stream ended with the server.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = sse.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "sse stream ended");
    store.close().await;
}
