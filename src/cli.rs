//! The command line: `serve` (the default), `migrate`, and app/key
//! management that works on the same database while a server runs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::config::Settings;
use crate::services::tenancy;
use crate::services::write::{Actor, WritePath};
use crate::startup::{open_database, Application};
use crate::telemetry;

/// Every setting, for `--help` (README "Configuration" has the details; a
/// test holds this list to what `config` reads).
const ENVIRONMENT: &str = "\
Configuration (environment variables):
  DATABASE_URL                 sqlite://kyc-api.db | postgres://... | libpq keywords
  KYC_BIND                     127.0.0.1:8080
  KYC_ENV                      sandbox | production
  KYC_BOOTSTRAP_API_KEY        make sure app `default` has exactly this key
  KYC_LOG, KYC_LOG_FORMAT      info | tracing filter; text | json
  KYC_DB_POOL_SIZE             10 connections per process
  KYC_DB_TIMEOUT_MS            5000: wait for a connection
  KYC_DB_STATEMENT_TIMEOUT_MS  5000 (PostgreSQL statement_timeout)
  KYC_DB_LOCK_TIMEOUT_MS       2000 (PostgreSQL lock_timeout)
  KYC_DB_IDLE_TX_TIMEOUT_MS    10000 (PostgreSQL idle_in_transaction_session_timeout)
  KYC_WORKERS                  HTTP workers (one per core)
  KYC_JSON_LIMIT_BYTES         1048576
  KYC_BODY_TIMEOUT_MS          10000: a request body must arrive within this
  KYC_RATE_LIMIT_PER_SECOND    per API key and replica (unset: no limit)
  KYC_METRICS_BIND             serve /metrics on this address only
  KYC_OPERATION_RULES          path of an operation rules file
  KYC_STORAGE                  local:<dir> | s3://<bucket>[/<prefix>]
  KYC_SIGNING_KEY              signs local storage URLs (required in production)
  KYC_ENCRYPTION_KEYS          kid:base64key,...: seal secrets at rest (required in production)
  KYC_PUBLIC_URL               base URL clients reach the API at
  KYC_MAX_DOCUMENT_BYTES       10485760
  KYC_UPLOAD_TTL_SECONDS       300
  KYC_PRESIGN_TTL_SECONDS      900
  KYC_S3_FORCE_PATH_STYLE      true for S3-compatible servers
  KYC_S3_SSE, KYC_S3_KMS_KEY_ID  AES256 | aws:kms [key id]: server-side encryption asked for
  KYC_EVENT_RETENTION_DAYS     30: how long GET /events keeps events
  KYC_IDEMPOTENCY_TTL_HOURS    24: how long an Idempotency-Key's answer is kept
  KYC_RETENTION_DAYS           erase identities deleted longer ago (unset: keep forever)
  KYC_MAINTENANCE_INTERVAL_SECONDS  3600: how often pruning and retention run
  KYC_WEBHOOK_RETRY_SCHEDULE   5s,5m,30m,2h,5h,10h,10h: waits between attempts
  KYC_WEBHOOK_TIMEOUT_MS       10000: a receiver must answer within this
  KYC_WEBHOOK_POLL_MS          500: how often an idle dispatcher looks
  KYC_WEBHOOK_LEASE_MS         60000: a claimed delivery is another replica's after this
  KYC_WEBHOOK_ALLOWED_HOSTS    hosts exempt from the internal-address check
  KYC_WEBHOOK_CONCURRENCY      100: deliveries a replica sends at once
  KYC_WEBHOOK_ENDPOINT_CONCURRENCY 10: of those, at most this many to one endpoint
  AWS_REGION (or AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN, AWS_ENDPOINT_URL; without keys, S3 credentials (and
  without AWS_REGION, the region) come from aws-config's default chain:
  AWS_PROFILE and the shared profile files, SSO, web identity (EKS), the ECS
  task role, the EC2 instance profile";

#[derive(Parser)]
#[command(
    name = "kyc-api",
    version,
    about = "Custodial KYC identity API",
    after_help = ENVIRONMENT
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Ask the server on KYC_BIND whether it is ready (GET /ready); exit 0
    /// when it answers 200. For container health checks without curl.
    Health,
    /// Manage apps (tenants).
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Encryption at rest.
    Encryption {
        #[command(subcommand)]
        command: EncryptionCommand,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every app's hash chain (or one app's): prints each
    /// chain's count of verified rows and the first broken row (its id,
    /// the expected and the found hash); exits non-zero if any is broken.
    Verify {
        /// Only this app's chain.
        #[arg(long, value_name = "APP_ID")]
        app: Option<String>,
    },
}

