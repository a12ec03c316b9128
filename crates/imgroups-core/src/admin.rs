//! Administration over any store: accounts, tokens and webhook endpoints, as the CLI and the
//! HTTP API manage them. Secrets are made here (see [`crate::tokens`]); stores keep hashes.

use crate::error::{Error, ErrorKind, Hint, Reason, Result};
use crate::ids::Address;
use crate::model::{AccountId, TokenId};
use crate::port::store::{Store, TokenRef, Webhook, WebhookUrl};
use crate::tokens;

/// Creates a new account and its first token. An existing account is an error: use
/// [`create_token`] to add a device.
pub async fn add_account(store: &dyn Store, address: &Address) -> Result<String> {
    let (account, created) = store.ensure_account(address).await?;
    if !created {
        // Another token is what is wanted, most likely: the hint says how to make one.
        return Err(Error::precondition(
            Reason::AccountExists,
            format!("account {address} already exists"),
        )
        .with("address", address)
        .hint(Hint::AnotherToken));
    }
    new_token(store, account).await
}

/// Creates the account if it does not exist; returns it and, if it was created now, its
/// first token.
pub async fn ensure_account(
    store: &dyn Store,
    address: &Address,
) -> Result<(AccountId, Option<String>)> {
    let (account, created) = store.ensure_account(address).await?;
    let token = match created {
        true => Some(new_token(store, account).await?),
        false => None,
    };
    Ok((account, token))
}

/// A new token (another device) for an existing account.
pub async fn create_token(store: &dyn Store, address: &Address) -> Result<String> {
    let account = account(store, address).await?;
    new_token(store, account).await
}

async fn new_token(store: &dyn Store, account: AccountId) -> Result<String> {
    let (token, hash) = tokens::new_token();
    store.add_token(account, hash).await?;
    Ok(token)
}

/// A new admin token (the console's credential). Shown once: the store keeps its hash.
pub async fn create_admin_token(store: &dyn Store) -> Result<String> {
    let (token, hash) = tokens::new_admin_token();
    store.add_admin_token(hash).await?;
    Ok(token)
}

/// Revokes a token given as its id (from `token list`) or its full text.
pub async fn revoke_token(store: &dyn Store, id_or_token: &str) -> Result<TokenId> {
    store.revoke_token(&token_ref(id_or_token)).await
}

/// Revokes an admin token given as its id (from `admin token list`) or its full text.
pub async fn revoke_admin_token(store: &dyn Store, id_or_token: &str) -> Result<TokenId> {
    store.revoke_admin_token(&token_ref(id_or_token)).await
}

fn token_ref(id_or_token: &str) -> TokenRef {
    match id_or_token.trim().parse::<i64>() {
        Ok(id) => TokenRef::Id(TokenId(id)),
        Err(_) => TokenRef::Secret(id_or_token.trim().to_owned()),
    }
}

/// Registers `url` for `account`'s events, with a new signing secret.
pub async fn add_webhook(store: &dyn Store, account: AccountId, url: &str) -> Result<Webhook> {
    let url = WebhookUrl::parse(url)?;
    store
        .add_webhook(account, &url, &tokens::new_webhook_secret())
        .await
}

/// [`add_webhook`] for the account with this address (the CLI's form).
pub async fn add_webhook_for(store: &dyn Store, address: &Address, url: &str) -> Result<Webhook> {
    let account = account(store, address).await?;
    add_webhook(store, account, url).await
}

/// The account with this address, or `addressNotFound`.
pub async fn account(store: &dyn Store, address: &Address) -> Result<AccountId> {
    store.find_account(address).await?.ok_or_else(|| {
        Error::new(ErrorKind::AddressNotFound, format!("no account {address}"))
            .with("address", address)
    })
}
