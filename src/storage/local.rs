//! The `local:<dir>` backend: files on disk, served by the API itself under
//! `/files/` (see `crate::routes::files`), signed with HS256 JWTs.
//!
//! Layout: `<dir>/apps/<appId>/documents/<uuid>.<ext>` (the key is the
//! relative path; keys are validated, so they never leave `<dir>`), and
//! `<dir>/.incoming/` for uploads in progress, renamed into place only when
//! complete. Directories are created 0700 and files 0600.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use url::Url;
use uuid::Uuid;

use super::token::{TokenError, TokenSigner, UploadGrant};
use super::{ObjectUrlMatch, PresignedGet, PresignedPost, StorageError};
use crate::domain::crypto::KeyRing;
use crate::domain::object_key::ObjectKey;
use crate::domain::sealed_object::{self, ObjectSecret, SealedKind};

/// The associated data of an object's key inside a download token.
fn download_context(key: &str) -> Vec<u8> {
    format!("downloads/{key}").into_bytes()
}

/// Directory under the root for uploads in progress.
const INCOMING: &str = ".incoming";

/// Why a streamed upload was not stored. Nothing is left on disk in any case.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than the {max_bytes} bytes the policy allows")]
    TooLarge { max_bytes: u64 },
    #[error("the file is empty")]
    Empty,
    /// The key already holds an upload: KYC evidence is write-once.
    #[error("the object was already uploaded")]
    AlreadyUploaded,
    /// The client's body stream failed (disconnect, malformed multipart).
    #[error("reading the upload failed: {0}")]
    Body(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// An object opened for reading.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// The API's public base URL, without a trailing slash.
    base: Url,
    signer: TokenSigner,
    /// Seals uploads' keys in their files and object keys in download
    /// tokens (`domain::sealed_object`).
    ring: Arc<KeyRing>,
}

