//! The database layer: one connection type over PostgreSQL and SQLite
//! (`url`, `pool`), the transactions changes and lists run in
//! (`transactions`), migrations, and every query, one submodule per table
//! family.
//!
//! Query functions return `QueryResult`; this layer knows nothing of HTTP
//! or of the callers' errors. Functions that change data take a
//! `WriteConn`, which only a write transaction hands out.

pub mod apps;
pub mod audit;
pub mod console;
pub mod custody;
pub mod events;
mod fault;
pub mod idempotency;
pub mod identities;
pub mod keyset;
pub mod kyc;
mod migrations;
mod pool;
pub mod relations;
pub mod schema;
mod transactions;
mod types;
mod url;
pub mod webhooks;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use fault::{fault_of, ConnectionFault, Fault};
pub use keyset::Cursor;
pub use migrations::{run_migrations, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
pub use pool::{ConnectionManager, Db, DbError, DbPool, PooledDb, ProbeError, SessionLimits};
pub use transactions::{read_snapshot, SharedSnapshot, WriteConn};
pub use url::DatabaseUrl;

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

/// `<table>.app_id = ?` for a query that names the rows it wants by id, as
/// an expression no index is entered by (`app_id || ''`, the same on both
/// backends). SQLite plans without statistics (the server never runs
/// `ANALYZE`) and takes `app_id = ?`, which every index of these tables
/// starts with, for more selective than `id IN (…)` of ten ids or more, so
/// it walked the whole app for them (250 ms for 12 ids among 1,000,000
/// identities). This way the ids are the way in and the app is checked on
/// each row found.
///
/// It is a typed expression (`app_id || '' = ?`, the `''` bound), not an
/// SQL literal: Diesel never caches a statement with a literal in it, and
/// preparing the metadata read again on every SQLite GET was 8 % of its CPU.
macro_rules! app_is_not_the_way_in {
    ($column:expr, $app_id:expr) => {
        diesel::TextExpressionMethods::concat($column, "").eq($app_id)
    };
}
pub(crate) use app_is_not_the_way_in;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// True for a unique-constraint violation, the one database error that
/// callers turn into a client error (`email_already_in_use`).
pub fn is_unique_violation(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// A unique violation of an index over `column`: PostgreSQL names the
/// index (`identities_app_ref_id_key`), SQLite the columns
/// (`UNIQUE constraint failed: identities.app_id, identities.ref_id`).
pub fn is_unique_violation_of(err: &DieselError, column: &str) -> bool {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name()
                .is_some_and(|name| name.contains(column))
                || info.message().contains(&format!(".{column}"))
        }
        _ => false,
    }
}

/// Timestamps are stored in UTC at microsecond precision: PostgreSQL keeps
/// microseconds and SQLite would keep nanoseconds, and the two must read back
/// the same.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}
