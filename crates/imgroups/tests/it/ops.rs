//! Operating the real binary: gRPC health and reflection without a token, `/healthz`,
//! `/readyz`, the drain on SIGTERM, `/metrics` (parsed strictly as Prometheus text) and its
//! own `--metrics` listener, and request logs that carry a request id but never a token.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgroups_proto::pb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::support::{clients, Launch, Server};

const OUR_SERVICES: [&str; 3] = [
    "photon.imessage.v1.GroupService",
    "photon.imessage.v1.ChatService",
    "photon.imessage.v1.EventService",
];

async fn json_body(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.expect("body")).expect("json")
}

// ------------------------------------------------------------------------------- prometheus

/// One sample: metric name and its labels, sorted.
type SampleKey = (String, Vec<(String, String)>);

/// Parses a whole Prometheus text exposition (format 0.0.4), strictly: every line is a blank
/// line, a `# HELP`/`# TYPE` comment or a well-formed sample, or the test fails.
fn parse_prometheus(body: &str) -> HashMap<SampleKey, f64> {
    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn value(s: &str) -> Option<f64> {
        match s {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => s.parse().ok(),
        }
    }
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for (number, line) in body.lines().enumerate() {
        macro_rules! fail {
            ($why:expr) => {
                panic!("line {}: {}: {line:?}", number + 1, $why)
            };
        }
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) if is_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if is_name(name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        fail!("unknown type");
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        fail!("a second TYPE line for one metric");
                    }
                }
                _ => fail!("malformed comment"),
            }
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(at) => line.split_at(at),
            None => fail!("no value"),
        };
        if !is_name(name) {
            fail!("bad metric name");
        }
        let mut labels = Vec::new();
        let rest = if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    break after;
                }
                let Some((label, after)) = inner.split_once("=\"") else {
                    fail!("bad label");
                };
                if !is_name(label) {
                    fail!("bad label name");
                }
                let mut text = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => text.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => text.push(c),
                            _ => fail!("bad escape in a label value"),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => text.push(c),
                        None => fail!("unterminated label value"),
                    }
                };
                labels.push((label.to_owned(), text));
                inner = &after[end + 1..];
                inner = inner.strip_prefix(',').unwrap_or(inner);
            }
        } else {
            rest
        };
        let mut fields = rest.split_whitespace();
        let Some(v) = fields.next().and_then(value) else {
            fail!("bad value");
        };
        // An optional timestamp, nothing else.
        if let Some(ts) = fields.next() {
            if ts.parse::<i64>().is_err() || fields.next().is_some() {
                fail!("trailing garbage");
            }
        }
        labels.sort();
        if samples.insert((name.to_owned(), labels), v).is_some() {
            fail!("a duplicate sample");
        }
    }
    samples
}

/// The sample `name{labels}` (exactly these labels), if present.
fn sample(samples: &HashMap<SampleKey, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    samples.get(&(name.to_owned(), labels)).copied()
}

async fn scrape(url: &str) -> HashMap<SampleKey, f64> {
    let response = reqwest::get(url).await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_prometheus(&response.text().await.expect("body"))
}

/// Scrapes until `done` holds (the server records some things just after it answers).
async fn scrape_until(
    url: &str,
    what: &str,
    done: impl Fn(&HashMap<SampleKey, f64>) -> bool,
) -> HashMap<SampleKey, f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = scrape(url).await;
        if done(&samples) {
            return samples;
        }
        assert!(Instant::now() < deadline, "metrics never showed {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_prometheus_checker_is_strict() {
    let ok = parse_prometheus(
        "# HELP a_total A thing\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\n\nb 1.5e3\n",
    );
    assert_eq!(
        sample(&ok, "a_total", &[("y", "q\""), ("x", "1")]),
        Some(3.0)
    );
    assert_eq!(sample(&ok, "b", &[]), Some(1500.0));
    for bad in [
        "a{x=1} 1",
        "a 1 2 3",
        "1a 2",
        "a{x=\"1\" 2",
        "# TYPE a blob",
        "a",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_prometheus(bad)).is_err(),
            "{bad:?} accepted"
        );
    }
}

// ---------------------------------------------------------------------------------- grpc

fn reflection_v1_request(
    message: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> tonic_reflection::pb::v1::ServerReflectionRequest {
    tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    }
}

