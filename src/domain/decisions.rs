//! Structured decisions: a rejection a client can act on (may the customer
//! try again, and why not), and comments kept apart by audience.

use serde::{Serialize, Serializer};

use crate::domain::errors::FieldError;
use crate::domain::input::bounded_text;
use crate::domain::kyc::{RiskRating, VerificationStatus};
use crate::domain::stored::{text_enum, StoredText};

text_enum! {
    /// Whether a rejected identity may resubmit at the same level.
    #[serde(rename_all = "camelCase")]
    #[strum(serialize_all = "camelCase")]
    pub enum RejectType {
        /// A new verification at the level starts when new documents arrive.
        Retry,
        /// No new verification at the level is accepted.
        Final,
    }
}

text_enum! {
    /// Why a verification was rejected: the catalogue (README maps it to
    /// Sumsub's labels, Onfido's sub-results and Veriff's codes).
    #[serde(rename_all = "camelCase")]
    #[strum(serialize_all = "camelCase")]
    pub enum RejectLabel {
        DocumentUnreadable,
        DocumentExpired,
        DocumentMismatch,
        SelfieMismatch,
        Underage,
        SanctionsMatch,
        PepMatch,
        FraudSuspicion,
        DuplicateIdentity,
        Other,
    }
}

/// A rejection's labels: at least one, each once, in catalogue order.
/// Stored as their names joined by commas (`documentExpired,selfieMismatch`),
/// which `GET /verifications?filter[rejectLabels]=` matches a name in.
#[derive(
    Debug, Clone, PartialEq, Eq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct RejectLabels {
    labels: Vec<RejectLabel>,
    stored: String,
}

impl RejectLabels {
    /// `None` for no labels; a label given twice is an error naming it.
    pub fn new(given: &[RejectLabel]) -> Result<Option<RejectLabels>, RejectLabel> {
        let mut labels = given.to_vec();
        labels.sort();
        if let Some(twice) = labels.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(twice[0]);
        }
        if labels.is_empty() {
            return Ok(None);
        }
        let stored = labels
            .iter()
            .map(|label| label.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Some(RejectLabels { labels, stored }))
    }

    pub fn labels(&self) -> &[RejectLabel] {
        &self.labels
    }
}

impl StoredText for RejectLabels {
    fn stored(&self) -> &str {
        &self.stored
    }

    fn from_stored(s: &str) -> Option<Self> {
        let labels: Option<Vec<RejectLabel>> = s.split(',').map(RejectLabel::parse).collect();
        RejectLabels::new(&labels?)
            .ok()
            .flatten()
            .filter(|labels| labels.stored == s)
    }
}

impl Serialize for RejectLabels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.labels.serialize(s)
    }
}

/// How a verification was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reject_type: RejectType,
    pub labels: Option<RejectLabels>,
}

/// The longest comment kept.
pub const COMMENT_MAX: usize = 2000;
/// The longest `reason` kept (the reference API's free text).
pub const REASON_MAX: usize = 500;

/// A comment: trimmed, not empty, at most [`COMMENT_MAX`] characters, and
/// free of control characters other than line breaks and tabs (a comment
/// may have paragraphs).
pub fn comment(text: &str) -> Result<String, String> {
    let flattened: String = text
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    bounded_text(&flattened, COMMENT_MAX)?;
    Ok(text.trim().to_owned())
}

/// A decision as a client sends it, fields not yet checked together.
#[derive(Debug, Clone, Default)]
pub struct DecisionFields {
    pub status: Option<VerificationStatus>,
    pub reason: Option<String>,
    pub risk_rating: Option<RiskRating>,
    pub reject_type: Option<RejectType>,
    pub reject_labels: Option<Vec<RejectLabel>>,
    pub client_comment: Option<String>,
    pub internal_comment: Option<String>,
}

/// A reviewer's decision, checked: never `pending`, and a rejection's
/// details exactly when it rejects (`retry` unless told otherwise, as the
/// reference API's rejections always were).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    status: VerificationStatus,
    pub reason: Option<String>,
    pub risk_rating: Option<RiskRating>,
    rejection: Option<Rejection>,
    /// May be shown to the customer.
    pub client_comment: Option<String>,
    /// Never leaves the service through the API or events: it is kept in
    /// the verification's history for the console and reviewers.
    pub internal_comment: Option<String>,
}

impl Decision {
    /// Every problem named by its field.
    pub fn new(fields: DecisionFields) -> Result<Decision, Vec<FieldError>> {
        let mut errors = Vec::new();
        let status = match fields.status {
            None => {
                errors.push(FieldError::new("status", "is required"));
                None
            }
            Some(VerificationStatus::Pending) => {
                errors.push(FieldError::new(
                    "status",
                    "must be inReview, approved or rejected",
                ));
                None
            }
            Some(status) => Some(status),
        };
        let mut text =
            |field: &str, value: Option<String>, check: fn(&str) -> Result<String, String>| {
                value.and_then(|value| match check(&value) {
                    Ok(value) => Some(value),
                    Err(problem) => {
                        errors.push(FieldError::new(field, problem));
                        None
                    }
                })
            };
        let reason = text("reason", fields.reason, |r| bounded_text(r, REASON_MAX));
        let client_comment = text("clientComment", fields.client_comment, comment);
        let internal_comment = text("internalComment", fields.internal_comment, comment);
        let rejects = status == Some(VerificationStatus::Rejected);
        let mut rejection_only = |field: &str, given: bool| {
            if given && !rejects && status.is_some() {
                errors.push(FieldError::new(field, "only applies to a rejection"));
            }
        };
        rejection_only("rejectType", fields.reject_type.is_some());
        rejection_only("rejectLabels", fields.reject_labels.is_some());
        let labels = match RejectLabels::new(fields.reject_labels.as_deref().unwrap_or_default()) {
            Ok(labels) => labels,
            Err(twice) => {
                errors.push(FieldError::new(
                    "rejectLabels",
                    format!("lists `{twice}` more than once"),
                ));
                None
            }
        };
        match status {
            Some(status) if errors.is_empty() => Ok(Decision {
                status,
                reason,
                risk_rating: fields.risk_rating,
                rejection: rejects.then(|| Rejection {
                    reject_type: fields.reject_type.unwrap_or(RejectType::Retry),
                    labels,
                }),
                client_comment,
                internal_comment,
            }),
            _ => Err(errors),
        }
    }

