//! `imgroups sim expect ACCOUNT …`: waits for an account's own action on its log, beside any
//! server on the store. The store's commit notices of a server's writes do not reach a tool,
//! so the log is re-read every [`RECHECK`]: a read of one row while nothing happens.

use std::process::ExitCode;
use std::time::Duration;

use imgroups_core::expect::{self, Expectation, Verdict};
use imgroups_core::{admin, Address, Event};

use crate::cli::expect::{ExpectArgs, Since};
use crate::output::{json_safe, print_lines, rfc3339, terminal_safe};
use crate::store::{closing, open, StoreOptions};

/// How often a tool re-reads the log while it waits.
pub(crate) const RECHECK: Duration = Duration::from_millis(20);

/// Exit 1: the expectation was not met in time (or, for `play`, a step was refused).
pub(crate) const NOT_MET: u8 = 1;
/// Exit 2: bad usage, or a store that cannot be used.
pub(crate) const USAGE: u8 = 2;

pub(crate) fn run(args: ExpectArgs) -> ExitCode {
    let json = args.json;
    let timeout = args.timeout;
    let data = args.data.clone();
    let result = crate::runtime(tokio::runtime::Builder::new_current_thread()).and_then(|rt| {
        rt.block_on(async {
            let store = open(&args.data, StoreOptions::tool())?;
            closing(store, |store| async move {
                let address = Address::parse(&args.account)?;
                let account = admin::account(&*store, &address).await?;
                let expectation =
                    Expectation::new(args.kind, args.chat.as_deref(), args.matching.as_deref())?;
                let after = match args.since {
                    Since::Sequence(n) => n,
                    Since::Now => store.log_bounds(account).await?.head,
                };
                let verdict =
                    expect::wait(&*store, account, &expectation, after, timeout, RECHECK).await?;
                Ok((verdict, expectation, address, after))
            })
            .await
        })
    });
    match result {
        Ok((Verdict::Matched(event), ..)) => {
            print_lines([if json {
                event_json(&event)
            } else {
                line(&event)
            }]);
            ExitCode::SUCCESS
        }
        Ok((Verdict::TimedOut { seen, .. }, expectation, address, after)) => {
            let headline = format!(
                "{address} did not do {} after #{after} within {}",
                expectation.describe(),
                humantime::format_duration(timeout)
            );
            eprint!("{}", not_met(&headline, &seen, json));
            ExitCode::from(NOT_MET)
        }
        Err(err) => {
            let _ = crate::output::exit(Err(crate::store::in_store(err, &data)), json);
            ExitCode::from(USAGE)
        }
    }
}

/// What stderr says when an expectation was not met: the headline, then what the log showed
/// instead (one line each, or JSON lines with `json`).
pub(crate) fn not_met(headline: &str, seen: &[Event], json: bool) -> String {
    let mut out = if json {
        format!(
            "{}\n",
            serde_json::json!({"error": {"code": "notMet", "message": headline, "retryable": false}})
        )
    } else if seen.is_empty() {
        format!("{headline}; nothing happened in its log\n")
    } else {
        format!("{headline}; its log showed:\n")
    };
    for event in seen {
        let text = if json {
            event_json(event)
        } else {
            format!("  {}", line(event))
        };
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// One event in one line: `#7 2026-12-06T21:00:00Z any;+;chat… message "hi" by me`.
pub(crate) fn line(event: &Event) -> String {
    let chat = event.chat_guid.to_string();
    let (kind, text) = match expect::observed(event, &chat) {
        Some(seen) => (seen.kind.name(), seen.text),
        None => (event.change.event_type(), None),
    };
    let text = text.map(|t| format!(" {t:?}")).unwrap_or_default();
    let by = match (&event.actor, event.is_from_me) {
        (_, true) => "me".to_owned(),
        (Some(actor), false) => actor.to_string(),
        (None, false) => "someone".to_owned(),
    };
    let line = format!(
        "#{} {} {chat} {kind}{text} by {by}",
        event.sequence,
        rfc3339(event.occurred_at.seconds())
    );
    terminal_safe(&line, false).into_owned()
}

/// One event as one JSON object: the console's shape ([`imgroups_server::event_json`]).
pub(crate) fn event_json(event: &Event) -> String {
    json_safe(&imgroups_server::event_json(event).to_string()).into_owned()
}
