//! The two error values the domain produces: a violation of one input
//! field, and a refusal by a domain rule with its stable code. How they are
//! answered over HTTP is `crate::error`'s business.

use serde::Serialize;

/// The stable code of an error answer, kept on the response so that the
/// request's log line can name it without reading the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

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

/// Domain refusals, each with its stable code (`crate::error` gives each
/// its HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumIter)]
pub enum Refusal {
    IdentityNotFound,
    DocumentNotFound,
    VerificationNotFound,
    WebhookEndpointNotFound,
    EventNotFound,
    AuditRecordNotFound,
    EmailAlreadyInUse,
    RefIdAlreadyInUse,
    IdentityOwnerNotFound,
    RelationNotFound,
    RelatedPersonNotFound,
    RelatedPersonMustBeOfTypePerson,
    IdentityMustBeOfTypeCompany,
    RelatedPartyInUse,
    IdentityOwnerMustBeOfTypePerson,
    IdentityFieldLocked,
    IdentityOwnerInUse,
    InvalidStatusTransition,
    SignatureInvalid,
    SignatureExpired,
    /// KYC evidence is write-once: the key already holds an upload.
    DocumentAlreadyUploaded,
    UnknownOperation,
    /// The Idempotency-Key was used for a different request.
    IdempotencyKeyReused,
    /// The first request with this Idempotency-Key is still running.
    IdempotencyKeyInUse,
    /// Operation refusals: the code is the reason from the rules evaluation.
    IdentityBlocked,
    IdentityKycIsMissing,
    KycRequiredStatusNotReached,
    OperationNotActiveDueToExtraKycMissing,
    RelatedPartyKycMissing,
    /// A level's latest verification was rejected for good.
    VerificationRejectedFinal,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::IdentityNotFound => "identity_not_found",
            Refusal::DocumentNotFound => "document_not_found",
            Refusal::VerificationNotFound => "verification_not_found",
            Refusal::WebhookEndpointNotFound => "webhook_endpoint_not_found",
            Refusal::EventNotFound => "event_not_found",
            Refusal::AuditRecordNotFound => "audit_record_not_found",
            Refusal::EmailAlreadyInUse => "email_already_in_use",
            Refusal::RefIdAlreadyInUse => "ref_id_already_in_use",
            Refusal::IdentityOwnerNotFound => "identity_owner_not_found",
            Refusal::RelationNotFound => "relation_not_found",
            Refusal::RelatedPersonNotFound => "related_person_not_found",
            Refusal::RelatedPersonMustBeOfTypePerson => "related_person_must_be_of_type_person",
            Refusal::IdentityMustBeOfTypeCompany => "identity_must_be_of_type_company",
            Refusal::RelatedPartyInUse => "identity_related_party_in_use",
            Refusal::IdentityOwnerMustBeOfTypePerson => "identity_owner_must_be_of_type_person",
            Refusal::IdentityFieldLocked => "identity_field_locked",
            Refusal::IdentityOwnerInUse => "identity_owner_in_use",
            Refusal::InvalidStatusTransition => "invalid_status_transition",
            Refusal::SignatureInvalid => "signature_invalid",
            Refusal::SignatureExpired => "signature_expired",
            Refusal::DocumentAlreadyUploaded => "document_already_uploaded",
            Refusal::UnknownOperation => "unknown_operation",
            Refusal::IdempotencyKeyReused => "idempotency_key_reused",
            Refusal::IdempotencyKeyInUse => "idempotency_key_in_use",
            Refusal::IdentityBlocked => "identity_blocked",
            Refusal::IdentityKycIsMissing => "identity_kyc_is_missing",
            Refusal::KycRequiredStatusNotReached => "kyc_required_status_not_reached",
            Refusal::OperationNotActiveDueToExtraKycMissing => {
                "operation_not_active_due_to_extra_kyc_missing"
            }
            Refusal::RelatedPartyKycMissing => "related_party_kyc_missing",
            Refusal::VerificationRejectedFinal => "verification_rejected_final",
        }
    }
}
