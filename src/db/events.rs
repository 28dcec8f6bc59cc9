//! The outbox of events (`events`) and the last operations seen per
//! identity (`identity_operations`).
//!
//! Readers page by `(position, id)`. How a position is given, and which
//! events a reader may see, differ per backend so that a reader never
//! misses an event that commits after a later one (see the migration
//! `000010_events`): PostgreSQL takes the writing transaction's id and
//! shows only events below the oldest running transaction; SQLite, whose
//! writers run one at a time, numbers each write transaction's events one
//! above the highest committed position.

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::schema::{events, identity_operations};
use super::{DbConnection, WriteConn};
use crate::domain::events::EventType;
use crate::domain::ids::{AppId, EventId, IdentityId};

#[derive(Debug, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent {
    pub id: EventId,
    pub app_id: AppId,
    pub event_type: EventType,
    pub identity_id: Option<IdentityId>,
    /// The whole wire body (`{"id", "type", "timestamp", "data"}`), as
    /// delivered and listed.
    pub payload: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: EventId,
    pub app_id: AppId,
    pub event_type: EventType,
    pub identity_id: Option<IdentityId>,
    /// The wire body, sealed under the identity's data key when it has one
    /// (`services::events::open_payloads`).
    pub payload: String,
    pub position: i64,
    pub created_at: NaiveDateTime,
}

/// The events still kept among `ids`.
pub fn by_ids(conn: &mut DbConnection, ids: &[EventId]) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::id.eq_any(ids))
        .select(EventRow::as_select())
        .load(conn)
}

/// Writes a transaction's events.
pub fn insert_events(conn: &mut WriteConn<'_>, rows: &[NewEvent]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match &mut **conn {
        // `position` defaults to the transaction's id.
        DbConnection::Postgresql(c) => {
            diesel::insert_into(events::table).values(rows).execute(c)?;
        }
        DbConnection::Sqlite(c) => {
            let highest: Option<i64> = events::table
                .select(diesel::dsl::max(events::position))
                .first(c)?;
            let position = highest.unwrap_or(0) + 1;
            let rows: Vec<_> = rows
                .iter()
                .map(|row| (row, events::position.eq(position)))
                .collect();
            diesel::insert_into(events::table).values(rows).execute(c)?;
        }
    }
    Ok(())
}

/// PostgreSQL: only events whose writing transaction is older than every
/// transaction that could still add one. Those are the transactions of this
/// statement's snapshot still in progress (`pg_snapshot_xip`) that belong
/// to this database (their backend is here in `pg_stat_activity`), or that
/// finished after the snapshot was taken (`pg_xact_status`: their rows are
/// invisible to this statement though they committed). Transactions of other
/// databases of the cluster cannot write these events and do not hold them
/// back. Nothing in progress: everything below the snapshot's `xmax`.
/// (Prepared transactions have no backend; kyc-api does not use them.)
macro_rules! horizon {
    () => {
        "COALESCE(\
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x \
     WHERE pg_xact_status(x) <> 'in progress' \
        OR x::text::bigint % 4294967296 IN (SELECT backend_xid::text::bigint \
            FROM pg_stat_activity \
            WHERE datname = current_database() AND backend_xid IS NOT NULL)), \
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint)"
    };
}
pub(super) const VISIBILITY_HORIZON: &str = concat!("position < ", horizon!());

/// The first position a reader cannot see yet: on PostgreSQL the horizon
/// above, on SQLite one above the highest position (its writers run one at
/// a time, and the next one numbers its events there). Events at this
/// position and after are those still to come.
pub fn next_position(conn: &mut DbConnection) -> QueryResult<i64> {
    match conn {
        DbConnection::Postgresql(_) => {
            diesel::select(sql::<diesel::sql_types::BigInt>(horizon!())).get_result(conn)
        }
        DbConnection::Sqlite(_) => events::table
            .select(diesel::dsl::max(events::position))
            .first::<Option<i64>>(conn)
            .map(|highest| highest.unwrap_or(0) + 1),
    }
}

