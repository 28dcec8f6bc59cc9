use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::error::ApiError;
use crate::startup::AppState;

/// The process is up. No database, no auth: for liveness probes.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers. For readiness probes: a replica whose database is
/// gone says so with 503 `database_unavailable` and recovers by itself.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .db
        .run(|conn| {
            conn.batch_execute("SELECT 1")
                .map_err(|e| ApiError::DatabaseUnavailable(anyhow::anyhow!(e)))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok"})))
}
