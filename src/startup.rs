//! Building and running the server. Tests call `Application::build` with a
//! port-0 address and talk to the real thing.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::app::AppState;
use crate::config::{Settings, StorageBackend};
use crate::db::Db;
use crate::domain::crypto::KeyRing;
use crate::routes;
use crate::services::tenancy::{self, Bootstrap};
use crate::services::write::{WriteObserver, WritePath};
use crate::storage::Storage;
use crate::telemetry;

/// The signing key of the local backend's tokens: configured, or in sandbox
/// generated once and kept in the database so every replica shares it.
fn signing_key(
    db: &Db,
    write: &WritePath,
    keys: &KeyRing,
    settings: &Settings,
) -> anyhow::Result<String> {
    match &settings.storage.signing_key {
        Some(key) => Ok(key.expose_secret().to_string()),
        None => tenancy::shared_secret(write, db, keys, "local_storage_signing_key"),
    }
}

async fn build_storage(
    settings: &Settings,
    signing_key: &str,
    keys: Arc<KeyRing>,
    port: u16,
) -> anyhow::Result<Storage> {
    match &settings.storage.backend {
        StorageBackend::Local(dir) => {
            let base = settings.storage.public_url.clone().unwrap_or_else(|| {
                let ip = match settings.bind.ip() {
                    ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
                    ip => ip,
                };
                format!("http://{}", std::net::SocketAddr::new(ip, port))
            });
            Ok(
                Storage::local(dir.clone(), &base, signing_key.as_bytes(), keys)
                    .map_err(|e| anyhow::anyhow!("KYC_STORAGE: {e}"))?,
            )
        }
        StorageBackend::S3(s3) => Ok(Storage::s3(s3.clone())
            .await
            .map_err(|e| anyhow::anyhow!("KYC_STORAGE: {e}"))?),
    }
}

/// Each replica's periodic upkeep: links audit records a process left
/// unlinked (it died between a write's commit and its link), prunes expired
/// events and Idempotency-Key answers, and (with `KYC_RETENTION_DAYS`) erases the
/// identities deleted longer ago. Every step is safe with several replicas
/// doing it at once.
fn spawn_maintenance(write: WritePath, storage: Arc<Storage>, settings: Arc<Settings>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(settings.maintenance_interval);
        loop {
            every.tick().await;
            let (linked, events, keys, sessions) = {
                let (write, settings) = (write.clone(), settings.clone());
                match actix_web::rt::task::spawn_blocking(move || {
                    (
                        crate::services::audit::link_pending(&write),
                        crate::services::events::prune(&write, settings.event_retention),
                        crate::services::idempotency::prune(&write, settings.idempotency_ttl),
                        crate::services::console::prune(&write),
                    )
                })
                .await
                {
                    Ok(pruned) => pruned,
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning task failed");
                        continue;
                    }
                }
            };
            let erased = match settings.retention {
                Some(retention) => {
                    crate::services::custody::erase_expired(&write, &storage, retention).await
                }
                None => Ok(0),
            };
            for (what, done) in [
                ("linked audit records left unlinked", linked),
                ("pruned expired events", events),
                ("pruned expired idempotency records", keys),
                ("pruned console sessions past their age", sessions),
                (
                    "erased identities deleted longer than KYC_RETENTION_DAYS ago",
                    erased,
                ),
            ] {
                match done {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "{what}"),
                    Err(e) => tracing::warn!(error = %e, "maintenance failed: {what}"),
                }
            }
        }
    });
}

pub struct Application {
    port: u16,
    server: Server,
    /// Present when this start created the `default` app.
    pub bootstrapped: Option<tenancy::CreatedApp>,
}

