//! Webhook endpoints, deliveries and attempts.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};

use super::schema::{events, webhook_attempts, webhook_deliveries, webhook_endpoints};
use super::{DbConnection, WriteConn};
use crate::domain::ids::{AppId, AttemptId, DeliveryId, EventId, WebhookEndpointId};
use crate::domain::webhooks::DeliveryStatus;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointRow {
    pub id: WebhookEndpointId,
    pub app_id: AppId,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Option<String>,
    pub enabled: bool,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}

/// What a patch may change.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = webhook_endpoints, treat_none_as_null = true)]
pub struct EndpointChanges {
    pub url: String,
    pub description: Option<String>,
    pub event_types: Option<String>,
    pub enabled: bool,
    pub updated_at: NaiveDateTime,
}

/// A new signing secret; the old one keeps signing until it expires.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = webhook_endpoints, treat_none_as_null = true)]
pub struct SecretRotation {
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

pub fn insert_endpoint(conn: &mut WriteConn<'_>, row: &EndpointRow) -> QueryResult<()> {
    diesel::insert_into(webhook_endpoints::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

/// A live endpoint of the app.
pub fn find_endpoint(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &WebhookEndpointId,
) -> QueryResult<Option<EndpointRow>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::app_id.eq(app_id))
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::deleted_at.is_null())
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()
}

/// The app's live endpoints, oldest first.
pub fn endpoints_of(conn: &mut DbConnection, app_id: &AppId) -> QueryResult<Vec<EndpointRow>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::app_id.eq(app_id))
        .filter(webhook_endpoints::deleted_at.is_null())
        .order((
            webhook_endpoints::created_at.asc(),
            webhook_endpoints::id.asc(),
        ))
        .select(EndpointRow::as_select())
        .load(conn)
}

pub fn update_endpoint(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &WebhookEndpointId,
    changes: &EndpointChanges,
) -> QueryResult<()> {
    diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::app_id.eq(app_id))
            .filter(webhook_endpoints::id.eq(id)),
    )
    .set(changes)
    .execute(&mut **conn)
    .map(|_| ())
}

pub fn rotate_secret(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &WebhookEndpointId,
    rotation: &SecretRotation,
) -> QueryResult<()> {
    diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::app_id.eq(app_id))
            .filter(webhook_endpoints::id.eq(id)),
    )
    .set(rotation)
    .execute(&mut **conn)
    .map(|_| ())
}

/// Deletes an endpoint (the row stays for its delivery log) and fails
/// its pending deliveries.
pub fn soft_delete_endpoint(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &WebhookEndpointId,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::app_id.eq(app_id))
            .filter(webhook_endpoints::id.eq(id)),
    )
    .set((
        webhook_endpoints::deleted_at.eq(at),
        webhook_endpoints::updated_at.eq(at),
    ))
    .execute(&mut **conn)?;
    // Lock the pending deliveries in id order first, the order the
    // dispatcher's recorder takes them in: an UPDATE over many rows takes
    // them in scan order, which could wait on the recorder while it waits
    // on us (a deadlock). SQLite's writers take turns anyway.
    if let DbConnection::Postgresql(c) = &mut **conn {
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(id))
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending))
            .order(webhook_deliveries::id)
            .select(webhook_deliveries::id)
            .for_no_key_update()
            .load::<DeliveryId>(c)?;
    }
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(id))
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending)),
    )
    .set((
        webhook_deliveries::status.eq(DeliveryStatus::Failed),
        webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
        webhook_deliveries::updated_at.eq(at),
    ))
    .execute(&mut **conn)
    .map(|_| ())
}

#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_deliveries, treat_none_as_default_value = false)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub app_id: AppId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert_deliveries(conn: &mut WriteConn<'_>, rows: &[NewDelivery]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // One multi-row INSERT, built per backend (Diesel's multi-backend
    // connection has no batch insert); a fan-out round writes hundreds.
    super::on_each_backend!(&mut **conn, c => diesel::insert_into(webhook_deliveries::table)
        .values(rows)
        .execute(c))?;
    Ok(())
}

/// An enabled endpoint with how far through its app's events it has been
/// given deliveries.
#[derive(Debug, Clone, Queryable)]
pub struct FanOutCursor {
    pub id: WebhookEndpointId,
    pub app_id: AppId,
    pub event_types: Option<String>,
    /// Events after this `(position, id)` have no delivery to it yet.
    pub position: i64,
    pub event_id: String,
}

