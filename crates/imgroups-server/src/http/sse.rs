//! `GET /v1/events:stream`: the account's group events as Server-Sent Events.
//!
//! Query: `afterSequence=N` (replay `N < sequence <= head` from the log first, then continue
//! live; absent = live only) and `chatGuid=…` (one group only). A `Last-Event-ID` header, which
//! browsers' `EventSource` sends when it reconnects, wins over `afterSequence`, so a resumed
//! stream continues right after the last event it saw. The hand-off from replay to live
//! happens server-side in [`Streams::subscribe_after`], so nothing falls between the two.
//!
//! Each event: `id: <sequence>` and `data: <json>` (see [`wire::event_json`]); idle
//! streams get a `: heartbeat` comment line at the server's heartbeat interval. A stream that
//! cannot go on ends with one `event: error` whose data is the JSON error body.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use http::HeaderMap;
use imgroups_core::{Error, Result};

use super::{ApiError, Authed, Http, QueryResult};
use crate::events::{Frame, Weighed};
use crate::wire;

type Item = std::result::Result<SseEvent, Infallible>;

/// Bytes of an SSE event besides its data: `id:`, `event:`, line ends.
pub(super) const SSE_FRAMING_BYTES: usize = 48;

/// `frame` as an SSE event, weighed for the stream's budget by its data's length.
fn frame(frame: Frame) -> Weighed<Item> {
    let mut bytes = SSE_FRAMING_BYTES;
    let event = sse_event(frame, &mut bytes);
    Weighed {
        frame: Ok(event),
        bytes,
    }
}

fn sse_event(frame: Frame, bytes: &mut usize) -> SseEvent {
    match frame {
        Frame::Event(event) => match wire::event_json(&event) {
            Ok(json) => {
                let data = json.to_string();
                *bytes += data.len();
                SseEvent::default()
                    .id(event.sequence.to_string())
                    .data(data)
            }
            Err(err) => {
                // Cannot happen for these types; never skip silently though.
                tracing::error!(error = %err, sequence = event.sequence, "cannot encode event");
                SseEvent::default().comment(format!("unencodable event {}", event.sequence))
            }
        },
        Frame::Heartbeat | Frame::Complete { .. } => SseEvent::default().comment("heartbeat"),
        // The stream cannot continue (its cursor fell behind retention, say): a final `error`
        // event with the usual error body, then the stream ends.
        Frame::Failed(err) => {
            let body = wire::error_body(&err, "").to_string();
            *bytes += body.len();
            SseEvent::default().event("error").data(body)
        }
    }
}

fn sequence(value: &str, field: &str) -> Result<u64> {
    value.trim().parse::<u64>().map_err(|_| {
        Error::invalid(format!(
            "{field} must be a non-negative integer, not {value:?}"
        ))
        .with("field", field)
    })
}

pub(super) async fn stream(
    State(h): State<Http>,
    Authed(caller): Authed,
    headers: HeaderMap,
    query: QueryResult,
) -> std::result::Result<Response, ApiError> {
    let permit = h.guard.open_stream(&caller)?;
    let axum::extract::Query(pairs) = query.map_err(|rejection| {
        Error::invalid(format!("invalid query string: {}", rejection.body_text()))
            .with("field", "query")
    })?;
    let mut after = None;
    let mut chat = None;
    for (key, value) in &pairs {
        match key.as_str() {
            "afterSequence" | "after_sequence" => after = Some(sequence(value, "afterSequence")?),
            "chatGuid" | "chat_guid" => chat = Some(value.clone()).filter(|c| !c.trim().is_empty()),
            _ => {}
        }
    }
    if let Some(last) = headers.get("last-event-id") {
        let last = last.to_str().map_err(|_| {
            Error::invalid("last-event-id must be a sequence number").with("field", "Last-Event-ID")
        })?;
        if !last.trim().is_empty() {
            after = Some(sequence(last, "Last-Event-ID")?);
        }
    }
    let filter = h.app.subscription_filter(&caller, chat).await?;
    let rx = h
        .streams
        .subscribe_after(
            &caller.token,
            caller.account,
            crate::events::Filter::default().in_chat(filter),
            after,
            frame,
        )
        .await?;
    // The permit counts this stream against the account's cap for as long as it is open.
    let frames = crate::events::frames(rx).map(move |weighed| {
        let _open = &permit;
        weighed.frame
    });
    Ok(Sse::new(frames).into_response())
}
