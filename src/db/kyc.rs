//! Queries for verifications and the identity history, scoped by app.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{identity_events, verifications};
use super::types::StoredTime;
use super::{keyset, Cursor, DbConnection, MultiBackend, WriteConn};
use crate::domain::decisions::{RejectLabels, RejectType};
use crate::domain::ids::{AppId, HistoryEntryId, IdentityId, VerificationId};
use crate::domain::kyc::{Level, RiskRating, VerificationStatus};
use crate::domain::list_query::{Condition, Filter, ListQuery, VerificationFilter};

/// A parsed `GET /verifications` query.
pub type VerificationQuery = ListQuery<VerificationFilter>;

/// A verification, as read (and, whole, as inserted: a new verification
/// has every column set).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = verifications)]
pub struct VerificationRow {
    pub id: VerificationId,
    pub app_id: AppId,
    pub identity_id: IdentityId,
    pub level: Level,
    pub status: VerificationStatus,
    pub reason: Option<String>,
    pub risk_rating: Option<RiskRating>,
    #[diesel(deserialize_as = StoredTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = StoredTime)]
    pub updated_at: NaiveDateTime,
    /// Set exactly when rejected.
    pub reject_type: Option<RejectType>,
    pub reject_labels: Option<RejectLabels>,
    /// The latest decision's comment for the customer.
    pub client_comment: Option<String>,
}

/// An entry of an identity's history, as read and as inserted: entries are
/// never changed.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = identity_events)]
pub struct EventRow {
    pub id: HistoryEntryId,
    pub app_id: AppId,
    pub identity_id: IdentityId,
    pub event_type: String,
    pub verification_id: Option<VerificationId>,
    pub level: Option<Level>,
    pub status: Option<VerificationStatus>,
    pub reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub reject_type: Option<RejectType>,
    pub reject_labels: Option<RejectLabels>,
    pub client_comment: Option<String>,
    /// For reviewers only: never put in an API answer or an event.
    pub internal_comment: Option<String>,
}

/// A verification's decision: what `update_status` writes.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = verifications, treat_none_as_null = true)]
pub struct StatusChange<'a> {
    pub status: VerificationStatus,
    pub reason: Option<&'a str>,
    pub risk_rating: Option<RiskRating>,
    pub updated_at: NaiveDateTime,
    pub reject_type: Option<RejectType>,
    pub reject_labels: Option<&'a RejectLabels>,
    pub client_comment: Option<&'a str>,
}

