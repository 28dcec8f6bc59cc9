//! API key secrets: generated here, shown to the operator once, stored only
//! as a SHA-256 hash.

use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::stored::{text_enum, StoredText};

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

text_enum! {
    /// What an API key may do; each route needs one (`routes::ROUTES`).
    pub enum Scope {
        /// Identities, their relations, verifications, history, operations
        /// and events.
        #[strum(serialize = "identities:read")]
        #[serde(rename = "identities:read")]
        IdentitiesRead,
        /// Create, change, delete and erase identities and their relations;
        /// upload forms for documents.
        #[strum(serialize = "identities:write")]
        #[serde(rename = "identities:write")]
        IdentitiesWrite,
        /// Download URLs for documents and face images.
        #[strum(serialize = "documents:read")]
        #[serde(rename = "documents:read")]
        DocumentsRead,
        /// Decisions, block and unblock (and the sandbox's settlements);
        /// signing in to the review console.
        #[strum(serialize = "kyc:review")]
        #[serde(rename = "kyc:review")]
        KycReview,
        /// Webhook endpoints, their deliveries, redelivery.
        #[strum(serialize = "webhooks:manage")]
        #[serde(rename = "webhooks:manage")]
        WebhooksManage,
        /// The audit log and its head.
        #[strum(serialize = "audit:read")]
        #[serde(rename = "audit:read")]
        AuditRead,
    }
}

/// A key's scopes: every scope (`*`, what every key made before scopes
/// has), or a set of them. Stored as `*` or the names joined by commas in
/// declaration order.
#[derive(
    Debug, Clone, PartialEq, Eq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct Scopes {
    /// `None` for every scope.
    listed: Option<Vec<Scope>>,
    stored: String,
}

/// How every scope is written.
pub const EVERY_SCOPE: &str = "*";

impl Scopes {
    pub fn every() -> Scopes {
        Scopes {
            listed: None,
            stored: EVERY_SCOPE.to_owned(),
        }
    }

    /// `*`, or scope names separated by commas (spaces around them are
    /// ignored; a name given twice counts once). The error says what is
    /// wrong in words an operator can act on.
    pub fn parse(text: &str) -> Result<Scopes, String> {
        let names: Vec<&str> = text.split(',').map(str::trim).collect();
        if names == [EVERY_SCOPE] {
            return Ok(Scopes::every());
        }
        let mut listed = Vec::new();
        for name in names {
            if name == EVERY_SCOPE {
                return Err("`*` already means every scope: give it alone".into());
            }
            let scope = Scope::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "`{name}` is not a scope; expected `*` or some of {}",
                    known.join(", ")
                )
            })?;
            listed.push(scope);
        }
        listed.sort();
        listed.dedup();
        let stored = listed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Scopes {
            listed: Some(listed),
            stored,
        })
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.listed
            .as_ref()
            .is_none_or(|listed| listed.contains(&scope))
    }

    /// As `keys list` shows them: `["*"]` or the names.
    pub fn names(&self) -> Vec<&'static str> {
        match &self.listed {
            None => vec![EVERY_SCOPE],
            Some(listed) => listed.iter().map(|s| s.as_str()).collect(),
        }
    }
}

impl StoredText for Scopes {
    fn stored(&self) -> &str {
        &self.stored
    }

    fn from_stored(s: &str) -> Option<Self> {
        Scopes::parse(s).ok().filter(|scopes| scopes.stored == s)
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

    #[test]
    fn scopes_parse_store_and_allow() {
        let every = Scopes::parse("*").unwrap();
        assert!(Scope::ALL.iter().all(|&s| every.allows(s)));
        assert_eq!(every.stored(), "*");
        assert_eq!(every.names(), ["*"]);
        let two = Scopes::parse(" kyc:review , identities:read,kyc:review").unwrap();
        assert_eq!(two.stored(), "identities:read,kyc:review");
        assert!(two.allows(Scope::KycReview) && two.allows(Scope::IdentitiesRead));
        assert!(!two.allows(Scope::IdentitiesWrite) && !two.allows(Scope::AuditRead));
        assert_eq!(Scopes::from_stored("identities:read,kyc:review"), Some(two));
        for bad in [
            "",
            "identities",
            "kyc:review,*",
            "identities:read,",
            "Identities:Read",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad:?}");
        }
        // Only the stored form reads back: anything else was not written by us.
        assert_eq!(Scopes::from_stored("kyc:review,identities:read"), None);
        for &scope in Scope::ALL {
            let one = Scopes::parse(scope.as_str()).unwrap();
            assert_eq!(one.names(), [scope.as_str()]);
            assert_eq!(Scopes::from_stored(one.stored()), Some(one));
        }
    }
}
