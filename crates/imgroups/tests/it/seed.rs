//! `imgroups sim seed FILE`: a world made at once beside a running server — the example seed
//! (examples/seed/world.toml) seeded into a live server's data directory and read back with
//! the Rust SDK and the tokens the seed printed — and the refusals, each with its position.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use imgroups_client::{ChatGuid, Client, MessageGuid};

use crate::support::{Server, BIN};

const WORLD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/seed/world.toml"
);

/// Runs the binary; its exit code, stdout and stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run imgroups");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The seed's output as `KIND NAME → VALUE` (`token`, `chat`, `message`).
fn printed(stdout: &str) -> HashMap<(String, String), String> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.splitn(3, ' ');
            let (kind, name, value) = (words.next()?, words.next()?, words.next()?);
            Some(((kind.to_owned(), name.to_owned()), value.to_owned()))
        })
        .collect()
}

fn client(server: &Server, token: &str) -> Client {
    Client::builder()
        .address(format!("http://{}", server.grpc))
        .token(token)
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_seed_makes_its_world_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let data = server.dir.to_str().unwrap().to_owned();

    let (code, out, err) = run(&["sim", "seed", WORLD, "--data", &data]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.ends_with("seeded: 2 accounts, 2 chats, 7 steps\n"),
        "{out}"
    );
    let seen = printed(&out);
    let get = |kind: &str, name: &str| {
        seen.get(&(kind.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("no `{kind} {name}` line in {out}"))
            .clone()
    };
    let bot_token = get("token", "bot@example.com");
    assert!(bot_token.starts_with("imgr_"), "{bot_token}");
    let party = ChatGuid::parse(&get("chat", "party")).expect("a chat GUID");
    let hello = MessageGuid::parse(&get("message", "hello")).expect("a message GUID");

    // The bot's own client, on the running server, sees the group as the seed made it.
    let bot = client(&server, &bot_token);
    let chat = bot.chats().get(&party).await.expect("the seeded group");
    assert_eq!(chat.display_name, "Zoe's party");
    assert!(chat.is_group);
    let mut members: Vec<String> = chat
        .participants
        .iter()
        .map(|p| p.address.to_string())
        .collect();
    members.sort();
    assert_eq!(
        members,
        ["alice@example.com", "carol@example.com", "zoe@example.net"]
    );
    let page = bot
        .messages()
        .list_in_chat(&party, Default::default())
        .await
        .expect("messages");
    let texts: Vec<&str> = page
        .messages
        .iter()
        .filter_map(|m| m.text.as_deref())
        .collect();
    assert!(texts.contains(&"hi everyone"), "{texts:?}");
    assert!(texts.contains(&"Welcome, zoe@example.net!"), "{texts:?}");
    let hi = bot.messages().get(&hello).await.expect("the named message");
    assert_eq!(hi.text.as_deref(), Some("hi everyone"));
    assert_eq!(hi.reactions.len(), 1, "alice's tapback: {:?}", hi.reactions);
    let reply = page
        .messages
        .iter()
        .find(|m| m.is_from_me)
        .expect("the bot's reply");
    assert_eq!(reply.reply_to.as_ref(), Some(&hello));
    // The other group is the other account's, not the bot's.
    assert_eq!(bot.chats().count(false).await.expect("count"), 1);
    let me = client(&server, &get("token", "me@example.com"));
    assert_eq!(me.chats().count(false).await.expect("count"), 1);

    // Again with --reset: the old world is gone, the accounts (and their tokens) stay, so
    // nothing new is printed for them and the bot's client keeps working.
    let (code, out, err) = run(&["sim", "seed", WORLD, "--reset", "--data", &data]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("token "), "{out}");
    assert!(
        out.ends_with("seeded: 0 accounts, 2 chats, 7 steps\n"),
        "{out}"
    );
    let again = ChatGuid::parse(&printed(&out)[&("chat".to_owned(), "party".to_owned())])
        .expect("a chat GUID");
    assert_ne!(again, party);
    assert_eq!(bot.chats().count(false).await.expect("count"), 1);
    assert_eq!(
        bot.chats()
            .get(&again)
            .await
            .expect("seeded again")
            .display_name,
        "Zoe's party"
    );
}

/// Writes `source` as a seed file and seeds it into `data`.
fn seed(dir: &Path, data: &str, source: &str) -> (i32, String, String) {
    let file = dir.join("seed.toml");
    std::fs::write(&file, source).unwrap();
    run(&["sim", "seed", file.to_str().unwrap(), "--data", data])
}

#[test]
fn timings_and_waits_are_refused_where_they_are_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let create =
        "accounts = [\"a@example.com\"]\n[[step]]\nas = \"a@example.com\"\ndo = \"create\"\naddresses = [\"b@example.com\"]\n";

    let (code, out, err) = seed(dir.path(), data, &format!("{create}  at = \"1s\"\n"));
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("seed.toml:6:3: at: a seed has no timings"),
        "{err}"
    );
    let (code, _, err) = seed(
        dir.path(),
        data,
        &format!("{create}[[step]]\nafter = \"500ms\"\nas = \"b@example.com\"\ndo = \"leave\"\nchat = \"any;+;c1\"\n"),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("seed.toml:7:1: after: a seed has no timings"),
        "{err}"
    );
    let (code, _, err) = seed(
        dir.path(),
        data,
        &format!("{create}[[step]]\nwait = {{ from = \"a@example.com\" }}\n"),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("seed.toml:7:1: wait: a seed has no waits"),
        "{err}"
    );
    let (code, _, err) = seed(
        dir.path(),
        data,
        "accounts = [\"a@example.com\", \"nope\"]\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("seed.toml:1:30: accounts: \"nope\" is not"),
        "{err}"
    );
    // None of these opened the store.
    assert!(!Path::new(data).exists(), "a bad seed wrote {data}");

    // A refused step names its line; what came before it stays done.
    let (code, out, err) = seed(
        dir.path(),
        data,
        "accounts = [\"a@example.com\"]\n\n[[step]]\nas = \"zed@example.com\"\ndo = \"create\"\naddresses = [\"b@example.com\"]\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("token a@example.com imgr_"), "{out}");
    assert!(
        err.contains("seed.toml:3: zed@example.com is not an account"),
        "{err}"
    );

    // A scenario is not a seed: it has no accounts list.
    let file = dir.path().join("play.toml");
    std::fs::write(
        &file,
        "accounts = [\"a@example.com\"]\n[[step]]\nwait = { from = \"a@example.com\" }\n",
    )
    .unwrap();
    let (code, _, err) = run(&["sim", "play", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("play.toml:1:12: a scenario has no accounts list"),
        "{err}"
    );
}

/// Posts `source` to the console's seed route with `query`; the status and the JSON answer.
async fn post_seed(
    server: &Server,
    token: Option<&str>,
    query: &str,
    source: &str,
) -> (u16, serde_json::Value) {
    let url = format!("http://{}/console/api/sim:seed{query}", server.http);
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/toml")
        .body(source.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("post the seed");
    let status = response.status().as_u16();
    let text = response.text().await.expect("the answer");
    let answer = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, answer)
}

#[tokio::test]
async fn the_console_seeds_a_world_over_http_and_checks_the_whole_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let data = server.dir.to_str().unwrap().to_owned();
    let admin = crate::support::cli(&["admin", "token", "--data", &data]);
    let world = std::fs::read_to_string(WORLD).expect("the example seed");

    // An admin route: no token, or an account's token, is refused and seeds nothing.
    let (status, answer) = post_seed(&server, None, "", &world).await;
    assert_eq!(status, 401, "{answer}");
    let account_token = server.token.clone().expect("the default account's token");
    let (status, answer) = post_seed(&server, Some(&account_token), "", &world).await;
    assert_eq!(status, 401, "{answer}");

    // The example world, with the tokens of the accounts it made and what it named.
    let (status, answer) = post_seed(&server, Some(&admin), "?reset=true", &world).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reset"], true, "{answer}");
    assert_eq!(
        answer["counts"],
        serde_json::json!({"accounts": 2, "chats": 2, "steps": 7}),
        "{answer}"
    );
    let bot_token = answer["tokens"]["bot@example.com"]
        .as_str()
        .expect("the bot's token")
        .to_owned();
    assert!(answer["tokens"]["me@example.com"].is_string(), "{answer}");
    let party = ChatGuid::parse(answer["chats"]["party"].as_str().expect("party")).expect("GUID");
    let hello =
        MessageGuid::parse(answer["messages"]["hello"].as_str().expect("hello")).expect("GUID");
    let bot = client(&server, &bot_token);
    let chat = bot.chats().get(&party).await.expect("the seeded group");
    assert_eq!(chat.display_name, "Zoe's party");
    let hi = bot.messages().get(&hello).await.expect("the named message");
    assert_eq!(hi.text.as_deref(), Some("hi everyone"));
    assert_eq!(bot.chats().count(false).await.expect("count"), 1);

    // A bad file answers where the mistake is and changes nothing, its reset included.
    let timed = world.replacen("do = \"create\"", "do = \"create\"\nat = \"1s\"", 1);
    let line = timed
        .lines()
        .position(|l| l == "at = \"1s\"")
        .expect("the timing")
        + 1;
    let (status, answer) = post_seed(&server, Some(&admin), "?reset=true", &timed).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errorCode"], "invalidArgument", "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("line {line}, column 1: at: a seed has no timings")),
        "{answer}"
    );
    assert_eq!(answer["context"]["line"], line.to_string(), "{answer}");
    assert_eq!(answer["context"]["column"], "1", "{answer}");
    assert_eq!(bot.chats().count(false).await.expect("count"), 1);
    bot.chats().get(&party).await.expect("still there");

    // A step that would read the server's disk is such a mistake, and the disk is not read.
    let icon = "[[step]]\nas = \"zoe@example.net\"\ndo = \"icon-set\"\nchat = \"any;+;chat1\"\nfile = \"/etc/hostname\"\n";
    let (status, answer) = post_seed(&server, Some(&admin), "?reset=true", icon).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errorCode"], "invalidArgument", "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "line 5, column 8: file = \"/etc/hostname\": a seed sent over HTTP cannot read a \
             file on the server's disk"
        ),
        "{answer}"
    );
    assert_eq!(bot.chats().count(false).await.expect("count"), 1);

    // A step refused while seeding answers its own error with its line; the steps before it
    // stay done (the account), as with `imgroups sim seed`.
    let refused = "accounts = [\"a@example.com\"]\n\n[[step]]\nas = \"zed@example.com\"\ndo = \"create\"\naddresses = [\"b@example.com\"]\n";
    let (status, answer) = post_seed(&server, Some(&admin), "", refused).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["errorCode"], "addressNotFound", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("line 3: zed@example.com is not an account"),
        "{answer}"
    );
    assert_eq!(answer["context"]["line"], "3", "{answer}");

    // Seeded again after a reset: the accounts and their tokens stay, so none is new.
    let (status, answer) = post_seed(&server, Some(&admin), "?reset=true", &world).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tokens"], serde_json::json!({}), "{answer}");
    assert_eq!(answer["counts"]["accounts"], 0, "{answer}");
    assert_eq!(bot.chats().count(false).await.expect("count"), 1);
    let (status, answer) = post_seed(&server, Some(&admin), "?reset=maybe", &world).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["context"]["field"], "reset", "{answer}");
    // A seed file may be larger than other console bodies (64 KiB), up to 1 MiB.
    let padded = format!("{world}\n{}", "#".repeat(100 * 1024));
    let (status, answer) = post_seed(&server, Some(&admin), "", &padded).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post_seed(&server, Some(&admin), "", &"#".repeat(1024 * 1024 + 1)).await;
    assert_eq!(answer["context"]["limit"], "1048576", "{status} {answer}");
}
