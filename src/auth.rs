//! The `apiKey` header, checked on every route that touches tenant data.
//!
//! Two extractors. `AuthenticatedApp` checks the key before the handler
//! runs, on its own pooled connection; routes with a body use it so that an
//! unauthenticated caller learns nothing (not even validation rules) before
//! a 401. `ApiKey` only reads the header; body-less reads call
//! [`ApiKey::run`], which checks the key on the same connection and
//! blocking thread as the query itself: one pool checkout and one thread
//! hop per request instead of two, with the same answers in the same order.

use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::app::AppState;
use crate::db::{Db, DbConnection};
use crate::domain::api_key::Scope;
use crate::domain::audit::RequestContext;
use crate::domain::ids::{ApiKeyId, AppId};
use crate::error::ApiError;
use crate::services::tenancy::{self, KeyUsage};
use crate::services::write::Actor;

/// The app the caller authenticated as, and with which key. Every query a
/// handler makes is scoped to `app_id`. Only a checked key makes one.
#[derive(Debug, Clone)]
pub struct AuthenticatedApp {
    pub app_id: AppId,
    pub key_id: ApiKeyId,
    /// The request's id and client address, for the audit trail.
    pub request: RequestContext,
}

impl AuthenticatedApp {
    /// Who the write path records as making a change.
    pub fn actor(&self) -> Actor {
        Actor::Api {
            app_id: self.app_id.clone(),
            key_id: self.key_id.clone(),
            request: self.request.clone(),
        }
    }
}

/// The request's id and client address as the request span noted them
/// (`telemetry::request_span`); empty outside it.
pub fn request_context(req: &HttpRequest) -> RequestContext {
    req.extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default()
}

/// The scope a route's key needs, put in the request's extensions by the
/// route table (`routes::with_access`).
#[derive(Debug, Clone, Copy)]
pub struct RequiredScope(pub Scope);

/// The scope the route needs; a route that takes a key but declares none
/// is a mistake in the route table, refused rather than let through.
fn required_scope(req: &HttpRequest) -> Result<Scope, ApiError> {
    req.extensions()
        .get::<RequiredScope>()
        .map(|required| required.0)
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "the route {} declares no scope",
                req.path()
            ))
        })
}

/// Header names are case-insensitive, so `apikey` and `APIKEY` work too.
pub const API_KEY_HEADER: &str = "apikey";

/// The key as presented in the header, not yet checked, with the request's
/// span (the check runs on a blocking thread, outside it) and what notes
/// the key's use.
#[derive(Clone)]
pub struct ApiKey {
    presented: String,
    required: Scope,
    span: tracing::Span,
    usage: Option<KeyUsage>,
    request: RequestContext,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    fn from_request(req: &HttpRequest) -> Result<Self, ApiError> {
        match req.headers().get(API_KEY_HEADER).map(|v| v.to_str()) {
            None => Err(ApiError::ApiKeyMissing),
            Some(Err(_)) => Err(ApiError::ApiKeyInvalid),
            Some(Ok(v)) if v.trim().is_empty() => Err(ApiError::ApiKeyMissing),
            Some(Ok(v)) => Ok(ApiKey {
                presented: v.trim().to_owned(),
                required: required_scope(req)?,
                span: tracing::Span::current(),
                usage: req
                    .app_data::<web::Data<AppState>>()
                    .map(|state| state.key_usage.clone()),
                request: request_context(req),
            }),
        }
    }

    /// The app this key belongs to, or `api_key_invalid`; then
    /// `insufficient_scope` when the key may not use the route.
    pub fn authenticate(&self, conn: &mut DbConnection) -> Result<AuthenticatedApp, ApiError> {
        let owner = tenancy::authenticate(conn, &self.presented)?;
        if !owner.scopes.allows(self.required) {
            return Err(ApiError::InsufficientScope(self.required));
        }
        // The request's log line names the tenant (never the key).
        self.span
            .record("app_id", tracing::field::display(&owner.app_id));
        if let Some(usage) = &self.usage {
            usage.note(&owner);
        }
        Ok(AuthenticatedApp {
            app_id: owner.app_id,
            key_id: owner.key_id,
            request: self.request.clone(),
        })
    }

    /// Runs a read for the caller this key stands for: the key is checked
    /// first, on the same connection.
    pub async fn run<T, F>(self, db: &Db, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection, AuthenticatedApp) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        db.run(move |conn| match conn {
            // SQLite: one read transaction for the key check and the read.
            // Outside one, every statement takes and drops the WAL read lock
            // itself (~9 % of a GET's CPU in a profile), and the answer
            // comes from one snapshot. Not on PostgreSQL, where BEGIN and
            // COMMIT would be two more round trips.
            DbConnection::Sqlite(_) => crate::db::read_snapshot(conn, |conn| {
                let app = self.authenticate(conn)?;
                work(conn, app)
            }),
            DbConnection::Postgresql(_) => {
                let app = self.authenticate(conn)?;
                work(conn, app)
            }
        })
        .await
    }
}

impl FromRequest for ApiKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(ApiKey::from_request(req))
    }
}

impl FromRequest for AuthenticatedApp {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let key = ApiKey::from_request(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let (done, waiting) = tokio::sync::watch::channel(false);
        req.extensions_mut().insert(KeyCheck(waiting));
        Box::pin(async move {
            let checked = async {
                let key = key?;
                let state =
                    state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState missing")))?;
                state.db.run(move |conn| key.authenticate(conn)).await
            }
            .await;
            let _ = done.send(true);
            checked
        })
    }
}

/// Whether the request's key check (`AuthenticatedApp`) has finished. A
/// body extractor that refuses the body waits for it first: actix answers
/// the first error it polls among a handler's extractors, and the key
/// check comes first in every handler, so a caller without a valid key
/// (or scope) gets 401 (or 403) and learns nothing of the body's rules,
/// however fast the body was refused.
#[derive(Clone)]
pub struct KeyCheck(tokio::sync::watch::Receiver<bool>);

impl KeyCheck {
    /// The request's key check, if its handler makes one.
    pub fn of(req: &HttpRequest) -> Option<KeyCheck> {
        req.extensions().get::<KeyCheck>().cloned()
    }

    /// Resolves once the key check has finished (or was dropped).
    pub async fn finished(mut self) {
        let _ = self.0.wait_for(|done| *done).await;
    }
}
