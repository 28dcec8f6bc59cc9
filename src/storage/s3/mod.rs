//! The `s3://<bucket>[/<prefix>]` backend: any S3-compatible service through
//! aws-sdk-s3 (presigned GET, HEAD, GET) and a SigV4-signed browser POST
//! policy (signed with aws-sigv4's signing-key and signature functions).
//!
//! Objects are stored at `<prefix>/<key>` (or `<key>` without a prefix).
//! URLs: path-style `<endpoint>/<bucket>/<prefix>/<key>` when a custom
//! endpoint or path-style addressing is configured (with path-style on AWS the
//! endpoint is `https://s3.<region>.amazonaws.com`), else virtual-hosted
//! `https://<bucket>.s3.<region>.amazonaws.com/<prefix>/<key>`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::timeout::TimeoutConfig;
use std::sync::Arc;

use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::Client;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use url::Url;

use super::{ObjectUrlMatch, PresignedGet, PresignedPost, StorageError};
use crate::domain::object_key::ObjectKey;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";

/// How to reach the bucket. With [`S3Settings::from_env`] these come from:
///
/// | field                | source                                                  |
/// |----------------------|---------------------------------------------------------|
/// | `bucket`, `prefix`   | `KYC_STORAGE=s3://<bucket>[/<prefix>]`                  |
/// | `region`             | `AWS_REGION` (else `AWS_DEFAULT_REGION`); unset: aws-config's region chain (profile, instance metadata) |
/// | `static_credentials` | `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`); unset: aws-config's default credential chain (shared profile files, SSO, web identity, ECS task role, EC2 instance profile) |
/// | `endpoint_url`       | `AWS_ENDPOINT_URL`; optional (MinIO, R2, s3s-fs, …)      |
/// | `force_path_style`   | `KYC_S3_FORCE_PATH_STYLE` = `true`/`false`/`1`/`0`; default false |
///
/// Empty variables count as unset.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub static_credentials: Option<StaticCredentials>,
    pub force_path_style: bool,
    /// `KYC_S3_SSE` (`AES256` or `aws:kms`, with `KYC_S3_KMS_KEY_ID`):
    /// the server-side encryption every upload form and sealed copy asks
    /// for (the bucket can then deny anything else).
    pub server_side_encryption: Option<ServerSideEncryption>,
}

/// Server-side encryption S3 applies to the objects we write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// SSE-S3.
    Aes256,
    /// SSE-KMS, with the bucket's default key or this one.
    Kms { key_id: Option<String> },
}

impl ServerSideEncryption {
    fn header_value(&self) -> &'static str {
        match self {
            ServerSideEncryption::Aes256 => "AES256",
            ServerSideEncryption::Kms { .. } => "aws:kms",
        }
    }

    fn kms_key_id(&self) -> Option<&str> {
        match self {
            ServerSideEncryption::Kms { key_id } => key_id.as_deref(),
            ServerSideEncryption::Aes256 => None,
        }
    }

    fn parse(sse: Option<String>, kms_key_id: Option<String>) -> Result<Option<Self>, String> {
        match (sse.as_deref(), kms_key_id) {
            (None, None) => Ok(None),
            (Some("AES256"), None) => Ok(Some(ServerSideEncryption::Aes256)),
            (Some("aws:kms"), key_id) => Ok(Some(ServerSideEncryption::Kms { key_id })),
            (None | Some("AES256"), Some(_)) => {
                Err("KYC_S3_KMS_KEY_ID needs KYC_S3_SSE=aws:kms".into())
            }
            (Some(other), _) => Err(format!(
                "KYC_S3_SSE must be AES256 or aws:kms, got {other:?}"
            )),
        }
    }
}

