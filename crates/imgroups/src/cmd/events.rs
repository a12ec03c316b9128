//! `imgroups events tail` on a running server: live group events, or a replay of every kind
//! then live.

use std::process::ExitCode;

use futures::StreamExt;
use imgroups_client::{Client, Event, EventFilter, MemoryCheckpoint};

use crate::cli::remote::{EventsArgs, EventsCmd};
use crate::output::{json_safe, terminal_safe, Out};
use crate::remote::{chat_guid, run as connect, Failure, Outcome};

pub(crate) fn run(args: EventsArgs) -> ExitCode {
    let json = args.remote.json();
    connect(&args.remote, |client| async move {
        tail(&client, args.cmd, json).await
    })
}

fn render(event: &Event, json: bool) -> String {
    if json {
        json_safe(&event.to_json()).into_owned()
    } else {
        terminal_safe(&event.to_line(), false).into_owned()
    }
}

async fn tail(client: &Client, cmd: EventsCmd, json: bool) -> Outcome {
    let EventsCmd::Tail { chat, from } = cmd;
    let filter = match chat {
        Some(chat) => EventFilter::chat(chat_guid(&chat)?),
        None => EventFilter::all(),
    };
    let mut out = Out::new();
    match from {
        None => {
            let mut live = client.groups().subscribe_events(filter).await?;
            while let Some(event) = live.next().await {
                if out.line(&render(&Event::from(event?), json)).is_err() {
                    return Ok(());
                }
            }
            Err(Failure::new(
                5,
                "serviceUnavailable",
                "the server closed the event stream",
            ))
        }
        Some(after) => {
            let mut events = client
                .events()
                .resumable(filter, MemoryCheckpoint::new(after))
                .on_reconnect(|err, attempt| {
                    let err = err.to_string();
                    eprintln!(
                        "reconnecting (attempt {attempt}): {}",
                        terminal_safe(&err, false)
                    );
                });
            while let Some(delivery) = events.next().await {
                let delivery = delivery?;
                if out.line(&render(&delivery, json)).is_err() {
                    return Ok(());
                }
                delivery.ack().await?;
            }
            Ok(())
        }
    }
}
