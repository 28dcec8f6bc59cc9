//! Identities' wrapped data keys (`identities.wrapped_key`), rotation's
//! reads and writes, and erasure. A data key is stored only sealed by a
//! server key; setting it to NULL is what makes an erased identity's sealed
//! data unreadable.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::identities::{IdentityRow, StoredPii};
use super::schema::{
    documents, idempotency_keys, identities, identity_events, identity_metadata, server_secrets,
    verifications, webhook_endpoints,
};
use super::{DbConnection, WriteConn};
use crate::domain::document::DocumentLocation;
use crate::domain::ids::{AppId, DocumentId, IdentityId, WebhookEndpointId};

/// The wrapped keys of some of an app's identities (those that have one).
pub fn wrapped_keys_of(
    conn: &mut DbConnection,
    app_id: &AppId,
    ids: &[&IdentityId],
) -> QueryResult<Vec<(IdentityId, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    identities::table
        .filter(super::app_is_not_the_way_in!(identities::app_id, app_id))
        .filter(identities::id.eq_any(ids))
        .filter(identities::wrapped_key.is_not_null())
        .select((identities::id, identities::wrapped_key.assume_not_null()))
        .load(conn)
}

/// Gives an identity written before encryption at rest its wrapped key,
/// unless it has one already (answers 0 then).
pub fn set_wrapped_key(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &IdentityId,
    wrapped: &str,
) -> QueryResult<usize> {
    diesel::update(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::id.eq(id))
            .filter(identities::wrapped_key.is_null()),
    )
    .set(identities::wrapped_key.eq(wrapped))
    .execute(&mut **conn)
}

/// One data key as rotation sees it.
#[derive(Debug, Queryable)]
pub struct WrappedKey {
    pub identity_id: IdentityId,
    pub app_id: AppId,
    pub wrapped_key: String,
}

/// Up to `limit` wrapped keys not sealed under `sealing_prefix` (the
/// first server key's `sealed:v1:<kid>:`), in identity id order after
/// `after`: rotation's batches, resumable from any point.
pub fn keys_to_rewrap(
    conn: &mut DbConnection,
    sealing_prefix: &str,
    after: Option<&IdentityId>,
    limit: i64,
) -> QueryResult<Vec<WrappedKey>> {
    let mut query = identities::table
        .filter(identities::wrapped_key.is_not_null())
        .filter(
            identities::wrapped_key
                .assume_not_null()
                .not_like(format!("{sealing_prefix}%")),
        )
        .order(identities::id)
        .limit(limit)
        .select((
            identities::id,
            identities::app_id,
            identities::wrapped_key.assume_not_null(),
        ))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(identities::id.gt(after));
    }
    query.load(conn)
}

/// Replaces a wrapped key by the same key wrapped again, unless it changed
/// since it was read (erased meanwhile, or rewrapped by another run).
pub fn rewrap_key(
    conn: &mut WriteConn<'_>,
    key: &WrappedKey,
    rewrapped: &str,
) -> QueryResult<usize> {
    diesel::update(
        identities::table
            .filter(identities::id.eq(&key.identity_id))
            .filter(identities::wrapped_key.eq(&key.wrapped_key)),
    )
    .set(identities::wrapped_key.eq(rewrapped))
    .execute(&mut **conn)
}

/// Up to `limit` identities (of any app, any state but erased) with no
/// data key, in id order after `after`: the rows written before encryption
/// at rest, which rotation seals.
pub fn identities_without_key(
    conn: &mut DbConnection,
    after: Option<&IdentityId>,
    limit: i64,
) -> QueryResult<Vec<(IdentityId, AppId)>> {
    let mut query = identities::table
        .filter(identities::wrapped_key.is_null())
        .filter(identities::erased_at.is_null())
        .order(identities::id)
        .limit(limit)
        .select((identities::id, identities::app_id))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(identities::id.gt(after));
    }
    query.load(conn)
}

