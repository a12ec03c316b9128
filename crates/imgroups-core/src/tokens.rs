//! Secrets: API tokens and webhook signing secrets. Tokens are random (160 bits), shown once,
//! and stored only as their SHA-256 hash.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::model::AccountId;

/// Token text starts with this, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "imgr_";
/// Webhook secrets start with this, for the same reason.
pub const SECRET_PREFIX: &str = "whsec_";
/// Admin tokens (the console's credential) start with this: never confused with an
/// account's token, and never accepted as one.
pub const ADMIN_TOKEN_PREFIX: &str = "imgadm_";

/// A new token: its text (give it to the user, once) and the hash to store.
pub fn new_token() -> (String, Vec<u8>) {
    let token = format!("{TOKEN_PREFIX}{}", random_hex::<20>());
    let hash = hash_token(&token);
    (token, hash)
}

/// A new admin token: its text (shown once) and the hash to store.
pub fn new_admin_token() -> (String, Vec<u8>) {
    let token = format!("{ADMIN_TOKEN_PREFIX}{}", random_hex::<20>());
    let hash = hash_token(&token);
    (token, hash)
}

/// What a store keeps of a token, and looks it up by.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new webhook signing secret.
pub fn new_webhook_secret() -> String {
    format!("{SECRET_PREFIX}{}", random_hex::<24>())
}

fn random_hex<const N: usize>() -> String {
    let mut secret = [0u8; N];
    rand::rng().fill_bytes(&mut secret);
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_stored_hashed() {
        let (a, hash) = new_token();
        let (b, _) = new_token();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 40);
        assert_ne!(a, b);
        assert_eq!(hash, hash_token(&a));
        assert!(new_webhook_secret().starts_with(SECRET_PREFIX));
    }
}

/// Good tokens a store has already checked, so a request need not read the database to know
/// its account. An entry holds while the store's *revocation generation* — a number that
/// changes whenever any token may have been revoked, by this process or another — is the one
/// it was checked under, and for at most `ttl` (which bounds the damage should news of a
/// revocation be lost). A store that cannot currently tell its generation passes `None`:
/// nothing is then trusted or remembered.
pub struct TokenCache {
    ttl: Duration,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    generation: u64,
    accounts: HashMap<String, (AccountId, Instant)>,
}

/// Above this many remembered tokens the cache starts over.
const MAX_CACHED_TOKENS: usize = 10_000;

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        TokenCache {
            ttl,
            state: Mutex::default(),
        }
    }

    /// The account of `token`, if it was checked under `generation` less than `ttl` ago.
    pub fn get(&self, token: &str, generation: Option<u64>) -> Option<AccountId> {
        let generation = generation?;
        let mut state = self.state.lock().ok()?;
        if state.generation != generation {
            state.accounts.clear();
            state.generation = generation;
            return None;
        }
        match state.accounts.get(token) {
            Some((account, checked)) if checked.elapsed() < self.ttl => Some(*account),
            _ => None,
        }
    }

    /// Remembers `token` as checked under `generation`, unless a newer generation has been
    /// seen since (then the check may predate a revocation).
    pub fn put(&self, token: String, account: AccountId, generation: Option<u64>) {
        let Some(generation) = generation else {
            return;
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.generation != generation {
            return;
        }
        if state.accounts.len() >= MAX_CACHED_TOKENS {
            state.accounts.clear();
        }
        state.accounts.insert(token, (account, Instant::now()));
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn a_new_generation_forgets_every_checked_token() {
        let cache = TokenCache::new(Duration::from_secs(60));
        cache.get("t", Some(1));
        cache.put("t".into(), AccountId(7), Some(1));
        assert_eq!(cache.get("t", Some(1)), Some(AccountId(7)));
        assert_eq!(cache.get("t", Some(2)), None);
        // A check made under the old generation is not remembered under the new one.
        cache.put("t".into(), AccountId(7), Some(1));
        assert_eq!(cache.get("t", Some(2)), None);
        assert_eq!(cache.get("t", None), None);
    }

    #[test]
    fn entries_expire() {
        let cache = TokenCache::new(Duration::ZERO);
        cache.get("t", Some(0));
        cache.put("t".into(), AccountId(7), Some(0));
        assert_eq!(cache.get("t", Some(0)), None);
    }
}