/// Opens the database and brings its schema up to date.
pub fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(
        &settings.database_url,
        settings.db_pool_size,
        settings.db_timeout,
        settings.db_limits,
    )?;
    let applied = db.migrate()?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, backend = settings.database_url.backend_name(), "applied migrations");
    }
    Ok(db)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Vec::new()).await
    }

    /// `build`, with observers that run in the transaction of every write
    /// (see `services::write`).
    pub async fn build_with(
        settings: Settings,
        observers: Vec<Arc<dyn WriteObserver>>,
    ) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let operation_rules = Arc::new(settings.load_operation_rules()?);
        let db = {
            let settings = settings.clone();
            actix_web::rt::task::spawn_blocking(move || open_database(&settings))
                .await
                .context("start-up task panicked")??
        };

        // Start-up's own writes (the first app, a generated secret) make no
        // events; the server's write path, built once storage exists,
        // records them.
        let write = WritePath::new(db.clone(), observers.clone());
        let bootstrapped = {
            let write = write.clone();
            let key = settings.bootstrap_api_key.clone();
            let sandbox = settings.environment == crate::config::Environment::Sandbox;
            actix_web::rt::task::spawn_blocking(move || {
                tenancy::bootstrap(&write, key.as_ref().map(|k| k.expose_secret()), sandbox)
            })
            .await
            .context("start-up task panicked")??
        };
        let bootstrapped = match bootstrapped {
            Bootstrap::Created(created) => Some(created),
            Bootstrap::KeyEnsured { app_id } => {
                tracing::info!(%app_id, "KYC_BOOTSTRAP_API_KEY is registered for the `default` app");
                None
            }
            Bootstrap::NothingToDo => {
                if settings.environment == crate::config::Environment::Production {
                    tracing::info!(
                        "production: no app is created at start-up; create one with \
                         `kyc-api apps create <name>` (or set KYC_BOOTSTRAP_API_KEY)"
                    );
                }
                None
            }
        };

        let (key, cursor_key, console_key, keys) = {
            let (db, write, settings) = (db.clone(), write.clone(), settings.clone());
            actix_web::rt::task::spawn_blocking(move || {
                let keys = tenancy::key_ring(&write, &db, settings.encryption_keys.clone())?;
                anyhow::Ok((
                    signing_key(&db, &write, &keys, &settings)?,
                    tenancy::shared_secret(
                        &write,
                        &db,
                        &keys,
                        crate::services::cursor::SECRET_NAME,
                    )?,
                    tenancy::shared_secret(
                        &write,
                        &db,
                        &keys,
                        crate::services::console::SECRET_NAME,
                    )?,
                    keys,
                ))
            })
            .await
            .context("start-up task panicked")??
        };

        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let storage = build_storage(&settings, &key, keys.clone(), port).await?;

        let storage = Arc::new(storage);
        let storage_data = web::Data::from(storage.clone());
        let mut observers = observers;
        observers.insert(
            0,
            Arc::new(crate::services::events::EventRecorder::new(
                storage.clone(),
                keys.clone(),
                operation_rules.clone(),
            )),
        );
        let write = WritePath::new(db.clone(), observers);
        crate::services::audit::spawn_linker(write.clone());
        spawn_maintenance(write.clone(), storage.clone(), settings.clone());
        crate::services::webhooks::Dispatcher::new(
            db.clone(),
            write.clone(),
            settings.webhooks.clone(),
            keys.clone(),
        )
        .context("webhook client")?
        .spawn();
        let state = web::Data::new(AppState {
            db,
            key_usage: crate::services::tenancy::KeyUsage::new(write.clone()),
            write,
            settings: settings.clone(),
            operation_rules,
            storage,
            rate_limits: settings
                .rate_limit_per_second
                .map(|rate| Arc::new(crate::services::rate_limit::RateLimits::per_second(rate))),
            storage_check: Default::default(),
            cursors: crate::services::cursor::CursorSigner::new(cursor_key.as_bytes()),
            console: crate::services::console::SessionSigner::new(console_key.as_bytes()),
            keys,
        });
        crate::telemetry::metrics();
        if let Some(address) = settings.metrics_bind {
            let state = state.clone();
            let metrics = HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .route("/metrics", web::get().to(routes::metrics::metrics_listener))
            })
            .workers(1)
            .disable_signals()
            .bind(address)
            .with_context(|| format!("cannot listen on KYC_METRICS_BIND {address}"))?
            .run();
            tokio::spawn(metrics);
        }
        let sandbox = settings.environment == crate::config::Environment::Sandbox;
        let json_limit = settings.json_limit;
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap_fn(routes::deadline::limit_body_time)
                .wrap_fn(routes::rate_limit::limit_rate)
                .wrap_fn(telemetry::request_span)
                .app_data(state.clone())
                .app_data(storage_data.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(json_limit)
                        .error_handler(routes::json_error),
                )
                .app_data(web::PathConfig::default().error_handler(routes::path_error))
                .configure(routes::configure)
                .configure(routes::console::configure)
                .configure(|cfg| {
                    if sandbox {
                        routes::configure_sandbox(cfg)
                    }
                })
                .default_service(web::to(routes::not_found))
        })
        // The headers of a request must arrive within 5 s of the connection
        // (or of the previous response on a kept-alive one), an idle
        // kept-alive connection is closed after 5 s, and the body is bounded
        // by `KYC_BODY_TIMEOUT_MS` (routes::deadline).
        .client_request_timeout(std::time::Duration::from_secs(5))
        .keep_alive(std::time::Duration::from_secs(5))
        .listen(listener)?
        // In-flight requests get this long to finish after SIGTERM/SIGINT.
        .shutdown_timeout(30);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        Ok(Self {
            port,
            server: server.run(),
            bootstrapped,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT (graceful: in-flight requests finish) or
    /// until the server handle is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}