/// The enabled endpoints whose deliveries this transaction will make,
/// locked until it ends; on PostgreSQL an endpoint another replica is
/// fanning out right now is skipped (`SKIP LOCKED`), so no event is given
/// two deliveries to one endpoint.
pub fn lock_fan_out_cursors(conn: &mut WriteConn<'_>) -> QueryResult<Vec<FanOutCursor>> {
    let select = webhook_endpoints::table
        .filter(webhook_endpoints::enabled.eq(true))
        .filter(webhook_endpoints::deleted_at.is_null())
        .order(webhook_endpoints::id)
        .select((
            webhook_endpoints::id,
            webhook_endpoints::app_id,
            webhook_endpoints::event_types,
            webhook_endpoints::fanned_out_position,
            webhook_endpoints::fanned_out_event_id,
        ));
    match &mut **conn {
        DbConnection::Postgresql(c) => select.for_update().skip_locked().load(c),
        DbConnection::Sqlite(c) => select.load(c),
    }
}

/// Whether an enabled endpoint has events after its cursor that a reader
/// may see (a read, before the fan-out's write).
pub fn any_to_fan_out(conn: &mut DbConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Answer {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        waiting: bool,
    }
    let horizon = match conn {
        DbConnection::Postgresql(_) => format!(" AND {}", super::events::VISIBILITY_HORIZON),
        DbConnection::Sqlite(_) => String::new(),
    };
    // The same `(position, id) > cursor` test as `events::marks_after`.
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM webhook_endpoints w \
             WHERE w.enabled AND w.deleted_at IS NULL AND EXISTS ( \
                 SELECT 1 FROM events WHERE events.app_id = w.app_id \
                     AND events.position >= w.fanned_out_position \
                     AND (events.position > w.fanned_out_position \
                          OR events.id > w.fanned_out_event_id){horizon})) AS waiting"
    );
    diesel::sql_query(sql)
        .get_result::<Answer>(conn)
        .map(|answer| answer.waiting)
}

/// Moves an endpoint's cursor past `(position, event_id)`.
pub fn advance_fan_out(
    conn: &mut WriteConn<'_>,
    id: &WebhookEndpointId,
    position: i64,
    event_id: &str,
) -> QueryResult<()> {
    diesel::update(webhook_endpoints::table.filter(webhook_endpoints::id.eq(id)))
        .set((
            webhook_endpoints::fanned_out_position.eq(position),
            webhook_endpoints::fanned_out_event_id.eq(event_id),
        ))
        .execute(&mut **conn)
        .map(|_| ())
}

/// A delivery this dispatcher now holds until its lease ends.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedDelivery {
    #[diesel(sql_type = Text)]
    pub id: DeliveryId,
    #[diesel(sql_type = Text)]
    pub app_id: AppId,
    #[diesel(sql_type = Text)]
    pub endpoint_id: WebhookEndpointId,
    #[diesel(sql_type = Text)]
    pub event_id: EventId,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// The endpoints that have a delivery due and unclaimed, in no set order
/// (one index probe each; a read, before claiming).
pub fn endpoints_with_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> QueryResult<Vec<WebhookEndpointId>> {
    #[derive(QueryableByName)]
    struct Endpoint {
        #[diesel(sql_type = Text)]
        id: WebhookEndpointId,
    }
    // Through `webhook_deliveries_endpoint_due_idx`: the probe passes over
    // the endpoint's deliveries being sent (at most its share) and stops at
    // the first one free to claim.
    let sql = "SELECT e.id FROM webhook_endpoints e WHERE e.deleted_at IS NULL AND EXISTS ( \
                   SELECT 1 FROM webhook_deliveries d \
                   WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= $1 \
                     AND (d.lease_until IS NULL OR d.lease_until < $1))";
    let sql = match conn {
        DbConnection::Postgresql(_) => sql.to_owned(),
        DbConnection::Sqlite(_) => sql.replace("$1", "?1"),
    };
    diesel::sql_query(sql)
        .bind::<Timestamp, _>(now)
        .load::<Endpoint>(conn)
        .map(|rows| rows.into_iter().map(|row| row.id).collect())
}

