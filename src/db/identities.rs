//! Queries for identities and their documents. Every function takes the
//! caller's app id and filters on it in SQL: tenancy is enforced here, not
//! by callers remembering to check.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{documents, identities};
use super::{Cursor, DbConnection, MultiBackend};
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

pub fn insert(conn: &mut DbConnection, row: &IdentityRow) -> QueryResult<()> {
    diesel::insert_into(identities::table)
        .values(row)
        .execute(conn)
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

/// Writes every column of an existing row (the domain has already merged
/// and validated the change).
pub fn update(conn: &mut DbConnection, row: &IdentityRow) -> QueryResult<()> {
    diesel::update(identities::table.find(&row.id))
        .set(row)
        .execute(conn)
        .map(|_| ())
}

pub fn soft_delete(
    conn: &mut DbConnection,
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
    .execute(conn)?;
    diesel::update(
        documents::table
            .filter(documents::identity_id.eq(id))
            .filter(documents::deleted_at.is_null()),
    )
    .set((documents::deleted_at.eq(at), documents::updated_at.eq(at)))
    .execute(conn)
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

/// Inserts documents one by one: a multi-row insert does not compile for
/// the combined connection type; callers run this inside a transaction.
pub fn insert_documents(conn: &mut DbConnection, rows: &[DocumentRow]) -> QueryResult<()> {
    for row in rows {
        diesel::insert_into(documents::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// Marks the live documents of one identity deleted; `face_images` picks
/// which of the two sets a PATCH replaces.
pub fn soft_delete_documents(
    conn: &mut DbConnection,
    identity_id: &str,
    face_images: bool,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let base = documents::table
        .filter(documents::identity_id.eq(identity_id))
        .filter(documents::deleted_at.is_null());
    let set = (documents::deleted_at.eq(at), documents::updated_at.eq(at));
    if face_images {
        diesel::update(base.filter(documents::document_type.eq("faceImage")))
            .set(set)
            .execute(conn)?;
    } else {
        diesel::update(base.filter(documents::document_type.ne("faceImage")))
            .set(set)
            .execute(conn)?;
    }
    Ok(())
}

/// The live documents of many identities in one query, in the order they
/// were sent.
pub fn live_documents_of(
    conn: &mut DbConnection,
    identity_ids: &[&str],
) -> QueryResult<Vec<DocumentRow>> {
    if identity_ids.is_empty() {
        return Ok(Vec::new());
    }
    if let [one] = identity_ids {
        // One identity (get, operations, patch): a fixed statement, straight
        // on the backend and cached; `IN (…)` has a variable number of binds.
        return super::on_each_backend!(conn, c => documents::table
            .filter(documents::identity_id.eq(*one))
            .filter(documents::deleted_at.is_null())
            .order(documents::position)
            .select(DocumentRow::as_select())
            .load(c));
    }
    documents::table
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

fn apply_filters<'a>(mut query: BoxedIdentities<'a>, filters: &'a [Filter]) -> BoxedIdentities<'a> {
    use Condition::*;
    for Filter { field, condition } in filters {
        query = match (*field, condition) {
            ("appId", Eq(v)) => query.filter(identities::app_id.eq(v)),
            ("blocked", Eq(v)) => query.filter(identities::blocked.eq(v == "true")),
            ("email", Eq(v)) => query.filter(lower(identities::email).eq(v.to_lowercase())),
            ("email", Like(v)) => query.filter(
                lower(identities::email)
                    .like(crate::domain::list_query::like_pattern(v))
                    .escape('\\'),
            ),
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

/// One page of matches.
pub fn list(
    conn: &mut DbConnection,
    app_id: &str,
    query: &ListQuery,
) -> QueryResult<Vec<IdentityRow>> {
    let mut q = apply_sort(apply_filters(live(app_id), &query.filters), &query.sort);
    if let Some(limit) = query.page.limit() {
        q = q.limit(limit).offset(query.page.offset());
    }
    q.select(IdentityRow::as_select()).load(conn)
}

/// One page and the total number of matches from a single walk over the
/// matches, for filters that no index can answer (`like:`).
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
pub fn page_and_total_in_one_walk(
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
    if page_ids.is_empty() {
        return Ok((Vec::new(), total));
    }
    let mut rows = live(app_id)
        .filter(identities::id.eq_any(&page_ids))
        .select(IdentityRow::as_select())
        .load(conn)?;
    rows.sort_by_key(|row| page_ids.iter().position(|id| *id == row.id));
    Ok((rows, total))
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