/// Keys given in the environment.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Settings {
    /// Settings for `bucket`/`prefix` (from [`super::parse_storage_url`]) with
    /// the rest read from the process environment (see the table above).
    pub fn from_env(bucket: impl Into<String>, prefix: Option<String>) -> Result<Self, String> {
        Self::from_lookup(bucket, prefix, |name| std::env::var(name).ok())
    }

    /// [`S3Settings::from_env`] with variables read through `var`.
    pub fn from_lookup(
        bucket: impl Into<String>,
        prefix: Option<String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let force_path_style = match get("KYC_S3_FORCE_PATH_STYLE")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(format!(
                    "KYC_S3_FORCE_PATH_STYLE must be true or false, got {other:?}"
                ))
            }
        };
        let static_credentials = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(StaticCredentials {
                access_key_id,
                secret_access_key,
                session_token: get("AWS_SESSION_TOKEN"),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither to use the default credential chain".into(),
                )
            }
            (None, Some(_)) => {
                return Err(
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither to use the default credential chain".into(),
                )
            }
        };
        Ok(Self {
            bucket: bucket.into(),
            prefix,
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            endpoint_url: get("AWS_ENDPOINT_URL"),
            static_credentials,
            force_path_style,
            server_side_encryption: ServerSideEncryption::parse(
                get("KYC_S3_SSE"),
                get("KYC_S3_KMS_KEY_ID"),
            )?,
        })
    }
}

/// Where the bucket is addressed.
#[derive(Debug, Clone)]
enum Addressing {
    /// `<base>/<bucket>/…`; `base` has no trailing slash.
    Path { base: Url },
    /// `https://<bucket>.s3.<region>.amazonaws.com/…`
    VirtualAws,
}

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    settings: S3Settings,
    /// The resolved region (settings, else aws-config's chain).
    region: String,
    endpoint: Option<Url>,
    addressing: Addressing,
    /// What signs the upload forms: the client's own provider, read
    /// through [`S3Store::credentials`]'s cache.
    credentials: SharedCredentialsProvider,
    cached_credentials: Arc<tokio::sync::Mutex<Option<Credentials>>>,
}

