//! The one error type of the HTTP API.
//!
//! Every error the server answers with has the same JSON shape:
//! `{"code": "<snake_case>", "message": "<human text>", "details": [{"field", "message"}]}`.
//! `code` is part of the contract: clients branch on it, so codes never change
//! once released. 5xx answers carry no internal detail; the cause is logged.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// One violation of one input field, named by its path (`address.state`,
/// `documents[0].url`, `filter[email]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

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

/// Domain refusals with their stable code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    IdentityNotFound,
    DocumentNotFound,
    VerificationNotFound,
    EmailAlreadyInUse,
    IdentityOwnerNotFound,
    IdentityOwnerMustBeOfTypePerson,
    IdentityFieldLocked,
    IdentityOwnerInUse,
    InvalidStatusTransition,
    SignatureInvalid,
    SignatureExpired,
    UnknownOperation,
    /// Operation refusals: the code is the reason from the rules evaluation.
    IdentityBlocked,
    IdentityKycIsMissing,
    KycRequiredStatusNotReached,
    OperationNotActiveDueToExtraKycMissing,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::IdentityNotFound => "identity_not_found",
            Refusal::DocumentNotFound => "document_not_found",
            Refusal::VerificationNotFound => "verification_not_found",
            Refusal::EmailAlreadyInUse => "email_already_in_use",
            Refusal::IdentityOwnerNotFound => "identity_owner_not_found",
            Refusal::IdentityOwnerMustBeOfTypePerson => "identity_owner_must_be_of_type_person",
            Refusal::IdentityFieldLocked => "identity_field_locked",
            Refusal::IdentityOwnerInUse => "identity_owner_in_use",
            Refusal::InvalidStatusTransition => "invalid_status_transition",
            Refusal::SignatureInvalid => "signature_invalid",
            Refusal::SignatureExpired => "signature_expired",
            Refusal::UnknownOperation => "unknown_operation",
            Refusal::IdentityBlocked => "identity_blocked",
            Refusal::IdentityKycIsMissing => "identity_kyc_is_missing",
            Refusal::KycRequiredStatusNotReached => "kyc_required_status_not_reached",
            Refusal::OperationNotActiveDueToExtraKycMissing => {
                "operation_not_active_due_to_extra_kyc_missing"
            }
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
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
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ApiKeyMissing | ApiError::ApiKeyInvalid => StatusCode::UNAUTHORIZED,
            ApiError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused { refusal, .. } => refusal.status(),
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
