//! Creating, changing, deleting and reading identities.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::Value;
use uuid::Uuid;

use crate::db::identities::{self as q, DocumentRow, IdentityRow};
use crate::db::Cursor;
use crate::db::{self, DbConnection};
use crate::domain::document::DocumentType;
use crate::domain::identity::{
    changed_fields, locked_field_changes, merge_patch, parse_identity, Address, Country,
    DocumentInput, Email, Gender, IdentityData, IdentityInput, IdentityKind, Phone, Tax,
};
use crate::domain::list_query::{ListQuery, ListSpec, Sort, IDENTITY_LIST};
use crate::error::{ApiError, FieldError, Refusal};
use crate::services::kyc;
use crate::services::listing::Listing;
use crate::services::write::{Change, Tx};
use crate::views::{DocumentView, IdentityView, KycStatusView};
use diesel::QueryResult;

pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

fn not_found() -> ApiError {
    ApiError::refused(Refusal::IdentityNotFound, "No identity with this id.")
}

/// Maps the unique index on (app, normalized email) to its client error.
fn email_conflict(err: diesel::result::Error) -> ApiError {
    if db::is_unique_violation(&err) {
        ApiError::refused(
            Refusal::EmailAlreadyInUse,
            "Another identity of this app already uses this email.",
        )
    } else {
        err.into()
    }
}

/// `identityOwner` must be a live person of the same app.
fn check_owner(conn: &mut DbConnection, app_id: &str, owner: Option<Uuid>) -> Result<(), ApiError> {
    let Some(owner) = owner else { return Ok(()) };
    let row = q::find_live(conn, app_id, &owner.to_string())?.ok_or_else(|| {
        ApiError::refused(
            Refusal::IdentityOwnerNotFound,
            "No identity with the identityOwner id.",
        )
    })?;
    if row.identity_type != IdentityKind::Person.as_str() {
        return Err(ApiError::refused(
            Refusal::IdentityOwnerMustBeOfTypePerson,
            "The identity owner must be a person.",
        ));
    }
    Ok(())
}

pub fn create(
    tx: &mut Tx<'_, '_>,
    app_id: Uuid,
    input: IdentityInput,
) -> Result<IdentityView, ApiError> {
    let app_id = app_id.to_string();
    check_owner(tx.read(), &app_id, input.data.identity_owner)?;
    let now = db::now();
    let mut row = IdentityRow {
        id: Uuid::new_v4().to_string(),
        app_id,
        identity_type: String::new(),
        name: String::new(),
        email: String::new(),
        birthday: None,
        gender: None,
        address_street: String::new(),
        address_city: String::new(),
        address_state: None,
        address_postal_code: String::new(),
        address_country: String::new(),
        phone_number: String::new(),
        phone_sms: false,
        tax_country: String::new(),
        tax_id_number: String::new(),
        tax_state: None,
        tax_formation_region: None,
        identity_owner: None,
        blocked: false,
        identity_confirmed: false,
        risk_rating: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        email_domain: String::new(),
        email_local_reversed: String::new(),
        email_normalized: String::new(),
    };
    write_data(&mut row, &input.data);
    q::insert(tx.conn(), &row).map_err(email_conflict)?;
    tx.record(Change::IdentityCreated {
        app_id: row.app_id.clone(),
        identity_id: row.id.clone(),
    });

    let mut documents =
        insert_documents(tx, &row, &input.documents.clone().unwrap_or_default(), now)?;
    documents.extend(insert_documents(
        tx,
        &row,
        &input.face_image_documents().unwrap_or_default(),
        now,
    )?);
    // A new identity has no earlier verifications: its KYC status is what
    // its documents start now, so nothing needs reading back.
    let started = if documents.is_empty() {
        Vec::new()
    } else {
        kyc::start_verifications(tx, &row, &document_types(&documents), true)?
    };
    let kyc_status = started.into_iter().map(KycStatusView::from).collect();
    Ok(IdentityView::new(row, documents, kyc_status))
}

