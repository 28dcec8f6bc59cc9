//! The audit trail: a record of every write through the API or the CLI and
//! of every sensitive read, written in the write's own transaction (by the
//! write path's `finish`) and linked into its app's hash chain; its
//! verification and its list.
//!
//! Where writers run at once (PostgreSQL), linking is a second step: a
//! record linked inside its write's transaction holds the chain's head
//! until that transaction commits, so every write of an app would wait for
//! the commit of the one before (a quarter of the create throughput,
//! measured). Written unlinked, writes do not wait for each other; the
//! linker takes the head for one short transaction and links every record
//! it finds waiting, in `id` (time) order: the chain is as linear as before
//! and a record's place is fixed once given. A record waits at most until
//! the next linker runs: the write path wakes this process's linker after
//! each audited commit (the CLI links its own), and every server's
//! maintenance links whatever a killed process left. Where writes are
//! serial (SQLite), the write's transaction already excludes every other
//! writer, so the record is linked in place: a second transaction would
//! only cost.

use crate::db::audit::{self as q, AuditQuery, AuditRow, LinkRow};
use crate::db::{self, Db, DbConnection, WriteConn};
use crate::domain::audit::{
    AuditRecord, Break, ChainCheck, Outcome, Target, GENESIS, SERVER_CHAIN,
};
use crate::domain::errors::Refusal;
use crate::domain::ids::{AppId, AuditId};
use crate::domain::time::parse_timestamp;
use crate::error::{ApiError, FieldError};
use crate::services::write::{Actor, Change, Operation, Write, WritePath};

/// Whether a write is an action someone took (audited), rather than the
/// server's own bookkeeping (key usage stamps, deliveries, pruning,
/// Idempotency-Key claims, linking the audit trail itself).
pub fn audited(operation: Operation) -> bool {
    !matches!(
        operation,
        Operation::ApiKeyUse
            | Operation::EventsPrune
            | Operation::WebhookDispatch
            | Operation::IdempotencyClaim
            | Operation::IdempotencyPrune
            | Operation::ConsoleSessionPrune
            | Operation::AuditLink
    )
}

/// What a change touched (its identity first, for a document or a
/// verification), and the app it belongs to.
fn targets_of(change: &Change) -> Option<(&str, Vec<Target>)> {
    let t = |kind: &str, id: &str| Target {
        kind: kind.to_owned(),
        id: id.to_owned(),
    };
    Some(match change {
        Change::IdentityCreated {
            app_id,
            identity_id,
        }
        | Change::IdentityUpdated {
            app_id,
            identity_id,
            ..
        }
        | Change::IdentityDeleted {
            app_id,
            identity_id,
        }
        | Change::IdentityErased {
            app_id,
            identity_id,
        } => (app_id.as_str(), vec![t("identity", identity_id.as_str())]),
        Change::DocumentCreated {
            app_id,
            identity_id,
            document_id,
        }
        | Change::DocumentRemoved {
            app_id,
            identity_id,
            document_id,
        } => (
            app_id.as_str(),
            vec![
                t("identity", identity_id.as_str()),
                t("document", document_id.as_str()),
            ],
        ),
        Change::VerificationCreated {
            app_id,
            identity_id,
            verification_id,
            ..
        }
        | Change::VerificationStatusChanged {
            app_id,
            identity_id,
            verification_id,
            ..
        } => (
            app_id.as_str(),
            vec![
                t("identity", identity_id.as_str()),
                t("verification", verification_id.as_str()),
            ],
        ),
        Change::AppCreated { app_id } => (app_id.as_str(), vec![t("app", app_id.as_str())]),
        Change::ConsoleSessionStarted { app_id, session_id }
        | Change::ConsoleSessionEnded { app_id, session_id } => (
            app_id.as_str(),
            vec![t("console_session", session_id.as_str())],
        ),
        Change::ApiKeyCreated { app_id, key_id } | Change::ApiKeyRevoked { app_id, key_id } => {
            (app_id.as_str(), vec![t("api_key", key_id.as_str())])
        }
        Change::WebhookEndpointCreated {
            app_id,
            endpoint_id,
        }
        | Change::WebhookEndpointUpdated {
            app_id,
            endpoint_id,
        }
        | Change::WebhookEndpointDeleted {
            app_id,
            endpoint_id,
        }
        | Change::WebhookSecretRotated {
            app_id,
            endpoint_id,
        } => (
            app_id.as_str(),
            vec![t("webhook_endpoint", endpoint_id.as_str())],
        ),
        Change::ServerSecretCreated { name } => (SERVER_CHAIN, vec![t("server_secret", name)]),
        // Bookkeeping, or too many to list (rotation's batches say how
        // many in their own record's fields).
        Change::ApiKeyUsed { .. }
        | Change::WebhookDeliveryScheduled { .. }
        | Change::SealedAgain { .. } => return None,
    })
}

