//! The schema migrations, embedded per backend.

use anyhow::anyhow;
use diesel::connection::SimpleConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{Db, DbConnection};

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

impl Db {
    /// Runs pending migrations for whichever backend this is. The
    /// connection is not handed out again: its session settings were
    /// changed for the migration.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self
            .checkout()
            .map_err(|e| anyhow!("cannot reach the database: {e}"))?;
        conn.discard();
        run_migrations(&mut conn)
    }
}

/// Serializes migration runs on one PostgreSQL database: replicas starting
/// together would otherwise race to create the same tables (two of three
/// failed with `pg_type_typname_nsp_index` before). Any constant works, as
/// long as every kyc-api uses the same one.
const MIGRATION_LOCK: i64 = 0x6b79_635f_6d69_6772; // "kyc_migr"

pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    match conn {
        DbConnection::Postgresql(pg) => {
            // A migration may rewrite a large table or wait for another
            // replica's run: no statement or lock time limit here.
            pg.batch_execute(&format!(
                "SET statement_timeout = 0; SET lock_timeout = 0; \
                 SELECT pg_advisory_lock({MIGRATION_LOCK});"
            ))
            .map_err(|e| anyhow!("cannot take the migration lock: {e}"))?;
            let applied: Result<Vec<String>, _> = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|done| done.iter().map(|v| v.to_string()).collect())
                .map_err(|e| anyhow!("migration failed: {e}"));
            let unlocked =
                pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            let applied = applied?;
            unlocked.map_err(|e| anyhow!("cannot release the migration lock: {e}"))?;
            Ok(applied)
        }
        // SQLite's migrations run in write transactions, which SQLite
        // already serializes (BEGIN IMMEDIATE behind a busy timeout).
        DbConnection::Sqlite(sqlite) => Ok(sqlite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| anyhow!("migration failed: {e}"))?
            .iter()
            .map(|v| v.to_string())
            .collect()),
    }
}

/// Whether the database's schema is behind this binary's migrations.
pub fn has_pending(conn: &mut DbConnection) -> Result<bool, diesel::result::Error> {
    let migrations = match conn {
        DbConnection::Postgresql(_) => POSTGRES_MIGRATIONS,
        DbConnection::Sqlite(_) => SQLITE_MIGRATIONS,
    };
    conn.has_pending_migration(migrations)
        .map_err(diesel::result::Error::QueryBuilderError)
}
