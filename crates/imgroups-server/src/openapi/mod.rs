//! docs/openapi.json, generated: the operations' paths and schemas come from the method table
//! (`google.api.http` routes, registered or UNIMPLEMENTED) and the compiled-in message
//! descriptors (fields, types, comments); the routes of our own (SSE, webhooks, health,
//! metrics, this document), the error schema and the document's head are the hand-written
//! fragment `base.json`. Adding an operation changes the document without a hand edit.
//!
//! The server serves [`render`]'s output (`GET /openapi.json`); the committed file must be the
//! same text (a test checks it), regenerated with
//! `IMGROUPS_BLESS=1 cargo test -p imgroups-server openapi`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use imgroups_proto::methods::{HttpRoute, Method};
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use serde_json::{json, Map, Value};

use crate::rpc::{Registry, Rpc, Served};

/// The hand-written part: head, our own routes, the error and webhook schemas.
const BASE: &str = include_str!("base.json");

/// The description of every error answer.
const ERROR: &str =
    "Error (docs/protocol.md §6.3); the HTTP status follows grpc-gateway's mapping of `code`.";

/// The document, as committed: pretty JSON with a final newline.
pub(crate) fn render() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// The document.
pub(crate) fn document() -> Value {
    let mut doc: Value = match serde_json::from_str(BASE) {
        Ok(doc) => doc,
        Err(err) => {
            // Compiled in and tested: a broken fragment fails `openapi_json_is_generated`.
            tracing::error!(error = %err, "openapi base.json is not json");
            return Value::Null;
        }
    };
    let descriptors = &*DESCRIPTORS;
    let mut schemas = Schemas {
        descriptors,
        done: BTreeMap::new(),
        requests: BTreeSet::new(),
    };
    let mut paths = Map::new();
    let mut tags = Vec::new();
    let served = Served::get();

    // Registered operations, in registration order.
    struct Registered(Vec<(&'static Method, bool)>);
    impl Registry for Registered {
        fn rpc<R: Rpc>(&mut self) {
            if let Some(method) = imgroups_proto::methods::method(R::PATH) {
                self.0.push((method, R::LARGE_BODY));
            }
        }
        fn stream<S: crate::grpc::streams::EncodedMethod>(&mut self) {}
    }
    let mut registered = Registered(Vec::new());
    crate::rpc::register(&mut registered);
    for (method, _) in &registered.0 {
        let Some(route) = &method.http else {
            continue;
        };
        if !tags.contains(&method.service) {
            tags.push(method.service);
        }
        let operation = operation(method, route, &mut schemas);
        insert(&mut paths, route, operation);
    }
    let mut unimplemented = false;
    for method in served.unimplemented() {
        let name = served.unimplemented_name(method);
        let routes: Vec<&HttpRoute> = method.http.iter().chain(method.raw_http).collect();
        for route in &routes {
            unimplemented = true;
            // Operation ids are unique: a method with several routes names each by its path.
            let id = match routes.len() {
                1 => format!("Unimplemented_{}", method.name),
                _ => format!("Unimplemented_{}_{}", method.name, last_segment(route.path)),
            };
            insert(&mut paths, route, unimplemented_operation(id, route, name));
        }
    }
    schemas.add("google.protobuf.Empty");
    schemas.add("photon.imessage.v1.GroupChangeEvent");
    let mut generated = schemas.finish();
    let event = generated
        .get("GroupChangeEvent")
        .and_then(|s| s.get("properties"))
        .cloned();
    if let Some(Value::Object(mut properties)) = event {
        properties.insert(
            "type".into(),
            json!({ "type": "string", "enum": ["group.changed"] }),
        );
        properties.insert("sequence".into(), json!({ "type": "integer" }));
        generated.insert(
            "GroupEventJson".into(),
            json!({
                "type": "object",
                "description": "A group event as delivered by SSE and webhooks: the proto3 JSON \
                    of GroupChangeEvent plus `type` and `sequence`; \
                    `parseGroupChangeEvent(json, json.sequence)` of the official SDK accepts it.",
                "properties": properties,
            }),
        );
    }

    if let Some(base) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        base.extend(paths);
    }
    if let Some(base) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        base.extend(generated);
    }
    if let Some(Value::Array(base)) = doc.get_mut("tags") {
        let mut all: Vec<Value> = tags.iter().map(|t| json!({ "name": t })).collect();
        all.append(base);
        if unimplemented {
            all.push(json!({ "name": "Unimplemented" }));
        }
        *base = all;
    }
    doc
}

