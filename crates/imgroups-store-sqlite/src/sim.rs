//! The simulator's controls ([`SimControls`], `imgroups_core::port::sim`): the directory of
//! unreachable addresses (its SQL in `admin`) and injected faults (in `faults`).

use async_trait::async_trait;
use imgroups_core::port::{Fault, NewFault, SimControls};
use imgroups_core::{AccountId, Address, FaultId, Result};

use crate::{admin, clock, faults, SqliteStore};

#[async_trait]
impl SimControls for SqliteStore {
    async fn set_unreachable(&self, address: &Address, unreachable: bool) -> Result<()> {
        let address = address.clone();
        self.write_with(move |conn| admin::set_unreachable(conn, &address, unreachable))
            .await
    }

    async fn unreachable(&self) -> Result<Vec<Address>> {
        self.read_with(admin::unreachable).await
    }

    async fn add_fault(&self, fault: &NewFault) -> Result<Fault> {
        let fault = fault.clone();
        self.write_with(move |conn| faults::add(conn, &fault)).await
    }

    async fn faults(&self) -> Result<Vec<Fault>> {
        self.read_with(|conn| faults::armed(conn, clock::now(conn)?))
            .await
    }

    async fn clear_faults(&self, account: Option<AccountId>, id: Option<FaultId>) -> Result<u64> {
        self.write_with(move |conn| faults::clear(conn, account, id))
            .await
    }

    async fn take_fault(&self, id: FaultId) -> Result<bool> {
        self.write_with(move |conn| faults::take(conn, id, clock::now(conn)?))
            .await
    }
}
