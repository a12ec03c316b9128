//! The frames of the gRPC event streams (`CatchUpEventsResponse`,
//! `Subscribe{Group,Message,Chat,Poll}EventsResponse`) encoded straight from the domain
//! [`Event`]: the bytes prost's `encode` writes for the message the rest of [`super`] builds,
//! without building that message.
//!
//! Why a second spelling of the event mapping: catch-up sends a million events, and building
//! each as a `pb` message (every string copied into it, large `pb::Message` values moved
//! around) for prost to encode (measuring each nested message again at every level it is
//! nested in: frame → event → `MessageReceived` → `Message` → `MessageContent`) cost more
//! than reading the events from the log (BENCHMARKS.md, "M3"). Why here, beside `wire.rs`
//! and not in the streams: it is the same mapping, and it takes the decisions that are more
//! than a copy (`shown_text`, `delivered_at`, `reaction_kind`, …) from `wire.rs`, so that a
//! change to one is seen next to the other; the tests below compare the two byte for byte
//! for every kind of event. Everything else (HTTP, SSE, webhooks, the console) uses `wire.rs`'s
//! messages, and so do the streams' rare error statuses.
//!
//! How: each message's fields are listed once, by a function generic over [`Out`], which
//! runs twice per frame. [`Measure`] only counts, and records each nested message's length in
//! the order the messages begin (a message's length is known once its fields are counted, so
//! lengths are computed once, inside out); [`Write`] then writes, taking each nested message's
//! length prefix from that record. The two runs walk the same fields of the same value, so
//! they cannot disagree.

use bytes::BufMut;
use imgroups_core::{
    Address, AppliedReaction, Change, ChatGuid, Domain, Event, Message, Reaction, TextFormat,
    Timestamp,
};
use prost::encoding::{encoded_len_varint, key_len, WireType};

/// Field numbers of the messages written here, as in `proto/photon/imessage/v1` and
/// `google/protobuf/timestamp.proto`: the only place this module spells them. One module per
/// message, named after it; only the fields this server fills are listed. A number that drifts
/// from the `.proto` fails the byte-equality tests below.
mod field {
    pub(crate) mod catch_up_events_response {
        pub(crate) const SEQUENCE: u32 = 1;
        pub(crate) const MESSAGE_CHANGED: u32 = 10;
        pub(crate) const GROUP_CHANGED: u32 = 11;
        pub(crate) const CHAT_CHANGED: u32 = 13;
        pub(crate) const COMPLETE: u32 = 20;
        pub(crate) const HEARTBEAT: u32 = 99;
    }
    pub(crate) mod catch_up_events_complete {
        pub(crate) const HEAD_SEQUENCE: u32 = 1;
    }
    pub(crate) mod subscribe_group_events_response {
        pub(crate) const SEQUENCE: u32 = 1;
        pub(crate) const GROUP_CHANGED: u32 = 10;
        pub(crate) const HEARTBEAT: u32 = 99;
    }
    pub(crate) mod subscribe_message_events_response {
        pub(crate) const SEQUENCE: u32 = 1;
        pub(crate) const MESSAGE_CHANGED: u32 = 10;
        pub(crate) const HEARTBEAT: u32 = 99;
    }
    pub(crate) mod subscribe_chat_events_response {
        pub(crate) const SEQUENCE: u32 = 1;
        pub(crate) const CHAT_CHANGED: u32 = 10;
        pub(crate) const HEARTBEAT: u32 = 99;
    }
    pub(crate) mod subscribe_poll_events_response {
        pub(crate) const HEARTBEAT: u32 = 99;
    }

    pub(crate) mod group_change_event {
        pub(crate) const CHAT_GUID: u32 = 1;
        pub(crate) const OCCURRED_AT: u32 = 2;
        pub(crate) const ACTOR: u32 = 3;
        pub(crate) const IS_FROM_ME: u32 = 4;
        pub(crate) const DISPLAY_NAME_CHANGED: u32 = 10;
        pub(crate) const PARTICIPANT_ADDED: u32 = 11;
        pub(crate) const PARTICIPANT_REMOVED: u32 = 12;
        pub(crate) const PARTICIPANT_LEFT: u32 = 13;
        pub(crate) const ICON_CHANGED: u32 = 14;
        pub(crate) const ICON_REMOVED: u32 = 15;
    }
    pub(crate) mod group_display_name_changed {
        pub(crate) const DISPLAY_NAME: u32 = 1;
    }
    pub(crate) mod group_participant_added {
        pub(crate) const PARTICIPANT: u32 = 1;
    }
    pub(crate) mod group_participant_removed {
        pub(crate) const PARTICIPANT: u32 = 1;
    }
    pub(crate) mod group_participant_left {
        pub(crate) const PARTICIPANT: u32 = 1;
    }

    pub(crate) mod message_change_event {
        pub(crate) const CHAT_GUID: u32 = 1;
        pub(crate) const OCCURRED_AT: u32 = 2;
        pub(crate) const ACTOR: u32 = 3;
        pub(crate) const IS_FROM_ME: u32 = 4;
        pub(crate) const MESSAGE_RECEIVED: u32 = 10;
        pub(crate) const MESSAGE_EDITED: u32 = 11;
        pub(crate) const MESSAGE_READ: u32 = 12;
        pub(crate) const MESSAGE_UNSENT: u32 = 13;
        pub(crate) const REACTION_ADDED: u32 = 14;
        pub(crate) const REACTION_REMOVED: u32 = 15;
    }
    pub(crate) mod message_received {
        pub(crate) const MESSAGE: u32 = 1;
    }
    pub(crate) mod message_edited {
        pub(crate) const MESSAGE_GUID: u32 = 1;
        pub(crate) const CONTENT: u32 = 2;
        pub(crate) const EDITED_AT: u32 = 3;
    }
    pub(crate) mod message_read {
        pub(crate) const MESSAGE_GUID: u32 = 1;
        pub(crate) const READ_AT: u32 = 2;
    }
    pub(crate) mod message_unsent {
        pub(crate) const MESSAGE_GUID: u32 = 1;
        pub(crate) const RETRACTED_AT: u32 = 2;
    }
    pub(crate) mod message_reaction_added {
        pub(crate) const MESSAGE_GUID: u32 = 1;
        pub(crate) const REACTION: u32 = 3;
    }
    pub(crate) mod message_reaction_removed {
        pub(crate) const MESSAGE_GUID: u32 = 1;
        pub(crate) const REACTION: u32 = 3;
    }