/// Writes the record of a write (unlinked; see the module's comment): on
/// the chain of the app of the key that made it, or of what it changed, or
/// the server's.
pub fn record(conn: &mut WriteConn<'_>, write: &Write<'_>) -> Result<(), ApiError> {
    if !audited(write.operation) {
        return Ok(());
    }
    let mut chain = None;
    let mut targets: Vec<Target> = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    for change in write.changes {
        if let Some((app, touched)) = targets_of(change) {
            chain.get_or_insert_with(|| app.to_owned());
            for target in touched {
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
        match change {
            Change::IdentityUpdated {
                fields: changed, ..
            } => {
                for field in changed {
                    if !fields.iter().any(|f| f == field) {
                        fields.push((*field).to_owned());
                    }
                }
            }
            Change::SealedAgain { what, count } => fields.push(format!("{what}: {count}")),
            _ => {}
        }
    }
    // What the use case noted besides its changes (a read's object, a
    // relation's person), after what it changed.
    for target in &write.audit.targets {
        if !targets.contains(target) {
            targets.push(target.clone());
        }
    }
    let (actor, api_key_id, os_user, request) = match write.actor {
        Actor::Api {
            app_id,
            key_id,
            request,
        } => {
            chain = Some(app_id.as_str().to_owned());
            ("api", Some(key_id.as_str().to_owned()), None, Some(request))
        }
        Actor::SignedUrl { app_id, request } => {
            chain = app_id.as_ref().map(|app| app.as_str().to_owned());
            ("signed_url", None, None, Some(request))
        }
        Actor::Cli { os_user } => ("cli", None, Some(os_user.clone()), None),
        Actor::Server => ("server", None, None, None),
    };
    let record = AuditRecord {
        id: AuditId::new().as_str().to_owned(),
        chain: chain.unwrap_or_else(|| SERVER_CHAIN.to_owned()),
        seq: 0,
        created_at: db::now(),
        actor: actor.to_owned(),
        api_key_id,
        os_user,
        action: write.operation.name().to_owned(),
        targets,
        fields,
        outcome: write.audit.outcome.as_str().to_owned(),
        request_id: request.and_then(|r| r.request_id.clone()),
        client_address: request.and_then(|r| r.client_address.clone()),
        status: write.audit.status.map(i32::from),
    };
    if conn.holds_the_only_write_lock() {
        // SQLite: this transaction already excludes every other writer,
        // so the head is free to take; linking here saves the linker's own
        // transaction (a sixth of SQLite's create throughput, measured).
        let chain = record.chain.clone();
        link_waiting(conn, &chain, Some(record))?;
    } else {
        q::insert_waiting(conn, &AuditRow::of(&record))?;
    }
    Ok(())
}

/// Records a sensitive read (a write of its audit record only).
pub async fn record_read(
    write: &WritePath,
    actor: Actor,
    operation: Operation,
    outcome: Outcome,
    status: u16,
    targets: Vec<Target>,
) -> Result<(), ApiError> {
    write
        .run(actor, operation, move |tx| {
            tx.note_read(outcome, status, targets);
            Ok::<_, ApiError>(())
        })
        .await
}

/// Records linked per transaction: enough that a burst of writes is linked
/// in one, few enough that the head is never held long.
const LINK_BATCH: i64 = 500;

/// Links every record waiting, chain by chain; answers how many. Safe to
/// run in any number of processes at once: each chain's head is locked
/// for its batch, and a batch reads what is waiting only once it holds it.
pub fn link_pending(write: &WritePath) -> Result<usize, ApiError> {
    let chains = {
        let mut conn = write.db().checkout()?;
        q::chains_with_pending(&mut conn)?
    };
    let mut linked = 0;
    for chain in chains {
        loop {
            let batch = link_batch(write, &chain)?;
            linked += batch;
            if (batch as i64) < LINK_BATCH {
                break;
            }
        }
    }
    Ok(linked)
}

/// Links up to a batch of one chain's waiting records in a transaction
/// of its own.
fn link_batch(write: &WritePath, chain: &str) -> Result<usize, ApiError> {
    write.run_blocking(Actor::Server, Operation::AuditLink, |tx| {
        link_waiting(tx.conn(), chain, None)
    })
}

/// Takes a chain's head until the transaction ends and links up to a batch
/// of its waiting records, oldest first, then appends `new` (linked).
fn link_waiting(
    conn: &mut WriteConn<'_>,
    chain: &str,
    new: Option<AuditRecord>,
) -> Result<usize, ApiError> {
    let (mut seq, mut hash) = q::lock_head(conn, chain)?;
    let mut links = Vec::new();
    let waiting = q::pending(conn, chain, LINK_BATCH)?;
    let mut waited: Vec<&str> = Vec::with_capacity(waiting.len());
    for row in &waiting {
        // Only a row edited by hand fails to parse; it stays unlinked (and
        // `audit verify` counts it) rather than stop the chain.
        let Some(record) = row.record(seq + 1) else {
            tracing::error!(record_id = %row.id, "an audit record does not parse; left unlinked");
            continue;
        };
        let link = LinkRow::of(&record, &hash);
        (seq, hash) = (link.seq, link.hash.clone());
        links.push(link);
        waited.push(&row.id);
    }
    if let Some(mut record) = new {
        record.seq = seq + 1;
        q::insert(conn, &AuditRow::of(&record))?;
        let link = LinkRow::of(&record, &hash);
        (seq, hash) = (link.seq, link.hash.clone());
        links.push(link);
    }
    if links.is_empty() {
        return Ok(0);
    }
    q::insert_links(conn, &links, &waited)?;
    q::move_head(conn, chain, seq, &hash)?;
    Ok(links.len())
}

/// How long the linker waits, once woken, for more records to link in
/// the same round: a record is linked within about this long of its commit.
const LINK_GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// This process's linker: links what waits each time an audited write
/// commits (wake-ups while it works fold into one more round).
pub fn spawn_linker(write: WritePath) {
    let woken = write.audit_written();
    tokio::spawn(async move {
        loop {
            woken.notified().await;
            // Lets the writes of the next few milliseconds join this
            // round: under load one round links dozens of records instead
            // of one or two (each round is a transaction of its own).
            tokio::time::sleep(LINK_GATHER).await;
            let write = write.clone();
            match tokio::task::spawn_blocking(move || link_pending(&write)).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "linking audit records failed; the next write or maintenance retries")
                }
                Err(err) => tracing::error!(error = %err, "the audit linker panicked"),
            }
        }
    });
}

