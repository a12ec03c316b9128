//! The simulator's controls ([`SimControls`], `imgroups_core::port::sim`): the directory of
//! unreachable addresses (its SQL in `admin`) and injected faults (in `faults`).

use async_trait::async_trait;
use imgroups_core::port::{Fault, NewFault, SimControls};
use imgroups_core::{AccountId, Address, FaultId, Result};

use crate::{admin, faults, PgStore};

#[async_trait]
impl SimControls for PgStore {
    async fn set_unreachable(&self, address: &Address, unreachable: bool) -> Result<()> {
        let address = address.clone();
        self.with_client(move |mut client| async move {
            admin::set_unreachable(&mut client, &address, unreachable).await
        })
        .await
    }

    async fn unreachable(&self) -> Result<Vec<Address>> {
        self.with_client(|client| async move { admin::unreachable(&client).await })
            .await
    }

    async fn add_fault(&self, fault: &NewFault) -> Result<Fault> {
        let fault = fault.clone();
        self.with_client(move |client| async move { faults::add_fault(&client, &fault).await })
            .await
    }

    async fn faults(&self) -> Result<Vec<Fault>> {
        self.with_client(|client| async move {
            faults::faults(&client, admin::now(&client).await?).await
        })
        .await
    }

    async fn clear_faults(&self, account: Option<AccountId>, id: Option<FaultId>) -> Result<u64> {
        self.with_client(
            move |client| async move { faults::clear_faults(&client, account, id).await },
        )
        .await
    }

    async fn take_fault(&self, id: FaultId) -> Result<bool> {
        self.with_client(move |client| async move {
            faults::take_fault(&client, id, admin::now(&client).await?).await
        })
        .await
    }
}