pub fn patch(
    tx: &mut Tx<'_, '_>,
    app_id: Uuid,
    id: Uuid,
    body: &Value,
) -> Result<IdentityView, ApiError> {
    let own_id = id;
    let app_id = app_id.to_string();
    let id = id.to_string();
    let mut row = q::find_live_for_update(tx.read(), &app_id, &id)?.ok_or_else(not_found)?;
    let current = data_from_row(&row)?;

    let merged = merge_patch(&current, body).map_err(ApiError::Validation)?;
    // The age bounds apply when the birthday (or the type) changes; an
    // identity that has since aged past them can still be edited.
    let sends = |field: &str| body.get(field).is_some();
    let check_age = sends("birthday") || sends("type");
    let input = parse_identity(&merged, today(), check_age).map_err(ApiError::Validation)?;

    if row.identity_confirmed {
        let changed = locked_field_changes(&current, &input.data);
        if !changed.is_empty() {
            return Err(ApiError::refused_with(
                Refusal::IdentityFieldLocked,
                "The identity is confirmed: these fields can no longer change.",
                changed
                    .into_iter()
                    .map(|f| FieldError::new(f, "is locked because the identity is confirmed"))
                    .collect(),
            ));
        }
    }
    if input.data.identity_owner == Some(own_id) {
        return Err(ApiError::invalid(
            "identityOwner",
            "an identity cannot own itself",
        ));
    }
    if input.data.identity_owner != current.identity_owner {
        check_owner(tx.read(), &app_id, input.data.identity_owner)?;
    }
    if current.kind == IdentityKind::Person
        && input.data.kind == IdentityKind::Company
        && q::owns_live_companies(tx.read(), &app_id, &id)?
    {
        return Err(ApiError::refused(
            Refusal::IdentityOwnerInUse,
            "This person owns companies, so it cannot become a company.",
        ));
    }

    let now = db::now();
    let fields = changed_fields(&current, &input.data);
    write_data(&mut row, &input.data);
    row.updated_at = now;
    q::update(tx.conn(), &app_id, &row).map_err(email_conflict)?;
    if !fields.is_empty() {
        tx.record(Change::IdentityUpdated {
            app_id: app_id.clone(),
            identity_id: id.clone(),
            fields,
        });
    }

    // A document set that is sent replaces the current one: the old records
    // stay (deleted_at set) for the audit trail.
    if let Some(documents) = &input.documents {
        remove_documents(tx, &app_id, &id, false, now)?;
        insert_documents(tx, &row, documents, now)?;
    }
    if let Some(face_images) = input.face_image_documents() {
        remove_documents(tx, &app_id, &id, true, now)?;
        insert_documents(tx, &row, &face_images, now)?;
    }
    if input.documents.is_some() || input.face_images.is_some() {
        let live: Vec<DocumentType> = q::live_documents_of(tx.read(), &app_id, &[id.as_str()])?
            .iter()
            .filter_map(|d| DocumentType::from_stored(&d.document_type))
            .collect();
        kyc::start_verifications(tx, &row, &live, false)?;
    }
    let mut views = views_of(tx.read(), vec![row])?;
    Ok(views.remove(0))
}

fn remove_documents(
    tx: &mut Tx<'_, '_>,
    app_id: &str,
    identity_id: &str,
    face_images: bool,
    at: NaiveDateTime,
) -> Result<(), ApiError> {
    for document_id in q::soft_delete_documents(tx.conn(), app_id, identity_id, face_images, at)? {
        tx.record(Change::DocumentRemoved {
            app_id: app_id.to_string(),
            identity_id: identity_id.to_string(),
            document_id,
        });
    }
    Ok(())
}