/// Claims up to `limit` of one endpoint's due deliveries until
/// `lease_until`, oldest first. On PostgreSQL replicas skip each other's
/// locked rows (`FOR UPDATE SKIP LOCKED`), so no two claim one delivery;
/// SQLite's writers take turns anyway. One index range per endpoint, so a
/// claim costs the same however many deliveries wait behind those being
/// sent.
pub fn claim_due(
    conn: &mut WriteConn<'_>,
    endpoint_id: &WebhookEndpointId,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<ClaimedDelivery>> {
    let lock = match &**conn {
        DbConnection::Postgresql(_) => "FOR UPDATE SKIP LOCKED",
        DbConnection::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_until = $1 \
         WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE endpoint_id = $2 AND status = 'pending' AND next_attempt_at <= $3 \
               AND (lease_until IS NULL OR lease_until < $3) \
             ORDER BY next_attempt_at LIMIT $4 {lock}) \
         RETURNING id, app_id, endpoint_id, event_id, attempts"
    );
    // SQLite numbers `$N` parameters in the order they first appear;
    // `?N` keeps N.
    let sql = match &**conn {
        DbConnection::Postgresql(_) => sql,
        DbConnection::Sqlite(_) => (1..=4).fold(sql, |sql, n| {
            sql.replace(&format!("${n}"), &format!("?{n}"))
        }),
    };
    diesel::sql_query(sql)
        .bind::<Timestamp, _>(lease_until)
        .bind::<Text, _>(endpoint_id)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load(&mut **conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptRow {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub app_id: AppId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i32,
    pub response_excerpt: Option<String>,
}

/// Where a delivery stands after an attempt.
#[derive(Debug, Clone, Copy)]
pub struct AfterAttempt {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<NaiveDateTime>,
}

/// Records a round of attempts and where their deliveries stand now, in
/// few statements: the attempts in one INSERT on PostgreSQL (one each on
/// SQLite, in-process), every delivered one in one UPDATE, and the rest
/// (each with its own next time) one by one. Under load nearly every
/// attempt delivers, so a round of 200 costs a handful of statements, not
/// 400.
pub fn record_attempts(
    conn: &mut WriteConn<'_>,
    attempts: &[(AttemptRow, AfterAttempt)],
    at: NaiveDateTime,
) -> QueryResult<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let rows: Vec<&AttemptRow> = attempts.iter().map(|(row, _)| row).collect();
    match &mut **conn {
        DbConnection::Postgresql(c) => {
            diesel::insert_into(webhook_attempts::table)
                .values(rows)
                .execute(c)?;
        }
        DbConnection::Sqlite(c) => {
            for row in rows {
                diesel::insert_into(webhook_attempts::table)
                    .values(row)
                    .execute(c)?;
            }
        }
    }
    let delivered: Vec<&DeliveryId> = attempts
        .iter()
        .filter(|(_, after)| matches!(after.status, DeliveryStatus::Delivered))
        .map(|(row, _)| &row.delivery_id)
        .collect();
    if !delivered.is_empty() {
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(delivered)))
            .set((
                webhook_deliveries::status.eq(DeliveryStatus::Delivered),
                webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
                webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
                webhook_deliveries::updated_at.eq(at),
            ))
            .execute(&mut **conn)?;
    }
    for (row, after) in attempts
        .iter()
        .filter(|(_, after)| !matches!(after.status, DeliveryStatus::Delivered))
    {
        diesel::update(
            webhook_deliveries::table.filter(webhook_deliveries::id.eq(&row.delivery_id)),
        )
        .set((
            webhook_deliveries::status.eq(after.status),
            webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
            webhook_deliveries::next_attempt_at.eq(after.next_attempt_at),
            webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
            webhook_deliveries::updated_at.eq(at),
        ))
        .execute(&mut **conn)?;
    }
    Ok(())
}

/// Settles a delivery without an attempt (its endpoint or event is gone).
pub fn fail_delivery(
    conn: &mut WriteConn<'_>,
    id: &DeliveryId,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq(id)))
        .set((
            webhook_deliveries::status.eq(DeliveryStatus::Failed),
            webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
            webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
            webhook_deliveries::updated_at.eq(at),
        ))
        .execute(&mut **conn)
        .map(|_| ())
}

/// An attempt with its delivery's current status, for the delivery log.
#[derive(Debug, Clone, Queryable)]
pub struct LoggedAttempt {
    pub attempt: AttemptRow,
    pub delivery_status: DeliveryStatus,
}

/// The endpoint's attempts, newest first.
pub fn attempts_of(
    conn: &mut DbConnection,
    app_id: &AppId,
    endpoint_id: &WebhookEndpointId,
    limit: i64,
) -> QueryResult<Vec<LoggedAttempt>> {
    webhook_attempts::table
        .inner_join(
            webhook_deliveries::table.on(webhook_deliveries::id.eq(webhook_attempts::delivery_id)),
        )
        .filter(webhook_attempts::app_id.eq(app_id))
        .filter(webhook_attempts::endpoint_id.eq(endpoint_id))
        .order((
            webhook_attempts::attempted_at.desc(),
            webhook_attempts::id.desc(),
        ))
        .limit(limit)
        .select((AttemptRow::as_select(), webhook_deliveries::status))
        .load::<(AttemptRow, DeliveryStatus)>(conn)
        .map(|rows| {
            rows.into_iter()
                .map(|(attempt, delivery_status)| LoggedAttempt {
                    attempt,
                    delivery_status,
                })
                .collect()
        })
}

/// Whether the app has this event (for redelivery).
pub fn event_exists(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &EventId,
) -> QueryResult<Option<String>> {
    events::table
        .filter(events::app_id.eq(app_id))
        .filter(events::id.eq(id))
        .select(events::event_type)
        .first(conn)
        .optional()
}

/// Endpoints by id, deleted or not (the dispatcher's view of a batch).
pub fn endpoints_by_ids(
    conn: &mut DbConnection,
    ids: &[WebhookEndpointId],
) -> QueryResult<Vec<EndpointRow>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::id.eq_any(ids))
        .select(EndpointRow::as_select())
        .load(conn)
}