impl LocalStore {
    /// `root`: the directory (created now if missing); `public_base_url`: how
    /// clients reach this API, e.g. `http://127.0.0.1:8080` or
    /// `https://kyc.example.com/api` (the `/files` routes must be mounted
    /// under it); `signing_key`: HS256 secret for the file tokens, at least
    /// 32 bytes.
    pub fn new(
        root: impl Into<PathBuf>,
        public_base_url: &str,
        signing_key: &[u8],
        ring: Arc<KeyRing>,
    ) -> Result<Self, StorageError> {
        let root = root.into();
        let mut base = Url::parse(public_base_url).map_err(|e| {
            StorageError::Config(format!(
                "public base URL {public_base_url:?} is not a URL: {e}"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(StorageError::Config(format!(
                "public base URL {public_base_url:?} must be an http:// or https:// URL with a host"
            )));
        }
        if base.query().is_some()
            || base.fragment().is_some()
            || !base.username().is_empty()
            || base.password().is_some()
        {
            return Err(StorageError::Config(format!(
                "public base URL {public_base_url:?} must not have a query, fragment or credentials"
            )));
        }
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&path);
        let signer = TokenSigner::new(signing_key).map_err(StorageError::Config)?;
        create_private_dir_sync(&root).map_err(|e| {
            StorageError::Config(format!(
                "cannot create storage directory {}: {e}",
                root.display()
            ))
        })?;
        Ok(Self {
            root,
            base,
            signer,
            ring,
        })
    }

    /// The directory is there and is a directory.
    pub async fn check(&self) -> Result<(), StorageError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(StorageError::backend(anyhow::anyhow!(
                "{} is not a directory",
                self.root.display()
            ))),
            Err(e) => Err(StorageError::backend(
                anyhow::Error::new(e).context(format!("reading {}", self.root.display())),
            )),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn base_str(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        // `ObjectKey` only holds `apps/<uuid>/documents/<uuid>.<ext>`.
        self.root.join(key.as_str())
    }

    pub fn object_url(&self, key: &ObjectKey) -> String {
        format!("{}/files/{}", self.base_str(), key.as_str())
    }

    /// URL of the upload route.
    pub fn upload_url(&self) -> String {
        format!("{}/files/upload", self.base_str())
    }

    pub(crate) fn presign_post_until(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<PresignedPost, StorageError> {
        let policy = self
            .signer
            .sign_post(key, max_bytes, expires_at)
            .map_err(|e| {
                StorageError::backend(anyhow::Error::new(e).context("signing upload policy"))
            })?;
        let fields = [
            ("key".to_owned(), key.as_str().to_owned()),
            (
                "Content-Type".to_owned(),
                key.content_type().as_str().to_owned(),
            ),
            ("policy".to_owned(), policy),
        ]
        .into_iter()
        .collect();
        Ok(PresignedPost {
            url: self.upload_url(),
            fields,
            object_url: self.object_url(key),
            expires_at,
        })
    }

    /// A download URL; `secret` (a sealed copy's key) travels sealed by
    /// the ring inside the signed token, so serving needs no database.
    pub(crate) fn presign_get_until(
        &self,
        key: &ObjectKey,
        secret: Option<&ObjectSecret>,
        expires_at: DateTime<Utc>,
    ) -> Result<PresignedGet, StorageError> {
        let sealed = secret.map(|s| s.seal_with_ring(&self.ring, &download_context(key.as_str())));
        let token = self.signer.sign_get(key, sealed, expires_at).map_err(|e| {
            StorageError::backend(anyhow::Error::new(e).context("signing download token"))
        })?;
        Ok(PresignedGet {
            url: format!("{}?token={token}", self.object_url(key)),
            expires_at,
        })
    }

    /// Verifies an upload form's `policy` field.
    pub fn verify_upload_policy(&self, policy: &str) -> Result<UploadGrant, TokenError> {
        self.signer.verify_post(policy)
    }

    /// Verifies a download `token` for the key as written in the request
    /// path: the key, and the object's own key when the token carries one.
    pub fn verify_download_token(
        &self,
        token: &str,
        key: &str,
    ) -> Result<(ObjectKey, Option<ObjectSecret>), TokenError> {
        let (key, sealed) = self.signer.verify_get(token, key)?;
        let secret = sealed
            .map(|sealed| {
                ObjectSecret::open_with_ring(&self.ring, &sealed, &download_context(key.as_str()))
            })
            .transpose()
            .map_err(|_| TokenError::Invalid)?;
        Ok((key, secret))
    }

    pub fn parse_object_url(&self, url: &str) -> ObjectUrlMatch {
        let Ok(parsed) = Url::parse(url) else {
            return ObjectUrlMatch::External;
        };
        if !super::same_host_and_port(&parsed, &self.base) {
            return ObjectUrlMatch::External;
        }
        // It points at this API: it is one of our objects or nothing.
        let prefix = format!("{}/files/", self.base.path().trim_end_matches('/'));
        match parsed.path().strip_prefix(&prefix) {
            Some(key) if !super::has_suspicious_path(url) => match ObjectKey::parse(key) {
                Ok(key) => ObjectUrlMatch::Ours(key),
                Err(_) => ObjectUrlMatch::Invalid,
            },
            _ => ObjectUrlMatch::Invalid,
        }
    }

    pub async fn exists(&self, key: &ObjectKey) -> Result<bool, StorageError> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StorageError::backend(
                anyhow::Error::new(e).context(format!("stat {key}")),
            )),
        }
    }

