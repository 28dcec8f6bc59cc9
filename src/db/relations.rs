//! A company's related parties (`identity_relations`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::identity_relations;
use super::{DbConnection, WriteConn};
use crate::domain::ids::{AppId, IdentityId, RelationId};
use crate::domain::relations::RelationRole;

/// A stored relation; `ownership` in hundredths of a percent.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = identity_relations)]
pub struct RelationRow {
    pub id: RelationId,
    pub app_id: AppId,
    pub company_id: IdentityId,
    pub person_id: IdentityId,
    pub role: RelationRole,
    pub ownership: Option<i32>,
    pub title: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// What a patch may change.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = identity_relations, treat_none_as_null = true)]
pub struct RelationChanges {
    pub role: RelationRole,
    pub ownership: Option<i32>,
    pub title: Option<String>,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut WriteConn<'_>, row: &RelationRow) -> QueryResult<()> {
    diesel::insert_into(identity_relations::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

pub fn update(
    conn: &mut WriteConn<'_>,
    id: &RelationId,
    changes: &RelationChanges,
) -> QueryResult<()> {
    diesel::update(identity_relations::table.filter(identity_relations::id.eq(id)))
        .set(changes)
        .execute(&mut **conn)
        .map(|_| ())
}

pub fn delete(conn: &mut WriteConn<'_>, id: &RelationId) -> QueryResult<()> {
    diesel::delete(identity_relations::table.filter(identity_relations::id.eq(id)))
        .execute(&mut **conn)
        .map(|_| ())
}

/// Deletes every relation a person is the related party of (erasure);
/// answers the companies they were related to.
pub fn delete_of_person(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    person_id: &IdentityId,
) -> QueryResult<Vec<IdentityId>> {
    let companies = of_person(conn, app_id, person_id)?;
    diesel::delete(
        identity_relations::table
            .filter(identity_relations::app_id.eq(app_id))
            .filter(identity_relations::person_id.eq(person_id)),
    )
    .execute(&mut **conn)?;
    Ok(companies)
}

/// Deletes a company's own relations (it was deleted or erased).
pub fn delete_of_company(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    company_id: &IdentityId,
) -> QueryResult<()> {
    diesel::delete(
        identity_relations::table
            .filter(identity_relations::app_id.eq(app_id))
            .filter(identity_relations::company_id.eq(company_id)),
    )
    .execute(&mut **conn)
    .map(|_| ())
}

/// The relations of these companies, each company's in the order made.
pub fn of_companies(
    conn: &mut DbConnection,
    app_id: &AppId,
    companies: &[&IdentityId],
) -> QueryResult<Vec<RelationRow>> {
    // (On each backend's own connection: see `identities::live_documents_of`.)
    super::on_each_backend!(conn, c => identity_relations::table
        .filter(identity_relations::app_id.eq(app_id))
        .filter(identity_relations::company_id.eq_any(companies))
        .order((
            identity_relations::company_id,
            identity_relations::created_at,
            identity_relations::id,
        ))
        .select(RelationRow::as_select())
        .load(c))
}

/// One relation of a company.
pub fn find(
    conn: &mut DbConnection,
    app_id: &AppId,
    company_id: &IdentityId,
    id: &RelationId,
) -> QueryResult<Option<RelationRow>> {
    identity_relations::table
        .filter(identity_relations::app_id.eq(app_id))
        .filter(identity_relations::company_id.eq(company_id))
        .filter(identity_relations::id.eq(id))
        .select(RelationRow::as_select())
        .first(conn)
        .optional()
}

/// The companies a person is related to (distinct).
pub fn of_person(
    conn: &mut DbConnection,
    app_id: &AppId,
    person_id: &IdentityId,
) -> QueryResult<Vec<IdentityId>> {
    identity_relations::table
        .filter(identity_relations::app_id.eq(app_id))
        .filter(identity_relations::person_id.eq(person_id))
        .select(identity_relations::company_id)
        .distinct()
        .load(conn)
}
