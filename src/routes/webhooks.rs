//! `/webhook-endpoints` and `/events/{id}/redeliver`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{idempotent, parse_id, Body, JsonBody};
use crate::app::AppState;
use crate::auth::{ApiKey, AuthenticatedApp};
use crate::domain::ids::{EventId, WebhookEndpointId};
use crate::domain::webhooks::EndpointInput;
use crate::error::ApiError;
use crate::services::webhooks as service;
use crate::services::write::{Answer, Operation};
use crate::views::Data;

fn input(state: &AppState, body: &serde_json::Value) -> Result<EndpointInput, ApiError> {
    EndpointInput::parse(body, &state.settings.webhooks.policy).map_err(ApiError::Validation)
}

pub async fn create(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let input = input(&state, &body)?;
        let app_id = auth.app_id.clone();
        let keys = state.keys.clone();
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::WebhookEndpointCreate,
                claim,
                move |tx| service::create_endpoint(tx, &keys, &app_id, input),
                |created| Answer::json(200, &Data { data: created }),
            )
            .await
    })
    .await
}

pub async fn list(state: web::Data<AppState>, key: ApiKey) -> Result<HttpResponse, ApiError> {
    let endpoints = key
        .run(&state.db, move |conn, auth| {
            service::list_endpoints(conn, &auth.app_id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: endpoints }))
}

pub async fn get(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = key
        .run(&state.db, move |conn, auth| {
            let id: WebhookEndpointId = parse_id("id", &id)?;
            service::get_endpoint(conn, &auth.app_id, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: endpoint }))
}

pub async fn patch(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
    JsonBody(body): JsonBody,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let id: WebhookEndpointId = parse_id("id", &id)?;
        let input = input(&state, &body)?;
        let app_id = auth.app_id.clone();
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::WebhookEndpointUpdate,
                claim,
                move |tx| service::update_endpoint(tx, &app_id, &id, input),
                |endpoint| Answer::json(200, &Data { data: endpoint }),
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
    let id: WebhookEndpointId = parse_id("id", &id)?;
    state
        .write
        .run(auth.actor(), Operation::WebhookEndpointDelete, move |tx| {
            tx.answering(204);
            service::delete_endpoint(tx, &auth.app_id, &id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn rotate_secret(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let id: WebhookEndpointId = parse_id("id", &id)?;
        let app_id = auth.app_id.clone();
        let keys = state.keys.clone();
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::WebhookSecretRotate,
                claim,
                move |tx| service::rotate_secret(tx, &keys, &app_id, &id),
                |rotated| Answer::json(200, &Data { data: rotated }),
            )
            .await
    })
    .await
}

pub async fn deliveries(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let limit = match web::Query::<Limit>::from_query(req.query_string()) {
        Ok(q) => match q.0.limit {
            None => 100,
            Some(n) if (1..=1000).contains(&n) => n,
            Some(_) => return Err(ApiError::invalid("limit", "must be from 1 to 1000")),
        },
        Err(_) => {
            return Err(ApiError::invalid(
                "limit",
                "the only parameter is limit, a whole number from 1 to 1000",
            ))
        }
    };
    let attempts = key
        .run(&state.db, move |conn, auth| {
            let id: WebhookEndpointId = parse_id("id", &id)?;
            service::attempts(conn, &auth.app_id, &id, limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: attempts }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedeliverBody {
    #[serde(default)]
    endpoint_id: Option<String>,
}

pub async fn redeliver(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
    Body(body): Body<RedeliverBody>,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let event_id: EventId = parse_id("id", &id)?;
        let endpoint_id: Option<WebhookEndpointId> = body
            .endpoint_id
            .as_deref()
            .map(|id| parse_id("endpointId", id))
            .transpose()?;
        let app_id = auth.app_id.clone();
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::EventRedeliver,
                claim,
                move |tx| service::redeliver(tx, &app_id, &event_id, endpoint_id.as_ref()),
                |scheduled| Answer::json(202, &Data { data: scheduled }),
            )
            .await
    })
    .await
}