/// An event's place and type: what fanning it out to an endpoint needs.
#[derive(Debug, Queryable)]
pub struct EventMark {
    pub position: i64,
    pub id: EventId,
    pub event_type: EventType,
}

/// Up to `limit` of the app's events after `(position, id)`, in that
/// order, that a reader may see (the same horizon as [`page`]).
pub fn marks_after(
    conn: &mut DbConnection,
    app_id: &AppId,
    after: (i64, &str),
    limit: i64,
) -> QueryResult<Vec<EventMark>> {
    let (position, id) = after;
    let mut select = events::table
        .filter(events::app_id.eq(app_id))
        .filter(events::position.ge(position))
        .filter(
            events::position
                .gt(position)
                .or(events::id.gt(id.to_owned())),
        )
        .select((events::position, events::id, events::event_type))
        .order((events::position.asc(), events::id.asc()))
        .limit(limit)
        .into_boxed();
    if matches!(conn, DbConnection::Postgresql(_)) {
        select = select.filter(sql::<Bool>(VISIBILITY_HORIZON));
    }
    select.load(conn)
}

/// What `GET /events` asks for.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub types: Option<Vec<EventType>>,
    pub identity_id: Option<IdentityId>,
    /// Events after this `(position, id)`.
    pub after: Option<(i64, EventId)>,
    pub limit: i64,
}

/// The app's events matching `query`, in `(position, id)` order; on
/// PostgreSQL only those no running transaction can still precede.
pub fn page(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &EventQuery,
) -> QueryResult<Vec<EventRow>> {
    let mut select = events::table
        .filter(events::app_id.eq(app_id))
        .select(EventRow::as_select())
        .order((events::position.asc(), events::id.asc()))
        .limit(query.limit)
        .into_boxed();
    if let Some(types) = &query.types {
        select = select.filter(events::event_type.eq_any(types.clone()));
    }
    if let Some(identity_id) = &query.identity_id {
        select = select.filter(events::identity_id.eq(identity_id));
    }
    if let Some((position, id)) = &query.after {
        select = select.filter(
            events::position
                .gt(*position)
                .or(events::position.eq(*position).and(events::id.gt(id))),
        );
    }
    if matches!(conn, DbConnection::Postgresql(_)) {
        select = select.filter(sql::<Bool>(VISIBILITY_HORIZON));
    }
    select.load(conn)
}

/// The position of one of the app's events (a cursor), if it is still kept.
pub fn position_of(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &EventId,
) -> QueryResult<Option<i64>> {
    events::table
        .filter(events::app_id.eq(app_id))
        .filter(events::id.eq(id))
        .select(events::position)
        .first(conn)
        .optional()
}

/// Deletes events older than `before`; returns how many.
pub fn prune(conn: &mut WriteConn<'_>, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(events::table.filter(events::created_at.lt(before))).execute(&mut **conn)
}

/// The active operations last recorded for an identity.
pub fn operations_seen(
    conn: &mut DbConnection,
    identity_id: &IdentityId,
) -> QueryResult<Option<String>> {
    identity_operations::table
        .filter(identity_operations::identity_id.eq(identity_id))
        .select(identity_operations::active)
        .first(conn)
        .optional()
}

/// Records the first active operations of an identity created in this
/// transaction.
pub fn insert_operations_seen(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    identity_id: &IdentityId,
    active: &str,
) -> QueryResult<()> {
    diesel::insert_into(identity_operations::table)
        .values((
            identity_operations::identity_id.eq(identity_id),
            identity_operations::app_id.eq(app_id),
            identity_operations::active.eq(active),
        ))
        .execute(&mut **conn)?;
    Ok(())
}

/// Records the active operations of an identity after a change.
pub fn set_operations_seen(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    identity_id: &IdentityId,
    active: &str,
) -> QueryResult<()> {
    let updated = diesel::update(
        identity_operations::table.filter(identity_operations::identity_id.eq(identity_id)),
    )
    .set(identity_operations::active.eq(active))
    .execute(&mut **conn)?;
    if updated == 0 {
        insert_operations_seen(conn, app_id, identity_id, active)?;
    }
    Ok(())
}
