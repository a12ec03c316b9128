//! The generated method table against the protocol as the official SDK 2.2.0 defines it.

use std::collections::HashSet;

use super::{method, Field, FieldKind, HttpRoute, Method, METHODS};

const PACKAGE: &str = "photon.imessage.v1";

fn find(service: &str, name: &str) -> &'static Method {
    method(&format!("/{PACKAGE}.{service}/{name}")).unwrap_or_else(|| panic!("{service}/{name}"))
}

fn input_field(m: &Method, name: &str) -> Field {
    *m.input_fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{} has no field {name}", m.input))
}

#[test]
fn every_rpc_of_every_service_in_file_name_order() {
    // Services in the order of their files' names, as METHODS promises.
    let expected = [
        ("AddressService", 3),
        ("AttachmentService", 3),
        ("ChatService", 10),
        ("EventService", 1),
        ("GroupService", 8),
        ("LocationService", 4),
        ("MessageService", 15),
        ("PollService", 6),
    ];
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for m in METHODS {
        match seen.last_mut() {
            Some((service, n)) if *service == m.service => *n += 1,
            _ => seen.push((m.service, 1)),
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(METHODS.len(), 50);

    let group: Vec<&str> = METHODS
        .iter()
        .filter(|m| m.service == "GroupService")
        .map(|m| m.name)
        .collect();
    assert_eq!(
        group,
        [
            "SetDisplayName",
            "AddParticipants",
            "RemoveParticipants",
            "LeaveGroup",
            "SetIcon",
            "RemoveIcon",
            "GetIcon",
            "SubscribeGroupEvents"
        ]
    );
}

#[test]
fn paths_are_well_formed_unique_and_found() {
    let mut paths = HashSet::new();
    for m in METHODS {
        assert_eq!(m.path, format!("/{PACKAGE}.{}/{}", m.service, m.name));
        assert!(paths.insert(m.path), "{} twice", m.path);
        assert_eq!(method(m.path), Some(m));
        for ty in [m.input, m.output] {
            assert!(!ty.starts_with('.') && ty.contains('.'), "{}: {ty}", m.path);
        }
        assert!(
            !m.client_streaming,
            "{}: no RPC of the protocol streams requests",
            m.path
        );
    }
    assert_eq!(method("/photon.imessage.v1.GroupService/Nope"), None);
    assert_eq!(method("photon.imessage.v1.GroupService/GetIcon"), None);
    assert_eq!(method(""), None);
    assert_eq!(
        find("GroupService", "LeaveGroup").output,
        "google.protobuf.Empty"
    );
    assert_eq!(
        find("EventService", "CatchUpEvents").input,
        "photon.imessage.v1.CatchUpEventsRequest"
    );
}

#[test]
fn streams_are_exactly_the_sdks_seven() {
    let streams: Vec<&str> = METHODS
        .iter()
        .filter(|m| m.server_streaming)
        .map(|m| m.name)
        .collect();
    assert_eq!(
        streams,
        [
            "DownloadAttachment",
            "SubscribeChatEvents",
            "CatchUpEvents",
            "SubscribeGroupEvents",
            "WatchSharedFriendLocations",
            "SubscribeMessageEvents",
            "SubscribePollEvents"
        ]
    );
}

#[test]
fn every_unary_rpc_has_a_json_or_raw_route_and_streams_have_no_json_route() {
    for m in METHODS {
        if m.server_streaming {
            assert_eq!(m.http, None, "{}", m.path);
        } else {
            assert!(
                m.http.is_some() == m.raw_http.is_empty(),
                "{}: exactly one of a JSON route or raw routes",
                m.path
            );
        }
    }
    // The RPCs whose payload is a file: the SDK's HTTP client calls raw routes for them.
    let raw: Vec<(&str, Vec<HttpRoute>)> = METHODS
        .iter()
        .filter(|m| !m.raw_http.is_empty())
        .map(|m| (m.name, m.raw_http.to_vec()))
        .collect();
    let route = |verb, path| HttpRoute {
        verb,
        path,
        body: "",
    };
    assert_eq!(
        raw,
        [
            (
                "UploadAttachment",
                vec![route("POST", "/v1/attachments:upload")]
            ),
            (
                "DownloadAttachment",
                vec![
                    route("GET", "/v1/attachments/{attachment_guid}/data"),
                    route("GET", "/v1/attachments/{attachment_guid}/companion"),
                ]
            ),
            (
                "GetEmbeddedMedia",
                vec![route("GET", "/v1/messages:embeddedMedia")]
            ),
        ]
    );
}

#[test]
fn http_routes_are_well_formed_and_unique() {
    let mut routes = HashSet::new();
    for m in METHODS {
        for (route, json) in m
            .http
            .iter()
            .map(|r| (r, true))
            .chain(m.raw_http.iter().map(|r| (r, false)))
        {
            assert!(route.path.starts_with("/v1/"), "{}: {}", m.path, route.path);
            assert!(
                !route.path.contains(char::is_whitespace) && !route.path.contains('?'),
                "{}",
                route.path
            );
            assert!(
                routes.insert((route.verb, route.path)),
                "{} {} twice",
                route.verb,
                route.path
            );
            match (route.verb, json) {
                ("GET", _) | ("POST", false) => assert_eq!(route.body, "", "{}", m.path),
                ("POST", true) => assert_eq!(route.body, "*", "{}", m.path),
                (verb, _) => panic!("{}: unexpected verb {verb}", m.path),
            }
            // Every `{variable}` of a template is a string field of the request.
            let mut rest = route.path;
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').map(|c| open + c);
                let close = close.unwrap_or_else(|| panic!("unclosed {{ in {}", route.path));
                let field = input_field(m, &rest[open + 1..close]);
                assert_eq!(field.kind, FieldKind::String, "{}", route.path);
                rest = &rest[close + 1..];
            }
        }
    }
    assert_eq!(
        find("GroupService", "SetDisplayName").http,
        Some(HttpRoute {
            verb: "POST",
            path: "/v1/groups:setDisplayName",
            body: "*"
        })
    );
    assert_eq!(
        find("GroupService", "GetIcon").http,
        Some(HttpRoute {
            verb: "GET",
            path: "/v1/groups:icon",
            body: ""
        })
    );
    assert_eq!(
        find("MessageService", "GetMessage").http.map(|r| r.path),
        Some("/v1/messages/{message_guid}")
    );
    assert_eq!(
        find("ChatService", "CreateChat").http.map(|r| r.path),
        Some("/v1/chats")
    );
}

#[test]
fn input_fields_carry_kind_labels_and_json_names() {
    let count = find("ChatService", "GetChatCount");
    assert_eq!(
        count.input_fields,
        [Field {
            name: "include_archived",
            json_name: "includeArchived",
            number: 1,
            kind: FieldKind::Bool,
            repeated: false,
            optional: false,
        }]
    );

    let add = find("GroupService", "AddParticipants");
    let addresses = input_field(add, "addresses");
    assert!(addresses.repeated && !addresses.optional);
    assert_eq!((addresses.number, addresses.kind), (2, FieldKind::String));

    let list = find("MessageService", "ListChatMessages");
    assert_eq!(
        list.input_fields
            .iter()
            .map(|f| f.json_name)
            .collect::<Vec<_>>(),
        [
            "chatGuid",
            "pageSize",
            "pageToken",
            "isFromMe",
            "isRead",
            "before",
            "after"
        ]
    );
    let before = input_field(list, "before");
    assert_eq!(
        (before.number, before.kind, before.optional, before.repeated),
        (
            6,
            FieldKind::Message("google.protobuf.Timestamp"),
            true,
            false
        )
    );
    let page_size = input_field(list, "page_size");
    assert_eq!(
        (page_size.kind, page_size.optional),
        (FieldKind::Int32, true)
    );
    assert!(!input_field(list, "chat_guid").optional);

    let create = find("ChatService", "CreateChat");
    assert_eq!(
        input_field(create, "service").kind,
        FieldKind::Enum("photon.imessage.v1.ChatServiceType")
    );

    // A plain message field has presence but is not `optional`.
    let target = input_field(find("MessageService", "SetReaction"), "target");
    assert_eq!(
        (target.kind, target.optional),
        (
            FieldKind::Message("photon.imessage.v1.MessageTarget"),
            false
        )
    );
    let reply = input_field(find("MessageService", "SendTextMessage"), "reply_to");
    assert!(reply.optional);

    // GetMessageRequest has no field 1.
    let get = find("MessageService", "GetMessage");
    assert_eq!(get.input_fields.len(), 1);
    assert_eq!(get.input_fields[0].number, 2);
    assert!(find("LocationService", "ListSharedFriendLocations")
        .input_fields
        .is_empty());
}

#[test]
fn client_message_id_is_always_optional_string_100() {
    let mut writes = 0;
    for m in METHODS {
        for f in m
            .input_fields
            .iter()
            .filter(|f| f.name == "client_message_id")
        {
            writes += 1;
            assert_eq!(
                (f.number, f.kind, f.optional, f.json_name),
                (100, FieldKind::String, true, "clientMessageId"),
                "{}",
                m.path
            );
        }
    }
    // Six group writes, CreateChat, ten message writes, four poll writes, one location write.
    assert_eq!(writes, 22);
}
