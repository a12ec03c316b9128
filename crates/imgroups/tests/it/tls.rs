//! `serve --tls-cert --tls-key`: both listeners speak TLS with a self-signed certificate the
//! clients are told to trust; a plaintext client fails cleanly.

use std::time::Duration;

use imgroups_client::{Address, Client, CreateChatOptions, RetryPolicy};

use crate::support::{Server, BIN};

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).expect("certificate");
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

fn port(addr: &str) -> &str {
    addr.rsplit_once(':').expect("HOST:PORT").1
}

// Multi-threaded: `Server::stop` blocks this thread while the server's graceful shutdown
// waits for the clients' connections to acknowledge it, which their tasks must be free to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_listeners_serve_tls_to_clients_that_trust_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let token = server.token.clone().expect("token");

    // gRPC with the Rust client, trusting the certificate.
    let client = Client::builder()
        .address(format!("https://localhost:{}", port(&server.grpc)))
        .tls_ca_pem(cert.as_bytes())
        .token(&token)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let people = ["bob@example.com", "carol@example.com"].map(|a| Address::parse(a).unwrap());
    let created = client
        .chats()
        .create(&people, CreateChatOptions::default())
        .await
        .expect("create over TLS");
    let renamed = client
        .groups()
        .set_display_name(&created.chat.guid, "Secure")
        .await
        .expect("rename over TLS");
    assert_eq!(renamed.display_name, "Secure");

    // HTTP with reqwest, trusting the certificate (by IP address this time).
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let chat = http
        .get(format!(
            "https://127.0.0.1:{}/v1/chats:get",
            port(&server.http)
        ))
        .query(&[("chatGuid", created.chat.guid.to_string())])
        .bearer_auth(&token)
        .send()
        .await
        .expect("https call");
    assert_eq!(chat.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&chat.bytes().await.expect("body")).expect("json");
    assert_eq!(body["chat"]["displayName"], "Secure", "{body}");

    // Plaintext clients fail cleanly, and the server goes on.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.http))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plaintext HTTP is refused: {plain:?}");
    let plain = Client::builder()
        .address(format!("http://{}", server.grpc))
        .token(&token)
        .retry(RetryPolicy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = plain
        .chats()
        .get(&created.chat.guid)
        .await
        .expect_err("plaintext gRPC is refused");
    assert!(!err.to_string().is_empty());
    // A client that does not trust the certificate is refused too.
    let untrusting = Client::builder()
        .address(format!("https://localhost:{}", port(&server.grpc)))
        .token(&token)
        .retry(RetryPolicy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    untrusting
        .chats()
        .get(&created.chat.guid)
        .await
        .expect_err("an unknown certificate is refused");
    let again = client
        .chats()
        .get(&created.chat.guid)
        .await
        .expect("still serving");
    assert_eq!(again.display_name, "Secure");
    server.stop();
}

#[test]
fn bad_certificate_files_fail_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (_, other_key) = self_signed();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let cert = write("cert.pem", &cert);
    let _key = write("key.pem", &key);
    let other_key = write("other.pem", &other_key);
    let missing = dir.path().join("missing.pem").to_str().unwrap().to_owned();
    let data = dir.path().join("data");
    for (cert, key, named) in [
        (&missing, &other_key, &missing),
        (&cert, &other_key, &other_key),
        (&other_key, &other_key, &other_key),
    ] {
        let out = std::process::Command::new(BIN)
            .arg("serve")
            .arg("--data")
            .arg(&data)
            .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--tls-cert", cert, "--tls-key", key])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named.as_str()), "{stderr}");
    }
}
