//! Which operations an identity may perform, and if not, why not.
//!
//! The answer comes from a declarative rules file (TOML) rather than code
//! branches, so an operator can change what KYC an operation needs without a
//! release. The file is checked strictly when loaded, because a typo that is
//! silently ignored would loosen a compliance rule without anyone noticing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::domain::document::DocumentType;
use crate::domain::errors::Refusal;
use crate::domain::kyc::{Level, RiskRating, VerificationStatus};
use crate::domain::relations::{self, Ownership, RelationRole};
use crate::domain::stored::text_enum;

/// The rules shipped with the server, used when no rules file is configured.
pub const DEFAULT_RULES_TOML: &str = include_str!("default_operation_rules.toml");

text_enum! {
    #[serde(rename_all = "lowercase")]
    #[strum(serialize_all = "lowercase")]
    pub enum Action {
        Create,
        Confirm,
    }
}

/// Why an operation is not active. Variants are declared in the order they
/// are checked: the first that applies is the one reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    IdentityBlocked,
    IdentityKycIsMissing,
    KycRequiredStatusNotReached,
    OperationNotActiveDueToExtraKycMissing,
    RelatedPartyKycMissing,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::IdentityBlocked,
        Reason::IdentityKycIsMissing,
        Reason::KycRequiredStatusNotReached,
        Reason::OperationNotActiveDueToExtraKycMissing,
        Reason::RelatedPartyKycMissing,
    ];

    /// The stable wire code; it doubles as the error code when
    /// `POST /operations/validate` refuses.
    pub fn code(self) -> &'static str {
        match self {
            Reason::IdentityBlocked => "identity_blocked",
            Reason::IdentityKycIsMissing => "identity_kyc_is_missing",
            Reason::KycRequiredStatusNotReached => "kyc_required_status_not_reached",
            Reason::OperationNotActiveDueToExtraKycMissing => {
                "operation_not_active_due_to_extra_kyc_missing"
            }
            Reason::RelatedPartyKycMissing => "related_party_kyc_missing",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Reason::IdentityBlocked => "The identity is blocked.",
            Reason::IdentityKycIsMissing => {
                "The identity has no verification at the level this operation requires."
            }
            Reason::KycRequiredStatusNotReached => {
                "The identity's verification has not reached the status this operation requires."
            }
            Reason::OperationNotActiveDueToExtraKycMissing => {
                "The operation requires documents or a risk rating the identity does not have."
            }
            Reason::RelatedPartyKycMissing => {
                "The company's related parties this operation asks about have not all reached the verification it requires (or it has none)."
            }
        }
    }

    pub fn refusal(self) -> Refusal {
        match self {
            Reason::IdentityBlocked => Refusal::IdentityBlocked,
            Reason::IdentityKycIsMissing => Refusal::IdentityKycIsMissing,
            Reason::KycRequiredStatusNotReached => Refusal::KycRequiredStatusNotReached,
            Reason::OperationNotActiveDueToExtraKycMissing => {
                Refusal::OperationNotActiveDueToExtraKycMissing
            }
            Reason::RelatedPartyKycMissing => Refusal::RelatedPartyKycMissing,
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// What the rules need to know about one identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KycFacts {
    pub blocked: bool,
    /// Status of the most recent verification at each level; a level with
    /// no verification is absent. A map so a level cannot appear twice.
    pub latest: BTreeMap<Level, VerificationStatus>,
    /// Types of the identity's live (not deleted) documents, face images
    /// included; duplicates are harmless.
    pub document_types: Vec<DocumentType>,
    pub risk_rating: Option<RiskRating>,
    /// A company's related parties (one entry per relation); `None` for a
    /// person, whom a `related` requirement does not concern.
    pub related: Option<Vec<RelatedPartyFacts>>,
}

/// One relation of a company, with what the rules need of its person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedPartyFacts {
    pub role: RelationRole,
    pub ownership: Option<Ownership>,
    pub blocked: bool,
    /// The person's latest verification status per level.
    pub latest: BTreeMap<Level, VerificationStatus>,
}

/// A rule's `related` table: which of a company's related parties must
/// have reached which verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedRequirement {
    pub roles: Vec<RelationRole>,
    /// Beneficial owners below this share are not asked about.
    pub min_ownership: Ownership,
    pub level: Level,
    /// Never `Rejected`, as for the rule itself.
    pub status: VerificationStatus,
}

/// The share from which a beneficial owner counts when the rules file
/// gives none.
pub const DEFAULT_MIN_OWNERSHIP: Ownership = relations::UBO_THRESHOLD;