/// What erasure leaves of an identity: the skeleton (ids, type, status
/// flags, times), the name and email replaced by a tombstone, the personal
/// fields emptied (their sealed forms are unreadable already once the key
/// is gone; this also covers rows never sealed), the data key destroyed,
/// the metadata deleted. The caller soft-deletes a live identity first.
pub fn erase(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &IdentityId,
    tombstone_name: &str,
    tombstone_email: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let identity = identities::table
        .filter(identities::app_id.eq(app_id))
        .filter(identities::id.eq(id));
    diesel::update(identity)
        .set((
            identities::name.eq(tombstone_name),
            identities::email.eq(tombstone_email),
            identities::email_normalized.eq(tombstone_email),
            identities::email_domain.eq(""),
            identities::email_local_reversed.eq(""),
            identities::birthday.eq(None::<String>),
            identities::address_street.eq(""),
            identities::address_state.eq(None::<String>),
            identities::address_postal_code.eq(""),
            identities::phone_number.eq(""),
            identities::tax_id_number.eq(""),
            identities::tax_state.eq(None::<String>),
            identities::tax_formation_region.eq(None::<String>),
            identities::wrapped_key.eq(None::<String>),
            identities::erased_at.eq(at),
            identities::updated_at.eq(at),
        ))
        .execute(&mut **conn)?;
    diesel::delete(
        identity_metadata::table
            .filter(identity_metadata::app_id.eq(app_id))
            .filter(identity_metadata::identity_id.eq(id)),
    )
    .execute(&mut **conn)?;
    // Reviewers' free text may describe the person: it goes too. What a
    // decision was (status, rejection type and labels) stays.
    diesel::update(
        verifications::table
            .filter(verifications::app_id.eq(app_id))
            .filter(verifications::identity_id.eq(id)),
    )
    .set((
        verifications::reason.eq(None::<String>),
        verifications::client_comment.eq(None::<String>),
    ))
    .execute(&mut **conn)?;
    diesel::update(
        identity_events::table
            .filter(identity_events::app_id.eq(app_id))
            .filter(identity_events::identity_id.eq(id)),
    )
    .set((
        identity_events::reason.eq(None::<String>),
        identity_events::client_comment.eq(None::<String>),
        identity_events::internal_comment.eq(None::<String>),
    ))
    .execute(&mut **conn)
    .map(|_| ())
}

/// An identity of the app whatever its state (live, deleted or erased),
/// locked until the transaction ends.
pub fn find_any_for_update(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &IdentityId,
) -> QueryResult<Option<IdentityRow>> {
    macro_rules! query {
        () => {
            identities::table
                .filter(identities::app_id.eq(app_id))
                .filter(identities::id.eq(id))
                .select(IdentityRow::as_select())
        };
    }
    match conn {
        DbConnection::Postgresql(pg) => query!().for_update().first(pg).optional(),
        DbConnection::Sqlite(sqlite) => query!().first(sqlite).optional(),
    }
}

/// An erased identity of the app (`includeErased=true`).
pub fn find_erased(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &IdentityId,
) -> QueryResult<Option<IdentityRow>> {
    identities::table
        .filter(identities::app_id.eq(app_id))
        .filter(identities::id.eq(id))
        .filter(identities::erased_at.is_not_null())
        .select(IdentityRow::as_select())
        .first(conn)
        .optional()
}

/// Every object an identity's documents were ever stored under, deleted
/// documents included: each sealed copy and the upload it came from.
pub fn stored_objects_of(
    conn: &mut DbConnection,
    app_id: &AppId,
    identity_id: &IdentityId,
) -> QueryResult<Vec<(DocumentLocation, Option<String>)>> {
    documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.eq(identity_id))
        .select((documents::url, documents::upload_key))
        .load(conn)
}

/// Identities of any app deleted before `before` and not erased yet, up
/// to `limit`, oldest deletion first: retention's work.
pub fn deleted_before(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(AppId, IdentityId)>> {
    identities::table
        .filter(identities::deleted_at.lt(before))
        .filter(identities::erased_at.is_null())
        .order(identities::deleted_at)
        .limit(limit)
        .select((identities::app_id, identities::id))
        .load(conn)
}

/// Writes an identity's personal data columns (sealing the clear values
/// of a row written before encryption at rest).
pub fn set_pii(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &IdentityId,
    pii: &StoredPii,
) -> QueryResult<usize> {
    diesel::update(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::id.eq(id)),
    )
    .set(pii)
    .execute(&mut **conn)
}

/// Where a value sealed by the server's key ring is stored.
#[derive(Debug, Clone)]
pub enum SealedPlace {
    ServerSecret(String),
    WebhookSecret(WebhookEndpointId),
    WebhookPreviousSecret(WebhookEndpointId),
    IdempotencyAnswer(AppId, String),
}

