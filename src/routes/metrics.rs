//! `GET /metrics`: Prometheus text format (`metrics` +
//! `metrics-exporter-prometheus`). Requests by method, route template and
//! status class (never by raw path or tenant), their latency, the database
//! pool, the wait for a connection and for SQLite's writer turn. With
//! `KYC_METRICS_BIND` it is served there only, and the public route answers
//! 404.

use actix_web::{web, HttpResponse};

use crate::app::AppState;
use crate::error::ApiError;

/// The public route.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.settings.metrics_bind.is_some() {
        return Err(ApiError::NotFound);
    }
    Ok(render(&state))
}

/// The route of the separate metrics listener.
pub async fn metrics_listener(state: web::Data<AppState>) -> HttpResponse {
    render(&state)
}

fn render(state: &AppState) -> HttpResponse {
    let pool = state.db.pool_state();
    metrics::gauge!("kyc_db_pool_connections").set(f64::from(pool.open));
    metrics::gauge!("kyc_db_pool_idle_connections").set(f64::from(pool.idle));
    metrics::gauge!("kyc_db_pool_in_use_connections")
        .set(f64::from(pool.open.saturating_sub(pool.idle)));
    metrics::gauge!("kyc_db_pool_waiting_checkouts").set(f64::from(pool.waiting));
    let body = match crate::telemetry::metrics() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
