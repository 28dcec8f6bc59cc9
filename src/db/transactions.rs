//! Transactions: the write transaction every change runs in, and the read
//! snapshot lists run in.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::PooledConnection;
use diesel::result::Error as DieselError;

use super::{ConnectionFault, ConnectionManager, DbConnection};

/// A connection inside a write transaction. Every query function that
/// changes data takes one, and only `write_transaction` makes one, so a
/// change cannot reach the database except through a write transaction
/// (which only the write path opens, see `Db::write_transaction`). It
/// dereferences to the connection for the reads a change makes.
pub struct WriteConn<'c> {
    conn: &'c mut DbConnection,
}

impl WriteConn<'_> {
    /// Whether this transaction holds the database's only write lock
    /// (SQLite: `BEGIN IMMEDIATE`), so no other write can run until it
    /// ends and taking a further lock inside it costs no one anything.
    pub fn holds_the_only_write_lock(&self) -> bool {
        matches!(self.conn, DbConnection::Sqlite(_))
    }
}

impl std::ops::Deref for WriteConn<'_> {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        self.conn
    }
}

impl std::ops::DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut DbConnection {
        self.conn
    }
}

/// A transaction that will write.
///
/// On SQLite a plain `BEGIN` takes the write lock only at the first write; a
/// transaction that read first then fails with SQLITE_BUSY at once when
/// another writer got there, without waiting. `BEGIN IMMEDIATE` takes the
/// lock up front, so concurrent writers queue on the busy timeout instead.
pub(super) fn write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut WriteConn<'_>) -> Result<T, E>,
    E: From<DieselError>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    match conn {
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgresql(_) => Manager::begin_transaction(conn)?,
    }
    run_and_finish(conn, |conn| work(&mut WriteConn { conn }))
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

/// A second connection reading the snapshot of a `read_snapshot`, made by
/// `Db::share_snapshot`: a long read can then run two statements at once
/// and still see one state of the data. Its transaction only reads and is
/// rolled back when it is dropped, before the connection goes back to the
/// pool (a connection that cannot roll back is not handed out again).
pub struct SharedSnapshot {
    conn: PooledConnection<ConnectionManager>,
}

impl SharedSnapshot {
    /// PostgreSQL: `spare` begins a read-only REPEATABLE READ transaction
    /// and imports `exporter`'s snapshot (`pg_export_snapshot()`, then
    /// `SET TRANSACTION SNAPSHOT`, which must be its first statement).
    /// The exported snapshot lives as long as the exporter's transaction,
    /// so this runs while the exporter waits, never after it went on.
    pub(super) fn import(
        exporter: &mut PgConnection,
        mut spare: PooledConnection<ConnectionManager>,
    ) -> QueryResult<Self> {
        use diesel::sql_types::Text;
        let id: String = diesel::select(diesel::dsl::sql::<Text>("pg_export_snapshot()"))
            .get_result(exporter)?;
        // The id goes into the statement as a literal (SET takes no bind
        // parameters): PostgreSQL's ids are hex digits and dashes.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(DieselError::DeserializationError(
                format!("pg_export_snapshot() answered an unexpected id {id:?}").into(),
            ));
        }
        let DbConnection::Postgresql(inner) = &mut **spare else {
            return Err(DieselError::QueryBuilderError(
                "a PostgreSQL snapshot can only be shared with a PostgreSQL connection".into(),
            ));
        };
        AnsiTransactionManager::begin_transaction_sql(
            inner,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?;
        let mut shared = SharedSnapshot { conn: spare };
        // On failure `shared` is dropped, which rolls the transaction back.
        shared
            .conn
            .batch_execute(&format!("SET TRANSACTION SNAPSHOT '{id}'"))?;
        Ok(shared)
    }

    pub fn conn(&mut self) -> &mut DbConnection {
        &mut self.conn
    }

    /// See `PooledDb::note`.
    pub fn note<T, E: ConnectionFault>(&mut self, result: &Result<T, E>) {
        self.conn.note(result);
    }
}

impl Drop for SharedSnapshot {
    fn drop(&mut self) {
        type Manager = <DbConnection as Connection>::TransactionManager;
        if Manager::rollback_transaction(&mut self.conn).is_err() {
            self.conn.discard();
        }
    }
}
