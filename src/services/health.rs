//! Whether this replica can serve: its database answers and, for SQLite,
//! can be written.

use crate::db::Db;
use crate::error::ApiError;

/// `Db::probe`; any failure is the database being unavailable (503), not a
/// server fault.
pub async fn database_answers(db: &Db) -> Result<(), ApiError> {
    Ok(db.probe().await?)
}
