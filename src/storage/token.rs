//! The short-lived signatures of the `local:` backend: HS256 JWTs that name
//! exactly one key and one method.
//!
//! A GET token (in `?token=`) lets its bearer read one object until `exp`; a
//! POST token (the upload form's `policy` field) lets its bearer write one
//! object, of one content type and at most `max` bytes, until `exp`. The
//! audience claim keeps these tokens apart from any other JWT signed with the
//! same secret; the method claim keeps a GET token from being used to upload
//! and the other way round.

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::object_key::{ObjectKey, ObjectKind};

/// The `aud` claim of every storage token.
pub(crate) const AUDIENCE: &str = "kyc-api:files";
const METHOD_GET: &str = "GET";
const METHOD_POST: &str = "POST";

/// The shortest signing secret accepted (HS256 wants at least 256 bits).
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    aud: String,
    method: String,
    key: String,
    /// Content type the upload must declare (POST only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ct: Option<String>,
    /// Largest upload accepted, in bytes (POST only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<u64>,
    /// The object's own key, sealed by the server's key ring (GET of a
    /// sealed copy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Well signed and for this request, but past its expiry.
    #[error("the signature has expired")]
    Expired,
    /// Malformed, tampered with, signed with another secret, or naming
    /// another key or method.
    #[error("the signature is invalid")]
    Invalid,
}

/// What a verified POST token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    pub key: ObjectKey,
    /// The exact `Content-Type` the form must declare.
    pub content_type: String,
    pub max_bytes: u64,
}

