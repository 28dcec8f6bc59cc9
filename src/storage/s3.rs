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
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::Client;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use url::Url;

use super::key::ObjectKey;
use super::{ObjectUrlMatch, PresignedGet, PresignedPost, StorageError};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";

/// How to reach the bucket. With [`S3Settings::from_env`] these come from:
///
/// | field               | source                                                  |
/// |---------------------|---------------------------------------------------------|
/// | `bucket`, `prefix`  | `KYC_STORAGE=s3://<bucket>[/<prefix>]`                  |
/// | `region`            | `AWS_REGION` (else `AWS_DEFAULT_REGION`); required       |
/// | `access_key_id`     | `AWS_ACCESS_KEY_ID`; required                            |
/// | `secret_access_key` | `AWS_SECRET_ACCESS_KEY`; required                        |
/// | `session_token`     | `AWS_SESSION_TOKEN`; optional                            |
/// | `endpoint_url`      | `AWS_ENDPOINT_URL`; optional (MinIO, R2, s3s-fs, …)      |
/// | `force_path_style`  | `KYC_S3_FORCE_PATH_STYLE` = `true`/`false`/`1`/`0`; default false |
///
/// Empty variables count as unset.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub prefix: Option<String>,
    pub region: String,
    pub endpoint_url: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub force_path_style: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("force_path_style", &self.force_path_style)
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
        let required = |name: &str, what: &str| {
            get(name).ok_or_else(|| format!("{name} is not set: the S3 storage needs {what}"))
        };
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                "AWS_REGION is not set: the S3 storage needs the bucket's region (e.g. us-east-1)"
                    .to_owned()
            })?;
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
        Ok(Self {
            bucket: bucket.into(),
            prefix,
            region,
            endpoint_url: get("AWS_ENDPOINT_URL"),
            access_key_id: required("AWS_ACCESS_KEY_ID", "an access key id")?,
            secret_access_key: required("AWS_SECRET_ACCESS_KEY", "a secret access key")?,
            session_token: get("AWS_SESSION_TOKEN"),
            force_path_style,
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
    endpoint: Option<Url>,
    addressing: Addressing,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Checks the settings and builds the client (no network access).
    pub fn new(settings: S3Settings) -> Result<Self, StorageError> {
        let config = |msg: String| StorageError::Config(msg);
        super::validate_bucket(&settings.bucket).map_err(config)?;
        if let Some(prefix) = &settings.prefix {
            super::validate_prefix(prefix).map_err(config)?;
        }
        let region_ok = !settings.region.is_empty()
            && settings
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(config(format!(
                "{:?} is not a valid AWS region name",
                settings.region
            )));
        }
        if settings.access_key_id.is_empty() || settings.secret_access_key.is_empty() {
            return Err(config(
                "the S3 access key id and secret access key must not be empty".into(),
            ));
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
                base: Url::parse(&format!("https://s3.{}.amazonaws.com", settings.region))
                    .map_err(|e| {
                        config(format!(
                            "region {:?} gives no valid endpoint: {e}",
                            settings.region
                        ))
                    })?,
            },
            (None, false) => Addressing::VirtualAws,
        };

        let credentials = Credentials::new(
            &settings.access_key_id,
            &settings.secret_access_key,
            settings.session_token.clone(),
            None,
            "kyc-api",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
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
            endpoint,
            addressing,
        })
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
                self.settings.bucket, self.settings.region
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

    pub(crate) fn presign_post_until(
        &self,
        key: &ObjectKey,
        max_bytes: u64,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<PresignedPost, StorageError> {
        let form = PostForm {
            bucket: &self.settings.bucket,
            key: &self.full_key(key),
            content_type: key.content_type().as_str(),
            max_bytes,
            access_key_id: &self.settings.access_key_id,
            region: &self.settings.region,
            session_token: self.settings.session_token.as_deref(),
            now,
            expires_at,
        };
        let (policy, mut fields) = form.policy();
        let policy_b64 = BASE64.encode(serde_json::to_vec(&policy).map_err(StorageError::backend)?);
        let signing_key = aws_sigv4::sign::v4::generate_signing_key(
            &self.settings.secret_access_key,
            SystemTime::from(now),
            &self.settings.region,
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
                let region = &self.settings.region;
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
        let policy = json!({
            "expiration": self.expires_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "conditions": conditions,
        });
        (policy, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn settings() -> S3Settings {
        S3Settings {
            bucket: "kyc-docs".into(),
            prefix: None,
            region: "eu-west-1".into(),
            endpoint_url: None,
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            force_path_style: false,
        }
    }

    fn key() -> ObjectKey {
        ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "scan.png")
            .unwrap()
            .0
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn settings_from_env() {
        let full = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("AWS_SESSION_TOKEN", "TOK"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("KYC_S3_FORCE_PATH_STYLE", "TRUE"),
        ];
        let s = S3Settings::from_lookup("b", Some("p".into()), env(&full)).unwrap();
        assert_eq!(
            (s.bucket.as_str(), s.prefix.as_deref(), s.region.as_str()),
            ("b", Some("p"), "eu-west-1")
        );
        assert_eq!(
            (s.access_key_id.as_str(), s.secret_access_key.as_str()),
            ("AK", "SK")
        );
        assert_eq!(s.session_token.as_deref(), Some("TOK"));
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s.force_path_style);
        let debug = format!("{s:?}");
        assert!(!debug.contains("SK") && !debug.contains("TOK"), "{debug}");

        let minimal = [
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("AWS_ENDPOINT_URL", ""),
        ];
        let s = S3Settings::from_lookup("b", None, env(&minimal)).unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.endpoint_url, None);
        assert!(!s.force_path_style);
        assert_eq!(s.session_token, None);

        let missing = |drop: &str| {
            let vars: Vec<(&str, &str)> =
                full.iter().copied().filter(|(k, _)| *k != drop).collect();
            S3Settings::from_lookup("b", None, env(&vars)).unwrap_err()
        };
        assert!(missing("AWS_REGION").starts_with("AWS_REGION is not set"));
        assert!(missing("AWS_ACCESS_KEY_ID").starts_with("AWS_ACCESS_KEY_ID is not set"));
        assert!(missing("AWS_SECRET_ACCESS_KEY").starts_with("AWS_SECRET_ACCESS_KEY is not set"));
        let mut bad = full.to_vec();
        bad[5] = ("KYC_S3_FORCE_PATH_STYLE", "yes");
        let err = S3Settings::from_lookup("b", None, env(&bad)).unwrap_err();
        assert!(
            err.contains("KYC_S3_FORCE_PATH_STYLE must be true or false"),
            "{err}"
        );
    }

    #[test]
    fn constructor_checks_settings() {
        let bad: [fn(&mut S3Settings); 6] = [
            |s| s.bucket = "Bad_Bucket".into(),
            |s| s.prefix = Some("../x".into()),
            |s| s.region = "EU WEST".into(),
            |s| s.secret_access_key = String::new(),
            |s| s.endpoint_url = Some("localhost:9000".into()),
            |s| s.endpoint_url = Some("http://h:9000/?x=1".into()),
        ];
        for edit in bad {
            let mut s = settings();
            edit(&mut s);
            assert!(matches!(S3Store::new(s), Err(StorageError::Config(_))));
        }
    }

    #[test]
    fn urls_virtual_hosted_on_aws() {
        let store = S3Store::new(settings()).unwrap();
        let k = key();
        let url = store.object_url(&k);
        assert_eq!(
            url,
            format!("https://kyc-docs.s3.eu-west-1.amazonaws.com/{k}")
        );
        assert_eq!(
            store.post_url(),
            "https://kyc-docs.s3.eu-west-1.amazonaws.com/"
        );
        for ours in [
            url.clone(),
            format!("https://kyc-docs.s3.amazonaws.com/{k}"),
            format!("https://KYC-DOCS.S3.amazonaws.com/{k}"),
            format!("https://kyc-docs.s3-eu-west-1.amazonaws.com/{k}"),
            format!("https://s3.eu-west-1.amazonaws.com/kyc-docs/{k}"),
            format!("https://s3.amazonaws.com/kyc-docs/{k}"),
            format!("{url}?X-Amz-Signature=abc"),
        ] {
            assert_eq!(
                store.parse_object_url(&ours),
                ObjectUrlMatch::Ours(k.clone()),
                "{ours}"
            );
        }
        for external in [
            format!("https://other.s3.amazonaws.com/{k}"),
            format!("https://kyc-docs-2.s3.amazonaws.com/{k}"),
            format!("https://s3.amazonaws.com/other/{k}"),
            format!("https://s3.amazonaws.com/kyc-docs-2/{k}"),
            format!("https://kyc-docs.s3.evil.example/{k}"),
            format!("https://evil.example/kyc-docs/{k}"),
            "ftp://kyc-docs.s3.amazonaws.com/x".into(),
            "data:text/plain,hi".into(),
            "nonsense".into(),
        ] {
            assert_eq!(
                store.parse_object_url(&external),
                ObjectUrlMatch::External,
                "{external}"
            );
        }
        let app = k.app_id();
        for invalid in [
            "https://kyc-docs.s3.amazonaws.com/".to_owned(),
            "https://kyc-docs.s3.amazonaws.com/passport.png".to_owned(),
            format!("https://kyc-docs.s3.amazonaws.com/apps/{app}/documents/x.png"),
            format!("https://kyc-docs.s3.amazonaws.com/apps/{app}/documents/../../{k}"),
            format!("https://kyc-docs.s3.amazonaws.com/x/%2e%2e/{k}"),
            format!("https://kyc-docs.s3.amazonaws.com/{k}/x"),
            format!("https://kyc-docs.s3.amazonaws.com//{k}"),
            format!("https://s3.amazonaws.com/kyc-docs/x/../{k}"),
            "https://s3.amazonaws.com/kyc-docs".to_owned(),
        ] {
            assert_eq!(
                store.parse_object_url(&invalid),
                ObjectUrlMatch::Invalid,
                "{invalid}"
            );
        }
    }

    #[test]
    fn urls_path_style_with_endpoint_and_prefix() {
        let mut s = settings();
        s.endpoint_url = Some("http://127.0.0.1:9000/".into());
        s.prefix = Some("prod/v1".into());
        let store = S3Store::new(s).unwrap();
        let k = key();
        let url = store.object_url(&k);
        assert_eq!(url, format!("http://127.0.0.1:9000/kyc-docs/prod/v1/{k}"));
        assert_eq!(store.post_url(), "http://127.0.0.1:9000/kyc-docs");
        assert_eq!(
            store.parse_object_url(&url),
            ObjectUrlMatch::Ours(k.clone())
        );
        for external in [
            format!("http://127.0.0.1:9001/kyc-docs/prod/v1/{k}"),
            format!("http://127.0.0.1:9000/other/prod/v1/{k}"),
            format!("https://kyc-docs.s3.eu-west-1.amazonaws.com/prod/v1/{k}"),
        ] {
            assert_eq!(
                store.parse_object_url(&external),
                ObjectUrlMatch::External,
                "{external}"
            );
        }
        for invalid in [
            format!("http://127.0.0.1:9000/kyc-docs/{k}"),
            format!("http://127.0.0.1:9000/kyc-docs/prod/{k}"),
            format!("http://127.0.0.1:9000/kyc-docs/prod/v1x/{k}"),
            format!("http://127.0.0.1:9000/kyc-docs/prod/v1/../v1/{k}"),
        ] {
            assert_eq!(
                store.parse_object_url(&invalid),
                ObjectUrlMatch::Invalid,
                "{invalid}"
            );
        }

        // Virtual-hosted URLs on a named custom endpoint are recognized too.
        let mut s = settings();
        s.endpoint_url = Some("https://objects.example.com".into());
        let store = S3Store::new(s).unwrap();
        assert_eq!(
            store.object_url(&k),
            format!("https://objects.example.com/kyc-docs/{k}")
        );
        assert_eq!(
            store.parse_object_url(&format!("https://kyc-docs.objects.example.com/{k}")),
            ObjectUrlMatch::Ours(k.clone())
        );
        assert_eq!(
            store.parse_object_url(&format!("https://other.objects.example.com/{k}")),
            ObjectUrlMatch::External
        );

        let mut s = settings();
        s.force_path_style = true;
        let store = S3Store::new(s).unwrap();
        assert_eq!(
            store.object_url(&k),
            format!("https://s3.eu-west-1.amazonaws.com/kyc-docs/{k}")
        );
        assert_eq!(
            store.post_url(),
            "https://s3.eu-west-1.amazonaws.com/kyc-docs"
        );
    }

    #[test]
    fn post_policy_document_names_exactly_the_key_type_and_size() {
        let mut s = settings();
        s.prefix = Some("tenant-data".into());
        let store = S3Store::new(s).unwrap();
        let k = key();
        let now = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        let expires = now + chrono::Duration::minutes(10);
        let post = store
            .presign_post_until(&k, 5_000_000, now, expires)
            .unwrap();
        assert_eq!(post.url, "https://kyc-docs.s3.eu-west-1.amazonaws.com/");
        assert_eq!(post.object_url, store.object_url(&k));
        assert_eq!(post.expires_at, expires);
        let full_key = format!("tenant-data/{k}");
        let credential = "AKIDEXAMPLE/20300102/eu-west-1/s3/aws4_request";
        let names: Vec<&str> = post.fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "Content-Type",
                "key",
                "policy",
                "x-amz-algorithm",
                "x-amz-credential",
                "x-amz-date",
                "x-amz-signature"
            ]
        );
        assert_eq!(post.fields["key"], full_key);
        assert_eq!(post.fields["Content-Type"], "image/png");
        assert_eq!(post.fields["x-amz-algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(post.fields["x-amz-credential"], credential);
        assert_eq!(post.fields["x-amz-date"], "20300102T030405Z");
        let signature = &post.fields["x-amz-signature"];
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));

        let policy: Value =
            serde_json::from_slice(&BASE64.decode(&post.fields["policy"]).unwrap()).unwrap();
        assert_eq!(
            policy,
            json!({
                "expiration": "2030-01-02T03:14:05.000Z",
                "conditions": [
                    { "bucket": "kyc-docs" },
                    ["eq", "$key", full_key],
                    ["eq", "$Content-Type", "image/png"],
                    ["content-length-range", 1, 5_000_000],
                    { "x-amz-algorithm": "AWS4-HMAC-SHA256" },
                    { "x-amz-credential": credential },
                    { "x-amz-date": "20300102T030405Z" },
                ]
            })
        );

        // Same inputs, same signature; another secret, another signature.
        let again = store
            .presign_post_until(&k, 5_000_000, now, expires)
            .unwrap();
        assert_eq!(again.fields["x-amz-signature"], *signature);
        let mut other = settings();
        other.prefix = Some("tenant-data".into());
        other.secret_access_key = "another-secret".into();
        let other = S3Store::new(other).unwrap();
        let theirs = other
            .presign_post_until(&k, 5_000_000, now, expires)
            .unwrap();
        assert_eq!(theirs.fields["policy"], post.fields["policy"]);
        assert_ne!(theirs.fields["x-amz-signature"], *signature);
    }

    #[test]
    fn post_policy_carries_the_session_token() {
        let mut s = settings();
        s.session_token = Some("SESSION".into());
        let store = S3Store::new(s).unwrap();
        let now = Utc::now();
        let post = store
            .presign_post_until(&key(), 10, now, now + chrono::Duration::minutes(1))
            .unwrap();
        assert_eq!(post.fields["x-amz-security-token"], "SESSION");
        let policy: Value =
            serde_json::from_slice(&BASE64.decode(&post.fields["policy"]).unwrap()).unwrap();
        assert!(policy["conditions"]
            .as_array()
            .unwrap()
            .contains(&json!({ "x-amz-security-token": "SESSION" })));
    }

    /// Against a real S3-compatible server: only when `KYC_TEST_S3_ENDPOINT`
    /// is set (`.ci/s3-server.sh` starts s3s-fs and sets it).
    mod live {
        use super::*;
        use reqwest::multipart::{Form, Part};
        use reqwest::StatusCode;

        /// A store on a fresh bucket, or `None` (after saying so) when no
        /// server is configured.
        async fn fresh_store(test: &str) -> Option<S3Store> {
            let Ok(endpoint) = std::env::var("KYC_TEST_S3_ENDPOINT") else {
                // Straight to stderr, past the test harness's output capture,
                // so a skipped run is visible.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: KYC_TEST_S3_ENDPOINT is not set (source .ci/s3-server.sh to run the S3 tests)"
                );
                return None;
            };
            let var = |name: &str| {
                std::env::var(name)
                    .unwrap_or_else(|_| panic!("{name} must be set with KYC_TEST_S3_ENDPOINT"))
            };
            let bucket = format!("kyc-test-{}", Uuid::new_v4().simple());
            let store = S3Store::new(S3Settings {
                bucket: bucket.clone(),
                prefix: Some("tests/p".into()),
                region: "us-east-1".into(),
                endpoint_url: Some(endpoint),
                access_key_id: var("KYC_TEST_S3_ACCESS_KEY"),
                secret_access_key: var("KYC_TEST_S3_SECRET_KEY"),
                session_token: None,
                force_path_style: true,
            })
            .unwrap();
            store
                .client()
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .unwrap();
            Some(store)
        }

        fn form(fields: &BTreeMap<String, String>, file: Vec<u8>) -> Form {
            let mut form = Form::new();
            for (name, value) in fields {
                form = form.text(name.clone(), value.clone());
            }
            form.part("file", Part::bytes(file).file_name("upload.bin"))
        }

        async fn post(
            post: &PresignedPost,
            fields: &BTreeMap<String, String>,
            file: Vec<u8>,
        ) -> (StatusCode, String) {
            let response = reqwest::Client::new()
                .post(&post.url)
                .multipart(form(fields, file))
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }

        fn presign(store: &S3Store, key: &ObjectKey, max_bytes: u64) -> PresignedPost {
            let now = Utc::now();
            store
                .presign_post_until(key, max_bytes, now, now + chrono::Duration::minutes(5))
                .unwrap()
        }

        fn png(len: usize) -> Vec<u8> {
            (0..len).map(|i| (i * 7 % 251) as u8).collect()
        }

        #[tokio::test]
        async fn s3_upload_then_signed_download() {
            let Some(store) = fresh_store("s3_upload_then_signed_download").await else {
                return;
            };
            let storage = super::super::super::Storage::S3(store.clone());
            let (k, ct) =
                ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "face.PNG").unwrap();
            assert!(!storage.exists(&k).await.unwrap());
            let form_data = storage
                .presign_post(&k, Duration::from_secs(300), 1000)
                .unwrap();
            let bytes = png(1000);
            let (status, body) = post(&form_data, &form_data.fields, bytes.clone()).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            assert!(storage.exists(&k).await.unwrap());
            assert_eq!(storage.read(&k).await.unwrap(), bytes);
            assert_eq!(
                storage.parse_object_url(&form_data.object_url),
                ObjectUrlMatch::Ours(k.clone())
            );

            let get = storage
                .presign_get(&k, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(
                storage.parse_object_url(&get.url),
                ObjectUrlMatch::Ours(k.clone())
            );
            let response = reqwest::get(&get.url).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["content-type"], ct.as_str());
            assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);

            // Unsigned, the object URL gives nothing.
            let response = reqwest::get(&form_data.object_url).await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }

        #[tokio::test]
        async fn s3_missing_object() {
            let Some(store) = fresh_store("s3_missing_object").await else {
                return;
            };
            let k = key();
            assert!(!store.exists(&k).await.unwrap());
            assert!(matches!(store.read(&k).await, Err(StorageError::NotFound)));
            let get = store
                .presign_get(&k, Duration::from_secs(60), Utc::now())
                .await
                .unwrap();
            assert_eq!(
                reqwest::get(&get.url).await.unwrap().status(),
                StatusCode::NOT_FOUND
            );
        }

        #[tokio::test]
        async fn s3_expired_get_url_is_refused() {
            let Some(store) = fresh_store("s3_expired_get_url_is_refused").await else {
                return;
            };
            let k = key();
            let p = presign(&store, &k, 10);
            assert_eq!(post(&p, &p.fields, png(10)).await.0, StatusCode::NO_CONTENT);
            let get = store
                .presign_get(&k, Duration::from_secs(1), Utc::now())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2100)).await;
            let response = reqwest::get(&get.url).await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }

        #[tokio::test]
        async fn s3_tampered_signatures_are_refused() {
            let Some(store) = fresh_store("s3_tampered_signatures_are_refused").await else {
                return;
            };
            let k = key();
            let p = presign(&store, &k, 10);

            // Upload: flipped signature.
            let mut fields = p.fields.clone();
            let sig = fields.get_mut("x-amz-signature").unwrap();
            let flipped = if sig.starts_with('0') { "1" } else { "0" };
            sig.replace_range(0..1, flipped);
            let (status, body) = post(&p, &fields, png(5)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

            // Upload: policy rewritten to allow more bytes, signature kept.
            let mut fields = p.fields.clone();
            let mut policy: Value =
                serde_json::from_slice(&BASE64.decode(&fields["policy"]).unwrap()).unwrap();
            policy["conditions"][3] = json!(["content-length-range", 1, 1_000_000]);
            fields.insert(
                "policy".into(),
                BASE64.encode(serde_json::to_vec(&policy).unwrap()),
            );
            let (status, body) = post(&p, &fields, png(50)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert!(!store.exists(&k).await.unwrap());

            // Download: flipped signature.
            assert_eq!(post(&p, &p.fields, png(5)).await.0, StatusCode::NO_CONTENT);
            let get = store
                .presign_get(&k, Duration::from_secs(60), Utc::now())
                .await
                .unwrap();
            let mut url = Url::parse(&get.url).unwrap();
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(n, v)| {
                    let v = if n == "X-Amz-Signature" {
                        let flipped = if v.starts_with('0') { "1" } else { "0" };
                        format!("{flipped}{}", &v[1..])
                    } else {
                        v.into_owned()
                    };
                    (n.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
            assert_ne!(url.as_str(), get.url);
            assert_eq!(
                reqwest::get(url).await.unwrap().status(),
                StatusCode::FORBIDDEN
            );
            // Download: the signature of one key used for another.
            let other = ObjectKey::parse(&k.as_str().replace(".png", ".pdf")).unwrap();
            let swapped = get.url.replace(k.as_str(), other.as_str());
            assert_eq!(
                reqwest::get(swapped).await.unwrap().status(),
                StatusCode::FORBIDDEN
            );
        }

        #[tokio::test]
        async fn s3_upload_must_match_the_policy() {
            let Some(store) = fresh_store("s3_upload_must_match_the_policy").await else {
                return;
            };
            let k = key();
            let p = presign(&store, &k, 10);

            // Another content type than the key's.
            let mut fields = p.fields.clone();
            fields.insert("Content-Type".into(), "text/html".into());
            let (status, body) = post(&p, &fields, png(5)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body.contains("InvalidPolicyDocument"), "{body}");

            // More bytes than the policy allows, and none at all.
            let (status, body) = post(&p, &p.fields, png(11)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body.contains("EntityTooLarge"), "{body}");
            let (status, body) = post(&p, &p.fields, Vec::new()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body.contains("EntityTooSmall"), "{body}");

            // Another key than the policy's (same app, and another app's).
            for other in [
                ObjectKey::new_upload(k.app_id(), "x.png").unwrap().0,
                ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "x.png")
                    .unwrap()
                    .0,
            ] {
                let mut fields = p.fields.clone();
                fields.insert("key".into(), store.full_key(&other));
                let (status, body) = post(&p, &fields, png(5)).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                assert!(body.contains("InvalidPolicyDocument"), "{body}");
                assert!(!store.exists(&other).await.unwrap());
            }

            // A field the policy does not name.
            let mut fields = p.fields.clone();
            fields.insert("x-amz-meta-owner".into(), "me".into());
            let (status, body) = post(&p, &fields, png(5)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

            // The same form posted to another bucket.
            let Some(elsewhere) = fresh_store("s3_upload_must_match_the_policy").await else {
                unreachable!()
            };
            let mut to_other_bucket = p.clone();
            to_other_bucket.url = elsewhere.post_url();
            let (status, body) = post(&to_other_bucket, &p.fields, png(5)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(!elsewhere.exists(&k).await.unwrap());

            assert!(
                !store.exists(&k).await.unwrap(),
                "no refused upload was stored"
            );
            // The untouched form still works.
            assert_eq!(post(&p, &p.fields, png(10)).await.0, StatusCode::NO_CONTENT);
            assert!(store.exists(&k).await.unwrap());
        }

        #[tokio::test]
        async fn s3_expired_upload_policy_is_refused() {
            let Some(store) = fresh_store("s3_expired_upload_policy_is_refused").await else {
                return;
            };
            let k = key();
            let now = Utc::now();
            let p = store
                .presign_post_until(
                    &k,
                    10,
                    now - chrono::Duration::seconds(10),
                    now - chrono::Duration::seconds(1),
                )
                .unwrap();
            let (status, body) = post(&p, &p.fields, png(5)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert!(!store.exists(&k).await.unwrap());
        }
    }
}
