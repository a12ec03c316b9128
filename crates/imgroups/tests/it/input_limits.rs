//! Issue 16, "safe on an open network": hostile input gets a quick, precise, bounded error and
//! changes nothing; it never stalls other callers or echoes megabytes back. Everything here
//! goes through the real binary, over gRPC and HTTP/JSON.

use std::time::{Duration, Instant};

use imgroups_proto::pb;
use proptest::prelude::*;
use tonic::{Code, Request, Status};

use crate::support::{clients, Clients, Server};

const ME: &str = "me@example.com";

async fn start() -> (tempfile::TempDir, Server, Clients, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    // A message limit large enough for 100,000 addresses (2.5 MB): these tests check that the
    // engine refuses huge lists at once, should a deployment raise the limit. At the default
    // limit the transport refuses them before they are read (`limits`).
    let server = Server::start(
        dir.path(),
        &["--account", ME, "--max-message-bytes", "16777216"],
    );
    let token = server.token.clone().expect("first start prints a token");
    let channel = server.channel().await;
    let clients = clients(&channel, &token);
    (dir, server, clients, token)
}

fn trailer<'a>(status: &'a Status, key: &str) -> Option<&'a str> {
    status.metadata().get(key).and_then(|v| v.to_str().ok())
}

/// The error's code, `reason` and `limit`, as the SDK reads them from the trailers.
fn error_of(status: &Status) -> (Code, Option<&str>, Option<&str>, Option<&str>) {
    (
        status.code(),
        trailer(status, "error-code"),
        trailer(status, "error-context-reason"),
        trailer(status, "error-context-limit"),
    )
}

/// The server's CPU time so far (user + system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after `state`.
    let ticks = fields[11] + fields[12];
    // USER_HZ is 100 on every Linux this runs on (sysconf would need libc).
    Duration::from_millis(ticks * 10)
}