    pub(crate) mod chat_change_event {
        pub(crate) const CHAT_GUID: u32 = 1;
        pub(crate) const OCCURRED_AT: u32 = 2;
        pub(crate) const ACTOR: u32 = 3;
        pub(crate) const IS_FROM_ME: u32 = 4;
        pub(crate) const BACKGROUND_CHANGED: u32 = 10;
        pub(crate) const BACKGROUND_REMOVED: u32 = 11;
        pub(crate) const MARKED_READ: u32 = 12;
    }

    pub(crate) mod message {
        pub(crate) const GUID: u32 = 1;
        pub(crate) const CONTENT: u32 = 2;
        pub(crate) const SUBJECT: u32 = 3;
        pub(crate) const DATE_CREATED: u32 = 10;
        pub(crate) const DATE_READ: u32 = 11;
        pub(crate) const DATE_DELIVERED: u32 = 12;
        pub(crate) const DATE_EDITED: u32 = 13;
        pub(crate) const DATE_RETRACTED: u32 = 14;
        pub(crate) const SENDER: u32 = 20;
        pub(crate) const IS_FROM_ME: u32 = 21;
        pub(crate) const IS_SENT: u32 = 30;
        pub(crate) const IS_DELIVERED: u32 = 31;
        pub(crate) const THREAD_ORIGINATOR_GUID: u32 = 71;
        pub(crate) const REPLY_TO_GUID: u32 = 73;
        pub(crate) const REPLY_TARGET_GUID: u32 = 74;
        pub(crate) const APPLIED_REACTIONS: u32 = 90;
        pub(crate) const CHAT_GUIDS: u32 = 92;
    }
    pub(crate) mod message_content {
        pub(crate) const TEXT: u32 = 1;
        pub(crate) const FORMATTING: u32 = 3;
        pub(crate) const EXPRESSIVE_SEND_STYLE_ID: u32 = 6;
    }
    pub(crate) mod text_format {
        pub(crate) const TYPE: u32 = 1;
        pub(crate) const START: u32 = 2;
        pub(crate) const LENGTH: u32 = 3;
        pub(crate) const EFFECT_NAME: u32 = 4;
    }
    pub(crate) mod message_applied_reaction {
        pub(crate) const MESSAGE_GUID: u32 = 1;
        pub(crate) const REACTION: u32 = 3;
        pub(crate) const SENDER: u32 = 4;
        pub(crate) const IS_FROM_ME: u32 = 5;
        pub(crate) const DATE_CREATED: u32 = 6;
    }
    pub(crate) mod message_reaction {
        pub(crate) const KIND: u32 = 1;
        pub(crate) const EMOJI: u32 = 2;
    }
    pub(crate) mod single_service_address_info {
        pub(crate) const ADDRESS: u32 = 1;
        pub(crate) const SERVICE: u32 = 2;
    }
    pub(crate) mod timestamp {
        pub(crate) const SECONDS: u32 = 1;
        pub(crate) const NANOS: u32 = 2;
    }
}

/// The streams' response messages, for their heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Response {
    CatchUp,
    GroupEvents,
    MessageEvents,
    ChatEvents,
    PollEvents,
}

impl Response {
    fn heartbeat_field(self) -> u32 {
        match self {
            Response::CatchUp => field::catch_up_events_response::HEARTBEAT,
            Response::GroupEvents => field::subscribe_group_events_response::HEARTBEAT,
            Response::MessageEvents => field::subscribe_message_events_response::HEARTBEAT,
            Response::ChatEvents => field::subscribe_chat_events_response::HEARTBEAT,
            Response::PollEvents => field::subscribe_poll_events_response::HEARTBEAT,
        }
    }
}

/// What a frame carries, with the fields of its response message that carry it.
#[derive(Clone, Copy)]
enum Body<'e> {
    Event {
        sequence: u32,
        payload: u32,
        event: &'e Event,
    },
    Complete {
        head: u64,
    },
    Heartbeat {
        field: u32,
    },
}

/// Room for the lengths of a frame's nested messages, kept from one frame to the next so that
/// measuring allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Lengths(Vec<usize>);

/// A frame measured by [`Lengths`], ready to be written.
pub(crate) struct Measured<'l, 'e> {
    body: Body<'e>,
    lengths: &'l [usize],
    len: usize,
}

impl Lengths {
    /// `event` as a `CatchUpEventsResponse`.
    pub(crate) fn catch_up_event<'e>(&mut self, event: &'e Event) -> Measured<'_, 'e> {
        use field::catch_up_events_response as f;
        let payload = match event.change.domain() {
            Domain::Group => f::GROUP_CHANGED,
            Domain::Message => f::MESSAGE_CHANGED,
            Domain::Chat => f::CHAT_CHANGED,
        };
        self.measure(Body::Event {
            sequence: f::SEQUENCE,
            payload,
            event,
        })
    }

    /// `event` as its family's live stream sends it: a `SubscribeGroupEventsResponse`, a
    /// `SubscribeMessageEventsResponse` or a `SubscribeChatEventsResponse`. (Each live stream
    /// passes only its own family's events, so every live subscriber of an event can share
    /// this one encoding.)
    pub(crate) fn live_event<'e>(&mut self, event: &'e Event) -> Measured<'_, 'e> {
        use field::subscribe_chat_events_response as c;
        use field::subscribe_group_events_response as g;
        use field::subscribe_message_events_response as m;
        let (sequence, payload) = match event.change.domain() {
            Domain::Group => (g::SEQUENCE, g::GROUP_CHANGED),
            Domain::Message => (m::SEQUENCE, m::MESSAGE_CHANGED),
            Domain::Chat => (c::SEQUENCE, c::CHAT_CHANGED),
        };
        self.measure(Body::Event {
            sequence,
            payload,
            event,
        })
    }

    /// The last frame of a catch-up.
    pub(crate) fn complete(&mut self, head: u64) -> Measured<'_, 'static> {
        self.measure(Body::Complete { head })
    }

    pub(crate) fn heartbeat(&mut self, response: Response) -> Measured<'_, 'static> {
        self.measure(Body::Heartbeat {
            field: response.heartbeat_field(),
        })
    }

    fn measure<'e>(&mut self, body: Body<'e>) -> Measured<'_, 'e> {
        self.0.clear();
        let mut measure = Measure {
            len: 0,
            lengths: &mut self.0,
        };
        frame(&mut measure, body);
        let len = measure.len;
        Measured {
            body,
            lengths: &self.0,
            len,
        }
    }
}