#[derive(Subcommand)]
enum EncryptionCommand {
    /// Seal everything under the first key of KYC_ENCRYPTION_KEYS: rewrap
    /// every identity's data key, seal identities written before
    /// encryption at rest, reseal secrets and stored answers. Safe while
    /// servers run (give them the new key first, the old ones after it);
    /// resumable; prints progress on stderr and a report on stdout. Then
    /// the old keys can be removed.
    Rotate,
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Create an app and its first API key; prints {"appId", "keyId", "apiKey"}.
    Create { name: String },
    /// List apps with their number of active keys.
    List,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create another API key for an app; prints {"keyId", "appId", "apiKey", "scopes"}.
    Create {
        #[arg(value_name = "APP_ID")]
        app_id: String,
        /// What the key may do: `*` (everything) or some of identities:read,
        /// identities:write, documents:read, kyc:review, webhooks:manage,
        /// audit:read, comma-separated.
        #[arg(long, default_value = "*")]
        scopes: String,
    },
    /// Revoke an API key; requests using it are refused at once. Fails for
    /// an unknown or already revoked key.
    Revoke {
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
    /// List an app's keys: id, prefix, scopes, created, last used, revoked
    /// (never the secret).
    List {
        #[arg(value_name = "APP_ID")]
        app_id: String,
    },
}

/// Commands that only read or change what is there must not create a fresh
/// SQLite file (run from the wrong directory, `apps list` once created and
/// migrated an empty `./kyc-api.db` and printed `[]`).
fn require_existing_database(settings: &Settings) -> anyhow::Result<()> {
    if let crate::db::DatabaseUrl::Sqlite(path) = &settings.database_url {
        if !path.exists() {
            anyhow::bail!(
                "there is no SQLite database at {} (set DATABASE_URL to the server's database; \
                 `kyc-api migrate` or `kyc-api serve` create a new one)",
                path.display()
            );
        }
    }
    Ok(())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init(&settings.log_filter, settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Health => health(&settings),
        Command::Migrate => {
            let db = open_database(&settings)?;
            drop(db);
            eprintln!(
                "migrations are up to date ({})",
                settings.database_url.backend_name()
            );
            Ok(())
        }
        Command::Apps { command } => {
            if matches!(command, AppsCommand::List) {
                require_existing_database(&settings)?;
            }
            let db = open_database(&settings)?;
            let write = WritePath::new(db.clone(), Vec::new());
            match command {
                AppsCommand::Create { name } => {
                    print_json(&tenancy::create_app(&write, Actor::cli(), &name)?)
                }
                AppsCommand::List => {
                    let apps = tenancy::list_apps(&db)?;
                    let rows: Vec<_> = apps
                        .into_iter()
                        .map(|(app, active_keys)| {
                            json!({
                                "appId": app.id,
                                "name": app.name,
                                "createdAt": crate::domain::time::format_timestamp(app.created_at),
                                "activeKeys": active_keys,
                            })
                        })
                        .collect();
                    print_json(&rows)
                }
            }
        }
        Command::Keys { command } => {
            require_existing_database(&settings)?;
            let db = open_database(&settings)?;
            let write = WritePath::new(db.clone(), Vec::new());
            match command {
                KeysCommand::Create { app_id, scopes } => print_json(&tenancy::create_key(
                    &write,
                    Actor::cli(),
                    &app_id,
                    &scopes,
                )?),
                KeysCommand::Revoke { key_id } => {
                    tenancy::revoke_key(&write, Actor::cli(), &key_id)?;
                    print_json(&json!({"keyId": key_id, "revoked": true}))
                }
                KeysCommand::List { app_id } => print_json(&tenancy::list_keys(&db, &app_id)?),
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { app },
        } => {
            require_existing_database(&settings)?;
            let db = open_database(&settings)?;
            let reports = crate::services::audit::verify(&db, app.as_deref())?;
            let mut broken = 0;
            for report in &reports {
                if report.unlinked > 0 {
                    println!(
                        "{}: {} rows not linked yet (written since the last link; a running server links them at once, its maintenance those a stopped one left)",
                        report.chain, report.unlinked
                    );
                }
                match &report.broken {
                    None => println!("{}: {} rows verified", report.chain, report.verified),
                    Some(b) => {
                        broken += 1;
                        println!(
                            "{}: {} rows verified, then BROKEN at seq {} (row {}): expected {}, found {}",
                            report.chain,
                            report.verified,
                            b.seq,
                            b.record_id.as_deref().unwrap_or("(missing: the head names more rows)"),
                            b.expected,
                            b.found
                        );
                    }
                }
            }
            if broken > 0 {
                anyhow::bail!("{broken} of {} audit chains are broken", reports.len());
            }
            Ok(())
        }
        Command::Encryption {
            command: EncryptionCommand::Rotate,
        } => {
            require_existing_database(&settings)?;
            let db = open_database(&settings)?;
            let write = WritePath::new(db.clone(), Vec::new());
            let keys = tenancy::key_ring(&write, &db, settings.encryption_keys.clone())?;
            let report =
                crate::services::rotation::rotate(&write, &db, &keys, &Actor::cli(), |line| {
                    eprintln!("{line}")
                })?;
            print_json(&report)?;
            if report.failures > 0 {
                anyhow::bail!(
                    "{} values did not open and were left as they were (see the log)",
                    report.failures
                );
            }
            Ok(())
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// One `GET /ready` over loopback (a wildcard bind address is asked on
/// 127.0.0.1): only the status line is read.
fn health(settings: &Settings) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let mut address = settings.bind;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| anyhow::anyhow!("cannot reach {address}: {e}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line)?;
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => anyhow::bail!("not ready: {}", status_line.trim()),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let bind = settings.bind;
        let backend = settings.database_url.backend_name();
        let database = settings.database_url.redacted();
        let app = Application::build(settings).await?;
        if let Some(created) = &app.bootstrapped {
            println!(
                "Created the app `default` ({}) and its API key {}, shown only this once:\n\n    {}\n\n\
                 Try: curl -H 'apiKey: {}' http://{}/identities",
                created.app_id, created.key_id, created.api_key, created.api_key, bind
            );
        }
        tracing::info!(%bind, port = app.port(), backend, %database, "kyc-api listening");
        app.run_until_stopped().await?;
        tracing::info!("kyc-api stopped");
        Ok(())
    })
}