pub fn insert_verification(conn: &mut WriteConn<'_>, row: &VerificationRow) -> QueryResult<()> {
    diesel::insert_into(verifications::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

pub fn insert_event(conn: &mut WriteConn<'_>, row: &EventRow) -> QueryResult<()> {
    diesel::insert_into(identity_events::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

pub fn update_status(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &VerificationId,
    change: &StatusChange<'_>,
) -> QueryResult<()> {
    diesel::update(
        verifications::table
            .filter(verifications::app_id.eq(app_id))
            .filter(verifications::id.eq(id)),
    )
    .set(change)
    .execute(&mut **conn)
    .map(|_| ())
}

/// A verification of a live identity of the app.
pub fn find(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &VerificationId,
) -> QueryResult<Option<VerificationRow>> {
    verifications::table
        .filter(verifications::app_id.eq(app_id))
        .filter(verifications::id.eq(id))
        .filter(verifications::identity_deleted_at.is_null())
        .select(VerificationRow::as_select())
        .first(conn)
        .optional()
}

macro_rules! verifications_of_identities {
    ($(#[$doc:meta])* $name:ident -> $row:ident) => {
        $(#[$doc])*
        pub fn $name(
            conn: &mut DbConnection,
            app_id: &AppId,
            identity_ids: &[&IdentityId],
        ) -> QueryResult<Vec<$row>> {
            if identity_ids.is_empty() {
                return Ok(Vec::new());
            }
            if let [one] = identity_ids {
                // One identity (get, operations, patch): a fixed statement,
                // straight on the backend and cached; `IN (…)` has a variable
                // number of binds.
                return super::on_each_backend!(conn, c => verifications::table
                    .filter(verifications::app_id.eq(app_id))
                    .filter(verifications::identity_id.eq(*one))
                    .order((verifications::created_at.desc(), verifications::id.desc()))
                    .select($row::as_select())
                    .load(c));
            }
            // (On each backend's own connection: see `live_documents_of`.)
            super::on_each_backend!(conn, c => verifications::table
                .filter(verifications::app_id.eq(app_id))
                .filter(verifications::identity_id.eq_any(identity_ids))
                .order((verifications::created_at.desc(), verifications::id.desc()))
                .select($row::as_select())
                .load(c))
        }
    };
}

verifications_of_identities! {
    /// Every verification of these identities, newest first (so the first
    /// per level is the latest), in one query.
    of_identities -> VerificationRow
}

verifications_of_identities! {
    /// [`of_identities`], only what `kycStatus` shows of each (a list reads
    /// this for every identity it answers).
    statuses_of -> StatusRow
}

/// [`statuses_of`] for the live identities whose ids lie in
/// `ids.start()..=ids.end()`, newest first per identity, at most `limit`:
/// one range of `verifications_app_identity_idx` (see
/// `identities::live_documents_in_range`).
pub fn statuses_in_range(
    conn: &mut DbConnection,
    app_id: &AppId,
    ids: std::ops::RangeInclusive<&IdentityId>,
    limit: i64,
) -> QueryResult<Vec<StatusRow>> {
    let (first, last) = ids.into_inner();
    super::on_each_backend!(conn, c => verifications::table
        .filter(verifications::app_id.eq(app_id))
        .filter(verifications::identity_deleted_at.is_null())
        .filter(verifications::identity_id.ge(first))
        .filter(verifications::identity_id.le(last))
        .order((
            verifications::identity_id.desc(),
            verifications::created_at.desc(),
            verifications::id.desc(),
        ))
        .limit(limit)
        .select(StatusRow::as_select())
        .load(c))
}

/// What an identity's `kycStatus` shows of a verification.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = verifications)]
pub struct StatusRow {
    pub id: VerificationId,
    pub identity_id: IdentityId,
    pub level: Level,
    pub status: VerificationStatus,
    #[diesel(deserialize_as = StoredTime)]
    pub updated_at: NaiveDateTime,
}

/// The history of verifications, oldest first, in one query.
pub fn events_of_verifications(
    conn: &mut DbConnection,
    app_id: &AppId,
    ids: &[&VerificationId],
) -> QueryResult<Vec<EventRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    identity_events::table
        .filter(identity_events::app_id.eq(app_id))
        .filter(identity_events::verification_id.eq_any(ids))
        .order((identity_events::created_at.asc(), identity_events::id.asc()))
        .select(EventRow::as_select())
        .load(conn)
}

pub fn events_of_identity(
    conn: &mut DbConnection,
    app_id: &AppId,
    identity_id: &IdentityId,
) -> QueryResult<Vec<EventRow>> {
    identity_events::table
        .filter(identity_events::app_id.eq(app_id))
        .filter(identity_events::identity_id.eq(identity_id))
        .order((identity_events::created_at.asc(), identity_events::id.asc()))
        .select(EventRow::as_select())
        .load(conn)
}

type BoxedVerifications<'a> = verifications::BoxedQuery<'a, MultiBackend>;

fn filtered<'a>(
    app_id: &'a AppId,
    filters: &'a [Filter<VerificationFilter>],
) -> QueryResult<BoxedVerifications<'a>> {
    use Condition::*;
    // Verifications of deleted identities leave the list; the flag is on the
    // row itself (`identities::soft_delete`), so no join is needed.
    let mut query = verifications::table
        .filter(verifications::app_id.eq(app_id))
        .filter(verifications::identity_deleted_at.is_null())
        .into_boxed();
    for Filter { field, condition } in filters {
        let unsupported = || keyset::unsupported(*field, condition);
        query = match field {
            VerificationFilter::Id => match condition {
                Eq(v) => query.filter(verifications::id.eq(v)),
                In(vs) => query.filter(verifications::id.eq_any(vs)),
                _ => return Err(unsupported()),
            },
            VerificationFilter::IdentityId => match condition {
                Eq(v) => query.filter(verifications::identity_id.eq(v)),
                In(vs) => query.filter(verifications::identity_id.eq_any(vs)),
                _ => return Err(unsupported()),
            },
            VerificationFilter::Status => match condition {
                Eq(v) => query.filter(verifications::status.eq(v)),
                In(vs) => query.filter(verifications::status.eq_any(vs)),
                NotIn(vs) => query.filter(verifications::status.ne_all(vs)),
                Like(_) | KeyEq { .. } => return Err(unsupported()),
            },
            VerificationFilter::Level => match condition {
                Eq(v) => query.filter(verifications::level.eq(v)),
                In(vs) => query.filter(verifications::level.eq_any(vs)),
                _ => return Err(unsupported()),
            },
            VerificationFilter::RejectType => match condition {
                Eq(v) => query.filter(verifications::reject_type.eq(v)),
                In(vs) => query.filter(verifications::reject_type.eq_any(vs)),
                _ => return Err(unsupported()),
            },
            VerificationFilter::RejectLabels => match condition {
                Eq(v) => query.filter(has_any_label(std::slice::from_ref(v))),
                In(vs) => query.filter(has_any_label(vs)),
                _ => return Err(unsupported()),
            },
        };
    }
    Ok(query)
}

type Condition_ = Box<
    dyn BoxableExpression<verifications::table, MultiBackend, SqlType = diesel::sql_types::Bool>,
>;

/// Rejected with any of these labels (catalogue names, checked by the list
/// spec, so they hold no `LIKE` wildcard): the stored names are joined by
/// commas, so `,stored,` holds `,name,` exactly when the name is one.
fn has_any_label(labels: &[String]) -> Condition_ {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Text};
    let one = |label: &String| -> Condition_ {
        Box::new(
            sql::<Bool>("(',' || verifications.reject_labels || ',') LIKE ")
                .bind::<Text, _>(format!("%,{label},%")),
        )
    };
    let mut labels = labels.iter();
    let first = labels
        .next()
        .map(one)
        .unwrap_or_else(|| Box::new(sql::<Bool>("FALSE")));
    labels.fold(first, |any, label| Box::new(any.or(one(label))))
}

/// The matches of `query`'s filters in its order.
fn sorted<'a>(
    app_id: &'a AppId,
    query: &'a VerificationQuery,
) -> QueryResult<BoxedVerifications<'a>> {
    let filtered = filtered(app_id, &query.filters)?;
    Ok(keyset::order_by!(
        filtered,
        query.sort,
        verifications::created_at,
        verifications::updated_at,
        verifications::id
    ))
}

