//! Queries for identities and their documents. Every function that reads
//! or changes existing rows takes the caller's app id and filters on it in
//! SQL (inserts write the app id of the rows they are given): tenancy is
//! enforced here, not by callers remembering to check.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::schema::{documents, identities};
use super::{Cursor, DbConnection, MultiBackend, WriteConn};
use crate::domain::email_search::{EmailLike, PrefixRange};
use crate::domain::identity::Email;
use crate::domain::list_query::{Condition, Filter, ListQuery, Sort};

diesel::define_sql_function! {
    /// SQL `lower()`, the same on both backends (ASCII on SQLite).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = identities, treat_none_as_null = true)]
pub struct IdentityRow {
    pub id: String,
    pub app_id: String,
    pub identity_type: String,
    pub name: String,
    pub email: String,
    pub birthday: Option<chrono::NaiveDate>,
    pub gender: Option<String>,
    pub address_street: String,
    pub address_city: String,
    pub address_state: Option<String>,
    pub address_postal_code: String,
    pub address_country: String,
    pub phone_number: String,
    pub phone_sms: bool,
    pub tax_country: String,
    pub tax_id_number: String,
    pub tax_state: Option<String>,
    pub tax_formation_region: Option<String>,
    pub identity_owner: Option<String>,
    pub blocked: bool,
    pub identity_confirmed: bool,
    pub risk_rating: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    /// Search keys derived from `email` (`EmailKeys`), written with it.
    pub email_domain: String,
    pub email_local_reversed: String,
    /// `Email::normalized`: what the unique index and the email filters
    /// compare, the same on both backends.
    pub email_normalized: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = documents)]
pub struct DocumentRow {
    pub id: String,
    pub app_id: String,
    pub identity_id: String,
    pub document_type: String,
    pub side: String,
    pub label: Option<String>,
    pub description: Option<String>,
    pub url: String,
    pub position: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}

type BoxedIdentities<'a> = identities::BoxedQuery<'a, MultiBackend>;

fn live<'a>(app_id: &'a str) -> BoxedIdentities<'a> {
    identities::table
        .filter(identities::app_id.eq(app_id))
        .filter(identities::deleted_at.is_null())
        .into_boxed()
}

pub fn insert(conn: &mut WriteConn<'_>, row: &IdentityRow) -> QueryResult<()> {
    diesel::insert_into(identities::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

pub fn find_live(
    conn: &mut DbConnection,
    app_id: &str,
    id: &str,
) -> QueryResult<Option<IdentityRow>> {
    super::on_each_backend!(conn, c => identities::table
        .filter(identities::app_id.eq(app_id))
        .filter(identities::deleted_at.is_null())
        .filter(identities::id.eq(id))
        .select(IdentityRow::as_select())
        .first(c)
        .optional())
}

/// Like `find_live`, locking the row until the transaction ends, so that two
/// concurrent patches cannot both start from the same old state. (SQLite
/// write transactions are already exclusive, see `write_transaction`.)
pub fn find_live_for_update(
    conn: &mut DbConnection,
    app_id: &str,
    id: &str,
) -> QueryResult<Option<IdentityRow>> {
    // The same statement built per backend: each needs its own query type.
    macro_rules! query {
        () => {
            identities::table
                .filter(identities::app_id.eq(app_id))
                .filter(identities::deleted_at.is_null())
                .filter(identities::id.eq(id))
                .select(IdentityRow::as_select())
        };
    }
    match conn {
        DbConnection::Postgresql(pg) => query!().for_update().first(pg).optional(),
        DbConnection::Sqlite(sqlite) => query!().first(sqlite).optional(),
    }
}

/// Writes every column of an existing row of the app (the domain has
/// already merged and validated the change).
pub fn update(conn: &mut WriteConn<'_>, app_id: &str, row: &IdentityRow) -> QueryResult<()> {
    diesel::update(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::id.eq(&row.id)),
    )
    .set(row)
    .execute(&mut **conn)
    .map(|_| ())
}

pub fn soft_delete(
    conn: &mut WriteConn<'_>,
    app_id: &str,
    id: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::id.eq(id)),
    )
    .set((identities::deleted_at.eq(at), identities::updated_at.eq(at)))
    .execute(&mut **conn)?;
    diesel::update(
        documents::table
            .filter(documents::app_id.eq(app_id))
            .filter(documents::identity_id.eq(id))
            .filter(documents::deleted_at.is_null()),
    )
    .set((documents::deleted_at.eq(at), documents::updated_at.eq(at)))
    .execute(&mut **conn)
    .map(|_| ())
}

