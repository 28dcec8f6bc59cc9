//! The audit trail: a record of every write through the API or the CLI,
//! appended to its app's hash chain inside the write's own transaction
//! (called by the write path's `finish`), and its verification.

use crate::db::audit::{self as q, AuditRow};
use crate::db::{self, Db, WriteConn};
use crate::domain::audit::{AuditRecord, Break, ChainCheck, Target, SERVER_CHAIN};
use crate::domain::ids::AuditId;
use crate::error::ApiError;
use crate::services::write::{Actor, Change, Operation, Write};

/// What a committed write's record says of its outcome.
const COMMITTED: &str = "committed";

/// Whether a write is an action someone took (audited), rather than the
/// server's own bookkeeping (key usage stamps, deliveries, pruning,
/// Idempotency-Key claims).
fn audited(operation: Operation) -> bool {
    !matches!(
        operation,
        Operation::ApiKeyUse
            | Operation::EventsPrune
            | Operation::WebhookDispatch
            | Operation::IdempotencyClaim
            | Operation::IdempotencyPrune
    )
}

/// What a change touched, and the app it belongs to.
fn target(change: &Change) -> Option<(&str, Target)> {
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
        } => (app_id.as_str(), t("identity", identity_id.as_str())),
        Change::DocumentCreated {
            app_id,
            document_id,
            ..
        }
        | Change::DocumentRemoved {
            app_id,
            document_id,
            ..
        } => (app_id.as_str(), t("document", document_id.as_str())),
        Change::VerificationCreated {
            app_id,
            verification_id,
            ..
        }
        | Change::VerificationStatusChanged {
            app_id,
            verification_id,
            ..
        } => (app_id.as_str(), t("verification", verification_id.as_str())),
        Change::AppCreated { app_id } => (app_id.as_str(), t("app", app_id.as_str())),
        Change::ApiKeyCreated { app_id, key_id } | Change::ApiKeyRevoked { app_id, key_id } => {
            (app_id.as_str(), t("api_key", key_id.as_str()))
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
        } => (app_id.as_str(), t("webhook_endpoint", endpoint_id.as_str())),
        Change::ServerSecretCreated { name } => (SERVER_CHAIN, t("server_secret", name)),
        // Bookkeeping, or too many to list (rotation's batches say how
        // many in their own record's fields).
        Change::ApiKeyUsed { .. }
        | Change::WebhookDeliveryScheduled { .. }
        | Change::SealedAgain { .. } => return None,
    })
}

/// Appends the record of a write to its chain: the app of the key that
/// made it, or of what it changed, or the server's.
pub fn record(conn: &mut WriteConn<'_>, write: &Write<'_>) -> Result<(), ApiError> {
    if !audited(write.operation) {
        return Ok(());
    }
    let mut chain = None;
    let mut targets: Vec<Target> = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    for change in write.changes {
        if let Some((app, target)) = target(change) {
            chain.get_or_insert_with(|| app.to_owned());
            if !targets.contains(&target) {
                targets.push(target);
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
    let (actor, api_key_id, os_user) = match write.actor {
        Actor::Api { app_id, key_id } => {
            chain = Some(app_id.as_str().to_owned());
            ("api", Some(key_id.as_str().to_owned()), None)
        }
        Actor::Cli { os_user } => ("cli", None, Some(os_user.clone())),
        Actor::Server => ("server", None, None),
    };
    let chain = chain.unwrap_or_else(|| SERVER_CHAIN.to_owned());
    let (seq, previous) = q::lock_head(conn, &chain)?;
    let record = AuditRecord {
        id: AuditId::new().as_str().to_owned(),
        chain,
        seq: seq + 1,
        created_at: db::now(),
        actor: actor.to_owned(),
        api_key_id,
        os_user,
        action: write.operation.name().to_owned(),
        targets,
        fields,
        outcome: COMMITTED.to_owned(),
    };
    q::append(conn, &AuditRow::of(&record, &previous))?;
    Ok(())
}

/// One chain's verification.
#[derive(Debug)]
pub struct ChainReport {
    pub chain: String,
    pub verified: u64,
    pub broken: Option<Break>,
}

/// Recomputes every chain (or one), row by row in `seq` order, each up to
/// its first break.
pub fn verify(db: &Db, only: Option<&str>) -> Result<Vec<ChainReport>, ApiError> {
    const BATCH: i64 = 1000;
    let mut conn = db.checkout()?;
    let chains = match only {
        Some(chain) => vec![chain.to_owned()],
        None => q::chains(&mut conn)?,
    };
    let mut reports = Vec::new();
    for chain in chains {
        let mut check = ChainCheck::default();
        let mut after = 0;
        let broken = 'walk: loop {
            let rows = q::rows_after(&mut conn, &chain, after, BATCH)?;
            let Some(last) = rows.last() else {
                let (seq, hash) = q::head(&mut conn, &chain)?
                    .unwrap_or((0, crate::domain::audit::GENESIS.to_owned()));
                break 'walk check.finish(seq, &hash).err();
            };
            after = last.seq;
            for row in &rows {
                let Some(record) = row.record() else {
                    break 'walk Some(Break {
                        record_id: Some(row.id.clone()),
                        seq: row.seq,
                        expected: "targets and fields as JSON arrays".into(),
                        found: format!("targets {} fields {}", row.targets, row.fields),
                    });
                };
                if let Err(broken) = check.next(&record, &row.prev_hash, &row.hash) {
                    break 'walk Some(broken);
                }
            }
        };
        reports.push(ChainReport {
            chain,
            verified: check.verified,
            broken,
        });
    }
    Ok(reports)
}

/// `GET /audit-log/head`: the app's chain head, for anchoring elsewhere.
pub fn head(
    conn: &mut db::DbConnection,
    app_id: &crate::domain::ids::AppId,
) -> Result<(i64, String), ApiError> {
    Ok(q::head(conn, app_id.as_str())?.unwrap_or((0, crate::domain::audit::GENESIS.to_owned())))
}
