//! Identities' data keys: made with the identity, stored wrapped by the
//! server's key ring, opened to read or write the identity's sealed
//! fields, documents and events, destroyed by erasure.

use std::collections::HashMap;
use std::sync::Arc;

use crate::db::custody as q;
use crate::db::identities as identity_q;
use crate::db::identities::IdentityRow;
use crate::db::{self, DbConnection};
use crate::domain::crypto::{DataKey, KeyRing, OpenError};
use crate::domain::document::DocumentLocation;
use crate::domain::identity::IdentityData;
use crate::domain::ids::{AppId, DocumentId, IdentityId};
use crate::domain::pii::key_context;
use crate::domain::sealed_object::ObjectSecret;
use crate::error::{ApiError, Refusal};
use crate::services::write::{Actor, Change, Operation, Tx, WritePath};
use crate::storage::{ObjectKey, Storage};
use crate::views::{ErasedIdentityView, IdentityAnswer};

/// A value that does not open: a 500 whose cause (never the value) is
/// logged.
fn unreadable(what: String, e: OpenError) -> ApiError {
    ApiError::internal(anyhow::anyhow!("{what} does not open: {e}"))
}

/// A data key made for a new identity: its wrapped form goes into the
/// identity's row.
pub struct NewKey {
    key: Arc<DataKey>,
    wrapped: String,
}

impl NewKey {
    /// Makes a data key for the identity `id`.
    pub fn make(keys: &KeyRing, id: &IdentityId) -> NewKey {
        let (key, wrapped) = keys.new_data_key(&key_context(id));
        NewKey {
            key: Arc::new(key),
            wrapped,
        }
    }

    pub fn key(&self) -> &DataKey {
        &self.key
    }

    /// What the identity's row stores.
    pub fn wrapped(&self) -> &str {
        &self.wrapped
    }

    /// Notes the key for the rest of the transaction (events, documents).
    pub fn note(&self, tx: &mut Tx<'_, '_>, id: &IdentityId) {
        tx.note_data_key(id, self.key.clone());
    }

    /// Stores the key in the row of an identity written before encryption
    /// at rest; `None` when the row has a key by now (another change gave
    /// it one first).
    pub fn store_for_existing(
        self,
        tx: &mut Tx<'_, '_>,
        app_id: &AppId,
        id: &IdentityId,
    ) -> Result<Option<Arc<DataKey>>, ApiError> {
        if q::set_wrapped_key(tx.conn(), app_id, id, &self.wrapped)? == 0 {
            return Ok(None);
        }
        self.note(tx, id);
        Ok(Some(self.key))
    }
}

/// The data key a row carries, opened; `None` for a row written before
/// encryption at rest (or erased).
pub fn key_in(keys: &KeyRing, row: &IdentityRow) -> Result<Option<DataKey>, ApiError> {
    row.wrapped_key
        .as_deref()
        .map(|wrapped| {
            keys.open_data_key(wrapped, &key_context(&row.id))
                .map_err(|e| unreadable(format!("the data key of identity {}", row.id), e))
        })
        .transpose()
}

/// The identity's data key, or `None` for an identity written before
/// encryption at rest (or erased).
pub fn key_of(
    conn: &mut DbConnection,
    keys: &KeyRing,
    app_id: &AppId,
    id: &IdentityId,
) -> Result<Option<Arc<DataKey>>, ApiError> {
    Ok(keys_of(conn, keys, app_id, &[id])?.remove(id))
}

/// The data keys of some of an app's identities, in one query.
pub fn keys_of(
    conn: &mut DbConnection,
    keys: &KeyRing,
    app_id: &AppId,
    ids: &[&IdentityId],
) -> Result<HashMap<IdentityId, Arc<DataKey>>, ApiError> {
    q::wrapped_keys_of(conn, app_id, ids)?
        .into_iter()
        .map(|(id, wrapped)| {
            let key = keys
                .open_data_key(&wrapped, &key_context(&id))
                .map_err(|e| unreadable(format!("the data key of identity {id}"), e))?;
            Ok((id, Arc::new(key)))
        })
        .collect()
}

