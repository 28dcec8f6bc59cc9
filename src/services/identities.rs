//! Creating, changing, deleting and reading identities.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use crate::db::identities::IdentityQuery;
use crate::db::identities::{
    self as q, IdentityChanges, IdentityColumns, IdentityRow, NewDocument, NewIdentity,
};
use crate::db::Cursor;
use crate::db::{self, DbConnection};
use crate::domain::crypto::KeyRing;
use crate::domain::document::DocumentType;
use crate::domain::identity::{
    changed_fields, locked_field_changes, DocumentInput, IdentityInput, IdentityKind, IdentityPatch,
};
use crate::domain::ids::{AppId, DocumentId, IdentityId};
use crate::domain::list_query::{IdentityFilter, ListSpec, Sort, SortField, IDENTITY_LIST};
use crate::domain::metadata::Metadata;
use crate::error::{ApiError, FieldError, Refusal};
use crate::services::documents::SealedDocuments;
use crate::services::listing::Listing;
use crate::services::write::{Change, Tx};
use crate::services::{custody, kyc};
use crate::storage::Storage;
use crate::views::{CompactRelationView, DocumentView, IdentityView, KycStatusView};
use diesel::QueryResult;

pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

fn not_found() -> ApiError {
    ApiError::refused(Refusal::IdentityNotFound, "No identity with this id.")
}

/// Maps the unique index on (app, normalized email) to its client error.
/// A write refused by one of the identities' unique indexes: the refId's
/// or the email's.
fn unique_conflict(err: diesel::result::Error) -> ApiError {
    if db::is_unique_violation_of(&err, "ref_id") {
        ApiError::refused_with(
            Refusal::RefIdAlreadyInUse,
            "Another live identity of this app already has this refId.",
            vec![FieldError::new("refId", "is already in use")],
        )
    } else if db::is_unique_violation(&err) {
        ApiError::refused(
            Refusal::EmailAlreadyInUse,
            "Another identity of this app already uses this email.",
        )
    } else {
        err.into()
    }
}

/// `identityOwner` must be a live person of the same app.
fn check_owner(
    conn: &mut DbConnection,
    app_id: &AppId,
    owner: Option<&IdentityId>,
) -> Result<(), ApiError> {
    let Some(owner) = owner else { return Ok(()) };
    let row = q::find_live(conn, app_id, owner)?.ok_or_else(|| {
        ApiError::refused(
            Refusal::IdentityOwnerNotFound,
            "No identity with the identityOwner id.",
        )
    })?;
    if row.identity_type != IdentityKind::Person {
        return Err(ApiError::refused(
            Refusal::IdentityOwnerMustBeOfTypePerson,
            "The identity owner must be a person.",
        ));
    }
    Ok(())
}

pub fn create(
    tx: &mut Tx<'_, '_>,
    storage: &Storage,
    keys: &KeyRing,
    app_id: &AppId,
    input: IdentityInput,
    sealed: &SealedDocuments,
) -> Result<IdentityView, ApiError> {
    check_owner(tx.read(), app_id, input.data.identity_owner.as_ref())?;
    let now = db::now();
    let id = IdentityId::new();
    let key = custody::NewKey::make(keys, &id);
    let columns = IdentityColumns::of(&input.data, &id, key.key());
    // What is written, as a read would answer it: a new identity is not
    // blocked, not confirmed and unrated.
    let row = IdentityRow::created(
        id.clone(),
        app_id.clone(),
        &columns,
        Some(key.wrapped().to_owned()),
        now,
    );
    q::insert(
        tx.conn(),
        &NewIdentity {
            id: &id,
            app_id,
            data: columns,
            wrapped_key: key.wrapped(),
            blocked: false,
            identity_confirmed: false,
            created_at: now,
            updated_at: now,
        },
    )
    .map_err(unique_conflict)?;
    key.note(tx, &id);
    tx.record(Change::IdentityCreated {
        app_id: app_id.clone(),
        identity_id: id.clone(),
    });
    let metadata = match &input.metadata {
        Some(changes) => {
            q::change_metadata(tx.conn(), app_id, &row.id, changes)?;
            changes
                .applied_to(&Metadata::new())
                .map_err(|why| ApiError::invalid("metadata", why))?
        }
        None => Metadata::new(),
    };

    let new_documents = NewDocuments {
        storage,
        keys,
        sealed,
        now,
    };
    let mut documents =
        new_documents.insert(tx, &row, input.documents.as_deref().unwrap_or_default())?;
    documents.extend(new_documents.insert(
        tx,
        &row,
        &input.face_image_documents().unwrap_or_default(),
    )?);
    // A new identity has no earlier verifications: its KYC status is what
    // its documents start now, so nothing needs reading back.
    let started = if documents.is_empty() {
        Vec::new()
    } else {
        kyc::start_verifications(tx, &row, &document_types(&documents), true)?
    };
    let kyc_status = started.into_iter().map(KycStatusView::from).collect();
    let view = IdentityView::new(row, input.data, documents, kyc_status, metadata);
    tx.answered_identity(&view);
    Ok(view)
}