    /// Makes `sealed` a sealed copy of the upload `upload`: the same
    /// ciphertext without the key the upload's file carries; the key is
    /// answered, for the document's row. An upload written before
    /// encryption at rest gets a second name (a hard link) and no key.
    /// [`StorageError::NotFound`] if no upload is there.
    pub async fn seal(
        &self,
        upload: &ObjectKey,
        sealed: &ObjectKey,
    ) -> Result<Option<ObjectSecret>, StorageError> {
        let io = |e: std::io::Error| {
            StorageError::backend(anyhow::Error::new(e).context(format!("sealing {upload}")))
        };
        let file = self.read(upload).await?;
        if sealed_object::kind_of(&file) == SealedKind::Clear {
            let target = self.path_of(sealed);
            if let Some(parent) = target.parent() {
                create_private_dir(parent).await.map_err(io)?;
            }
            return match tokio::fs::hard_link(self.path_of(upload), &target).await {
                Ok(()) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound),
                Err(e) => Err(io(e)),
            };
        }
        let (secret, evidence) =
            sealed_object::evidence_of_upload(&self.ring, upload.as_str(), &file).map_err(|e| {
                StorageError::backend(anyhow::anyhow!("the upload {upload} does not open: {e}"))
            })?;
        self.write_new(sealed, &evidence).await?;
        Ok(Some(secret))
    }

    /// The clear bytes of an object to serve: a sealed copy opened with
    /// `secret`, an upload opened with the ring, a file from before
    /// encryption at rest as it is. A sealed copy without its key is
    /// [`StorageError::NotFound`] (nothing can be served).
    pub async fn read_clear(
        &self,
        key: &ObjectKey,
        secret: Option<&ObjectSecret>,
    ) -> Result<Vec<u8>, StorageError> {
        let file = self.read(key).await?;
        let opened = match (sealed_object::kind_of(&file), secret) {
            (SealedKind::Clear, _) => return Ok(file),
            (SealedKind::Evidence, Some(secret)) => sealed_object::open_evidence(secret, &file),
            (SealedKind::Evidence, None) => return Err(StorageError::NotFound),
            (SealedKind::Upload, _) => sealed_object::open_upload(&self.ring, key.as_str(), &file),
        };
        opened.map_err(|e| StorageError::backend(anyhow::anyhow!("{key} does not open: {e}")))
    }

    /// Writes a new object at once (temporary file, then a link that never
    /// replaces an existing object).
    async fn write_new(&self, key: &ObjectKey, bytes: &[u8]) -> Result<(), StorageError> {
        match self.place(key, bytes).await {
            Ok(()) => Ok(()),
            Err(UploadError::Storage(e)) => Err(e),
            Err(other) => Err(StorageError::backend(anyhow::anyhow!(
                "writing {key}: {other}"
            ))),
        }
    }

    /// Deletes an object; one that is not there counts as deleted.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::backend(
                anyhow::Error::new(e).context(format!("delete {key}")),
            )),
        }
    }

    /// The object's file as stored (sealed, or from before encryption at
    /// rest); [`StorageError::NotFound`] if absent.
    pub async fn read(&self, key: &ObjectKey) -> Result<Vec<u8>, StorageError> {
        match tokio::fs::read(self.path_of(key)).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound),
            Err(e) => Err(StorageError::backend(
                anyhow::Error::new(e).context(format!("read {key}")),
            )),
        }
    }

    /// Stores `body` as the upload `key`, sealed (`domain::sealed_object`),
    /// refusing more than `max_bytes` and empty bodies. The object appears
    /// (atomically, never replacing an existing one) only once the whole
    /// body is written; on any failure nothing is left behind. Returns the
    /// number of clear bytes stored.
    pub async fn write_stream<S, E>(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
        body: S,
    ) -> Result<u64, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        // Cheap refusal before reading the body; the link in `place` is what
        // guarantees it when two uploads race.
        if tokio::fs::try_exists(self.path_of(key))
            .await
            .unwrap_or(false)
        {
            return Err(UploadError::AlreadyUploaded);
        }
        // The whole body is sealed as one message: it is read into memory,
        // bounded by `max_bytes`.
        let mut clear = Vec::new();
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
            if (clear.len() + chunk.len()) as u64 > max_bytes {
                return Err(UploadError::TooLarge { max_bytes });
            }
            clear.extend_from_slice(&chunk);
        }
        if clear.is_empty() {
            return Err(UploadError::Empty);
        }
        let sealed = sealed_object::seal_upload(&self.ring, key.as_str(), &clear);
        self.place(key, &sealed).await?;
        Ok(clear.len() as u64)
    }

    /// Writes `bytes` as the object `key`: a private temporary file,
    /// synced, then linked into place; the object appears whole or not at
    /// all, and never replaces an existing one.
    async fn place(&self, key: &ObjectKey, bytes: &[u8]) -> Result<(), UploadError> {
        let io = |what: &str, e: std::io::Error| {
            UploadError::Storage(StorageError::backend(
                anyhow::Error::new(e).context(format!("{what} for {key}")),
            ))
        };
        let target = self.path_of(key);
        let incoming = self.root.join(INCOMING);
        create_private_dir(&incoming)
            .await
            .map_err(|e| io("creating upload directory", e))?;
        let temp = TempFile {
            path: incoming.join(format!("{}.part", Uuid::new_v4())),
        };
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options
            .open(&temp.path)
            .await
            .map_err(|e| io("creating temp file", e))?;
        file.write_all(bytes).await.map_err(|e| io("writing", e))?;
        file.sync_all().await.map_err(|e| io("syncing", e))?;
        drop(file);

        if let Some(parent) = target.parent() {
            create_private_dir(parent)
                .await
                .map_err(|e| io("creating directory", e))?;
        }
        // A hard link never replaces an existing file (a rename would): the
        // first complete upload of a key wins and stays. The temporary name
        // is removed when `temp` drops.
        match tokio::fs::hard_link(&temp.path, &target).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(UploadError::AlreadyUploaded)
            }
            Err(e) => Err(io("moving upload into place", e)),
        }
    }
}

