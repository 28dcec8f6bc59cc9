//! `/events`: the app's events, oldest first, by cursor; `/audit-log/head`:
//! the head of the app's audit chain.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::auth::ApiKey;
use crate::error::ApiError;
use crate::services::events as service;

pub async fn list(
    state: web::Data<AppState>,
    key: ApiKey,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (query, keys) = (req.query_string().to_owned(), state.keys.clone());
    let page = key
        .run(&state.db, move |conn, auth| {
            service::list(conn, &keys, &auth.app_id, &query)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /audit-log/head`: the head hash of the app's audit chain and its
/// number of rows, for an operator to anchor elsewhere.
pub async fn audit_head(state: web::Data<AppState>, key: ApiKey) -> Result<HttpResponse, ApiError> {
    let (count, hash) = key
        .run(&state.db, move |conn, auth| {
            crate::services::audit::head(conn, &auth.app_id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"data": {"hash": hash, "count": count}})))
}
