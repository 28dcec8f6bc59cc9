//! Applies `KYC_RATE_LIMIT_PER_SECOND` to every request that presents an
//! API key (`services::rate_limit`): within the limit, answers carry
//! `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (the IETF
//! httpapi draft's fields); over it, 429 `rate_limited` with `Retry-After`.
//! Requests without a key are not counted: they get 401 without touching
//! tenant data.

use std::future::Future;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web;

use crate::app::AppState;
use crate::auth::API_KEY_HEADER;
use crate::error::ApiError;
use crate::services::rate_limit::{Allowance, Refusal};

pub fn limit_rate<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let verdict = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.rate_limits.clone())
        .zip(
            req.headers()
                .get(API_KEY_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|key| !key.is_empty()),
        )
        .map(|(limits, key)| limits.check(key));
    let next = match verdict {
        Some(Err(refusal)) => Next::Refused(req, refusal),
        Some(Ok(allowance)) => Next::Call(service.call(req), Some(allowance)),
        None => Next::Call(service.call(req), None),
    };
    async move {
        match next {
            // Answered here, as a response (not an error), so the request's
            // log line and id header come as for any other answer.
            Next::Refused(req, refusal) => Ok(req
                .error_response(ApiError::RateLimited {
                    limit: refusal.limit,
                    retry_after: refusal.retry_after,
                })
                .map_into_right_body()),
            Next::Call(call, allowance) => {
                let mut response = call.await?;
                if let Some(allowance) = allowance {
                    insert_headers(response.headers_mut(), allowance);
                }
                Ok(response.map_into_left_body())
            }
        }
    }
}

enum Next<F> {
    Refused(ServiceRequest, Refusal),
    Call(F, Option<Allowance>),
}

fn insert_headers(headers: &mut actix_web::http::header::HeaderMap, allowance: Allowance) {
    for (name, value) in [
        ("ratelimit-limit", u64::from(allowance.limit)),
        ("ratelimit-remaining", u64::from(allowance.remaining)),
        ("ratelimit-reset", allowance.reset_seconds),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}
