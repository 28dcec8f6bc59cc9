//! `/identities`: the PublicMint identities contract.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{idempotent, stream};
use super::{parse_id, JsonBody};
use crate::app::AppState;
use crate::auth::{ApiKey, AuthenticatedApp};
use crate::domain::identity::{parse_identity, IdentityPatch};
use crate::domain::ids::IdentityId;
use crate::error::ApiError;
use crate::services::documents::seal_document_urls;
use crate::services::identities::{self as service, IdentityListing};
use crate::services::write::{Answer, Operation};
use crate::views::Data;

pub async fn create(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let input = parse_identity(&body, service::today()).map_err(ApiError::Validation)?;
        let sealed =
            seal_document_urls(&state.storage, &auth.app_id, input.document_urls()).await?;
        let (storage, keys, app_id) = (
            state.storage.clone(),
            state.keys.clone(),
            auth.app_id.clone(),
        );
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::IdentityCreate,
                claim,
                move |tx| service::create(tx, &storage, &keys, &app_id, input, &sealed),
                |view| Answer::json(200, &Data { data: view }),
            )
            .await
    })
    .await
}

pub async fn get(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (storage, keys) = (state.storage.clone(), state.keys.clone());
    let view = key
        .run(&state.db, move |conn, auth| {
            let id = parse_id("id", &id)?;
            service::get(conn, &storage, &keys, &auth.app_id, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

pub async fn patch(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let id: IdentityId = parse_id("id", &id)?;
        let patch = IdentityPatch::parse(&body);
        let sealed =
            seal_document_urls(&state.storage, &auth.app_id, patch.document_urls()).await?;
        let (storage, keys, app_id) = (
            state.storage.clone(),
            state.keys.clone(),
            auth.app_id.clone(),
        );
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::IdentityPatch,
                claim,
                move |tx| service::patch(tx, &storage, &keys, &app_id, &id, &patch, &sealed),
                |view| Answer::json(200, &Data { data: view }),
            )
            .await
    })
    .await
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