impl Measured<'_, '_> {
    /// The number of bytes [`Measured::write`] writes.
    pub(crate) fn encoded_len(&self) -> usize {
        self.len
    }

    /// Writes the frame; `buf` should have room for [`Measured::encoded_len`] bytes.
    pub(crate) fn write(&self, buf: &mut impl BufMut) {
        let mut write = Write {
            to: ToBuf(buf),
            lengths: self.lengths.iter(),
        };
        frame(&mut write, self.body);
    }

    /// Writes the frame into `dst`, which must be [`Measured::encoded_len`] bytes long;
    /// answers whether the frame filled it exactly (it does: both walk the same fields).
    ///
    /// What the streams use: a frame's forty-odd puts into a slice of its exact size are a
    /// bounds check and a copy each, where a `BytesMut`'s are a capacity check, a copy and a
    /// length update each, through calls (BENCHMARKS.md, "M3 … frames written into their
    /// measured room").
    pub(crate) fn write_exact(&self, dst: &mut [u8]) -> bool {
        let mut write = Write {
            to: Fill {
                dst,
                overflowed: false,
            },
            lengths: self.lengths.iter(),
        };
        frame(&mut write, self.body);
        !write.to.overflowed && write.to.dst.is_empty()
    }
}

/// Where a message's fields go: counted ([`Measure`]) or written ([`Write`]). Each method
/// writes one field whatever its value; proto3's "a default value is not written" is decided
/// by the helpers below ([`string`], [`int32`], …), as prost decides it.
trait Out {
    /// A varint field: `int32` and enums sign-extended to 64 bits, as prost does.
    fn varint(&mut self, tag: u32, value: u64);
    /// A string field made of `parts`, in order.
    fn string(&mut self, tag: u32, parts: &[&str]);
    /// A message field whose fields `body` writes.
    fn nested(&mut self, tag: u32, body: impl FnOnce(&mut Self));
}

/// Counts the bytes of a frame, recording each nested message's length.
struct Measure<'l> {
    len: usize,
    /// Each nested message's length, in the order the messages begin.
    lengths: &'l mut Vec<usize>,
}

impl Out for Measure<'_> {
    fn varint(&mut self, tag: u32, value: u64) {
        self.len += key_len(tag) + encoded_len_varint(value);
    }

    fn string(&mut self, tag: u32, parts: &[&str]) {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        self.len += key_len(tag) + encoded_len_varint(len as u64) + len;
    }

    fn nested(&mut self, tag: u32, body: impl FnOnce(&mut Self)) {
        let slot = self.lengths.len();
        self.lengths.push(0);
        let start = self.len;
        body(self);
        let len = self.len - start;
        self.lengths[slot] = len;
        self.len += key_len(tag) + encoded_len_varint(len as u64);
    }
}

/// Writes a frame measured by [`Measure`].
struct Write<'a, P> {
    to: P,
    /// What [`Measure`] recorded: its walk met the nested messages in this walk's order.
    lengths: std::slice::Iter<'a, usize>,
}

impl<P: Put> Out for Write<'_, P> {
    #[inline]
    fn varint(&mut self, tag: u32, value: u64) {
        put_key(&mut self.to, tag, WireType::Varint);
        self.to.put_varint(value);
    }

    #[inline]
    fn string(&mut self, tag: u32, parts: &[&str]) {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        put_key(&mut self.to, tag, WireType::LengthDelimited);
        self.to.put_varint(len as u64);
        for part in parts {
            self.to.put(part.as_bytes());
        }
    }

    fn nested(&mut self, tag: u32, body: impl FnOnce(&mut Self)) {
        // There is a length for every nested message: `Measure` walked the same fields of the
        // same value.
        let len = self.lengths.next().copied().unwrap_or_default();
        put_key(&mut self.to, tag, WireType::LengthDelimited);
        self.to.put_varint(len as u64);
        body(self);
    }
}

/// Where [`Write`] puts a frame's bytes: any [`BufMut`] ([`ToBuf`]), or a slice of the
/// frame's measured length ([`Fill`]).
trait Put {
    fn put(&mut self, bytes: &[u8]);

    /// A varint, as prost's `encode_varint` writes it, written inline: nearly every key,
    /// length and flag of a frame is below 128, and a call into prost's loop for each was 7 %
    /// of a catch-up's instructions (BENCHMARKS.md, "M3"); the rest (nested messages' lengths,
    /// sequences, timestamps) were another 3.5 %, a `put_u8` with its capacity check per
    /// byte. Here the bytes are made on the stack and put in one go.
    #[inline(always)]
    fn put_varint(&mut self, value: u64) {
        if value < 0x80 {
            self.put(&[value as u8]);
        } else if value < 0x4000 {
            self.put(&[value as u8 | 0x80, (value >> 7) as u8]);
        } else {
            put_long_varint(self, value);
        }
    }
}

struct ToBuf<'a, B>(&'a mut B);

impl<B: BufMut> Put for ToBuf<'_, B> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.0.put_slice(bytes);
    }
}

/// The part of a frame's room not written yet. Never panics: a put that does not fit (which
/// [`Measure`] rules out) is dropped and remembered.
struct Fill<'a> {
    dst: &'a mut [u8],
    overflowed: bool,
}

impl Put for Fill<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        if bytes.len() <= self.dst.len() {
            let (head, rest) = std::mem::take(&mut self.dst).split_at_mut(bytes.len());
            head.copy_from_slice(bytes);
            self.dst = rest;
        } else {
            self.overflowed = true;
        }
    }
}

/// A field's key, as prost's `encode_key` writes it.
#[inline(always)]
fn put_key(to: &mut impl Put, tag: u32, wire_type: WireType) {
    to.put_varint(u64::from(tag << 3 | wire_type as u32));
}

/// A varint into `buf`, as prost's `encode_varint` writes it (see [`Put::put_varint`]).
#[cfg(test)]
fn put_varint(buf: &mut impl BufMut, value: u64) {
    ToBuf(buf).put_varint(value);
}

