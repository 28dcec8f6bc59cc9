//! Object storage for identity documents and face images.
//!
//! These files are the most sensitive data the API holds, so:
//! - nobody gets their bytes without a short-lived signature: uploads go
//!   through a presigned POST form ([`Storage::presign_post`]), downloads
//!   through a presigned GET URL ([`Storage::presign_get`]);
//! - no app reaches another app's files: every key is
//!   `apps/<appId>/documents/<uuid>.<ext>` ([`ObjectKey`]), made by the server,
//!   never from a client's filename. A URL a client sends back is resolved
//!   with [`Storage::parse_object_url`]; the caller must check the key's
//!   [`ObjectKey::app_id`] (or use [`ObjectUrlMatch::owned_by`]).
//!
//! Two backends, chosen by `KYC_STORAGE` ([`parse_storage_url`]):
//! - `local:<dir>` ([`LocalStore`]): files on disk, served by the API itself
//!   under `/files/` (mount `crate::routes::files::configure`), signed with
//!   HS256 JWTs;
//! - `s3://<bucket>[/<prefix>]` ([`S3Store`]): any S3-compatible service,
//!   SigV4-presigned URLs and POST policies ([`S3Settings::from_env`]).
//!
//! The app holds one [`Storage`] (cheap to construct, synchronous) and shares
//! it with the handlers as `web::Data<Storage>`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::ids::AppId;
use chrono::{DateTime, SubsecRound, Utc};
use url::Url;

pub mod local;
pub mod s3;
mod token;

pub use crate::domain::object_key::{
    ContentType, InvalidObjectKey, ObjectKey, ObjectKind, UnsupportedFileType,
};
pub use crate::domain::sealed_object::ObjectSecret;
pub use local::{LocalStore, UploadError};
pub use s3::{S3Settings, S3Store, StaticCredentials};
pub use token::{TokenError, UploadGrant, MIN_SIGNING_KEY_BYTES};

/// A key ring for tests of the storage layer.
#[cfg(test)]
pub(crate) fn test_ring() -> std::sync::Arc<crate::domain::crypto::KeyRing> {
    std::sync::Arc::new(crate::domain::crypto::KeyRing::single("test", &[7; 32]).unwrap())
}

/// The longest a presigned URL or POST policy may live (SigV4's limit).
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object under that key.
    #[error("object not found")]
    NotFound,
    /// The storage is misconfigured (bad URL, bucket name, key, TTL…).
    #[error("storage configuration: {0}")]
    Config(String),
    /// The disk or the S3 service failed; retrying may help.
    #[error("storage backend failure")]
    Backend(#[source] anyhow::Error),
}

impl StorageError {
    pub(crate) fn backend(e: impl Into<anyhow::Error>) -> Self {
        StorageError::Backend(e.into())
    }
}

/// A browser-style upload form: POST `url` as `multipart/form-data` with
/// every entry of `fields` (in any order), then the file as the last part,
/// named `file`. Valid until `expires_at`, for one key, its content type and
/// 1..=max_bytes bytes. On success the object is at `object_url` (the URL a
/// client puts into `documents[].url` / `faceImages[]`); the answer is 204
/// (locally and from S3 by default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedPost {
    pub url: String,
    pub fields: BTreeMap<String, String>,
    pub object_url: String,
    pub expires_at: DateTime<Utc>,
}

/// A URL that lets its bearer GET one object until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedGet {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// What a URL sent by a client is, as far as our storage is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectUrlMatch {
    /// It points at this object of our storage (query and fragment ignored).
    /// The key may belong to any app: check [`ObjectKey::app_id`].
    Ours(ObjectKey),
    /// It points into our storage (our bucket, or this API's own host when
    /// local) but not at a valid key: "not a valid document in our storage".
    Invalid,
    /// Anything else: another host, another bucket, not a URL at all.
    External,
}

impl ObjectUrlMatch {
    /// Turns a key of another app into [`ObjectUrlMatch::Invalid`], so that
    /// other apps' files are indistinguishable from non-existent ones.
    pub fn owned_by(self, app_id: &AppId) -> ObjectUrlMatch {
        match self {
            ObjectUrlMatch::Ours(key) if key.app_id() != app_id => ObjectUrlMatch::Invalid,
            other => other,
        }
    }
}

