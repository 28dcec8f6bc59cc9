//! The wire representations of stored records, as the PublicMint reference
//! shapes them: camelCase names, every optional value present as `null`,
//! times as `2022-03-31T13:08:52.030Z`.

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::db::identities::{DocumentRow, IdentityRow, NewDocument};
use crate::db::relations::RelationRow;
use crate::domain::decisions::{RejectLabel, RejectLabels, RejectType};
use crate::domain::document::{DocumentLocation, DocumentSide, DocumentType};
use crate::domain::identity::{Country, Email, Gender, IdentityData, IdentityKind, RefId};
use crate::domain::ids::{
    AppId, DocumentId, HistoryEntryId, IdentityId, RelationId, VerificationId,
};
use crate::domain::kyc::{Level, RiskRating, VerificationStatus};
use crate::domain::metadata::Metadata;
use crate::domain::relations::RelationRole;
use crate::domain::time::wire;
use crate::storage::Storage;

/// What `GET /identities/:id?includeErased=true` answers for an erased
/// identity: the skeleton kept for record-keeping, no personal data.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasedIdentityView {
    pub id: IdentityId,
    pub app_id: AppId,
    #[serde(rename = "type")]
    pub kind: IdentityKind,
    pub ref_id: Option<RefId>,
    /// Always true.
    pub erased: bool,
    #[serde(with = "wire")]
    pub erased_at: NaiveDateTime,
    #[serde(with = "wire")]
    pub created_at: NaiveDateTime,
}

impl ErasedIdentityView {
    /// The view of an erased row; `None` if the row is not erased.
    pub fn of(row: IdentityRow) -> Option<Self> {
        Some(ErasedIdentityView {
            erased_at: row.erased_at?,
            id: row.id,
            app_id: row.app_id,
            kind: row.identity_type,
            ref_id: row.ref_id,
            erased: true,
            created_at: row.created_at,
        })
    }
}

/// An identity as `GET /identities/:id` answers it: live, or (asked for
/// with `includeErased=true`) erased.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum IdentityAnswer {
    Live(Box<IdentityView>),
    Erased(ErasedIdentityView),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView {
    pub id: IdentityId,
    pub app_id: AppId,
    #[serde(rename = "type")]
    pub kind: IdentityKind,
    pub name: String,
    pub email: Email,
    pub birthday: Option<String>,
    pub gender: Option<Gender>,
    pub address: AddressView,
    pub phone: PhoneView,
    pub tax: TaxView,
    pub identity_owner: Option<IdentityId>,
    /// The client's own id for the customer; `null` when none was given.
    pub ref_id: Option<RefId>,
    /// The client's own key-value pairs; `{}` when none.
    pub metadata: Metadata,
    pub blocked: bool,
    pub identity_confirmed: bool,
    pub risk_rating: Option<RiskRating>,
    pub kyc_status: Vec<KycStatusView>,
    pub documents: Vec<DocumentView>,
    /// A company's related parties, in the order they were added; absent
    /// for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relations: Option<Vec<CompactRelationView>>,
    #[serde(with = "wire")]
    pub created_at: NaiveDateTime,
    #[serde(with = "wire")]
    pub updated_at: NaiveDateTime,
}

/// A company's relation as its identity answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactRelationView {
    pub id: RelationId,
    pub person_id: IdentityId,
    pub role: RelationRole,
    pub ownership_percent: Option<f64>,
}

/// A company's relation to one of its people.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationView {
    pub id: RelationId,
    pub company_id: IdentityId,
    pub person_id: IdentityId,
    pub role: RelationRole,
    /// A number with at most two decimals (`25`, `33.33`); `null` when
    /// not given (always given for a beneficial owner).
    pub ownership_percent: Option<f64>,
    pub title: Option<String>,
    #[serde(with = "wire")]
    pub created_at: NaiveDateTime,
    #[serde(with = "wire")]
    pub updated_at: NaiveDateTime,
}

fn percent_of(stored: Option<i32>) -> Option<f64> {
    stored
        .and_then(crate::domain::relations::Ownership::from_hundredths)
        .map(|share| share.percent())
}

