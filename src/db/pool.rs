//! Opening connections, pooling them, and running Diesel work off the async
//! executor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{Pool, PooledConnection};

use super::transactions::{write_transaction, WriteConn};
use super::url::DatabaseUrl;
use super::DbConnection;

/// What can go wrong reaching the database, as opposed to running a query
/// (`diesel::result::Error`).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had within the pool's timeout.
    #[error("no database connection: {0}")]
    Unavailable(#[source] diesel::r2d2::PoolError),
    /// The blocking task running the work panicked or was cancelled.
    #[error("database task failed: {0}")]
    TaskFailed(String),
}

diesel::define_sql_function! {
    /// `EmailKeys::of(email).domain`, for SQL that SQLite runs (a migration).
    fn kyc_email_domain(email: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
diesel::define_sql_function! {
    /// `EmailKeys::of(email).local_reversed`, for SQL that SQLite runs.
    fn kyc_email_local_reversed(email: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
diesel::define_sql_function! {
    /// `Email::normalized`: the email as the unique index compares it.
    fn kyc_email_normalized(email: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Makes the server's own email keys available to SQL on a SQLite
/// connection: the migrations that add them fill existing rows with exactly
/// what the server writes for new ones.
fn register_sqlite_functions(conn: &mut diesel::SqliteConnection) -> QueryResult<()> {
    use crate::domain::email_search::EmailKeys;
    use crate::domain::identity::Email;
    kyc_email_domain_utils::register_impl(conn, |email: String| EmailKeys::of(&email).domain)?;
    kyc_email_local_reversed_utils::register_impl(conn, |email: String| {
        EmailKeys::of(&email).local_reversed
    })?;
    kyc_email_normalized_utils::register_impl(conn, |email: String| Email::normalize(&email))
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

/// The pool plus the helpers that reach it.
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

    /// A connection from the pool, for blocking callers (start-up, the CLI).
    pub fn checkout(&self) -> Result<PooledConnection<ConnectionManager>, DbError> {
        self.pool.get().map_err(DbError::Unavailable)
    }

    /// Runs blocking Diesel work on the blocking thread pool, never on the
    /// async executor.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let mut conn = db.checkout()?;
            work(&mut conn)
        })
        .await
        .map_err(|e| E::from(DbError::TaskFailed(e.to_string())))?
    }

    /// Runs `work` inside one write transaction (see `write_transaction`),
    /// after this process's earlier SQLite writers. Only the write path
    /// (`crate::services::write`) calls this: it is how every change reaches
    /// the database.
    pub async fn write_transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteConn<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let _turn = match &self.sqlite_writers {
            Some(queue) => Some(queue.lock().await),
            None => None,
        };
        self.run(move |conn| write_transaction(conn, work)).await
    }

    /// `write_transaction` for callers without an async runtime (the CLI,
    /// start-up): on the calling thread.
    pub fn write_transaction_blocking<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteConn<'_>) -> Result<T, E>,
        E: From<DbError> + From<diesel::result::Error>,
    {
        let mut conn = self.checkout()?;
        write_transaction(&mut conn, work)
    }
}
