//! Injected faults and the console's API, against the real binary: a fault made with the CLI
//! beside a running server fails exactly its calls (over gRPC and HTTP alike) with the chosen
//! code and retryable flag, changes nothing, and then lets calls pass; latency faults delay;
//! the console's routes need an admin token and check what they are given.

use std::time::{Duration, Instant};

use crate::support::{cli, clients, Server};

fn data(server: &Server) -> &str {
    server.dir.to_str().expect("utf-8 dir")
}

/// Polls `check` until it returns `Some`, for at most 5 s (faults made by the CLI reach the
/// server within a quarter of a second).
async fn eventually<T>(mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "condition not met within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request with an optional bearer token and JSON body: its status and JSON answer.
async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = req.send().await.expect("http call");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn meta<'a>(status: &'a tonic::Status, key: &str) -> Option<&'a str> {
    status.metadata().get(key).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counted_fault_from_the_cli_fails_that_many_calls_on_any_transport_then_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("first start prints a token");
    let bob = server.add_account("bob@example.com");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let mut other = clients(&channel, &bob);
    let chat = me
        .create_group(&["bob@example.com", "carol@example.com"])
        .await;

    let added = cli(&[
        "sim",
        "fault",
        "add",
        "me@imgroups.local",
        "--method",
        "SetDisplayName",
        "--code",
        "burstRateExceeded",
        "--retryable",
        "--count",
        "2",
        "--data",
        data(&server),
    ]);
    assert!(!added.is_empty());

    // First faulted call over gRPC (as soon as the server has read the fault).
    let status = eventually(async || me.rename(&chat, "one").await.err()).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(meta(&status, "error-code"), Some("burstRateExceeded"));
    assert_eq!(meta(&status, "x-retryable"), Some("true"));
    assert!(meta(&status, "error-context-fault").is_some());
    assert!(status.message().contains("injected fault"), "{status:?}");
    // Another account is not affected.
    other
        .rename(&chat, "bob's name")
        .await
        .expect("bob has no fault");

    // The second over HTTP: 429 with the JSON error, retryable.
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("http://{}/v1/groups:setDisplayName", server.http),
        Some(&token),
        Some(&serde_json::json!({ "chatGuid": chat, "displayName": "two" })),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["errorCode"], "burstRateExceeded");
    assert_eq!(body["retryable"], true);

    // Neither faulted call changed anything; the third passes.
    assert_eq!(
        me.get_chat(&chat).await.display_name.as_deref(),
        Some("bob's name")
    );
    me.rename(&chat, "three")
        .await
        .expect("the fault is used up");
    let listed = cli(&["sim", "fault", "list", "--data", data(&server)]);
    assert!(!listed.contains("SetDisplayName"), "{listed}");
    server.stop();
}