/// Credentials are refreshed this long before they expire.
const CREDENTIAL_REFRESH_MARGIN: Duration = Duration::from_secs(300);

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Resolves what the settings leave to aws-config (the region and the
    /// credential chain, which may read profile files but makes no request
    /// yet), then [`S3Store::new_with`].
    pub async fn connect(settings: S3Settings) -> Result<Self, StorageError> {
        let region = match &settings.region {
            Some(region) => region.clone(),
            None => aws_config::default_provider::region::DefaultRegionChain::builder()
                .build()
                .region()
                .await
                .map(|r| r.to_string())
                .ok_or_else(|| {
                    StorageError::Config(
                        "no AWS region: set AWS_REGION or a region in the AWS profile".into(),
                    )
                })?,
        };
        let credentials = match &settings.static_credentials {
            Some(keys) => SharedCredentialsProvider::new(static_credentials(keys)),
            None => SharedCredentialsProvider::new(
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .region(Region::new(region.clone()))
                    .build()
                    .await,
            ),
        };
        Self::new_with(settings, region, credentials)
    }

    /// Checks settings that name their region and keys, and builds the
    /// client (no network access).
    pub fn new(settings: S3Settings) -> Result<Self, StorageError> {
        let (Some(region), Some(keys)) = (&settings.region, &settings.static_credentials) else {
            return Err(StorageError::Config(
                "S3Store::new needs a region and static credentials; use connect".into(),
            ));
        };
        let credentials = SharedCredentialsProvider::new(static_credentials(keys));
        Self::new_with(settings.clone(), region.clone(), credentials)
    }

    fn new_with(
        settings: S3Settings,
        region: String,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, StorageError> {
        let config = |msg: String| StorageError::Config(msg);
        super::validate_bucket(&settings.bucket).map_err(config)?;
        if let Some(prefix) = &settings.prefix {
            super::validate_prefix(prefix).map_err(config)?;
        }
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(config(format!("{region:?} is not a valid AWS region name")));
        }
        if let Some(keys) = &settings.static_credentials {
            if keys.access_key_id.is_empty() || keys.secret_access_key.is_empty() {
                return Err(config(
                    "the S3 access key id and secret access key must not be empty".into(),
                ));
            }
        }
        let endpoint = match &settings.endpoint_url {
            None => None,
            Some(raw) => {
                let mut url = Url::parse(raw)
                    .map_err(|e| config(format!("S3 endpoint URL {raw:?} is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || url.query().is_some()
                    || url.fragment().is_some()
                {
                    return Err(config(format!(
                        "S3 endpoint URL {raw:?} must be an http:// or https:// URL with a host and no query"
                    )));
                }
                let path = url.path().trim_end_matches('/').to_owned();
                url.set_path(&path);
                Some(url)
            }
        };
        let addressing = match (&endpoint, settings.force_path_style) {
            (Some(base), _) => Addressing::Path { base: base.clone() },
            (None, true) => Addressing::Path {
                base: Url::parse(&format!("https://s3.{region}.amazonaws.com")).map_err(|e| {
                    config(format!("region {region:?} gives no valid endpoint: {e}"))
                })?,
            },
            (None, false) => Addressing::VirtualAws,
        };

        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .credentials_provider(credentials.clone())
            .force_path_style(settings.force_path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(url) = &settings.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        let client = Client::from_conf(builder.build());
        Ok(Self {
            client,
            settings,
            region,
            endpoint,
            addressing,
            credentials,
            cached_credentials: Arc::default(),
        })
    }

    /// The credentials that sign upload forms: cached until shortly before
    /// they expire (the SDK caches its own for its requests), so a role's
    /// temporary keys are fetched once per rotation, not once per form.
    async fn credentials(&self) -> Result<Credentials, StorageError> {
        let mut cached = self.cached_credentials.lock().await;
        if let Some(credentials) = cached.as_ref() {
            let fresh = credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + CREDENTIAL_REFRESH_MARGIN);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials =
            self.credentials.provide_credentials().await.map_err(|e| {
                StorageError::backend(anyhow::Error::new(e).context("AWS credentials"))
            })?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// The SDK client (for bucket administration in tools and tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.settings.bucket
    }

    /// The object's key inside the bucket.
    fn full_key(&self, key: &ObjectKey) -> String {
        match &self.settings.prefix {
            Some(prefix) => format!("{prefix}/{key}"),
            None => key.as_str().to_owned(),
        }
    }

    fn bucket_url(&self) -> String {
        match &self.addressing {
            Addressing::Path { base } => format!(
                "{}/{}",
                base.as_str().trim_end_matches('/'),
                self.settings.bucket
            ),
            Addressing::VirtualAws => format!(
                "https://{}.s3.{}.amazonaws.com",
                self.settings.bucket, self.region
            ),
        }
    }

    pub fn object_url(&self, key: &ObjectKey) -> String {
        // Keys and prefixes hold only URL-safe characters.
        format!("{}/{}", self.bucket_url(), self.full_key(key))
    }

    /// The URL the upload form is posted to.
    pub fn post_url(&self) -> String {
        match &self.addressing {
            Addressing::Path { .. } => self.bucket_url(),
            Addressing::VirtualAws => format!("{}/", self.bucket_url()),
        }
    }

    pub(crate) async fn presign_post_until(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<PresignedPost, StorageError> {
        let credentials = self.credentials().await?;
        let form = PostForm {
            bucket: &self.settings.bucket,
            key: &self.full_key(key),
            content_type: key.content_type().as_str(),
            max_bytes,
            access_key_id: credentials.access_key_id(),
            region: &self.region,
            session_token: credentials.session_token(),
            server_side_encryption: self.settings.server_side_encryption.as_ref(),
            now,
            expires_at,
        };
        let (policy, mut fields) = form.policy();
        let policy_b64 = BASE64.encode(serde_json::to_vec(&policy).map_err(StorageError::backend)?);
        let signing_key = aws_sigv4::sign::v4::generate_signing_key(
            credentials.secret_access_key(),
            SystemTime::from(now),
            &self.region,
            SERVICE,
        );
        let signature =
            aws_sigv4::sign::v4::calculate_signature(signing_key, policy_b64.as_bytes());
        fields.insert("policy".into(), policy_b64);
        fields.insert("x-amz-signature".into(), signature);
        Ok(PresignedPost {
            url: self.post_url(),
            fields,
            object_url: self.object_url(key),
            expires_at,
        })
    }

    pub(crate) async fn presign_get(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        expires_at: DateTime<Utc>,
    ) -> Result<PresignedGet, StorageError> {
        let config =
            PresigningConfig::expires_in(ttl).map_err(|e| StorageError::Config(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key))
            .presigned(config)
            .await
            .map_err(|e| StorageError::backend(anyhow::Error::new(e).context("presigning GET")))?;
        Ok(PresignedGet {
            url: request.uri().to_owned(),
            expires_at,
        })
    }

    /// The bucket answers and these credentials may use it (HEAD bucket).
    pub async fn check(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.settings.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                StorageError::backend(
                    anyhow::Error::new(e).context(format!("HEAD s3://{}", self.settings.bucket)),
                )
            })
    }

    pub async fn exists(&self, key: &ObjectKey) -> Result<bool, StorageError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(e) => Err(StorageError::backend(anyhow::Error::new(e).context(
                format!("HEAD s3://{}/{}", self.settings.bucket, self.full_key(key)),
            ))),
        }
    }

    /// Deletes an object; deleting one that is not there succeeds (S3's
    /// own answer).
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                StorageError::backend(anyhow::Error::new(e).context(format!(
                    "DELETE s3://{}/{}",
                    self.settings.bucket,
                    self.full_key(key)
                )))
            })
    }

    pub async fn read(&self, key: &ObjectKey) -> Result<Vec<u8>, StorageError> {
        let context = || format!("GET s3://{}/{}", self.settings.bucket, self.full_key(key));
        let result = self
            .client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(StorageError::NotFound)
            }
            Err(e) => {
                return Err(StorageError::backend(
                    anyhow::Error::new(e).context(context()),
                ))
            }
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| StorageError::backend(anyhow::Error::new(e).context(context())))?;
        Ok(body.into_bytes().to_vec())
    }

    /// Copies the upload `upload` to `sealed` inside the bucket (CopyObject:
    /// the bytes never leave S3). An upload form stays usable until it
    /// expires and S3 POST policies cannot forbid overwriting, so the
    /// copy, under a key no form names, is what keeps evidence unchanged.
    /// [`StorageError::NotFound`] if no upload is there.
    pub async fn seal(&self, upload: &ObjectKey, sealed: &ObjectKey) -> Result<(), StorageError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let bucket = &self.settings.bucket;
        // Keys hold only URL-safe characters (`ObjectKey`), and so do
        // bucket names and prefixes: the copy source needs no encoding.
        let source = format!("{bucket}/{}", self.full_key(upload));
        let mut copy = self
            .client
            .copy_object()
            .bucket(bucket)
            .copy_source(&source)
            .key(self.full_key(sealed));
        if let Some(sse) = &self.settings.server_side_encryption {
            copy = copy
                .server_side_encryption(sse.header_value().into())
                .set_ssekms_key_id(sse.kms_key_id().map(str::to_owned));
        }
        let result = copy.send().await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("NoSuchKey") => {
                Err(StorageError::NotFound)
            }
            Err(e) => Err(StorageError::backend(
                anyhow::Error::new(e).context(format!("COPY s3://{source}")),
            )),
        }
    }

    pub fn parse_object_url(&self, url: &str) -> ObjectUrlMatch {
        let Ok(parsed) = Url::parse(url) else {
            return ObjectUrlMatch::External;
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return ObjectUrlMatch::External;
        }
        let Some(host) = parsed.host_str().map(str::to_ascii_lowercase) else {
            return ObjectUrlMatch::External;
        };
        let bucket = &self.settings.bucket;
        let path = parsed.path();
        // The object's key in the bucket, if the URL is into our bucket.
        let in_bucket: Option<&str> = match &self.endpoint {
            Some(endpoint) => {
                let virtual_host = format!(
                    "{bucket}.{}",
                    endpoint.host_str().unwrap_or_default().to_ascii_lowercase()
                );
                if super::same_host_and_port(&parsed, endpoint) {
                    strip_bucket(path, endpoint.path().trim_end_matches('/'), bucket)
                } else if host == virtual_host
                    && parsed.port_or_known_default() == endpoint.port_or_known_default()
                {
                    Some(path.strip_prefix('/').unwrap_or(path))
                } else {
                    None
                }
            }
            None => {
                let region = &self.region;
                let virtual_hosts = [
                    format!("{bucket}.s3.{region}.amazonaws.com"),
                    format!("{bucket}.s3.amazonaws.com"),
                    format!("{bucket}.s3-{region}.amazonaws.com"),
                ];
                let path_hosts = [
                    format!("s3.{region}.amazonaws.com"),
                    "s3.amazonaws.com".to_owned(),
                ];
                if virtual_hosts.contains(&host) {
                    Some(path.strip_prefix('/').unwrap_or(path))
                } else if path_hosts.contains(&host) {
                    strip_bucket(path, "", bucket)
                } else {
                    None
                }
            }
        };
        let Some(in_bucket) = in_bucket else {
            return ObjectUrlMatch::External;
        };
        if super::has_suspicious_path(url) {
            return ObjectUrlMatch::Invalid;
        }
        let key = match &self.settings.prefix {
            Some(prefix) => in_bucket
                .strip_prefix(prefix.as_str())
                .and_then(|k| k.strip_prefix('/')),
            None => Some(in_bucket),
        };
        match key.map(ObjectKey::parse) {
            Some(Ok(key)) => ObjectUrlMatch::Ours(key),
            _ => ObjectUrlMatch::Invalid,
        }
    }
}

