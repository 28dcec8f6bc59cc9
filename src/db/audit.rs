//! The audit trail: records (`audit_log`), their places in their chains
//! (`audit_links`), the records waiting for one (`audit_pending`), and each
//! chain's head (`audit_heads`). Records and links are only ever inserted;
//! a link is written by whoever holds its chain's head, which keeps every
//! chain linear.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_heads, audit_links, audit_log, audit_pending};
use super::{DbConnection, WriteConn};
use crate::domain::audit::{AuditRecord, Target, GENESIS};

/// A stored audit record (what its hash covers, but its `seq`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: String,
    pub chain: String,
    pub created_at: NaiveDateTime,
    pub actor: String,
    pub api_key_id: Option<String>,
    pub os_user: Option<String>,
    pub action: String,
    /// JSON array of `{"type", "id"}`.
    pub targets: String,
    /// JSON array of field names.
    pub fields: String,
    pub outcome: String,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    /// The record's first identity target, for the list's filter.
    pub identity_id: Option<String>,
    pub status: Option<i32>,
}

/// A record's place in its chain.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_links)]
pub struct LinkRow {
    pub chain: String,
    pub seq: i64,
    pub record_id: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The record at `seq`; a row whose JSON columns do not parse answers
    /// `None` (the chain check reports it as broken).
    pub fn record(&self, seq: i64) -> Option<AuditRecord> {
        let targets: Vec<Target> = serde_json::from_str(&self.targets).ok()?;
        let fields: Vec<String> = serde_json::from_str(&self.fields).ok()?;
        Some(AuditRecord {
            id: self.id.clone(),
            chain: self.chain.clone(),
            seq,
            created_at: self.created_at,
            actor: self.actor.clone(),
            api_key_id: self.api_key_id.clone(),
            os_user: self.os_user.clone(),
            action: self.action.clone(),
            targets,
            fields,
            outcome: self.outcome.clone(),
            request_id: self.request_id.clone(),
            client_address: self.client_address.clone(),
            status: self.status,
        })
    }

    /// The row of `record` (its `seq` is its link's).
    pub fn of(record: &AuditRecord) -> AuditRow {
        AuditRow {
            id: record.id.clone(),
            chain: record.chain.clone(),
            created_at: record.created_at,
            actor: record.actor.clone(),
            api_key_id: record.api_key_id.clone(),
            os_user: record.os_user.clone(),
            action: record.action.clone(),
            targets: serde_json::to_string(&record.targets).expect("targets serialize"),
            fields: serde_json::to_string(&record.fields).expect("fields serialize"),
            outcome: record.outcome.clone(),
            request_id: record.request_id.clone(),
            client_address: record.client_address.clone(),
            identity_id: record.identity_id().map(str::to_owned),
            status: record.status,
        }
    }
}

impl LinkRow {
    /// `record`'s link after the record whose hash is `prev_hash`.
    pub fn of(record: &AuditRecord, prev_hash: &str) -> LinkRow {
        LinkRow {
            chain: record.chain.clone(),
            seq: record.seq,
            record_id: record.id.clone(),
            prev_hash: prev_hash.to_owned(),
            hash: record.hash_after(prev_hash),
        }
    }
}