#[allow(clippy::too_many_arguments)]
pub fn patch(
    tx: &mut Tx<'_, '_>,
    storage: &Storage,
    keys: &KeyRing,
    app_id: &AppId,
    id: &IdentityId,
    patch: &IdentityPatch,
    sealed: &SealedDocuments,
) -> Result<IdentityView, ApiError> {
    let row = q::find_live_for_update(tx.read(), app_id, id)?.ok_or_else(not_found)?;
    let key = custody::key_for_change(tx, keys, &row)?;
    let current = custody::open(&row, Some(&key))?;
    let input = patch
        .apply(&current, today())
        .map_err(ApiError::Validation)?;

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
    if input.data.identity_owner.as_ref() == Some(id) {
        return Err(ApiError::invalid(
            "identityOwner",
            "an identity cannot own itself",
        ));
    }
    if input.data.identity_owner != current.identity_owner {
        check_owner(tx.read(), app_id, input.data.identity_owner.as_ref())?;
    }
    if current.kind == IdentityKind::Person
        && input.data.kind == IdentityKind::Company
        && q::owns_live_companies(tx.read(), app_id, id)?
    {
        return Err(ApiError::refused(
            Refusal::IdentityOwnerInUse,
            "This person owns companies, so it cannot become a company.",
        ));
    }

    let now = db::now();
    let mut fields = changed_fields(&current, &input.data);
    if let Some(changes) = &input.metadata {
        let before: Metadata = q::metadata_of(tx.read(), app_id, &[id])?
            .into_iter()
            .map(|(_, key, value)| (key, value))
            .collect();
        let after = changes
            .applied_to(&before)
            .map_err(|why| ApiError::invalid("metadata", why))?;
        if after != before {
            q::change_metadata(tx.conn(), app_id, id, changes)?;
            fields.push("metadata");
        }
    }
    let columns = IdentityColumns::of(&input.data, id, &key);
    let row = row.with_data(&columns, now);
    q::update(
        tx.conn(),
        app_id,
        id,
        &IdentityChanges {
            data: columns,
            updated_at: now,
        },
    )
    .map_err(unique_conflict)?;
    if !fields.is_empty() {
        tx.record(Change::IdentityUpdated {
            app_id: app_id.clone(),
            identity_id: id.clone(),
            fields,
        });
    }

    // A document set that is sent replaces the current one: the old records
    // stay (deleted_at set) for the audit trail.
    let new_documents = NewDocuments {
        storage,
        keys,
        sealed,
        now,
    };
    if let Some(documents) = &input.documents {
        remove_documents(tx, app_id, id, false, now)?;
        new_documents.insert(tx, &row, documents)?;
    }
    if let Some(face_images) = input.face_image_documents() {
        remove_documents(tx, app_id, id, true, now)?;
        new_documents.insert(tx, &row, &face_images)?;
    }
    if input.documents.is_some() || input.face_images.is_some() {
        let live: Vec<DocumentType> = q::live_documents_of(tx.read(), app_id, &[id])?
            .iter()
            .map(|d| d.document_type)
            .collect();
        kyc::start_verifications(tx, &row, &live, false)?;
    }
    let view = views_of(tx.read(), storage, keys, vec![row])?.remove(0);
    tx.answered_identity(&view);
    Ok(view)
}

fn remove_documents(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    identity_id: &IdentityId,
    face_images: bool,
    at: NaiveDateTime,
) -> Result<(), ApiError> {
    for document_id in q::soft_delete_documents(tx.conn(), app_id, identity_id, face_images, at)? {
        tx.record(Change::DocumentRemoved {
            app_id: app_id.clone(),
            identity_id: identity_id.clone(),
            document_id,
        });
    }
    Ok(())
}

