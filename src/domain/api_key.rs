//! API key secrets: generated here, shown to the operator once, stored only
//! as a SHA-256 hash.

use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "kyc_";
/// 40 alphanumeric characters: about 238 bits of entropy, so a plain (fast)
/// hash is enough; there is nothing to brute-force.
const RANDOM_LEN: usize = 40;

/// A plaintext API key. It cannot be printed with `{:?}` and is not
/// serializable, so it cannot end up in a log or a response by accident;
/// `expose()` is the one deliberate way to read it.
#[derive(Clone)]
pub struct ApiKeySecret(String);

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(***)")
    }
}

impl ApiKeySecret {
    pub fn generate() -> Self {
        let random: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(RANDOM_LEN)
            .map(char::from)
            .collect();
        Self(format!("{PREFIX}{random}"))
    }

    /// Wraps a key an operator chose (`KYC_BOOTSTRAP_API_KEY`) or a client sent.
    pub fn from_presented(value: &str) -> Self {
        Self(value.to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    /// A short, non-secret label for listings.
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(PREFIX.len() + 4).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so the time taken says nothing about how
    /// much of a guessed hash matched.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_distinct_and_never_debug_printed() {
        let a = ApiKeySecret::generate();
        let b = ApiKeySecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), PREFIX.len() + RANDOM_LEN);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn hash_is_stable_and_compared_exactly() {
        let key = ApiKeySecret::from_presented("kyc_example");
        assert!(key.hash().matches(&key.hash()));
        assert!(!key
            .hash()
            .matches(&ApiKeySecret::from_presented("kyc_examplf").hash()));
        assert_eq!(key.hash().as_str().len(), 64);
    }
}
