//! `/identities`: the PublicMint identities contract.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::parse_uuid;
use super::stream::{self, Listed};
use crate::auth::{ApiKey, AuthenticatedApp};
use crate::db::identities as q;
use crate::db::Cursor;
use crate::domain::identity::parse_identity;
use crate::domain::list_query::{ListQuery, Page, IDENTITY_LIST};
use crate::error::ApiError;
use crate::services::documents::check_document_urls;
use crate::services::identities as service;
use crate::startup::AppState;
use crate::views::{Data, ListPage};

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
    let query_string = req.query_string().to_owned();
    let parse =
        move || ListQuery::parse(&query_string, &IDENTITY_LIST).map_err(ApiError::Validation);
    let listed = state
        .db
        .run_as(key, move |conn, auth| {
            let query = parse()?;
            if query.page == Page::All {
                let total = q::count(conn, &auth.app_id.to_string(), &query)?;
                return Ok(Listed::Stream { auth, query, total });
            }
            let (views, total) = service::list(conn, auth.app_id, &query)?;
            Ok(Listed::Page { views, total })
        })
        .await?;
    let (auth, query, total) = match listed {
        Listed::Page { views, total } => {
            return Ok(HttpResponse::Ok().json(ListPage { data: views, total }))
        }
        Listed::Stream { auth, query, total } => (auth, query, total),
    };
    let app_id = auth.app_id.to_string();
    let sort = query.sort;
    let fetch = move |conn: &mut crate::db::DbConnection, after: Option<&Cursor>| {
        let rows = q::list_after(conn, &app_id, &query, after, stream::CHUNK)?;
        let cursor = rows
            .last()
            .map(|r| Cursor::after(&sort, r.created_at, r.updated_at, &r.id));
        Ok((service::views_of(conn, rows)?, cursor))
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream::json_list(state.db.clone(), total, fetch)))
}
