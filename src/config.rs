//! Settings read from the environment once, at start.
//!
//! Every variable has a default (except the few production requires) and a
//! wrong value stops the process with a message naming the variable, rather
//! than surfacing later as a confusing runtime failure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use secrecy::SecretString;

use crate::db::{DatabaseUrl, SessionLimits};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "sandbox" => Ok(Environment::Sandbox),
            "production" => Ok(Environment::Production),
            other => bail!("KYC_ENV must be `sandbox` or `production`, not `{other}`"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    pub environment: Environment,
    /// Secret: `Debug` prints it as `[REDACTED]`.
    pub bootstrap_api_key: Option<SecretString>,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// Connections per process. SQLite serialises writers anyway; PostgreSQL
    /// benefits from a few per core.
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before the
    /// service answers 503 `database_unavailable`.
    pub db_timeout: Duration,
    /// `KYC_DB_STATEMENT_TIMEOUT_MS`, `KYC_DB_LOCK_TIMEOUT_MS`,
    /// `KYC_DB_IDLE_TX_TIMEOUT_MS`: PostgreSQL session bounds.
    pub db_limits: SessionLimits,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest JSON body accepted, in bytes.
    pub json_limit: usize,
    /// `KYC_BODY_TIMEOUT_MS`: how long a request's body may take to arrive
    /// once its headers have (408 `request_timeout` after).
    pub body_timeout: Duration,
    /// `KYC_EVENT_RETENTION_DAYS`: how long events are kept (`GET /events`).
    pub event_retention: chrono::Duration,
    /// `KYC_IDEMPOTENCY_TTL_HOURS`: how long an Idempotency-Key's answer is
    /// kept for replay.
    pub idempotency_ttl: chrono::Duration,
    /// `KYC_RETENTION_DAYS`: identities deleted longer ago than this are
    /// erased by a background task; unset keeps them forever.
    pub retention: Option<chrono::Duration>,
    /// `KYC_MAINTENANCE_INTERVAL_SECONDS`: how often each replica prunes
    /// expired events and answers and erases expired identities.
    pub maintenance_interval: Duration,
    /// Webhook delivery: `KYC_WEBHOOK_RETRY_SCHEDULE`,
    /// `KYC_WEBHOOK_ALLOWED_HOSTS`, `KYC_WEBHOOK_TIMEOUT_MS`,
    /// `KYC_WEBHOOK_POLL_MS`, `KYC_WEBHOOK_CONCURRENCY`,
    /// `KYC_WEBHOOK_ENDPOINT_CONCURRENCY`; strict targets in production.
    pub webhooks: crate::domain::webhooks::WebhookSettings,
    /// `KYC_RATE_LIMIT_PER_SECOND`: requests per second and API key (and
    /// the burst), per replica; unset means no limit.
    pub rate_limit_per_second: Option<std::num::NonZeroU32>,
    /// `KYC_METRICS_BIND`: serve `/metrics` on this address only (not on
    /// the public one).
    pub metrics_bind: Option<SocketAddr>,
    /// `KYC_OPERATION_RULES`: a rules file replacing the embedded default.
    pub operation_rules_path: Option<std::path::PathBuf>,
    /// `KYC_ENCRYPTION_KEYS`: `kid:base64key,...`, the key-encryption keys
    /// (the first seals, all open). Required in production; in sandbox
    /// without it a key is generated once and kept in the database.
    /// `Debug` names the key ids only.
    pub encryption_keys: Option<Arc<crate::domain::crypto::KeyRing>>,
    pub storage: StorageSettings,
}

/// Where documents live and how long signatures last.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub backend: StorageBackend,
    /// `KYC_SIGNING_KEY`: signs the local backend's upload and download
    /// tokens. Required in production; in sandbox a random one is generated
    /// once and kept in the database, so every replica shares it.
    /// Secret: `Debug` prints it as `[REDACTED]`.
    pub signing_key: Option<SecretString>,
    pub max_document_bytes: u64,
    pub presign_ttl: Duration,
    pub upload_ttl: Duration,
    /// `KYC_PUBLIC_URL`: the base URL clients reach this API at, used in the
    /// local backend's URLs. Defaults to `http://<KYC_BIND>`.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone)]
