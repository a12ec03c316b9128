//! Revoking a token ends the streams opened with it, on every process serving the store: gRPC
//! live streams with `UNAUTHENTICATED` + `tokenBlocked`, SSE with a final `event: error`.
//! Streams of other tokens go on.

use imgroups_proto::pb::subscribe_group_events_response::Payload;
use imgroups_store_tests::pg::TestDatabase;
use tonic::{Code, Status};

use crate::support::{cli, clients, ends_with, live, Server, WITHIN};

const BOB: &str = "bob@example.com";

fn assert_token_blocked(status: &Status) {
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get("error-code")
            .and_then(|v| v.to_str().ok()),
        Some("tokenBlocked"),
        "{status:?}"
    );
}

#[tokio::test]
async fn revoking_a_token_ends_its_grpc_and_sse_streams() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let me = server.token.clone().expect("token");
    let bob = server.add_account(BOB);
    let channel = server.channel().await;
    let revoked_stream = live(&channel, &bob).await;
    let kept_stream = live(&channel, &me).await;

    let http = reqwest::Client::new();
    let mut sse = http
        .get(format!("http://{}/v1/events:stream", server.http))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);

    let data = server.dir.to_str().unwrap();
    cli(&["token", "revoke", &bob, "--data", data]);

    assert_token_blocked(&ends_with(revoked_stream).await);
    let sse_text = tokio::time::timeout(WITHIN, async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = sse.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .expect("the SSE stream ends after the revocation");
    let error = sse_text
        .split("\n\n")
        .find(|frame| frame.contains("event: error"))
        .unwrap_or_else(|| panic!("an error frame in {sse_text:?}"));
    let body = error
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("error data");
    let body: serde_json::Value = serde_json::from_str(body).expect("json error body");
    assert_eq!(body["errorCode"], "tokenBlocked", "{body}");
    assert_eq!(body["code"], "unauthenticated", "{body}");

    // Another token's stream goes on: it still gets events.
    let mut kept_stream = kept_stream;
    let mut mine = clients(&channel, &me);
    let chat = mine
        .create_group(&["carol@example.com", "dan@example.com"])
        .await;
    mine.rename(&chat, "still here").await.expect("rename");
    let got = tokio::time::timeout(WITHIN, async {
        loop {
            let frame = kept_stream.message().await.expect("frame").expect("open");
            if let Some(Payload::GroupChanged(e)) = frame.payload {
                return e;
            }
        }
    })
    .await
    .expect("the other stream still delivers");
    assert_eq!(got.chat_guid, chat);
}

#[tokio::test]
async fn a_revocation_through_postgres_ends_streams_on_another_node() {
    let Some(db) = TestDatabase::create("revoke_streams") else {
        return;
    };
    let url = db.url.clone();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--database-url", url.as_str()];
    let _a = Server::start(a_dir.path(), &args);
    let b = Server::start(b_dir.path(), &args);
    let bob = cli(&["account", "add", BOB, "--database-url", &url]);
    let channel = b.channel().await;
    let stream = live(&channel, &bob).await;

    cli(&["token", "revoke", &bob, "--database-url", &url]);

    assert_token_blocked(&ends_with(stream).await);
}
