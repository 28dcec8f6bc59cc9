//! Whether this replica can serve: its database answers.

use diesel::connection::SimpleConnection;

use crate::db::Db;
use crate::error::ApiError;

/// `SELECT 1` on a pooled connection; any failure is the database being
/// unavailable (503), not a server fault.
pub async fn database_answers(db: &Db) -> Result<(), ApiError> {
    db.run(|conn| {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ApiError::DatabaseUnavailable(anyhow::anyhow!(e)))
    })
    .await
}