pub fn delete(tx: &mut Tx<'_, '_>, app_id: &AppId, id: &IdentityId) -> Result<(), ApiError> {
    q::find_live_for_update(tx.read(), app_id, id)?.ok_or_else(not_found)?;
    if q::owns_live_companies(tx.read(), app_id, id)? {
        return Err(ApiError::refused(
            Refusal::IdentityOwnerInUse,
            "This person owns live companies; delete or reassign them first.",
        ));
    }
    super::relations::refuse_if_related(tx.read(), app_id, id)?;
    // A company's own relations go with it.
    super::relations::remove_all_of(tx, app_id, id)?;
    q::soft_delete(tx.conn(), app_id, id, db::now())?;
    tx.record(Change::IdentityDeleted {
        app_id: app_id.clone(),
        identity_id: id.clone(),
    });
    Ok(())
}

pub fn get(
    conn: &mut DbConnection,
    storage: &Storage,
    keys: &KeyRing,
    app_id: &AppId,
    id: &IdentityId,
) -> Result<IdentityView, ApiError> {
    let row = q::find_live(conn, app_id, id)?.ok_or_else(not_found)?;
    let mut views = views_of(conn, storage, keys, vec![row])?;
    Ok(views.remove(0))
}

/// `GET /identities`.
pub struct IdentityListing;

impl Listing for IdentityListing {
    type Filter = IdentityFilter;
    type Row = IdentityRow;
    type View = IdentityView;
    type Plan = q::SubstringIndex;

    const NAME: &'static str = "identities";

    fn spec() -> &'static ListSpec<IdentityFilter> {
        &IDENTITY_LIST
    }

    fn plan(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &IdentityQuery,
    ) -> QueryResult<q::SubstringIndex> {
        q::SubstringIndex::of(conn, app_id, &query.filters, query.page.reach())
    }

    fn page(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &IdentityQuery,
        plan: &q::SubstringIndex,
    ) -> QueryResult<(Vec<IdentityRow>, i64)> {
        q::page_and_total(conn, app_id, query, plan)
    }

    fn count(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &IdentityQuery,
        plan: &q::SubstringIndex,
    ) -> QueryResult<i64> {
        q::count(conn, app_id, query, plan)
    }

    fn after(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &IdentityQuery,
        plan: &q::SubstringIndex,
        after: Option<&Cursor>,
        skip: i64,
        limit: i64,
    ) -> QueryResult<Vec<IdentityRow>> {
        q::list_after(conn, app_id, query, plan, after, skip, limit)
    }

    fn cursor(row: &IdentityRow, sort: &Sort) -> Cursor {
        Cursor::after(sort, row.created_at, row.updated_at, row.id.as_str())
    }

    type Parts = IdentityParts;

    fn parts(
        conn: &mut DbConnection,
        query: &IdentityQuery,
        rows: &[IdentityRow],
    ) -> Result<IdentityParts, ApiError> {
        // Unfiltered and in creation order, a chunk holds every live
        // identity of a stretch of time: neighbours.
        if query.filters.is_empty() && query.sort.field == SortField::CreatedAt {
            IdentityParts::of_neighbours(conn, rows)
        } else {
            IdentityParts::of(conn, rows)
        }
    }

    fn assemble(
        storage: &Storage,
        keys: &KeyRing,
        rows: Vec<IdentityRow>,
        parts: IdentityParts,
    ) -> Result<Vec<IdentityView>, ApiError> {
        parts.assemble(storage, keys, rows)
    }
}

/// Assembles identities with their documents and KYC status in a fixed
/// number of queries, whatever the number of identities; their sealed
/// fields are opened with their data keys.
pub fn views_of(
    conn: &mut DbConnection,
    storage: &Storage,
    keys: &KeyRing,
    rows: Vec<IdentityRow>,
) -> Result<Vec<IdentityView>, ApiError> {
    let parts = IdentityParts::of(conn, &rows)?;
    parts.assemble(storage, keys, rows)
}

