//! The database layer: one connection type over PostgreSQL and SQLite, its
//! pool, migrations, and the helper that keeps Diesel off the async executor.
//!
//! Query functions live in the submodules, one per table family, and return
//! `QueryResult`; only this module knows that there are two backends.

pub mod apps;
pub mod identities;
pub mod kyc;
pub mod schema;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::auth::{ApiKey, AuthenticatedApp};
use crate::error::ApiError;

/// Runs a statement on the concrete connection inside a `DbConnection`,
/// compiled once per backend.
///
/// Through the `MultiConnection` wrapper every statement is rendered to SQL
/// text on every call (even when it is already prepared) and its binds and
/// rows are converted between backends; on a concrete connection a
/// non-boxed statement is found in the prepared-statement cache by its type
/// alone. The hot per-request lookups (API key, one identity, its documents
/// and verifications) use this; everything else goes through the wrapper.
macro_rules! on_each_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_each_backend;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Where the data lives, decided by the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// `postgres://` / `postgresql://` URLs select PostgreSQL; `sqlite://path`,
    /// `sqlite:path` or a bare file path select SQLite.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(with_connect_timeout(url)));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            bail!("the SQLite database path is empty");
        }
        if path == ":memory:" || path.contains("mode=memory") {
            // Each pooled connection would get its own empty database.
            bail!("in-memory SQLite is not supported; give a file path");
        }
        if path.contains("://") {
            bail!("unsupported database URL scheme in `{url}`; use postgres:// or sqlite://");
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "postgresql",
            DatabaseUrl::Sqlite(_) => "sqlite",
        }
    }

    /// The URL with any password removed, for logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(raw) => match url::Url::parse(raw) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    parsed.to_string()
                }
                Err(_) => "postgres://<unparseable>".to_string(),
            },
        }
    }
}

/// libpq waits for the operating system's TCP timeout (minutes) on a host
/// that drops packets; a KYC check should fail fast instead.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout=5")
}

diesel::define_sql_function! {
    /// `EmailKeys::of(email).domain`, for SQL that SQLite runs (a migration).
    fn kyc_email_domain(email: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
diesel::define_sql_function! {
    /// `EmailKeys::of(email).local_reversed`, for SQL that SQLite runs.
    fn kyc_email_local_reversed(email: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Makes the server's own email search keys available to SQL on a SQLite
/// connection: the migration that adds them fills existing rows with exactly
/// what the server writes for new ones.
fn register_sqlite_functions(conn: &mut diesel::SqliteConnection) -> QueryResult<()> {
    use crate::domain::email_search::EmailKeys;
    kyc_email_domain_utils::register_impl(conn, |email: String| EmailKeys::of(&email).domain)?;
    kyc_email_local_reversed_utils::register_impl(conn, |email: String| {
        EmailKeys::of(&email).local_reversed
    })
}

/// Opens connections for r2d2, choosing the backend from the URL so that a
/// PostgreSQL that is down reports libpq's own reason.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }

    pub fn connect(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => diesel::PgConnection::establish(url)
                .map(DbConnection::Postgresql)
                .map_err(diesel::r2d2::Error::ConnectionError),
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = diesel::SqliteConnection::establish(&path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // busy_timeout first: switching to WAL needs a lock that a
                // concurrent process (the CLI beside a server) may hold.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                register_sqlite_functions(&mut conn).map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// A pooled connection and when it was last handed back.
///
/// Checking a connection with a round trip on every checkout costs each
/// request a `SELECT 1`; never checking lets the first request after a
/// database restart fail on every idle connection. Like HikariCP, only a
/// connection that sat idle longer than `VALIDATION_BYPASS` is checked:
/// a connection used moments ago has just proved itself. One that breaks
/// mid-request is caught anyway: Diesel marks it broken (`has_broken`) and
/// the pool drops it.
pub struct PooledDb {
    conn: DbConnection,
    returned_at: Instant,
}

const VALIDATION_BYPASS: Duration = Duration::from_millis(500);

impl std::ops::Deref for PooledDb {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for PooledDb {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

impl diesel::r2d2::ManageConnection for ConnectionManager {
    type Connection = PooledDb;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PooledDb, Self::Error> {
        Ok(PooledDb {
            conn: ConnectionManager::connect(self)?,
            returned_at: Instant::now(),
        })
    }

    fn is_valid(&self, pooled: &mut PooledDb) -> Result<(), Self::Error> {
        if pooled.returned_at.elapsed() < VALIDATION_BYPASS {
            return Ok(());
        }
        pooled
            .conn
            .batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    /// Called by r2d2 whenever a connection comes back to the pool.
    fn has_broken(&self, pooled: &mut PooledDb) -> bool {
        pooled.returned_at = Instant::now();
        match &mut pooled.conn {
            DbConnection::Postgresql(c) => diesel::r2d2::R2D2Connection::is_broken(c),
            DbConnection::Sqlite(c) => diesel::r2d2::R2D2Connection::is_broken(c),
        }
    }
}

pub type DbPool = Pool<ConnectionManager>;

/// The pool plus the helper every handler uses to reach it.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    /// SQLite only: writers of this process wait here, in arrival order,
    /// rather than in SQLite's busy handler, which sleeps up to 100 ms
    /// between retries and so leaves the write lock idle while every
    /// waiter sleeps (1.4 s p99 for creates in BENCHMARKS.md). Other
    /// processes (the CLI) still meet the busy timeout.
    sqlite_writers: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Db {
    /// Connects once, outside the pool, so a wrong URL or an unreachable
    /// server fails start-up at once with the driver's own message.
    pub fn connect(url: &DatabaseUrl, pool_size: u32, timeout: Duration) -> anyhow::Result<Self> {
        if let DatabaseUrl::Sqlite(path) = url {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "cannot create the directory of the SQLite database {}",
                        dir.display()
                    )
                })?;
            }
        }
        let manager = ConnectionManager::new(url.clone());
        let first = manager
            .connect()
            .map_err(|e| anyhow!("cannot connect to {}: {e}", url.redacted()))?;
        let pool = Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .build_unchecked(manager);
        drop(first);
        let sqlite_writers =
            matches!(url, DatabaseUrl::Sqlite(_)).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Self {
            pool,
            sqlite_writers,
        })
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Runs pending migrations for whichever backend this is.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| anyhow!("cannot reach the database: {e}"))?;
        run_migrations(&mut conn)
    }

    /// Runs blocking Diesel work on the blocking thread pool, never on the
    /// async executor.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let mut conn = checkout(&pool)?;
            work(&mut conn)
        })
        .await
        .map_err(|e| ApiError::internal(anyhow!("database task panicked: {e}")))?
    }

    /// Like `run`, for a caller that has not been authenticated yet: the key
    /// is checked first, on the same connection (see `crate::auth`).
    pub async fn run_as<T, F>(&self, key: ApiKey, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection, AuthenticatedApp) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| {
            let app = key.authenticate(conn)?;
            work(conn, app)
        })
        .await
    }

    /// Like `run`, inside one write transaction (see `write_transaction`).
    pub async fn write<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let _turn = match &self.sqlite_writers {
            Some(queue) => Some(queue.lock().await),
            None => None,
        };
        self.run(move |conn| write_transaction(conn, work)).await
    }
}

