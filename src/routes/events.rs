//! `/events`: the app's events, oldest first, by cursor.

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