/// One chain's verification.
#[derive(Debug)]
pub struct ChainReport {
    pub chain: String,
    pub verified: u64,
    pub broken: Option<Break>,
    /// Records not yet given their place (written since the last link,
    /// or by a process that died before linking them).
    pub unlinked: i64,
}

/// Recomputes every chain (or one), row by row in `seq` order up to the
/// head as read first (records linked meanwhile are the next run's), each
/// up to its first break.
pub fn verify(db: &Db, only: Option<&str>) -> Result<Vec<ChainReport>, ApiError> {
    const BATCH: i64 = 1000;
    let mut conn = db.checkout()?;
    let chains = match only {
        Some(chain) => vec![chain.to_owned()],
        None => q::chains(&mut conn)?,
    };
    let mut reports = Vec::new();
    for chain in chains {
        let (head_seq, head_hash) = q::head(&mut conn, &chain)?.unwrap_or((0, GENESIS.to_owned()));
        let mut check = ChainCheck::default();
        let mut after = 0;
        let broken = 'walk: loop {
            let rows = q::links_after(&mut conn, &chain, after, head_seq, BATCH)?;
            let Some((last, _)) = rows.last() else {
                break 'walk check.finish(head_seq, &head_hash).err();
            };
            after = last.seq;
            for (link, row) in &rows {
                let Some(row) = row else {
                    break 'walk Some(Break {
                        record_id: Some(link.record_id.clone()),
                        seq: link.seq,
                        expected: "the record this link names".into(),
                        found: "no record".into(),
                    });
                };
                let Some(record) = row.record(link.seq) else {
                    break 'walk Some(Break {
                        record_id: Some(row.id.clone()),
                        seq: link.seq,
                        expected: "targets and fields as JSON arrays".into(),
                        found: format!("targets {} fields {}", row.targets, row.fields),
                    });
                };
                if let Err(broken) = check.next(
                    &record,
                    &link.prev_hash,
                    &link.hash,
                    row.identity_id.as_deref(),
                ) {
                    break 'walk Some(broken);
                }
            }
        };
        let unlinked = q::count_pending(&mut conn, &chain)?;
        reports.push(ChainReport {
            chain,
            verified: check.verified,
            broken,
            unlinked,
        });
    }
    Ok(reports)
}

