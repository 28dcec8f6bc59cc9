//! Document bytes at rest in the local storage backend. Each object has
//! its own random key ([`ObjectSecret`]) and a random object id that the
//! content is bound to (AES-256-GCM associated data):
//!
//! - an **upload** (what an upload form wrote, before any identity has it)
//!   carries its key sealed by the server's key ring, bound to its object
//!   key: `KYCUPL1\0 | u16 length | sealed key text | object id | nonce+ct`;
//! - a **sealed copy** (a document's evidence) carries no key at all:
//!   `KYCEVD1\0 | object id | nonce+ct`. Its key lives only in the
//!   document's row, sealed under the identity's data key, so erasing the
//!   identity makes these bytes unreadable wherever a copy of them is.
//!
//! A file with neither prefix was written before encryption at rest and is
//! read as it is.

use base64::Engine;
use rand::RngCore;

use crate::domain::crypto::{DataKey, KeyRing, OpenError, KEY_BYTES};

const UPLOAD_MAGIC: &[u8; 8] = b"KYCUPL1\0";
const EVIDENCE_MAGIC: &[u8; 8] = b"KYCEVD1\0";
const OBJECT_ID_BYTES: usize = 16;

/// One object's own key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectSecret([u8; KEY_BYTES]);

impl std::fmt::Debug for ObjectSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectSecret(..)")
    }
}

impl ObjectSecret {
    fn random() -> ObjectSecret {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        ObjectSecret(bytes)
    }

    fn cipher(&self) -> DataKey {
        DataKey::from_bytes(&self.0)
    }

    /// Sealed under `key` for `context` (a document row, a download token).
    pub fn seal_with(&self, key: &DataKey, context: &[u8]) -> String {
        key.seal_text(
            &base64::engine::general_purpose::STANDARD.encode(self.0),
            context,
        )
    }

    /// Opens what [`ObjectSecret::seal_with`] sealed.
    pub fn open_with(key: &DataKey, sealed: &str, context: &[u8]) -> Result<Self, OpenError> {
        let text = key.open_text(sealed, context)?;
        Self::from_base64(&text)
    }

    /// Sealed by the server's key ring for `context`.
    pub fn seal_with_ring(&self, ring: &KeyRing, context: &[u8]) -> String {
        ring.seal(&self.0, context)
    }

    /// Opens what [`ObjectSecret::seal_with_ring`] sealed.
    pub fn open_with_ring(ring: &KeyRing, sealed: &str, context: &[u8]) -> Result<Self, OpenError> {
        let bytes = ring.open(sealed, context)?;
        Ok(ObjectSecret(
            bytes.try_into().map_err(|_| OpenError::Malformed)?,
        ))
    }

    fn from_base64(text: &str) -> Result<Self, OpenError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| OpenError::Malformed)?;
        Ok(ObjectSecret(
            bytes.try_into().map_err(|_| OpenError::Malformed)?,
        ))
    }
}

/// What a stored file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    Upload,
    Evidence,
    /// Written before encryption at rest.
    Clear,
}

pub fn kind_of(file: &[u8]) -> SealedKind {
    if file.starts_with(UPLOAD_MAGIC) {
        SealedKind::Upload
    } else if file.starts_with(EVIDENCE_MAGIC) {
        SealedKind::Evidence
    } else {
        SealedKind::Clear
    }
}

fn upload_context(object_key: &str) -> Vec<u8> {
    format!("objects/{object_key}").into_bytes()
}

/// An upload's file: `clear` sealed under a new key, which the server's
/// ring seals into the file, bound to `object_key`.
pub fn seal_upload(ring: &KeyRing, object_key: &str, clear: &[u8]) -> Vec<u8> {
    let secret = ObjectSecret::random();
    let mut object_id = [0u8; OBJECT_ID_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut object_id);
    let wrapped = secret.seal_with_ring(ring, &upload_context(object_key));
    let content = secret.cipher().seal_bytes(clear, &object_id);
    let mut file = Vec::with_capacity(8 + 2 + wrapped.len() + OBJECT_ID_BYTES + content.len());
    file.extend_from_slice(UPLOAD_MAGIC);
    file.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
    file.extend_from_slice(wrapped.as_bytes());
    file.extend_from_slice(&object_id);
    file.extend_from_slice(&content);
    file
}

/// Splits an upload's file into its key (opened with the ring) and the
/// rest (object id, nonce and ciphertext).
fn open_upload_header<'f>(
    ring: &KeyRing,
    object_key: &str,
    file: &'f [u8],
) -> Result<(ObjectSecret, &'f [u8]), OpenError> {
    let rest = file
        .strip_prefix(UPLOAD_MAGIC)
        .ok_or(OpenError::Malformed)?;
    if rest.len() < 2 {
        return Err(OpenError::Malformed);
    }
    let length = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    let rest = &rest[2..];
    if rest.len() < length + OBJECT_ID_BYTES {
        return Err(OpenError::Malformed);
    }
    let wrapped = std::str::from_utf8(&rest[..length]).map_err(|_| OpenError::Malformed)?;
    let secret = ObjectSecret::open_with_ring(ring, wrapped, &upload_context(object_key))?;
    Ok((secret, &rest[length..]))
}