/// [`Put::put_varint`] of a value of three bytes or more (at most ten). The common lengths
/// (sequences are three bytes, seconds and nanoseconds of a timestamp four or five) are
/// written straight, without the loop and its bounds checks: a copy of a length known here is
/// a few moves, one of a length known only at run time a call to `memcpy`.
fn put_long_varint(to: &mut (impl Put + ?Sized), value: u64) {
    // Seven bits a byte: ceil(significant bits / 7).
    let len = (70 - value.leading_zeros() as usize) / 7;
    let byte = |shift: u32| (value >> shift) as u8 | 0x80;
    match len {
        3 => to.put(&[byte(0), byte(7), (value >> 14) as u8]),
        4 => to.put(&[byte(0), byte(7), byte(14), (value >> 21) as u8]),
        5 => to.put(&[byte(0), byte(7), byte(14), byte(21), (value >> 28) as u8]),
        _ => {
            let mut bytes = [0u8; 10];
            let mut rest = value;
            let mut len = 0;
            while rest >= 0x80 {
                bytes[len] = rest as u8 | 0x80;
                rest >>= 7;
                len += 1;
            }
            bytes[len] = rest as u8;
            to.put(&bytes[..=len]);
        }
    }
}

// Scalar fields, proto3's way: a non-`optional` field at its default value is not written.

fn string(out: &mut impl Out, tag: u32, value: &str) {
    if !value.is_empty() {
        out.string(tag, &[value]);
    }
}

fn optional_string(out: &mut impl Out, tag: u32, value: Option<&str>) {
    if let Some(value) = value {
        out.string(tag, &[value]);
    }
}

fn boolean(out: &mut impl Out, tag: u32, value: bool) {
    if value {
        out.varint(tag, 1);
    }
}

fn int32(out: &mut impl Out, tag: u32, value: i32) {
    if value != 0 {
        out.varint(tag, i64::from(value) as u64);
    }
}

fn int64(out: &mut impl Out, tag: u32, value: i64) {
    if value != 0 {
        out.varint(tag, value as u64);
    }
}

fn uint64(out: &mut impl Out, tag: u32, value: u64) {
    if value != 0 {
        out.varint(tag, value);
    }
}

/// A `google.protobuf.Timestamp` field.
fn timestamp(out: &mut impl Out, tag: u32, t: Timestamp) {
    use field::timestamp as f;
    out.nested(tag, |out| {
        int64(out, f::SECONDS, t.seconds());
        int32(out, f::NANOS, t.subsec_nanos());
    });
}

fn optional_timestamp(out: &mut impl Out, tag: u32, t: Option<Timestamp>) {
    if let Some(t) = t {
        timestamp(out, tag, t);
    }
}

/// A chat GUID's wire form (never empty: it has a prefix), written without being built.
fn chat_guid(out: &mut impl Out, tag: u32, guid: &ChatGuid) {
    out.string(tag, &[guid.prefix(), guid.id()]);
}

/// A `SingleServiceAddressInfo` field.
fn address(out: &mut impl Out, tag: u32, a: &Address) {
    use field::single_service_address_info as f;
    out.nested(tag, |out| {
        string(out, f::ADDRESS, a.as_str());
        int32(out, f::SERVICE, super::SERVICE as i32);
    });
}

/// A `MessageReaction` field.
fn reaction(out: &mut impl Out, tag: u32, r: &Reaction) {
    use field::message_reaction as f;
    let (kind, emoji) = super::reaction_kind(r);
    out.nested(tag, |out| {
        int32(out, f::KIND, kind as i32);
        optional_string(out, f::EMOJI, emoji);
    });
}

/// A `TextFormat` field.
fn text_format(out: &mut impl Out, tag: u32, format: &TextFormat) {
    use field::text_format as f;
    out.nested(tag, |out| {
        string(out, f::TYPE, &format.style);
        int32(out, f::START, super::wire_int(format.start));
        int32(out, f::LENGTH, super::wire_int(format.length));
        optional_string(out, f::EFFECT_NAME, format.effect_name.as_deref());
    });
}

/// A `MessageAppliedReaction` field: a tapback on the message `guid`.
fn applied_reaction(out: &mut impl Out, tag: u32, guid: &str, r: &AppliedReaction) {
    use field::message_applied_reaction as f;
    out.nested(tag, |out| {
        string(out, f::MESSAGE_GUID, guid);
        reaction(out, f::REACTION, &r.reaction);
        if let Some(sender) = super::reaction_sender(r) {
            address(out, f::SENDER, sender);
        }
        boolean(out, f::IS_FROM_ME, r.is_from_me);
        timestamp(out, f::DATE_CREATED, r.date_created);
    });
}

/// The fields of a `pb::Message`, as `super::message` fills them.
fn message(out: &mut impl Out, m: &Message) {
    use field::message as f;
    string(out, f::GUID, &m.guid);
    out.nested(f::CONTENT, |out| {
        use field::message_content as c;
        optional_string(out, c::TEXT, super::shown_text(m));
        for format in &m.formatting {
            text_format(out, c::FORMATTING, format);
        }
        optional_string(out, c::EXPRESSIVE_SEND_STYLE_ID, m.effect_id.as_deref());
    });
    optional_string(out, f::SUBJECT, m.subject.as_deref());
    timestamp(out, f::DATE_CREATED, m.date_created);
    optional_timestamp(out, f::DATE_READ, m.date_read);
    optional_timestamp(out, f::DATE_DELIVERED, super::delivered_at(m));
    optional_timestamp(out, f::DATE_EDITED, m.date_edited);
    optional_timestamp(out, f::DATE_RETRACTED, m.date_retracted);
    if let Some(sender) = &m.sender {
        address(out, f::SENDER, sender);
    }
    boolean(out, f::IS_FROM_ME, m.is_from_me);
    boolean(out, f::IS_SENT, m.is_sent);
    boolean(out, f::IS_DELIVERED, super::IS_DELIVERED);
    let reply_to = m.reply_to.as_deref();
    optional_string(out, f::THREAD_ORIGINATOR_GUID, reply_to);
    optional_string(out, f::REPLY_TO_GUID, reply_to);
    optional_string(out, f::REPLY_TARGET_GUID, reply_to);
    for r in &m.reactions {
        applied_reaction(out, f::APPLIED_REACTIONS, &m.guid, r);
    }
    if let Some(guid) = &m.chat_guid {
        chat_guid(out, f::CHAT_GUIDS, guid);
    }
}

/// The fields every family's event message starts with, numbered alike in all three today
/// but each spelled from its own message.
struct EventHead {
    chat_guid: u32,
    occurred_at: u32,
    actor: u32,
    is_from_me: u32,
}

