//! What every request handler can reach. Nothing here is state a second
//! replica would need: it is configuration and handles to shared services.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Db;
use crate::domain::operations::OperationRules;
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
}