pub fn checkout(pool: &DbPool) -> Result<PooledConnection<ConnectionManager>, ApiError> {
    pool.get()
        .map_err(|e| ApiError::DatabaseUnavailable(anyhow!(e)))
}

pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let migrations = match conn {
        DbConnection::Postgresql(_) => POSTGRES_MIGRATIONS,
        DbConnection::Sqlite(_) => SQLITE_MIGRATIONS,
    };
    let applied = conn
        .run_pending_migrations(migrations)
        .map_err(|e| anyhow!("migration failed: {e}"))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// A transaction that will write.
///
/// On SQLite a plain `BEGIN` takes the write lock only at the first write; a
/// transaction that read first then fails with SQLITE_BUSY at once when
/// another writer got there, without waiting. `BEGIN IMMEDIATE` takes the
/// lock up front, so concurrent writers queue on the busy timeout instead.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DieselError>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    match conn {
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgresql(_) => Manager::begin_transaction(conn)?,
    }
    run_and_finish(conn, work)
}

/// Runs `work` in the transaction just begun on `conn`: commits what
/// succeeded, rolls back what failed.
fn run_and_finish<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DieselError>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            Manager::rollback_transaction(conn).map_err(E::from)?;
            Err(err)
        }
    }
}

/// A read-only transaction with one snapshot for all its statements, so
/// that a page and the total it is computed against see the same rows.
/// (PostgreSQL's default, READ COMMITTED, takes a new snapshot per
/// statement; SQLite's deferred `BEGIN` holds the snapshot of its first read.)
pub fn read_snapshot<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN")?
        }
        DbConnection::Postgresql(inner) => AnsiTransactionManager::begin_transaction_sql(
            inner,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?,
    }
    run_and_finish(conn, work)
}

/// True for a unique-constraint violation, the one database error that
/// callers turn into a client error (`email_already_in_use`).
pub fn is_unique_violation(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        match &err {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => ApiError::DatabaseUnavailable(anyhow!(err)),
            _ => ApiError::Internal(anyhow!(err)),
        }
    }
}

/// Where a chunked walk over all matches of a list stopped: the sort key
/// and id of the last row sent. The next chunk starts strictly after it
/// (keyset paging), so each chunk costs the same however deep the walk is.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub at: chrono::NaiveDateTime,
    pub id: String,
}

impl Cursor {
    pub fn after(
        sort: &crate::domain::list_query::Sort,
        created_at: chrono::NaiveDateTime,
        updated_at: chrono::NaiveDateTime,
        id: &str,
    ) -> Cursor {
        let at = if sort.field == "updatedAt" {
            updated_at
        } else {
            created_at
        };
        Cursor {
            at,
            id: id.to_string(),
        }
    }
}

/// Timestamps are stored in UTC at microsecond precision: PostgreSQL keeps
/// microseconds and SQLite would keep nanoseconds, and the two must read back
/// the same.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_selects_the_backend() {
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap(),
            DatabaseUrl::Postgres(u) if u == "postgres://u@h/db?connect_timeout=5"
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db?sslmode=disable&connect_timeout=2").unwrap(),
            DatabaseUrl::Postgres(u) if u.ends_with("connect_timeout=2")
        ));
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/kyc.db").unwrap(),
            DatabaseUrl::Sqlite("data/kyc.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("kyc.db").unwrap(),
            DatabaseUrl::Sqlite("kyc.db".into())
        );
        assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn redaction_hides_passwords() {
        let url = DatabaseUrl::parse("postgres://user:secret@host/db").unwrap();
        assert!(!url.redacted().contains("secret"));
    }
}
