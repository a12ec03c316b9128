//! AddressService (docs/protocol.md §12): what the network knows about an address. In the
//! simulator every valid address is on iMessage unless marked unreachable
//! (`imgroups sim unreachable`), and nobody is in a Focus mode.

use imgroups_core::{Address, Result};
use imgroups_proto::pb;

use super::Rpc;
use crate::app::{App, Caller};

async fn reachable(app: &App, address: &Address) -> Result<bool> {
    // Without the simulator's directory (on a Mac) nobody is marked unreachable.
    let Some(sim) = &app.sim else {
        return Ok(true);
    };
    let unreachable = sim.unreachable().await?;
    Ok(!unreachable.contains(address))
}

/// The services an address can be reached on.
pub(crate) struct GetAddressInfo;

impl Rpc for GetAddressInfo {
    const PATH: &'static str = "/photon.imessage.v1.AddressService/GetAddressInfo";
    type Req = pb::GetAddressInfoRequest;
    type Resp = pb::GetAddressInfoResponse;

    async fn call(app: &App, _: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let address = Address::parse(&req.address).map_err(|e| e.with("field", "address"))?;
        let services = if reachable(app, &address).await? {
            vec![pb::ChatServiceType::Imessage as i32]
        } else {
            Vec::new()
        };
        Ok(pb::GetAddressInfoResponse {
            info: Some(pb::MultiServiceAddressInfo {
                address: address.into_string(),
                services,
                country: None,
            }),
        })
    }
}

/// Whether an address is silenced by a Focus mode: never, in the simulator.
pub(crate) struct GetFocusStatus;

impl Rpc for GetFocusStatus {
    const PATH: &'static str = "/photon.imessage.v1.AddressService/GetFocusStatus";
    type Req = pb::GetFocusStatusRequest;
    type Resp = pb::GetFocusStatusResponse;

    async fn call(_: &App, _: &Caller, req: Self::Req) -> Result<Self::Resp> {
        Address::parse(&req.address).map_err(|e| e.with("field", "address"))?;
        Ok(pb::GetFocusStatusResponse {
            is_silenced_by_focus: false,
        })
    }
}

/// Whether an address is on iMessage.
pub(crate) struct GetIMessageAvailability;

impl Rpc for GetIMessageAvailability {
    const PATH: &'static str = "/photon.imessage.v1.AddressService/GetIMessageAvailability";
    type Req = pb::GetIMessageAvailabilityRequest;
    type Resp = pb::GetIMessageAvailabilityResponse;

    async fn call(app: &App, _: &Caller, req: Self::Req) -> Result<Self::Resp> {
        let address = Address::parse(&req.address).map_err(|e| e.with("field", "address"))?;
        Ok(pb::GetIMessageAvailabilityResponse {
            is_available: reachable(app, &address).await?,
        })
    }
}
