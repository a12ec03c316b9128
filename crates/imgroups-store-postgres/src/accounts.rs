//! The accounts port ([`Accounts`]): accounts, their tokens and admin tokens. The SQL is in
//! `admin`.

use async_trait::async_trait;
use imgroups_core::port::{AccountInfo, Accounts, AdminTokenInfo, TokenInfo, TokenRef};
use imgroups_core::{AccountId, Address, Result, TokenId};

use crate::{admin, PgStore, REVOCATION_SETTLE};

#[async_trait]
impl Accounts for PgStore {
    /// A good token is remembered for a few seconds while the hint listener is connected:
    /// a revocation anywhere reaches every process as a hint and empties the cache.
    fn authenticate_cached(&self, token: &str) -> Option<AccountId> {
        let generation = self.inner.hints.token_generation();
        self.inner.tokens.get(token, generation)
    }

    async fn authenticate(&self, token: &str) -> Result<AccountId> {
        let generation = self.inner.hints.token_generation();
        if let Some(account) = self.inner.tokens.get(token, generation) {
            return Ok(account);
        }
        let owned = token.to_owned();
        let account = self
            .with_client(move |client| async move { admin::authenticate(&client, &owned).await })
            .await?;
        self.inner.tokens.put(token.to_owned(), account, generation);
        Ok(account)
    }

    async fn ensure_account(&self, address: &Address) -> Result<(AccountId, bool)> {
        let address = address.clone();
        self.with_client(move |mut client| async move {
            admin::ensure_account(&mut client, &address).await
        })
        .await
    }

    async fn find_account(&self, address: &Address) -> Result<Option<AccountId>> {
        let address = address.clone();
        self.with_client(move |client| async move { admin::find_account(&client, &address).await })
            .await
    }

    async fn add_token(&self, account: AccountId, hash: Vec<u8>) -> Result<TokenId> {
        self.with_client(
            move |client| async move { admin::add_token(&client, account, &hash).await },
        )
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.with_client(|client| async move { admin::list_tokens(&client).await })
            .await
    }

    async fn revoke_token(&self, token: &TokenRef) -> Result<TokenId> {
        let token = token.clone();
        let node = self.node().to_owned();
        let id = self
            .with_client(move |mut client| async move {
                admin::revoke_token(&mut client, &token, &node).await
            })
            .await?;
        self.inner.hints.revoked();
        // Committed and announced: give running servers a moment to hear it (delivery takes
        // a few milliseconds), so the revoked token fails on the very next call.
        tokio::time::sleep(REVOCATION_SETTLE).await;
        Ok(id)
    }

    async fn list_accounts(&self) -> Result<Vec<AccountInfo>> {
        self.with_client(|client| async move { admin::list_accounts(&client).await })
            .await
    }

    async fn add_admin_token(&self, hash: Vec<u8>) -> Result<()> {
        self.with_client(move |client| async move { admin::add_admin_token(&client, &hash).await })
            .await
    }

    /// Not cached, unlike account tokens: the console makes few calls, and a read per call
    /// means a removed admin token stops working at once on every node.
    async fn authenticate_admin(&self, token: &str) -> Result<()> {
        let token = token.to_owned();
        self.with_client(
            move |client| async move { admin::authenticate_admin(&client, &token).await },
        )
        .await
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenInfo>> {
        self.with_client(|client| async move { admin::list_admin_tokens(&client).await })
            .await
    }

    async fn revoke_admin_token(&self, token: &TokenRef) -> Result<TokenId> {
        let token = token.clone();
        self.with_client(
            move |client| async move { admin::revoke_admin_token(&client, &token).await },
        )
        .await
    }
}