/// Writes a record, in the write's transaction.
pub fn insert(conn: &mut WriteConn<'_>, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

/// Writes a record that waits for its link (PostgreSQL: the linker links
/// it after the commit) and lists it as waiting, in one statement: a round
/// trip less in every audited write than an INSERT each.
pub fn insert_waiting(conn: &mut WriteConn<'_>, row: &AuditRow) -> QueryResult<()> {
    use diesel::sql_types::{Integer, Nullable, Text, Timestamp};
    let statement = diesel::sql_query(
        "WITH record AS ( \
             INSERT INTO audit_log (id, chain, created_at, actor, api_key_id, os_user, action, \
                 targets, fields, outcome, request_id, client_address, identity_id, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             RETURNING id, chain) \
         INSERT INTO audit_pending (record_id, chain) SELECT id, chain FROM record",
    )
    .bind::<Text, _>(&row.id)
    .bind::<Text, _>(&row.chain)
    .bind::<Timestamp, _>(row.created_at)
    .bind::<Text, _>(&row.actor)
    .bind::<Nullable<Text>, _>(&row.api_key_id)
    .bind::<Nullable<Text>, _>(&row.os_user)
    .bind::<Text, _>(&row.action)
    .bind::<Text, _>(&row.targets)
    .bind::<Text, _>(&row.fields)
    .bind::<Text, _>(&row.outcome)
    .bind::<Nullable<Text>, _>(&row.request_id)
    .bind::<Nullable<Text>, _>(&row.client_address)
    .bind::<Nullable<Text>, _>(&row.identity_id)
    .bind::<Nullable<Integer>, _>(row.status);
    match &mut **conn {
        DbConnection::Postgresql(c) => statement.execute(c).map(|_| ()),
        // A data-modifying WITH is PostgreSQL's; SQLite takes two.
        DbConnection::Sqlite(c) => {
            diesel::insert_into(audit_log::table)
                .values(row)
                .execute(c)?;
            diesel::insert_into(audit_pending::table)
                .values((
                    audit_pending::record_id.eq(&row.id),
                    audit_pending::chain.eq(&row.chain),
                ))
                .execute(c)
                .map(|_| ())
        }
    }
}

/// Writes links (their chain's head is locked by the caller) and takes
/// those of `waited` off the waiting list (a record linked in its own
/// write never waited).
pub fn insert_links(
    conn: &mut WriteConn<'_>,
    links: &[LinkRow],
    waited: &[&str],
) -> QueryResult<()> {
    if links.is_empty() {
        return Ok(());
    }
    // A multi-row INSERT is built per backend (Diesel's multi-backend
    // connection has no batch insert).
    super::on_each_backend!(&mut **conn, c => diesel::insert_into(audit_links::table)
        .values(links)
        .execute(c))?;
    if waited.is_empty() {
        return Ok(());
    }
    diesel::delete(audit_pending::table.filter(audit_pending::record_id.eq_any(waited)))
        .execute(&mut **conn)
        .map(|_| ())
}

/// The chains that have records waiting to be linked.
pub fn chains_with_pending(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    audit_pending::table
        .select(audit_pending::chain)
        .distinct()
        .load(conn)
}

/// A chain's records waiting to be linked, oldest first.
pub fn pending(conn: &mut DbConnection, chain: &str, limit: i64) -> QueryResult<Vec<AuditRow>> {
    audit_pending::table
        .inner_join(audit_log::table)
        .filter(audit_pending::chain.eq(chain))
        .order(audit_pending::record_id)
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}

/// How many of a chain's records wait to be linked.
pub fn count_pending(conn: &mut DbConnection, chain: &str) -> QueryResult<i64> {
    audit_pending::table
        .filter(audit_pending::chain.eq(chain))
        .count()
        .get_result(conn)
}

/// Locks a chain's head until the transaction ends (making it if the chain
/// is new) and answers its `seq` and hash. On PostgreSQL a concurrent
/// linker of the same chain waits here; SQLite's writers run one at a time.
pub fn lock_head(conn: &mut WriteConn<'_>, chain: &str) -> QueryResult<(i64, String)> {
    let head = audit_heads::table
        .filter(audit_heads::chain.eq(chain))
        .select((audit_heads::seq, audit_heads::hash));
    // The head exists for every chain but a new one's first record: read
    // (and lock) it first, and make it only when it is not there. Only
    // PostgreSQL has (and needs) `FOR UPDATE`; the statements are built per
    // backend, each with its own types.
    macro_rules! lock_or_make {
        ($c:expr, $read:expr) => {{
            if let Some(found) = $read.first($c).optional()? {
                return Ok(found);
            }
            diesel::insert_into(audit_heads::table)
                .values((
                    audit_heads::chain.eq(chain),
                    audit_heads::seq.eq(0i64),
                    audit_heads::hash.eq(GENESIS),
                ))
                .on_conflict_do_nothing()
                .execute($c)?;
            // Made here, or by a linker of another replica just now.
            $read.first($c)
        }};
    }
    match &mut **conn {
        DbConnection::Postgresql(c) => lock_or_make!(c, head.for_update()),
        DbConnection::Sqlite(c) => lock_or_make!(c, head),
    }
}

/// Moves a chain's head (locked by `lock_head`) to its last link.
pub fn move_head(conn: &mut WriteConn<'_>, chain: &str, seq: i64, hash: &str) -> QueryResult<()> {
    diesel::update(audit_heads::table.filter(audit_heads::chain.eq(chain)))
        .set((audit_heads::seq.eq(seq), audit_heads::hash.eq(hash)))
        .execute(&mut **conn)
        .map(|_| ())
}

/// A chain's head: `(seq, hash)`, `None` for a chain with no record yet.
pub fn head(conn: &mut DbConnection, chain: &str) -> QueryResult<Option<(i64, String)>> {
    audit_heads::table
        .filter(audit_heads::chain.eq(chain))
        .select((audit_heads::seq, audit_heads::hash))
        .first(conn)
        .optional()
}

/// Every chain that has a head.
pub fn chains(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    audit_heads::table
        .select(audit_heads::chain)
        .order(audit_heads::chain)
        .load(conn)
}

/// Up to `limit` links of a chain after `after_seq` and up to `up_to_seq`,
/// in `seq` order, each with its record (`None`: the record is gone).
pub fn links_after(
    conn: &mut DbConnection,
    chain: &str,
    after_seq: i64,
    up_to_seq: i64,
    limit: i64,
) -> QueryResult<Vec<(LinkRow, Option<AuditRow>)>> {
    audit_links::table
        .left_join(audit_log::table)
        .filter(audit_links::chain.eq(chain))
        .filter(audit_links::seq.gt(after_seq))
        .filter(audit_links::seq.le(up_to_seq))
        .order(audit_links::seq)
        .limit(limit)
        .select((LinkRow::as_select(), Option::<AuditRow>::as_select()))
        .load(conn)
}

/// What `GET /audit-log` asks for, within one chain.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub identity_id: Option<String>,
    pub actions: Option<Vec<String>>,
    pub api_key_id: Option<String>,
    /// `created_at >= since`.
    pub since: Option<NaiveDateTime>,
    /// `created_at < until`.
    pub until: Option<NaiveDateTime>,
    /// Records after this `seq`.
    pub after_seq: i64,
    pub limit: i64,
}