/// The caller's `grpc-timeout`: a call still waiting at its deadline (here behind a 2 s
/// latency fault) is answered CANCELLED "Timeout expired", as tonic's own server answers, and
/// what it would have done is not done, then or later. (Had the deadline been ignored, the
/// rename would succeed after 2 s and never be refused.)
#[tokio::test(flavor = "multi_thread")]
async fn a_call_past_its_grpc_timeout_is_cancelled_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let chat = me.create_group(&["a@example.com", "b@example.com"]).await;
    let before = me.get_chat(&chat).await.display_name;

    cli(&[
        "sim",
        "fault",
        "add",
        "me@imgroups.local",
        "--method",
        "SetDisplayName",
        "--latency-ms",
        "2000",
        "--data",
        data(&server),
    ]);
    let rename = |name: &str| {
        let mut request = tonic::Request::new(imgroups_proto::pb::SetDisplayNameRequest {
            chat_guid: chat.clone(),
            display_name: name.to_owned(),
            client_message_id: None,
        });
        request.set_timeout(Duration::from_millis(300));
        request
    };
    // The CLI's fault reaches the server within a quarter of a second: until then a rename may
    // pass, so each try uses a name of its own and the last one is the one that must not land.
    let mut tries = 0;
    let (status, name) = eventually(async || {
        tries += 1;
        let name = format!("Late {tries}");
        match me.groups.set_display_name(rename(&name)).await {
            Ok(_) => None,
            Err(status) => Some((status, name)),
        }
    })
    .await;
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    assert_eq!(status.message(), "Timeout expired");

    // The rename was dropped with the call: once the fault's wait would have ended, it still
    // has not run.
    cli(&["sim", "fault", "clear", "--all", "--data", data(&server)]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = me.get_chat(&chat).await.display_name;
    assert_ne!(after, Some(name), "a cancelled rename must not land");
    if tries == 1 {
        assert_eq!(after, before);
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_and_every_method_faults_until_cleared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("token");
    let channel = server.channel().await;
    let mut me = clients(&channel, &token);
    let chat = me.create_group(&["a@example.com", "b@example.com"]).await;

    // Latency only: the call is delayed, then runs.
    cli(&[
        "sim",
        "fault",
        "add",
        "me@imgroups.local",
        "--method",
        "GetChat",
        "--latency-ms",
        "400",
        "--data",
        data(&server),
    ]);
    let delayed = eventually(async || {
        let started = Instant::now();
        me.get_chat(&chat).await;
        (started.elapsed() >= Duration::from_millis(400)).then_some(())
    })
    .await;
    assert_eq!(delayed, ());
    assert_eq!(
        me.get_chat(&chat).await.guid,
        chat,
        "a latency fault lets the call run"
    );

    // Every method, not retryable, until cleared.
    cli(&["sim", "fault", "clear", "--all", "--data", data(&server)]);
    cli(&[
        "sim",
        "fault",
        "add",
        "me@imgroups.local",
        "--method",
        "*",
        "--code",
        "databaseError",
        "--data",
        data(&server),
    ]);
    let status = eventually(async || me.rename(&chat, "x").await.err()).await;
    assert_eq!(meta(&status, "error-code"), Some("databaseError"));
    assert_eq!(
        meta(&status, "x-retryable"),
        None,
        "retryable only when asked for"
    );
    let count = me
        .chats
        .get_chat_count(imgroups_proto::pb::GetChatCountRequest::default())
        .await
        .expect_err("every method fails");
    assert_eq!(meta(&count, "error-code"), Some("databaseError"));
    cli(&[
        "sim",
        "fault",
        "clear",
        "--account",
        "me@imgroups.local",
        "--data",
        data(&server),
    ]);
    eventually(async || me.rename(&chat, "back").await.ok()).await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_api_needs_an_admin_token_and_checks_its_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let token = server.token.clone().expect("token");
    let admin = cli(&["admin", "token", "--data", data(&server)]);
    assert!(admin.starts_with("imgadm_"), "{admin}");
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}/console/api/{path}", server.http);

    // The page itself is public and holds no data.
    let page = http
        .get(format!("http://{}/console/", server.http))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    assert!(page
        .headers()
        .get("content-security-policy")
        .is_some_and(|v| v.to_str().unwrap_or("").contains("default-src 'self'")));
    assert!(page.text().await.expect("html").contains("Admin token"));

    for auth in [None, Some(token.as_str()), Some("imgadm_nope")] {
        let (status, body) = call(reqwest::Method::GET, &url("accounts"), auth, None).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(body["errorCode"], "unauthenticated");
        assert!(body.get("accounts").is_none());
    }
    // An admin token is no account token.
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("http://{}/v1/chats:count", server.http),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 401);

    let (status, accounts) = call(reqwest::Method::GET, &url("accounts"), Some(&admin), None).await;
    assert_eq!(status, 200);
    assert_eq!(accounts["accounts"][0]["address"], "me@imgroups.local");

    // Bad faults are refused precisely, and nothing is stored.
    for (body, field) in [
        (
            serde_json::json!({"account": "me@imgroups.local", "method": "Nope", "code": "databaseError"}),
            "method",
        ),
        (
            serde_json::json!({"account": "me@imgroups.local", "method": "*", "code": "nope"}),
            "code",
        ),
        (
            serde_json::json!({"account": "me@imgroups.local", "method": "*"}),
            "code",
        ),
        (
            serde_json::json!({"account": "me@imgroups.local", "method": "*", "code": "timeout", "count": 0}),
            "count",
        ),
    ] {
        let (status, error) = call(
            reqwest::Method::POST,
            &url("faults"),
            Some(&admin),
            Some(&body),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["errorCode"], "invalidArgument", "{body}");
        assert_eq!(error["context"]["field"], field, "{body}");
    }
    let (status, _) = call(
        reqwest::Method::POST,
        &url("faults"),
        Some(&admin),
        Some(
            &serde_json::json!({"account": "nobody@example.com", "method": "*", "code": "timeout"}),
        ),
    )
    .await;
    assert_eq!(status, 404);
    let (_, sim) = call(reqwest::Method::GET, &url("sim"), Some(&admin), None).await;
    assert_eq!(sim["faults"].as_array().map(Vec::len), Some(0), "{sim}");
    assert!(sim["methods"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m == "SetDisplayName")));
    server.stop();
}