impl RelatedRequirement {
    /// Whether the requirement asks about this relation: its role is
    /// listed and, for a beneficial owner, its share reaches the threshold.
    pub fn concerns(&self, party: &RelatedPartyFacts) -> bool {
        self.roles.contains(&party.role)
            && (party.role != RelationRole::BeneficialOwner
                || party
                    .ownership
                    .is_some_and(|share| share >= self.min_ownership))
    }

    /// Met when at least one related party is concerned and every one that
    /// is has reached the status at the level and is not blocked. A
    /// company with no such party has not shown its KYB at all, so it
    /// does not pass by default.
    pub fn is_met_by(&self, parties: &[RelatedPartyFacts]) -> bool {
        let mut concerned = parties
            .iter()
            .filter(|party| self.concerns(party))
            .peekable();
        concerned.peek().is_some()
            && concerned.all(|party| {
                !party.blocked
                    && party
                        .latest
                        .get(&self.level)
                        .is_some_and(|status| status.reaches(self.status))
            })
    }
}

/// One operation of the rules file, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub code: String,
    pub level: Level,
    /// Never `Rejected`: the loader refuses it as a requirement.
    pub status: VerificationStatus,
    /// Extra KYC: document types that must all be present.
    pub documents: Vec<DocumentType>,
    /// Extra KYC: the risk rating must be known and at most this.
    pub max_risk_rating: Option<RiskRating>,
    /// KYB: what a company's related parties must have reached.
    pub related: Option<RelatedRequirement>,
}

impl Rule {
    /// The first reason, in [`Reason`] order, why this operation is not
    /// active for the identity; `None` when it is active.
    pub fn blocking_reason(&self, facts: &KycFacts) -> Option<Reason> {
        if facts.blocked {
            return Some(Reason::IdentityBlocked);
        }
        let Some(&status) = facts.latest.get(&self.level) else {
            return Some(Reason::IdentityKycIsMissing);
        };
        if !status.reaches(self.status) {
            return Some(Reason::KycRequiredStatusNotReached);
        }
        let documents_missing = self
            .documents
            .iter()
            .any(|required| !facts.document_types.contains(required));
        // An unknown rating must not pass a ceiling: nobody has assessed
        // the identity yet, so it may well be above it.
        let risk_too_high = self
            .max_risk_rating
            .is_some_and(|ceiling| facts.risk_rating.is_none_or(|rating| rating > ceiling));
        if documents_missing || risk_too_high {
            return Some(Reason::OperationNotActiveDueToExtraKycMissing);
        }
        if let (Some(requirement), Some(parties)) = (&self.related, &facts.related) {
            if !requirement.is_met_by(parties) {
                return Some(Reason::RelatedPartyKycMissing);
            }
        }
        None
    }

    pub fn evaluate(&self, facts: &KycFacts) -> OperationState {
        let reason = self.blocking_reason(facts);
        OperationState {
            action: self.action,
            code: self.code.clone(),
            active: reason.is_none(),
            reason,
        }
    }
}

/// One entry of the identity's operations list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationState {
    pub action: Action,
    pub code: String,
    pub active: bool,
    /// `None` exactly when `active`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// The loaded rules file, operations in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRules {
    rules: Vec<Rule>,
}

impl OperationRules {
    /// The rules embedded in the binary ([`DEFAULT_RULES_TOML`]). Only fails
    /// if that file is broken, which the tests rule out.
    pub fn default_rules() -> Result<OperationRules, RulesError> {
        Self::from_toml_str(DEFAULT_RULES_TOML)
    }

    pub fn from_toml_str(source: &str) -> Result<OperationRules, RulesError> {
        // Two passes: the file structure first, so syntax errors keep their
        // line, then each operation on its own, so errors can name the
        // operation they are about.
        let file: RulesFile = toml::from_str(source).map_err(|err| RulesError::Toml {
            line: err.span().map(|span| line_of(source, span.start)),
            message: one_line(err.message()),
        })?;
        if file.operation.is_empty() {
            return Err(RulesError::NoOperations);
        }

        let mut rules: Vec<Rule> = Vec::with_capacity(file.operation.len());
        for (index, table) in file.operation.into_iter().enumerate() {
            let location = OperationLocation {
                position: index + 1,
                line: Some(line_of(source, table.span().start)),
                code: table
                    .get_ref()
                    .get("code")
                    .and_then(toml::Value::as_str)
                    .map(str::to_owned),
            };
            let rule =
                parse_rule(table.into_inner()).map_err(|problem| RulesError::InvalidOperation {
                    location: location.clone(),
                    problem,
                })?;
            if let Some(first) = rules
                .iter()
                .position(|seen| seen.action == rule.action && seen.code == rule.code)
            {
                return Err(RulesError::DuplicateOperation {
                    location,
                    first_position: first + 1,
                    action: rule.action,
                });
            }
            rules.push(rule);
        }
        Ok(OperationRules { rules })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether some rule asks about related parties: only then does
    /// evaluating a company read its related persons' KYC.
    pub fn ask_about_related_parties(&self) -> bool {
        self.rules.iter().any(|rule| rule.related.is_some())
    }

    /// `action` is the wire form; an unknown action finds nothing rather
    /// than failing, since to the caller it is just an unknown operation.
    pub fn find(&self, action: &str, code: &str) -> Option<&Rule> {
        let action = Action::parse(action)?;
        self.rules
            .iter()
            .find(|rule| rule.action == action && rule.code == code)
    }

    /// Every operation, in file order, with whether it is active for the
    /// identity described by `facts`.
    pub fn evaluate(&self, facts: &KycFacts) -> Vec<OperationState> {
        self.rules.iter().map(|rule| rule.evaluate(facts)).collect()
    }
}

/// Where in the rules file a problem is, in the terms an operator uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationLocation {
    /// 1-based, counting `[[operation]]` tables from the top of the file.
    pub position: usize,
    pub line: Option<usize>,
    /// The operation's `code`, when it has a string one.
    pub code: Option<String>,
}