/// True when live companies name this identity as their owner.
pub fn owns_live_companies(conn: &mut DbConnection, app_id: &str, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::deleted_at.is_null())
            .filter(identities::identity_owner.eq(id)),
    ))
    .get_result(conn)
}

/// Inserts documents one by one (a multi-row insert does not compile for
/// the combined connection type), all in the write transaction.
pub fn insert_documents(conn: &mut WriteConn<'_>, rows: &[DocumentRow]) -> QueryResult<()> {
    for row in rows {
        diesel::insert_into(documents::table)
            .values(row)
            .execute(&mut **conn)?;
    }
    Ok(())
}

/// Marks the live documents of one identity of the app deleted and returns
/// their ids; `face_images` picks which of the two sets a PATCH replaces.
pub fn soft_delete_documents(
    conn: &mut WriteConn<'_>,
    app_id: &str,
    identity_id: &str,
    face_images: bool,
    at: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let base = documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.eq(identity_id))
        .filter(documents::deleted_at.is_null());
    let set = (documents::deleted_at.eq(at), documents::updated_at.eq(at));
    if face_images {
        let matching = base.filter(documents::document_type.eq("faceImage"));
        let ids = matching.select(documents::id).load(&mut **conn)?;
        diesel::update(matching).set(set).execute(&mut **conn)?;
        Ok(ids)
    } else {
        let matching = base.filter(documents::document_type.ne("faceImage"));
        let ids = matching.select(documents::id).load(&mut **conn)?;
        diesel::update(matching).set(set).execute(&mut **conn)?;
        Ok(ids)
    }
}

/// The live documents of many identities of the app in one query, in the
/// order they were sent.
pub fn live_documents_of(
    conn: &mut DbConnection,
    app_id: &str,
    identity_ids: &[&str],
) -> QueryResult<Vec<DocumentRow>> {
    if identity_ids.is_empty() {
        return Ok(Vec::new());
    }
    if let [one] = identity_ids {
        // One identity (get, operations, patch): a fixed statement, straight
        // on the backend and cached; `IN (…)` has a variable number of binds.
        return super::on_each_backend!(conn, c => documents::table
            .filter(documents::app_id.eq(app_id))
            .filter(documents::identity_id.eq(*one))
            .filter(documents::deleted_at.is_null())
            .order(documents::position)
            .select(DocumentRow::as_select())
            .load(c));
    }
    documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.eq_any(identity_ids))
        .filter(documents::deleted_at.is_null())
        .order((documents::identity_id, documents::position))
        .select(DocumentRow::as_select())
        .load(conn)
}

pub fn find_live_document(
    conn: &mut DbConnection,
    app_id: &str,
    identity_id: &str,
    document_id: &str,
) -> QueryResult<Option<DocumentRow>> {
    documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.eq(identity_id))
        .filter(documents::id.eq(document_id))
        .filter(documents::deleted_at.is_null())
        .select(DocumentRow::as_select())
        .first(conn)
        .optional()
}

/// Restricts a query to rows whose text `column` starts with `prefix`, as an
/// index range (see `PrefixRange`).
macro_rules! starting_with {
    ($query:expr, $column:expr, $prefix:expr) => {{
        let range = PrefixRange::of($prefix);
        match (range.is_everything(), range.end) {
            (true, _) => $query,
            (false, None) => $query.filter($column.ge(range.start)),
            (false, Some(end)) => $query
                .filter($column.ge(range.start))
                .filter($column.lt(end)),
        }
    }};
}

