//! `/identities`: the PublicMint identities contract.

use actix_web::{web, HttpRequest, HttpResponse};

use super::audit::{audited_read, target};
use super::{idempotent, stream};
use super::{parse_id, JsonBody};
use crate::app::AppState;
use crate::auth::{ApiKey, AuthenticatedApp};
use crate::domain::identity::{parse_identity, IdentityPatch};
use crate::domain::ids::IdentityId;
use crate::error::{ApiError, Refusal};
use crate::services::custody;
use crate::services::documents::seal_document_urls;
use crate::services::identities::{self as service, IdentityListing};
use crate::services::write::{Answer, Operation};
use crate::views::{Data, IdentityAnswer};

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

/// `includeErased=true|false` (default false); no other parameter.
fn include_erased(query: &str) -> Result<bool, ApiError> {
    let mut include = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match (name.as_ref(), value.as_ref(), include) {
            ("includeErased", _, Some(_)) => {
                return Err(ApiError::invalid(
                    "includeErased",
                    "is given more than once",
                ))
            }
            ("includeErased", "true", None) => include = Some(true),
            ("includeErased", "false", None) => include = Some(false),
            ("includeErased", _, None) => {
                return Err(ApiError::invalid("includeErased", "must be true or false"))
            }
            (other, _, _) => {
                return Err(ApiError::invalid(
                    other.to_owned(),
                    "is not a parameter of this route; the only one is includeErased",
                ))
            }
        }
    }
    Ok(include.unwrap_or(false))
}

pub async fn get(
    state: web::Data<AppState>,
    key: ApiKey,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (storage, keys) = (state.storage.clone(), state.keys.clone());
    let query = req.query_string().to_owned();
    let (auth, id, include_erased, view) = key
        .run(&state.db, move |conn, auth| {
            // Checked after the key, like every query string.
            let include_erased = include_erased(&query)?;
            let id = parse_id("id", &id)?;
            let view = match service::get(conn, &storage, &keys, &auth.app_id, &id) {
                Ok(view) => Ok(IdentityAnswer::Live(Box::new(view))),
                Err(e) if include_erased && e.is_refusal(Refusal::IdentityNotFound) => {
                    custody::get_erased(conn, &auth.app_id, &id)
                }
                Err(e) => Err(e),
            };
            Ok((auth, id, include_erased, view))
        })
        .await?;
    // Reading past erasure is a sensitive read: recorded, allowed or not.
    let view = if include_erased {
        audited_read(
            &state,
            auth.actor(),
            Operation::IdentityReadErased,
            vec![target("identity", id.as_str())],
            view,
        )
        .await?
    } else {
        view?
    };
    Ok(HttpResponse::Ok().json(Data { data: view }))
}

/// `POST /identities/:id/erase`: 204 once the identity is erased and its
/// documents are deleted from storage (again 204 for an erased one). With
/// an Idempotency-Key the answer is stored only after the deletions, so a
/// retry after a failed deletion erases (and deletes) again.
pub async fn erase(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |_claim| async {
        let id: IdentityId = parse_id("id", &id)?;
        let app_id = auth.app_id.clone();
        let objects = state
            .write
            .run(auth.actor(), Operation::IdentityErase, move |tx| {
                tx.answering(204);
                custody::erase(tx, &app_id, &id)
            })
            .await?;
        custody::delete_objects(&state.storage, &objects).await?;
        Ok(Answer::no_content())
    })
    .await
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
            tx.answering(204);
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