fn insert(paths: &mut Map<String, Value>, route: &HttpRoute, operation: Value) {
    let item = paths
        .entry(route.path)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(item) = item {
        item.insert(route.verb.to_ascii_lowercase(), operation);
    }
}

/// Whether a route takes a body (and so may be too large): a JSON one, or the bytes of a
/// raw-byte upload.
fn has_body(route: &HttpRoute) -> bool {
    !route.body.is_empty() || matches!(route.verb, "POST" | "PUT" | "PATCH")
}

/// The last segment of a path template, without braces or a `:verb` prefix (`companion` of
/// `/v1/attachments/{guid}/companion`, `embeddedMedia` of `/v1/messages:embeddedMedia`).
fn last_segment(template: &str) -> String {
    let last = template.rsplit('/').next().unwrap_or(template);
    let last = last.rsplit(':').next().unwrap_or(last);
    last.trim_matches(|c| c == '{' || c == '}').to_owned()
}

/// The `{name}`s of a path template.
fn path_parameters(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .map(|name| name.split_once('=').map_or(name, |(name, _)| name))
        .collect()
}

fn error_response() -> Value {
    json!({
        "description": ERROR,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn responses(ok: (&str, Value), route: &HttpRoute) -> Value {
    let mut responses = Map::new();
    responses.insert(ok.0.to_owned(), ok.1);
    responses.insert("default".into(), error_response());
    responses.insert(
        "429".into(),
        json!({ "$ref": "#/components/responses/RateLimited" }),
    );
    if has_body(route) {
        responses.insert(
            "413".into(),
            json!({ "$ref": "#/components/responses/TooLarge" }),
        );
    }
    Value::Object(responses)
}

/// The operation of a registered RPC.
fn operation(method: &Method, route: &HttpRoute, schemas: &mut Schemas) -> Value {
    let input = schemas.descriptors.messages.get(method.input);
    let mut parameters = Vec::new();
    let fields: Vec<&FieldDescriptorProto> = input
        .map(|m| m.proto.field.iter().collect())
        .unwrap_or_default();
    if fields.iter().any(|f| f.name() == "client_message_id") {
        parameters.push(json!({ "$ref": "#/components/parameters/IdempotencyKey" }));
    }
    let in_path = path_parameters(route.path);
    for name in &in_path {
        let field = fields.iter().find(|f| f.name() == *name);
        let mut schema = field.map_or_else(
            || json!({ "type": "string" }),
            |f| schemas.field(method.input, f),
        );
        let description = take_description(&mut schema);
        let mut parameter =
            json!({ "name": name, "in": "path", "required": true, "schema": schema });
        if let Some(description) = description {
            parameter["description"] = description;
        }
        parameters.push(parameter);
    }
    let mut body = None;
    match route.body {
        "*" => body = Some(schemas.reference(method.input, true)),
        "" => {
            // Every field not in the path is a query parameter (messages cannot be).
            for field in &fields {
                if in_path.contains(&field.name()) || field.r#type() == Type::Message {
                    continue;
                }
                let mut schema = schemas.field(method.input, field);
                let description = take_description(&mut schema);
                let required = schemas.descriptors.required(method.input, field);
                let mut parameter = json!({
                    "name": field.json_name(),
                    "in": "query",
                    "required": required,
                    "schema": schema,
                });
                if let Some(description) = description {
                    parameter["description"] = description;
                }
                parameters.push(parameter);
            }
        }
        field_name => {
            if let Some(field) = fields.iter().find(|f| f.name() == field_name) {
                body = Some(schemas.field(method.input, field));
            }
        }
    }
    let mut operation = json!({
        "operationId": format!("{}_{}", method.service, method.name),
        "summary": schemas.descriptors.method_comment(method).unwrap_or_else(|| method.name.to_owned()),
        "tags": [method.service],
        "security": [{ "bearer": [] }],
    });
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    if let Some(schema) = body {
        operation["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema } },
        });
    }
    let output = schemas.reference(method.output, false);
    operation["responses"] = responses(
        (
            "200",
            json!({ "description": "OK", "content": { "application/json": { "schema": output } } }),
        ),
        route,
    );
    operation
}

/// The operation of an RPC this server does not implement: its route, its path parameters,
/// and the UNIMPLEMENTED answer.
fn unimplemented_operation(id: String, route: &HttpRoute, name: &str) -> Value {
    let mut operation = json!({
        "operationId": id,
        "summary": format!(
            "Not implemented by this server ({name}): UNIMPLEMENTED, `operationNotSupported`."
        ),
        "tags": ["Unimplemented"],
        "security": [{ "bearer": [] }],
    });
    let parameters: Vec<Value> = path_parameters(route.path)
        .into_iter()
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    operation["responses"] = responses(("501", error_response()), route);
    operation
}

fn take_description(schema: &mut Value) -> Option<Value> {
    schema.as_object_mut()?.remove("description")
}

// ------------------------------------------------------------------------------ descriptors

/// One message of the descriptor set, with the comments of it and its fields.
struct MessageInfo {
    proto: DescriptorProto,
    comment: Option<String>,
    /// By field name.
    fields: HashMap<String, String>,
}

struct EnumInfo {
    proto: EnumDescriptorProto,
    comment: Option<String>,
}

/// The messages, enums and method comments of the compiled-in descriptor set, by full name
/// (`photon.imessage.v1.Chat`).
struct Descriptors {
    messages: HashMap<String, MessageInfo>,
    enums: HashMap<String, EnumInfo>,
    /// By gRPC path.
    methods: HashMap<String, String>,
}

static DESCRIPTORS: LazyLock<Descriptors> = LazyLock::new(|| {
    let mut descriptors = Descriptors {
        messages: HashMap::new(),
        enums: HashMap::new(),
        methods: HashMap::new(),
    };
    let Ok(set) = FileDescriptorSet::decode(imgroups_proto::FILE_DESCRIPTOR_SET) else {
        tracing::error!("cannot decode the compiled-in file descriptors");
        return descriptors;
    };
    for file in set.file {
        let comments: HashMap<Vec<i32>, String> = file
            .source_code_info
            .iter()
            .flat_map(|info| &info.location)
            .filter_map(|l| Some((l.path.clone(), clean(l.leading_comments.as_deref()?)?)))
            .collect();
        let package = file.package().to_owned();
        for (i, message) in file.message_type.iter().enumerate() {
            descriptors.message(&package, message, vec![4, i as i32], &comments);
        }
        for (i, enumeration) in file.enum_type.iter().enumerate() {
            descriptors.enumeration(&package, enumeration, vec![5, i as i32], &comments);
        }
        for (s, service) in file.service.iter().enumerate() {
            for (m, method) in service.method.iter().enumerate() {
                if let Some(comment) = comments.get(&vec![6, s as i32, 2, m as i32]) {
                    let path = format!("/{package}.{}/{}", service.name(), method.name());
                    descriptors.methods.insert(path, comment.clone());
                }
            }
        }
    }
    descriptors
});

/// A comment as one paragraph per blank-line-separated block; `None` when empty.
fn clean(comment: &str) -> Option<String> {
    let paragraphs: Vec<String> = comment
        .split("\n\n")
        .map(|p| {
            p.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty())
        .collect();
    (!paragraphs.is_empty()).then(|| paragraphs.join("\n\n"))
}

impl Descriptors {
    fn message(
        &mut self,
        scope: &str,
        message: &DescriptorProto,
        path: Vec<i32>,
        comments: &HashMap<Vec<i32>, String>,
    ) {
        let name = format!("{scope}.{}", message.name());
        let fields = message
            .field
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let mut at = path.clone();
                at.extend([2, i as i32]);
                Some((f.name().to_owned(), comments.get(&at)?.clone()))
            })
            .collect();
        for (i, nested) in message.nested_type.iter().enumerate() {
            let mut at = path.clone();
            at.extend([3, i as i32]);
            self.message(&name, nested, at, comments);
        }
        for (i, nested) in message.enum_type.iter().enumerate() {
            let mut at = path.clone();
            at.extend([4, i as i32]);
            self.enumeration(&name, nested, at, comments);
        }
        self.messages.insert(
            name,
            MessageInfo {
                proto: message.clone(),
                comment: comments.get(&path).cloned(),
                fields,
            },
        );
    }

    fn enumeration(
        &mut self,
        scope: &str,
        enumeration: &EnumDescriptorProto,
        path: Vec<i32>,
        comments: &HashMap<Vec<i32>, String>,
    ) {
        self.enums.insert(
            format!("{scope}.{}", enumeration.name()),
            EnumInfo {
                proto: enumeration.clone(),
                comment: comments.get(&path).cloned(),
            },
        );
    }

    /// The method's comment, as the operation's summary.
    fn method_comment(&self, method: &Method) -> Option<String> {
        self.methods.get(method.path).cloned()
    }

    /// Whether a field of a request message is documented as required: a field the server
    /// refuses to leave empty ([`FIELD_NOTES`]), unless it has explicit presence.
    fn required(&self, _message: &str, field: &FieldDescriptorProto) -> bool {
        !field.proto3_optional() && REQUIRED.contains(&field.json_name())
    }
}

