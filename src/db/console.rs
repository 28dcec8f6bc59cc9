//! Review console sessions (`console_sessions`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::console_sessions;
use super::{DbConnection, WriteConn};
use crate::domain::ids::{ApiKeyId, AppId, ConsoleSessionId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = console_sessions)]
pub struct ConsoleSessionRow {
    pub id: ConsoleSessionId,
    pub app_id: AppId,
    pub api_key_id: ApiKeyId,
    pub created_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut WriteConn<'_>, row: &ConsoleSessionRow) -> QueryResult<()> {
    diesel::insert_into(console_sessions::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

/// Ends a session; whether it was still open.
pub fn end(
    conn: &mut WriteConn<'_>,
    id: &ConsoleSessionId,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        console_sessions::table
            .filter(console_sessions::id.eq(id))
            .filter(console_sessions::ended_at.is_null()),
    )
    .set(console_sessions::ended_at.eq(at))
    .execute(&mut **conn)
    .map(|n| n == 1)
}

pub fn find(
    conn: &mut DbConnection,
    id: &ConsoleSessionId,
) -> QueryResult<Option<ConsoleSessionRow>> {
    console_sessions::table
        .filter(console_sessions::id.eq(id))
        .select(ConsoleSessionRow::as_select())
        .first(conn)
        .optional()
}

/// Deletes sessions signed in before `before`.
pub fn prune(conn: &mut WriteConn<'_>, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(console_sessions::table.filter(console_sessions::created_at.lt(before)))
        .execute(&mut **conn)
}