const GROUP_EVENT: EventHead = {
    use field::group_change_event as f;
    EventHead {
        chat_guid: f::CHAT_GUID,
        occurred_at: f::OCCURRED_AT,
        actor: f::ACTOR,
        is_from_me: f::IS_FROM_ME,
    }
};

const MESSAGE_EVENT: EventHead = {
    use field::message_change_event as f;
    EventHead {
        chat_guid: f::CHAT_GUID,
        occurred_at: f::OCCURRED_AT,
        actor: f::ACTOR,
        is_from_me: f::IS_FROM_ME,
    }
};

const CHAT_EVENT: EventHead = {
    use field::chat_change_event as f;
    EventHead {
        chat_guid: f::CHAT_GUID,
        occurred_at: f::OCCURRED_AT,
        actor: f::ACTOR,
        is_from_me: f::IS_FROM_ME,
    }
};

/// The fields of an event's family message (`GroupChangeEvent`, `MessageChangeEvent` or
/// `ChatChangeEvent`), as `super::payload_owned` fills them.
fn event(out: &mut impl Out, e: &Event) {
    use field::chat_change_event as c;
    use field::group_change_event as g;
    use field::message_change_event as m;
    match &e.change {
        Change::DisplayNameChanged { display_name } => {
            change_event(out, &GROUP_EVENT, e, g::DISPLAY_NAME_CHANGED, |out| {
                use field::group_display_name_changed as f;
                string(out, f::DISPLAY_NAME, display_name);
            });
        }
        Change::ParticipantAdded { participant } => {
            change_event(out, &GROUP_EVENT, e, g::PARTICIPANT_ADDED, |out| {
                address(
                    out,
                    field::group_participant_added::PARTICIPANT,
                    participant,
                );
            });
        }
        Change::ParticipantRemoved { participant } => {
            change_event(out, &GROUP_EVENT, e, g::PARTICIPANT_REMOVED, |out| {
                address(
                    out,
                    field::group_participant_removed::PARTICIPANT,
                    participant,
                );
            });
        }
        Change::ParticipantLeft { participant } => {
            change_event(out, &GROUP_EVENT, e, g::PARTICIPANT_LEFT, |out| {
                address(out, field::group_participant_left::PARTICIPANT, participant);
            });
        }
        Change::IconChanged => change_event(out, &GROUP_EVENT, e, g::ICON_CHANGED, |_| {}),
        Change::IconRemoved => change_event(out, &GROUP_EVENT, e, g::ICON_REMOVED, |_| {}),
        Change::MessageReceived { message: received } => {
            change_event(out, &MESSAGE_EVENT, e, m::MESSAGE_RECEIVED, |out| {
                out.nested(field::message_received::MESSAGE, |out| {
                    message(out, received);
                });
            });
        }
        Change::MessageEdited {
            message_guid,
            text,
            formatting,
            edited_at,
        } => change_event(out, &MESSAGE_EVENT, e, m::MESSAGE_EDITED, |out| {
            use field::message_edited as f;
            string(out, f::MESSAGE_GUID, message_guid);
            out.nested(f::CONTENT, |out| {
                use field::message_content as c;
                optional_string(out, c::TEXT, Some(text));
                for format in formatting {
                    text_format(out, c::FORMATTING, format);
                }
            });
            timestamp(out, f::EDITED_AT, *edited_at);
        }),
        Change::MessageUnsent {
            message_guid,
            retracted_at,
        } => change_event(out, &MESSAGE_EVENT, e, m::MESSAGE_UNSENT, |out| {
            use field::message_unsent as f;
            string(out, f::MESSAGE_GUID, message_guid);
            timestamp(out, f::RETRACTED_AT, *retracted_at);
        }),
        Change::ReactionAdded {
            message_guid,
            reaction: r,
        } => change_event(out, &MESSAGE_EVENT, e, m::REACTION_ADDED, |out| {
            use field::message_reaction_added as f;
            string(out, f::MESSAGE_GUID, message_guid);
            reaction(out, f::REACTION, r);
        }),
        Change::ReactionRemoved {
            message_guid,
            reaction: r,
        } => change_event(out, &MESSAGE_EVENT, e, m::REACTION_REMOVED, |out| {
            use field::message_reaction_removed as f;
            string(out, f::MESSAGE_GUID, message_guid);
            reaction(out, f::REACTION, r);
        }),
        Change::MessageRead {
            message_guid,
            read_at,
        } => change_event(out, &MESSAGE_EVENT, e, m::MESSAGE_READ, |out| {
            use field::message_read as f;
            string(out, f::MESSAGE_GUID, message_guid);
            timestamp(out, f::READ_AT, *read_at);
        }),
        Change::ChatMarkedRead => change_event(out, &CHAT_EVENT, e, c::MARKED_READ, |_| {}),
        Change::BackgroundChanged => {
            change_event(out, &CHAT_EVENT, e, c::BACKGROUND_CHANGED, |_| {})
        }
        Change::BackgroundRemoved => {
            change_event(out, &CHAT_EVENT, e, c::BACKGROUND_REMOVED, |_| {})
        }
    }
}

/// An event message: the fields every family shares, then its change (field `change`), whose
/// fields `body` writes.
fn change_event<O: Out>(
    out: &mut O,
    head: &EventHead,
    e: &Event,
    change: u32,
    body: impl FnOnce(&mut O),
) {
    chat_guid(out, head.chat_guid, &e.chat_guid);
    timestamp(out, head.occurred_at, e.occurred_at);
    if let Some(actor) = &e.actor {
        address(out, head.actor, actor);
    }
    boolean(out, head.is_from_me, e.is_from_me);
    out.nested(change, body);
}

/// A whole frame: the top-level message, which has no length prefix of its own (gRPC's
/// framing carries its length).
fn frame(out: &mut impl Out, body: Body<'_>) {
    match body {
        Body::Event {
            sequence,
            payload,
            event: e,
        } => {
            // `optional uint64`: written even when 0.
            out.varint(sequence, e.sequence);
            out.nested(payload, |out| event(out, e));
        }
        Body::Complete { head } => {
            out.nested(field::catch_up_events_response::COMPLETE, |out| {
                uint64(out, field::catch_up_events_complete::HEAD_SEQUENCE, head);
            });
        }
        Body::Heartbeat { field } => out.nested(field, |_| {}),
    }
}

#[cfg(test)]
mod tests {
    //! Every frame against the reference: prost's encoding of the message `wire.rs` builds for
    //! the same event, byte for byte.

