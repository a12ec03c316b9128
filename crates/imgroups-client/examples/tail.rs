//! An event tailer that survives disconnects and its own restarts: it resumes from a file
//! checkpoint, so each group event is printed once, in order, however often it is stopped.
//!
//! ```sh
//! IMGROUPS_TOKEN=… cargo run -p imgroups-client --example tail -- events.checkpoint
//! ```

use futures::StreamExt;
use imgroups_client::{Client, EventFilter, FileCheckpoint};

#[tokio::main]
async fn main() -> Result<(), imgroups_client::Error> {
    let checkpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "events.checkpoint".to_owned());
    let client = Client::builder()
        .address(
            std::env::var("IMGROUPS_SERVER")
                .unwrap_or_else(|_| imgroups_client::DEFAULT_ADDRESS.to_owned()),
        )
        .token(std::env::var("IMGROUPS_TOKEN").unwrap_or_default())
        .build()?;

    let mut events = client
        .events()
        .resumable(EventFilter::all(), FileCheckpoint::new(&checkpoint))
        .on_reconnect(|err, attempt| eprintln!("reconnecting (attempt {attempt}): {err}"));
    while let Some(delivery) = events.next().await {
        let delivery = delivery?;
        println!("{}", delivery.to_line());
        // Only now is the event handled; the checkpoint file moves past it.
        delivery.ack().await?;
    }
    Ok(())
}