pub enum StorageBackend {
    Local(std::path::PathBuf),
    S3(crate::storage::S3Settings),
}

impl Settings {
    /// The operation rules: the file named by `KYC_OPERATION_RULES`, or the
    /// embedded default. A file that cannot be read or parsed stops start-up.
    pub fn load_operation_rules(
        &self,
    ) -> anyhow::Result<crate::domain::operations::OperationRules> {
        use crate::domain::operations::OperationRules;
        match &self.operation_rules_path {
            None => Ok(OperationRules::default_rules()?),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow!("KYC_OPERATION_RULES: cannot read {}: {e}", path.display())
                })?;
                OperationRules::from_toml_str(&text)
                    .map_err(|e| anyhow!("KYC_OPERATION_RULES ({}): {e}", path.display()))
            }
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of
    /// mutating the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let database_url = DatabaseUrl::parse(
            &get("DATABASE_URL").unwrap_or_else(|| "sqlite://kyc-api.db".to_string()),
        )
        .context("DATABASE_URL is invalid")?;
        let bind = get("KYC_BIND")
            .unwrap_or_else(|| "127.0.0.1:8080".to_string())
            .parse::<SocketAddr>()
            .map_err(|e| anyhow!("KYC_BIND must be an address like 127.0.0.1:8080: {e}"))?;
        let environment = Environment::parse(&get("KYC_ENV").unwrap_or_else(|| "sandbox".into()))?;
        let bootstrap_api_key = get("KYC_BOOTSTRAP_API_KEY");
        if let Some(key) = &bootstrap_api_key {
            if key.len() < 24 {
                bail!("KYC_BOOTSTRAP_API_KEY must be at least 24 characters long");
            }
        }
        let log_filter = get("KYC_LOG").unwrap_or_else(|| "info".to_string());
        tracing_subscriber::EnvFilter::try_new(&log_filter)
            .map_err(|e| anyhow!("KYC_LOG is not a valid filter: {e}"))?;
        let log_format = match get("KYC_LOG_FORMAT").as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("KYC_LOG_FORMAT must be `text` or `json`, not `{other}`"),
        };
        let db_pool_size = parse_number(&get, "KYC_DB_POOL_SIZE", 10, 1, 1000)?;
        let db_timeout =
            Duration::from_millis(parse_number(&get, "KYC_DB_TIMEOUT_MS", 5000, 100, 600_000)?);
        let millis = |name: &str, default: u64| -> anyhow::Result<Duration> {
            Ok(Duration::from_millis(parse_number(
                &get, name, default, 100, 3_600_000,
            )?))
        };
        let db_limits = SessionLimits {
            statement: millis("KYC_DB_STATEMENT_TIMEOUT_MS", 5_000)?,
            lock: millis("KYC_DB_LOCK_TIMEOUT_MS", 2_000)?,
            idle_in_transaction: millis("KYC_DB_IDLE_TX_TIMEOUT_MS", 10_000)?,
        };
        let workers = parse_number(&get, "KYC_WORKERS", 0, 0, 1024)?;
        let json_limit = parse_number(
            &get,
            "KYC_JSON_LIMIT_BYTES",
            1024 * 1024,
            1024,
            64 * 1024 * 1024,
        )?;

        let event_retention =
            chrono::Duration::days(parse_number(&get, "KYC_EVENT_RETENTION_DAYS", 30, 1, 3650)?);
        let idempotency_ttl = chrono::Duration::hours(parse_number(
            &get,
            "KYC_IDEMPOTENCY_TTL_HOURS",
            24,
            1,
            8760,
        )?);
        let webhooks = webhook_settings(&get, environment)?;
        let body_timeout = Duration::from_millis(parse_number(
            &get,
            "KYC_BODY_TIMEOUT_MS",
            10_000,
            100,
            600_000,
        )?);

        let retention = match get("KYC_RETENTION_DAYS") {
            None => None,
            Some(_) => Some(chrono::Duration::days(parse_number(
                &get,
                "KYC_RETENTION_DAYS",
                0,
                0,
                36_500,
            )?)),
        };
        let maintenance_interval = Duration::from_secs(parse_number(
            &get,
            "KYC_MAINTENANCE_INTERVAL_SECONDS",
            3600,
            1,
            86_400,
        )?);

        let rate_limit_per_second = match get("KYC_RATE_LIMIT_PER_SECOND") {
            None => None,
            Some(_) => std::num::NonZeroU32::new(parse_number(
                &get,
                "KYC_RATE_LIMIT_PER_SECOND",
                1,
                1,
                1_000_000,
            )?),
        };

        let metrics_bind = match get("KYC_METRICS_BIND") {
            None => None,
            Some(raw) => Some(raw.parse().map_err(|e| {
                anyhow!("KYC_METRICS_BIND must be an address like 127.0.0.1:9090: {e}")
            })?),
        };

        let operation_rules_path = get("KYC_OPERATION_RULES").map(std::path::PathBuf::from);
        let storage = storage_settings(&get, environment)?;
        let encryption_keys = match get("KYC_ENCRYPTION_KEYS") {
            Some(spec) => Some(Arc::new(
                crate::domain::crypto::KeyRing::parse(&spec)
                    .map_err(|e| anyhow!("KYC_ENCRYPTION_KEYS: {e}"))?,
            )),
            None if environment == Environment::Production => bail!(
                "KYC_ENCRYPTION_KEYS is required in production: `kid:base64key` with a 32-byte key \
                 (e.g. `k1:$(openssl rand -base64 32)`)"
            ),
            None => None,
        };

        Ok(Settings {
            storage,
            operation_rules_path,
            encryption_keys,
            database_url,
            bind,
            environment,
            bootstrap_api_key: bootstrap_api_key.map(SecretString::from),
            log_filter,
            log_format,
            db_pool_size,
            db_timeout,
            db_limits,
            workers,
            json_limit,
            body_timeout,
            event_retention,
            idempotency_ttl,
            webhooks,
            rate_limit_per_second,
            retention,
            maintenance_interval,
            metrics_bind,
        })
    }
}

