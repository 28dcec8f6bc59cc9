//! Idempotency-Key: a retried `POST` or `PATCH` changes nothing and answers
//! what the first answered.
//!
//! A request with a key first claims it, in a short write of its own: the
//! claim names the method, the path and a hash of the body, and holds the
//! key for [`CLAIM_LOCK`]. The request then runs; a request that writes
//! stores its answer in the transaction of its write
//! (`WritePath::run_answered`), so a committed change always has its answer
//! to replay, even when the process dies before answering. A request that
//! fails gives its claim up, so the key can be retried. Records live in
//! the database, so every replica sees them, and are pruned after
//! `KYC_IDEMPOTENCY_TTL_HOURS`.

use std::sync::Arc;

use crate::db::idempotency::{self as q, NewClaim};
use crate::db::{self};
use crate::domain::crypto::KeyRing;
use crate::domain::errors::Refusal;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::AppId;
use crate::error::ApiError;
use crate::services::write::{Actor, Answer, Operation, WritePath};

/// How long a claim holds its key while its request runs. A request
/// cannot take longer (body, database and storage deadlines are all
/// shorter); a process that died holding a claim frees the key after this.
pub const CLAIM_LOCK: chrono::Duration = chrono::Duration::seconds(60);

/// A request as its key's record describes it.
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    pub app_id: AppId,
    pub key: IdempotencyKey,
    pub method: String,
    pub path: String,
    /// SHA-256 of the body, hex.
    pub body_hash: String,
}

/// A key this request holds: its answer is to be stored under it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub app_id: AppId,
    pub key: String,
    /// Seals the stored answer (it may hold an identity's personal data).
    pub keys: Arc<KeyRing>,
}

impl Claim {
    /// The answer's body as stored: sealed by the server key for this app
    /// and key.
    pub fn seal_body(&self, body: &[u8]) -> Vec<u8> {
        self.keys
            .seal(body, &answer_context(&self.app_id, &self.key))
            .into_bytes()
    }
}

pub fn answer_context(app_id: &AppId, key: &str) -> Vec<u8> {
    format!("idempotency_keys/{app_id}/{key}").into_bytes()
}

/// A stored answer's body: opened, or as stored by a version that did not
/// seal answers.
fn open_body(
    keys: &KeyRing,
    app_id: &AppId,
    key: &str,
    stored: Vec<u8>,
) -> Result<Vec<u8>, ApiError> {
    match std::str::from_utf8(&stored) {
        Ok(text) if KeyRing::is_sealed(text) => {
            keys.open(text, &answer_context(app_id, key)).map_err(|e| {
                ApiError::internal(anyhow::anyhow!(
                    "the stored answer of an Idempotency-Key of app {app_id} does not open: {e}"
                ))
            })
        }
        _ => Ok(stored),
    }
}

/// How a keyed request goes on.
#[derive(Debug)]
pub enum Begun {
    /// The first with this key (or a retry of one that failed): run it.
    Claimed(Claim),
    /// A retry of a request that has answered: answer the same.
    Replay(Answer),
}

/// Claims the request's key, or finds its stored answer; refuses a key
/// used for a different request (`idempotency_key_reused`) or held by a
/// request still running (`idempotency_key_in_use`).
pub async fn begin(
    write: &WritePath,
    keys: Arc<KeyRing>,
    actor: Actor,
    request: KeyedRequest,
) -> Result<Begun, ApiError> {
    write
        .run(actor, Operation::IdempotencyClaim, move |tx| {
            let now = db::now();
            let claim = NewClaim {
                app_id: request.app_id.clone(),
                idempotency_key: request.key.as_str().to_owned(),
                method: request.method.clone(),
                path: request.path.clone(),
                body_hash: request.body_hash.clone(),
                locked_until: Some(now + CLAIM_LOCK),
                created_at: now,
            };
            let claimed = Claim {
                app_id: request.app_id.clone(),
                key: request.key.as_str().to_owned(),
                keys: keys.clone(),
            };
            if q::insert_claim(tx.conn(), &claim)? {
                return Ok(Begun::Claimed(claimed));
            }
            let Some(record) = q::find(tx.read(), &request.app_id, request.key.as_str())? else {
                // Pruned between the two statements: as good as in use.
                return Err(in_use());
            };
            if (record.method.as_str(), record.path.as_str(), record.body_hash.as_str())
                != (request.method.as_str(), request.path.as_str(), request.body_hash.as_str())
            {
                return Err(ApiError::refused(
                    Refusal::IdempotencyKeyReused,
                    format!(
                        "This Idempotency-Key was used for another request ({} {} with a different body, or another route); use a new key for a new request.",
                        record.method, record.path
                    ),
                ));
            }
            match (record.response_status, record.response_body) {
                (Some(status), body) => Ok(Begun::Replay(Answer {
                    status: u16::try_from(status).map_err(|_| {
                        ApiError::internal(anyhow::anyhow!("stored answer status {status}"))
                    })?,
                    body: open_body(&keys, &request.app_id, request.key.as_str(), body.unwrap_or_default())?,
                    stored: true,
                })),
                (None, _) if q::take_over(tx.conn(), &claim, now)? => Ok(Begun::Claimed(claimed)),
                (None, _) => Err(in_use()),
            }
        })
        .await
}

fn in_use() -> ApiError {
    ApiError::refused(
        Refusal::IdempotencyKeyInUse,
        "A request with this Idempotency-Key is still running; retry after it answers.",
    )
}

/// Stores the answer of a request that wrote nothing (a check, an upload
/// form): its own short write.
pub async fn store(
    write: &WritePath,
    actor: Actor,
    claim: Claim,
    answer: &Answer,
) -> Result<(), ApiError> {
    let (status, body) = (i32::from(answer.status), claim.seal_body(&answer.body));
    write
        .run(actor, Operation::IdempotencyClaim, move |tx| {
            Ok::<_, ApiError>(q::store_answer(
                tx.conn(),
                &claim.app_id,
                &claim.key,
                status,
                &body,
            )?)
        })
        .await
}

/// Gives up the claim of a request that failed, so the key can be retried.
pub async fn release(write: &WritePath, actor: Actor, claim: Claim) -> Result<(), ApiError> {
    write
        .run(actor, Operation::IdempotencyClaim, move |tx| {
            Ok::<_, ApiError>(q::release(tx.conn(), &claim.app_id, &claim.key)?)
        })
        .await
}

/// Deletes records older than the TTL; safe on every replica at once.
pub fn prune(write: &WritePath, ttl: chrono::Duration) -> Result<usize, ApiError> {
    let before = db::now() - ttl;
    write.run_blocking(Actor::Server, Operation::IdempotencyPrune, |tx| {
        Ok::<_, ApiError>(q::prune(tx.conn(), before)?)
    })
}
