//! The audit trail (`audit_log`) and each chain's head (`audit_heads`).
//! Rows are inserted unlinked by the write they record, then linked once
//! (their `seq` and hashes set) by whoever holds the chain's head, which
//! keeps every chain linear; nothing else ever changes or deletes them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_heads, audit_log};
use super::{DbConnection, WriteConn};
use crate::domain::audit::{AuditRecord, Target, GENESIS};

/// A stored audit row. `seq`, `prev_hash` and `hash` are empty until the
/// linker gives the row its place in the chain, right after its write
/// commits.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: String,
    pub chain: String,
    pub seq: Option<i64>,
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
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    /// The record's first identity target, for the list's filter.
    pub identity_id: Option<String>,
    pub status: Option<i32>,
}

impl AuditRow {
    /// The record its hash covers (an unlinked row's `seq` reads 0); a row
    /// whose JSON columns do not parse answers `None` (the chain check
    /// reports it as broken).
    pub fn record(&self) -> Option<AuditRecord> {
        let targets: Vec<Target> = serde_json::from_str(&self.targets).ok()?;
        let fields: Vec<String> = serde_json::from_str(&self.fields).ok()?;
        Some(AuditRecord {
            id: self.id.clone(),
            chain: self.chain.clone(),
            seq: self.seq.unwrap_or(0),
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

    /// The row of `record` linked after `prev_hash` (`record.seq` set).
    pub fn linked(record: &AuditRecord, prev_hash: &str) -> AuditRow {
        AuditRow {
            seq: Some(record.seq),
            prev_hash: Some(prev_hash.to_owned()),
            hash: Some(record.hash_after(prev_hash)),
            ..AuditRow::unlinked(record)
        }
    }

    /// The row of `record`, not yet linked into its chain.
    pub fn unlinked(record: &AuditRecord) -> AuditRow {
        AuditRow {
            id: record.id.clone(),
            chain: record.chain.clone(),
            seq: None,
            created_at: record.created_at,
            actor: record.actor.clone(),
            api_key_id: record.api_key_id.clone(),
            os_user: record.os_user.clone(),
            action: record.action.clone(),
            targets: serde_json::to_string(&record.targets).expect("targets serialize"),
            fields: serde_json::to_string(&record.fields).expect("fields serialize"),
            outcome: record.outcome.clone(),
            prev_hash: None,
            hash: None,
            request_id: record.request_id.clone(),
            client_address: record.client_address.clone(),
            identity_id: record.identity_id().map(str::to_owned),
            status: record.status,
        }
    }
}

/// Writes a record (linked or not), in the write's transaction.
pub fn insert(conn: &mut WriteConn<'_>, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

/// The chains that have records waiting to be linked.
pub fn chains_with_unlinked(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    audit_log::table
        .filter(audit_log::seq.is_null())
        .select(audit_log::chain)
        .distinct()
        .load(conn)
}

/// A chain's records waiting to be linked, oldest first.
pub fn unlinked(conn: &mut DbConnection, chain: &str, limit: i64) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .filter(audit_log::chain.eq(chain))
        .filter(audit_log::seq.is_null())
        .order(audit_log::id)
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}

/// How many of a chain's records wait to be linked.
pub fn count_unlinked(conn: &mut DbConnection, chain: &str) -> QueryResult<i64> {
    audit_log::table
        .filter(audit_log::chain.eq(chain))
        .filter(audit_log::seq.is_null())
        .count()
        .get_result(conn)
}

/// Gives an unlinked record its place: `seq` after `prev_hash`, hashing to
/// `hash` (the chain's head is locked by the caller).
pub fn link(
    conn: &mut WriteConn<'_>,
    id: &str,
    seq: i64,
    prev_hash: &str,
    hash: &str,
) -> QueryResult<()> {
    diesel::update(audit_log::table.filter(audit_log::id.eq(id)))
        .set((
            audit_log::seq.eq(seq),
            audit_log::prev_hash.eq(prev_hash),
            audit_log::hash.eq(hash),
        ))
        .execute(&mut **conn)
        .map(|_| ())
}

/// Locks a chain's head until the transaction ends (making it if the chain
/// is new) and answers its `seq` and hash. On PostgreSQL a concurrent
/// writer of the same chain waits here; SQLite's writers run one at a time.
pub fn lock_head(conn: &mut WriteConn<'_>, chain: &str) -> QueryResult<(i64, String)> {
    let fresh = (
        audit_heads::chain.eq(chain),
        audit_heads::seq.eq(0i64),
        audit_heads::hash.eq(GENESIS),
    );
    // The same statements built per backend: each needs its own types, and
    // only PostgreSQL has (and needs) `FOR UPDATE`.
    macro_rules! insert_fresh {
        ($c:expr) => {
            diesel::insert_into(audit_heads::table)
                .values(fresh)
                .on_conflict_do_nothing()
                .execute($c)?
        };
    }
    let head = audit_heads::table
        .filter(audit_heads::chain.eq(chain))
        .select((audit_heads::seq, audit_heads::hash));
    match &mut **conn {
        DbConnection::Postgresql(c) => {
            insert_fresh!(c);
            head.for_update().first(c)
        }
        DbConnection::Sqlite(c) => {
            insert_fresh!(c);
            head.first(c)
        }
    }
}

/// Moves a chain's head (locked by `lock_head`) to its last linked record.
pub fn move_head(conn: &mut WriteConn<'_>, chain: &str, seq: i64, hash: &str) -> QueryResult<()> {
    diesel::update(audit_heads::table.filter(audit_heads::chain.eq(chain)))
        .set((audit_heads::seq.eq(seq), audit_heads::hash.eq(hash)))
        .execute(&mut **conn)
        .map(|_| ())
}

/// A chain's head: `(seq, hash)`, `None` for a chain with no row yet.
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

/// Up to `limit` linked rows of a chain after `after_seq` and up to
/// `up_to_seq`, in `seq` order.
pub fn rows_after(
    conn: &mut DbConnection,
    chain: &str,
    after_seq: i64,
    up_to_seq: i64,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .filter(audit_log::chain.eq(chain))
        .filter(audit_log::seq.gt(after_seq))
        .filter(audit_log::seq.le(up_to_seq))
        .order(audit_log::seq)
        .limit(limit)
        .select(AuditRow::as_select())
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
) -> QueryResult<Vec<AuditRow>> {
    let mut select = audit_log::table
        .filter(audit_log::chain.eq(chain))
        .filter(audit_log::seq.gt(query.after_seq))
        .select(AuditRow::as_select())
        .order(audit_log::seq.asc())
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
    audit_log::table
        .filter(audit_log::chain.eq(chain))
        .filter(audit_log::id.eq(id))
        .select(audit_log::seq)
        .first::<Option<i64>>(conn)
        .optional()
        .map(Option::flatten)
}
