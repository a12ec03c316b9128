//! A bot that greets people who join its groups.
//!
//! On every `participantAdded` in a group it can see, it prints a welcome and, if the group
//! has no name yet, names it after its members — the only "message" a groups-only bot can
//! send. Its own renames come back as events too; it ignores events it caused.
//!
//! ```sh
//! imgroups serve --data /tmp/imgroups        # prints `token …`
//! IMGROUPS_TOKEN=… cargo run -p imgroups-client --example welcome_bot
//! ```

use futures::StreamExt;
use imgroups_client::{Client, EventFilter, GroupChange};

#[tokio::main]
async fn main() -> Result<(), imgroups_client::Error> {
    let client = Client::builder()
        .address(
            std::env::var("IMGROUPS_SERVER")
                .unwrap_or_else(|_| imgroups_client::DEFAULT_ADDRESS.to_owned()),
        )
        .token(std::env::var("IMGROUPS_TOKEN").unwrap_or_default())
        .build()?;

    let mut events = client.groups().subscribe_events(EventFilter::all()).await?;
    eprintln!("welcome bot: listening for new members");
    while let Some(event) = events.next().await {
        let event = event?;
        if event.is_from_me {
            continue;
        }
        let GroupChange::ParticipantAdded { participant } = &event.change else {
            continue;
        };
        println!("welcome to the group, {}!", participant.address);

        // Name an unnamed group after its members.
        let current = client.chats().get(&event.chat_guid).await?;
        if current.display_name.is_empty() {
            let names: Vec<&str> = current
                .participants
                .iter()
                .map(|p| p.address.as_str())
                .collect();
            let name = format!("Group of {}", names.join(", "));
            // One id per logical rename: if the bot restarts and handles the same event again,
            // the server answers the original result instead of renaming twice.
            client
                .groups()
                .client_message_id(format!("welcome-{}", event.sequence))
                .set_display_name(&event.chat_guid, &name)
                .await?;
            println!("named {} {name:?}", event.chat_guid);
        }
    }
    Ok(())
}