// ---------------------------------------------------------------------------------- schemas

/// The schemas made so far, by component name.
struct Schemas<'a> {
    descriptors: &'a Descriptors,
    done: BTreeMap<String, Value>,
    /// Messages that are a request: their schema says which fields are required.
    requests: BTreeSet<String>,
}

/// The component name of a message or enum: its name without the package (whose segments
/// are lower case), `Outer.Inner` for a nested one.
fn component(full: &str) -> String {
    let segments: Vec<&str> = full
        .split('.')
        .skip_while(|s| s.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect();
    segments.join(".")
}

impl Schemas<'_> {
    /// A `$ref` to the schema of `full` (made on first use).
    fn reference(&mut self, full: &str, request: bool) -> Value {
        if let Some(inline) = well_known(full) {
            return inline;
        }
        if request {
            self.requests.insert(full.to_owned());
        }
        self.add(full);
        json!({ "$ref": format!("#/components/schemas/{}", component(full)) })
    }

    /// Makes the schema of `full` and of everything it refers to.
    fn add(&mut self, full: &str) {
        let name = component(full);
        if self.done.contains_key(&name) {
            return;
        }
        if full == "google.protobuf.Empty" {
            self.done.insert(name, json!({ "type": "object" }));
            return;
        }
        if let Some(info) = self.descriptors.enums.get(full) {
            let values: Vec<&str> = info.proto.value.iter().map(|v| v.name()).collect();
            let mut schema = json!({ "type": "string", "enum": values });
            if let Some(comment) = &info.comment {
                schema["description"] = json!(comment);
            }
            self.done.insert(name, schema);
            return;
        }
        let Some(info) = self.descriptors.messages.get(full) else {
            self.done.insert(name, json!({ "type": "object" }));
            return;
        };
        // Placed first, so a message that refers to itself ends.
        self.done.insert(name.clone(), json!({ "type": "object" }));
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in &info.proto.field {
            properties.insert(field.json_name().to_owned(), self.field(full, field));
            if self.requests.contains(full) && self.descriptors.required(full, field) {
                required.push(field.json_name().to_owned());
            }
        }
        let mut schema = json!({ "type": "object", "properties": properties });
        if !required.is_empty() {
            schema["required"] = json!(required);
        }
        if let Some(comment) = &info.comment {
            schema["description"] = json!(comment);
        }
        self.done.insert(name, schema);
    }

    /// The schema of one field of `message`, with its comment and notes as description.
    fn field(&mut self, message: &str, field: &FieldDescriptorProto) -> Value {
        let mut schema = self.value(field);
        let notes = field_notes(message, field.json_name());
        let map_entry = matches!(schema.get("type"), Some(Value::String(t)) if t == "object")
            && schema.get("additionalProperties").is_some();
        if field.label() == Label::Repeated && !map_entry {
            schema = json!({ "type": "array", "items": schema });
        }
        if let (Some(Value::Object(notes)), Value::Object(target)) = (notes, &mut schema) {
            for (key, value) in notes {
                match (key.as_str(), value) {
                    // Notes for each item of a list.
                    ("items", Value::Object(item)) => {
                        if let Some(Value::Object(items)) = target.get_mut("items") {
                            items.extend(item);
                        }
                    }
                    (_, value) => {
                        target.insert(key, value);
                    }
                }
            }
        } else if let Some(comment) = self
            .descriptors
            .messages
            .get(message)
            .and_then(|m| m.fields.get(field.name()))
        {
            schema["description"] = json!(comment);
        }
        schema
    }

    /// The schema of one value of a field (the item of a repeated one).
    fn value(&mut self, field: &FieldDescriptorProto) -> Value {
        match field.r#type() {
            Type::Double | Type::Float => json!({ "type": "number" }),
            Type::Int64 | Type::Uint64 | Type::Sint64 | Type::Fixed64 | Type::Sfixed64 => json!({
                "type": ["string", "integer"],
                "format": "int64",
                "description": "proto3 JSON int64: a decimal string (a number is accepted too)",
            }),
            Type::Int32 | Type::Uint32 | Type::Sint32 | Type::Fixed32 | Type::Sfixed32 => {
                json!({ "type": "integer" })
            }
            Type::Bool => json!({ "type": "boolean" }),
            Type::String => json!({ "type": "string" }),
            Type::Bytes => json!({ "type": "string", "format": "byte" }),
            Type::Enum => self.reference(field.type_name().trim_start_matches('.'), false),
            Type::Message | Type::Group => {
                let full = field.type_name().trim_start_matches('.');
                let entry = self
                    .descriptors
                    .messages
                    .get(full)
                    .filter(|m| m.proto.options.as_ref().is_some_and(|o| o.map_entry()));
                match entry.and_then(|m| m.proto.field.iter().find(|f| f.name() == "value")) {
                    Some(value) => {
                        let value = value.clone();
                        json!({ "type": "object", "additionalProperties": self.value(&value) })
                    }
                    None => self.reference(full, false),
                }
            }
        }
    }

    fn finish(self) -> Map<String, Value> {
        self.done.into_iter().collect()
    }
}

