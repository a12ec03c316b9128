//! `imgroups sim reset` and `POST /console/api/sim:reset` on a running server: open streams
//! end with `FAILED_PRECONDITION` / `preconditionFailed`, `reason=reset`; tokens keep
//! working; sequences never go back, so a cursor from before the reset continues after it;
//! on PostgreSQL a reset made through one node ends the streams of another.

use imgroups_proto::pb;
use imgroups_store_tests::pg::TestDatabase;
use tonic::Code;

use crate::support::{assert_reset, cli, clients, ends_with, live, Server, WITHIN};

#[tokio::test]
async fn a_reset_clears_the_world_ends_streams_and_keeps_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let data = server.dir.to_str().unwrap().to_owned();
    let me = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut mine = clients(&channel, &me);
    let chat = mine
        .create_group(&["carol@example.com", "dan@example.com"])
        .await;
    mine.rename(&chat, "before").await.expect("rename");
    let (_, head) = mine.catch_up(0).await;
    assert!(head >= 1);
    let stream = live(&channel, &me).await;
    let http = reqwest::Client::new();
    let mut sse = http
        .get(format!("http://{}/v1/events:stream", server.http))
        .bearer_auth(&me)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);

    assert_eq!(cli(&["sim", "reset", "--data", &data]), "reset 1");

    assert_reset(&ends_with(stream).await);
    let sse_text = tokio::time::timeout(WITHIN, async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = sse.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .expect("the SSE stream ends after the reset");
    assert!(
        sse_text.contains("event: error") && sse_text.contains("\"reset\""),
        "{sse_text:?}"
    );

    // The token still works; the chat is gone; the head stayed.
    let gone = mine
        .chats
        .get_chat(pb::GetChatRequest {
            chat_guid: chat.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    let (events, after_reset) = mine.catch_up(0).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(after_reset, head, "sequences never go back");

    // A cursor from before the reset continues with what came after it.
    let chat = mine
        .create_group(&["carol@example.com", "dan@example.com"])
        .await;
    mine.rename(&chat, "after").await.expect("rename");
    let (events, new_head) = mine.catch_up(0).await;
    assert!(new_head > head);
    assert!(!events.is_empty());
    assert!(events.iter().all(|(seq, _)| *seq > head), "{events:?}");

    // From the console's API, with an admin token: the server's own streams end at once.
    let admin = cli(&["admin", "token", "--data", &data]);
    let stream = live(&channel, &me).await;
    let url = format!("http://{}/console/api/sim:reset", server.http);
    let refused = http.post(&url).send().await.expect("post");
    assert_eq!(refused.status(), 401);
    let answer = http
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(answer["resets"], 2, "{answer}");
    assert_reset(&ends_with(stream).await);
    let (events, _) = mine.catch_up(0).await;
    assert!(events.is_empty());

    // --all: accounts and tokens go, admin tokens stay.
    assert_eq!(cli(&["sim", "reset", "--all", "--data", &data]), "reset 3");
    let refused = mine.catch_up_status().await;
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let session = http
        .get(format!("http://{}/console/api/session", server.http))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("session");
    assert_eq!(session.status(), 200);
}

#[tokio::test]
async fn a_reset_through_postgres_ends_streams_on_another_node() {
    let Some(db) = TestDatabase::create("reset_streams") else {
        return;
    };
    let url = db.url.clone();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--database-url", url.as_str()];
    let _a = Server::start(a_dir.path(), &args);
    let b = Server::start(b_dir.path(), &args);
    let bob = cli(&["account", "add", "bob@example.com", "--database-url", &url]);
    let channel = b.channel().await;
    let mut bobs = clients(&channel, &bob);
    let chat = bobs
        .create_group(&["carol@example.com", "dan@example.com"])
        .await;
    bobs.rename(&chat, "before").await.expect("rename");
    let stream = live(&channel, &bob).await;

    assert_eq!(cli(&["sim", "reset", "--database-url", &url]), "reset 1");

    assert_reset(&ends_with(stream).await);
    let (events, _) = bobs.catch_up(0).await;
    assert!(events.is_empty(), "{events:?}");
}
