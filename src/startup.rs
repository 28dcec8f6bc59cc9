//! Building and running the server. Tests call `Application::build` with a
//! port-0 address and talk to the real thing.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::config::Settings;
use crate::db::Db;
use crate::domain::operations::OperationRules;
use crate::routes;
use crate::telemetry;
use crate::tenancy::{self, Bootstrap};

/// What every handler can reach. Nothing here is state a second replica
/// would need: it is configuration and handles to shared services.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub operation_rules: Arc<OperationRules>,
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
    )?;
    let applied = db.migrate()?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, backend = settings.database_url.backend_name(), "applied migrations");
    }
    Ok(db)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let operation_rules = Arc::new(settings.load_operation_rules()?);
        let db = {
            let settings = settings.clone();
            actix_web::rt::task::spawn_blocking(move || open_database(&settings))
                .await
                .context("start-up task panicked")??
        };

        let bootstrapped = {
            let db = db.clone();
            let key = settings.bootstrap_api_key.clone();
            actix_web::rt::task::spawn_blocking(move || {
                let mut conn = db.pool().get().context("cannot reach the database")?;
                tenancy::bootstrap(&mut conn, key.as_deref())
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
            Bootstrap::NothingToDo => None,
        };

        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let port = listener.local_addr()?.port();

        let state = web::Data::new(AppState {
            db,
            settings: settings.clone(),
            operation_rules,
        });
        let sandbox = settings.environment == crate::config::Environment::Sandbox;
        let json_limit = settings.json_limit;
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap_fn(telemetry::request_span)
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(json_limit)
                        .error_handler(routes::json_error),
                )
                .app_data(web::PathConfig::default().error_handler(routes::path_error))
                .configure(routes::configure)
                .configure(|cfg| {
                    if sandbox {
                        routes::configure_sandbox(cfg)
                    }
                })
                .default_service(web::to(routes::not_found))
        })
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
