use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

/// The process is up. No database, no auth: for liveness probes.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// For readiness probes: the database answers (SQLite: can be written), its
/// schema is current and the storage answers; otherwise 503 with the
/// reason's code (`database_unavailable`, `migrations_pending`,
/// `storage_unavailable`, ...), recovering by itself.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    crate::services::health::ready(&state.db, &state.storage, &state.storage_check).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok"})))
}
