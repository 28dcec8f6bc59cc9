use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

/// The process is up. No database, no auth: for liveness probes.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers. For readiness probes: a replica whose database is
/// gone says so with 503 `database_unavailable` and recovers by itself.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    crate::services::health::database_answers(&state.db).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok"})))
}
