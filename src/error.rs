//! The one error type of the HTTP API.
//!
//! Every error the server answers with has the same JSON shape:
//! `{"code": "<snake_case>", "message": "<human text>", "details": [{"field", "message"}]}`.
//! `code` is part of the contract: clients branch on it, so codes never change
//! once released. 5xx answers carry no internal detail; the cause is logged.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

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
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] anyhow::Error),
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
        | Refusal::IdentityOwnerNotFound => StatusCode::NOT_FOUND,
        Refusal::EmailAlreadyInUse | Refusal::UnknownOperation => StatusCode::BAD_REQUEST,
        Refusal::IdentityOwnerInUse | Refusal::InvalidStatusTransition => StatusCode::CONFLICT,
        Refusal::SignatureInvalid | Refusal::SignatureExpired => StatusCode::FORBIDDEN,
        Refusal::IdentityOwnerMustBeOfTypePerson
        | Refusal::IdentityFieldLocked
        | Refusal::IdentityBlocked
        | Refusal::IdentityKycIsMissing
        | Refusal::KycRequiredStatusNotReached
        | Refusal::OperationNotActiveDueToExtraKycMissing => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl ApiError {
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
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::ApiKeyMissing => "api_key_missing",
            ApiError::ApiKeyInvalid => "api_key_invalid",
            ApiError::DatabaseUnavailable(_) => "database_unavailable",
            ApiError::Refused { refusal, .. } => refusal.code(),
            ApiError::Internal(_) => "internal_error",
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
            ApiError::NotFound => "No such route.".into(),
            ApiError::MethodNotAllowed => "This route does not accept that method.".into(),
            ApiError::ApiKeyMissing => "Send your API key in the apiKey header.".into(),
            ApiError::ApiKeyInvalid => "The API key is unknown or revoked.".into(),
            ApiError::DatabaseUnavailable(_) => "The database is unavailable; retry later.".into(),
            ApiError::Refused { message, .. } => message.clone(),
            ApiError::Internal(_) => "Internal server error.".into(),
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
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ApiKeyMissing | ApiError::ApiKeyInvalid => StatusCode::UNAUTHORIZED,
            ApiError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
        HttpResponse::build(self.status_code()).json(ErrorBody {
            code: self.code(),
            message: self.public_message(),
            details,
        })
    }
}

/// A query that failed: a connection the database closed is the database
/// being unavailable (503, retry later); anything else is a bug or a fault
/// to log (500). Unique violations that mean a client error are mapped by
/// the use case that knows which one it is (`email_already_in_use`).
impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &err {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => ApiError::DatabaseUnavailable(anyhow::anyhow!(err)),
            _ => ApiError::Internal(anyhow::anyhow!(err)),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        match err {
            crate::db::DbError::Unavailable(_) => ApiError::DatabaseUnavailable(err.into()),
            crate::db::DbError::TaskFailed(_) => ApiError::Internal(err.into()),
        }
    }
}