    use std::collections::HashSet;

    use imgroups_core::{
        Address, AppliedReaction, Change, ChatGuid, Event, Message, Reaction, TextFormat, Timestamp,
    };
    use imgroups_proto::pb;
    use proptest::prelude::*;
    use prost::Message as _;

    use super::{Lengths, Measured, Response};
    use crate::wire;

    /// The bytes of a measured frame, checked against its measure.
    fn written(frame: &Measured<'_, '_>) -> Vec<u8> {
        let mut out = Vec::new();
        frame.write(&mut out);
        assert_eq!(
            out.len(),
            frame.encoded_len(),
            "measured and written lengths"
        );
        out
    }

    /// The edges of each length of varint.
    #[test]
    fn varints_at_every_edge_are_written_as_prost_writes_them() {
        let edges = (0..64).flat_map(|bit| {
            let power = 1u64 << bit;
            [power - 1, power, power + 1]
        });
        for value in edges.chain([u64::MAX]) {
            let mut ours = Vec::new();
            super::put_varint(&mut ours, value);
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(value, &mut theirs);
            assert_eq!(ours, theirs, "{value}");
        }
    }

    fn catch_up_reference(e: &Event) -> Vec<u8> {
        use pb::catch_up_events_response::Payload;
        pb::CatchUpEventsResponse {
            sequence: Some(e.sequence),
            payload: Some(match wire::payload_owned(e.clone()) {
                wire::Payload::Group(g) => Payload::GroupChanged(g),
                wire::Payload::Message(m) => Payload::MessageChanged(*m),
                wire::Payload::Chat(c) => Payload::ChatChanged(c),
            }),
        }
        .encode_to_vec()
    }

    fn live_reference(e: &Event) -> Vec<u8> {
        match wire::payload_owned(e.clone()) {
            wire::Payload::Group(g) => pb::SubscribeGroupEventsResponse {
                sequence: Some(e.sequence),
                payload: Some(pb::subscribe_group_events_response::Payload::GroupChanged(
                    g,
                )),
            }
            .encode_to_vec(),
            wire::Payload::Message(m) => pb::SubscribeMessageEventsResponse {
                sequence: Some(e.sequence),
                payload: Some(pb::subscribe_message_events_response::Payload::MessageChanged(*m)),
            }
            .encode_to_vec(),
            wire::Payload::Chat(c) => pb::SubscribeChatEventsResponse {
                sequence: Some(e.sequence),
                payload: Some(pb::subscribe_chat_events_response::Payload::ChatChanged(c)),
            }
            .encode_to_vec(),
        }
    }

    fn assert_same_bytes(e: &Event) {
        assert_same_bytes_written_by(e, written);
    }

    /// Both frames of `e`, written by `write`, against prost's encoding of the same responses.
    fn assert_same_bytes_written_by(e: &Event, write: fn(&Measured<'_, '_>) -> Vec<u8>) {
        let mut lengths = Lengths::default();
        assert_eq!(
            write(&lengths.catch_up_event(e)),
            catch_up_reference(e),
            "catch-up frame of {e:?}"
        );
        assert_eq!(
            write(&lengths.live_event(e)),
            live_reference(e),
            "live frame of {e:?}"
        );
    }

    /// The bytes of a measured frame as the streams write them: into room of its measured
    /// length ([`Measured::write_exact`]).
    fn written_exact(frame: &Measured<'_, '_>) -> Vec<u8> {
        let mut out = vec![0xa5; frame.encoded_len()];
        assert!(frame.write_exact(&mut out), "the frame fills its room");
        out
    }

    fn assert_same_bytes_in_room(e: &Event) {
        assert_same_bytes_written_by(e, written_exact);
    }

    /// The events of [`every_change_is_encoded_as_prost_encodes_wire_rs_message`].
    fn every_event() -> Vec<Event> {
        [true, false]
            .into_iter()
            .flat_map(|full| {
                every_change(full).into_iter().map(move |change| Event {
                    sequence: if full { u64::MAX } else { 0 },
                    chat_guid: if full {
                        ChatGuid::direct(&address("émile@example.com"))
                    } else {
                        ChatGuid::group("")
                    },
                    occurred_at: Timestamp(if full { 1_765_000_000_000_000_001 } else { 0 }),
                    is_from_me: full,
                    actor: full.then(|| address("+15551234567")),
                    change,
                })
            })
            .collect()
    }

    /// Every kind of event, written into its measured room, is prost's encoding byte for byte.
    #[test]
    fn every_change_written_into_its_room_is_prost_s_encoding() {
        for event in every_event() {
            assert_same_bytes_in_room(&event);
        }
    }

    /// Room of the wrong size is refused, not overrun.
    #[test]
    fn a_frame_does_not_fill_room_of_another_size() {
        let event = &every_event()[0];
        let mut lengths = Lengths::default();
        let frame = lengths.catch_up_event(event);
        for len in [0, frame.encoded_len() - 1, frame.encoded_len() + 1] {
            assert!(!frame.write_exact(&mut vec![0; len]), "room of {len} bytes");
        }
    }

    /// Which variant a change is: a new variant does not compile here until someone gives it
    /// fixtures in [`every_change`] and counts it in [`VARIANTS`].
    fn variant(change: &Change) -> usize {
        match change {
            Change::DisplayNameChanged { .. } => 0,
            Change::ParticipantAdded { .. } => 1,
            Change::ParticipantRemoved { .. } => 2,
            Change::ParticipantLeft { .. } => 3,
            Change::IconChanged => 4,
            Change::IconRemoved => 5,
            Change::MessageReceived { .. } => 6,
            Change::MessageEdited { .. } => 7,
            Change::MessageUnsent { .. } => 8,
            Change::ReactionAdded { .. } => 9,
            Change::ReactionRemoved { .. } => 10,
            Change::MessageRead { .. } => 11,
            Change::ChatMarkedRead => 12,
            Change::BackgroundChanged => 13,
            Change::BackgroundRemoved => 14,
        }
    }

    const VARIANTS: usize = 15;

    fn address(a: &str) -> Address {
        Address::from_trusted(a.to_owned())
    }

