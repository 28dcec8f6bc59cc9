//! The server's key-encryption keys (`KYC_ENCRYPTION_KEYS`) and sealing
//! with them: AES-256-GCM (RustCrypto `aes-gcm`), a random 96-bit nonce per
//! seal, and associated data naming where the sealed value belongs, so a
//! sealed value copied to another row or column does not open.
//!
//! Sealed text: `sealed:v1:<kid>:<base64url(nonce || ciphertext || tag)>`.
//! The first key of the ring seals; every key opens (by the kid the
//! sealed text names), so a new key can be put first and the old one kept
//! until nothing sealed under it is left.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;

/// Every key is 256 bits.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const PREFIX: &str = "sealed:v1:";

/// One or more keys, each with its id; the first seals.
pub struct KeyRing {
    keys: Vec<(String, Aes256Gcm)>,
}

/// `Debug` names the key ids, never the keys.
impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(kid, _)| kid.as_str()).collect();
        write!(f, "KeyRing({kids:?})")
    }
}

/// Why a sealed value did not open. Deliberately without detail: the cause
/// is one of these, never the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed value")]
    Malformed,
    #[error("sealed under key `{0}`, which is not among the configured keys")]
    UnknownKey(String),
    #[error("the sealed value does not open with key `{0}` (wrong key, altered, or moved from elsewhere)")]
    Rejected(String),
}

fn valid_kid(kid: &str) -> bool {
    (1..=32).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl KeyRing {
    /// Parses `kid:base64key,kid:base64key,...`: ids of 1 to 32 letters,
    /// digits, `-` or `_`, each used once; keys of exactly 32 bytes in
    /// standard base64. The message never repeats a key.
    pub fn parse(spec: &str) -> Result<KeyRing, String> {
        let mut keys = Vec::new();
        for (i, entry) in spec.split(',').map(str::trim).enumerate() {
            let Some((kid, encoded)) = entry.split_once(':') else {
                return Err(format!("entry {} is not `kid:base64key`", i + 1));
            };
            if !valid_kid(kid) {
                return Err(format!(
                    "entry {}: the key id must be 1 to 32 letters, digits, `-` or `_`",
                    i + 1
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| format!("key `{kid}` is not valid base64"))?;
            let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|bytes: Vec<u8>| {
                format!(
                    "key `{kid}` is {} bytes; keys are {KEY_BYTES} bytes (e.g. `openssl rand -base64 32`)",
                    bytes.len()
                )
            })?;
            if keys.iter().any(|(seen, _)| seen == kid) {
                return Err(format!("key id `{kid}` is given twice"));
            }
            keys.push((kid.to_owned(), Aes256Gcm::new(&key.into())));
        }
        Ok(KeyRing { keys })
    }

    /// A ring of one key.
    pub fn single(kid: &str, key: &[u8; KEY_BYTES]) -> Result<KeyRing, String> {
        if !valid_kid(kid) {
            return Err(format!("`{kid}` is not a valid key id"));
        }
        Ok(KeyRing {
            keys: vec![(kid.to_owned(), Aes256Gcm::new(key.into()))],
        })
    }

    /// The id of the key that seals.
    pub fn sealing_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// Seals `plaintext` for the place `context` names.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> String {
        let (kid, cipher) = &self.keys[0];
        format!(
            "{PREFIX}{kid}:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(seal_with(cipher, plaintext, context))
        )
    }

    /// Opens what [`KeyRing::seal`] sealed for the same `context`.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, OpenError> {
        let kid = Self::kid_of(sealed).ok_or(OpenError::Malformed)?;
        let encoded = &sealed[PREFIX.len() + kid.len() + 1..];
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| OpenError::Malformed)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(known, _)| known == kid)
            .ok_or_else(|| OpenError::UnknownKey(kid.to_owned()))?;
        open_with(cipher, &bytes, context).map_err(|e| match e {
            OpenError::Rejected(_) => OpenError::Rejected(kid.to_owned()),
            other => other,
        })
    }

    /// How every value the first key seals begins.
    pub fn sealing_prefix(&self) -> String {
        format!("{PREFIX}{}:", self.sealing_kid())
    }

    /// The id of the key a sealed value is sealed under.
    pub fn kid_of(sealed: &str) -> Option<&str> {
        let rest = sealed.strip_prefix(PREFIX)?;
        rest.split_once(':').map(|(kid, _)| kid)
    }

    /// Makes a new data key and seals it for `context`: the key to use
    /// now and the only form of it that may be stored.
    pub fn new_data_key(&self, context: &[u8]) -> (DataKey, String) {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let wrapped = self.seal(&bytes, context);
        (DataKey::from_bytes(&bytes), wrapped)
    }

    /// Opens a data key [`KeyRing::new_data_key`] wrapped.
    pub fn open_data_key(&self, wrapped: &str, context: &[u8]) -> Result<DataKey, OpenError> {
        let bytes = self.open(wrapped, context)?;
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| OpenError::Malformed)?;
        Ok(DataKey::from_bytes(&bytes))
    }

    /// Seals a wrapped data key again under the first key of the ring
    /// (rotation), without ever returning the data key itself.
    pub fn rewrap(&self, wrapped: &str, context: &[u8]) -> Result<String, OpenError> {
        let bytes = self.open(wrapped, context)?;
        Ok(self.seal(&bytes, context))
    }

    /// Whether stored text is sealed (rather than a value written before
    /// sealing existed).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

