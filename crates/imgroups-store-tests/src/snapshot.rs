//! Snapshots ([`Store::export`], [`Store::import`]): a world exported and imported elsewhere
//! is the same world (same file, same tokens, same chats and logs), and importing over a
//! world that moved on brings the exported one back.

use std::sync::Arc;

use imgroups_core::command::{Limits, NewMessage};
use imgroups_core::port::{NewFault, SimStore, WebhookUrl};
use imgroups_core::snapshot::Snapshot;
use imgroups_core::tokens::new_token;
use imgroups_core::{
    Address, ChatGuid, Command, Engine, EngineConfig, ErrorKind, Mutation, Outcome, Reaction,
};
use imgroups_sim::Simulator;

use serde_json::Value;

use crate::{block_on, png, Fixture};

/// The documented format (docs/snapshot.schema.json).
static SCHEMA: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    serde_json::from_str(include_str!("../../../docs/snapshot.schema.json")).expect("schema")
});

/// Panics unless `value` conforms to `schema` — the part of JSON Schema that
/// docs/snapshot.schema.json uses (`$ref` to `$defs`, `type`, `const`, `enum`, `oneOf`,
/// `properties`, `required`, `additionalProperties: false`, `items`, `pattern` for hex), so
/// the documented format cannot drift from what the stores write.
fn conforms(value: &Value, schema: &Value, root: &Value, at: &str) {
    if let Err(why) = check(value, schema, root, at) {
        panic!("the snapshot does not follow docs/snapshot.schema.json: {why}");
    }
}

