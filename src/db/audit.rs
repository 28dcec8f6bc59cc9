//! The audit trail (`audit_log`) and each chain's head (`audit_heads`).
//! Rows are only ever inserted; the head row of a chain is locked by the
//! write appending to it, which keeps every chain linear.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_heads, audit_log};
use super::{DbConnection, WriteConn};
use crate::domain::audit::{AuditRecord, Target, GENESIS};

/// A stored audit row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: String,
    pub chain: String,
    pub seq: i64,
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
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The record its hash covers; a row whose JSON columns do not parse
    /// answers `None` (the chain check reports it as broken).
    pub fn record(&self) -> Option<AuditRecord> {
        let targets: Vec<Target> = serde_json::from_str(&self.targets).ok()?;
        let fields: Vec<String> = serde_json::from_str(&self.fields).ok()?;
        Some(AuditRecord {
            id: self.id.clone(),
            chain: self.chain.clone(),
            seq: self.seq,
            created_at: self.created_at,
            actor: self.actor.clone(),
            api_key_id: self.api_key_id.clone(),
            os_user: self.os_user.clone(),
            action: self.action.clone(),
            targets,
            fields,
            outcome: self.outcome.clone(),
        })
    }

    /// The row of `record`, chained after `prev_hash`.
    pub fn of(record: &AuditRecord, prev_hash: &str) -> AuditRow {
        AuditRow {
            id: record.id.clone(),
            chain: record.chain.clone(),
            seq: record.seq,
            created_at: record.created_at,
            actor: record.actor.clone(),
            api_key_id: record.api_key_id.clone(),
            os_user: record.os_user.clone(),
            action: record.action.clone(),
            targets: serde_json::to_string(&record.targets).expect("targets serialize"),
            fields: serde_json::to_string(&record.fields).expect("fields serialize"),
            outcome: record.outcome.clone(),
            prev_hash: prev_hash.to_owned(),
            hash: record.hash_after(prev_hash),
        }
    }
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

/// Appends a row to its chain and moves the head (locked by `lock_head`).
pub fn append(conn: &mut WriteConn<'_>, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(row)
        .execute(&mut **conn)?;
    diesel::update(audit_heads::table.filter(audit_heads::chain.eq(&row.chain)))
        .set((
            audit_heads::seq.eq(row.seq),
            audit_heads::hash.eq(&row.hash),
        ))
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

/// Up to `limit` rows of a chain after `after_seq`, in `seq` order.
pub fn rows_after(
    conn: &mut DbConnection,
    chain: &str,
    after_seq: i64,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    audit_log::table
        .filter(audit_log::chain.eq(chain))
        .filter(audit_log::seq.gt(after_seq))
        .order(audit_log::seq)
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
}
