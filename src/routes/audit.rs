//! `/audit-log`: the app's audit trail, and its chain's head; and
//! [`audited_read`], which every sensitive read answers through.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::app::AppState;
use crate::auth::ApiKey;
use crate::domain::audit::{Outcome, Target};
use crate::error::ApiError;
use crate::services::audit as service;
use crate::services::write::{Actor, Operation};

/// `GET /audit-log`: the app's linked records in chain order, by cursor.
pub async fn list(
    state: web::Data<AppState>,
    key: ApiKey,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = req.query_string().to_owned();
    let page = key
        .run(&state.db, move |conn, auth| {
            service::list(conn, &auth.app_id, &query)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /audit-log/head`: the head hash of the app's audit chain and its
/// number of linked records, for an operator to anchor elsewhere.
pub async fn head(state: web::Data<AppState>, key: ApiKey) -> Result<HttpResponse, ApiError> {
    let (count, hash) = key
        .run(&state.db, move |conn, auth| {
            service::head(conn, &auth.app_id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"data": {"hash": hash, "count": count}})))
}

/// Records a sensitive read and what it answered (allowed, or denied with
/// its status), then gives the answer back. A read that was answered but
/// could not be recorded is not answered: nobody reads a passport off the
/// record.
pub async fn audited_read<T>(
    state: &AppState,
    actor: Actor,
    operation: Operation,
    targets: Vec<Target>,
    answer: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let (outcome, status) = match &answer {
        Ok(_) => (Outcome::Allowed, 200),
        Err(e) => {
            let status = e.status_code().as_u16();
            let outcome = if status >= 500 {
                Outcome::Failed
            } else {
                Outcome::Denied
            };
            (outcome, status)
        }
    };
    let recorded =
        service::record_read(&state.write, actor, operation, outcome, status, targets).await;
    match (answer, recorded) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(not_recorded)) => Err(not_recorded),
        (Err(refused), Ok(())) => Err(refused),
        (Err(refused), Err(not_recorded)) => {
            tracing::warn!(error = %not_recorded, "recording a refused read failed");
            Err(refused)
        }
    }
}

/// One thing a read touched (`identity`, `document`, `object`).
pub fn target(kind: &str, id: &str) -> Target {
    Target {
        kind: kind.to_owned(),
        id: id.to_owned(),
    }
}
