//! `/identities`: the PublicMint identities contract.

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};

use super::parse_uuid;
use crate::auth::AuthenticatedApp;
use crate::db::identities::{self as q, Cursor};
use crate::domain::identity::parse_identity;
use crate::domain::list_query::{ListQuery, Page, IDENTITY_LIST};
use crate::error::ApiError;
use crate::services::documents::check_document_urls;
use crate::services::identities as service;
use crate::startup::AppState;

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
    Ok(HttpResponse::Ok().json(json!({ "data": view })))
}

pub async fn get(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_uuid("id", &id)?;
    let view = state
        .db
        .run(move |conn| service::get(conn, auth.app_id, id))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "data": view })))
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
    Ok(HttpResponse::Ok().json(json!({ "data": view })))
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
    auth: AuthenticatedApp,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query =
        ListQuery::parse(req.query_string(), &IDENTITY_LIST).map_err(ApiError::Validation)?;
    if query.page == Page::All {
        let app_id = auth.app_id.to_string();
        let total = {
            let (app_id, query) = (app_id.clone(), query.clone());
            state
                .db
                .run(move |conn| Ok(q::count(conn, &app_id, &query)?))
                .await?
        };
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .streaming(stream_all(state.into_inner(), app_id, query, total)));
    }
    let (views, total) = state
        .db
        .run(move |conn| service::list(conn, auth.app_id, &query))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "data": views, "total": total })))
}

/// Rows per database round trip when streaming `all=true`.
const CHUNK: i64 = 500;

enum Walk {
    Start,
    Next(Option<Cursor>),
    Done,
}

/// `all=true`: the body `{"data": [...], "total": N}` streamed chunk by chunk
/// (keyset paging), so memory stays flat however many identities match.
/// A failure half way cannot change the status any more; the connection is
/// cut so the client sees a truncated body rather than a short list.
fn stream_all(
    state: std::sync::Arc<AppState>,
    app_id: String,
    query: ListQuery,
    total: i64,
) -> impl Stream<Item = Result<Bytes, ApiError>> {
    stream::unfold(Walk::Start, move |walk| {
        let (state, app_id, query) = (state.clone(), app_id.clone(), query.clone());
        async move {
            match walk {
                Walk::Start => Some((Ok(Bytes::from_static(b"{\"data\":[")), Walk::Next(None))),
                Walk::Done => None,
                Walk::Next(after) => {
                    let first = after.is_none();
                    let sort = query.sort;
                    let chunk = state
                        .db
                        .run(move |conn| {
                            let rows = q::list_after(conn, &app_id, &query, after.as_ref(), CHUNK)?;
                            let cursor = rows.last().map(|r| Cursor::after(r, &sort));
                            Ok((service::views_of(conn, rows)?, cursor))
                        })
                        .await;
                    match chunk {
                        Err(err) => {
                            tracing::error!(error = %err, "streaming all identities failed");
                            Some((Err(err), Walk::Done))
                        }
                        Ok((views, None)) => {
                            debug_assert!(views.is_empty());
                            let tail = format!("],\"total\":{total}}}");
                            Some((Ok(Bytes::from(tail)), Walk::Done))
                        }
                        Ok((views, Some(cursor))) => {
                            let mut out = Vec::with_capacity(views.len() * 1024);
                            for (i, view) in views.iter().enumerate() {
                                if !(first && i == 0) {
                                    out.push(b',');
                                }
                                if let Err(e) = serde_json::to_writer(&mut out, view) {
                                    return Some((Err(ApiError::internal(e)), Walk::Done));
                                }
                            }
                            Some((Ok(Bytes::from(out)), Walk::Next(Some(cursor))))
                        }
                    }
                }
            }
        }
    })
}