/// The rows besides their own that some identities' views are made of,
/// read in one query per table. Reading them ([`IdentityParts::of`]) needs
/// the database; turning them into views ([`IdentityParts::assemble`]) does
/// not, so an `all=true` stream does that on another thread while the next
/// chunk is read.
pub struct IdentityParts {
    documents: Vec<crate::db::identities::DocumentRow>,
    statuses: Vec<crate::db::kyc::StatusRow>,
    metadata: Vec<(IdentityId, String, String)>,
    relations: Vec<crate::db::relations::RelationRow>,
}

/// Fewest identities for which [`IdentityParts::of_neighbours`] reads
/// ranges (a page of a few rows probes each).
const RANGE_MIN_ROWS: usize = 64;
/// Most child rows a range may hold per identity asked for before it is
/// given up for probes: bounds what a range costs when the identities were
/// not neighbours after all.
const RANGE_ROWS_PER_IDENTITY: usize = 16;

impl IdentityParts {
    /// The parts of identities that are neighbours in creation time (a
    /// chunk of an unfiltered list in `createdAt` order): identity ids are
    /// UUIDv7, so their documents and verifications lie in one range of
    /// the indexes that lead with (app, identity), read once instead of
    /// probed per identity (PostgreSQL at 1,000,000 identities: 2,077 and
    /// 1,521 buffers a chunk of 500 down to 103 and 42). Rows of the app's
    /// other identities in the range are left out when assembling. A range
    /// holding more than [`RANGE_ROWS_PER_IDENTITY`] rows per identity (ids
    /// that were not neighbours after all) is given up for the probes of
    /// [`IdentityParts::of`], and so are chunks with ids from before
    /// identity ids were UUIDv7.
    pub fn of_neighbours(conn: &mut DbConnection, rows: &[IdentityRow]) -> Result<Self, ApiError> {
        if rows.len() < RANGE_MIN_ROWS || !rows.iter().all(|r| r.id.is_time_ordered()) {
            return Self::of(conn, rows);
        }
        let (Some(first), Some(last)) = (
            rows.iter().map(|r| &r.id).min(),
            rows.iter().map(|r| &r.id).max(),
        ) else {
            return Self::of(conn, rows);
        };
        let app_id = &rows[0].app_id;
        let limit = rows.len() * RANGE_ROWS_PER_IDENTITY;
        let documents = q::live_documents_in_range(conn, app_id, first..=last, limit as i64 + 1)?;
        let statuses =
            crate::db::kyc::statuses_in_range(conn, app_id, first..=last, limit as i64 + 1)?;
        if documents.len() > limit || statuses.len() > limit {
            return Self::of(conn, rows);
        }
        let ids: Vec<&IdentityId> = rows.iter().map(|r| &r.id).collect();
        Ok(IdentityParts {
            documents,
            statuses,
            metadata: q::metadata_of(conn, app_id, &ids)?,
            relations: Self::relations_of(conn, rows)?,
        })
    }

    pub fn of(conn: &mut DbConnection, rows: &[IdentityRow]) -> Result<Self, ApiError> {
        let Some(app_id) = rows.first().map(|r| &r.app_id) else {
            return Ok(IdentityParts {
                documents: Vec::new(),
                statuses: Vec::new(),
                metadata: Vec::new(),
                relations: Vec::new(),
            });
        };
        let ids: Vec<&IdentityId> = rows.iter().map(|r| &r.id).collect();
        Ok(IdentityParts {
            documents: q::live_documents_of(conn, app_id, &ids)?,
            statuses: crate::db::kyc::statuses_of(conn, app_id, &ids)?,
            metadata: q::metadata_of(conn, app_id, &ids)?,
            relations: Self::relations_of(conn, rows)?,
        })
    }

    fn relations_of(
        conn: &mut DbConnection,
        rows: &[IdentityRow],
    ) -> Result<Vec<crate::db::relations::RelationRow>, ApiError> {
        let companies: Vec<&IdentityId> = rows
            .iter()
            .filter(|r| r.identity_type == IdentityKind::Company)
            .map(|r| &r.id)
            .collect();
        if companies.is_empty() {
            return Ok(Vec::new());
        }
        Ok(crate::db::relations::of_companies(
            conn,
            &rows[0].app_id,
            &companies,
        )?)
    }