/// The data key for a change to `row` (read, and locked, in this
/// transaction): noted already, opened from the row, or (for an identity
/// written before encryption at rest) made now, so the change seals its
/// fields.
pub fn key_for_change(
    tx: &mut Tx<'_, '_>,
    keys: &KeyRing,
    row: &IdentityRow,
) -> Result<Arc<DataKey>, ApiError> {
    if let Some(key) = tx.data_key(&row.id) {
        return Ok(key);
    }
    if let Some(key) = key_in(keys, row)? {
        let key = Arc::new(key);
        tx.note_data_key(&row.id, key.clone());
        return Ok(key);
    }
    NewKey::make(keys, &row.id)
        .store_for_existing(tx, &row.app_id, &row.id)?
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "identity {} was given a data key while locked",
                row.id
            ))
        })
}

fn object_secret_context(document: &DocumentId) -> Vec<u8> {
    format!("documents/{document}/object").into_bytes()
}

/// A local sealed copy's own key as its document's row keeps it: sealed
/// under the identity's data key.
pub fn seal_object_secret(key: &DataKey, document: &DocumentId, secret: &ObjectSecret) -> String {
    secret.seal_with(key, &object_secret_context(document))
}

/// Opens what [`seal_object_secret`] sealed.
pub fn open_object_secret(
    key: &DataKey,
    document: &DocumentId,
    sealed: &str,
) -> Result<ObjectSecret, ApiError> {
    ObjectSecret::open_with(key, sealed, &object_secret_context(document))
        .map_err(|e| unreadable(format!("the object key of document {document}"), e))
}

/// The object key a new document of `identity` stores for `sealed`,
/// sealed under the identity's data key (noted in this transaction): a
/// fresh sealed copy's key, or, for a sealed copy sent back (another
/// document names it already), that document's key opened with its
/// identity's data key. `None` for what has no key (S3, external URLs,
/// files from before encryption at rest).
pub fn document_object_secret(
    tx: &mut Tx<'_, '_>,
    keys: &KeyRing,
    app_id: &AppId,
    identity: &IdentityId,
    document: &DocumentId,
    location: &DocumentLocation,
    fresh: Option<&ObjectSecret>,
) -> Result<Option<String>, ApiError> {
    let secret = match fresh {
        Some(secret) => secret.clone(),
        None => {
            let DocumentLocation::Stored(_) = location else {
                return Ok(None);
            };
            let Some((owner, owner_document, sealed)) =
                q::object_secret_of(tx.read(), app_id, location)?
            else {
                return Ok(None);
            };
            let owner_key = match tx.data_key(&owner) {
                Some(key) => key,
                None => key_of(tx.read(), keys, app_id, &owner)?.ok_or_else(|| {
                    ApiError::internal(anyhow::anyhow!(
                        "document {owner_document} has a sealed key but identity {owner} has no data key"
                    ))
                })?,
            };
            open_object_secret(&owner_key, &owner_document, &sealed)?
        }
    };
    let key = tx.data_key(identity).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "identity {identity} has no data key noted for its documents"
        ))
    })?;
    Ok(Some(seal_object_secret(&key, document, &secret)))
}

/// The identity's data with its sealed fields opened.
pub fn open(row: &IdentityRow, key: Option<&DataKey>) -> Result<IdentityData, ApiError> {
    row.data(key)
        .map_err(|e| unreadable(format!("a personal data field of identity {}", row.id), e))
}

/// What an erased identity's name becomes.
pub const TOMBSTONE_NAME: &str = "[erased]";
/// What an erased identity's email becomes (a reserved domain).
pub const TOMBSTONE_EMAIL: &str = "erased@erased.invalid";

fn not_found() -> ApiError {
    ApiError::refused(Refusal::IdentityNotFound, "No identity with this id.")
}