/// Every server secret: name and stored value.
pub fn server_secrets(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    server_secrets::table
        .select((server_secrets::name, server_secrets::value))
        .order(server_secrets::name)
        .load(conn)
}

/// Every webhook endpoint's stored secrets, deleted endpoints included.
pub fn webhook_secrets(
    conn: &mut DbConnection,
) -> QueryResult<Vec<(WebhookEndpointId, String, Option<String>)>> {
    webhook_endpoints::table
        .select((
            webhook_endpoints::id,
            webhook_endpoints::secret,
            webhook_endpoints::previous_secret,
        ))
        .order(webhook_endpoints::id)
        .load(conn)
}

/// Stored Idempotency-Key answers, in (app, key) order after `after`.
pub fn idempotency_answers(
    conn: &mut DbConnection,
    after: Option<&(AppId, String)>,
    limit: i64,
) -> QueryResult<Vec<(AppId, String, Vec<u8>)>> {
    let mut query = idempotency_keys::table
        .filter(idempotency_keys::response_body.is_not_null())
        .order((idempotency_keys::app_id, idempotency_keys::idempotency_key))
        .limit(limit)
        .select((
            idempotency_keys::app_id,
            idempotency_keys::idempotency_key,
            idempotency_keys::response_body.assume_not_null(),
        ))
        .into_boxed();
    if let Some((app_id, key)) = after {
        query = query.filter(
            idempotency_keys::app_id
                .gt(app_id)
                .or(idempotency_keys::app_id
                    .eq(app_id)
                    .and(idempotency_keys::idempotency_key.gt(key))),
        );
    }
    query.load(conn)
}

/// Replaces a sealed value by `new`, unless it is no longer `old` (changed
/// meanwhile: the change that changed it sealed with the current key).
pub fn replace_sealed(
    conn: &mut WriteConn<'_>,
    place: &SealedPlace,
    old: &str,
    new: &str,
) -> QueryResult<usize> {
    let conn = &mut **conn;
    match place {
        SealedPlace::ServerSecret(name) => diesel::update(
            server_secrets::table
                .filter(server_secrets::name.eq(name))
                .filter(server_secrets::value.eq(old)),
        )
        .set(server_secrets::value.eq(new))
        .execute(conn),
        SealedPlace::WebhookSecret(id) => diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(id))
                .filter(webhook_endpoints::secret.eq(old)),
        )
        .set(webhook_endpoints::secret.eq(new))
        .execute(conn),
        SealedPlace::WebhookPreviousSecret(id) => diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq(id))
                .filter(webhook_endpoints::previous_secret.eq(old)),
        )
        .set(webhook_endpoints::previous_secret.eq(new))
        .execute(conn),
        SealedPlace::IdempotencyAnswer(app_id, key) => diesel::update(
            idempotency_keys::table
                .filter(idempotency_keys::app_id.eq(app_id))
                .filter(idempotency_keys::idempotency_key.eq(key))
                .filter(idempotency_keys::response_body.eq(old.as_bytes())),
        )
        .set(idempotency_keys::response_body.eq(new.as_bytes()))
        .execute(conn),
    }
}

/// Which of `locations` documents of other identities of the app, not
/// erased, also name (a sealed copy sent back as another identity's
/// document): those objects are theirs too and stay when this identity is
/// erased.
pub fn shared_with_others(
    conn: &mut DbConnection,
    app_id: &AppId,
    identity_id: &IdentityId,
    locations: &[DocumentLocation],
) -> QueryResult<Vec<DocumentLocation>> {
    if locations.is_empty() {
        return Ok(Vec::new());
    }
    documents::table
        .inner_join(identities::table)
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.ne(identity_id))
        .filter(identities::erased_at.is_null())
        .filter(documents::url.eq_any(locations))
        .select(documents::url)
        .distinct()
        .load(conn)
}

/// A document of the app stored under `location` with a sealed object key
/// (the first found): whose it is, and the key as sealed.
pub fn object_secret_of(
    conn: &mut DbConnection,
    app_id: &AppId,
    location: &DocumentLocation,
) -> QueryResult<Option<(IdentityId, DocumentId, String)>> {
    documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::url.eq(location))
        .filter(documents::object_secret.is_not_null())
        .select((
            documents::identity_id,
            documents::id,
            documents::object_secret.assume_not_null(),
        ))
        .first(conn)
        .optional()
}