/// Signs and verifies storage tokens with one HS256 secret.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    pub(crate) fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SIGNING_KEY_BYTES {
            return Err(format!(
                "the file-signing key must be at least {MIN_SIGNING_KEY_BYTES} bytes long (got {})",
                secret.len()
            ));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    pub(crate) fn sign_get(
        &self,
        key: &ObjectKey,
        sealed_secret: Option<String>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign(&Claims {
            aud: AUDIENCE.into(),
            method: METHOD_GET.into(),
            key: key.as_str().into(),
            ct: None,
            max: None,
            k: sealed_secret,
            exp: expires_at.timestamp(),
        })
    }

    pub(crate) fn sign_post(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign(&Claims {
            aud: AUDIENCE.into(),
            method: METHOD_POST.into(),
            key: key.as_str().into(),
            ct: Some(key.content_type().as_str().into()),
            max: Some(max_bytes),
            k: None,
            exp: expires_at.timestamp(),
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Checks that `token` lets its bearer read exactly `key` now. `key` is
    /// the key as the request wrote it, compared byte for byte.
    /// Also answers the sealed object key the token carries, if any.
    pub(crate) fn verify_get(
        &self,
        token: &str,
        key: &str,
    ) -> Result<(ObjectKey, Option<String>), TokenError> {
        let claims = self.decode(token)?;
        if claims.method != METHOD_GET || claims.key != key {
            return Err(TokenError::Invalid);
        }
        let key = ObjectKey::parse(&claims.key).map_err(|_| TokenError::Invalid)?;
        Ok((key, claims.k))
    }

    /// Checks that `token` is an unexpired upload policy and returns what it allows.
    pub(crate) fn verify_post(&self, token: &str) -> Result<UploadGrant, TokenError> {
        let claims = self.decode(token)?;
        let (METHOD_POST, Some(content_type), Some(max_bytes)) =
            (claims.method.as_str(), claims.ct, claims.max)
        else {
            return Err(TokenError::Invalid);
        };
        let key = ObjectKey::parse(&claims.key).map_err(|_| TokenError::Invalid)?;
        // Only the server writes evidence; a policy naming it is not ours.
        if key.kind() != ObjectKind::Upload {
            return Err(TokenError::Invalid);
        }
        Ok(UploadGrant {
            key,
            content_type,
            max_bytes,
        })
    }

    fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        // Signature first, then claims: a tampered, expired token is "invalid".
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use chrono::Duration;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signer() -> TokenSigner {
        TokenSigner::new(SECRET).unwrap()
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new_upload(&crate::domain::ids::AppId::new(), name)
            .unwrap()
            .0
    }

    fn soon() -> DateTime<Utc> {
        Utc::now() + Duration::minutes(5)
    }

    fn past() -> DateTime<Utc> {
        Utc::now() - Duration::seconds(5)
    }

    /// Replaces the payload of a token, keeping its header and signature.
    fn with_payload(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        edit(&mut payload);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        format!("{}.{payload}.{}", parts[0], parts[2])
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = TokenSigner::new(b"short").unwrap_err();
        assert!(err.contains("at least 32 bytes"), "{err}");
    }

    #[test]
    fn get_token_round_trip() {
        let s = signer();
        let k = key("a.png");
        let t = s.sign_get(&k, None, soon()).unwrap();
        assert_eq!(s.verify_get(&t, k.as_str()), Ok((k, None)));
    }

    #[test]
    fn post_token_round_trip() {
        let s = signer();
        let k = key("a.pdf");
        let t = s.sign_post(&k, 1234, soon()).unwrap();
        let grant = s.verify_post(&t).unwrap();
        assert_eq!(grant.key, k);
        assert_eq!(grant.content_type, "application/pdf");
        assert_eq!(grant.max_bytes, 1234);
    }

    #[test]
    fn expired_tokens_say_expired() {
        let s = signer();
        let k = key("a.png");
        let t = s.sign_get(&k, None, past()).unwrap();
        assert_eq!(s.verify_get(&t, k.as_str()), Err(TokenError::Expired));
        let t = s.sign_post(&k, 10, past()).unwrap();
        assert_eq!(s.verify_post(&t), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_tokens_are_invalid() {
        let s = signer();
        let k = key("a.png");
        let other = key("b.png");
        let t = s.sign_get(&k, None, soon()).unwrap();
        // Payload swapped to another key: the signature no longer matches.
        let forged = with_payload(&t, |p| p["key"] = other.as_str().into());
        assert_eq!(
            s.verify_get(&forged, other.as_str()),
            Err(TokenError::Invalid)
        );
        // Expiry pushed back on an expired token: invalid, not expired.
        let old = s.sign_get(&k, None, past()).unwrap();
        let forged = with_payload(&old, |p| p["exp"] = (Utc::now().timestamp() + 3600).into());
        assert_eq!(s.verify_get(&forged, k.as_str()), Err(TokenError::Invalid));
        // Upload size raised.
        let post = s.sign_post(&k, 10, soon()).unwrap();
        let forged = with_payload(&post, |p| p["max"] = 1_000_000.into());
        assert_eq!(s.verify_post(&forged), Err(TokenError::Invalid));
        // A flipped signature character, garbage, the empty string.
        let mut bytes = t.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(s.verify_get(&flipped, k.as_str()), Err(TokenError::Invalid));
        for junk in ["", "abc", "a.b.c", "..", &t[..t.len() / 2]] {
            assert_eq!(
                s.verify_get(junk, k.as_str()),
                Err(TokenError::Invalid),
                "{junk}"
            );
            assert_eq!(s.verify_post(junk), Err(TokenError::Invalid), "{junk}");
        }
    }

    #[test]
    fn other_secrets_and_algorithms_are_invalid() {
        let k = key("a.png");
        let t = TokenSigner::new(b"another secret of at least 32 bytes!!")
            .unwrap()
            .sign_get(&k, None, soon())
            .unwrap();
        assert_eq!(
            signer().verify_get(&t, k.as_str()),
            Err(TokenError::Invalid)
        );
        // alg=none with the right claims.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let good = signer().sign_get(&k, None, soon()).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        let none = format!("{header}.{payload}.");
        assert_eq!(
            signer().verify_get(&none, k.as_str()),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn tokens_name_exactly_one_key() {
        let s = signer();
        let k = key("a.png");
        let t = s.sign_get(&k, None, soon()).unwrap();
        assert_eq!(
            s.verify_get(&t, key("a.png").as_str()),
            Err(TokenError::Invalid)
        );
        assert_eq!(s.verify_get(&t, &format!("{k}/")), Err(TokenError::Invalid));
        assert_eq!(s.verify_get(&t, ""), Err(TokenError::Invalid));
    }

    #[test]
    fn tokens_name_exactly_one_method() {
        let s = signer();
        let k = key("a.png");
        let get = s.sign_get(&k, None, soon()).unwrap();
        let post = s.sign_post(&k, 10, soon()).unwrap();
        assert_eq!(s.verify_post(&get), Err(TokenError::Invalid));
        assert_eq!(s.verify_get(&post, k.as_str()), Err(TokenError::Invalid));
    }

    #[test]
    fn tokens_for_another_audience_are_invalid() {
        let k = key("a.png");
        let claims = Claims {
            aud: "something-else".into(),
            method: METHOD_GET.into(),
            key: k.as_str().into(),
            ct: None,
            max: None,
            k: None,
            exp: soon().timestamp(),
        };
        let t = signer().sign(&claims).unwrap();
        assert_eq!(
            signer().verify_get(&t, k.as_str()),
            Err(TokenError::Invalid)
        );
    }
}