/// The storage of the app: one of the two backends.
#[derive(Debug, Clone)]
pub enum Storage {
    Local(LocalStore),
    /// Boxed: the client and its settings are twice the local store's size.
    S3(Box<S3Store>),
}

impl Storage {
    /// See [`LocalStore::new`].
    pub fn local(
        dir: impl Into<PathBuf>,
        public_base_url: &str,
        signing_key: &[u8],
        ring: std::sync::Arc<crate::domain::crypto::KeyRing>,
    ) -> Result<Self, StorageError> {
        LocalStore::new(dir, public_base_url, signing_key, ring).map(Storage::Local)
    }

    /// See [`S3Store::connect`].
    pub async fn s3(settings: S3Settings) -> Result<Self, StorageError> {
        S3Store::connect(settings)
            .await
            .map(|store| Storage::S3(Box::new(store)))
    }

    pub fn as_local(&self) -> Option<&LocalStore> {
        match self {
            Storage::Local(local) => Some(local),
            Storage::S3(_) => None,
        }
    }

    /// An upload form for `key`, valid for `ttl` (at most [`MAX_PRESIGN_TTL`],
    /// whole seconds), accepting 1..=`max_bytes` bytes of the key's content type.
    pub async fn presign_post(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        max_bytes: u64,
    ) -> Result<PresignedPost, StorageError> {
        if max_bytes == 0 {
            return Err(StorageError::Config(
                "the upload size limit must be at least 1 byte".into(),
            ));
        }
        if key.kind() != ObjectKind::Upload {
            return Err(StorageError::Config(format!(
                "{key} is sealed evidence: no upload form may name it"
            )));
        }
        let expires_at = expiry(ttl)?;
        match self {
            Storage::Local(local) => local.presign_post_until(key, max_bytes, expires_at),
            Storage::S3(s3) => {
                s3.presign_post_until(key, max_bytes, Utc::now(), expires_at)
                    .await
            }
        }
    }

    /// A download URL for `key`, valid for `ttl` (at most [`MAX_PRESIGN_TTL`]).
    /// It does not check that the object exists.
    /// `secret`: a local sealed copy's own key (S3 needs none).
    pub async fn presign_get(
        &self,
        key: &ObjectKey,
        secret: Option<&ObjectSecret>,
        ttl: Duration,
    ) -> Result<PresignedGet, StorageError> {
        let expires_at = expiry(ttl)?;
        match self {
            Storage::Local(local) => local.presign_get_until(key, secret, expires_at),
            Storage::S3(s3) => s3.presign_get(key, ttl, expires_at).await,
        }
    }

    /// The storage can be reached: the directory exists, or the bucket
    /// answers a HEAD.
    pub async fn check(&self) -> Result<(), StorageError> {
        match self {
            Storage::Local(local) => local.check().await,
            Storage::S3(s3) => s3.check().await,
        }
    }

    /// The key a document attaching `key` stores: for an upload, a sealed
    /// copy made now under a fresh evidence key (which no upload form can
    /// name, so the document's bytes never change afterwards, even if the
    /// upload form is posted again before it expires); for an evidence key
    /// (a document URL sent back as answered), the same key once it is
    /// found. [`StorageError::NotFound`] when there is nothing to attach.
    /// With the local backend a fresh sealed copy also answers its own key
    /// (`domain::sealed_object`), which only the document's row keeps.
    pub async fn seal(
        &self,
        key: &ObjectKey,
    ) -> Result<(ObjectKey, Option<ObjectSecret>), StorageError> {
        if key.kind() == ObjectKind::Evidence {
            return match self.exists(key).await? {
                true => Ok((key.clone(), None)),
                false => Err(StorageError::NotFound),
            };
        }
        let sealed = key.evidence_copy();
        let secret = match self {
            Storage::Local(local) => local.seal(key, &sealed).await?,
            Storage::S3(s3) => {
                s3.seal(key, &sealed).await?;
                None
            }
        };
        Ok((sealed, secret))
    }