fn apply_filters<'a>(mut query: BoxedIdentities<'a>, filters: &'a [Filter]) -> BoxedIdentities<'a> {
    use Condition::*;
    for Filter { field, condition } in filters {
        query = match (*field, condition) {
            ("appId", Eq(v)) => query.filter(identities::app_id.eq(v)),
            ("blocked", Eq(v)) => query.filter(identities::blocked.eq(v == "true")),
            ("email", Eq(v)) => query.filter(identities::email_normalized.eq(Email::normalize(v))),
            ("email", Like(v)) => match EmailLike::parse(v) {
                EmailLike::Substring => query.filter(
                    identities::email_normalized
                        .like(crate::domain::list_query::like_pattern(v))
                        .escape('\\'),
                ),
                EmailLike::Anything => query,
                EmailLike::Nothing => query.filter(diesel::dsl::sql::<Bool>("1 = 0")),
                EmailLike::Parts {
                    local_reversed_prefix,
                    domain_prefix,
                } => {
                    let query = starting_with!(query, identities::email_domain, &domain_prefix);
                    starting_with!(
                        query,
                        identities::email_local_reversed,
                        &local_reversed_prefix
                    )
                }
            },
            ("id", Eq(v)) => query.filter(identities::id.eq(v)),
            ("id", In(vs)) => query.filter(identities::id.eq_any(vs)),
            ("identityOwner", Eq(v)) => query.filter(identities::identity_owner.eq(v)),
            ("identityOwner", In(vs)) => query.filter(identities::identity_owner.eq_any(vs)),
            ("name", Eq(v)) => query.filter(identities::name.eq(v)),
            ("name", Like(v)) => query.filter(
                lower(identities::name)
                    .like(crate::domain::list_query::like_pattern(v))
                    .escape('\\'),
            ),
            ("riskRating", Eq(v)) => query.filter(identities::risk_rating.eq(v)),
            ("riskRating", In(vs)) => query.filter(identities::risk_rating.eq_any(vs)),
            // An unrated identity is not rated any of the excluded values.
            ("riskRating", NotIn(vs)) => query.filter(
                identities::risk_rating
                    .is_null()
                    .or(identities::risk_rating.ne_all(vs)),
            ),
            ("type", Eq(v)) => query.filter(identities::identity_type.eq(v)),
            // The parser only lets through what IDENTITY_LIST allows, and
            // every such pair is matched above.
            (field, condition) => {
                unreachable!("filter {field} {condition:?} is not in IDENTITY_LIST")
            }
        };
    }
    query
}

fn apply_sort<'a>(query: BoxedIdentities<'a>, sort: &Sort) -> BoxedIdentities<'a> {
    match (sort.field, sort.descending) {
        ("updatedAt", false) => query.order((identities::updated_at.asc(), identities::id.asc())),
        ("updatedAt", true) => query.order((identities::updated_at.desc(), identities::id.desc())),
        (_, false) => query.order((identities::created_at.asc(), identities::id.asc())),
        (_, true) => query.order((identities::created_at.desc(), identities::id.desc())),
    }
}

/// One page of matches and their total. Callers run it in one snapshot
/// (`db::read_snapshot`), so the page agrees with the total.
///
/// A substring that no index range can find (`like:` on a name, or on an
/// email without `@`) visits every match anyway to count it, so the page
/// comes from the same walk. Everything else is index ranges: a count, then
/// the page.
pub fn page_and_total(
    conn: &mut DbConnection,
    app_id: &str,
    query: &ListQuery,
) -> QueryResult<(Vec<IdentityRow>, i64)> {
    let unindexed_substring = query.filters.iter().any(|f| match &f.condition {
        Condition::Like(v) => f.field != "email" || EmailLike::parse(v) == EmailLike::Substring,
        _ => false,
    });
    if unindexed_substring {
        page_and_total_in_one_walk(conn, app_id, query)
    } else {
        page_and_total_by_count(conn, app_id, query)
    }
}

