//! `client.addresses()`: what the network knows about a phone number or email address.

use imgroups_proto::pb;
use imgroups_types::Address;

use crate::client::{address_client, Client, Kind};
use crate::error::{Error, Result};
use crate::types::{AddressInfo, Service};

/// Address look-ups. Get one with [`Client::addresses`].
#[derive(Debug, Clone)]
pub struct Addresses<'a> {
    client: &'a Client,
}

impl<'a> Addresses<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Addresses { client }
    }

    /// The services the address was seen on and its region (`addressNotFound` when the
    /// server has never seen it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> imgroups_client::Result<()> {
    /// # let server = imgroups_testkit::Server::start().await;
    /// # let client = imgroups_client::Client::builder()
    /// #     .address(server.url()).token(server.token()).build()?;
    /// use imgroups_client::{Address, Service};
    ///
    /// let bob = Address::parse("bob@example.com")?;
    /// assert_eq!(client.addresses().info(&bob).await?.services, [Service::IMessage]);
    /// assert!(client.addresses().is_imessage_available(&bob).await?);
    /// assert!(!client.addresses().is_silenced_by_focus(&bob).await?);
    /// # Ok(()) }
    /// ```
    pub async fn info(&self, address: &Address) -> Result<AddressInfo> {
        let req = pb::GetAddressInfoRequest {
            address: address.to_string(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                address_client(ch).get_address_info(r).await
            })
            .await?;
        let info = resp
            .info
            .ok_or_else(|| Error::malformed("expected info in response"))?;
        Ok(AddressInfo {
            address: info.address,
            services: info.services.into_iter().map(Service::from_wire).collect(),
            country: info.country,
        })
    }

    /// Whether the address can be reached over iMessage now.
    pub async fn is_imessage_available(&self, address: &Address) -> Result<bool> {
        let req = pb::GetIMessageAvailabilityRequest {
            address: address.to_string(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                address_client(ch).get_i_message_availability(r).await
            })
            .await?;
        Ok(resp.is_available)
    }

    /// Whether the address has notifications silenced by a Focus mode (false also when
    /// unknown or not shared).
    pub async fn is_silenced_by_focus(&self, address: &Address) -> Result<bool> {
        let req = pb::GetFocusStatusRequest {
            address: address.to_string(),
        };
        let resp = self
            .client
            .inner
            .unary(Kind::Read, req, |ch, r| async move {
                address_client(ch).get_focus_status(r).await
            })
            .await?;
        Ok(resp.is_silenced_by_focus)
    }
}