    pub fn status(&self) -> VerificationStatus {
        self.status
    }

    /// `Some` exactly when the decision rejects.
    pub fn rejection(&self) -> Option<&Rejection> {
        self.rejection.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RejectLabel::*;

    fn fields(status: VerificationStatus) -> DecisionFields {
        DecisionFields {
            status: Some(status),
            ..DecisionFields::default()
        }
    }

    fn error_fields(result: Result<Decision, Vec<FieldError>>) -> Vec<String> {
        result
            .expect_err("refused")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn labels_are_kept_once_in_catalogue_order_and_read_back() {
        let labels = RejectLabels::new(&[SelfieMismatch, DocumentExpired])
            .unwrap()
            .unwrap();
        assert_eq!(labels.labels(), [DocumentExpired, SelfieMismatch]);
        assert_eq!(labels.stored(), "documentExpired,selfieMismatch");
        assert_eq!(
            RejectLabels::from_stored("documentExpired,selfieMismatch"),
            Some(labels.clone())
        );
        assert_eq!(
            serde_json::to_value(&labels).unwrap(),
            serde_json::json!(["documentExpired", "selfieMismatch"])
        );
        assert_eq!(RejectLabels::new(&[]), Ok(None));
        assert_eq!(RejectLabels::new(&[Other, Underage, Other]), Err(Other));
        for bad in [
            "",
            "documentExpired,",
            "nope",
            "selfieMismatch,documentExpired",
            "other,other",
        ] {
            assert_eq!(RejectLabels::from_stored(bad), None, "{bad:?}");
        }
        // Every label's stored form reads back alone.
        for &label in RejectLabel::ALL {
            let one = RejectLabels::new(&[label]).unwrap().unwrap();
            assert_eq!(RejectLabels::from_stored(one.stored()), Some(one));
        }
    }

    #[test]
    fn a_rejection_is_retry_unless_told_and_carries_its_labels() {
        let plain = Decision::new(fields(VerificationStatus::Rejected)).unwrap();
        assert_eq!(
            plain.rejection(),
            Some(&Rejection {
                reject_type: RejectType::Retry,
                labels: None
            })
        );
        let final_one = Decision::new(DecisionFields {
            reject_type: Some(RejectType::Final),
            reject_labels: Some(vec![SanctionsMatch]),
            client_comment: Some("  We cannot onboard you.\nSorry.  ".into()),
            internal_comment: Some("OFAC SDN hit".into()),
            ..fields(VerificationStatus::Rejected)
        })
        .unwrap();
        let rejection = final_one.rejection().unwrap();
        assert_eq!(rejection.reject_type, RejectType::Final);
        assert_eq!(
            rejection.labels.as_ref().unwrap().labels(),
            [SanctionsMatch]
        );
        assert_eq!(
            final_one.client_comment.as_deref(),
            Some("We cannot onboard you.\nSorry.")
        );
        assert_eq!(final_one.internal_comment.as_deref(), Some("OFAC SDN hit"));
        assert_eq!(
            Decision::new(fields(VerificationStatus::Approved))
                .unwrap()
                .rejection(),
            None
        );
    }

    #[test]
    fn every_problem_is_named() {
        assert_eq!(
            error_fields(Decision::new(DecisionFields {
                reject_type: Some(RejectType::Final),
                reject_labels: Some(vec![Other]),
                client_comment: Some(" ".into()),
                internal_comment: Some("a\u{0}b".into()),
                reason: Some("x".repeat(501)),
                ..fields(VerificationStatus::Approved)
            })),
            [
                "reason",
                "clientComment",
                "internalComment",
                "rejectType",
                "rejectLabels"
            ]
        );
        assert_eq!(
            error_fields(Decision::new(fields(VerificationStatus::Pending))),
            ["status"]
        );
        assert_eq!(
            error_fields(Decision::new(DecisionFields::default())),
            ["status"]
        );
        assert_eq!(
            error_fields(Decision::new(DecisionFields {
                reject_labels: Some(vec![Underage, Underage]),
                ..fields(VerificationStatus::Rejected)
            })),
            ["rejectLabels"]
        );
        assert_eq!(
            error_fields(Decision::new(DecisionFields {
                client_comment: Some("x".repeat(COMMENT_MAX + 1)),
                ..fields(VerificationStatus::Rejected)
            })),
            ["clientComment"]
        );
    }
}
