//! The one error type of the HTTP API.
//!
//! Every error the server answers with has the same JSON shape:
//! `{"code": "<snake_case>", "message": "<human text>", "details": [{"field", "message"}]}`.
//! `code` is part of the contract: clients branch on it, so codes never change
//! once released. 5xx answers carry no internal detail; the cause is logged.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::api_key::Scope;

pub use crate::domain::errors::{FieldError, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request validation failed")]
    Validation(Vec<FieldError>),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    /// The API key sent more than `KYC_RATE_LIMIT_PER_SECOND`.
    #[error("rate limited")]
    RateLimited {
        limit: u32,
        retry_after: std::time::Duration,
    },
    /// The body did not arrive within `KYC_BODY_TIMEOUT_MS`.
    #[error("request body timed out")]
    RequestTimeout,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("api key missing")]
    ApiKeyMissing,
    #[error("api key invalid")]
    ApiKeyInvalid,
    /// The key is valid but may not use this route.
    #[error("insufficient scope")]
    InsufficientScope(Scope),
    /// The database cannot be reached or written (gone, read-only).
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] anyhow::Error),
    /// A statement, lock or busy wait ran out of time. For a change, its
    /// outcome is unknown to the client: it may have committed.
    #[error("database timeout")]
    DatabaseTimeout(#[source] anyhow::Error),
    /// The database's or the document storage's disk is full.
    #[error("insufficient storage")]
    InsufficientStorage(#[source] anyhow::Error),
    /// `/ready`: the database's schema is behind this binary.
    #[error("migrations pending")]
    MigrationsPending,
    /// The document storage cannot be reached or written.
    #[error("storage unavailable")]
    StorageUnavailable(#[source] anyhow::Error),
    /// A domain rule refused the request: the status and code are chosen by
    /// the caller from the fixed list in `Refusal`.
    #[error("{message}")]
    Refused {
        refusal: Refusal,
        message: String,
        details: Vec<FieldError>,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The HTTP status of each domain refusal (its code is the domain's).
fn refusal_status(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::IdentityNotFound
        | Refusal::DocumentNotFound
        | Refusal::VerificationNotFound
        | Refusal::WebhookEndpointNotFound
        | Refusal::EventNotFound
        | Refusal::AuditRecordNotFound
        | Refusal::RelationNotFound
        | Refusal::RelatedPersonNotFound
        | Refusal::IdentityOwnerNotFound
        // Which operations exist is the rules file's business, which no
        // schema can state: like an unknown id, an unknown one is not found.
        | Refusal::UnknownOperation => StatusCode::NOT_FOUND,
        Refusal::EmailAlreadyInUse | Refusal::RefIdAlreadyInUse => StatusCode::BAD_REQUEST,
        Refusal::IdentityOwnerInUse
        | Refusal::RelatedPartyInUse
        | Refusal::InvalidStatusTransition
        | Refusal::DocumentAlreadyUploaded
        | Refusal::IdempotencyKeyInUse => StatusCode::CONFLICT,
        Refusal::SignatureInvalid | Refusal::SignatureExpired => StatusCode::FORBIDDEN,
        Refusal::IdentityOwnerMustBeOfTypePerson
        | Refusal::RelatedPersonMustBeOfTypePerson
        | Refusal::IdentityMustBeOfTypeCompany
        | Refusal::IdentityFieldLocked
        | Refusal::IdempotencyKeyReused
        | Refusal::IdentityBlocked
        | Refusal::IdentityKycIsMissing
        | Refusal::KycRequiredStatusNotReached
        | Refusal::OperationNotActiveDueToExtraKycMissing
        | Refusal::RelatedPartyKycMissing
        | Refusal::VerificationRejectedFinal => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl ApiError {
    /// Whether this is the domain refusal `refusal`.
    pub fn is_refusal(&self, refusal: Refusal) -> bool {
        matches!(self, ApiError::Refused { refusal: r, .. } if *r == refusal)
    }

    pub fn refused(refusal: Refusal, message: impl Into<String>) -> Self {
        ApiError::Refused {
            refusal,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn refused_with(
        refusal: Refusal,
        message: impl Into<String>,
        details: Vec<FieldError>,
    ) -> Self {
        ApiError::Refused {
            refusal,
            message: message.into(),
            details,
        }
    }

    /// A single-field validation failure.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// Every code the server can answer, with its HTTP status: the list
    /// `openapi.yaml`'s `ErrorCode` and each operation's error enums are
    /// held to (tests/api/openapi.rs). A variant added to `ApiError` needs a
    /// line here; `code` and `status_code` have no wildcard arm, so it
    /// cannot be forgotten there.
    pub fn catalogue() -> Vec<(&'static str, u16)> {
        use strum::IntoEnumIterator;
        let cause = || anyhow::anyhow!("catalogue");
        let mut errors = vec![
            ApiError::Validation(Vec::new()),
            ApiError::MalformedJson(String::new()),
            ApiError::UnsupportedMediaType,
            ApiError::PayloadTooLarge,
            ApiError::RequestTimeout,
            ApiError::RateLimited {
                limit: 1,
                retry_after: std::time::Duration::from_secs(1),
            },
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::ApiKeyMissing,
            ApiError::ApiKeyInvalid,
            ApiError::InsufficientScope(Scope::IdentitiesRead),
            ApiError::DatabaseUnavailable(cause()),
            ApiError::DatabaseTimeout(cause()),
            ApiError::InsufficientStorage(cause()),
            ApiError::MigrationsPending,
            ApiError::StorageUnavailable(cause()),
            ApiError::Internal(cause()),
        ];
        errors.extend(Refusal::iter().map(|refusal| ApiError::refused(refusal, "")));
        errors
            .iter()
            .map(|error| (error.code(), error.status_code().as_u16()))
            .collect()
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::ApiKeyMissing => "api_key_missing",
            ApiError::ApiKeyInvalid => "api_key_invalid",
            ApiError::InsufficientScope(_) => "insufficient_scope",
            ApiError::DatabaseUnavailable(_) => "database_unavailable",
            ApiError::DatabaseTimeout(_) => "database_timeout",
            ApiError::InsufficientStorage(_) => "insufficient_storage",
            ApiError::StorageUnavailable(_) => "storage_unavailable",
            ApiError::MigrationsPending => "migrations_pending",
            ApiError::Refused { refusal, .. } => refusal.code(),
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// What a person is told, the fields of a validation failure included
    /// (`reason: must not be empty`): the review console's wording. Says no
    /// more than the JSON answer does.
    pub fn to_message(&self) -> String {
        match self {
            ApiError::Validation(details) => details
                .iter()
                .map(|d| format!("{}: {}", d.field, d.message))
                .collect::<Vec<_>>()
                .join("; "),
            ApiError::Refused { details, .. } if !details.is_empty() => format!(
                "{} ({})",
                self.public_message(),
                details
                    .iter()
                    .map(|d| format!("{}: {}", d.field, d.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            _ => self.public_message(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            ApiError::Validation(_) => "The request is invalid; see details.".into(),
            ApiError::MalformedJson(reason) => {
                format!("The request body is not valid JSON: {reason}")
            }
            ApiError::UnsupportedMediaType => "Send the request body as application/json.".into(),
            ApiError::PayloadTooLarge => {
                "The request body is larger than the server accepts.".into()
            }
            ApiError::RequestTimeout => "The request body did not arrive in time.".into(),
            ApiError::RateLimited { limit, .. } => {
                format!("More than {limit} requests per second with this API key; retry later.")
            }
            ApiError::NotFound => "No such route.".into(),
            ApiError::MethodNotAllowed => "This route does not accept that method.".into(),
            ApiError::ApiKeyMissing => "Send your API key in the apiKey header.".into(),
            ApiError::ApiKeyInvalid => "The API key is unknown or revoked.".into(),
            ApiError::InsufficientScope(scope) => {
                format!("This API key lacks the scope `{scope}`, which this route needs.")
            }
            ApiError::DatabaseUnavailable(_) => "The database is unavailable; retry later.".into(),
            ApiError::DatabaseTimeout(_) => {
                "The database did not answer in time; retry later (a change may have been made)."
                    .into()
            }
            ApiError::InsufficientStorage(_) => "The server's storage is full; retry later.".into(),
            ApiError::StorageUnavailable(_) => {
                "The document storage is unavailable; retry later.".into()
            }
            ApiError::MigrationsPending => {
                "The database schema is behind this server; migrations are pending.".into()
            }
            ApiError::Refused { message, .. } => message.clone(),
            ApiError::Internal(_) => "Internal server error.".into(),
        }
    }
}

impl ApiError {
    /// Seconds a client should wait before retrying, for the faults that
    /// pass by themselves.
    fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::DatabaseUnavailable(_)
            | ApiError::DatabaseTimeout(_)
            | ApiError::StorageUnavailable(_)
            | ApiError::MigrationsPending => Some(2),
            ApiError::InsufficientStorage(_) => Some(30),
            // Whole seconds, rounded up: never earlier than the limiter allows.
            ApiError::RateLimited { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().clamp(1.0, 3600.0) as u32)
            }
            _ => None,
        }
    }
}

/// The faults of the database: the connection they happened on is dropped
/// (see `db::fault`).
impl crate::db::ConnectionFault for ApiError {
    fn is_connection_fault(&self) -> bool {
        match self {
            ApiError::DatabaseUnavailable(_)
            | ApiError::DatabaseTimeout(_)
            | ApiError::InsufficientStorage(_) => true,
            ApiError::Internal(cause) => cause.is_connection_fault(),
            _ => false,
        }
    }
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: String,
    pub details: &'a [FieldError],
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ApiKeyMissing | ApiError::ApiKeyInvalid => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            ApiError::DatabaseUnavailable(_)
            | ApiError::DatabaseTimeout(_)
            | ApiError::InsufficientStorage(_)
            | ApiError::StorageUnavailable(_)
            | ApiError::MigrationsPending => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused { refusal, .. } => refusal_status(*refusal),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            // `{:#}`: the whole cause chain on one line (Debug would add a
            // backtrace that buries it).
            ApiError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed")
            }
            ApiError::DatabaseUnavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable")
            }
            _ => {}
        }
        let details: &[FieldError] = match self {
            ApiError::Validation(details) => details,
            ApiError::Refused { details, .. } => details,
            _ => &[],
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after() {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        if let ApiError::RateLimited { limit, .. } = self {
            response.insert_header(("ratelimit-limit", limit.to_string()));
            response.insert_header(("ratelimit-remaining", "0"));
            response.insert_header((
                "ratelimit-reset",
                self.retry_after().unwrap_or(1).to_string(),
            ));
        }
        let mut response = response.json(ErrorBody {
            code: self.code(),
            message: self.public_message(),
            details,
        });
        response
            .extensions_mut()
            .insert(crate::domain::errors::ErrorCode(self.code()));
        response
    }
}

/// A query that failed: a fault of the database or its disk (`db::fault`)
/// is a 503 with its own code (retry later); anything else is a bug to log
/// (500). Unique violations that mean a client error are mapped by the use
/// case that knows which one it is (`email_already_in_use`).
impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        use crate::db::Fault;
        match crate::db::fault_of(&err) {
            Some(Fault::Unavailable | Fault::ReadOnly) => {
                ApiError::DatabaseUnavailable(anyhow::anyhow!(err))
            }
            Some(Fault::Timeout) => ApiError::DatabaseTimeout(anyhow::anyhow!(err)),
            Some(Fault::Full) => ApiError::InsufficientStorage(anyhow::anyhow!(err)),
            None => ApiError::Internal(anyhow::anyhow!(err)),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        match err {
            crate::db::DbError::Unavailable(_) => ApiError::DatabaseUnavailable(err.into()),
            crate::db::DbError::TimedOut(_) => ApiError::DatabaseTimeout(err.into()),
            crate::db::DbError::TaskFailed(_) => ApiError::Internal(err.into()),
        }
    }
}

/// A storage failure that is not the caller's: a disk that is full is
/// `insufficient_storage`, any other failure of the disk or of S3
/// `storage_unavailable` (both 503, retry later); a misconfiguration is a
/// 500. `NotFound` means something only the caller can say, so callers
/// handle it before this.
impl From<crate::storage::StorageError> for ApiError {
    fn from(err: crate::storage::StorageError) -> Self {
        use crate::storage::StorageError;
        use std::io::ErrorKind;
        let disk_full = |e: &anyhow::Error| {
            e.chain()
                .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
                .any(|io| matches!(io.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded))
        };
        match err {
            StorageError::Backend(cause) if disk_full(&cause) => {
                ApiError::InsufficientStorage(cause)
            }
            StorageError::Backend(cause) => ApiError::StorageUnavailable(cause),
            other @ (StorageError::Config(_) | StorageError::NotFound) => {
                ApiError::Internal(other.into())
            }
        }
    }
}

/// `/ready`: any failed probe is the database being unavailable, with the
/// fault's own code where it has one (a full disk, a timeout).
impl From<crate::db::ProbeError> for ApiError {
    fn from(err: crate::db::ProbeError) -> Self {
        match err {
            crate::db::ProbeError::Db(e) => e.into(),
            crate::db::ProbeError::MigrationsPending => ApiError::MigrationsPending,
            crate::db::ProbeError::Query(e) => match ApiError::from(e) {
                ApiError::Internal(cause) => ApiError::DatabaseUnavailable(cause),
                fault => fault,
            },
        }
    }
}