/// The path after `<base>/<bucket>/`, if the path is into that bucket.
fn strip_bucket<'a>(path: &'a str, base: &str, bucket: &str) -> Option<&'a str> {
    let rest = path
        .strip_prefix(base)?
        .strip_prefix('/')?
        .strip_prefix(bucket)?;
    match rest {
        "" => Some(""),
        _ => rest.strip_prefix('/'),
    }
}

/// The inputs of a SigV4 browser POST form.
struct PostForm<'a> {
    bucket: &'a str,
    /// The full key in the bucket (with prefix).
    key: &'a str,
    content_type: &'a str,
    max_bytes: u64,
    access_key_id: &'a str,
    region: &'a str,
    session_token: Option<&'a str>,
    server_side_encryption: Option<&'a ServerSideEncryption>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl PostForm<'_> {
    /// The policy document and the form fields it covers (all but `policy`
    /// and `x-amz-signature`). Every field sent is named by a condition.
    fn policy(&self) -> (Value, BTreeMap<String, String>) {
        let amz_date = self.now.format("%Y%m%dT%H%M%SZ").to_string();
        let credential = format!(
            "{}/{}/{}/{SERVICE}/aws4_request",
            self.access_key_id,
            self.now.format("%Y%m%d"),
            self.region
        );
        let mut conditions = vec![
            json!({ "bucket": self.bucket }),
            json!(["eq", "$key", self.key]),
            json!(["eq", "$Content-Type", self.content_type]),
            json!(["content-length-range", 1, self.max_bytes]),
            json!({ "x-amz-algorithm": ALGORITHM }),
            json!({ "x-amz-credential": credential }),
            json!({ "x-amz-date": amz_date }),
        ];
        let mut fields = BTreeMap::from([
            ("key".to_owned(), self.key.to_owned()),
            ("Content-Type".to_owned(), self.content_type.to_owned()),
            ("x-amz-algorithm".to_owned(), ALGORITHM.to_owned()),
            ("x-amz-credential".to_owned(), credential),
            ("x-amz-date".to_owned(), amz_date),
        ]);
        if let Some(token) = self.session_token {
            conditions.push(json!({ "x-amz-security-token": token }));
            fields.insert("x-amz-security-token".into(), token.to_owned());
        }
        if let Some(sse) = self.server_side_encryption {
            let mut field = |name: &str, value: &str| {
                conditions.push(json!({ name: value }));
                fields.insert(name.to_owned(), value.to_owned());
            };
            field("x-amz-server-side-encryption", sse.header_value());
            if let Some(key_id) = sse.kms_key_id() {
                field("x-amz-server-side-encryption-aws-kms-key-id", key_id);
            }
        }
        let policy = json!({
            "expiration": self.expires_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "conditions": conditions,
        });
        (policy, fields)
    }
}

#[cfg(test)]
mod tests;

fn static_credentials(keys: &StaticCredentials) -> Credentials {
    Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "kyc-api",
    )
}
