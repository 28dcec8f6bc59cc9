//! `/identities`: the PublicMint identities contract.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::parse_uuid;
use super::stream;
use crate::auth::{ApiKey, AuthenticatedApp};
use crate::db::identities as q;
use crate::domain::identity::parse_identity;
use crate::domain::list_query::IDENTITY_LIST;
use crate::error::ApiError;
use crate::services::documents::check_document_urls;
use crate::services::identities as service;
use crate::startup::AppState;
use crate::views::Data;

pub async fn create(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let input = parse_identity(&body, service::today(), true).map_err(ApiError::Validation)?;
    check_document_urls(&state, auth.app_id, &body).await?;
    let view = state
        .db
        .write(move |conn| service::create(conn, auth.app_id, input))
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

pub async fn get(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = state
        .db
        .run_as(key, move |conn, auth| {
            let id = parse_uuid("id", &id)?;
            service::get(conn, auth.app_id, id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

pub async fn patch(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_uuid("id", &id)?;
    let body = body.into_inner();
    check_document_urls(&state, auth.app_id, &body).await?;
    let view = state
        .db
        .write(move |conn| service::patch(conn, auth.app_id, id, &body))
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_uuid("id", &id)?;
    state
        .db
        .write(move |conn| service::delete(conn, auth.app_id, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list(
    state: web::Data<AppState>,
    key: ApiKey,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let source = stream::ListSource {
        spec: &IDENTITY_LIST,
        page: service::list,
        count: q::count,
        after: q::list_after,
        position: |row| (row.created_at, row.updated_at, &row.id),
        views: service::views_of,
    };
    stream::answer_list(&state.db, key, req.query_string().to_owned(), source).await
}