pub fn delete(tx: &mut Tx<'_, '_>, app_id: Uuid, id: Uuid) -> Result<(), ApiError> {
    let app_id = app_id.to_string();
    let id = id.to_string();
    q::find_live_for_update(tx.read(), &app_id, &id)?.ok_or_else(not_found)?;
    if q::owns_live_companies(tx.read(), &app_id, &id)? {
        return Err(ApiError::refused(
            Refusal::IdentityOwnerInUse,
            "This person owns live companies; delete or reassign them first.",
        ));
    }
    q::soft_delete(tx.conn(), &app_id, &id, db::now())?;
    tx.record(Change::IdentityDeleted {
        app_id,
        identity_id: id,
    });
    Ok(())
}

pub fn get(conn: &mut DbConnection, app_id: Uuid, id: Uuid) -> Result<IdentityView, ApiError> {
    let row = q::find_live(conn, &app_id.to_string(), &id.to_string())?.ok_or_else(not_found)?;
    let mut views = views_of(conn, vec![row])?;
    Ok(views.remove(0))
}

/// `GET /identities`.
pub struct IdentityListing;

impl Listing for IdentityListing {
    type Row = IdentityRow;
    type View = IdentityView;

    fn spec() -> &'static ListSpec {
        &IDENTITY_LIST
    }

    fn page(
        conn: &mut DbConnection,
        app_id: &str,
        query: &ListQuery,
    ) -> Result<(Vec<IdentityView>, i64), ApiError> {
        let (rows, total) = q::page_and_total(conn, app_id, query)?;
        Ok((views_of(conn, rows)?, total))
    }

    fn count(conn: &mut DbConnection, app_id: &str, query: &ListQuery) -> QueryResult<i64> {
        q::count(conn, app_id, query)
    }

    fn after(
        conn: &mut DbConnection,
        app_id: &str,
        query: &ListQuery,
        after: Option<&Cursor>,
        limit: i64,
    ) -> QueryResult<Vec<IdentityRow>> {
        q::list_after(conn, app_id, query, after, limit)
    }

    fn cursor(row: &IdentityRow, sort: &Sort) -> Cursor {
        Cursor::after(sort, row.created_at, row.updated_at, &row.id)
    }

    fn views(
        conn: &mut DbConnection,
        rows: Vec<IdentityRow>,
    ) -> Result<Vec<IdentityView>, ApiError> {
        views_of(conn, rows)
    }
}

/// Assembles identities with their documents and KYC status in a fixed
/// number of queries, whatever the number of identities.
pub fn views_of(
    conn: &mut DbConnection,
    rows: Vec<IdentityRow>,
) -> Result<Vec<IdentityView>, ApiError> {
    let Some(app_id) = rows.first().map(|r| r.app_id.clone()) else {
        return Ok(Vec::new());
    };
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut documents: HashMap<String, Vec<DocumentView>> = HashMap::new();
    for doc in q::live_documents_of(conn, &app_id, &ids)? {
        documents
            .entry(doc.identity_id.clone())
            .or_default()
            .push(doc.into());
    }
    let mut kyc: HashMap<String, Vec<KycStatusView>> = kyc::kyc_status_of(conn, &app_id, &ids)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let docs = documents.remove(&row.id).unwrap_or_default();
            let status = kyc.remove(&row.id).unwrap_or_default();
            IdentityView::new(row, docs, status)
        })
        .collect())
}

/// Responses list documents first, then face images, each in the order
/// sent; the two sets are replaced independently, so each has its own range
/// of positions.
const FACE_IMAGE_POSITIONS: i32 = 1000;