/// The proto3 JSON form of a well-known type, inline.
fn well_known(full: &str) -> Option<Value> {
    Some(match full {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => json!({ "type": "string" }),
        "google.protobuf.Struct" => json!({ "type": "object" }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.Any" => json!({ "type": "object" }),
        _ => return None,
    })
}

// ------------------------------------------------------------------------------ field notes

/// Fields the server refuses to leave empty, wherever they appear in a request.
const REQUIRED: &[&str] = &["chatGuid", "addresses", "displayName"];

/// What the server enforces about a field, where a proto comment cannot say it: limits and
/// the errors they answer with. By JSON name wherever it appears (`chatGuid`), or by message
/// and field (`SetIconRequest.data`), which wins. These are the same for every operation that
/// has the field, so a new operation needs none of its own.
fn field_notes(message: &str, field: &str) -> Option<Value> {
    const ADDRESS: &str = "An email or an E.164 phone number; more than 512 bytes is \
        `invalidArgument` (`reason=tooLong`, `limit=512`).";
    let address_items = json!({ "maxLength": 512, "description": ADDRESS });
    let specific = match (component(message).as_str(), field) {
        ("SetIconRequest", "data") => Some(json!({
            "description": "PNG, JPEG, GIF, HEIC or HEIF bytes, at most `--max-icon-bytes` \
                (`reason=tooLarge`). Declared dimensions beyond 16384 pixels a side or \
                50,000,000 pixels are `reason=imageTooLarge` (with `limit`, `width`, `height`); \
                bytes after the image's end (PNG `IEND`, JPEG EOI, GIF trailer) are \
                `reason=trailingData`; anything else `reason=unsupportedImageType`.",
        })),
        ("AddParticipantsRequest", "addresses") => Some(json!({
            "items": address_items,
            "maxItems": 31,
            "description": "Without duplicates. More than 31 (a group holds at most 32 members \
                including you) is `preconditionFailed` with `reason=groupFull`, `limit=32`, \
                before any entry is checked.",
        })),
        ("RemoveParticipantsRequest", "addresses") => Some(json!({
            "items": address_items,
            "maxItems": 31,
            "description": "Without duplicates. More than 31 (no group has more members \
                besides you) is `invalidArgument` with `reason=tooLong`, `limit=31`, before any \
                entry is checked.",
        })),
        ("CreateChatRequest", "addresses") => Some(json!({
            "items": address_items,
            "maxItems": 31,
            "description": "One address: the direct chat; 2 to 31: a group. More than 31 is \
                `preconditionFailed` with `reason=groupFull`, `limit=32`, before any entry is \
                checked.",
        })),
        _ => None,
    };
    if specific.is_some() {
        return specific;
    }
    Some(match field {
        "chatGuid" => json!({
            "maxLength": 512,
            "description": "Chat GUID, `any;+;chat…` (also `iMessage;`, `SMS;`, `RCS;` \
                prefixes). At most 512 bytes (UTF-8), else `invalidArgument` with \
                `reason=tooLong`, `limit=512`.",
        }),
        "clientMessageId" => json!({
            "maxLength": 256,
            "description": "Idempotency key: a repeat returns the original result; another \
                request under the same key fails with `duplicateMessage`. At most 256 bytes \
                (UTF-8), else `invalidArgument` with `reason=tooLong`, `limit=256`, \
                `field=clientMessageId`.",
        }),
        "displayName" if component(message).ends_with("Request") => json!({
            "maxLength": 256,
            "description": "Trimmed; not empty (`invalidArgument`, `field=displayName`); at most \
                256 characters (`reason=tooLong`, `limit=256`); no control characters (C0 \
                including tab and newline, DEL, C1), no U+2028/U+2029 and no bidirectional \
                embeddings, overrides or isolates (U+202A–U+202E, U+2066–U+2069): \
                `invalidArgument`, `reason=controlCharacter`, `character=U+XXXX`. The marks \
                U+200E, U+200F and U+061C are allowed.",
        }),
        "addresses" => json!({ "items": address_items }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.json is this module's output; `IMGROUPS_BLESS=1` rewrites it.
    #[test]
    fn openapi_json_is_generated() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = render();
        if std::env::var_os("IMGROUPS_BLESS").is_some() {
            std::fs::write(&path, &generated).expect("write docs/openapi.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).expect("read docs/openapi.json");
        assert!(
            committed == generated,
            "docs/openapi.json is not the document generated from the method table and \
             crates/imgroups-server/src/openapi/base.json: regenerate it with \
             `IMGROUPS_BLESS=1 cargo test -p imgroups-server openapi` and commit it"
        );
    }

    #[test]
    fn every_operation_of_the_table_with_a_route_is_documented() {
        let doc = document();
        for method in imgroups_proto::methods::METHODS {
            for route in method.http.iter().chain(method.raw_http) {
                let verb = route.verb.to_ascii_lowercase();
                let operation = &doc["paths"][route.path][verb.as_str()];
                assert!(
                    operation.is_object(),
                    "{} {} is missing",
                    route.verb,
                    route.path
                );
            }
        }
        // Every reference resolves.
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap_or_default();
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling {target}");
        }
    }

    #[test]
    fn path_templates() {
        assert_eq!(path_parameters("/v1/messages/{guid}/data"), ["guid"]);
        assert_eq!(path_parameters("/v1/chats"), Vec::<&str>::new());
        assert_eq!(path_parameters("/v1/{name=chats/*}:x"), ["name"]);
        assert_eq!(
            last_segment("/v1/attachments/{guid}/companion"),
            "companion"
        );
        assert_eq!(last_segment("/v1/messages:embeddedMedia"), "embeddedMedia");
    }
}
