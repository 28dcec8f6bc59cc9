//! Verifications, decisions, blocking, history, the sandbox shortcut and
//! operations.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{idempotent, stream};
use super::{parse_id, Body};
use crate::app::AppState;
use crate::auth::{ApiKey, AuthenticatedApp};
use crate::domain::decisions::{Decision, DecisionFields, RejectLabel, RejectType};
use crate::domain::ids::{IdentityId, VerificationId};
use crate::domain::input::bounded_text;
use crate::domain::kyc::{RiskRating, VerificationStatus};
use crate::error::{ApiError, Refusal};
use crate::services::kyc::{self as service, VerificationListing};
use crate::services::write::{Answer, Operation};
use crate::views::Data;

pub async fn list_verifications(
    state: web::Data<AppState>,
    key: ApiKey,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    stream::answer_list::<VerificationListing>(&state, key, &req).await
}

pub async fn get_verification(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = key
        .run(&state.db, move |conn, auth| {
            let id: VerificationId = parse_id("id", &id)?;
            service::get_verification(conn, &auth.app_id, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DecisionBody {
    status: VerificationStatus,
    reason: Option<String>,
    risk_rating: Option<RiskRating>,
    reject_type: Option<RejectType>,
    reject_labels: Option<Vec<RejectLabel>>,
    client_comment: Option<String>,
    internal_comment: Option<String>,
}

pub async fn decide(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
    Body(body): Body<DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let id: VerificationId = parse_id("id", &id)?;
        let decision = Decision::new(DecisionFields {
            status: Some(body.status),
            reason: body.reason,
            risk_rating: body.risk_rating,
            reject_type: body.reject_type,
            reject_labels: body.reject_labels,
            client_comment: body.client_comment,
            internal_comment: body.internal_comment,
        })
        .map_err(ApiError::Validation)?;
        let app_id = auth.app_id.clone();
        state
            .write
            .run_answered(
                auth.actor(),
                Operation::VerificationDecide,
                claim,
                move |tx| service::decide(tx, &app_id, &id, decision),
                |view| Answer::json(200, &Data { data: view }),
            )
            .await
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockBody {
    reason: String,
}

async fn set_blocked(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
    body: BlockBody,
    blocked: bool,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let id: IdentityId = parse_id("id", &id)?;
        let reason = bounded_text(&body.reason, 500).map_err(|m| ApiError::invalid("reason", m))?;
        let operation = if blocked {
            Operation::IdentityBlock
        } else {
            Operation::IdentityUnblock
        };
        let (storage, keys, app_id) = (
            state.storage.clone(),
            state.keys.clone(),
            auth.app_id.clone(),
        );
        state
            .write
            .run_answered(
                auth.actor(),
                operation,
                claim,
                move |tx| service::set_blocked(tx, &storage, &keys, &app_id, &id, blocked, &reason),
                |view| Answer::json(200, &Data { data: view }),
            )
            .await
    })
    .await
}

pub async fn block(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
    Body(body): Body<BlockBody>,
) -> Result<HttpResponse, ApiError> {
    set_blocked(state, auth, id, req, body, true).await
}

pub async fn unblock(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
    Body(body): Body<BlockBody>,
) -> Result<HttpResponse, ApiError> {
    set_blocked(state, auth, id, req, body, false).await
}

pub async fn history(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let events = key
        .run(&state.db, move |conn, auth| {
            let id: IdentityId = parse_id("id", &id)?;
            service::history(conn, &auth.app_id, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data: events }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SandboxBody {
    identity_id: String,
    email: String,
    reason: Option<String>,
    reject_type: Option<RejectType>,
    reject_labels: Option<Vec<RejectLabel>>,
    client_comment: Option<String>,
    internal_comment: Option<String>,
}

/// The sandbox's approve or reject: settles the identity's verification
/// with the decision the body describes and answers `message`.
async fn sandbox_settle(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    req: HttpRequest,
    body: SandboxBody,
    outcome: VerificationStatus,
    message: &'static str,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |claim| async {
        let identity_id: IdentityId = parse_id("identityId", &body.identity_id)?;
        let decision = Decision::new(DecisionFields {
            status: Some(outcome),
            reason: body.reason,
            risk_rating: None,
            reject_type: body.reject_type,
            reject_labels: body.reject_labels,
            client_comment: body.client_comment,
            internal_comment: body.internal_comment,
        })
        .map_err(ApiError::Validation)?;
        let email = body.email;
        let operation = if outcome == VerificationStatus::Approved {
            Operation::SandboxApprove
        } else {
            Operation::SandboxReject
        };
        let app_id = auth.app_id.clone();
        state
            .write
            .run_answered(
                auth.actor(),
                operation,
                claim,
                move |tx| service::sandbox_settle(tx, &app_id, &identity_id, &email, &decision),
                move |()| Answer::json(200, &json!({ "message": message })),
            )
            .await
    })
    .await
}

pub async fn sandbox_approve(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    req: HttpRequest,
    Body(body): Body<SandboxBody>,
) -> Result<HttpResponse, ApiError> {
    // The reference's approval takes no reason; the rejection's fields are
    // refused by the decision itself.
    if body.reason.is_some() {
        return Err(ApiError::invalid(
            "reason",
            "is not a known field for an approval",
        ));
    }
    let message = "Identity sent to approval";
    sandbox_settle(
        state,
        auth,
        req,
        body,
        VerificationStatus::Approved,
        message,
    )
    .await
}

pub async fn sandbox_reject(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    req: HttpRequest,
    Body(body): Body<SandboxBody>,
) -> Result<HttpResponse, ApiError> {
    let message = "Identity sent to rejection";
    sandbox_settle(
        state,
        auth,
        req,
        body,
        VerificationStatus::Rejected,
        message,
    )
    .await
}

pub async fn operations(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rules = state.operation_rules.clone();
    let data = key
        .run(&state.db, move |conn, auth| {
            let id: IdentityId = parse_id("id", &id)?;
            service::operations(conn, &rules, &auth.app_id, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Data { data }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidateBody {
    action: String,
    code: String,
    identity_id: String,
}

pub async fn validate_operation(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    req: HttpRequest,
    Body(body): Body<ValidateBody>,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |_| async {
        let identity_id: IdentityId = parse_id("identityId", &body.identity_id)?;
        let rules = state.operation_rules.clone();
        if rules.find(&body.action, &body.code).is_none() {
            return Err(ApiError::refused(
                Refusal::UnknownOperation,
                format!(
                    "No operation `{}` with action `{}` is configured.",
                    body.code, body.action
                ),
            ));
        }
        let app_id = auth.app_id.clone();
        state
            .db
            .run(move |conn| {
                let rule = rules
                    .find(&body.action, &body.code)
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("rule vanished")))?;
                service::validate_operation(conn, &rules, rule, &app_id, &identity_id)
            })
            .await?;
        Ok(Answer::no_content())
    })
    .await
}