    /// Whether an object is stored under `key` (HEAD).
    pub async fn exists(&self, key: &ObjectKey) -> Result<bool, StorageError> {
        match self {
            Storage::Local(local) => local.exists(key).await,
            Storage::S3(s3) => s3.exists(key).await,
        }
    }

    /// Deletes an object for good (erasure); an absent one counts as
    /// deleted, so a retried erasure succeeds.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self {
            Storage::Local(local) => local.delete(key).await,
            Storage::S3(s3) => s3.delete(key).await,
        }
    }

    /// The whole object; [`StorageError::NotFound`] if absent.
    pub async fn read(&self, key: &ObjectKey) -> Result<Vec<u8>, StorageError> {
        match self {
            Storage::Local(local) => local.read(key).await,
            Storage::S3(s3) => s3.read(key).await,
        }
    }

    /// The unsigned URL of an object (what clients store in
    /// `documents[].url` / `faceImages[]`); fetching it needs a signature.
    pub fn object_url(&self, key: &ObjectKey) -> String {
        match self {
            Storage::Local(local) => local.object_url(key),
            Storage::S3(s3) => s3.object_url(key),
        }
    }

    /// Recognizes a URL into our storage (the form [`Storage::object_url`]
    /// makes, with or without a query such as a presigned URL's).
    pub fn parse_object_url(&self, url: &str) -> ObjectUrlMatch {
        match self {
            Storage::Local(local) => local.parse_object_url(url),
            Storage::S3(s3) => s3.parse_object_url(url),
        }
    }
}

/// `now + ttl`, to the second, checking the TTL's range.
fn expiry(ttl: Duration) -> Result<DateTime<Utc>, StorageError> {
    if ttl < Duration::from_secs(1) || ttl > MAX_PRESIGN_TTL {
        return Err(StorageError::Config(format!(
            "a presign TTL must be between 1 second and 7 days, got {ttl:?}"
        )));
    }
    let ttl = chrono::Duration::from_std(ttl).map_err(|e| StorageError::Config(e.to_string()))?;
    Ok((Utc::now() + ttl).trunc_subsecs(0))
}

/// Where `KYC_STORAGE` says objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageLocation {
    /// `local:<dir>`
    Local { dir: PathBuf },
    /// `s3://<bucket>[/<prefix>]` (prefix without leading or trailing `/`)
    S3 {
        bucket: String,
        prefix: Option<String>,
    },
}

impl fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageLocation::Local { dir } => write!(f, "local:{}", dir.display()),
            StorageLocation::S3 {
                bucket,
                prefix: None,
            } => write!(f, "s3://{bucket}"),
            StorageLocation::S3 {
                bucket,
                prefix: Some(prefix),
            } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Parses a `KYC_STORAGE` value: `local:<dir>` or `s3://<bucket>[/<prefix>]`.
pub fn parse_storage_url(s: &str) -> Result<StorageLocation, String> {
    const EXPECTED: &str = "expected `local:<dir>` or `s3://<bucket>[/<prefix>]`";
    if let Some(dir) = s.strip_prefix("local:") {
        if dir.trim().is_empty() {
            return Err(format!("storage {s:?} names no directory; {EXPECTED}"));
        }
        return Ok(StorageLocation::Local {
            dir: PathBuf::from(dir),
        });
    }
    if let Some(rest) = s.strip_prefix("s3://") {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((bucket, prefix)) => (bucket, prefix.trim_end_matches('/')),
            None => (rest, ""),
        };
        validate_bucket(bucket).map_err(|e| format!("storage {s:?}: {e}"))?;
        let prefix = if prefix.is_empty() {
            None
        } else {
            validate_prefix(prefix).map_err(|e| format!("storage {s:?}: {e}"))?;
            Some(prefix.to_owned())
        };
        return Ok(StorageLocation::S3 {
            bucket: bucket.to_owned(),
            prefix,
        });
    }
    Err(format!("unknown storage {s:?}; {EXPECTED}"))
}