/// One page of matches (`all=true` is streamed with `list_after`).
pub fn list(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &VerificationQuery,
) -> QueryResult<Vec<VerificationRow>> {
    let mut q = sorted(app_id, query)?;
    if let Some(limit) = query.page.limit() {
        q = q.limit(limit).offset(query.page.offset());
    }
    q.select(VerificationRow::as_select()).load(conn)
}

pub fn count(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &VerificationQuery,
) -> QueryResult<i64> {
    filtered(app_id, &query.filters)?.count().get_result(conn)
}

/// The next `limit` matches after `after`, in sort order (see `Cursor`),
/// past the first `skip`.
pub fn list_after(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &VerificationQuery,
    after: Option<&Cursor>,
    skip: i64,
    limit: i64,
) -> QueryResult<Vec<VerificationRow>> {
    let mut q = sorted(app_id, query)?;
    if let Some(cursor) = after {
        q = keyset::after_cursor!(
            q,
            query.sort,
            cursor,
            verifications::created_at,
            verifications::updated_at,
            verifications::id
        );
    }
    if skip > 0 {
        q = q.offset(skip);
    }
    q.limit(limit)
        .select(VerificationRow::as_select())
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::list_query::VERIFICATION_LIST;

    /// Every filter and operator the list's spec offers has a query.
    #[test]
    fn every_offered_filter_builds_a_query() {
        let app = AppId::new();
        for filter in VERIFICATION_LIST.every_offered_filter() {
            assert!(
                filtered(&app, std::slice::from_ref(&filter)).is_ok(),
                "{filter:?}"
            );
        }
    }
}
