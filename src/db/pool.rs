//! Opening connections, pooling them, and running Diesel work off the async
//! executor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{Pool, PooledConnection};

use super::transactions::{write_transaction, SharedSnapshot, WriteConn};
use super::url::DatabaseUrl;
use super::{ConnectionFault, DbConnection};

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
    /// The work did not finish within the request's database deadline.
    #[error("the database did not answer within {0:?}")]
    TimedOut(Duration),
}

/// Why `Db::probe` failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// The schema is behind this binary (another replica is migrating, or
    /// the database was replaced).
    #[error("database migrations are pending")]
    MigrationsPending,
}

impl ConnectionFault for ProbeError {
    /// A failed probe's connection is never reused (pending migrations are
    /// not the connection's fault).
    fn is_connection_fault(&self) -> bool {
        !matches!(self, ProbeError::MigrationsPending)
    }
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
    limits: SessionLimits,
}

/// Time bounds every PostgreSQL session of the pool runs under, so that no
/// request waits on the database without limit: a statement is cancelled
/// after `statement`, a lock wait after `lock`, and a transaction left idle
/// (a client gone mid-transaction) is ended after `idle_in_transaction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub statement: Duration,
    pub lock: Duration,
    pub idle_in_transaction: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            statement: Duration::from_secs(5),
            lock: Duration::from_secs(2),
            idle_in_transaction: Duration::from_secs(10),
        }
    }
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            limits: SessionLimits::default(),
        }
    }

    pub fn with_limits(self, limits: SessionLimits) -> Self {
        Self { limits, ..self }
    }

    pub fn connect(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = diesel::PgConnection::establish(url)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                let SessionLimits {
                    statement,
                    lock,
                    idle_in_transaction,
                } = self.limits;
                conn.batch_execute(&format!(
                    "SET statement_timeout = {}; SET lock_timeout = {}; \
                     SET idle_in_transaction_session_timeout = {};",
                    statement.as_millis(),
                    lock.as_millis(),
                    idle_in_transaction.as_millis(),
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgresql(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                // SQLite quietly opens a file it cannot write read-only, and
                // such a connection would fail every write for as long as
                // the pool keeps it, long after the file is writable again.
                // Refuse it instead: the pool tries again on a later checkout.
                // Only the metadata is read: opening and closing the file
                // with another API would drop every POSIX lock SQLite's own
                // connections of this process hold on it (fcntl locks are
                // per process and inode), breaking their WAL read locks.
                let read_only = std::fs::metadata(path)
                    .map(|meta| meta.permissions().readonly())
                    .unwrap_or(false);
                if read_only {
                    return Err(diesel::r2d2::Error::ConnectionError(
                        diesel::ConnectionError::BadConnection(format!(
                            "the SQLite file {} is read-only",
                            path.display()
                        )),
                    ));
                }
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
    /// Met a fault of the database or its disk (`ConnectionFault`): the
    /// pool drops it instead of handing it out again.
    faulted: bool,
}

impl PooledDb {
    /// Drops this connection when it goes back to the pool (its session
    /// was changed).
    pub fn discard(&mut self) {
        self.faulted = true;
    }

    /// Drops this connection when it goes back to the pool, if `result`
    /// failed with a fault of the database (see `db::fault`).
    pub fn note<T, E: ConnectionFault>(&mut self, result: &Result<T, E>) {
        if let Err(e) = result {
            if e.is_connection_fault() {
                self.faulted = true;
            }
        }
    }
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
            faulted: false,
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
        if pooled.faulted {
            return true;
        }
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
    /// How long `run` waits for its work before answering
    /// `database_timeout`; the blocking thread may still be stuck in the
    /// driver, but the request is not.
    deadline: Duration,
    /// When the last readiness write probe succeeded (`probe`).
    write_probe: Arc<std::sync::Mutex<Option<Instant>>>,
    /// The schema was found up to date with this binary (`probe`).
    schema_current: Arc<std::sync::atomic::AtomicBool>,
    /// Checkouts waiting for a connection now (r2d2 does not count them).
    waiting: Arc<std::sync::atomic::AtomicU32>,
}

/// The pool as `/metrics` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub open: u32,
    pub idle: u32,
    pub waiting: u32,
}

impl Db {
    /// Connects once, outside the pool, so a wrong URL or an unreachable
    /// server fails start-up at once with the driver's own message.
    pub fn connect(
        url: &DatabaseUrl,
        pool_size: u32,
        timeout: Duration,
        limits: SessionLimits,
    ) -> anyhow::Result<Self> {
        if let DatabaseUrl::Sqlite(path) = url {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "cannot create the directory of the SQLite database {}",
                        dir.display()
                    )
                })?;
            }
            // The file holds every customer's PII: readable by its owner
            // only. SQLite gives its -wal and -shm files the same mode.
            // Created (empty) before any SQLite connection of this process
            // opens it; a file that already exists is left alone (another
            // process may have it open).
            if !path.exists() {
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context(format!(
                            "cannot create the SQLite database {}",
                            path.display()
                        )))
                    }
                }
            }
        }
        let manager = ConnectionManager::new(url.clone()).with_limits(limits);
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
            // A checkout, then a statement: past both, the database is not
            // answering (a stalled network ignores statement_timeout).
            deadline: timeout + limits.statement + Duration::from_secs(1),
            write_probe: Arc::new(std::sync::Mutex::new(None)),
            schema_current: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            waiting: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        })
    }

    /// How long a request waits for database work before `database_timeout`.
    /// Whether writes run one at a time (SQLite), each in a transaction
    /// that holds the database's only write lock.
    pub fn writes_are_serial(&self) -> bool {
        self.sqlite_writers.is_some()
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A connection from the pool, for blocking callers (start-up, the CLI).
    pub fn checkout(&self) -> Result<PooledConnection<ConnectionManager>, DbError> {
        use std::sync::atomic::Ordering;
        let started = Instant::now();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let conn = self.pool.get().map_err(DbError::Unavailable);
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        metrics::histogram!("kyc_db_checkout_wait_seconds").record(started.elapsed().as_secs_f64());
        conn
    }

    /// A second connection reading the snapshot `conn`'s `read_snapshot`
    /// reads (see `SharedSnapshot`), for reading beside it; `None` when
    /// there is none to spare. SQLite's snapshots cannot be handed to
    /// another connection; on PostgreSQL only a connection no request is
    /// waiting for is taken: an idle one, or a new one while the pool is
    /// below its size (waiting at most `SPARE_WAIT` for it to open).
    pub fn share_snapshot(
        &self,
        conn: &mut DbConnection,
    ) -> Result<Option<SharedSnapshot>, diesel::result::Error> {
        use std::sync::atomic::Ordering;
        const SPARE_WAIT: Duration = Duration::from_millis(250);
        let DbConnection::Postgresql(exporter) = conn else {
            return Ok(None);
        };
        if self.waiting.load(Ordering::Relaxed) > 0 {
            return Ok(None);
        }
        let state = self.pool.state();
        let spare = if state.idle_connections > 0 {
            self.pool.try_get()
        } else if state.connections < self.pool.max_size() {
            self.pool.get_timeout(SPARE_WAIT).ok()
        } else {
            None
        };
        match spare {
            Some(spare) => SharedSnapshot::import(exporter, spare).map(Some),
            None => Ok(None),
        }
    }

    /// Connections open, idle among them, and checkouts waiting, for `/metrics`.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            open: state.connections,
            idle: state.idle_connections,
            waiting: self.waiting.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Runs blocking Diesel work on the blocking thread pool, never on the
    /// async executor.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + ConnectionFault + Send + 'static,
    {
        let db = self.clone();
        let task = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = db.checkout()?;
            let result = work(&mut conn);
            conn.note(&result);
            result
        });
        match tokio::time::timeout(self.deadline, task).await {
            Ok(done) => done.map_err(|e| E::from(DbError::TaskFailed(e.to_string())))?,
            Err(_) => Err(E::from(DbError::TimedOut(self.deadline))),
        }
    }

    /// Whether the database can be read and, for SQLite, written: SQLite
    /// rewrites its `user_version` (one page through the WAL), at most every
    /// `WRITE_PROBE_EVERY` after a success, so a read-only file or a full
    /// disk shows; PostgreSQL answers `SELECT 1` under the session's
    /// statement timeout. Failures are not cached: recovery shows at once.
    pub async fn probe(&self) -> Result<(), ProbeError> {
        const WRITE_PROBE_EVERY: Duration = Duration::from_secs(2);
        let recent = self
            .write_probe
            .lock()
            .map(|last| last.is_some_and(|at| at.elapsed() < WRITE_PROBE_EVERY))
            .unwrap_or(false);
        let last = self.write_probe.clone();
        let schema_current = self.schema_current.clone();
        self.run(move |conn| -> Result<(), ProbeError> {
            // Once current, the schema stays so for this process.
            if !schema_current.load(std::sync::atomic::Ordering::Relaxed) {
                if super::migrations::has_pending(conn)? {
                    return Err(ProbeError::MigrationsPending);
                }
                schema_current.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            match conn {
                DbConnection::Postgresql(pg) => pg.batch_execute("SELECT 1")?,
                DbConnection::Sqlite(sqlite) if !recent => {
                    let version: i32 =
                        diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
                            "user_version FROM pragma_user_version",
                        ))
                        .get_result(sqlite)?;
                    sqlite.batch_execute(&format!("PRAGMA user_version = {version}"))?;
                    if let Ok(mut last) = last.lock() {
                        *last = Some(Instant::now());
                    }
                }
                DbConnection::Sqlite(sqlite) => sqlite.batch_execute("SELECT 1")?,
            }
            Ok(())
        })
        .await
    }

    /// Runs `work` inside one write transaction (see `write_transaction`),
    /// after this process's earlier SQLite writers. Only the write path
    /// (`crate::services::write`) calls this: it is how every change reaches
    /// the database.
    pub async fn write_transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteConn<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + ConnectionFault + Send + 'static,
    {
        let _turn = match &self.sqlite_writers {
            Some(queue) => {
                let started = Instant::now();
                let turn = queue.lock().await;
                metrics::histogram!("kyc_db_sqlite_writer_wait_seconds")
                    .record(started.elapsed().as_secs_f64());
                Some(turn)
            }
            None => None,
        };
        self.run(move |conn| write_transaction(conn, work)).await
    }

    /// `write_transaction` for callers without an async runtime (the CLI,
    /// start-up): on the calling thread.
    pub fn write_transaction_blocking<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteConn<'_>) -> Result<T, E>,
        E: From<DbError> + From<diesel::result::Error> + ConnectionFault,
    {
        let mut conn = self.checkout()?;
        let result = write_transaction(&mut conn, work);
        conn.note(&result);
        result
    }
}

#[cfg(test)]
mod tests {
    use diesel::{Connection, RunQueryDsl};

    /// The bundled SQLite is built as `.cargo/config.toml` says: the
    /// benchmarks (and the safety argument for multi-thread mode) rely on
    /// those flags, which a dependency upgrade or a lost `[env]` entry
    /// would drop without a word.
    #[test]
    fn the_bundled_sqlite_is_built_with_the_projects_flags() {
        #[derive(diesel::QueryableByName)]
        struct CompileOption {
            #[diesel(sql_type = diesel::sql_types::Text)]
            compile_options: String,
        }
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        for wanted in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0", "ENABLE_QPSG"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "{wanted} in {options:?}"
            );
        }
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }
}