/// `GET /audit-log/head`: the app's chain head (`seq`, hash), for
/// anchoring elsewhere.
pub fn head(conn: &mut DbConnection, app_id: &AppId) -> Result<(i64, String), ApiError> {
    Ok(q::head(conn, app_id.as_str())?.unwrap_or((0, GENESIS.to_owned())))
}

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

/// A page of `GET /audit-log`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub data: Vec<crate::views::AuditRecordView>,
    /// More records matched than this page holds: ask again with the last
    /// one's id as `page[after]`.
    pub has_more: bool,
}

/// `GET /audit-log`: the app's linked records, in chain order (a record
/// is listed once linked, so a client paging with `page[after]` never
/// misses one that was linked late).
pub fn list(
    conn: &mut DbConnection,
    app_id: &AppId,
    query_string: &str,
) -> Result<AuditPage, ApiError> {
    let (mut query, after, size) = parse_query(query_string)?;
    let chain = app_id.as_str();
    if let Some(after) = after {
        query.after_seq = q::seq_of(conn, chain, after.as_str())?.ok_or_else(|| {
            ApiError::refused(
                Refusal::AuditRecordNotFound,
                "page[after] names no linked audit record of this app.",
            )
        })?;
    }
    query.limit = size + 1;
    let mut rows = q::page(conn, chain, &query)?;
    let has_more = rows.len() as i64 > size;
    rows.truncate(size as usize);
    let data = rows
        .into_iter()
        .map(|(link, row)| {
            let id = row.id.clone();
            crate::views::AuditRecordView::of(link, row).ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("audit record {id} does not parse"))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(AuditPage { data, has_more })
}

/// The actions a record can name: every audited operation's.
pub fn actions() -> impl Iterator<Item = &'static str> {
    Operation::ALL
        .iter()
        .filter(|op| audited(**op))
        .map(|op| op.name())
}