impl RelationView {
    pub fn new(row: RelationRow) -> RelationView {
        RelationView {
            ownership_percent: percent_of(row.ownership),
            id: row.id,
            company_id: row.company_id,
            person_id: row.person_id,
            role: row.role,
            title: row.title,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl CompactRelationView {
    pub fn new(row: RelationRow) -> CompactRelationView {
        CompactRelationView {
            ownership_percent: percent_of(row.ownership),
            id: row.id,
            person_id: row.person_id,
            role: row.role,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressView {
    pub street: String,
    pub city: String,
    pub state: Option<String>,
    pub postal_code: String,
    pub country: Country,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhoneView {
    pub number: String,
    pub sms: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxView {
    pub country: Country,
    pub id_number: String,
    pub state: Option<String>,
    pub formation_region: Option<String>,
}

/// The latest verification of one level, as listed in `kycStatus`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KycStatusView {
    pub level: Level,
    pub status: VerificationStatus,
    pub verification_id: VerificationId,
    #[serde(with = "wire")]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentView {
    pub id: DocumentId,
    pub identity_id: IdentityId,
    #[serde(rename = "type")]
    pub document_type: DocumentType,
    pub side: DocumentSide,
    pub label: Option<String>,
    pub description: Option<String>,
    pub url: String,
    #[serde(with = "wire")]
    pub created_at: NaiveDateTime,
    #[serde(with = "wire")]
    pub updated_at: NaiveDateTime,
    #[serde(with = "wire::option")]
    pub deleted_at: Option<NaiveDateTime>,
}

impl From<crate::db::kyc::VerificationRow> for KycStatusView {
    fn from(row: crate::db::kyc::VerificationRow) -> Self {
        KycStatusView {
            level: row.level,
            status: row.status,
            verification_id: row.id,
            updated_at: row.updated_at,
        }
    }
}

impl From<crate::db::kyc::StatusRow> for KycStatusView {
    fn from(row: crate::db::kyc::StatusRow) -> Self {
        KycStatusView {
            level: row.level,
            status: row.status,
            verification_id: row.id,
            updated_at: row.updated_at,
        }
    }
}

impl DocumentView {
    /// A stored document as answered; its URL is built from the current
    /// storage settings (`Storage::object_url`), never stored.
    pub fn new(row: DocumentRow, storage: &Storage) -> Self {
        DocumentView {
            url: wire_url(&row.url, storage),
            id: row.id,
            identity_id: row.identity_id,
            document_type: row.document_type,
            side: row.side,
            label: row.label,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
        }
    }

    /// A document just inserted, as a read would answer it.
    pub fn created(row: &NewDocument<'_>, storage: &Storage) -> Self {
        DocumentView {
            id: row.id.clone(),
            identity_id: row.identity_id.clone(),
            document_type: row.document_type,
            side: row.side,
            label: row.label.map(str::to_owned),
            description: row.description.map(str::to_owned),
            url: wire_url(row.url, storage),
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: None,
        }
    }
}

fn wire_url(location: &DocumentLocation, storage: &Storage) -> String {
    match location {
        DocumentLocation::Stored(key) => storage.object_url(key),
        DocumentLocation::External(url) => url.as_str().to_owned(),
    }
}

impl IdentityView {
    /// The view of a row whose sealed fields opened to `data`.
    pub fn new(
        row: IdentityRow,
        data: IdentityData,
        documents: Vec<DocumentView>,
        kyc_status: Vec<KycStatusView>,
        metadata: Metadata,
    ) -> Self {
        let IdentityData {
            kind,
            name,
            email,
            birthday,
            gender,
            address,
            phone,
            tax,
            identity_owner,
            ref_id,
        } = data;
        IdentityView {
            id: row.id,
            app_id: row.app_id,
            kind,
            name,
            email,
            // ISO 8601 (`%Y-%m-%d`), without a format string to parse.
            birthday: birthday.map(|d| d.to_string()),
            gender,
            address: AddressView {
                street: address.street,
                city: address.city,
                state: address.state,
                postal_code: address.postal_code,
                country: address.country,
            },
            phone: PhoneView {
                number: phone.number,
                sms: phone.sms,
            },
            tax: TaxView {
                country: tax.country,
                id_number: tax.id_number,
                state: tax.state,
                formation_region: tax.formation_region,
            },
            identity_owner,
            ref_id,
            metadata,
            blocked: row.blocked,
            identity_confirmed: row.identity_confirmed,
            risk_rating: row.risk_rating,
            kyc_status,
            documents,
            // A new company has none; `views_of` fills in a stored one's.
            relations: (kind == IdentityKind::Company).then(Vec::new),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationView {
    pub id: VerificationId,
    pub identity_id: IdentityId,
    pub level: Level,
    pub status: VerificationStatus,
    pub reason: Option<String>,
    pub risk_rating: Option<RiskRating>,
    #[serde(with = "wire")]
    pub created_at: NaiveDateTime,
    #[serde(with = "wire")]
    pub updated_at: NaiveDateTime,
    /// The decision's structured details (those of its latest decision).
    #[serde(flatten)]
    pub decision: DecisionView,
    pub history: Vec<VerificationEventView>,
}

/// One status a verification went through, and when.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationEventView {
    pub status: Option<VerificationStatus>,
    pub reason: Option<String>,
    #[serde(with = "wire")]
    pub created_at: NaiveDateTime,
    #[serde(flatten)]
    pub decision: DecisionView,
}

/// What a decision says beyond its status and reason, each key present only
/// when it applies: `rejectType` and `rejectLabels` (`[]` when none were
/// given) for a rejection, `clientComment` when one was written. The
/// internal comment has no place here: it never leaves the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_type: Option<RejectType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_labels: Option<Vec<RejectLabel>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_comment: Option<String>,
}

impl DecisionView {
    pub fn new(
        reject_type: Option<RejectType>,
        labels: Option<RejectLabels>,
        client_comment: Option<String>,
    ) -> DecisionView {
        DecisionView {
            reject_labels: reject_type
                .map(|_| labels.map(|l| l.labels().to_vec()).unwrap_or_default()),
            reject_type,
            client_comment,
        }
    }
}

/// One entry of an identity's history: a verification status change, a
/// block or an unblock.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityEventView {
    pub id: HistoryEntryId,
    #[serde(rename = "type")]
    pub event_type: String,
    pub verification_id: Option<VerificationId>,
    pub level: Option<Level>,
    pub status: Option<VerificationStatus>,
    pub reason: Option<String>,
    #[serde(with = "wire")]
    pub created_at: NaiveDateTime,
    #[serde(flatten)]
    pub decision: DecisionView,
}

impl From<crate::db::kyc::EventRow> for IdentityEventView {
    fn from(row: crate::db::kyc::EventRow) -> Self {
        IdentityEventView {
            id: row.id,
            event_type: row.event_type,
            verification_id: row.verification_id,
            level: row.level,
            status: row.status,
            reason: row.reason,
            created_at: row.created_at,
            decision: DecisionView::new(row.reject_type, row.reject_labels, row.client_comment),
        }
    }
}

/// `{"data": …}`, serialized straight from the view: going through
/// `serde_json::json!` would first copy every view into a `Value` tree.
#[derive(Serialize)]
pub struct Data<T> {
    pub data: T,
}

/// `{"data": [...], "total": N, "links": {...}}`: one page of a list.
#[derive(Serialize)]
pub struct ListPage<T> {
    pub data: Vec<T>,
    /// Numbered pages only (unless asked with `page[total]=false`): a
    /// cursor page does not count every match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    pub links: PageLinks,
}

/// The neighbouring pages, as URLs relative to the API's base URL that
/// repeat the request's filters, sort and page size; `null` where no row
/// lies that way.
#[derive(Serialize)]
pub struct PageLinks {
    pub next: Option<String>,
    pub prev: Option<String>,
}

/// An audit record as `GET /audit-log` answers it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecordView {
    pub id: String,
    pub seq: i64,
    #[serde(with = "wire")]
    pub created_at: NaiveDateTime,
    /// `api`, `signed_url`, `cli` or `server`.
    pub actor: String,
    pub api_key_id: Option<String>,
    pub os_user: Option<String>,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    pub action: String,
    pub targets: Vec<crate::domain::audit::Target>,
    pub fields: Vec<String>,
    pub outcome: String,
    pub status: Option<i32>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecordView {
    /// A linked record's view; `None` for one whose JSON columns were
    /// edited by hand.
    pub fn of(
        link: crate::db::audit::LinkRow,
        row: crate::db::audit::AuditRow,
    ) -> Option<AuditRecordView> {
        let record = row.record(link.seq)?;
        Some(AuditRecordView {
            id: record.id,
            seq: link.seq,
            created_at: record.created_at,
            actor: record.actor,
            api_key_id: record.api_key_id,
            os_user: record.os_user,
            request_id: record.request_id,
            client_address: record.client_address,
            action: record.action,
            targets: record.targets,
            fields: record.fields,
            outcome: record.outcome,
            status: record.status,
            prev_hash: link.prev_hash,
            hash: link.hash,
        })
    }
}