/// The total first, then the page's ids, walked from whichever end of the
/// list is nearer, then its rows.
fn page_and_total_by_count(
    conn: &mut DbConnection,
    app_id: &str,
    query: &ListQuery,
) -> QueryResult<(Vec<IdentityRow>, i64)> {
    let total = count(conn, app_id, query)?;
    // (`all=true` is streamed by `list_after`; unlimited here means all.)
    let limit = query.page.limit().unwrap_or(total);
    let offset = query.page.offset();
    if offset >= total {
        return Ok((Vec::new(), total));
    }
    let len = limit.min(total - offset);
    // Rows after the page, in list order: the offset of the same page when
    // walking the list backwards. OFFSET costs one index entry per row
    // skipped, so the last page of 20,000 matches costs what the first does.
    let from_end = total - offset - len;
    let backwards = from_end < offset;
    let sort = Sort {
        descending: query.sort.descending != backwards,
        ..query.sort
    };
    let key = if total > SORT_IS_CHEAP_BELOW {
        single_email_key(conn, app_id, query)?
    } else {
        None
    };
    let mut page = apply_sort(apply_filters(live(app_id), &query.filters), &sort);
    page = match &key {
        Some(EmailKey::Domain(domain)) => page.filter(identities::email_domain.eq(domain)),
        Some(EmailKey::LocalReversed(local)) => {
            page.filter(identities::email_local_reversed.eq(local))
        }
        None => page,
    };
    let mut ids: Vec<String> = page
        .limit(len)
        .offset(if backwards { from_end } else { offset })
        .select(identities::id)
        .load(conn)?;
    if backwards {
        ids.reverse();
    }
    Ok((rows_in_order(conn, app_id, &ids)?, total))
}

/// Matches a database sorts faster than two more lookups would save.
const SORT_IS_CHEAP_BELOW: i64 = 1_000;

/// One value of an email search key that every match of the query has.
enum EmailKey {
    Domain(String),
    LocalReversed(String),
}

/// For an `@`-pattern whose matches all share one domain (`@mail7.` when
/// only mail7.example.com starts so) or one local part (`john.doe@`): that
/// value. Filtering on it changes nothing in the result, but lets the
/// database walk the key's index in listing order instead of sorting every
/// match. Two single-entry lookups per key (the first and last value in
/// the range). Only for createdAt, the order the indexes carry.
fn single_email_key(
    conn: &mut DbConnection,
    app_id: &str,
    query: &ListQuery,
) -> QueryResult<Option<EmailKey>> {
    let Some((local, domain)) = query.filters.iter().find_map(|f| match &f.condition {
        Condition::Like(v) if f.field == "email" => match EmailLike::parse(v) {
            EmailLike::Parts {
                local_reversed_prefix,
                domain_prefix,
            } => Some((local_reversed_prefix, domain_prefix)),
            _ => None,
        },
        _ => None,
    }) else {
        return Ok(None);
    };
    if query.sort.field != "createdAt" {
        return Ok(None);
    }
    macro_rules! one_value {
        ($column:expr) => {{
            let matches = || apply_filters(live(app_id), &query.filters).select($column);
            let first: Option<String> = matches().order($column.asc()).first(conn).optional()?;
            let last: Option<String> = matches().order($column.desc()).first(conn).optional()?;
            first.filter(|f| Some(f) == last.as_ref())
        }};
    }
    // The local part first: "john@gmail.com" has far fewer entries per
    // local part than per domain.
    if !local.is_empty() {
        if let Some(value) = one_value!(identities::email_local_reversed) {
            return Ok(Some(EmailKey::LocalReversed(value)));
        }
    }
    if !domain.is_empty() {
        if let Some(value) = one_value!(identities::email_domain) {
            return Ok(Some(EmailKey::Domain(value)));
        }
    }
    Ok(None)
}