/// One reflection v1 round trip.
async fn reflect_v1(
    channel: &Channel,
    message: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> tonic_reflection::pb::v1::server_reflection_response::MessageResponse {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    let mut client = ServerReflectionClient::new(channel.clone());
    let request = reflection_v1_request(message);
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1 without a token")
        .into_inner();
    responses
        .message()
        .await
        .expect("a reflection response")
        .expect("one message")
        .message_response
        .expect("a message response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_need_no_token() {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let channel = server.channel().await;

    let mut health = HealthClient::new(channel.clone());
    for service in std::iter::once("").chain(OUR_SERVICES) {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|err| panic!("health check of {service:?}: {err}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    // v1: list, then describe a method through the file that defines its service.
    let MessageResponse::ListServicesResponse(list) =
        reflect_v1(&channel, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a list of services");
    };
    let listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in OUR_SERVICES.iter().chain(&[
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ]) {
        assert!(
            listed.iter().any(|s| s == expected),
            "{expected} in {listed:?}"
        );
    }
    let MessageResponse::FileDescriptorResponse(files) = reflect_v1(
        &channel,
        MessageRequest::FileContainingSymbol("photon.imessage.v1.GroupService".into()),
    )
    .await
    else {
        panic!("not a file descriptor response");
    };
    let files: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("decode"))
        .collect();
    let service = files
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "GroupService")
        .expect("GroupService described");
    let method = service
        .method
        .iter()
        .find(|m| m.name() == "SetDisplayName")
        .expect("SetDisplayName described");
    assert_eq!(
        method.input_type(),
        ".photon.imessage.v1.SetDisplayNameRequest"
    );

    // v1alpha, as older grpcurl versions ask.
    {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        let mut client = ServerReflectionClient::new(channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let response = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection v1alpha without a token")
            .into_inner()
            .message()
            .await
            .expect("response")
            .expect("one message")
            .message_response;
        let Some(MessageResponse::ListServicesResponse(list)) = response else {
            panic!("not a list of services");
        };
        let listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for expected in OUR_SERVICES.iter().chain(&[
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        ]) {
            assert!(
                listed.iter().any(|s| s == expected),
                "{expected} in {listed:?}"
            );
        }
    }

    // Our own services still want a token.
    let mut groups = pb::group_service_client::GroupServiceClient::new(channel.clone());
    let err = groups
        .set_display_name(pb::SetDisplayNameRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // A failed call gets an id of its own, in its metadata and its log line.
    assert!(err.metadata().get("x-request-id").is_some());

    // The client's own request id comes back.
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "ops-test-42".parse().expect("ascii"));
    let response = health.check(request).await.expect("check");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("ops-test-42")
    );
    // A successful call without one gets none (unless debug logging would show it).
    let response = health
        .check(HealthCheckRequest::default())
        .await
        .expect("check");
    assert!(response.metadata().get("x-request-id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), &["--shutdown-drain-ms", "3000"]);
    let http = reqwest::Client::new();
    let healthz = http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200);
    let body = json_body(healthz).await;
    assert_eq!(body["status"], "ok");
    let readyz = http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(readyz.status(), 200);

    let channel = server.channel().await;
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("watch").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    server.terminate();
    let next = watch.message().await.expect("watch").expect("a status");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    // Still serving, but not ready.
    let check = health
        .check(HealthCheckRequest {
            service: OUR_SERVICES[0].to_owned(),
        })
        .await
        .expect("check during the drain");
    assert_eq!(check.into_inner().status, ServingStatus::NotServing as i32);
    let readyz = http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(readyz.status(), 503);
    let body = json_body(readyz).await;
    assert_eq!(body["status"], "unavailable");
    assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let healthz = http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200);

    // The open Watch stream ends when the drain does; it must not hold the shutdown up.
    while let Ok(Some(_)) = watch.message().await {}
    server.wait_success();
}

// ----------------------------------------------------------------------------------- metrics

/// A webhook receiver that answers 200 to every POST; counts them.
async fn webhook_receiver() -> (String, Arc<Mutex<u64>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let got: Arc<Mutex<u64>> = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    *seen.lock().expect("lock") += 1;
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_events_streams_and_webhooks() {
    const GRPC_RENAMES: u64 = 3;
    const HTTP_RENAMES: u64 = 2;
    // The receiver is on loopback over http: refused unless allowed.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        dir.path(),
        &["--webhook-allow-http", "--webhook-allow-net", "127.0.0.0/8"],
    );
    let token = server.token.clone().expect("token (first start)");
    let metrics = server.url("/metrics");
    let http = reqwest::Client::new();
    let channel = server.channel().await;
    let mut c = clients(&channel, &token);
    let chat = c.create_group(&["a@example.com", "b@example.com"]).await;

    let before = scrape(&metrics).await;
    let count = |samples: &HashMap<SampleKey, f64>, name: &str, labels: &[(&str, &str)]| {
        sample(samples, name, labels).unwrap_or(0.0)
    };
    let grpc_ok = [
        ("transport", "grpc"),
        ("method", "photon.imessage.v1.GroupService/SetDisplayName"),
        ("code", "OK"),
    ];
    let http_ok = [
        ("transport", "http"),
        ("method", "POST /v1/groups:setDisplayName"),
        ("code", "200"),
    ];
    let grpc_not_found = [
        ("transport", "grpc"),
        ("method", "photon.imessage.v1.GroupService/SetDisplayName"),
        ("code", "NOT_FOUND"),
    ];
    for name in [
        "imgroups_events_appended_total",
        "imgroups_events_delivered_total",
    ] {
        assert!(sample(&before, name, &[]).is_some(), "{name} is exported");
    }
    assert_eq!(
        sample(&before, "imgroups_streams_open", &[("kind", "live")]),
        Some(0.0)
    );
    assert_eq!(sample(&before, "imgroups_live_subscribers", &[]), Some(0.0));

    // A live subscriber is counted while its stream is open.
    let mut stream = c
        .groups
        .subscribe_group_events(pb::SubscribeGroupEventsRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    // The first frame (a heartbeat) says the subscription is in place.
    stream.message().await.expect("frame").expect("heartbeat");
    let open = scrape(&metrics).await;
    assert_eq!(sample(&open, "imgroups_live_subscribers", &[]), Some(1.0));
    assert_eq!(
        sample(&open, "imgroups_streams_open", &[("kind", "live")]),
        Some(1.0)
    );

    let (hook_url, hook_got) = webhook_receiver().await;
    let added = http
        .post(server.url("/v1/webhooks"))
        .bearer_auth(&token)
        .body(serde_json::json!({ "url": hook_url }).to_string())
        .send()
        .await
        .expect("add webhook");
    assert_eq!(added.status(), 200);
    let hook = json_body(added).await;
    let hook_id = hook["id"].to_string();

    for i in 0..GRPC_RENAMES {
        c.rename(&chat, &format!("grpc {i}")).await.expect("rename");
    }
    for i in 0..HTTP_RENAMES {
        let renamed = http
            .post(server.url("/v1/groups:setDisplayName"))
            .bearer_auth(&token)
            .body(
                serde_json::json!({ "chatGuid": chat, "displayName": format!("http {i}") })
                    .to_string(),
            )
            .send()
            .await
            .expect("rename over http");
        assert_eq!(renamed.status(), 200);
    }
    let missing = c
        .rename("any;+;nosuchchat", "x")
        .await
        .expect_err("no chat");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // The live stream gets every rename.
    let mut live = 0;
    while live < GRPC_RENAMES + HTTP_RENAMES {
        let frame = stream.message().await.expect("frame").expect("open");
        if frame.sequence.is_some() {
            live += 1;
        }
    }

    let writes = (GRPC_RENAMES + HTTP_RENAMES) as f64;
    let after = scrape_until(&metrics, "the webhook deliveries", |s| {
        count(
            s,
            "imgroups_webhook_deliveries_total",
            &[("endpoint", &hook_id)],
        ) >= writes
    })
    .await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        count(&after, name, labels) - count(&before, name, labels)
    };
    assert_eq!(
        delta("imgroups_requests_total", &grpc_ok),
        GRPC_RENAMES as f64
    );
    assert_eq!(
        delta("imgroups_requests_total", &http_ok),
        HTTP_RENAMES as f64
    );
    assert_eq!(delta("imgroups_requests_total", &grpc_not_found), 1.0);
    // One account (the caller) is in the group: one event per rename.
    assert_eq!(delta("imgroups_events_appended_total", &[]), writes);
    assert!(delta("imgroups_events_delivered_total", &[]) >= writes);
    assert!(
        count(
            &after,
            "imgroups_request_duration_seconds_count",
            &[
                ("transport", "grpc"),
                ("method", "photon.imessage.v1.GroupService/SetDisplayName")
            ]
        ) >= GRPC_RENAMES as f64
    );
    assert!(count(&after, "imgroups_commit_batch_size_count", &[]) >= 1.0);
    assert!(count(&after, "imgroups_commit_duration_seconds_count", &[]) >= 1.0);
    assert_eq!(
        sample(
            &after,
            "imgroups_webhook_failures_total",
            &[("endpoint", &hook_id)]
        ),
        Some(0.0)
    );
    assert!(sample(
        &after,
        "imgroups_webhook_lag_events",
        &[("endpoint", &hook_id)]
    )
    .is_some());
    assert!(*hook_got.lock().expect("lock") >= GRPC_RENAMES + HTTP_RENAMES);

    // A catch-up reads from the log and counts what it read.
    let (events, _) = c.catch_up(0).await;
    let caught_up = scrape_until(&metrics, "the catch-up", |s| {
        count(s, "imgroups_catch_up_events_read_total", &[])
            - count(&before, "imgroups_catch_up_events_read_total", &[])
            >= events.len() as f64
    })
    .await;
    assert_eq!(
        sample(&caught_up, "imgroups_streams_open", &[("kind", "live")]),
        Some(1.0)
    );

    // Closing the stream takes the subscriber away.
    drop(stream);
    scrape_until(&metrics, "the subscriber gone", |s| {
        sample(s, "imgroups_live_subscribers", &[]) == Some(0.0)
    })
    .await;

    // Idempotent replays are counted.
    let replayed = |samples: &HashMap<SampleKey, f64>| {
        count(samples, "imgroups_idempotency_replays_total", &[])
    };
    let replays_before = replayed(&after);
    for _ in 0..2 {
        let renamed = http
            .post(server.url("/v1/groups:setDisplayName"))
            .bearer_auth(&token)
            .header("x-idempotency-key", "ops-key-1")
            .body(serde_json::json!({ "chatGuid": chat, "displayName": "once" }).to_string())
            .send()
            .await
            .expect("rename");
        assert_eq!(renamed.status(), 200);
    }
    assert_eq!(replayed(&scrape(&metrics).await) - replays_before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_of_its_own_is_announced_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--metrics", "127.0.0.1:0"]);
    let prefixes: Vec<&str> = server
        .lines
        .iter()
        .map(|l| {
            [
                "account ",
                "token ",
                "grpc listening on ",
                "http listening on ",
                "console ",
                "metrics listening on ",
                "ready",
            ]
            .into_iter()
            .find(|p| l.starts_with(p))
            .unwrap_or_else(|| panic!("unexpected stdout line {l:?}"))
        })
        .collect();
    assert_eq!(
        prefixes,
        [
            "account ",
            "token ",
            "grpc listening on ",
            "http listening on ",
            "console ",
            "metrics listening on ",
            "ready"
        ]
    );
    let addr = server.metrics.as_deref().expect("metrics address");
    let samples = scrape(&format!("http://{addr}/metrics")).await;
    assert!(sample(&samples, "imgroups_events_appended_total", &[]).is_some());
    // Still on the HTTP listener too.
    scrape(&server.url("/metrics")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logs_carry_a_request_id_and_never_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let data = tempfile::tempdir().expect("tempdir");
    let launch = Launch {
        stderr: Some(Stdio::from(log)),
        env: &[("RUST_LOG", "debug")],
        ..Launch::default()
    };
    let mut server = Server::start_with(data.path(), &[], launch);
    let token = server.token.clone().expect("token (first start)");
    let wrong = "imgr_0123456789abcdef0123456789abcdef01234567";
    let channel = server.channel().await;
    let mut c = clients(&channel, &token);
    let chat = c.create_group(&["a@example.com", "b@example.com"]).await;
    c.rename(&chat, "logged").await.expect("rename");
    let mut bad = clients(&channel, wrong);
    bad.rename(&chat, "nope").await.expect_err("wrong token");
    let http = reqwest::Client::new();
    for token in [token.as_str(), wrong] {
        let _ = http
            .post(server.url("/v1/groups:setDisplayName"))
            .bearer_auth(token)
            .header("x-request-id", "logged-request-7")
            .body(serde_json::json!({ "chatGuid": chat, "displayName": "http" }).to_string())
            .send()
            .await
            .expect("send");
    }
    server.terminate();
    server.wait_success();
    let logs = std::fs::read_to_string(&log_path).expect("read the log");
    assert!(!logs.contains(&token), "a token was logged");
    assert!(!logs.contains(wrong), "a wrong token was logged");
    assert!(
        !logs.contains("Bearer"),
        "an authorization header was logged"
    );
    assert!(logs.contains("request_id=logged-request-7"), "{logs}");
    let request_lines = logs.lines().filter(|l| l.contains("transport=\""));
    let mut grpc = 0;
    for line in request_lines {
        assert!(line.contains("request_id="), "{line}");
        grpc += usize::from(line.contains("transport=\"grpc\""));
    }
    assert!(grpc >= 3, "gRPC calls are logged:\n{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("code=\"UNAUTHENTICATED\"")),
        "a failed call is logged at warn:\n{logs}"
    );
}

/// What a browser asks a server for, answered as it expects and without a warning in the
/// log: the root and `/console` lead to the console, and there is a tab icon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_finds_the_console_at_the_root_without_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let data = tempfile::tempdir().expect("tempdir");
    let launch = Launch {
        stderr: Some(Stdio::from(log)),
        env: &[("RUST_LOG", "info")],
        ..Launch::default()
    };
    let mut server = Server::start_with(data.path(), &[], launch);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for path in ["/", "/console"] {
        let response = http.get(server.url(path)).send().await.expect("get");
        assert!(
            response.status().is_redirection(),
            "GET {path}: {}",
            response.status()
        );
        assert_eq!(
            response.headers()["location"].to_str().ok(),
            Some("/console/"),
            "GET {path}"
        );
    }
    let page = http.get(server.url("/console/")).send().await.expect("get");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html")));
    // A browser follows the redirect to the same page.
    let followed = reqwest::get(server.url("/")).await.expect("get");
    assert_eq!(followed.status(), 200);
    assert!(followed.url().path().ends_with("/console/"));
    let icon = http
        .get(server.url("/favicon.ico"))
        .send()
        .await
        .expect("get");
    assert_eq!(icon.status(), 200);
    assert_eq!(
        icon.headers()["content-type"].to_str().ok(),
        Some("image/x-icon")
    );
    let bytes = icon.bytes().await.expect("body");
    assert_eq!(&bytes[..4], &[0, 0, 1, 0], "an ICO file");
    server.terminate();
    server.wait_success();
    let logs = std::fs::read_to_string(&log_path).expect("read the log");
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("WARN") || l.contains("ERROR")),
        "a browser's requests logged a warning:\n{logs}"
    );
}

