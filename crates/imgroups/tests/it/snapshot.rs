//! `imgroups sim snapshot export|import` and `/console/api/sim/snapshot[:import]` on a
//! running server: the file round-trips byte for byte, an import brings the exported world
//! back (names, heads, tokens) and ends open streams as a reset does, a bad file changes
//! nothing, and a snapshot taken on SQLite is the same file once imported into PostgreSQL.

use imgroups_store_tests::pg::TestDatabase;
use tonic::Code;

use crate::support::{assert_reset, cli, clients, ends_with, live, Server, BIN};

#[tokio::test]
async fn an_import_brings_the_exported_world_back_and_ends_streams() {
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

    let file = dir.path().join("world.json");
    let file_arg = file.to_str().unwrap();
    let said = cli(&["sim", "snapshot", "export", file_arg, "--data", &data]);
    assert!(said.starts_with("exported 1 accounts, 1 groups"), "{said}");
    let exported = std::fs::read(&file).unwrap();

    // The world moves on; a stream is open.
    mine.rename(&chat, "later").await.expect("rename");
    let bob = server.add_account("bob@example.com");
    let stream = live(&channel, &me).await;

    let said = cli(&["sim", "snapshot", "import", file_arg, "--data", &data]);
    assert!(said.starts_with("imported 1 accounts, 1 groups"), "{said}");

    assert_reset(&ends_with(stream).await);
    // The exported world: its name, its head, its token; bob was not in it.
    assert_eq!(
        mine.get_chat(&chat).await.display_name.as_deref(),
        Some("before")
    );
    let (_, now) = mine.catch_up(0).await;
    assert_eq!(now, head);
    let refused = clients(&channel, &bob).catch_up_status().await;
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // Over HTTP with an admin token: the same bytes.
    let admin = cli(&["admin", "token", "--data", &data]);
    let http = reqwest::Client::new();
    let url = format!("http://{}/console/api/sim/snapshot", server.http);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let got = http.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(got.bytes().await.unwrap(), exported, "round trip");

    // A bad file: its line and column, and nothing changes.
    let import = format!("http://{}/console/api/sim/snapshot:import", server.http);
    let bad = String::from_utf8(exported.clone())
        .unwrap()
        .replace("\"before\"", "before");
    let refused = http
        .post(&import)
        .bearer_auth(&admin)
        .body(bad.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["errorCode"], "invalidArgument", "{body}");
    let line = bad.lines().position(|l| l.contains(": before")).unwrap() + 1;
    assert_eq!(body["context"]["line"], line.to_string(), "{body}");
    mine.rename(&chat, "kept").await.expect("rename");
    let refused = http
        .post(&import)
        .bearer_auth(&me)
        .body(exported.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        401,
        "an account token is not an admin token"
    );
    assert_eq!(
        mine.get_chat(&chat).await.display_name.as_deref(),
        Some("kept")
    );

    // A good one, from the HTTP API.
    let answer = http
        .post(&import)
        .bearer_auth(&admin)
        .body(exported.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accounts"], 1, "{answer}");
    assert_eq!(answer["groups"], 1, "{answer}");
    assert_eq!(
        mine.get_chat(&chat).await.display_name.as_deref(),
        Some("before")
    );

    // A file the CLI refuses names itself, line and column, and writes nothing.
    std::fs::write(dir.path().join("bad.json"), &bad).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["sim", "snapshot", "import"])
        .arg(dir.path().join("bad.json"))
        .args(["--data", &data])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json: snapshot:") && err.contains(&format!("line {line}")),
        "{err}"
    );
    assert!(err.trim_end().ends_with("(invalidArgument)"), "{err}");
}

#[test]
fn a_sqlite_snapshot_is_the_same_file_in_postgresql() {
    let Some(db) = TestDatabase::create("snapshot_cross") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    cli(&["account", "add", "a@example.com", "--data", &data]);
    cli(&["account", "add", "b@example.com", "--data", &data]);
    let out = std::process::Command::new(BIN)
        .args(["sim", "seed", "--data", &data])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/seed/world.toml"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("world.json");
    let file = file.to_str().unwrap();
    cli(&["sim", "snapshot", "export", file, "--data", &data]);
    let sqlite = std::fs::read(file).unwrap();

    cli(&["sim", "snapshot", "import", file, "--database-url", &db.url]);
    let again = dir.path().join("again.json");
    let again = again.to_str().unwrap();
    cli(&[
        "sim",
        "snapshot",
        "export",
        again,
        "--database-url",
        &db.url,
    ]);
    assert!(
        std::fs::read(again).unwrap() == sqlite,
        "the PostgreSQL export differs from the SQLite one"
    );
}