fn insert_documents(
    tx: &mut Tx<'_, '_>,
    identity: &IdentityRow,
    inputs: &[DocumentInput],
    now: NaiveDateTime,
) -> Result<Vec<DocumentView>, ApiError> {
    let rows: Vec<DocumentRow> = inputs
        .iter()
        .enumerate()
        .map(|(i, doc)| DocumentRow {
            id: Uuid::new_v4().to_string(),
            app_id: identity.app_id.clone(),
            identity_id: identity.id.clone(),
            document_type: doc.document_type.as_str().to_string(),
            side: doc.side.as_str().to_string(),
            label: doc.label.clone(),
            description: doc.description.clone(),
            url: doc.url.as_str().to_string(),
            position: i as i32
                + match doc.document_type {
                    DocumentType::FaceImage => FACE_IMAGE_POSITIONS,
                    _ => 0,
                },
            created_at: now,
            updated_at: now,
            deleted_at: None,
        })
        .collect();
    q::insert_documents(tx.conn(), &rows)?;
    for row in &rows {
        tx.record(Change::DocumentCreated {
            app_id: row.app_id.clone(),
            identity_id: row.identity_id.clone(),
            document_id: row.id.clone(),
        });
    }
    Ok(rows.into_iter().map(DocumentView::from).collect())
}

fn write_data(row: &mut IdentityRow, data: &IdentityData) {
    row.identity_type = data.kind.as_str().to_string();
    row.name = data.name.clone();
    row.email = data.email.as_str().to_string();
    let keys = data.email.search_keys();
    row.email_domain = keys.domain;
    row.email_local_reversed = keys.local_reversed;
    row.email_normalized = data.email.normalized();
    row.birthday = data.birthday;
    row.gender = data.gender.map(|g| g.as_str().to_string());
    row.address_street = data.address.street.clone();
    row.address_city = data.address.city.clone();
    row.address_state = data.address.state.clone();
    row.address_postal_code = data.address.postal_code.clone();
    row.address_country = data.address.country.as_str().to_string();
    row.phone_number = data.phone.number.clone();
    row.phone_sms = data.phone.sms;
    row.tax_country = data.tax.country.as_str().to_string();
    row.tax_id_number = data.tax.id_number.clone();
    row.tax_state = data.tax.state.clone();
    row.tax_formation_region = data.tax.formation_region.clone();
    row.identity_owner = data.identity_owner.map(|o| o.to_string());
}

/// Reads a stored row back into the domain; a value the domain would refuse
/// means the row was written by something else, which is an internal error.
pub fn data_from_row(row: &IdentityRow) -> Result<IdentityData, ApiError> {
    let corrupt = |what: &str| {
        ApiError::internal(anyhow::anyhow!(
            "identity {} has an invalid stored {what}",
            row.id
        ))
    };
    Ok(IdentityData {
        kind: IdentityKind::parse(&row.identity_type).ok_or_else(|| corrupt("type"))?,
        name: row.name.clone(),
        email: Email::parse(&row.email).map_err(|_| corrupt("email"))?,
        birthday: row.birthday,
        gender: match &row.gender {
            Some(g) => Some(Gender::parse(g).ok_or_else(|| corrupt("gender"))?),
            None => None,
        },
        address: Address {
            street: row.address_street.clone(),
            city: row.address_city.clone(),
            state: row.address_state.clone(),
            postal_code: row.address_postal_code.clone(),
            country: Country::parse(&row.address_country)
                .ok_or_else(|| corrupt("address.country"))?,
        },
        phone: Phone {
            number: row.phone_number.clone(),
            sms: row.phone_sms,
        },
        tax: Tax {
            country: Country::parse(&row.tax_country).ok_or_else(|| corrupt("tax.country"))?,
            id_number: row.tax_id_number.clone(),
            state: row.tax_state.clone(),
            formation_region: row.tax_formation_region.clone(),
        },
        identity_owner: match &row.identity_owner {
            Some(o) => Some(Uuid::parse_str(o).map_err(|_| corrupt("identityOwner"))?),
            None => None,
        },
    })
}

/// The live document types of an identity, for KYC rules.
pub fn document_types(documents: &[DocumentView]) -> Vec<DocumentType> {
    documents
        .iter()
        .filter_map(|d| DocumentType::from_stored(&d.document_type))
        .collect()
}
