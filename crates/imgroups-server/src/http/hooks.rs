//! `/v1/webhooks`: register, list, delete and resume the token's account's webhook endpoints.
//! Delivery itself is [`crate::webhooks`].

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use imgroups_core::port::Webhook;
use imgroups_core::{Error, Result, WebhookId};
use serde::{Deserialize, Serialize};

use super::{decode_body, json, Authed, BodyResult, Http, Reply};
use crate::wire;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeRequest {
    id: serde_json::Value,
}

/// A webhook as the API shows it. The secret only in the answer to its creation.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookJson {
    id: i64,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// `active` or `paused`.
    status: &'static str,
    /// Last sequence the endpoint acknowledged with a 2xx.
    last_delivered_sequence: u64,
    /// Consecutive failed attempts.
    failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    created_at: imgroups_proto::pbjson_types::Timestamp,
}

fn view(hook: Webhook, with_secret: bool) -> WebhookJson {
    WebhookJson {
        id: hook.id.0,
        url: hook.url,
        secret: with_secret.then_some(hook.secret),
        status: if hook.paused { "paused" } else { "active" },
        last_delivered_sequence: hook.cursor,
        failures: hook.failures,
        last_error: hook.last_error,
        created_at: wire::timestamp(hook.created_at),
    }
}

fn parse_id(value: &serde_json::Value) -> Result<WebhookId> {
    let id = match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0)
        .map(WebhookId)
        .ok_or_else(|| Error::invalid(format!("invalid webhook id {value}")).with("field", "id"))
}

pub(super) async fn add(State(h): State<Http>, Authed(caller): Authed, body: BodyResult) -> Reply {
    let req: AddRequest = decode_body(body, h.guard.limits.max_message_bytes)?;
    let hook = h.app.add_webhook(&caller, &req.url).await?;
    json(&view(hook, true))
}

pub(super) async fn list(State(h): State<Http>, Authed(caller): Authed) -> Reply {
    let hooks = h.app.webhooks(&caller).await?;
    let webhooks: Vec<_> = hooks.into_iter().map(|w| view(w, false)).collect();
    json(&serde_json::json!({ "webhooks": webhooks }))
}

pub(super) async fn remove(
    State(h): State<Http>,
    Authed(caller): Authed,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Reply {
    let id = match id {
        Ok(Path(id)) => parse_id(&serde_json::Value::String(id))?,
        Err(_) => {
            return Err(Error::invalid("invalid webhook id")
                .with("field", "id")
                .into())
        }
    };
    h.app.remove_webhook(&caller, id).await?;
    json(&serde_json::json!({}))
}

pub(super) async fn resume(
    State(h): State<Http>,
    Authed(caller): Authed,
    body: BodyResult,
) -> Reply {
    let req: ResumeRequest = decode_body(body, h.guard.limits.max_message_bytes)?;
    let id = parse_id(&req.id)?;
    let hook = h.app.resume_webhook(&caller, id).await?;
    json(&view(hook, false))
}
