//! Idempotency-Key records (`idempotency_keys`): a claim while the first
//! request runs, then its stored answer.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::idempotency_keys as keys;
use super::{DbConnection, WriteConn};
use crate::domain::ids::AppId;

/// What a request claims its key with: what a retry must match.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = keys)]
pub struct NewClaim {
    pub app_id: AppId,
    pub idempotency_key: String,
    pub method: String,
    pub path: String,
    pub body_hash: String,
    pub locked_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// A key's record: a claim (no status yet) or a stored answer.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = keys)]
pub struct RecordRow {
    pub method: String,
    pub path: String,
    pub body_hash: String,
    pub locked_until: Option<NaiveDateTime>,
    pub response_status: Option<i32>,
    pub response_body: Option<Vec<u8>>,
}

/// Claims a key that has no record yet; `false` when one exists (another
/// request's claim or answer). On PostgreSQL a concurrent claim of the same
/// key waits for this one's transaction, then finds its row.
pub fn insert_claim(conn: &mut WriteConn<'_>, claim: &NewClaim) -> QueryResult<bool> {
    let inserted = match &mut **conn {
        DbConnection::Postgresql(c) => diesel::insert_into(keys::table)
            .values(claim)
            .on_conflict_do_nothing()
            .execute(c)?,
        DbConnection::Sqlite(c) => diesel::insert_into(keys::table)
            .values(claim)
            .on_conflict_do_nothing()
            .execute(c)?,
    };
    Ok(inserted == 1)
}

pub fn find(conn: &mut DbConnection, app_id: &AppId, key: &str) -> QueryResult<Option<RecordRow>> {
    keys::table
        .filter(keys::app_id.eq(app_id))
        .filter(keys::idempotency_key.eq(key))
        .select(RecordRow::as_select())
        .first(conn)
        .optional()
}

/// Takes over a claim whose request died before answering (its lock ran
/// out, and no answer was stored); `false` when it is not such a claim.
pub fn take_over(
    conn: &mut WriteConn<'_>,
    claim: &NewClaim,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(
        keys::table
            .filter(keys::app_id.eq(&claim.app_id))
            .filter(keys::idempotency_key.eq(&claim.idempotency_key))
            .filter(keys::response_status.is_null())
            .filter(keys::locked_until.lt(now)),
    )
    .set(claim)
    .execute(&mut **conn)?;
    Ok(updated == 1)
}

/// Stores the answer of a claimed key (in the transaction of its write).
pub fn store_answer(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    key: &str,
    status: i32,
    body: &[u8],
) -> QueryResult<()> {
    let updated = diesel::update(
        keys::table
            .filter(keys::app_id.eq(app_id))
            .filter(keys::idempotency_key.eq(key))
            .filter(keys::response_status.is_null()),
    )
    .set((
        keys::response_status.eq(Some(status)),
        keys::response_body.eq(Some(body)),
        keys::locked_until.eq(None::<NaiveDateTime>),
    ))
    .execute(&mut **conn)?;
    if updated == 1 {
        Ok(())
    } else {
        // The claim was taken over or pruned meanwhile: committing this
        // write would leave a second answer for one key.
        Err(diesel::result::Error::NotFound)
    }
}

/// Gives up a claim whose request stored nothing (it failed), so the key
/// can be used again.
pub fn release(conn: &mut WriteConn<'_>, app_id: &AppId, key: &str) -> QueryResult<()> {
    diesel::delete(
        keys::table
            .filter(keys::app_id.eq(app_id))
            .filter(keys::idempotency_key.eq(key))
            .filter(keys::response_status.is_null()),
    )
    .execute(&mut **conn)?;
    Ok(())
}

/// Deletes records created before `before`; safe on every replica at once.
pub fn prune(conn: &mut WriteConn<'_>, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(keys::table.filter(keys::created_at.lt(before))).execute(&mut **conn)
}
