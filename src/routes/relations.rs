//! `/identities/:id/relations`: a company's related parties (KYB).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{idempotent, parse_id, JsonBody};
use crate::app::AppState;
use crate::auth::{ApiKey, AuthenticatedApp};
use crate::domain::ids::{IdentityId, RelationId};
use crate::domain::relations::{NewRelation, RelationPatch};
use crate::error::ApiError;
use crate::services::relations as service;
use crate::services::write::{Answer, Operation};
use crate::views::Data;

pub async fn create(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let company: IdentityId = parse_id("id", &id)?;
        let input = NewRelation::parse(&body).map_err(ApiError::Validation)?;
        let app_id = auth.app_id.clone();
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::RelationCreate,
                claim,
                move |tx| service::create(tx, &app_id, &company, input),
                |view| Answer::json(200, &Data { data: view }),
            )
            .await
    })
    .await
}

pub async fn list(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let relations = key
        .run(&state.db, move |conn, auth| {
            let company: IdentityId = parse_id("id", &id)?;
            service::list(conn, &auth.app_id, &company)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: relations }))
}

pub async fn get(
    state: web::Data<AppState>,
    key: ApiKey,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let relation = key
        .run(&state.db, move |conn, auth| {
            let (company, id) = ids(&path)?;
            service::get(conn, &auth.app_id, &company, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: relation }))
}

pub async fn patch(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let (company, id) = ids(&path)?;
        let patch = RelationPatch::parse(&body).map_err(ApiError::Validation)?;
        let app_id = auth.app_id.clone();
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::RelationUpdate,
                claim,
                move |tx| service::patch(tx, &app_id, &company, &id, patch),
                |view| Answer::json(200, &Data { data: view }),
            )
            .await
    })
    .await
}

pub async fn delete(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (company, id) = ids(&path)?;
    state
        .write
        .run(auth.actor(), Operation::RelationDelete, move |tx| {
            tx.answering(204);
            service::delete(tx, &auth.app_id, &company, &id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn ids(path: &(String, String)) -> Result<(IdentityId, RelationId), ApiError> {
    Ok((parse_id("id", &path.0)?, parse_id("relationId", &path.1)?))
}
