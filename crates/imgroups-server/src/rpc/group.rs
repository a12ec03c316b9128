//! GroupService (docs/protocol.md §1.1): group administration. `SubscribeGroupEvents` is a
//! stream (`crate::grpc::streams`).

use imgroups_core::{Command, Outcome, Result};
use imgroups_proto::pb;
use imgroups_proto::pbjson_types::Empty;

use super::{chat_of, Rpc, Write};
use crate::app::{App, Caller};

/// Renames a group; answers with the chat.
pub(crate) struct SetDisplayName;

impl Write for SetDisplayName {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/SetDisplayName";
    type Req = pb::SetDisplayNameRequest;
    type Resp = pb::SetDisplayNameResponse;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let command = Command::set_display_name(&req.chat_guid, &req.display_name)?;
        Ok((command, req.client_message_id))
    }

    fn respond(outcome: Outcome) -> Result<Self::Resp> {
        Ok(pb::SetDisplayNameResponse {
            chat: Some(chat_of(outcome)?),
        })
    }
}

/// Adds members; answers with the chat.
pub(crate) struct AddParticipants;

impl Write for AddParticipants {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/AddParticipants";
    type Req = pb::AddParticipantsRequest;
    type Resp = pb::AddParticipantsResponse;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let command = Command::add_participants(&req.chat_guid, &req.addresses)?;
        Ok((command, req.client_message_id))
    }

    fn respond(outcome: Outcome) -> Result<Self::Resp> {
        Ok(pb::AddParticipantsResponse {
            chat: Some(chat_of(outcome)?),
        })
    }
}

/// Removes members; answers with the chat.
pub(crate) struct RemoveParticipants;

impl Write for RemoveParticipants {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/RemoveParticipants";
    type Req = pb::RemoveParticipantsRequest;
    type Resp = pb::RemoveParticipantsResponse;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let command = Command::remove_participants(&req.chat_guid, &req.addresses)?;
        Ok((command, req.client_message_id))
    }

    fn respond(outcome: Outcome) -> Result<Self::Resp> {
        Ok(pb::RemoveParticipantsResponse {
            chat: Some(chat_of(outcome)?),
        })
    }
}

/// The caller leaves the group.
pub(crate) struct LeaveGroup;

impl Write for LeaveGroup {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/LeaveGroup";
    type Req = pb::LeaveGroupRequest;
    type Resp = Empty;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        Ok((Command::leave(&req.chat_guid)?, req.client_message_id))
    }

    fn respond(_: Outcome) -> Result<Empty> {
        Ok(Empty {})
    }
}

/// Sets the group's icon (the one request as large as an icon).
pub(crate) struct SetIcon;

impl Write for SetIcon {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/SetIcon";
    const LARGE_BODY: bool = true;
    type Req = pb::SetIconRequest;
    type Resp = Empty;

    fn command(app: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        let command = Command::set_icon(&req.chat_guid, req.data, &app.limits)?;
        Ok((command, req.client_message_id))
    }

    fn respond(_: Outcome) -> Result<Empty> {
        Ok(Empty {})
    }
}

/// Removes the group's icon.
pub(crate) struct RemoveIcon;

impl Write for RemoveIcon {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/RemoveIcon";
    type Req = pb::RemoveIconRequest;
    type Resp = Empty;

    fn command(_: &App, req: Self::Req) -> Result<(Command, Option<String>)> {
        Ok((Command::remove_icon(&req.chat_guid)?, req.client_message_id))
    }

    fn respond(_: Outcome) -> Result<Empty> {
        Ok(Empty {})
    }
}

/// The group's icon: its bytes and MIME type.
pub(crate) struct GetIcon;

impl Rpc for GetIcon {
    const PATH: &'static str = "/photon.imessage.v1.GroupService/GetIcon";
    type Req = pb::GetIconRequest;
    type Resp = pb::GetIconResponse;

    async fn call(app: &App, caller: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let (data, mime_type) = app.engine.get_icon(caller.account, req.chat_guid).await?;
        Ok(pb::GetIconResponse { data, mime_type })
    }
}