fn huge_list() -> Vec<String> {
    (0..100_000)
        .map(|i| format!("person{i:06}@example.com"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_addresses_are_refused_at_once_without_stalling_others() {
    let (_dir, server, mut c, _) = start().await;
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let huge = huge_list();

    // A probe that must keep being answered while the huge requests are handled.
    let mut probe = c.chats.clone();
    let prober = tokio::spawn(async move {
        let mut answered = 0;
        for _ in 0..20 {
            let count = tokio::time::timeout(
                Duration::from_secs(5),
                probe.get_chat_count(pb::GetChatCountRequest::default()),
            )
            .await
            .expect("GetChatCount answered within 5 s while huge lists are refused")
            .expect("GetChatCount succeeds");
            assert_eq!(count.into_inner().count, 1);
            answered += 1;
            tokio::task::yield_now().await;
        }
        answered
    });

    let before = cpu_time(server.pid());
    let started = Instant::now();
    let add = c
        .groups
        .add_participants(pb::AddParticipantsRequest {
            chat_guid: chat.clone(),
            addresses: huge.clone(),
            client_message_id: None,
        })
        .await
        .expect_err("refused");
    let add_cpu = cpu_time(server.pid()) - before;
    eprintln!("server CPU for one refused 100,000-address request: {add_cpu:?}");
    assert_eq!(
        error_of(&add),
        (
            Code::FailedPrecondition,
            Some("preconditionFailed"),
            Some("groupFull"),
            Some("32")
        ),
    );
    assert_eq!(trailer(&add, "error-context-field"), Some("addresses"));

    let remove = c
        .groups
        .remove_participants(pb::RemoveParticipantsRequest {
            chat_guid: chat.clone(),
            addresses: huge.clone(),
            client_message_id: None,
        })
        .await
        .expect_err("refused");
    assert_eq!(
        error_of(&remove),
        (
            Code::InvalidArgument,
            Some("invalidArgument"),
            Some("tooLong"),
            Some("31")
        ),
    );
    let create = c
        .chats
        .create_chat(pb::CreateChatRequest {
            addresses: huge.clone(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(
        error_of(&create),
        (
            Code::FailedPrecondition,
            Some("preconditionFailed"),
            Some("groupFull"),
            Some("32")
        ),
    );
    // Before the fix one such request held the runtime for 26 s. Seconds, not milliseconds,
    // are asserted for wall time: this machine is shared with other builds.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The server's CPU for the first request. The refusal itself is O(1); what remains is
    // receiving and decoding a 2.4 MB protobuf of 100,000 strings, which in an unoptimised
    // debug build measured 60-70 ms here, the concurrent probes included (the issue asks
    // for under 50 ms, a release-build figure). CPU time is read in 10 ms ticks.
    // 1 s leaves room for a loaded machine and still fails by far if the list were parsed
    // (the quadratic duplicate check took 26 s).
    assert!(
        add_cpu < Duration::from_secs(1),
        "server CPU for one refused 100,000-address request: {add_cpu:?}"
    );
    assert_eq!(prober.await.expect("prober"), 20);

    // Nothing changed.
    assert_eq!(c.get_chat(&chat).await.participants.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_addresses_over_http_are_refused_with_a_json_error() {
    let (_dir, server, mut c, token) = start().await;
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let http = reqwest::Client::new();
    let body = serde_json::json!({ "chatGuid": chat, "addresses": huge_list() }).to_string();
    let resp = http
        .post(format!("http://{}/v1/groups:addParticipants", server.http))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let error: serde_json::Value = resp.json_value().await;
    assert_eq!(error["errorCode"], "preconditionFailed");
    assert_eq!(error["context"]["reason"], "groupFull");
    assert_eq!(error["context"]["limit"], "32");
}

/// `reqwest` here has no `json` feature: decode the body by hand.
trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        let bytes = self.bytes().await.expect("body");
        serde_json::from_slice(&bytes).expect("a json body")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_control_or_bidi_override_characters_are_refused() {
    let (_dir, server, mut c, token) = start().await;
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    for (name, code_point) in [
        ("\u{1b}]0;pwned\u{7}evil", "U+001B"),
        ("two\nlines", "U+000A"),
        ("nul\0", "U+0000"),
        ("\u{202e}gpj.exe", "U+202E"),
    ] {
        let err = c.rename(&chat, name).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
        assert_eq!(trailer(&err, "error-context-field"), Some("displayName"));
        assert_eq!(
            trailer(&err, "error-context-reason"),
            Some("controlCharacter")
        );
        assert_eq!(trailer(&err, "error-context-character"), Some(code_point));
    }
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/groups:setDisplayName", server.http))
        .bearer_auth(&token)
        .body(serde_json::json!({ "chatGuid": chat, "displayName": "a\u{9b}31mb" }).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let error = resp.json_value().await;
    assert_eq!(error["context"]["reason"], "controlCharacter");
    assert_eq!(error["context"]["character"], "U+009B");
    // Nothing was renamed; a right-to-left mark is still fine.
    assert_eq!(c.get_chat(&chat).await.display_name, None);
    let renamed = c.rename(&chat, "\u{200f}שלום").await.expect("rename");
    assert_eq!(renamed.display_name.as_deref(), Some("\u{200f}שלום"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_guids_and_idempotency_keys_get_short_precise_errors() {
    let (_dir, server, mut c, token) = start().await;
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let long_guid = format!("any;+;chat{}", "9".repeat(100_000));

    // This call used to hang until its deadline: the GUID was echoed into the trailers.
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        c.chats.get_chat(pb::GetChatRequest {
            chat_guid: long_guid.clone(),
        }),
    )
    .await
    .expect("answered, not hung")
    .expect_err("refused");
    assert_eq!(
        error_of(&err),
        (
            Code::InvalidArgument,
            Some("invalidArgument"),
            Some("tooLong"),
            Some("512")
        )
    );
    assert_eq!(trailer(&err, "error-context-field"), Some("chatGuid"));
    let echoed = trailer(&err, "error-context-chatguid").expect("chatguid");
    assert!(echoed.len() < 256, "{} bytes echoed", echoed.len());

    // Idempotency keys: the field, then the header; nothing is renamed.
    let err = c
        .groups
        .set_display_name(pb::SetDisplayNameRequest {
            chat_guid: chat.clone(),
            display_name: "Trip".into(),
            client_message_id: Some("k".repeat(10_000)),
        })
        .await
        .expect_err("refused");
    assert_eq!(
        error_of(&err),
        (
            Code::InvalidArgument,
            Some("invalidArgument"),
            Some("tooLong"),
            Some("256")
        )
    );
    assert_eq!(
        trailer(&err, "error-context-field"),
        Some("clientMessageId")
    );
    let mut req = Request::new(pb::SetDisplayNameRequest {
        chat_guid: chat.clone(),
        display_name: "Trip".into(),
        client_message_id: None,
    });
    req.metadata_mut().insert(
        "x-idempotency-key",
        "h".repeat(1000).parse().expect("ascii"),
    );
    let err = c.groups.set_display_name(req).await.expect_err("refused");
    assert_eq!(
        trailer(&err, "error-context-field"),
        Some("x-idempotency-key")
    );
    assert_eq!(trailer(&err, "error-context-limit"), Some("256"));
    assert_eq!(c.get_chat(&chat).await.display_name, None);

    // Over HTTP: the same errors, and every echo in the JSON body is bounded, including an
    // invalid address below the address cap (its whole text used to be echoed).
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http);
    let resp = http
        .post(format!("{base}/v1/groups:setDisplayName"))
        .bearer_auth(&token)
        .header("x-idempotency-key", "h".repeat(1000))
        .body(serde_json::json!({ "chatGuid": chat, "displayName": "Trip" }).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let error = resp.json_value().await;
    assert_eq!(error["context"]["field"], "x-idempotency-key");
    for body in [
        serde_json::json!({ "chatGuid": long_guid, "displayName": "Trip" }),
        serde_json::json!({ "chatGuid": chat, "addresses": ["x".repeat(500)] }),
    ] {
        let route = if body.get("addresses").is_some() {
            "addParticipants"
        } else {
            "setDisplayName"
        };
        let resp = http
            .post(format!("{base}/v1/groups:{route}"))
            .bearer_auth(&token)
            .body(body.to_string())
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 400);
        let error = resp.json_value().await;
        assert_eq!(error["errorCode"], "invalidArgument");
        let message = error["message"].as_str().expect("message");
        assert!(message.chars().count() <= 513, "{message}");
        for (key, value) in error["context"].as_object().expect("context") {
            let value = value.as_str().expect("string context");
            assert!(value.chars().count() <= 129, "{key} echoes {value:?}");
        }
    }
}

/// A PNG with the given IHDR size and a complete structure, then `tail`.
use imgroups_testkit::png_of as png;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icons_declaring_absurd_sizes_or_carrying_trailing_bytes_are_refused() {
    let (_dir, _server, mut c, _) = start().await;
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let set = |data: Vec<u8>| pb::SetIconRequest {
        chat_guid: chat.clone(),
        data,
        client_message_id: None,
    };
    let huge = png(100_000, 100_000, &[]);
    assert!(huge.len() < 100, "a tiny file declaring 10^10 pixels");
    let err = c.groups.set_icon(set(huge)).await.expect_err("refused");
    assert_eq!(
        error_of(&err),
        (
            Code::InvalidArgument,
            Some("invalidArgument"),
            Some("imageTooLarge"),
            Some("16384")
        )
    );
    assert_eq!(trailer(&err, "error-context-field"), Some("data"));
    let err = c
        .groups
        .set_icon(set(png(1, 1, b"PK\x03\x04 appended archive")))
        .await
        .expect_err("refused");
    assert_eq!(trailer(&err, "error-context-reason"), Some("trailingData"));
    let err = c
        .groups
        .get_icon(pb::GetIconRequest {
            chat_guid: chat.clone(),
        })
        .await
        .expect_err("no icon was stored");
    assert_eq!(trailer(&err, "error-code"), Some("groupIconNotFound"));

    let small = png(64, 64, &[]);
    c.groups
        .set_icon(set(small.clone()))
        .await
        .expect("accepted");
    let icon = c
        .groups
        .get_icon(pb::GetIconRequest { chat_guid: chat })
        .await
        .expect("icon")
        .into_inner();
    assert_eq!(icon.data, small);
    assert_eq!(icon.mime_type, "image/png");
}

/// Issue 26: names that are invisible once rendered, a byte order mark, tag characters that
/// smuggle hidden text, stacked combining marks — each refused with its own reason, the
/// character and its position, over gRPC and HTTP; nothing is renamed, and real names that
/// need joiners, marks or the three tag flags still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_hide_text_or_show_nothing_are_refused_precisely() {
    let (_dir, server, mut c, token) = start().await;
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let zalgo = format!("Z{}", "\u{0301}".repeat(200));
    for (name, reason, character, position) in [
        ("\u{200b}\u{200c}\u{200d}", "invisibleName", None, None),
        ("\u{3164}\u{3164}", "invisibleName", None, None),
        ("\u{2800}", "invisibleName", None, None),
        ("\u{fe0f}", "invisibleName", None, None),
        (
            "\u{feff}Weekend",
            "formatCharacter",
            Some("U+FEFF"),
            Some("1"),
        ),
        (
            "hi\u{e0069}\u{e0067}\u{e006e}\u{e006f}\u{e0072}\u{e0065}",
            "tagCharacter",
            Some("U+E0069"),
            Some("3"),
        ),
        (&zalgo, "tooManyMarks", Some("U+0301"), Some("18")),
    ] {
        let err = c.rename(&chat, name).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
        assert_eq!(trailer(&err, "error-code"), Some("invalidArgument"));
        assert_eq!(trailer(&err, "error-context-field"), Some("displayName"));
        assert_eq!(
            trailer(&err, "error-context-reason"),
            Some(reason),
            "{name:?}"
        );
        assert_eq!(trailer(&err, "error-context-character"), character);
        assert_eq!(trailer(&err, "error-context-position"), position);
    }
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/groups:setDisplayName", server.http))
        .bearer_auth(&token)
        .body(
            serde_json::json!({ "chatGuid": chat, "displayName": "  Book\u{feff} club" })
                .to_string(),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let error = resp.json_value().await;
    assert_eq!(error["context"]["reason"], "formatCharacter");
    assert_eq!(error["context"]["character"], "U+FEFF");
    assert_eq!(error["context"]["position"], "7");
    assert_eq!(c.get_chat(&chat).await.display_name, None);

    let england = "\u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}";
    for name in [
        format!("rugby {england}"),
        "family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}".to_owned(),
        "Tie\u{0302}\u{0301}ng Vie\u{0323}\u{0302}t".to_owned(),
        "\u{3164}ㅋㅋ".to_owned(),
    ] {
        let renamed = c.rename(&chat, &name).await.expect("a real name");
        assert_eq!(renamed.display_name.as_deref(), Some(name.as_str()));
    }
}

/// Issue 26: a PNG with a bad CRC or without IDAT/IEND, a 4-byte JPEG, a 13-byte GIF and a
/// HEIC `ftyp` followed by HTML were stored as icons. Each is refused on `field=data`
/// (`invalidImage` with a `detail`, or `unsupportedImageType` when not even the header is
/// there), and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icons_whose_structure_is_not_what_their_type_requires_are_refused() {
    let (_dir, _server, mut c, _) = start().await;
    let chat = c
        .create_group(&["alice@example.com", "bob@example.com"])
        .await;
    let good = png(1, 1, &[]);
    let mut bad_crc = good.clone();
    bad_crc[29] ^= 0xFF; // IHDR's CRC
    let mut no_idat = good[..33].to_vec();
    no_idat.extend_from_slice(&good[good.len() - 12..]);
    let no_iend = good[..good.len() - 12].to_vec();
    let mut heic_html = 24u32.to_be_bytes().to_vec();
    heic_html.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    heic_html.extend_from_slice(b"<html><script>alert(document.cookie)</script></html>");
    for (data, reason, detail) in [
        (bad_crc, "invalidImage", Some("chunk IHDR has a bad CRC")),
        (no_idat, "invalidImage", Some("no IDAT chunk")),
        (
            no_iend,
            "invalidImage",
            Some("the file ends early (no IEND chunk)"),
        ),
        (vec![0xFF, 0xD8, 0xFF, 0xE0], "unsupportedImageType", None),
        (
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec(),
            "invalidImage",
            Some("the file ends early (no trailer)"),
        ),
        (
            heic_html,
            "invalidImage",
            Some("box l><s runs past its container"),
        ),
    ] {
        let err = c
            .groups
            .set_icon(pb::SetIconRequest {
                chat_guid: chat.clone(),
                data,
                client_message_id: None,
            })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(trailer(&err, "error-context-field"), Some("data"));
        assert_eq!(trailer(&err, "error-context-reason"), Some(reason));
        assert_eq!(trailer(&err, "error-context-detail"), detail);
    }
    let err = c
        .groups
        .get_icon(pb::GetIconRequest { chat_guid: chat })
        .await
        .expect_err("no icon was stored");
    assert_eq!(trailer(&err, "error-code"), Some("groupIconNotFound"));
}

/// JSON values that use the request fields of the routes below, with any shape.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(Value::from("any;+;chat1")),
        Just(Value::from("a@example.com")),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        let key = prop_oneof![
            Just("chatGuid".to_owned()),
            Just("displayName".to_owned()),
            Just("addresses".to_owned()),
            Just("data".to_owned()),
            Just("clientMessageId".to_owned()),
            Just("initialMessage".to_owned()),
            Just("service".to_owned()),
            "[a-zA-Z_]{1,8}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const ROUTES: [&str; 4] = [
    "/v1/groups:setDisplayName",
    "/v1/groups:addParticipants",
    "/v1/groups:setIcon",
    "/v1/chats",
];

/// Any body, JSON or not, on the POST routes: never a crash, always a 4xx with the JSON
/// error shape of docs/openapi.json (`code`, `message`, `errorCode`, `retryable`, `context`).
#[test]
fn random_http_bodies_get_json_errors() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_dir, server, mut c, token) = runtime.block_on(start());
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http);
    let post = |route: usize, body: Vec<u8>| {
        let request = http
            .post(format!("{base}{}", ROUTES[route % ROUTES.len()]))
            .bearer_auth(&token)
            .body(body)
            .send();
        runtime.block_on(async {
            let resp = request.await.expect("the server answers");
            let status = resp.status();
            let body = resp.bytes().await.expect("body");
            (status, body)
        })
    };
    let check = |status: reqwest::StatusCode, body: &[u8]| -> Result<(), TestCaseError> {
        if status.is_success() {
            // A random document that happens to be a valid request (`{"addresses": [one
            // valid address]}` makes a direct chat) is fine; it must still be JSON.
            serde_json::from_slice::<serde_json::Value>(body)
                .map_err(|e| TestCaseError::fail(format!("success body not json: {e}")))?;
            return Ok(());
        }
        prop_assert!(status.is_client_error(), "status {status}");
        let error: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| TestCaseError::fail(format!("error body not json: {e}")))?;
        prop_assert!(error["code"].is_string(), "{error}");
        prop_assert!(error["message"].is_string(), "{error}");
        prop_assert!(error["errorCode"].is_string(), "{error}");
        prop_assert!(error["retryable"].is_boolean(), "{error}");
        prop_assert!(error["context"].is_object(), "{error}");
        Ok(())
    };
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    runner
        .run(
            &(0usize..4, proptest::collection::vec(any::<u8>(), 0..200)),
            |(route, bytes)| {
                let (status, body) = post(route, bytes);
                check(status, &body)
            },
        )
        .expect("arbitrary bytes");
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&(0usize..4, any_json()), |(route, json)| {
            let (status, body) = post(route, json.to_string().into_bytes());
            check(status, &body)
        })
        .expect("arbitrary json");
    // Still serving.
    runner_alive(&runtime, &mut c);
}

fn runner_alive(runtime: &tokio::runtime::Runtime, c: &mut Clients) {
    runtime
        .block_on(c.chats.get_chat_count(pb::GetChatCountRequest::default()))
        .expect("the server still answers");
}
