//! Queries for apps, their API keys and the service's own secrets.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_keys, apps, server_secrets};
use super::{now, DbConnection, WriteConn};
use crate::domain::api_key::{KeyHash, Scopes};
use crate::domain::ids::{ApiKeyId, AppId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = apps)]
pub struct AppRow {
    pub id: AppId,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    pub app_id: AppId,
    pub key_hash: String,
    pub key_prefix: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// When the key was last used, to the hour (see `stamp_key_use`).
    pub last_used_at: Option<NaiveDateTime>,
    pub scopes: Scopes,
}

pub fn insert_app(conn: &mut WriteConn<'_>, name: &str) -> QueryResult<AppRow> {
    let row = AppRow {
        id: AppId::new(),
        name: name.to_string(),
        created_at: now(),
    };
    diesel::insert_into(apps::table)
        .values(&row)
        .execute(&mut **conn)?;
    Ok(row)
}

pub fn find_app(conn: &mut DbConnection, app_id: &AppId) -> QueryResult<Option<AppRow>> {
    apps::table
        .find(app_id)
        .select(AppRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_app_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<AppRow>> {
    apps::table
        .filter(apps::name.eq(name))
        .select(AppRow::as_select())
        .first(conn)
        .optional()
}

pub fn any_app_exists(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(apps::table.select(apps::id))).get_result(conn)
}

/// Every app with its number of active (unrevoked) keys, oldest first.
pub fn list_apps(conn: &mut DbConnection) -> QueryResult<Vec<(AppRow, i64)>> {
    let all: Vec<AppRow> = apps::table
        .select(AppRow::as_select())
        .order((apps::created_at.asc(), apps::id.asc()))
        .load(conn)?;
    let counts: Vec<(AppId, i64)> = api_keys::table
        .filter(api_keys::revoked_at.is_null())
        .group_by(api_keys::app_id)
        .select((api_keys::app_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(all
        .into_iter()
        .map(|app| {
            let active = counts
                .iter()
                .find(|(id, _)| *id == app.id)
                .map_or(0, |(_, n)| *n);
            (app, active)
        })
        .collect())
}

pub fn insert_api_key(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    hash: &KeyHash,
    prefix: &str,
    scopes: &Scopes,
) -> QueryResult<ApiKeyRow> {
    let row = ApiKeyRow {
        id: ApiKeyId::new(),
        app_id: app_id.clone(),
        key_hash: hash.as_str().to_string(),
        key_prefix: prefix.to_string(),
        created_at: now(),
        revoked_at: None,
        last_used_at: None,
        scopes: scopes.clone(),
    };
    diesel::insert_into(api_keys::table)
        .values(&row)
        .execute(&mut **conn)?;
    Ok(row)
}

/// The keys of an app, oldest first.
pub fn keys_of_app(conn: &mut DbConnection, app_id: &AppId) -> QueryResult<Vec<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::app_id.eq(app_id))
        .order((api_keys::created_at.asc(), api_keys::id.asc()))
        .select(ApiKeyRow::as_select())
        .load(conn)
}

pub fn find_key_by_hash(conn: &mut DbConnection, hash: &KeyHash) -> QueryResult<Option<ApiKeyRow>> {
    // Every authenticated request runs this: straight on the backend.
    super::on_each_backend!(conn, c => api_keys::table
        .filter(api_keys::key_hash.eq(hash.as_str()))
        .select(ApiKeyRow::as_select())
        .first(c)
        .optional())
}

/// A key by its public id (revoked ones too).
pub fn find_key(conn: &mut DbConnection, id: &ApiKeyId) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::id.eq(id))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}

/// Notes that a key was used at `at`, unless a use since `stale_before` is
/// already noted (so concurrent stamps of one key write once); returns
/// whether it wrote.
pub fn stamp_key_use(
    conn: &mut WriteConn<'_>,
    key_id: &ApiKeyId,
    at: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(
        api_keys::table.filter(api_keys::id.eq(key_id)).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(stale_before)),
        ),
    )
    .set(api_keys::last_used_at.eq(at))
    .execute(&mut **conn)?;
    Ok(updated == 1)
}

/// Marks a key revoked; returns the key as it was before, or `None` when no
/// such key exists. Revoking an already revoked key keeps its original
/// revocation time.
pub fn revoke_api_key(
    conn: &mut WriteConn<'_>,
    key_id: &ApiKeyId,
) -> QueryResult<Option<ApiKeyRow>> {
    let key = api_keys::table
        .find(key_id)
        .select(ApiKeyRow::as_select())
        .first(&mut **conn)
        .optional()?;
    if key.as_ref().is_some_and(|k| k.revoked_at.is_none()) {
        diesel::update(
            api_keys::table
                .find(key_id)
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(now()))
        .execute(&mut **conn)?;
    }
    Ok(key)
}

pub fn find_secret(conn: &mut DbConnection, name: &str) -> QueryResult<Option<String>> {
    server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .first(conn)
        .optional()
}

pub fn insert_secret(conn: &mut WriteConn<'_>, name: &str, value: &str) -> QueryResult<()> {
    diesel::insert_into(server_secrets::table)
        .values((
            server_secrets::name.eq(name),
            server_secrets::value.eq(value),
            server_secrets::created_at.eq(now()),
        ))
        .execute(&mut **conn)
        .map(|_| ())
}
