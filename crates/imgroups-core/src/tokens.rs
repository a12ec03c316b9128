//! Secrets: API tokens and webhook signing secrets. Tokens are random (160 bits), shown once,
//! and stored only as their SHA-256 hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Token text starts with this, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "imgr_";
/// Webhook secrets start with this, for the same reason.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new token: its text (give it to the user, once) and the hash to store.
pub fn new_token() -> (String, Vec<u8>) {
    let token = format!("{TOKEN_PREFIX}{}", random_hex::<20>());
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
