//! What every request handler can reach. Nothing here is state a second
//! replica would need: it is configuration and handles to shared services
//! (the rate limiter's counters are per replica by design, see
//! `services::rate_limit`).

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Db;
use crate::domain::operations::OperationRules;
use crate::services::rate_limit::RateLimits;
use crate::services::write::WritePath;
use crate::storage::Storage;

pub struct AppState {
    /// For reads; changes go through `write`.
    pub db: Db,
    pub write: WritePath,
    pub settings: Arc<Settings>,
    pub operation_rules: Arc<OperationRules>,
    /// The one storage handle; the local backend's `/files` routes reach
    /// the same one as `web::Data<Storage>`.
    pub storage: Arc<Storage>,
    /// `KYC_RATE_LIMIT_PER_SECOND`, per API key and per replica; `None`
    /// when unset.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// When `/ready` last reached the storage.
    pub storage_check: crate::services::health::StorageCheck,
    /// Notes keys' last use (hourly, off the request path).
    pub key_usage: crate::services::tenancy::KeyUsage,
    /// Signs and opens the lists' `page[after]` / `page[before]` cursors
    /// (its key is shared by every replica through the database).
    pub cursors: crate::services::cursor::CursorSigner,
    /// `KYC_ENCRYPTION_KEYS` (or sandbox's generated key): seals secrets
    /// at rest.
    pub keys: Arc<crate::domain::crypto::KeyRing>,
    /// Signs and opens the review console's session tokens (its key is
    /// shared by every replica through the database).
    pub console: crate::services::console::SessionSigner,
}