fn seal_with(cipher: &Aes256Gcm, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .expect("AES-GCM encrypts any input of this size");
    let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open_with(cipher: &Aes256Gcm, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < NONCE_BYTES {
        return Err(OpenError::Malformed);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: context,
            },
        )
        .map_err(|_| OpenError::Rejected(String::new()))
}

/// The prefix of text a [`DataKey`] sealed.
const DATA_PREFIX: &str = "enc:v1:";

/// One identity's own key (its DEK): seals its personal data fields and
/// its document bytes. Stored only wrapped by the [`KeyRing`]; destroying
/// the wrapped form makes everything it sealed unreadable.
pub struct DataKey {
    cipher: Aes256Gcm,
}

/// `Debug` never shows the key.
impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn from_bytes(bytes: &[u8; KEY_BYTES]) -> DataKey {
        DataKey {
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// Seals text for the place `context` names: `enc:v1:<base64url>`.
    pub fn seal_text(&self, plaintext: &str, context: &[u8]) -> String {
        format!(
            "{DATA_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(seal_with(
                &self.cipher,
                plaintext.as_bytes(),
                context
            ))
        )
    }

    /// Opens what [`DataKey::seal_text`] sealed for the same `context`.
    pub fn open_text(&self, sealed: &str, context: &[u8]) -> Result<String, OpenError> {
        let encoded = sealed
            .strip_prefix(DATA_PREFIX)
            .ok_or(OpenError::Malformed)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| OpenError::Malformed)?;
        let clear = open_with(&self.cipher, &bytes, context)
            .map_err(|_| OpenError::Rejected("data key".into()))?;
        String::from_utf8(clear).map_err(|_| OpenError::Malformed)
    }

    /// Whether stored text is sealed by a data key (rather than a value
    /// written before encryption at rest).
    pub fn is_sealed_text(stored: &str) -> bool {
        stored.starts_with(DATA_PREFIX)
    }

    /// Seals bytes (a document): `nonce || ciphertext || tag`.
    pub fn seal_bytes(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, plaintext, context)
    }

    /// Opens what [`DataKey::seal_bytes`] sealed for the same `context`.
    pub fn open_bytes(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, OpenError> {
        open_with(&self.cipher, sealed, context).map_err(|e| match e {
            OpenError::Rejected(_) => OpenError::Rejected("data key".into()),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(key: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let ring = KeyRing::parse(&format!("k1:{}", b64(&[1; 32]))).unwrap();
        let sealed = ring.seal(b"whsec_secret", b"endpoint-1/secret");
        assert!(KeyRing::is_sealed(&sealed));
        assert!(sealed.starts_with("sealed:v1:k1:"));
        assert!(!sealed.contains("whsec"));
        assert_eq!(
            ring.open(&sealed, b"endpoint-1/secret").unwrap(),
            b"whsec_secret"
        );
        // Two seals of one value differ (fresh nonce).
        assert_ne!(sealed, ring.seal(b"whsec_secret", b"endpoint-1/secret"));
        // Moved to another place: refused.
        assert_eq!(
            ring.open(&sealed, b"endpoint-2/secret"),
            Err(OpenError::Rejected("k1".into()))
        );
        // Another key under the same id: refused.
        let wrong = KeyRing::parse(&format!("k1:{}", b64(&[2; 32]))).unwrap();
        assert!(matches!(
            wrong.open(&sealed, b"endpoint-1/secret"),
            Err(OpenError::Rejected(_))
        ));
        // A ring without that id says which key is missing.
        let other = KeyRing::parse(&format!("k2:{}", b64(&[1; 32]))).unwrap();
        assert_eq!(
            other.open(&sealed, b"endpoint-1/secret"),
            Err(OpenError::UnknownKey("k1".into()))
        );
        // Altered by one character.
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(ring
            .open(std::str::from_utf8(&altered).unwrap(), b"endpoint-1/secret")
            .is_err());
        for malformed in [
            "",
            "whsec_x",
            "sealed:v1:k1",
            "sealed:v1:k1:!!",
            "sealed:v1:k1:AAAA",
        ] {
            assert!(ring.open(malformed, b"x").is_err(), "{malformed}");
        }
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = KeyRing::parse(&format!("old:{}", b64(&[1; 32]))).unwrap();
        let sealed_before = old.seal(b"v", b"c");
        let ring =
            KeyRing::parse(&format!("new:{}, old:{}", b64(&[3; 32]), b64(&[1; 32]))).unwrap();
        assert_eq!(ring.sealing_kid(), "new");
        assert_eq!(ring.open(&sealed_before, b"c").unwrap(), b"v");
        assert!(ring.seal(b"v", b"c").starts_with("sealed:v1:new:"));
        assert_eq!(format!("{ring:?}"), r#"KeyRing(["new", "old"])"#);
    }

    #[test]
    fn key_lists_are_checked_without_repeating_a_key() {
        let key = b64(&[9; 32]);
        for (bad, words) in [
            ("".to_string(), "kid:base64key"),
            ("k1".to_string(), "kid:base64key"),
            (format!(":{key}"), "key id"),
            (format!("k 1:{key}"), "key id"),
            (format!("{}:{key}", "k".repeat(33)), "key id"),
            ("k1:not base64!".to_string(), "not valid base64"),
            (format!("k1:{}", b64(&[9; 16])), "16 bytes"),
            (format!("k1:{key},k1:{key}"), "twice"),
        ] {
            let message = KeyRing::parse(&bad).unwrap_err();
            assert!(message.contains(words), "{bad}: {message}");
            assert!(!message.contains(&key), "{message}");
        }
    }

    proptest! {
        #[test]
        fn any_value_round_trips(value in proptest::collection::vec(any::<u8>(), 0..512),
                                 context in proptest::collection::vec(any::<u8>(), 0..64)) {
            let ring = KeyRing::single("p", &[5; 32]).unwrap();
            let sealed = ring.seal(&value, &context);
            prop_assert_eq!(ring.open(&sealed, &context).unwrap(), value);
        }

        #[test]
        fn parsing_never_panics(spec in ".{0,200}") {
            let _ = KeyRing::parse(&spec);
        }
    }
}
