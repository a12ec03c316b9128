//! The accounts port ([`Accounts`]): accounts, their tokens and admin tokens. The SQL is in
//! `admin`.

use async_trait::async_trait;
use imgroups_core::port::{AccountInfo, Accounts, AdminTokenInfo, TokenInfo, TokenRef};
use imgroups_core::{AccountId, Address, Error, Result, TokenId};

use crate::{admin, open_connection, SqliteStore};

#[async_trait]
impl Accounts for SqliteStore {
    /// Every request starts here, so a good token is remembered (see `TokenCache`) and
    /// checking it again costs one `stat` of the revocations file, not a database read. A
    /// miss runs inline on the caller's thread rather than hopping to the blocking pool: it is
    /// one indexed read of a hot page in WAL mode (never waiting on the writer).
    fn authenticate_cached(&self, token: &str) -> Option<AccountId> {
        let revocations = admin::revocation_count(&self.inner.revocations);
        self.inner.tokens.get(token, revocations)
    }

    async fn authenticate(&self, token: &str) -> Result<AccountId> {
        let revocations = admin::revocation_count(&self.inner.revocations);
        if let Some(account) = self.inner.tokens.get(token, revocations) {
            return Ok(account);
        }
        let account = {
            let mut slot = self.inner.auth.lock().map_err(|_| {
                tracing::error!("auth connection lock poisoned");
                Error::internal()
            })?;
            if slot.is_none() {
                *slot = Some(open_connection(
                    &self.inner.config.path,
                    self.inner.config.durability,
                )?);
            }
            match slot.as_ref() {
                Some(conn) => admin::authenticate(conn, token)?,
                None => return Err(Error::internal()),
            }
        };
        self.inner
            .tokens
            .put(token.to_owned(), account, revocations);
        Ok(account)
    }

    async fn ensure_account(&self, address: &Address) -> Result<(AccountId, bool)> {
        let address = address.clone();
        self.write_with(move |conn| admin::ensure_account(conn, &address))
            .await
    }

    async fn find_account(&self, address: &Address) -> Result<Option<AccountId>> {
        let address = address.clone();
        self.read_with(move |conn| admin::find_account(conn, &address))
            .await
    }

    async fn add_token(&self, account: AccountId, hash: Vec<u8>) -> Result<TokenId> {
        self.write_with(move |conn| admin::add_token(conn, account, &hash))
            .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read_with(admin::list_tokens).await
    }

    async fn revoke_token(&self, token: &TokenRef) -> Result<TokenId> {
        let token = token.clone();
        let id = self
            .write_with(move |conn| admin::revoke_token(conn, &token))
            .await?;
        // Durable now: tell every server on this database to forget the tokens it checked.
        admin::note_revocation(&self.inner.config.path)?;
        Ok(id)
    }

    async fn list_accounts(&self) -> Result<Vec<AccountInfo>> {
        self.read_with(admin::list_accounts).await
    }

    async fn add_admin_token(&self, hash: Vec<u8>) -> Result<()> {
        self.write_with(move |conn| admin::add_admin_token(conn, &hash))
            .await
    }

    /// Not cached, unlike account tokens: the console makes few calls, and a read per call
    /// means a removed admin token stops working at once everywhere.
    async fn authenticate_admin(&self, token: &str) -> Result<()> {
        let token = token.to_owned();
        self.read_with(move |conn| admin::authenticate_admin(conn, &token))
            .await
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenInfo>> {
        self.read_with(admin::list_admin_tokens).await
    }

    async fn revoke_admin_token(&self, token: &TokenRef) -> Result<TokenId> {
        let token = token.clone();
        self.write_with(move |conn| admin::revoke_admin_token(conn, &token))
            .await
    }
}
