//! Each error class, as the real server produces it.

use std::time::Duration;

use imgroups_client::{Address, ChatGuid, Client, Code, ErrorKind, RetryPolicy};

use crate::harness::{addr, group, Clients, Server};

#[tokio::test]
async fn authentication() {
    let server = Server::start().await;
    let err = server
        .client_for("not-a-token")
        .chats()
        .count(false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(err.code(), "unauthenticated");
    assert_eq!(err.grpc_code(), Code::Unauthenticated);
    assert!(!err.is_retryable());

    let anonymous = Client::builder().address(server.url()).build().unwrap();
    let err = anonymous.chats().count(false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);

    let token = server.add_account("me@imgroups.local").await;
    server.revoke(&token).await;
    let err = server
        .client_for(&token)
        .chats()
        .count(false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "tokenBlocked");

    // A token provider is asked for every call.
    let good = server.token().to_owned();
    let provided = Client::builder()
        .address(server.url())
        .token_provider(move || {
            let good = good.clone();
            async move { Ok(good) }
        })
        .build()
        .unwrap();
    assert_eq!(provided.chats().count(false).await.unwrap(), 0);
}

#[tokio::test]
async fn not_found() {
    let server = Server::start().await;
    let client = server.client();
    let missing = ChatGuid::parse("any;+;chat000000000000000001").unwrap();
    let err = client.chats().get(&missing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.code(), "chatNotFound");
    assert_eq!(err.grpc_code(), Code::NotFound);
    assert_eq!(
        err.context_value("chatguid"),
        Some("any;+;chat000000000000000001")
    );
    assert_eq!(
        err.to_string(),
        "chat any;+;chat000000000000000001 not found (chatNotFound)"
    );

    server.mark_unreachable("ghost@example.com").await;
    let chat = group(&client, &["bob@example.com", "carol@example.com"]).await;
    let err = client
        .groups()
        .add_participants(&chat, &[addr("ghost@example.com")])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.code(), "addressNotFound");
    assert_eq!(err.context_value("address"), Some("ghost@example.com"));
}

#[tokio::test]
async fn validation() {
    let server = Server::start().await;
    let client = server.client();
    let chat = group(&client, &["bob@example.com", "carol@example.com"]).await;

    let err = client
        .groups()
        .set_display_name(&chat, "   ")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.code(), "invalidArgument");
    assert_eq!(err.context_value("field"), Some("displayName"));
    assert_eq!(err.grpc_code(), Code::InvalidArgument);

    let err = client
        .groups()
        .add_participants(&chat, &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalidArgument");

    let err = client
        .groups()
        .add_participants(&chat, &[addr("bob@example.com")])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.code(), "preconditionFailed");
    assert_eq!(err.context_value("reason"), Some("alreadyParticipant"));
    assert_eq!(err.grpc_code(), Code::FailedPrecondition);

    let err = client
        .groups()
        .set_icon(&chat, b"not an image".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.context_value("reason"), Some("unsupportedImageType"));

    let direct = ChatGuid::parse("any;-;bob@example.com").unwrap();
    let err = client
        .groups()
        .set_display_name(&direct, "x")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.code(), "operationNotSupported");

    // Malformed identifiers cannot even be built; their parse error is a validation error too.
    let err: imgroups_client::Error = ChatGuid::parse("whatsapp;+;x").unwrap_err().into();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.context_value("field"), Some("chatGuid"));
    let err: imgroups_client::Error = Address::parse("bob").unwrap_err().into();
    assert_eq!(err.code(), "invalidArgument");
    assert_eq!(err.context_value("address"), Some("bob"));
}

#[tokio::test]
async fn connection() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::builder()
        .address(format!("http://127.0.0.1:{port}"))
        .token("t")
        .connect_timeout(Duration::from_secs(2))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = client.chats().count(false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert_eq!(err.grpc_code(), Code::Unavailable);
    assert!(
        !err.is_retryable(),
        "only the server decides what is retryable"
    );
}
