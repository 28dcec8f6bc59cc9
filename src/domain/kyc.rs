//! Verification levels, statuses, risk ratings, and the rules that tie them
//! together: the status state machine and which levels an identity's
//! documents can support.
//!
//! The wire form and the stored form are the same camelCase strings, so one
//! `as_str`/`parse` pair (`text_enum!`) serves the API, the database and the
//! rules file.

use crate::domain::document::DocumentType;
use crate::domain::stored::text_enum;

text_enum! {
    /// How thoroughly an identity is verified.
    #[serde(rename_all = "camelCase")]
    #[strum(serialize_all = "camelCase")]
    pub enum Level {
        Basic,
        Enhanced,
    }
}

text_enum! {
    #[serde(rename_all = "camelCase")]
    #[strum(serialize_all = "camelCase")]
    pub enum VerificationStatus {
        Pending,
        InReview,
        Approved,
        Rejected,
    }
}

impl VerificationStatus {
    /// Still waiting for a decision.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            VerificationStatus::Pending | VerificationStatus::InReview
        )
    }

    /// A decision was made and is final: a new verification is needed to
    /// change the outcome, so the history of decisions is never rewritten.
    pub fn is_terminal(self) -> bool {
        !self.is_open()
    }

    pub fn can_become(self, next: VerificationStatus) -> bool {
        use VerificationStatus::*;
        matches!(
            (self, next),
            (Pending, InReview | Approved | Rejected) | (InReview, Approved | Rejected)
        )
    }

    pub fn transition(
        self,
        next: VerificationStatus,
    ) -> Result<VerificationStatus, InvalidTransition> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(InvalidTransition {
                from: self,
                to: next,
            })
        }
    }

    /// Whether a verification in this status satisfies a rule that requires
    /// `required`. Progress is ordered pending < inReview < approved; a
    /// rejected verification satisfies nothing, not even "pending", because
    /// a refusal must never unlock what a mere application would.
    pub fn reaches(self, required: VerificationStatus) -> bool {
        match (self.progress(), required.progress()) {
            (Some(have), Some(need)) => have >= need,
            _ => false,
        }
    }

    /// `None` for rejected: it is off the progress scale rather than at
    /// either end of it.
    fn progress(self) -> Option<u8> {
        match self {
            VerificationStatus::Pending => Some(0),
            VerificationStatus::InReview => Some(1),
            VerificationStatus::Approved => Some(2),
            VerificationStatus::Rejected => None,
        }
    }
}

/// A status change the state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct InvalidTransition {
    pub from: VerificationStatus,
    pub to: VerificationStatus,
}

impl InvalidTransition {
    pub fn message(&self) -> String {
        let (from, to) = (self.from, self.to);
        if from == to {
            format!("The verification is already {from}.")
        } else if from.is_terminal() {
            format!("The verification is {from}, which is final; it cannot become {to}.")
        } else if to == VerificationStatus::Pending {
            format!("A verification cannot go back from {from} to pending.")
        } else {
            format!("A verification cannot go from {from} to {to}.")
        }
    }
}

text_enum! {
    /// The KYC risk assessment of an identity; ordered so that rules can say
    /// "at most medium".
    #[serde(rename_all = "camelCase")]
    #[strum(serialize_all = "camelCase")]
    pub enum RiskRating {
        Low,
        Medium,
        High,
    }
}

