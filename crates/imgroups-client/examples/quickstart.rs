//! The README's Rust quickstart: one group, read back, and this account's event log.
//!
//! ```sh
//! imgroups serve                                   # in another terminal
//! export IMGROUPS_TOKEN=$(imgroups token create me@imgroups.local)
//! CHAT=$(imgroups chats create alice@example.com bob@example.com zoe@example.net)
//! CHAT=$CHAT cargo run -p imgroups-client --example quickstart
//! ```

use futures::StreamExt;
use imgroups_client::{CatchUpEvent, ChatGuid, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder()
        .address(std::env::var("IMGROUPS_SERVER").unwrap_or("http://127.0.0.1:50051".into()))
        .token(std::env::var("IMGROUPS_TOKEN")?)
        .build()?;

    let chat: ChatGuid = std::env::var("CHAT")?.parse()?;
    let group = client.chats().get(&chat).await?;
    let members: Vec<&str> = group
        .participants
        .iter()
        .map(|p| p.address.as_str())
        .collect();
    println!("{chat} {:?}: {}", group.display_name, members.join(", "));

    // The account's whole log, oldest first; it ends once it reaches the head.
    let mut log = client.events().catch_up(0).await?;
    while let Some(item) = log.next().await {
        match item? {
            CatchUpEvent::Group(event) => println!("{}", event.to_line()),
            CatchUpEvent::Complete { head_sequence } => println!("up to date at {head_sequence}"),
            // Frames a newer server may add; nothing to print for them.
            _ => {}
        }
    }
    Ok(())
}
