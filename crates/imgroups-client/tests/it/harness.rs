//! The real server in-process (the testkit's), and the SDK's client of it.

use imgroups_client::{Address, ChatGuid, Client, CreateChatOptions, RetryPolicy};
pub(crate) use imgroups_testkit::{Server, ME};

/// A client of the server, as the account `ME` or with another token.
pub(crate) trait Clients {
    fn client(&self) -> Client;
    fn client_for(&self, token: &str) -> Client;
}

impl Clients for Server {
    fn client(&self) -> Client {
        self.client_for(self.token())
    }

    fn client_for(&self, token: &str) -> Client {
        Client::builder()
            .address(self.url())
            .token(token)
            .retry(RetryPolicy::default())
            .build()
            .unwrap()
    }
}

pub(crate) fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// Creates a group of `ME` with `others` and returns its guid.
pub(crate) async fn group(client: &Client, others: &[&str]) -> ChatGuid {
    let people: Vec<Address> = others.iter().map(|a| addr(a)).collect();
    client
        .chats()
        .create(&people, CreateChatOptions::default())
        .await
        .unwrap()
        .chat
        .guid
}

/// A minimal valid PNG (1×1).
pub(crate) use imgroups_testkit::tiny_png as png;
