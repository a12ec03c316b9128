//! Wire-level facts the rest of the server relies on.

use prost::Message as _;

use crate::pb;

/// Protobuf key varint for `(field << 3) | wire_type`.
fn key(field: u32, wire_type: u32) -> Vec<u8> {
    let mut v = (field << 3) | wire_type;
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn ts(seconds: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds, nanos: 0 }
}

#[test]
fn client_message_id_is_field_100() {
    assert_eq!(key(100, 2), [0xA2, 0x06]);
    let req = pb::SetDisplayNameRequest {
        chat_guid: "any;+;abc".into(),
        display_name: "Team".into(),
        client_message_id: Some("id-1".into()),
    };
    let bytes = req.encode_to_vec();
    assert!(contains(&bytes, &[0xA2, 0x06, 4, b'i', b'd', b'-', b'1']));

    // proto3 `optional`: an explicitly empty id is still on the wire.
    let req = pb::LeaveGroupRequest {
        chat_guid: String::new(),
        client_message_id: Some(String::new()),
    };
    assert_eq!(req.encode_to_vec(), [0xA2, 0x06, 0x00]);
}

#[test]
fn group_subscribe_heartbeat_is_field_99() {
    assert_eq!(key(99, 2), [0x9A, 0x06]); // key 794
    let frame = pb::SubscribeGroupEventsResponse {
        sequence: None,
        payload: Some(pb::subscribe_group_events_response::Payload::Heartbeat(
            pb::Heartbeat {},
        )),
    };
    assert_eq!(frame.encode_to_vec(), [0x9A, 0x06, 0x00]);

    let frame = pb::SubscribeGroupEventsResponse {
        sequence: Some(0),
        payload: Some(pb::subscribe_group_events_response::Payload::GroupChanged(
            pb::GroupChangeEvent::default(),
        )),
    };
    // sequence 0 explicitly present (key 8), then group_changed at field 10.
    assert_eq!(frame.encode_to_vec(), [0x08, 0x00, 0x52, 0x00]);
}

#[test]
fn catch_up_payload_numbers() {
    use pb::catch_up_events_response::Payload;
    let group = pb::CatchUpEventsResponse {
        sequence: Some(7),
        payload: Some(Payload::GroupChanged(pb::GroupChangeEvent::default())),
    };
    assert_eq!(group.encode_to_vec(), [0x08, 0x07, 0x5A, 0x00]); // field 11

    let complete = pb::CatchUpEventsResponse {
        sequence: None,
        payload: Some(Payload::Complete(pb::CatchUpEventsComplete {
            head_sequence: 3,
        })),
    };
    assert_eq!(key(20, 2), [0xA2, 0x01]);
    assert_eq!(complete.encode_to_vec(), [0xA2, 0x01, 0x02, 0x08, 0x03]);

    let cases: [(Payload, u32); 4] = [
        (Payload::MessageChanged(Default::default()), 10),
        (Payload::PollChanged(Default::default()), 12),
        (Payload::ChatChanged(Default::default()), 13),
        (Payload::Heartbeat(pb::Heartbeat {}), 99),
    ];
    for (payload, field) in cases {
        let frame = pb::CatchUpEventsResponse {
            sequence: None,
            payload: Some(payload),
        };
        let mut expected = key(field, 2);
        expected.push(0);
        assert_eq!(frame.encode_to_vec(), expected, "field {field}");
    }
}

#[test]
fn empty_icon_variant_is_present_in_binary_and_json() {
    let event = pb::GroupChangeEvent {
        chat_guid: "any;+;g1".into(),
        occurred_at: Some(ts(1_700_000_000)),
        actor: None,
        is_from_me: true,
        change: Some(pb::group_change_event::Change::IconChanged(
            pb::GroupIconChanged {},
        )),
    };
    let bytes = event.encode_to_vec();
    assert!(bytes.ends_with(&[0x72, 0x00]), "{bytes:02x?}"); // field 14, len 0
    let back = pb::GroupChangeEvent::decode(bytes.as_slice()).unwrap();
    assert_eq!(back, event);

    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "chatGuid": "any;+;g1",
            "occurredAt": "2023-11-14T22:13:20+00:00",
            "isFromMe": true,
            "iconChanged": {}
        })
    );
    let parsed: pb::GroupChangeEvent = serde_json::from_value(json).unwrap();
    assert_eq!(parsed, event);

    let removed = pb::GroupChangeEvent {
        change: Some(pb::group_change_event::Change::IconRemoved(
            pb::GroupIconRemoved {},
        )),
        ..Default::default()
    };
    assert_eq!(removed.encode_to_vec(), [0x7A, 0x00]); // field 15
    assert_eq!(
        serde_json::to_string(&removed).unwrap(),
        r#"{"iconRemoved":{}}"#
    );
}