    /// A message with every optional field present (`full`) or none.
    fn message(full: bool, text: &str) -> Message {
        let mut m = Message::default();
        if full {
            m = Message {
                guid: "8C1D6C47-2E63-4F4B-9D0C-6C3F0E1A2B3C".into(),
                text: text.into(),
                subject: Some("Sujet — ünïcödé".into()),
                date_created: Timestamp(1_765_000_000_123_456_789),
                is_from_me: true,
                is_sent: true,
                chat_guid: Some(ChatGuid::group("chat123456789012345678")),
                sender: Some(address("+15551234567")),
                effect_id: Some("com.apple.MobileSMS.expressivesend.impact".into()),
                reply_to: Some("0F0E0D0C-0B0A-0908-0706-050403020100".into()),
                formatting: vec![
                    TextFormat {
                        style: "bold".into(),
                        start: 0,
                        length: 4,
                        effect_name: None,
                    },
                    TextFormat {
                        style: "effect".into(),
                        start: u32::MAX,
                        length: 3_000_000_000,
                        effect_name: Some("jitter".into()),
                    },
                ],
                date_read: Some(Timestamp(-1)),
                date_edited: Some(Timestamp(1_765_000_100_000_000_000)),
                edits: 2,
                date_retracted: None,
                reactions: vec![
                    AppliedReaction {
                        reaction: Reaction::Love,
                        sender: address("bob@example.com"),
                        is_from_me: false,
                        date_created: Timestamp(1),
                    },
                    AppliedReaction {
                        reaction: Reaction::Emoji("🫠".into()),
                        sender: address("+15550000000"),
                        is_from_me: true,
                        date_created: Timestamp(2_000_000_000),
                    },
                    AppliedReaction {
                        reaction: Reaction::Question,
                        sender: address("carol@example.com"),
                        is_from_me: false,
                        date_created: Timestamp(3),
                    },
                ],
            };
        }
        m
    }

    /// Every kind of change, with every optional field present (`full`) or absent.
    fn every_change(full: bool) -> Vec<Change> {
        let guid = if full { "A-GUID" } else { "" };
        let text = if full { "héllo 👋🏽 wörld" } else { "" };
        let participant = address(if full { "dave@example.com" } else { "" });
        let formatting = if full {
            message(true, "").formatting
        } else {
            Vec::new()
        };
        let mut unsent = message(full, text);
        unsent.date_retracted = Some(Timestamp(1_765_000_200_000_000_000));
        vec![
            Change::DisplayNameChanged {
                display_name: text.into(),
            },
            Change::ParticipantAdded {
                participant: participant.clone(),
            },
            Change::ParticipantRemoved {
                participant: participant.clone(),
            },
            Change::ParticipantLeft { participant },
            Change::IconChanged,
            Change::IconRemoved,
            Change::MessageReceived {
                message: Box::new(message(full, text)),
            },
            // Unsent: it keeps its place, not its words.
            Change::MessageReceived {
                message: Box::new(unsent),
            },
            // A long text: lengths of several bytes at every level.
            Change::MessageReceived {
                message: Box::new(message(full, &"long text ✓ ".repeat(2_000))),
            },
            Change::MessageEdited {
                message_guid: guid.into(),
                text: text.into(),
                formatting,
                edited_at: Timestamp(i64::MIN),
            },
            Change::MessageUnsent {
                message_guid: guid.into(),
                retracted_at: Timestamp(0),
            },
            Change::ReactionAdded {
                message_guid: guid.into(),
                reaction: Reaction::Emoji(text.into()),
            },
            Change::ReactionAdded {
                message_guid: guid.into(),
                reaction: Reaction::Love,
            },
            Change::ReactionRemoved {
                message_guid: guid.into(),
                reaction: Reaction::Laugh,
            },
            Change::MessageRead {
                message_guid: guid.into(),
                read_at: Timestamp(i64::MAX),
            },
            Change::ChatMarkedRead,
            Change::BackgroundChanged,
            Change::BackgroundRemoved,
        ]
    }

    #[test]
    fn the_fixtures_cover_every_change() {
        for full in [true, false] {
            let seen: HashSet<usize> = every_change(full).iter().map(variant).collect();
            assert_eq!(seen.len(), VARIANTS);
        }
    }

    #[test]
    fn every_change_is_encoded_as_prost_encodes_wire_rs_message() {
        for full in [true, false] {
            for change in every_change(full) {
                let event = Event {
                    sequence: if full { u64::MAX } else { 0 },
                    chat_guid: if full {
                        ChatGuid::direct(&address("émile@example.com"))
                    } else {
                        ChatGuid::group("")
                    },
                    occurred_at: Timestamp(if full { 1_765_000_000_000_000_001 } else { 0 }),
                    is_from_me: full,
                    actor: full.then(|| address("+15551234567")),
                    change,
                };
                assert_same_bytes(&event);
            }
        }
    }

    #[test]
    fn heartbeats_and_the_last_catch_up_frame_are_encoded_as_prost_encodes_them() {
        let mut lengths = Lengths::default();
        let heartbeat = Some(pb::Heartbeat {});
        let cases = [
            (
                Response::CatchUp,
                pb::CatchUpEventsResponse {
                    sequence: None,
                    payload: heartbeat.map(pb::catch_up_events_response::Payload::Heartbeat),
                }
                .encode_to_vec(),
            ),
            (
                Response::GroupEvents,
                pb::SubscribeGroupEventsResponse {
                    sequence: None,
                    payload: heartbeat.map(pb::subscribe_group_events_response::Payload::Heartbeat),
                }
                .encode_to_vec(),
            ),
            (
                Response::MessageEvents,
                pb::SubscribeMessageEventsResponse {
                    sequence: None,
                    payload: heartbeat
                        .map(pb::subscribe_message_events_response::Payload::Heartbeat),
                }
                .encode_to_vec(),
            ),
            (
                Response::ChatEvents,
                pb::SubscribeChatEventsResponse {
                    sequence: None,
                    payload: heartbeat.map(pb::subscribe_chat_events_response::Payload::Heartbeat),
                }
                .encode_to_vec(),
            ),
            (
                Response::PollEvents,
                pb::SubscribePollEventsResponse {
                    sequence: None,
                    payload: heartbeat.map(pb::subscribe_poll_events_response::Payload::Heartbeat),
                }
                .encode_to_vec(),
            ),
        ];
        for (response, reference) in cases {
            assert_eq!(
                written(&lengths.heartbeat(response)),
                reference,
                "{response:?}"
            );
        }
        for head in [0, 1, 127, 128, u64::MAX] {
            let reference = pb::CatchUpEventsResponse {
                sequence: None,
                payload: Some(pb::catch_up_events_response::Payload::Complete(
                    pb::CatchUpEventsComplete {
                        head_sequence: head,
                    },
                )),
            }
            .encode_to_vec();
            assert_eq!(written(&lengths.complete(head)), reference, "head {head}");
        }
    }