fn storage_settings(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
) -> anyhow::Result<StorageSettings> {
    use crate::storage::{parse_storage_url, S3Settings, StorageLocation, MIN_SIGNING_KEY_BYTES};
    let location = get("KYC_STORAGE").unwrap_or_else(|| "local:./kyc-api-files".to_string());
    let backend = match parse_storage_url(&location).map_err(|e| anyhow!("KYC_STORAGE: {e}"))? {
        StorageLocation::Local { dir } => StorageBackend::Local(dir),
        StorageLocation::S3 { bucket, prefix } => StorageBackend::S3(
            S3Settings::from_lookup(bucket, prefix, get)
                .map_err(|e| anyhow!("KYC_STORAGE is S3: {e}"))?,
        ),
    };
    let signing_key = get("KYC_SIGNING_KEY");
    match (&signing_key, environment) {
        (Some(key), _) if key.len() < MIN_SIGNING_KEY_BYTES => {
            bail!("KYC_SIGNING_KEY must be at least {MIN_SIGNING_KEY_BYTES} bytes long")
        }
        (None, Environment::Production) if matches!(backend, StorageBackend::Local(_)) => {
            bail!("KYC_SIGNING_KEY is required in production with local storage")
        }
        _ => {}
    }
    let public_url = get("KYC_PUBLIC_URL");
    if let Some(url) = &public_url {
        let parsed =
            url::Url::parse(url).map_err(|e| anyhow!("KYC_PUBLIC_URL is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("KYC_PUBLIC_URL must be an http(s) URL");
        }
    }
    Ok(StorageSettings {
        backend,
        signing_key: signing_key.map(SecretString::from),
        max_document_bytes: parse_number(
            get,
            "KYC_MAX_DOCUMENT_BYTES",
            10 * 1024 * 1024,
            1,
            5 * 1024 * 1024 * 1024,
        )?,
        presign_ttl: Duration::from_secs(parse_number(
            get,
            "KYC_PRESIGN_TTL_SECONDS",
            900,
            1,
            7 * 24 * 3600,
        )?),
        upload_ttl: Duration::from_secs(parse_number(
            get,
            "KYC_UPLOAD_TTL_SECONDS",
            300,
            1,
            7 * 24 * 3600,
        )?),
        public_url,
    })
}

fn webhook_settings(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
) -> anyhow::Result<crate::domain::webhooks::WebhookSettings> {
    use crate::domain::webhooks::{RetrySchedule, TargetPolicy};
    let schedule = match get("KYC_WEBHOOK_RETRY_SCHEDULE") {
        Some(s) => {
            RetrySchedule::parse(&s).map_err(|e| anyhow!("KYC_WEBHOOK_RETRY_SCHEDULE: {e}"))?
        }
        None => RetrySchedule::standard(),
    };
    let allowed_hosts = get("KYC_WEBHOOK_ALLOWED_HOSTS")
        .map(|hosts| {
            hosts
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let settings = crate::domain::webhooks::WebhookSettings {
        policy: TargetPolicy {
            strict: environment == Environment::Production,
            allowed_hosts,
        },
        schedule,
        timeout: Duration::from_millis(parse_number(
            get,
            "KYC_WEBHOOK_TIMEOUT_MS",
            10_000,
            100,
            60_000,
        )?),
        poll: Duration::from_millis(parse_number(get, "KYC_WEBHOOK_POLL_MS", 500, 10, 60_000)?),
        lease: Duration::from_millis(parse_number(
            get,
            "KYC_WEBHOOK_LEASE_MS",
            60_000,
            1_000,
            3_600_000,
        )?),
        batch: 50,
        concurrency: parse_number(get, "KYC_WEBHOOK_CONCURRENCY", 100, 1, 10_000)?,
        endpoint_concurrency: parse_number(get, "KYC_WEBHOOK_ENDPOINT_CONCURRENCY", 10, 1, 10_000)?,
    };
    if settings.lease <= settings.timeout {
        bail!("KYC_WEBHOOK_LEASE_MS must be longer than KYC_WEBHOOK_TIMEOUT_MS: a delivery still being sent must not be claimed again");
    }
    Ok(settings)
}

fn parse_number<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    min: T,
    max: T,
) -> anyhow::Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    let value: T = raw.trim().parse().map_err(|_| {
        anyhow!("{name} must be a whole number between {min} and {max}, not `{raw}`")
    })?;
    if value < min || value > max {
        bail!("{name} must be between {min} and {max}, not {value}");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_nothing() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.environment, Environment::Sandbox);
        assert!(matches!(s.database_url, DatabaseUrl::Sqlite(_)));
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let s = settings(&[
            ("KYC_BOOTSTRAP_API_KEY", "kyc_bootstrap_hunter2_0123456789"),
            (
                "KYC_SIGNING_KEY",
                "signing-hunter2-0123456789abcdef0123456789",
            ),
            ("DATABASE_URL", "postgres://kyc:hunter2@db.internal/kyc"),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db.internal"), "{printed}");
        let keyed = settings(&[(
            "KYC_ENCRYPTION_KEYS",
            "k1:aHVudGVyMmh1bnRlcjJodW50ZXIyaHVudGVyMmFiY2Q=",
        )])
        .unwrap();
        let printed = format!("{keyed:?}");
        assert!(printed.contains(r#"KeyRing(["k1"])"#), "{printed}");
        assert!(!printed.contains("aHVudGVy"), "{printed}");
    }

    #[test]
    fn production_needs_encryption_keys() {
        let err = format!(
            "{:#}",
            settings(&[
                ("KYC_ENV", "production"),
                ("KYC_SIGNING_KEY", "0123456789abcdef0123456789abcdef")
            ])
            .unwrap_err()
        );
        assert!(
            err.contains("KYC_ENCRYPTION_KEYS is required in production"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (var, value) in [
            ("KYC_BIND", "nowhere"),
            ("KYC_ENV", "staging"),
            ("KYC_LOG_FORMAT", "xml"),
            ("KYC_DB_POOL_SIZE", "0"),
            ("KYC_BOOTSTRAP_API_KEY", "short"),
            ("DATABASE_URL", "mysql://localhost/db"),
            ("KYC_ENCRYPTION_KEYS", "k1:c2hvcnQ="),
        ] {
            let err = format!("{:#}", settings(&[(var, value)]).unwrap_err());
            assert!(err.contains(var), "{var}: {err}");
        }
    }
}