#[test]
fn chat_json_uses_enum_names_and_camel_case() {
    let chat = pb::Chat {
        guid: "any;+;g1".into(),
        display_name: Some("Team".into()),
        is_group: true,
        service: pb::ChatServiceType::Imessage as i32,
        unread_count: Some(0),
        participants: vec![pb::SingleServiceAddressInfo {
            address: "+15551234567".into(),
            service: pb::ChatServiceType::Sms as i32,
            country: None,
        }],
        ..Default::default()
    };
    let json = serde_json::to_value(&chat).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "guid": "any;+;g1",
            "displayName": "Team",
            "isGroup": true,
            "service": "CHAT_SERVICE_TYPE_IMESSAGE",
            "unreadCount": 0,
            "participants": [
                {"address": "+15551234567", "service": "CHAT_SERVICE_TYPE_SMS"}
            ]
        })
    );
    let back: pb::Chat = serde_json::from_value(json).unwrap();
    assert_eq!(back, chat);
}

#[test]
fn request_json_accepts_sdk_shapes() {
    // camelCase, base64 bytes, unknown keys ignored.
    let req: pb::SetIconRequest = serde_json::from_str(
        r#"{"chatGuid":"any;+;g1","data":"iVBORw==","clientMessageId":"c1","future":1}"#,
    )
    .unwrap();
    assert_eq!(req.chat_guid, "any;+;g1");
    assert_eq!(req.data, [0x89, b'P', b'N', b'G']);
    assert_eq!(req.client_message_id.as_deref(), Some("c1"));

    // snake_case field names are accepted too; enums by name or number.
    let req: pb::CreateChatRequest = serde_json::from_str(
        r#"{"addresses":["a@b.c"],"service":1,"initial_message":{"text":"hi","effectId":"e"}}"#,
    )
    .unwrap();
    assert_eq!(req.service, pb::ChatServiceType::Imessage as i32);
    assert_eq!(req.initial_message.unwrap().effect_id.as_deref(), Some("e"));

    // int64 may arrive as a JSON number; it is written back as a string.
    let resp: pb::GetChatCountResponse = serde_json::from_str(r#"{"count":5}"#).unwrap();
    assert_eq!(resp.count, 5);
    assert_eq!(serde_json::to_string(&resp).unwrap(), r#"{"count":"5"}"#);
}

#[test]
fn enum_values_match_protocol() {
    use pb::{MessageItemType, MessageReactionKind, TransferState};
    assert_eq!(TransferState::Unavailable as i32, -1);
    assert_eq!(TransferState::Pending as i32, 0);
    assert_eq!(TransferState::Finished as i32, 5);
    assert_eq!(TransferState::Unknown as i32, 6);
    assert_eq!(MessageItemType::ChatAction as i32, 3);
    assert_eq!(MessageReactionKind::Love as i32, 0);
    assert_eq!(MessageReactionKind::Sticker as i32, 7);
    assert_eq!(pb::ChatServiceType::Rcs as i32, 3);
}

#[test]
fn descriptor_set_describes_services() {
    let fds = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
    let services: Vec<String> = fds
        .file
        .iter()
        .filter(|f| f.package() == "photon.imessage.v1")
        .flat_map(|f| f.service.iter().map(|s| s.name().to_owned()))
        .collect();
    for name in ["GroupService", "ChatService", "EventService"] {
        assert!(services.iter().any(|s| s == name), "{name} in {services:?}");
    }
    let group = fds
        .file
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "GroupService")
        .unwrap();
    let methods: Vec<&str> = group.method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
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