impl fmt::Display for OperationLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation #{}", self.position)?;
        match (&self.line, &self.code) {
            (Some(line), Some(code)) => write!(f, " (line {line}, code `{code}`)"),
            (Some(line), None) => write!(f, " (line {line})"),
            (None, Some(code)) => write!(f, " (code `{code}`)"),
            (None, None) => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Invalid TOML, or a file-level structure problem such as an unknown
    /// top-level key.
    #[error("operation rules: {}{message}", line.map(|line| format!("line {line}: ")).unwrap_or_default())]
    Toml {
        line: Option<usize>,
        message: String,
    },
    #[error(
        "operation rules: the file defines no operations; add at least one [[operation]] table"
    )]
    NoOperations,
    #[error("operation rules: {location}: {problem}")]
    InvalidOperation {
        location: OperationLocation,
        problem: String,
    },
    #[error(
        "operation rules: {location}: action `{action}` with this code is already defined by operation #{first_position}"
    )]
    DuplicateOperation {
        location: OperationLocation,
        first_position: usize,
        action: Action,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    operation: Vec<toml::Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    action: Action,
    code: String,
    level: Level,
    // A string rather than `VerificationStatus` so that the error for a bad
    // value lists only the statuses a rule may require.
    status: String,
    #[serde(default)]
    documents: Vec<String>,
    #[serde(default)]
    max_risk_rating: Option<RiskRating>,
    #[serde(default)]
    related: Option<RawRelated>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelated {
    roles: Vec<String>,
    #[serde(default)]
    min_ownership: Option<f64>,
    level: Level,
    status: String,
}

const REQUIRABLE_STATUSES: [VerificationStatus; 3] = [
    VerificationStatus::Pending,
    VerificationStatus::InReview,
    VerificationStatus::Approved,
];

fn requirable_status(text: &str) -> Result<VerificationStatus, String> {
    VerificationStatus::parse(text)
        .filter(|status| REQUIRABLE_STATUSES.contains(status))
        .ok_or_else(|| {
            format!(
                "status `{text}` cannot be required; expected one of {}",
                REQUIRABLE_STATUSES
                    .map(VerificationStatus::as_str)
                    .join(", ")
            )
        })
}

fn parse_related(raw: RawRelated) -> Result<RelatedRequirement, String> {
    if raw.roles.is_empty() {
        return Err("related: roles must name at least one role".into());
    }
    let mut roles = Vec::with_capacity(raw.roles.len());
    for name in &raw.roles {
        let role = RelationRole::parse(name).ok_or_else(|| {
            let known: Vec<&str> = RelationRole::ALL.iter().map(|r| r.as_str()).collect();
            format!(
                "related: `{name}` is not a role; expected one of {}",
                known.join(", ")
            )
        })?;
        if roles.contains(&role) {
            return Err(format!("related: `{role}` is listed more than once"));
        }
        roles.push(role);
    }
    let min_ownership = match raw.min_ownership {
        None => DEFAULT_MIN_OWNERSHIP,
        Some(_) if !roles.contains(&RelationRole::BeneficialOwner) => {
            return Err(
                "related: min_ownership only applies when roles include beneficialOwner".into(),
            )
        }
        Some(percent) => Ownership::from_percent(percent)
            .map_err(|problem| format!("related: min_ownership {problem}"))?,
    };
    let status = requirable_status(&raw.status).map_err(|problem| format!("related: {problem}"))?;
    Ok(RelatedRequirement {
        roles,
        min_ownership,
        level: raw.level,
        status,
    })
}

fn parse_rule(table: toml::Table) -> Result<Rule, String> {
    let raw: RawRule = toml::Value::Table(table)
        .try_into()
        .map_err(|err: toml::de::Error| one_line(err.message()))?;

    if !is_valid_code(&raw.code) {
        return Err(format!(
            "code `{}` must be `<category>:<method>`, each side one or more of a-z, 0-9, `_` and `-`",
            raw.code
        ));
    }

    let status = requirable_status(&raw.status)?;

    let mut documents: Vec<DocumentType> = Vec::with_capacity(raw.documents.len());
    for name in &raw.documents {
        let document = parse_document_name(name).ok_or_else(|| {
            let known: Vec<String> = DocumentType::UPLOADABLE
                .into_iter()
                .chain([DocumentType::FaceImage])
                .map(DocumentType::input_name)
                .collect();
            format!(
                "documents: `{name}` is not a document type; expected one of {}",
                known.join(", ")
            )
        })?;
        if documents.contains(&document) {
            return Err(format!(
                "documents: `{}` is listed more than once",
                document.input_name()
            ));
        }
        documents.push(document);
    }

    Ok(Rule {
        action: raw.action,
        code: raw.code,
        level: raw.level,
        status,
        documents,
        max_risk_rating: raw.max_risk_rating,
        related: raw.related.map(parse_related).transpose()?,
    })
}

/// Same spelling rules as client input (any letter case), plus `FaceImage`,
/// which clients cannot upload as a document but a rule may require.
fn parse_document_name(name: &str) -> Option<DocumentType> {
    DocumentType::parse_input(name).or_else(|| {
        DocumentType::FaceImage
            .as_str()
            .eq_ignore_ascii_case(name)
            .then_some(DocumentType::FaceImage)
    })
}

fn is_valid_code(code: &str) -> bool {
    let is_valid_part = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    code.split_once(':')
        .is_some_and(|(category, method)| is_valid_part(category) && is_valid_part(method))
}

/// toml's messages may span lines; ours are read in one-line log entries.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line of a byte offset; offsets past the end count as the last
/// line rather than failing, since they only decorate a message.
fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use DocumentType::*;
    use VerificationStatus::*;

    fn rule(level: Level, status: VerificationStatus) -> Rule {
        Rule {
            action: Action::Create,
            code: "withdrawal:wire".into(),
            level,
            status,
            documents: Vec::new(),
            max_risk_rating: None,
            related: None,
        }
    }

    fn facts(latest: &[(Level, VerificationStatus)]) -> KycFacts {
        KycFacts {
            latest: latest.iter().copied().collect(),
            ..KycFacts::default()
        }
    }

    #[test]
    fn evaluation_reasons_and_their_precedence() {
        let extra = Rule {
            documents: vec![UtilityBill],
            max_risk_rating: Some(RiskRating::Medium),
            ..rule(Level::Basic, Approved)
        };
        let complete = KycFacts {
            blocked: false,
            latest: [(Level::Basic, Approved)].into_iter().collect(),
            document_types: vec![Passport, FaceImage, UtilityBill],
            risk_rating: Some(RiskRating::Low),
            related: None,
        };
        let cases: Vec<(&str, Rule, KycFacts, Option<Reason>)> = vec![
            ("all met", extra.clone(), complete.clone(), None),
            (
                "blocked wins over everything",
                extra.clone(),
                KycFacts {
                    blocked: true,
                    ..KycFacts::default()
                },
                Some(Reason::IdentityBlocked),
            ),
            (
                "blocked even when all else is met",
                extra.clone(),
                KycFacts {
                    blocked: true,
                    ..complete.clone()
                },
                Some(Reason::IdentityBlocked),
            ),
            (
                "no verification at all",
                extra.clone(),
                KycFacts::default(),
                Some(Reason::IdentityKycIsMissing),
            ),
            (
                "verification only at another level",
                rule(Level::Enhanced, Pending),
                facts(&[(Level::Basic, Approved)]),
                Some(Reason::IdentityKycIsMissing),
            ),
            (
                "missing kyc wins over missing extra kyc",
                extra.clone(),
                KycFacts {
                    latest: BTreeMap::new(),
                    document_types: Vec::new(),
                    risk_rating: None,
                    ..complete.clone()
                },
                Some(Reason::IdentityKycIsMissing),
            ),
            (
                "pending does not reach approved",
                rule(Level::Basic, Approved),
                facts(&[(Level::Basic, Pending)]),
                Some(Reason::KycRequiredStatusNotReached),
            ),
            (
                "in review does not reach approved",
                rule(Level::Basic, Approved),
                facts(&[(Level::Basic, InReview)]),
                Some(Reason::KycRequiredStatusNotReached),
            ),
            (
                "rejected does not reach pending",
                rule(Level::Basic, Pending),
                facts(&[(Level::Basic, Rejected)]),
                Some(Reason::KycRequiredStatusNotReached),
            ),
            (
                "status not reached wins over missing extra kyc",
                extra.clone(),
                KycFacts {
                    latest: [(Level::Basic, Pending)].into_iter().collect(),
                    document_types: Vec::new(),
                    risk_rating: None,
                    ..complete.clone()
                },
                Some(Reason::KycRequiredStatusNotReached),
            ),
            (
                "approved reaches pending",
                rule(Level::Basic, Pending),
                facts(&[(Level::Basic, Approved)]),
                None,
            ),
            (
                "in review reaches in review",
                rule(Level::Enhanced, InReview),
                facts(&[(Level::Enhanced, InReview), (Level::Basic, Rejected)]),
                None,
            ),
            (
                "required document missing",
                extra.clone(),
                KycFacts {
                    document_types: vec![Passport, FaceImage],
                    ..complete.clone()
                },
                Some(Reason::OperationNotActiveDueToExtraKycMissing),
            ),
            (
                "face image can be required",
                Rule {
                    documents: vec![FaceImage],
                    ..rule(Level::Basic, Pending)
                },
                KycFacts {
                    document_types: vec![Passport],
                    ..facts(&[(Level::Basic, Pending)])
                },
                Some(Reason::OperationNotActiveDueToExtraKycMissing),
            ),
            (
                "risk rating missing under a ceiling",
                extra.clone(),
                KycFacts {
                    risk_rating: None,
                    ..complete.clone()
                },
                Some(Reason::OperationNotActiveDueToExtraKycMissing),
            ),
            (
                "risk rating equal to the ceiling",
                extra.clone(),
                KycFacts {
                    risk_rating: Some(RiskRating::Medium),
                    ..complete.clone()
                },
                None,
            ),
            (
                "risk rating above the ceiling",
                extra.clone(),
                KycFacts {
                    risk_rating: Some(RiskRating::High),
                    ..complete.clone()
                },
                Some(Reason::OperationNotActiveDueToExtraKycMissing),
            ),
            (
                "no ceiling ignores a missing or high rating",
                rule(Level::Basic, Approved),
                KycFacts {
                    risk_rating: Some(RiskRating::High),
                    ..facts(&[(Level::Basic, Approved)])
                },
                None,
            ),
        ];
        for (name, rule, facts, expected) in cases {
            let state = rule.evaluate(&facts);
            assert_eq!(state.reason, expected, "{name}");
            assert_eq!(state.active, expected.is_none(), "{name}");
            assert_eq!(rule.blocking_reason(&facts), expected, "{name}");
        }
    }

    fn party(
        role: RelationRole,
        percent: Option<f64>,
        status: Option<VerificationStatus>,
    ) -> RelatedPartyFacts {
        RelatedPartyFacts {
            role,
            ownership: percent.map(|p| Ownership::from_percent(p).unwrap()),
            blocked: false,
            latest: status.map(|s| (Level::Basic, s)).into_iter().collect(),
        }
    }

    fn kyb_rule() -> Rule {
        Rule {
            related: Some(RelatedRequirement {
                roles: vec![RelationRole::BeneficialOwner, RelationRole::Director],
                min_ownership: DEFAULT_MIN_OWNERSHIP,
                level: Level::Basic,
                status: Approved,
            }),
            ..rule(Level::Basic, Approved)
        }
    }

    #[test]
    fn related_parties_are_asked_about_by_role_share_and_status() {
        use RelationRole::*;
        let company = |parties: Vec<RelatedPartyFacts>| KycFacts {
            related: Some(parties),
            ..facts(&[(Level::Basic, Approved)])
        };
        let approved_director = party(Director, None, Some(Approved));
        let cases: Vec<(&str, KycFacts, Option<Reason>)> = vec![
            (
                "a company with no related party",
                company(vec![]),
                Some(Reason::RelatedPartyKycMissing),
            ),
            (
                "only parties of roles not asked about",
                company(vec![party(Representative, None, Some(Approved))]),
                Some(Reason::RelatedPartyKycMissing),
            ),
            (
                "an approved director",
                company(vec![approved_director.clone()]),
                None,
            ),
            (
                "a director in review",
                company(vec![
                    approved_director.clone(),
                    party(Director, None, Some(InReview)),
                ]),
                Some(Reason::RelatedPartyKycMissing),
            ),
            (
                "a director with no verification",
                company(vec![approved_director.clone(), party(Director, None, None)]),
                Some(Reason::RelatedPartyKycMissing),
            ),
            (
                "a rejected owner at 25 %",
                company(vec![
                    approved_director.clone(),
                    party(BeneficialOwner, Some(25.0), Some(Rejected)),
                ]),
                Some(Reason::RelatedPartyKycMissing),
            ),
            (
                "an unverified owner below 25 % is not asked about",
                company(vec![
                    approved_director.clone(),
                    party(BeneficialOwner, Some(24.99), None),
                ]),
                None,
            ),
            (
                "an approved owner alone",
                company(vec![party(BeneficialOwner, Some(60.0), Some(Approved))]),
                None,
            ),
            (
                "a blocked approved director",
                company(vec![RelatedPartyFacts {
                    blocked: true,
                    ..approved_director.clone()
                }]),
                Some(Reason::RelatedPartyKycMissing),
            ),
            (
                "an approval at another level does not count",
                company(vec![RelatedPartyFacts {
                    latest: [(Level::Enhanced, Approved)].into_iter().collect(),
                    ..approved_director.clone()
                }]),
                Some(Reason::RelatedPartyKycMissing),
            ),
            (
                "the company's own status is reported first",
                KycFacts {
                    related: Some(vec![]),
                    ..facts(&[(Level::Basic, Pending)])
                },
                Some(Reason::KycRequiredStatusNotReached),
            ),
            (
                "a person is not concerned",
                facts(&[(Level::Basic, Approved)]),
                None,
            ),
        ];
        for (name, facts, expected) in cases {
            assert_eq!(kyb_rule().blocking_reason(&facts), expected, "{name}");
        }
        // A lower threshold asks about smaller owners.
        let mut strict = kyb_rule();
        strict.related.as_mut().unwrap().min_ownership = Ownership::from_percent(10.0).unwrap();
        let small_owner = company(vec![
            approved_director,
            party(BeneficialOwner, Some(10.0), None),
        ]);
        assert_eq!(
            strict.blocking_reason(&small_owner),
            Some(Reason::RelatedPartyKycMissing)
        );
        assert_eq!(kyb_rule().blocking_reason(&small_owner), None);
    }

    /// The example at the end of the default rules file, uncommented.
    fn documented_kyb_example() -> String {
        let start = DEFAULT_RULES_TOML
            .rfind("# [[operation]]")
            .expect("the example is there");
        DEFAULT_RULES_TOML[start..]
            .lines()
            .map(|line| line.strip_prefix("# ").expect("a commented line"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_default_files_kyb_example_is_valid() {
        let rules = OperationRules::from_toml_str(&documented_kyb_example()).unwrap();
        assert!(rules.ask_about_related_parties());
        assert!(!OperationRules::default_rules()
            .unwrap()
            .ask_about_related_parties());
        assert_eq!(
            rules.rules()[0],
            Rule {
                code: "withdrawal:company_wire".into(),
                ..kyb_rule()
            }
        );
    }

    #[test]
    fn related_requirements_are_checked_when_loaded() {
        let with = |related: &str| format!("[[operation]]\n{VALID}related = {{ {related} }}\n");
        let ok = OperationRules::from_toml_str(&with(
            "roles = [\"beneficialOwner\"], min_ownership = 10.5, level = \"enhanced\", status = \"inReview\"",
        ))
        .unwrap();
        assert_eq!(
            ok.rules()[0].related,
            Some(RelatedRequirement {
                roles: vec![RelationRole::BeneficialOwner],
                min_ownership: Ownership::from_percent(10.5).unwrap(),
                level: Level::Enhanced,
                status: InReview,
            })
        );
        let cases = [
            ("roles = [], level = \"basic\", status = \"approved\"", "roles must name at least one role"),
            ("roles = [\"owner\"], level = \"basic\", status = \"approved\"", "`owner` is not a role"),
            ("roles = [\"director\", \"director\"], level = \"basic\", status = \"approved\"", "`director` is listed more than once"),
            ("roles = [\"director\"], min_ownership = 25, level = \"basic\", status = \"approved\"", "min_ownership only applies when roles include beneficialOwner"),
            ("roles = [\"beneficialOwner\"], min_ownership = 120, level = \"basic\", status = \"approved\"", "min_ownership must be a number from 0 to 100"),
            ("roles = [\"director\"], level = \"basic\", status = \"rejected\"", "related: status `rejected` cannot be required"),
            ("roles = [\"director\"], level = \"basic\"", "missing field `status`"),
            ("roles = [\"director\"], level = \"basic\", status = \"approved\", threshold = 25", "unknown field `threshold`"),
        ];
        for (related, problem) in cases {
            let err = error_of(&with(related));
            assert!(
                matches!(&err, RulesError::InvalidOperation { location, .. } if location.position == 1),
                "{related}: {err:?}"
            );
            assert!(
                err.to_string().contains(problem),
                "{err} should contain {problem}"
            );
        }
    }

    #[test]
    fn operation_state_serializes_with_reason_only_when_inactive() {
        let inactive = OperationState {
            action: Action::Confirm,
            code: "withdrawal:stablecoin".into(),
            active: false,
            reason: Some(Reason::KycRequiredStatusNotReached),
        };
        assert_eq!(
            serde_json::to_value(&inactive).unwrap(),
            serde_json::json!({
                "action": "confirm",
                "code": "withdrawal:stablecoin",
                "active": false,
                "reason": "kyc_required_status_not_reached",
            })
        );
        let active = OperationState {
            action: Action::Create,
            code: "deposit:wire".into(),
            active: true,
            reason: None,
        };
        assert_eq!(
            serde_json::to_value(&active).unwrap(),
            serde_json::json!({"action": "create", "code": "deposit:wire", "active": true})
        );
    }

    #[test]
    fn reason_codes_match_the_refusal_codes() {
        for reason in Reason::ALL {
            assert_eq!(reason.code(), reason.refusal().code());
        }
    }

    #[test]
    fn default_rules_are_the_four_documented_operations() {
        let rules = OperationRules::default_rules().unwrap();
        let expected = [
            Rule {
                action: Action::Create,
                code: "deposit:wire".into(),
                level: Level::Basic,
                status: Approved,
                documents: vec![],
                max_risk_rating: None,
                related: None,
            },
            Rule {
                action: Action::Create,
                code: "deposit:stablecoin".into(),
                level: Level::Basic,
                status: Pending,
                documents: vec![],
                max_risk_rating: None,
                related: None,
            },
            Rule {
                action: Action::Create,
                code: "withdrawal:wire".into(),
                level: Level::Basic,
                status: Approved,
                documents: vec![UtilityBill],
                max_risk_rating: Some(RiskRating::Medium),
                related: None,
            },
            Rule {
                action: Action::Confirm,
                code: "withdrawal:stablecoin".into(),
                level: Level::Enhanced,
                status: Approved,
                max_risk_rating: Some(RiskRating::Medium),
                documents: vec![],
                related: None,
            },
        ];
        assert_eq!(rules.rules(), expected);
    }

    #[test]
    fn evaluate_keeps_file_order() {
        let rules = OperationRules::default_rules().unwrap();
        let facts = KycFacts {
            latest: [(Level::Basic, Pending)].into_iter().collect(),
            document_types: vec![Passport, FaceImage],
            ..KycFacts::default()
        };
        let summary: Vec<_> = rules
            .evaluate(&facts)
            .into_iter()
            .map(|state| (state.action, state.code, state.reason))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    Action::Create,
                    "deposit:wire".to_owned(),
                    Some(Reason::KycRequiredStatusNotReached)
                ),
                (Action::Create, "deposit:stablecoin".to_owned(), None),
                (
                    Action::Create,
                    "withdrawal:wire".to_owned(),
                    Some(Reason::KycRequiredStatusNotReached)
                ),
                (
                    Action::Confirm,
                    "withdrawal:stablecoin".to_owned(),
                    Some(Reason::IdentityKycIsMissing)
                ),
            ]
        );
    }

    #[test]
    fn find_matches_action_and_code() {
        let rules = OperationRules::default_rules().unwrap();
        let found = rules.find("confirm", "withdrawal:stablecoin").unwrap();
        assert_eq!(found.level, Level::Enhanced);
        assert!(rules.find("create", "withdrawal:stablecoin").is_none());
        assert!(rules.find("CREATE", "deposit:wire").is_none());
        assert!(rules.find("delete", "deposit:wire").is_none());
        assert!(rules.find("create", "deposit:cash").is_none());
    }

    #[test]
    fn accepts_face_image_and_any_case_document_names() {
        let rules = OperationRules::from_toml_str(
            r#"
            [[operation]]
            action = "create"
            code = "card_1:issue-v2"
            level = "enhanced"
            status = "inReview"
            documents = ["FaceImage", "utilitybill", "PASSPORT"]
            "#,
        )
        .unwrap();
        assert_eq!(
            rules.rules()[0].documents,
            [FaceImage, UtilityBill, Passport]
        );
        assert_eq!(rules.rules()[0].status, InReview);
    }

    fn error_of(source: &str) -> RulesError {
        match OperationRules::from_toml_str(source) {
            Ok(rules) => panic!("expected an error, got {rules:?}"),
            Err(err) => err,
        }
    }

    const VALID: &str =
        "action = \"create\"\ncode = \"deposit:wire\"\nlevel = \"basic\"\nstatus = \"approved\"\n";

    #[test]
    fn syntax_errors_give_the_line() {
        let err = error_of("[[operation]]\naction = \"create\"\ncode = deposit:wire\n");
        assert!(
            matches!(err, RulesError::Toml { line: Some(3), .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("operation rules: line 3: "),
            "{err}"
        );
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn empty_files_and_files_without_operations_are_refused() {
        assert_eq!(error_of(""), RulesError::NoOperations);
        assert_eq!(error_of("# only a comment\n"), RulesError::NoOperations);
        assert_eq!(error_of("operation = []\n"), RulesError::NoOperations);
    }

    #[test]
    fn unknown_top_level_keys_are_refused() {
        let err = error_of(&format!("[[operations]]\n{VALID}"));
        assert!(
            matches!(&err, RulesError::Toml { line: Some(1), message } if message.contains("operations")),
            "{err:?}"
        );
    }

    #[test]
    fn operation_errors_name_the_operation_and_the_problem() {
        let second = |extra: &str| {
            format!(
                "[[operation]]\n{VALID}\n[[operation]]\naction = \"create\"\ncode = \"withdrawal:wire\"\n{extra}"
            )
        };
        let cases = [
            (
                second("level = \"basic\"\nstatus = \"approved\"\nmax_risk = \"low\"\n"),
                "unknown field `max_risk`",
            ),
            (
                second("level = \"gold\"\nstatus = \"approved\"\n"),
                "unknown variant `gold`",
            ),
            (second("status = \"approved\"\n"), "missing field `level`"),
            (
                second("level = \"basic\"\nstatus = \"rejected\"\n"),
                "status `rejected` cannot be required; expected one of pending, inReview, approved",
            ),
            (
                second("level = \"basic\"\nstatus = \"approved\"\nmax_risk_rating = \"severe\"\n"),
                "unknown variant `severe`",
            ),
            (
                second("level = \"basic\"\nstatus = \"approved\"\ndocuments = [\"Selfie\"]\n"),
                "`Selfie` is not a document type",
            ),
            (
                second("level = \"basic\"\nstatus = \"approved\"\ndocuments = [\"Passport\", \"passport\"]\n"),
                "`Passport` is listed more than once",
            ),
        ];
        for (source, problem) in cases {
            let err = error_of(&source);
            let text = err.to_string();
            assert!(
                matches!(&err, RulesError::InvalidOperation { location, .. }
                    if location.position == 2
                        && location.line == Some(7)
                        && location.code.as_deref() == Some("withdrawal:wire")),
                "{err:?}"
            );
            assert!(
                text.starts_with(
                    "operation rules: operation #2 (line 7, code `withdrawal:wire`): "
                ),
                "{text}"
            );
            assert!(text.contains(problem), "{text} should contain {problem}");
        }
    }

    #[test]
    fn bad_enum_in_action_is_refused() {
        let err = error_of(
            "[[operation]]\naction = \"delete\"\ncode = \"deposit:wire\"\nlevel = \"basic\"\nstatus = \"approved\"\n",
        );
        assert!(
            err.to_string().contains("unknown variant `delete`"),
            "{err}"
        );
    }

    #[test]
    fn bad_code_formats_are_refused() {
        for code in [
            "",
            "deposit",
            "deposit:",
            ":wire",
            "Deposit:wire",
            "deposit:wire:extra",
            "deposit wire:x",
            "depósito:wire",
        ] {
            let source = format!(
                "[[operation]]\naction = \"create\"\ncode = \"{code}\"\nlevel = \"basic\"\nstatus = \"approved\"\n"
            );
            let err = error_of(&source);
            assert!(
                matches!(&err, RulesError::InvalidOperation { problem, .. } if problem.contains("must be `<category>:<method>`")),
                "{code}: {err:?}"
            );
        }
        let err = error_of("[[operation]]\naction = \"create\"\ncode = 7\nlevel = \"basic\"\nstatus = \"approved\"\n");
        assert!(
            matches!(&err, RulesError::InvalidOperation { location, .. } if location.code.is_none()),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("operation rules: operation #1 (line 1): "),
            "{err}"
        );
    }

    #[test]
    fn duplicate_action_and_code_pairs_are_refused() {
        let source = format!("[[operation]]\n{VALID}\n[[operation]]\n{VALID}");
        let err = error_of(&source);
        assert!(
            matches!(&err, RulesError::DuplicateOperation { location, first_position: 1, action: Action::Create }
                if location.position == 2),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("already defined by operation #1"),
            "{err}"
        );

        // The same code under another action is a different operation.
        let confirm = VALID.replace("create", "confirm");
        assert!(OperationRules::from_toml_str(&format!(
            "[[operation]]\n{VALID}\n[[operation]]\n{confirm}"
        ))
        .is_ok());
    }
}