/// A chain's linked records matching `query`, in chain order.
pub fn page(
    conn: &mut DbConnection,
    chain: &str,
    query: &AuditQuery,
) -> QueryResult<Vec<(LinkRow, AuditRow)>> {
    let mut select = audit_links::table
        .inner_join(audit_log::table)
        .filter(audit_links::chain.eq(chain))
        .filter(audit_links::seq.gt(query.after_seq))
        .select((LinkRow::as_select(), AuditRow::as_select()))
        .order(audit_links::seq.asc())
        .limit(query.limit)
        .into_boxed();
    if let Some(identity_id) = &query.identity_id {
        select = select.filter(audit_log::identity_id.eq(identity_id));
    }
    if let Some(actions) = &query.actions {
        select = select.filter(audit_log::action.eq_any(actions.clone()));
    }
    if let Some(key) = &query.api_key_id {
        select = select.filter(audit_log::api_key_id.eq(key));
    }
    if let Some(since) = query.since {
        select = select.filter(audit_log::created_at.ge(since));
    }
    if let Some(until) = query.until {
        select = select.filter(audit_log::created_at.lt(until));
    }
    select.load(conn)
}

/// The `seq` of one of a chain's linked records (a cursor).
pub fn seq_of(conn: &mut DbConnection, chain: &str, id: &str) -> QueryResult<Option<i64>> {
    audit_links::table
        .filter(audit_links::chain.eq(chain))
        .filter(audit_links::record_id.eq(id))
        .select(audit_links::seq)
        .first(conn)
        .optional()
}