/// S3 bucket naming rules (the portable subset).
pub(crate) fn validate_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = bucket.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && bucket.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    if (3..=63).contains(&bucket.len()) && ok_chars && ok_ends && !bucket.contains("..") {
        Ok(())
    } else {
        Err(format!(
            "{bucket:?} is not a valid bucket name (3 to 63 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        ))
    }
}

/// A key prefix: `/`-separated segments of letters, digits, `-`, `_`, `.`,
/// none empty, `.` or `..`.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{prefix:?} is not a valid key prefix (segments of letters, digits, '-', '_' and '.', separated by '/')"
        ))
    }
}

/// Whether two URLs name the same host and port.
pub(crate) fn same_host_and_port(a: &Url, b: &Url) -> bool {
    matches!((a.host_str(), b.host_str()), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y))
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A URL (before its query) with anything that URL normalization or a server
/// could turn into another path: dot segments, percent-escapes, backslashes.
/// None of our object URLs contain these.
pub(crate) fn has_suspicious_path(url: &str) -> bool {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let head = &url[..end];
    head.contains("..") || head.contains('%') || head.contains('\\')
}

/// Every file below `dir`, for tests that check what storage left on disk.
#[cfg(test)]
pub(crate) fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_parse() {
        assert_eq!(
            parse_storage_url("local:./data/files").unwrap(),
            StorageLocation::Local {
                dir: "./data/files".into()
            }
        );
        assert_eq!(
            parse_storage_url("local:/var/lib/kyc").unwrap(),
            StorageLocation::Local {
                dir: "/var/lib/kyc".into()
            }
        );
        assert_eq!(
            parse_storage_url("s3://kyc-docs").unwrap(),
            StorageLocation::S3 {
                bucket: "kyc-docs".into(),
                prefix: None
            }
        );
        assert_eq!(
            parse_storage_url("s3://kyc-docs/").unwrap(),
            StorageLocation::S3 {
                bucket: "kyc-docs".into(),
                prefix: None
            }
        );
        assert_eq!(
            parse_storage_url("s3://kyc.docs-1/prod/v1/").unwrap(),
            StorageLocation::S3 {
                bucket: "kyc.docs-1".into(),
                prefix: Some("prod/v1".into())
            }
        );
        for s in ["local:/x", "s3://abc", "s3://abc/p_q/r.s"] {
            assert_eq!(parse_storage_url(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_storage_urls_say_what_is_expected() {
        for (s, needle) in [
            ("", "expected `local:<dir>` or `s3://<bucket>[/<prefix>]`"),
            ("/var/lib/kyc", "unknown storage"),
            ("file:///tmp", "unknown storage"),
            ("s3:/bucket", "unknown storage"),
            ("S3://bucket", "unknown storage"),
            ("gs://bucket", "unknown storage"),
            ("local:", "names no directory"),
            ("local:  ", "names no directory"),
            ("s3://", "not a valid bucket name"),
            ("s3://ab", "not a valid bucket name"),
            ("s3://My-Bucket", "not a valid bucket name"),
            ("s3://bucket_x", "not a valid bucket name"),
            ("s3://-bucket", "not a valid bucket name"),
            ("s3://a..b", "not a valid bucket name"),
            ("s3://user@bucket", "not a valid bucket name"),
            ("s3://bucket:9000", "not a valid bucket name"),
            ("s3://bucket?x=1", "not a valid bucket name"),
            ("s3://bucket/../x", "not a valid key prefix"),
            ("s3://bucket/a//b", "not a valid key prefix"),
            ("s3://bucket/a/./b", "not a valid key prefix"),
            ("s3://bucket/a b", "not a valid key prefix"),
            ("s3://bucket/a%2f", "not a valid key prefix"),
            ("s3://bucket/a?x", "not a valid key prefix"),
        ] {
            let err = parse_storage_url(s).unwrap_err();
            assert!(err.contains(needle), "{s:?}: {err}");
        }
    }

    #[test]
    fn owned_by_hides_other_apps_keys() {
        let mine = AppId::new();
        let (key, _) = ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "a.png").unwrap();
        assert_eq!(
            ObjectUrlMatch::Ours(key.clone()).owned_by(&mine),
            ObjectUrlMatch::Invalid
        );
        assert_eq!(
            ObjectUrlMatch::Ours(key.clone()).owned_by(key.app_id()),
            ObjectUrlMatch::Ours(key)
        );
        assert_eq!(
            ObjectUrlMatch::External.owned_by(&mine),
            ObjectUrlMatch::External
        );
        assert_eq!(
            ObjectUrlMatch::Invalid.owned_by(&mine),
            ObjectUrlMatch::Invalid
        );
    }

    #[test]
    fn ttls_are_bounded() {
        assert!(expiry(Duration::from_millis(999)).is_err());
        assert!(expiry(MAX_PRESIGN_TTL + Duration::from_secs(1)).is_err());
        let at = expiry(Duration::from_secs(300)).unwrap();
        let secs = (at - Utc::now()).num_seconds();
        assert!((298..=300).contains(&secs), "{secs}");
        assert_eq!(at.timestamp_subsec_nanos(), 0);
    }

    fn local_storage(dir: &std::path::Path) -> Storage {
        Storage::local(
            dir,
            "http://127.0.0.1:1",
            b"0123456789abcdef0123456789abcdef",
            test_ring(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn sealing_makes_an_evidence_copy_no_form_can_name() {
        let dir = tempfile::tempdir().unwrap();
        let storage = local_storage(dir.path());
        let (upload, _) = ObjectKey::new_upload(&AppId::new(), "a.pdf").unwrap();
        assert!(matches!(
            storage.seal(&upload).await,
            Err(StorageError::NotFound)
        ));
        let local = storage.as_local().unwrap();
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(
            bytes::Bytes::from_static(b"%PDF"),
        )]);
        local.write_stream(&upload, 10, body).await.unwrap();

        let (sealed, secret) = storage.seal(&upload).await.unwrap();
        assert_eq!(sealed.kind(), ObjectKind::Evidence);
        assert_eq!(sealed.app_id(), upload.app_id());
        // Stored sealed, without its key; its key opens it.
        let secret = secret.expect("a local sealed copy has its own key");
        assert_ne!(storage.read(&sealed).await.unwrap(), b"%PDF");
        assert!(matches!(
            local.read_clear(&sealed, None).await,
            Err(StorageError::NotFound)
        ));
        assert_eq!(
            local.read_clear(&sealed, Some(&secret)).await.unwrap(),
            b"%PDF"
        );
        // An evidence key seals to itself; a missing one is not found.
        assert_eq!(storage.seal(&sealed).await.unwrap(), (sealed.clone(), None));
        assert!(matches!(
            storage.seal(&sealed.evidence_copy()).await,
            Err(StorageError::NotFound)
        ));
        // No upload form is ever made for it.
        assert!(matches!(
            storage
                .presign_post(&sealed, Duration::from_secs(60), 10)
                .await,
            Err(StorageError::Config(_))
        ));
    }

    #[tokio::test]
    async fn storage_dispatches_to_local() {
        let dir = tempfile::tempdir().unwrap();
        let storage = local_storage(dir.path());
        assert!(storage.as_local().is_some());
        let (key, _) = ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "a.png").unwrap();
        assert!(!storage.exists(&key).await.unwrap());
        assert!(matches!(
            storage.read(&key).await,
            Err(StorageError::NotFound)
        ));
        assert!(storage
            .presign_post(&key, Duration::from_secs(60), 0)
            .await
            .is_err());
        let post = storage
            .presign_post(&key, Duration::from_secs(60), 10)
            .await
            .unwrap();
        assert_eq!(post.object_url, storage.object_url(&key));
        let get = storage
            .presign_get(&key, None, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(get
            .url
            .starts_with(&format!("{}?token=", storage.object_url(&key))));
        assert_eq!(
            storage.parse_object_url(&storage.object_url(&key)),
            ObjectUrlMatch::Ours(key)
        );
        let json = serde_json::to_value(&post).unwrap();
        assert!(
            json.get("objectUrl").is_some() && json.get("expiresAt").is_some(),
            "{json}"
        );
    }
}