fn check(value: &Value, schema: &Value, root: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        check(value, &root["$defs"][name], root, at)?;
    }
    if let Some(expected) = schema.get("const") {
        if value != expected {
            return Err(format!("{at}: {value} is not {expected}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Err(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|option| check(value, option, root, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!("{at}: {value} matches {matching} of oneOf"));
        }
    }
    if let Some(types) = schema.get("type") {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let allowed = match types {
            Value::Array(list) => list.iter().any(|t| t == kind),
            one => one == kind,
        };
        if !allowed {
            return Err(format!("{at}: {kind} where {types} is expected"));
        }
    }
    if let (Some(text), Some("^([0-9a-f]{2})*$")) = (
        value.as_str(),
        schema.get("pattern").and_then(Value::as_str),
    ) {
        if text.len() % 2 == 1
            || !text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(format!("{at}: {text} is not lower-case hex"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(key) {
                return Err(format!("{at}: {key} is missing"));
            }
        }
        if let Some(properties) = properties {
            for (key, item) in object {
                match properties.get(key) {
                    Some(property) => check(item, property, root, &format!("{at}.{key}"))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{at}: {key} is not in the schema"))
                    }
                    None => {}
                }
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check(item, items, root, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn engine(store: &Arc<dyn SimStore>) -> Engine {
    Engine::new(store.clone(), Simulator::network(), EngineConfig::default())
}

fn say(chat: &ChatGuid, text: &str) -> Command {
    Command::send_text(
        &chat.to_string(),
        NewMessage {
            text: text.into(),
            subject: Some("re".into()),
            effect_id: None,
            reply_to: None,
            formatting: Vec::new(),
        },
    )
    .expect("command")
}

/// A world with something of every kind the file holds, exported from `fixture`, imported
/// into `other` (a store of its own): the second export is the same bytes; the imported
/// world's token, chats, messages and log answer as before; the import counts as a reset and
/// survives a restart; and importing the file again over a world that moved on brings the
/// exported world back, log heads included, with writes continuing after it.
pub fn snapshot<F: Fixture>(fixture: F, other: F) {
    block_on(async {
        let store = fixture.open();
        store.set_clock(Some(11)).await.expect("clock");
        let engine = engine(&store);
        let me = Address::parse("a@x.com").expect("address");
        let (account, _) = store.ensure_account(&me).await.expect("account");
        let (friend, _) = store
            .ensure_account(&Address::parse("b@x.com").expect("address"))
            .await
            .expect("account");
        let (token, hash) = new_token();
        store.add_token(account, hash).await.expect("token");
        let people: Vec<String> = ["b@x.com", "p@x.com", "q@x.com"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        let chat = match engine
            .execute(
                account,
                None,
                Command::create_chat(&people, None).expect("command"),
            )
            .await
        {
            Ok(Outcome::Created { chat, .. }) => chat.guid,
            other => panic!("expected a created chat, got {other:?}"),
        };
        let rename = Command::set_display_name(&chat.to_string(), "Dinner").expect("rename");
        engine.execute(account, None, rename).await.expect("rename");
        let icon = Command::Group {
            chat: chat.clone(),
            mutation: Mutation::set_icon(png(4)).expect("icon"),
        };
        engine.execute(account, None, icon).await.expect("icon");
        let sent = match engine.execute(account, None, say(&chat, "hi 👋")).await {
            Ok(Outcome::Message(message)) => message.guid,
            other => panic!("expected a message, got {other:?}"),
        };
        let react = Command::react(&chat.to_string(), &sent, Reaction::Like, true).expect("react");
        engine.execute(friend, None, react).await.expect("react");
        let background = Command::set_background(&chat.to_string(), png(5), &Limits::default())
            .expect("background");
        engine
            .execute(account, None, background)
            .await
            .expect("background");
        let direct = ChatGuid::parse("any;-;z@x.com").expect("guid");
        engine
            .execute(account, None, say(&direct, "direct"))
            .await
            .expect("direct message");
        store
            .set_unreachable(&Address::parse("u@x.com").expect("address"), true)
            .await
            .expect("unreachable");
        store
            .add_fault(&NewFault {
                account: friend,
                method: "SendText".into(),
                error_code: Some("databaseError".into()),
                retryable: true,
                latency_ms: 5,
                count: Some(2),
                until: None,
            })
            .await
            .expect("fault");
        let url = WebhookUrl::parse("http://127.0.0.1:9/hook").expect("url");
        store
            .add_webhook(account, &url, "secret")
            .await
            .expect("webhook");

        let exported = store.export().await.expect("export");
        let file = exported.to_json();
        assert_eq!(Snapshot::from_json(&file).expect("reads back"), exported);
        assert_eq!(exported.accounts.len(), 2);
        assert_eq!(exported.groups.len(), 1);
        assert_eq!(exported.groups[0].members.len(), 4);
        assert!(exported.groups[0].icon.is_some());
        assert_eq!(exported.backgrounds.len(), 1);
        assert_eq!(exported.unreachable, ["u@x.com"]);
        assert!(exported.clock.is_some());
        let mine = &exported.accounts[0];
        assert_eq!(mine.address, "a@x.com");
        assert_eq!(mine.tokens.len(), 1);
        assert_eq!(mine.direct_chats.len(), 1);
        assert_eq!(mine.webhooks.len(), 1);
        assert_eq!(mine.messages.len(), 2);
        assert_eq!(mine.events.len() as u64, mine.head_seq);
        assert_eq!(exported.accounts[1].faults.len(), 1);
        let value: Value = serde_json::from_slice(&file).expect("json");
        conforms(&value, &SCHEMA, &SCHEMA, "$");

        // Into a store of its own: the same file comes out, and the world answers.
        let copy = other.open();
        copy.import(exported.clone()).await.expect("import");
        assert_eq!(copy.export().await.expect("export").to_json(), file);
        assert_eq!(copy.resets().await.expect("resets"), 1);
        assert_eq!(copy.authenticate(&token).await.expect("token"), account);
        let copied = self::engine(&copy);
        let seen = copied
            .get_chat(account, chat.to_string())
            .await
            .expect("chat");
        assert_eq!(seen.display_name.as_deref(), Some("Dinner"));
        let message = copied
            .get_message(friend, sent.clone())
            .await
            .expect("message");
        assert_eq!(message.text, "hi 👋");
        let bounds = copy.log_bounds(account).await.expect("bounds");
        assert_eq!(bounds.head, mine.head_seq);
        let events = copy
            .read_events(account, 0, bounds.head, 100)
            .await
            .expect("events");
        assert_eq!(events.len() as u64, bounds.head);
        assert_eq!(copy.faults().await.expect("faults").len(), 1);
        copy.close().await;
        let copy = other.open();
        assert_eq!(
            copy.export().await.expect("after a restart").to_json(),
            file
        );
        copy.close().await;

        // Over a world that moved on: the exported one comes back, heads included.
        engine
            .execute(account, None, say(&chat, "later"))
            .await
            .expect("message");
        let (_, hash) = new_token();
        let (late, _) = store
            .ensure_account(&Address::parse("late@x.com").expect("address"))
            .await
            .expect("account");
        store.add_token(late, hash).await.expect("token");
        store.import(exported.clone()).await.expect("import");
        assert_eq!(store.export().await.expect("export").to_json(), file);
        assert_eq!(store.resets().await.expect("resets"), 1);
        let gone = store
            .find_account(&Address::parse("late@x.com").expect("address"))
            .await
            .expect("find");
        assert_eq!(gone, None, "accounts the snapshot does not have are gone");
        let engine = self::engine(&store);
        let later = engine.execute(account, None, say(&chat, "after")).await;
        assert!(matches!(later, Ok(Outcome::Message(_))), "{later:?}");
        let bounds = store.log_bounds(account).await.expect("bounds");
        assert_eq!(bounds.head, mine.head_seq + 1);
        // A token made after the import does not take an imported one's id.
        let (_, hash) = new_token();
        let id = store.add_token(account, hash).await.expect("token");
        assert!(id.0 > mine.tokens[0].id);
        let missing = engine
            .get_message(account, "nope".into())
            .await
            .unwrap_err();
        assert_eq!(missing.kind, ErrorKind::MessageNotFound);
        store.close().await;
    });
}