    // Random events: any text (unicode, long), any numbers, optional fields at random.

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<String>(),
            1 => "\\PC{100,3000}",
        ]
    }

    fn timestamp() -> impl Strategy<Value = Timestamp> {
        prop_oneof![any::<i64>(), 0..2_000_000_000_000_000_000i64].prop_map(Timestamp)
    }

    fn an_address() -> impl Strategy<Value = Address> {
        any::<String>().prop_map(Address::from_trusted)
    }

    fn chat_guid() -> impl Strategy<Value = ChatGuid> {
        prop_oneof![
            any::<String>().prop_map(|id| ChatGuid::group(&id)),
            an_address().prop_map(|a| ChatGuid::direct(&a)),
        ]
    }

    fn reaction() -> impl Strategy<Value = Reaction> {
        prop_oneof![
            Just(Reaction::Love),
            Just(Reaction::Like),
            Just(Reaction::Dislike),
            Just(Reaction::Laugh),
            Just(Reaction::Emphasize),
            Just(Reaction::Question),
            any::<String>().prop_map(Reaction::Emoji),
        ]
    }

    fn formatting() -> impl Strategy<Value = Vec<TextFormat>> {
        prop::collection::vec(
            (
                any::<String>(),
                any::<u32>(),
                any::<u32>(),
                proptest::option::of(any::<String>()),
            )
                .prop_map(|(style, start, length, effect_name)| TextFormat {
                    style,
                    start,
                    length,
                    effect_name,
                }),
            0..4,
        )
    }

    fn a_message() -> impl Strategy<Value = Message> {
        let reactions = prop::collection::vec(
            (reaction(), an_address(), any::<bool>(), timestamp()).prop_map(
                |(reaction, sender, is_from_me, date_created)| AppliedReaction {
                    reaction,
                    sender,
                    is_from_me,
                    date_created,
                },
            ),
            0..4,
        );
        let optional_time = || proptest::option::of(timestamp());
        let optional_text = || proptest::option::of(any::<String>());
        (
            (any::<String>(), text(), optional_text(), timestamp()),
            (
                any::<bool>(),
                any::<bool>(),
                proptest::option::of(chat_guid()),
            ),
            (
                proptest::option::of(an_address()),
                optional_text(),
                optional_text(),
                formatting(),
            ),
            (
                optional_time(),
                optional_time(),
                any::<u32>(),
                optional_time(),
            ),
            reactions,
        )
            .prop_map(
                |(
                    (guid, text, subject, date_created),
                    (is_from_me, is_sent, chat_guid),
                    (sender, effect_id, reply_to, formatting),
                    (date_read, date_edited, edits, date_retracted),
                    reactions,
                )| Message {
                    guid,
                    text,
                    subject,
                    date_created,
                    is_from_me,
                    is_sent,
                    chat_guid,
                    sender,
                    effect_id,
                    reply_to,
                    formatting,
                    date_read,
                    date_edited,
                    edits,
                    date_retracted,
                    reactions,
                },
            )
    }

    fn a_change() -> impl Strategy<Value = Change> {
        prop_oneof![
            text().prop_map(|display_name| Change::DisplayNameChanged { display_name }),
            an_address().prop_map(|participant| Change::ParticipantAdded { participant }),
            an_address().prop_map(|participant| Change::ParticipantRemoved { participant }),
            an_address().prop_map(|participant| Change::ParticipantLeft { participant }),
            Just(Change::IconChanged),
            Just(Change::IconRemoved),
            a_message().prop_map(|m| Change::MessageReceived {
                message: Box::new(m)
            }),
            (any::<String>(), text(), formatting(), timestamp()).prop_map(
                |(message_guid, text, formatting, edited_at)| Change::MessageEdited {
                    message_guid,
                    text,
                    formatting,
                    edited_at,
                }
            ),
            (any::<String>(), timestamp()).prop_map(|(message_guid, retracted_at)| {
                Change::MessageUnsent {
                    message_guid,
                    retracted_at,
                }
            }),
            (any::<String>(), reaction()).prop_map(|(message_guid, reaction)| {
                Change::ReactionAdded {
                    message_guid,
                    reaction,
                }
            }),
            (any::<String>(), reaction()).prop_map(|(message_guid, reaction)| {
                Change::ReactionRemoved {
                    message_guid,
                    reaction,
                }
            }),
            (any::<String>(), timestamp()).prop_map(|(message_guid, read_at)| {
                Change::MessageRead {
                    message_guid,
                    read_at,
                }
            }),
            Just(Change::ChatMarkedRead),
            Just(Change::BackgroundChanged),
            Just(Change::BackgroundRemoved),
        ]
    }

    fn an_event() -> impl Strategy<Value = Event> {
        (
            any::<u64>(),
            chat_guid(),
            timestamp(),
            any::<bool>(),
            proptest::option::of(an_address()),
            a_change(),
        )
            .prop_map(
                |(sequence, chat_guid, occurred_at, is_from_me, actor, change)| Event {
                    sequence,
                    chat_guid,
                    occurred_at,
                    is_from_me,
                    actor,
                    change,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_event_is_encoded_as_prost_encodes_wire_rs_message(event in an_event()) {
            assert_same_bytes(&event);
        }

        #[test]
        fn any_event_written_into_its_room_is_prost_s_encoding(event in an_event()) {
            assert_same_bytes_in_room(&event);
        }

        /// Every varint as prost writes it, whichever of the three ways it is written.
        #[test]
        fn varints_are_written_as_prost_writes_them(shift in 0u32..64, low in any::<u64>()) {
            let value = low >> shift;
            let mut ours = Vec::new();
            super::put_varint(&mut ours, value);
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(value, &mut theirs);
            prop_assert_eq!(ours, theirs);
        }

        /// One `Lengths` for many frames, as a stream uses it: nothing left over from one
        /// frame changes the next.
        #[test]
        fn frames_in_a_row_are_encoded_alike(events in prop::collection::vec(an_event(), 1..8)) {
            let mut lengths = Lengths::default();
            for event in &events {
                prop_assert_eq!(written(&lengths.catch_up_event(event)), catch_up_reference(event));
            }
        }
    }
}