/// A sealed copy of an upload: the same ciphertext without the key (no
/// re-encryption), and the key, for the document's row.
pub fn evidence_of_upload(
    ring: &KeyRing,
    upload_key: &str,
    file: &[u8],
) -> Result<(ObjectSecret, Vec<u8>), OpenError> {
    let (secret, body) = open_upload_header(ring, upload_key, file)?;
    let mut evidence = Vec::with_capacity(8 + body.len());
    evidence.extend_from_slice(EVIDENCE_MAGIC);
    evidence.extend_from_slice(body);
    Ok((secret, evidence))
}

fn open_body(secret: &ObjectSecret, body: &[u8]) -> Result<Vec<u8>, OpenError> {
    if body.len() < OBJECT_ID_BYTES {
        return Err(OpenError::Malformed);
    }
    let (object_id, content) = body.split_at(OBJECT_ID_BYTES);
    secret.cipher().open_bytes(content, object_id)
}

/// The clear bytes of a sealed copy.
pub fn open_evidence(secret: &ObjectSecret, file: &[u8]) -> Result<Vec<u8>, OpenError> {
    let body = file
        .strip_prefix(EVIDENCE_MAGIC)
        .ok_or(OpenError::Malformed)?;
    open_body(secret, body)
}

/// The clear bytes of an upload.
pub fn open_upload(ring: &KeyRing, object_key: &str, file: &[u8]) -> Result<Vec<u8>, OpenError> {
    let (secret, body) = open_upload_header(ring, object_key, file)?;
    open_body(&secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring() -> KeyRing {
        KeyRing::single("t", &[3; 32]).unwrap()
    }

    #[test]
    fn an_upload_becomes_evidence_only_its_key_opens() {
        let ring = ring();
        let scan = b"\xFF\xD8 passport scan bytes \xFF\xD9";
        let upload = seal_upload(&ring, "apps/a/documents/u.jpg", scan);
        assert_eq!(kind_of(&upload), SealedKind::Upload);
        assert!(!upload.windows(8).any(|w| w == &scan[3..11]));
        assert_eq!(
            open_upload(&ring, "apps/a/documents/u.jpg", &upload).unwrap(),
            scan
        );
        // Bound to its object key.
        assert!(open_upload(&ring, "apps/a/documents/v.jpg", &upload).is_err());

        let (secret, evidence) =
            evidence_of_upload(&ring, "apps/a/documents/u.jpg", &upload).unwrap();
        assert_eq!(kind_of(&evidence), SealedKind::Evidence);
        assert_eq!(open_evidence(&secret, &evidence).unwrap(), scan);
        // No key inside: the ring alone does not open it.
        assert!(!evidence.windows(10).any(|w| w == b"sealed:v1:"));
        let (other, _) = evidence_of_upload(
            &ring,
            "apps/a/documents/w.jpg",
            &seal_upload(&ring, "apps/a/documents/w.jpg", scan),
        )
        .unwrap();
        assert!(open_evidence(&other, &evidence).is_err());
        let mut altered = evidence.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(open_evidence(&secret, &altered).is_err());
        assert_eq!(kind_of(b"plain old bytes"), SealedKind::Clear);
    }

    #[test]
    fn object_secrets_round_trip_under_a_data_key_and_the_ring() {
        let ring = ring();
        let (dek, _) = ring.new_data_key(b"identity_keys/x");
        let secret = ObjectSecret::random();
        let sealed = secret.seal_with(&dek, b"documents/d/object");
        assert_eq!(
            ObjectSecret::open_with(&dek, &sealed, b"documents/d/object").unwrap(),
            secret
        );
        assert!(ObjectSecret::open_with(&dek, &sealed, b"documents/e/object").is_err());
        let in_token = secret.seal_with_ring(&ring, b"downloads/k");
        assert_eq!(
            ObjectSecret::open_with_ring(&ring, &in_token, b"downloads/k").unwrap(),
            secret
        );
        assert_eq!(format!("{secret:?}"), "ObjectSecret(..)");
    }

    proptest! {
        #[test]
        fn malformed_files_never_panic(file in proptest::collection::vec(any::<u8>(), 0..200)) {
            let ring = ring();
            let mut upload = UPLOAD_MAGIC.to_vec();
            upload.extend_from_slice(&file);
            let _ = open_upload(&ring, "k", &upload);
            let _ = evidence_of_upload(&ring, "k", &upload);
            let mut evidence = EVIDENCE_MAGIC.to_vec();
            evidence.extend_from_slice(&file);
            let _ = open_evidence(&ObjectSecret::random(), &evidence);
        }
    }
}