/// `filter[identityId]`, `filter[action]` (`in:a,b` or one),
/// `filter[apiKeyId]`, `filter[createdAt][gte]` and `[lt]` (RFC 3339
/// times: a range as two parameters, each a plain value a client library
/// can type), `page[after]` (a record id), `page[size]` (1 to 1000);
/// anything else is refused.
fn parse_query(query_string: &str) -> Result<(AuditQuery, Option<AuditId>, i64), ApiError> {
    let mut query = AuditQuery::default();
    let (mut after, mut size) = (None, DEFAULT_PAGE);
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (name, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
        let (name, value) = (name.as_ref(), value.as_ref());
        if !names.insert(name.to_owned()) {
            problems.push(FieldError::new(name, "is given more than once"));
            continue;
        }
        match name {
            "filter[identityId]" => match crate::domain::ids::IdentityId::parse(value) {
                Some(id) => query.identity_id = Some(id.as_str().to_owned()),
                None => problems.push(FieldError::new(name, "must be an identity id (a UUID)")),
            },
            "filter[apiKeyId]" => match crate::domain::ids::ApiKeyId::parse(value) {
                Some(id) => query.api_key_id = Some(id.as_str().to_owned()),
                None => problems.push(FieldError::new(name, "must be an API key id (a UUID)")),
            },
            "filter[action]" => {
                let list = value.strip_prefix("in:").unwrap_or(value);
                let mut chosen = Vec::new();
                for action in list.split(',') {
                    match actions().find(|known| *known == action) {
                        Some(known) => chosen.push(known.to_owned()),
                        None => problems.push(FieldError::new(
                            name,
                            format!(
                                "{action:?} is not an audited action; one of {}",
                                actions().collect::<Vec<_>>().join(", ")
                            ),
                        )),
                    }
                }
                query.actions = Some(chosen);
            }
            "filter[createdAt][gte]" | "filter[createdAt][lt]" => match parse_timestamp(value) {
                Some(time) if name.ends_with("[gte]") => query.since = Some(time),
                Some(time) => query.until = Some(time),
                None => problems.push(FieldError::new(
                    name,
                    "must be an RFC 3339 time (2026-12-01T00:00:00Z)",
                )),
            },
            "page[after]" => match AuditId::parse(value) {
                Some(id) => after = Some(id),
                None => problems.push(FieldError::new(name, "must be an audit record id (a UUID)")),
            },
            "page[size]" => match value.parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => size = n,
                _ => problems.push(FieldError::new(
                    name,
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )),
            },
            other => problems.push(FieldError::new(
                other,
                "is not a parameter of this list (filter[identityId], filter[action], filter[apiKeyId], filter[createdAt][gte], filter[createdAt][lt], page[after], page[size])",
            )),
        }
    }
    if problems.is_empty() {
        Ok((query, after, size))
    } else {
        Err(ApiError::Validation(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::format_timestamp;

    #[test]
    fn query_parameters_are_checked() {
        let (q, after, size) = parse_query(
            "filter[action]=in:identity.create,identity.patch&filter[createdAt][gte]=2026-12-01T00:00:00Z&filter[createdAt][lt]=2026-12-02T00:00:00%2B01:00&page[size]=5",
        )
        .unwrap();
        assert_eq!(
            q.actions,
            Some(vec![
                "identity.create".to_owned(),
                "identity.patch".to_owned()
            ])
        );
        assert_eq!(
            format_timestamp(q.since.unwrap()),
            "2026-12-01T00:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(q.until.unwrap()),
            "2026-12-01T23:00:00.000Z"
        );
        assert_eq!((after, size), (None, 5));
        assert_eq!(parse_query("").unwrap().2, DEFAULT_PAGE);
        for bad in [
            "filter[action]=identity.made",
            // Bookkeeping is not audited, so it is not a filter value.
            "filter[action]=api_key.use",
            "filter[createdAt]=2026-12-01T00:00:00Z",
            "filter[createdAt][gt]=2026-12-01T00:00:00Z",
            "filter[createdAt][gte]=2026-12-01T00:00:00Z&filter[createdAt][gte]=2026-12-02T00:00:00Z",
            "filter[createdAt][gte]=yesterday",
            "filter[identityId]=1",
            "filter[apiKeyId]=x",
            "page[size]=0",
            "page[size]=1001",
            "page[after]=nope",
            "sort=-seq",
            "page[size]=5&page[size]=6",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_and_changes_are_audited_bookkeeping_is_not() {
        for op in [
            Operation::IdentityCreate,
            Operation::IdentityErase,
            Operation::DocumentDownloadUrl,
            Operation::DocumentServe,
            Operation::IdentityReadErased,
            Operation::ApiKeyRevoke,
        ] {
            assert!(audited(op), "{op:?}");
        }
        for op in [
            Operation::AuditLink,
            Operation::ApiKeyUse,
            Operation::WebhookDispatch,
        ] {
            assert!(!audited(op), "{op:?}");
        }
    }
}
