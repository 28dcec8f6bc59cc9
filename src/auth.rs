//! The `apiKey` header, checked on every route that touches tenant data.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};
use uuid::Uuid;

use crate::error::ApiError;
use crate::startup::AppState;

/// The app the caller authenticated as. Every query a handler makes is
/// scoped to `app_id`.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedApp {
    pub app_id: Uuid,
}

/// Header names are case-insensitive, so `apikey` and `APIKEY` work too.
pub const API_KEY_HEADER: &str = "apikey";

impl FromRequest for AuthenticatedApp {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let presented = req
            .headers()
            .get(API_KEY_HEADER)
            .map(|v| v.to_str().map(str::trim).map(str::to_owned));
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let presented = match presented {
                None => return Err(ApiError::ApiKeyMissing),
                Some(Err(_)) => return Err(ApiError::ApiKeyInvalid),
                Some(Ok(v)) if v.is_empty() => return Err(ApiError::ApiKeyMissing),
                Some(Ok(v)) => v,
            };
            let state =
                state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState missing")))?;
            let app_id = state
                .db
                .run(move |conn| crate::tenancy::authenticate(conn, &presented))
                .await?;
            Ok(AuthenticatedApp { app_id })
        })
    }
}