    /// The views of `rows`, the identities these parts were read for.
    pub fn assemble(
        self,
        storage: &Storage,
        keys: &KeyRing,
        rows: Vec<IdentityRow>,
    ) -> Result<Vec<IdentityView>, ApiError> {
        let mut documents: HashMap<IdentityId, Vec<DocumentView>> = HashMap::new();
        for doc in self.documents {
            documents
                .entry(doc.identity_id.clone())
                .or_default()
                .push(DocumentView::new(doc, storage));
        }
        let mut kyc: HashMap<IdentityId, Vec<KycStatusView>> = kyc::latest_per_level(self.statuses);
        let mut metadata: HashMap<IdentityId, Metadata> = HashMap::new();
        for (identity_id, key, value) in self.metadata {
            metadata.entry(identity_id).or_default().insert(key, value);
        }
        let mut relations: HashMap<IdentityId, Vec<CompactRelationView>> = HashMap::new();
        for relation in self.relations {
            relations
                .entry(relation.company_id.clone())
                .or_default()
                .push(CompactRelationView::new(relation));
        }
        rows.into_iter()
            .map(|row| {
                let data = custody::open(&row, custody::key_in(keys, &row)?.as_ref())?;
                let docs = documents.remove(&row.id).unwrap_or_default();
                let status = kyc.remove(&row.id).unwrap_or_default();
                let pairs = metadata.remove(&row.id).unwrap_or_default();
                let mut view = IdentityView::new(row, data, docs, status, pairs);
                if view.relations.is_some() {
                    view.relations = Some(relations.remove(&view.id).unwrap_or_default());
                }
                Ok(view)
            })
            .collect()
    }
}

/// Responses list documents first, then face images, each in the order
/// sent; the two sets are replaced independently, so each has its own range
/// of positions.
const FACE_IMAGE_POSITIONS: i32 = 1000;

/// What inserting documents needs besides the transaction: where each
/// sent URL was sealed, the storage (to answer their URLs) and the time.
struct NewDocuments<'a> {
    storage: &'a Storage,
    keys: &'a KeyRing,
    sealed: &'a SealedDocuments,
    now: NaiveDateTime,
}

impl NewDocuments<'_> {
    fn insert(
        &self,
        tx: &mut Tx<'_, '_>,
        identity: &IdentityRow,
        inputs: &[DocumentInput],
    ) -> Result<Vec<DocumentView>, ApiError> {
        let ids: Vec<DocumentId> = inputs.iter().map(|_| DocumentId::new()).collect();
        let sealed = inputs
            .iter()
            .map(|doc| self.sealed.sealed(&doc.url))
            .collect::<Result<Vec<_>, _>>()?;
        let object_secrets = ids
            .iter()
            .zip(&sealed)
            .map(|(id, sealed)| {
                custody::document_object_secret(
                    tx,
                    self.keys,
                    &identity.app_id,
                    &identity.id,
                    id,
                    &sealed.location,
                    sealed.secret.as_ref(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows: Vec<NewDocument<'_>> = inputs
            .iter()
            .zip(&ids)
            .zip(sealed)
            .zip(object_secrets)
            .enumerate()
            .map(|(i, (((doc, id), sealed), object_secret))| NewDocument {
                id,
                app_id: &identity.app_id,
                identity_id: &identity.id,
                document_type: doc.document_type,
                side: doc.side,
                label: doc.label.as_deref(),
                description: doc.description.as_deref(),
                url: &sealed.location,
                upload_key: sealed.upload.as_ref().map(|k| k.as_str()),
                object_secret,
                position: i as i32
                    + match doc.document_type {
                        DocumentType::FaceImage => FACE_IMAGE_POSITIONS,
                        _ => 0,
                    },
                created_at: self.now,
                updated_at: self.now,
            })
            .collect();
        q::insert_documents(tx.conn(), &rows)?;
        let views: Vec<DocumentView> = rows
            .iter()
            .map(|row| DocumentView::created(row, self.storage))
            .collect();
        for view in &views {
            tx.record(Change::DocumentCreated {
                app_id: identity.app_id.clone(),
                identity_id: identity.id.clone(),
                document_id: view.id.clone(),
            });
            tx.answered_document(view);
        }
        Ok(views)
    }
}

/// The live document types of an identity, for KYC rules.
pub fn document_types(documents: &[DocumentView]) -> Vec<DocumentType> {
    documents.iter().map(|d| d.document_type).collect()
}