/// What anyone can send without a token and get refused for (an unknown path, a wrong
/// method) is logged within a budget, not one warning per request: a flood of such requests
/// cannot fill the disk. The first lines still show, with the count left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_without_a_token_are_logged_within_a_budget() {
    const REQUESTS: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let data = tempfile::tempdir().expect("tempdir");
    let launch = Launch {
        stderr: Some(Stdio::from(log)),
        env: &[("RUST_LOG", "info")],
        ..Launch::default()
    };
    let mut server = Server::start_with(data.path(), &[], launch);
    let http = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..REQUESTS {
        let response = if i % 2 == 0 {
            http.get(server.url(&format!("/nothing-here/{i}"))).send()
        } else {
            // A route that exists, with a method it does not take.
            http.get(server.url("/v1/groups:setDisplayName")).send()
        }
        .await
        .expect("request");
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let seconds = started.elapsed().as_secs();
    // A refusal in a later second is logged, with the count of those left out before it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let last = http
        .get(server.url("/nothing-here/last"))
        .send()
        .await
        .expect("request");
    assert_eq!(last.status(), 404);
    server.terminate();
    server.wait_success();
    let logs = std::fs::read_to_string(&log_path).expect("read the log");
    let warned: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("request failed"))
        .collect();
    // At most the budget per second the flood lasted (plus the second it started in and a
    // line or two of a race at a second's turn), far below one line per request.
    let most = 20 * (seconds as usize + 3) + 4;
    assert!(
        !warned.is_empty() && warned.len() <= most.min(REQUESTS / 2),
        "{} warning lines for {REQUESTS} refused requests in {seconds} s",
        warned.len()
    );
    assert!(
        warned
            .iter()
            .any(|l| l.contains("suppressed=") && !l.contains("suppressed=0")),
        "the lines left out are counted:\n{}",
        warned.join("\n")
    );
}