/// Erases an identity (live or deleted): destroys its data key, so its
/// sealed fields, event bodies and documents are unreadable everywhere
/// (backups included); replaces its name and email by a tombstone;
/// deletes it if it was live. Its ids, type, verifications and history
/// stay. Erasing an erased identity changes nothing. Answers the storage
/// objects of its documents, which the caller deletes once this commits
/// (again on a retry, so a failed deletion is finished by erasing again).
pub fn erase(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    id: &IdentityId,
) -> Result<Vec<ObjectKey>, ApiError> {
    let row = q::find_any_for_update(tx.read(), app_id, id)?.ok_or_else(not_found)?;
    let objects = erasable_objects(tx.read(), app_id, id)?;
    if row.erased_at.is_some() {
        return Ok(objects);
    }
    let now = db::now();
    if row.deleted_at.is_none() {
        if identity_q::owns_live_companies(tx.read(), app_id, id)? {
            return Err(ApiError::refused(
                Refusal::IdentityOwnerInUse,
                "This person owns live companies; delete, erase or reassign them first.",
            ));
        }
        identity_q::soft_delete(tx.conn(), app_id, id, now)?;
        tx.record(Change::IdentityDeleted {
            app_id: app_id.clone(),
            identity_id: id.clone(),
        });
    }
    // Erasure is owed even to a related party: the relations go.
    super::relations::remove_all_of(tx, app_id, id)?;
    q::erase(tx.conn(), app_id, id, TOMBSTONE_NAME, TOMBSTONE_EMAIL, now)?;
    tx.record(Change::IdentityErased {
        app_id: app_id.clone(),
        identity_id: id.clone(),
    });
    Ok(objects)
}

/// The storage objects erasing an identity deletes: every sealed copy its
/// documents (live or replaced) were stored under, unless a document of
/// another identity that is not erased names it too, and every upload
/// they were copied from.
fn erasable_objects(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &IdentityId,
) -> Result<Vec<ObjectKey>, ApiError> {
    let stored = q::stored_objects_of(conn, app_id, id)?;
    let sealed: Vec<DocumentLocation> = stored
        .iter()
        .filter(|(location, _)| matches!(location, DocumentLocation::Stored(_)))
        .map(|(location, _)| location.clone())
        .collect();
    let shared = q::shared_with_others(conn, app_id, id, &sealed)?;
    Ok(stored
        .into_iter()
        .flat_map(|(location, upload)| {
            let sealed = match location {
                DocumentLocation::Stored(key)
                    if !shared.contains(&DocumentLocation::Stored(key.clone())) =>
                {
                    Some(key)
                }
                _ => None,
            };
            let upload = upload.and_then(|key| match ObjectKey::parse(&key) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::warn!(identity_id = %id, error = %e, "a document's upload key does not parse; not deleted");
                    None
                }
            });
            sealed.into_iter().chain(upload)
        })
        .collect())
}

/// Deletes an erased identity's document objects from storage; the first
/// failure stops and answers (erasing again finishes the work).
pub async fn delete_objects(storage: &Storage, objects: &[ObjectKey]) -> Result<(), ApiError> {
    for key in objects {
        storage.delete(key).await.map_err(ApiError::from)?;
    }
    Ok(())
}

/// `GET /identities/:id?includeErased=true` for an identity that is not
/// live: its erased skeleton, or 404.
pub fn get_erased(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &IdentityId,
) -> Result<IdentityAnswer, ApiError> {
    q::find_erased(conn, app_id, id)?
        .and_then(ErasedIdentityView::of)
        .map(IdentityAnswer::Erased)
        .ok_or_else(not_found)
}

/// Retention: erases the identities deleted before `now - retention`, each
/// in its own write (so replicas running this at once only repeat an
/// erasure, which changes nothing the second time); answers how many.
pub async fn erase_expired(
    write: &WritePath,
    storage: &Storage,
    retention: chrono::Duration,
) -> Result<usize, ApiError> {
    const BATCH: i64 = 100;
    let before = db::now() - retention;
    let mut erased = 0;
    loop {
        let batch = write
            .db()
            .run(move |conn| Ok::<_, ApiError>(q::deleted_before(conn, before, BATCH)?))
            .await?;
        let full = batch.len() as i64 == BATCH;
        for (app_id, id) in batch {
            // Its objects go first: a deleted identity shows nothing of
            // them, and a failure here leaves it due for the next run
            // (after the erasure nothing would point at what was left).
            let objects = {
                let (app_id, id) = (app_id.clone(), id.clone());
                write
                    .db()
                    .run(move |conn| erasable_objects(conn, &app_id, &id))
                    .await?
            };
            delete_objects(storage, &objects).await?;
            write
                .run(Actor::Server, Operation::IdentityErase, move |tx| {
                    erase(tx, &app_id, &id)
                })
                .await?;
            erased += 1;
        }
        if !full {
            return Ok(erased);
        }
    }
}
