//! `/identities`: the PublicMint identities contract.

use actix_web::{web, HttpRequest, HttpResponse};

use super::stream;
use super::{parse_id, JsonBody};
use crate::app::AppState;
use crate::auth::{ApiKey, AuthenticatedApp};
use crate::domain::identity::{parse_identity, IdentityPatch};
use crate::domain::ids::IdentityId;
use crate::error::ApiError;
use crate::services::documents::check_document_urls;
use crate::services::identities::{self as service, IdentityListing};
use crate::services::write::Operation;
use crate::views::Data;

pub async fn create(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let input = parse_identity(&body, service::today()).map_err(ApiError::Validation)?;
    check_document_urls(&state.storage, &auth.app_id, input.document_urls()).await?;
    let view = state
        .write
        .run(auth.actor(), Operation::IdentityCreate, move |tx| {
            service::create(tx, &auth.app_id, input)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

pub async fn get(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = key
        .run(&state.db, move |conn, auth| {
            let id = parse_id("id", &id)?;
            service::get(conn, &auth.app_id, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

pub async fn patch(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    let id: IdentityId = parse_id("id", &id)?;
    let patch = IdentityPatch::parse(&body);
    check_document_urls(&state.storage, &auth.app_id, patch.document_urls()).await?;
    let view = state
        .write
        .run(auth.actor(), Operation::IdentityPatch, move |tx| {
            service::patch(tx, &auth.app_id, &id, &patch)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: IdentityId = parse_id("id", &id)?;
    state
        .write
        .run(auth.actor(), Operation::IdentityDelete, move |tx| {
            service::delete(tx, &auth.app_id, &id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list(
    state: web::Data<AppState>,
    key: ApiKey,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    stream::answer_list::<IdentityListing>(&state, key, &req).await
}
