//! Whether this replica can serve: its database answers (and, for SQLite,
//! can be written), its schema is current, and its document storage can be
//! reached.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::error::ApiError;
use crate::storage::Storage;

/// A storage check costs a round trip to S3: after a success, `/ready`
/// skips it for this long.
const STORAGE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// When the storage last answered (per replica: readiness is this
/// process's own).
#[derive(Debug, Default)]
pub struct StorageCheck(Mutex<Option<Instant>>);

/// `Db::probe`, then the storage (at most every `STORAGE_CHECK_EVERY`
/// after a success; failures are never cached, so recovery shows at once).
pub async fn ready(db: &Db, storage: &Storage, last: &StorageCheck) -> Result<(), ApiError> {
    db.probe().await?;
    let recent = last
        .0
        .lock()
        .map(|at| at.is_some_and(|at| at.elapsed() < STORAGE_CHECK_EVERY))
        .unwrap_or(false);
    if !recent {
        storage.check().await?;
        if let Ok(mut at) = last.0.lock() {
            *at = Some(Instant::now());
        }
    }
    Ok(())
}
