//! `Idempotency-Key` on every `POST` and `PATCH` of the API (see
//! `services::idempotency`): the header is read and checked, the key
//! claimed or its stored answer replayed (`Idempotent-Replayed: true`),
//! and a request that fails gives its claim up.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::auth::AuthenticatedApp;
use crate::domain::idempotency::IdempotencyKey;
use crate::error::ApiError;
use crate::services::idempotency::{self as service, Begun, Claim, KeyedRequest};
use crate::services::write::Answer;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The hash of a request's JSON body, noted by the body extractor when the
/// request carries a key: the body as parsed, re-serialized with sorted
/// keys, so spacing and key order do not make a retry a different request.
#[derive(Debug, Clone)]
pub struct BodyDigest(String);

impl BodyDigest {
    pub fn of(value: &serde_json::Value) -> BodyDigest {
        BodyDigest(hex::encode(Sha256::digest(value.to_string())))
    }
}

/// Whether the request carries a key (so its body is worth hashing).
pub fn has_key(req: &HttpRequest) -> bool {
    req.headers().contains_key(IDEMPOTENCY_KEY_HEADER)
}

/// Runs a handler's work once per Idempotency-Key. `run` gets the claim
/// to store its answer under (`WritePath::run_answered` does it in the
/// write's transaction); an answer it did not store (a route that writes
/// nothing) is stored here.
pub async fn answer<F, Fut>(
    state: &AppState,
    auth: &AuthenticatedApp,
    req: &HttpRequest,
    run: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Option<Claim>) -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let Some(header) = req.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(response(run(None).await?));
    };
    let key = IdempotencyKey::parse(header.as_bytes())
        .map_err(|why| ApiError::invalid("Idempotency-Key", why))?;
    let body_hash = req
        .extensions()
        .get::<BodyDigest>()
        .map(|digest| digest.0.clone())
        .unwrap_or_else(|| hex::encode(Sha256::digest(b"")));
    let request = KeyedRequest {
        app_id: auth.app_id.clone(),
        key,
        method: req.method().to_string(),
        path: req.path().to_owned(),
        body_hash,
    };
    let claim =
        match service::begin(&state.write, state.keys.clone(), auth.actor(), request).await? {
            Begun::Replay(answer) => {
                let mut replay = response(answer);
                replay.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static(REPLAYED_HEADER),
                    actix_web::http::header::HeaderValue::from_static("true"),
                );
                return Ok(replay);
            }
            Begun::Claimed(claim) => claim,
        };
    match run(Some(claim.clone())).await {
        Ok(answer) => {
            if !answer.stored {
                service::store(&state.write, auth.actor(), claim, &answer).await?;
            }
            Ok(response(answer))
        }
        Err(e) => {
            if let Err(release) = service::release(&state.write, auth.actor(), claim).await {
                // The claim's lock runs out instead.
                tracing::warn!(error = %release, "an Idempotency-Key claim was not given up");
            }
            Err(e)
        }
    }
}

/// The answer as an HTTP response.
pub fn response(answer: Answer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    if answer.body.is_empty() {
        HttpResponse::build(status).finish()
    } else {
        HttpResponse::build(status)
            .content_type("application/json")
            .body(answer.body)
    }
}