/// The verification levels that a set of documents can back, lowest first.
///
/// Basic needs proof of who the person is (an identity document) and that
/// the applicant is that person (a face image); enhanced adds proof of
/// address (a utility bill) on top of basic.
pub fn levels_supported_by(documents: impl IntoIterator<Item = DocumentType>) -> Vec<Level> {
    let mut has_identity_document = false;
    let mut has_face_image = false;
    let mut has_utility_bill = false;
    for document in documents {
        has_identity_document |= document.is_identity_document();
        has_face_image |= document == DocumentType::FaceImage;
        has_utility_bill |= document == DocumentType::UtilityBill;
    }

    let mut levels = Vec::new();
    if has_identity_document && has_face_image {
        levels.push(Level::Basic);
        if has_utility_bill {
            levels.push(Level::Enhanced);
        }
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;
    use VerificationStatus::*;

    #[test]
    fn transitions_allow_exactly_the_documented_set() {
        let allowed = [
            (Pending, InReview),
            (Pending, Approved),
            (Pending, Rejected),
            (InReview, Approved),
            (InReview, Rejected),
        ];
        for &from in VerificationStatus::ALL {
            for &to in VerificationStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
                match from.transition(to) {
                    Ok(next) => {
                        assert!(expected, "{from} -> {to} should be refused");
                        assert_eq!(next, to);
                    }
                    Err(err) => {
                        assert!(!expected, "{from} -> {to} should be allowed");
                        assert_eq!(err, InvalidTransition { from, to });
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_transition_messages_say_why() {
        let message = |from, to| InvalidTransition { from, to }.to_string();
        assert_eq!(
            message(Pending, Pending),
            "The verification is already pending."
        );
        assert!(message(Approved, Rejected).contains("final"));
        assert!(message(Rejected, Pending).contains("final"));
        assert!(message(InReview, Pending).contains("back"));
    }

    #[test]
    fn open_statuses_are_pending_and_in_review() {
        let open: Vec<_> = VerificationStatus::ALL
            .iter()
            .copied()
            .filter(|status| status.is_open())
            .collect();
        assert_eq!(open, [Pending, InReview]);
        assert!(Approved.is_terminal() && Rejected.is_terminal());
    }

    #[test]
    fn reaches_follows_progress_and_rejected_reaches_nothing() {
        let cases = [
            (Pending, Pending, true),
            (Pending, InReview, false),
            (Pending, Approved, false),
            (InReview, Pending, true),
            (InReview, InReview, true),
            (InReview, Approved, false),
            (Approved, Pending, true),
            (Approved, InReview, true),
            (Approved, Approved, true),
            (Rejected, Pending, false),
            (Rejected, InReview, false),
            (Rejected, Approved, false),
            (Rejected, Rejected, false),
            (Approved, Rejected, false),
        ];
        for (have, required, expected) in cases {
            assert_eq!(
                have.reaches(required),
                expected,
                "{have} reaches {required}"
            );
        }
    }

    #[test]
    fn wire_forms_round_trip_through_parse_and_serde() {
        for &level in Level::ALL {
            assert_eq!(Level::parse(level.as_str()), Some(level));
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{}\"", level.as_str()));
            assert_eq!(serde_json::from_str::<Level>(&json).unwrap(), level);
        }
        for &status in VerificationStatus::ALL {
            assert_eq!(VerificationStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(
                serde_json::from_str::<VerificationStatus>(&json).unwrap(),
                status
            );
        }
        for &rating in RiskRating::ALL {
            assert_eq!(RiskRating::parse(rating.as_str()), Some(rating));
            let json = serde_json::to_string(&rating).unwrap();
            assert_eq!(json, format!("\"{}\"", rating.as_str()));
            assert_eq!(serde_json::from_str::<RiskRating>(&json).unwrap(), rating);
        }
    }

    #[test]
    fn parsing_is_exact() {
        assert_eq!(Level::parse("Basic"), None);
        assert_eq!(VerificationStatus::parse("inreview"), None);
        assert_eq!(VerificationStatus::parse("in_review"), None);
        assert_eq!(RiskRating::parse(" low"), None);
        assert!(serde_json::from_str::<Level>("\"standard\"").is_err());
        assert!(serde_json::from_str::<VerificationStatus>("\"InReview\"").is_err());
        assert!(serde_json::from_str::<RiskRating>("\"extreme\"").is_err());
    }

    #[test]
    fn risk_ratings_are_ordered_low_to_high() {
        assert!(RiskRating::Low < RiskRating::Medium);
        assert!(RiskRating::Medium < RiskRating::High);
    }

    #[test]
    fn levels_supported_by_documents() {
        use DocumentType::*;
        let cases: [(&[DocumentType], &[Level]); 9] = [
            (&[], &[]),
            (&[Passport], &[]),
            (&[FaceImage], &[]),
            (&[UtilityBill, FaceImage], &[]),
            (&[Other, FaceImage], &[]),
            (&[Passport, FaceImage], &[Level::Basic]),
            (&[FaceImage, ResidencePermit, Other], &[Level::Basic]),
            (
                &[DriverLicense, FaceImage, UtilityBill],
                &[Level::Basic, Level::Enhanced],
            ),
            (&[IdentityCard, UtilityBill], &[]),
        ];
        for (documents, expected) in cases {
            assert_eq!(
                levels_supported_by(documents.iter().copied()),
                expected,
                "{documents:?}"
            );
        }
    }
}