/// Removes its file when dropped.
struct TempFile {
    path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn create_private_dir_sync(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

async fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::files_under;
    use futures_util::stream;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn store(dir: &Path, base: &str) -> LocalStore {
        LocalStore::new(dir.join("files"), base, SECRET, crate::storage::test_ring()).unwrap()
    }

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::copy_from_slice(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn constructor_checks_its_arguments() {
        let dir = tempfile::tempdir().unwrap();
        for base in [
            "",
            "127.0.0.1:8080",
            "ftp://x",
            "http://h/?q=1",
            "http://u:p@h/",
            "http://h/#f",
        ] {
            let err =
                LocalStore::new(dir.path(), base, SECRET, crate::storage::test_ring()).unwrap_err();
            assert!(matches!(err, StorageError::Config(_)), "{base}: {err}");
        }
        let err = LocalStore::new(
            dir.path(),
            "http://h",
            b"short",
            crate::storage::test_ring(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        let s = LocalStore::new(
            dir.path().join("a/b"),
            "https://kyc.example.com/api/",
            SECRET,
            crate::storage::test_ring(),
        )
        .unwrap();
        assert!(dir.path().join("a/b").is_dir());
        let (key, _) = ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "x.png").unwrap();
        assert_eq!(
            s.object_url(&key),
            format!("https://kyc.example.com/api/files/{key}")
        );
        assert_eq!(s.upload_url(), "https://kyc.example.com/api/files/upload");
    }

    #[test]
    fn object_urls_round_trip_and_others_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "http://127.0.0.1:8080");
        let (key, _) = ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "x.png").unwrap();
        let url = s.object_url(&key);
        assert_eq!(url, format!("http://127.0.0.1:8080/files/{key}"));
        assert_eq!(s.parse_object_url(&url), ObjectUrlMatch::Ours(key.clone()));
        // A presigned URL still names the object.
        let signed = s.presign_get_until(&key, None, Utc::now()).unwrap().url;
        assert_eq!(
            s.parse_object_url(&signed),
            ObjectUrlMatch::Ours(key.clone())
        );
        for external in [
            "https://example.com/files/".to_owned(),
            format!("http://127.0.0.1:8081/files/{key}"),
            format!("http://localhost:8080/files/{key}"),
            "not a url".to_owned(),
            format!("https://bucket.s3.amazonaws.com/{key}"),
        ] {
            assert_eq!(
                s.parse_object_url(&external),
                ObjectUrlMatch::External,
                "{external}"
            );
        }
        let app = key.app_id();
        for invalid in [
            "http://127.0.0.1:8080/identities/1".to_owned(),
            "http://127.0.0.1:8080/files/upload".to_owned(),
            "http://127.0.0.1:8080/files/".to_owned(),
            format!("http://127.0.0.1:8080/files/apps/{app}/documents/passport.png"),
            format!("http://127.0.0.1:8080/files/apps/{app}/documents/../../x/{key}"),
            format!("http://127.0.0.1:8080/files/apps/x/../{key}"),
            format!("http://127.0.0.1:8080/files/apps/x/%2e%2e/{key}"),
            format!("http://127.0.0.1:8080/x/../files/{key}"),
            format!(
                "http://127.0.0.1:8080/files/{}",
                key.as_str().replace('/', "%2F")
            ),
            format!("http://127.0.0.1:8080/files/{key}/extra"),
            format!("http://127.0.0.1:8080/files\\{key}"),
        ] {
            assert_eq!(
                s.parse_object_url(&invalid),
                ObjectUrlMatch::Invalid,
                "{invalid}"
            );
        }
    }