/// The rows of `ids`, in that order.
fn rows_in_order(
    conn: &mut DbConnection,
    app_id: &str,
    ids: &[String],
) -> QueryResult<Vec<IdentityRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = live(app_id)
        .filter(identities::id.eq_any(ids))
        .select(IdentityRow::as_select())
        .load(conn)?;
    rows.sort_by_key(|row| ids.iter().position(|id| *id == row.id));
    Ok(rows)
}

/// One page and the total number of matches from a single walk over the
/// matches, for filters that no index can answer (`like:` on a name, or on
/// an email without `@`).
///
/// Both backends must visit every match of such a filter to count it (the
/// PostgreSQL trigram index only yields candidates to recheck against the
/// rows; SQLite tests each entry of the listing index). The walk reads only
/// ids, in the listing order, so SQLite stays inside the listing index that
/// carries the lowered email and name (its planner would pick a narrower
/// index for a bare `COUNT(*)` and then read every row), and PostgreSQL
/// sorts ids instead of whole rows; then the page's rows are fetched by id.
/// On SQLite the walk streams (one page of ids in memory); libpq hands over
/// PostgreSQL's whole result first, 36 bytes of id per match.
fn page_and_total_in_one_walk(
    conn: &mut DbConnection,
    app_id: &str,
    query: &ListQuery,
) -> QueryResult<(Vec<IdentityRow>, i64)> {
    use diesel::connection::DefaultLoadingMode;
    let offset = usize::try_from(query.page.offset()).unwrap_or(usize::MAX);
    let limit = query
        .page
        .limit()
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(usize::MAX);
    let mut total: i64 = 0;
    let mut page_ids: Vec<String> = Vec::new();
    {
        let walk = apply_sort(apply_filters(live(app_id), &query.filters), &query.sort)
            .select(identities::id);
        for (position, id) in walk
            .load_iter::<String, DefaultLoadingMode>(conn)?
            .enumerate()
        {
            let id = id?;
            if position >= offset && page_ids.len() < limit {
                page_ids.push(id);
            }
            total += 1;
        }
    }
    Ok((rows_in_order(conn, app_id, &page_ids)?, total))
}

pub fn count(conn: &mut DbConnection, app_id: &str, query: &ListQuery) -> QueryResult<i64> {
    apply_filters(live(app_id), &query.filters)
        .count()
        .get_result(conn)
}

/// The next `limit` matches after `after`, in sort order. Keyset paging, so
/// every chunk costs the same however deep the walk is.
pub fn list_after(
    conn: &mut DbConnection,
    app_id: &str,
    query: &ListQuery,
    after: Option<&Cursor>,
    limit: i64,
) -> QueryResult<Vec<IdentityRow>> {
    let mut q = apply_sort(apply_filters(live(app_id), &query.filters), &query.sort);
    if let Some(Cursor { at, id }) = after {
        let (at, id) = (*at, id.clone());
        q = match (query.sort.field, query.sort.descending) {
            ("updatedAt", false) => q.filter(
                identities::updated_at
                    .gt(at)
                    .or(identities::updated_at.eq(at).and(identities::id.gt(id))),
            ),
            ("updatedAt", true) => q.filter(
                identities::updated_at
                    .lt(at)
                    .or(identities::updated_at.eq(at).and(identities::id.lt(id))),
            ),
            (_, false) => q.filter(
                identities::created_at
                    .gt(at)
                    .or(identities::created_at.eq(at).and(identities::id.gt(id))),
            ),
            (_, true) => q.filter(
                identities::created_at
                    .lt(at)
                    .or(identities::created_at.eq(at).and(identities::id.lt(id))),
            ),
        };
    }
    q.limit(limit).select(IdentityRow::as_select()).load(conn)
}