    #[test]
    fn base_path_is_respected_when_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "https://kyc.example.com/api");
        let (key, _) = ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "x.pdf").unwrap();
        assert_eq!(
            s.parse_object_url(&s.object_url(&key)),
            ObjectUrlMatch::Ours(key.clone())
        );
        assert_eq!(
            s.parse_object_url(&format!("https://kyc.example.com/files/{key}")),
            ObjectUrlMatch::Invalid
        );
    }

    #[test]
    fn presigned_post_names_the_key_and_its_content_type() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "http://127.0.0.1:9");
        let (key, _) = ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "x.jpeg").unwrap();
        let at = Utc::now() + chrono::Duration::minutes(5);
        let post = s.presign_post_until(&key, 99, at).unwrap();
        assert_eq!(post.url, "http://127.0.0.1:9/files/upload");
        assert_eq!(post.object_url, s.object_url(&key));
        assert_eq!(post.expires_at, at);
        let names: Vec<&str> = post.fields.keys().map(String::as_str).collect();
        assert_eq!(names, ["Content-Type", "key", "policy"]);
        assert_eq!(post.fields["key"], key.as_str());
        assert_eq!(post.fields["Content-Type"], "image/jpeg");
        let grant = s.verify_upload_policy(&post.fields["policy"]).unwrap();
        assert_eq!(grant.key, key);
        assert_eq!(grant.max_bytes, 99);
        assert_eq!(grant.content_type, "image/jpeg");
    }

    #[tokio::test]
    async fn write_stream_stores_atomically_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "http://127.0.0.1:9");
        let (key, _) = ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "x.png").unwrap();
        assert!(!s.exists(&key).await.unwrap());
        assert!(matches!(s.read(&key).await, Err(StorageError::NotFound)));

        let err = s
            .write_stream(&key, 4, chunks(&[b"ab", b"cde"]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadError::TooLarge { max_bytes: 4 }),
            "{err}"
        );
        let err = s.write_stream(&key, 4, chunks(&[])).await.unwrap_err();
        assert!(matches!(err, UploadError::Empty), "{err}");
        let failing = stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("client went away")),
        ]);
        let err = s.write_stream(&key, 4, failing).await.unwrap_err();
        assert!(matches!(err, UploadError::Body(_)), "{err}");
        assert!(!s.exists(&key).await.unwrap());
        assert_eq!(
            files_under(s.root()),
            Vec::<PathBuf>::new(),
            "failed uploads leave nothing"
        );

        assert_eq!(
            s.write_stream(&key, 4, chunks(&[b"ab", b"cd"]))
                .await
                .unwrap(),
            4
        );
        assert!(s.exists(&key).await.unwrap());
        // Stored sealed; read back clear.
        let stored = s.read(&key).await.unwrap();
        assert!(!stored.windows(4).any(|w| w == b"abcd"));
        assert_eq!(s.read_clear(&key, None).await.unwrap(), b"abcd");
        assert_eq!(files_under(s.root()), vec![s.root().join(key.as_str())]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(s.root().join(key.as_str()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
