//! The write path: the one way a change reaches the database.
//!
//! Every use case that changes data, from the API or the CLI, runs through
//! [`WritePath::run`] (or `run_blocking`): it opens the write transaction,
//! hands the use case a [`Tx`], lets the use case record what it changed
//! ([`Change`]), and then, still inside the transaction, runs what must
//! commit with the change (`finish`): the observers (the event rows), the
//! audit record (`services::audit`), and the idempotency record of a
//! request that answers what it wrote. If any of it fails, nothing of the
//! change commits.
//!
//! Query functions that write take a `WriteConn`, which only a write
//! transaction hands out, and only this module opens one (a test holds the
//! source to that), so there is no other way to write.

use std::sync::Arc;

use diesel::result::Error as DieselError;

use crate::db::{ConnectionFault, Db, DbConnection, DbError, WriteConn};
use crate::domain::audit::{Outcome, RequestContext, Target};
use crate::domain::crypto::DataKey;
use crate::domain::ids::{
    ApiKeyId, AppId, ConsoleSessionId, DeliveryId, DocumentId, IdentityId, VerificationId,
    WebhookEndpointId,
};
use crate::error::ApiError;
use crate::views::{DocumentView, IdentityView, VerificationView};

/// Who makes a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A request authenticated with one of the app's API keys.
    Api {
        app_id: AppId,
        key_id: ApiKeyId,
        request: RequestContext,
    },
    /// A request that carried a signed URL (the local storage backend's
    /// download): for an object of this app when the signature held, else
    /// of no app anyone can vouch for (the path is the caller's word).
    SignedUrl {
        app_id: Option<AppId>,
        request: RequestContext,
    },
    /// The command line, run by this operating-system user.
    Cli { os_user: String },
    /// The server itself (start-up: the first app, generated secrets).
    Server,
}

impl Actor {
    /// The command line's actor: the user running it, as the OS says.
    pub fn cli() -> Actor {
        let os_user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".to_string());
        Actor::Cli { os_user }
    }
}

/// What a write is for: one per use case that changes data, and one per
/// sensitive read (which writes only its audit record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::VariantArray)]
pub enum Operation {
    IdentityCreate,
    IdentityPatch,
    IdentityDelete,
    IdentityErase,
    /// `kyc-api encryption rotate`: one batch.
    EncryptionRotate,
    IdentityBlock,
    IdentityUnblock,
    VerificationDecide,
    SandboxApprove,
    SandboxReject,
    AppCreate,
    ApiKeyCreate,
    ApiKeyRevoke,
    /// The hourly "last used" stamp of a key (`tenancy::KeyUsage`).
    ApiKeyUse,
    /// Deleting events older than the retention period.
    EventsPrune,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    WebhookEndpointDelete,
    WebhookSecretRotate,
    EventRedeliver,
    /// The dispatcher claiming deliveries and recording attempts.
    WebhookDispatch,
    /// Claiming an Idempotency-Key, giving it up, or storing the answer of
    /// a request that wrote nothing.
    IdempotencyClaim,
    /// Deleting Idempotency-Key records older than their TTL.
    IdempotencyPrune,
    Bootstrap,
    ServerSecretCreate,
    /// Linking audit records into their chain (`services::audit::link`).
    AuditLink,
    /// A read: a document's download URL issued.
    DocumentDownloadUrl,
    /// A read: a document served by the local storage backend.
    DocumentServe,
    /// A read: `GET /identities/:id?includeErased=true`.
    IdentityReadErased,
    RelationCreate,
    RelationUpdate,
    RelationDelete,
    /// A reviewer signing in to the console, and out.
    ConsoleSignIn,
    ConsoleSignOut,
    /// Deleting console sessions past their age.
    ConsoleSessionPrune,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::IdentityCreate => "identity.create",
            Operation::IdentityPatch => "identity.patch",
            Operation::IdentityDelete => "identity.delete",
            Operation::IdentityErase => "identity.erase",
            Operation::EncryptionRotate => "encryption.rotate",
            Operation::IdentityBlock => "identity.block",
            Operation::IdentityUnblock => "identity.unblock",
            Operation::VerificationDecide => "verification.decide",
            Operation::SandboxApprove => "sandbox.approve",
            Operation::SandboxReject => "sandbox.reject",
            Operation::AppCreate => "app.create",
            Operation::ApiKeyCreate => "api_key.create",
            Operation::ApiKeyRevoke => "api_key.revoke",
            Operation::ApiKeyUse => "api_key.use",
            Operation::EventsPrune => "events.prune",
            Operation::WebhookEndpointCreate => "webhook_endpoint.create",
            Operation::WebhookEndpointUpdate => "webhook_endpoint.update",
            Operation::WebhookEndpointDelete => "webhook_endpoint.delete",
            Operation::WebhookSecretRotate => "webhook_endpoint.rotate_secret",
            Operation::EventRedeliver => "event.redeliver",
            Operation::WebhookDispatch => "webhook.dispatch",
            Operation::IdempotencyClaim => "idempotency.claim",
            Operation::IdempotencyPrune => "idempotency.prune",
            Operation::Bootstrap => "server.bootstrap",
            Operation::ServerSecretCreate => "server_secret.create",
            Operation::AuditLink => "audit.link",
            Operation::DocumentDownloadUrl => "document.download_url",
            Operation::DocumentServe => "document.serve",
            Operation::IdentityReadErased => "identity.read_erased",
            Operation::RelationCreate => "relation.create",
            Operation::RelationUpdate => "relation.update",
            Operation::RelationDelete => "relation.delete",
            Operation::ConsoleSignIn => "console.sign_in",
            Operation::ConsoleSignOut => "console.sign_out",
            Operation::ConsoleSessionPrune => "console.session_prune",
        }
    }

    /// Every operation.
    pub const ALL: &'static [Operation] = <Operation as strum::VariantArray>::VARIANTS;
}

/// One thing a write changed, recorded by the use case as it changes it:
/// what the later features (events, audit) are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    IdentityCreated {
        app_id: AppId,
        identity_id: IdentityId,
    },
    /// `fields`: wire names of what changed (`address`, `blocked`,
    /// `riskRating`, ...), never their values.
    IdentityUpdated {
        app_id: AppId,
        identity_id: IdentityId,
        fields: Vec<&'static str>,
    },
    IdentityDeleted {
        app_id: AppId,
        identity_id: IdentityId,
    },
    /// Its data key destroyed, its name and email replaced by a tombstone.
    IdentityErased {
        app_id: AppId,
        identity_id: IdentityId,
    },
    /// Rotation sealed `count` stored values of one kind again (data keys,
    /// identities' fields, secrets) under the first server key.
    SealedAgain {
        what: &'static str,
        count: usize,
    },
    DocumentCreated {
        app_id: AppId,
        identity_id: IdentityId,
        document_id: DocumentId,
    },
    DocumentRemoved {
        app_id: AppId,
        identity_id: IdentityId,
        document_id: DocumentId,
    },
    VerificationCreated {
        app_id: AppId,
        identity_id: IdentityId,
        verification_id: VerificationId,
    },
    VerificationStatusChanged {
        app_id: AppId,
        identity_id: IdentityId,
        verification_id: VerificationId,
        from: &'static str,
        to: &'static str,
    },
    AppCreated {
        app_id: AppId,
    },
    ApiKeyCreated {
        app_id: AppId,
        key_id: ApiKeyId,
    },
    ApiKeyRevoked {
        app_id: AppId,
        key_id: ApiKeyId,
    },
    ApiKeyUsed {
        app_id: AppId,
        key_id: ApiKeyId,
    },
    ServerSecretCreated {
        name: &'static str,
    },
    WebhookEndpointCreated {
        app_id: AppId,
        endpoint_id: WebhookEndpointId,
    },
    WebhookEndpointUpdated {
        app_id: AppId,
        endpoint_id: WebhookEndpointId,
    },
    WebhookEndpointDeleted {
        app_id: AppId,
        endpoint_id: WebhookEndpointId,
    },
    WebhookSecretRotated {
        app_id: AppId,
        endpoint_id: WebhookEndpointId,
    },
    WebhookDeliveryScheduled {
        app_id: AppId,
        delivery_id: DeliveryId,
    },
    ConsoleSessionStarted {
        app_id: AppId,
        session_id: ConsoleSessionId,
    },
    ConsoleSessionEnded {
        app_id: AppId,
        session_id: ConsoleSessionId,
    },
}

impl Change {
    /// The identity whose answer this change alters, if any.
    fn identity_id(&self) -> Option<&IdentityId> {
        match self {
            Change::IdentityCreated { identity_id, .. }
            | Change::IdentityUpdated { identity_id, .. }
            | Change::IdentityDeleted { identity_id, .. }
            | Change::IdentityErased { identity_id, .. }
            | Change::DocumentCreated { identity_id, .. }
            | Change::DocumentRemoved { identity_id, .. }
            | Change::VerificationCreated { identity_id, .. }
            | Change::VerificationStatusChanged { identity_id, .. } => Some(identity_id),
            Change::AppCreated { .. }
            | Change::SealedAgain { .. }
            | Change::ApiKeyCreated { .. }
            | Change::ApiKeyRevoked { .. }
            | Change::ApiKeyUsed { .. }
            | Change::ServerSecretCreated { .. }
            | Change::WebhookEndpointCreated { .. }
            | Change::WebhookEndpointUpdated { .. }
            | Change::WebhookEndpointDeleted { .. }
            | Change::WebhookSecretRotated { .. }
            | Change::WebhookDeliveryScheduled { .. }
            | Change::ConsoleSessionStarted { .. }
            | Change::ConsoleSessionEnded { .. } => None,
        }
    }

    /// A stable name per kind, for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Change::IdentityCreated { .. } => "identity.created",
            Change::IdentityUpdated { .. } => "identity.updated",
            Change::IdentityDeleted { .. } => "identity.deleted",
            Change::IdentityErased { .. } => "identity.erased",
            Change::SealedAgain { .. } => "sealed_again",
            Change::DocumentCreated { .. } => "document.created",
            Change::DocumentRemoved { .. } => "document.removed",
            Change::VerificationCreated { .. } => "verification.created",
            Change::VerificationStatusChanged { .. } => "verification.status_changed",
            Change::AppCreated { .. } => "app.created",
            Change::ApiKeyCreated { .. } => "api_key.created",
            Change::ApiKeyRevoked { .. } => "api_key.revoked",
            Change::ApiKeyUsed { .. } => "api_key.used",
            Change::ServerSecretCreated { .. } => "server_secret.created",
            Change::WebhookEndpointCreated { .. } => "webhook_endpoint.created",
            Change::WebhookEndpointUpdated { .. } => "webhook_endpoint.updated",
            Change::WebhookEndpointDeleted { .. } => "webhook_endpoint.deleted",
            Change::WebhookSecretRotated { .. } => "webhook_endpoint.secret_rotated",
            Change::WebhookDeliveryScheduled { .. } => "webhook_delivery.scheduled",
            Change::ConsoleSessionStarted { .. } => "console_session.started",
            Change::ConsoleSessionEnded { .. } => "console_session.ended",
        }
    }
}

/// An HTTP answer as it goes on the wire: status and JSON body bytes
/// (empty for 204), what an Idempotency-Key replays byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Stored under the request's Idempotency-Key, in its write.
    pub stored: bool,
}

impl Answer {
    /// `status` with `value` as its JSON body.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Result<Answer, ApiError> {
        Ok(Answer {
            status,
            body: serde_json::to_vec(value)
                .map_err(|e| ApiError::internal(anyhow::anyhow!("answer not serializable: {e}")))?,
            stored: false,
        })
    }

    /// 204, no body.
    pub fn no_content() -> Answer {
        Answer {
            status: 204,
            body: Vec::new(),
            stored: false,
        }
    }
}

/// A use case's handle on its write transaction.
pub struct Tx<'t, 'c> {
    conn: &'t mut WriteConn<'c>,
    changes: Vec<Change>,
    answers: Answers,
    audit: AuditNote,
}

/// What the audit record of a write says beyond its changes: the HTTP
/// status answered, and for a sensitive read (which changes nothing) what
/// was read and whether it was allowed.
#[derive(Debug, Clone)]
pub struct AuditNote {
    pub status: Option<u16>,
    pub outcome: Outcome,
    pub targets: Vec<Target>,
}

impl Default for AuditNote {
    fn default() -> Self {
        AuditNote {
            status: None,
            outcome: Outcome::Committed,
            targets: Vec::new(),
        }
    }
}

/// Objects as the use case answers them, noted after its last change to
/// them: what `finish` would otherwise read back (each event carries the
/// object as `GET` answers it). A change recorded after an object was
/// noted forgets the note, so a note is never older than the object.
#[derive(Debug, Default)]
pub struct Answers {
    identities: Vec<IdentityView>,
    documents: Vec<DocumentView>,
    verifications: Vec<VerificationView>,
    /// Identities' data keys opened in this transaction (`services::custody`),
    /// so sealing an event's payload opens no key twice.
    data_keys: Vec<(IdentityId, Arc<DataKey>)>,
}

impl Answers {
    pub fn identity(&self, id: &IdentityId) -> Option<&IdentityView> {
        self.identities.iter().find(|v| &v.id == id)
    }

    pub fn document(&self, id: &DocumentId) -> Option<&DocumentView> {
        self.documents.iter().find(|v| &v.id == id)
    }

    pub fn verification(&self, id: &VerificationId) -> Option<&VerificationView> {
        self.verifications.iter().find(|v| &v.id == id)
    }

    pub fn data_key(&self, id: &IdentityId) -> Option<Arc<DataKey>> {
        self.data_keys
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, key)| key.clone())
    }

    /// Forgets what `change` made stale: the identity it touches (its
    /// answer holds its documents and KYC status) and the verification or
    /// document it names.
    fn forget(&mut self, change: &Change) {
        if let Some(identity) = change.identity_id() {
            self.identities.retain(|v| &v.id != identity);
        }
        match change {
            Change::VerificationStatusChanged {
                verification_id, ..
            } => self.verifications.retain(|v| &v.id != verification_id),
            Change::DocumentRemoved { document_id, .. } => {
                self.documents.retain(|v| &v.id != document_id)
            }
            _ => {}
        }
    }
}

impl<'c> Tx<'_, 'c> {
    /// The connection, for the query functions that write.
    pub fn conn(&mut self) -> &mut WriteConn<'c> {
        self.conn
    }

    /// The connection, for reads inside the transaction.
    pub fn read(&mut self) -> &mut DbConnection {
        self.conn
    }

    /// Notes the HTTP status the request will answer (for its audit record).
    pub fn answering(&mut self, status: u16) {
        self.audit.status = Some(status);
    }

    /// Notes a sensitive read for its audit record: what was read, and
    /// whether it was answered.
    pub fn note_read(&mut self, outcome: Outcome, status: u16, targets: Vec<Target>) {
        self.audit = AuditNote {
            status: Some(status),
            outcome,
            targets,
        };
    }

    /// Notes more things a write touched, for its audit record (what its
    /// changes do not name: a company's relation, its person).
    pub fn note_targets(&mut self, targets: Vec<Target>) {
        for target in targets {
            if !self.audit.targets.contains(&target) {
                self.audit.targets.push(target);
            }
        }
    }

    /// Notes what was just changed.
    pub fn record(&mut self, change: Change) {
        self.answers.forget(&change);
        self.changes.push(change);
    }

    /// Notes an identity as the use case answers it, after its last change.
    pub fn answered_identity(&mut self, view: &IdentityView) {
        self.answers.identities.retain(|v| v.id != view.id);
        self.answers.identities.push(view.clone());
    }

    /// Notes a document as answered, after its last change.
    pub fn answered_document(&mut self, view: &DocumentView) {
        self.answers.documents.retain(|v| v.id != view.id);
        self.answers.documents.push(view.clone());
    }

    /// Notes an identity's data key, opened or made in this transaction.
    pub fn note_data_key(&mut self, id: &IdentityId, key: Arc<DataKey>) {
        self.answers.data_keys.retain(|(known, _)| known != id);
        self.answers.data_keys.push((id.clone(), key));
    }

    /// A data key noted in this transaction.
    pub fn data_key(&self, id: &IdentityId) -> Option<Arc<DataKey>> {
        self.answers.data_key(id)
    }

    /// Notes a verification as answered, after its last change.
    pub fn answered_verification(&mut self, view: VerificationView) {
        self.answers.verifications.retain(|v| v.id != view.id);
        self.answers.verifications.push(view);
    }
}

/// A finished use case, about to commit: what `finish` and the observers
/// see.
#[derive(Debug)]
pub struct Write<'w> {
    pub operation: Operation,
    pub actor: &'w Actor,
    pub changes: &'w [Change],
    /// Objects as the use case answered them, current at the commit.
    pub answers: &'w Answers,
    pub audit: &'w AuditNote,
}

/// Something that must happen in the transaction of every write, after the
/// use case succeeded and before the commit; an error rolls the whole
/// change back.
pub trait WriteObserver: Send + Sync + 'static {
    fn before_commit(&self, conn: &mut WriteConn<'_>, write: &Write<'_>) -> Result<(), ApiError>;
}

/// The write path of one process: the database and what runs with every
/// write.
#[derive(Clone)]
pub struct WritePath {
    db: Db,
    observers: Arc<[Arc<dyn WriteObserver>]>,
    /// Woken after each audited write commits (`services::audit::Linker`).
    audit_written: Arc<tokio::sync::Notify>,
}

impl WritePath {
    pub fn new(db: Db, observers: Vec<Arc<dyn WriteObserver>>) -> Self {
        WritePath {
            db,
            observers: observers.into(),
            audit_written: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// What wakes when an audited write commits.
    pub fn audit_written(&self) -> Arc<tokio::sync::Notify> {
        self.audit_written.clone()
    }

    /// The database, for the reads a use case makes before its writes.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Runs one use case that changes data, in one write transaction, on the
    /// blocking thread pool.
    pub async fn run<T, E, F>(&self, actor: Actor, operation: Operation, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx<'_, '_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<DieselError> + From<ApiError> + ConnectionFault + Send + 'static,
    {
        let observers = self.observers.clone();
        let value = self
            .db
            .write_transaction(move |conn| {
                in_transaction(conn, &observers, &actor, operation, work)
            })
            .await?;
        // Its audit record is in; where writers run at once, the linker
        // gives it its place in the chain, in a transaction of its own
        // (see `services::audit`; SQLite's serial writers link in place).
        if crate::services::audit::audited(operation) && !self.db.writes_are_serial() {
            self.audit_written.notify_one();
        }
        Ok(value)
    }

    /// `run` for a request that answers what it wrote: `answer` turns the
    /// use case's result into the HTTP answer inside the transaction, and
    /// with an Idempotency-Key `claim` the answer is stored under the key
    /// there too, so the change and its answer to replay commit together.
    pub async fn run_answered<T, F, A>(
        &self,
        actor: Actor,
        operation: Operation,
        claim: Option<crate::services::idempotency::Claim>,
        work: F,
        answer: A,
    ) -> Result<Answer, ApiError>
    where
        F: FnOnce(&mut Tx<'_, '_>) -> Result<T, ApiError> + Send + 'static,
        A: FnOnce(T) -> Result<Answer, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.run(actor, operation, move |tx| {
            let mut answer = answer(work(tx)?)?;
            tx.answering(answer.status);
            if let Some(claim) = claim {
                crate::db::idempotency::store_answer(
                    tx.conn(),
                    &claim.app_id,
                    &claim.key,
                    i32::from(answer.status),
                    &claim.seal_body(&answer.body),
                )
                .map_err(|e| match e {
                    // This request outlived its claim's lock and a retry
                    // took the key over: committing would make two answers
                    // for one key, so this one rolls back.
                    DieselError::NotFound => ApiError::refused(
                        crate::domain::errors::Refusal::IdempotencyKeyInUse,
                        "This request took longer than its Idempotency-Key's lock and a retry took the key over; nothing was changed.",
                    ),
                    e => e.into(),
                })?;
                answer.stored = true;
            }
            Ok(answer)
        })
        .await
    }

    /// `run` on the calling thread, for callers without an async runtime
    /// (the CLI, start-up).
    pub fn run_blocking<T, E, F>(&self, actor: Actor, operation: Operation, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut Tx<'_, '_>) -> Result<T, E>,
        E: From<DbError> + From<DieselError> + From<ApiError> + ConnectionFault,
    {
        let value = self.db.write_transaction_blocking(|conn| {
            in_transaction(conn, &self.observers, &actor, operation, work)
        })?;
        // No linker runs beside the CLI: the record is linked here. A
        // failure leaves it for the next linker (every server's
        // maintenance links what it finds).
        if crate::services::audit::audited(operation) && !self.db.writes_are_serial() {
            if let Err(err) = crate::services::audit::link_pending(self) {
                tracing::warn!(error = %err, "linking audit records failed; they wait for the next linker");
            }
        }
        Ok(value)
    }
}

fn in_transaction<T, E, F>(
    conn: &mut WriteConn<'_>,
    observers: &[Arc<dyn WriteObserver>],
    actor: &Actor,
    operation: Operation,
    work: F,
) -> Result<T, E>
where
    F: FnOnce(&mut Tx<'_, '_>) -> Result<T, E>,
    E: From<DieselError> + From<ApiError>,
{
    let mut tx = Tx {
        conn,
        changes: Vec::new(),
        answers: Answers::default(),
        audit: AuditNote::default(),
    };
    let value = work(&mut tx)?;
    let Tx {
        conn,
        changes,
        answers,
        audit,
    } = tx;
    finish(
        conn,
        observers,
        &Write {
            operation,
            actor,
            changes: &changes,
            answers: &answers,
            audit: &audit,
        },
    )?;
    Ok(value)
}

/// What commits with every change: the observers, among them the event
/// rows of `write.changes` (`services::events::EventRecorder`), then the
/// audit record of `write.actor` and `write.operation` on its app's chain
/// (every process's write path has it, the CLI's too).
fn finish(
    conn: &mut WriteConn<'_>,
    observers: &[Arc<dyn WriteObserver>],
    write: &Write<'_>,
) -> Result<(), ApiError> {
    for observer in observers {
        observer.before_commit(conn, write)?;
    }
    crate::services::audit::record(conn, write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::kyc::{Level, VerificationStatus};

    fn verification(identity_id: &IdentityId) -> VerificationView {
        let at = chrono::DateTime::UNIX_EPOCH.naive_utc();
        VerificationView {
            id: VerificationId::new(),
            identity_id: identity_id.clone(),
            level: Level::Basic,
            status: VerificationStatus::Pending,
            reason: None,
            risk_rating: None,
            created_at: at,
            updated_at: at,
            decision: Default::default(),
            history: Vec::new(),
        }
    }

    #[test]
    fn a_later_change_forgets_the_answer_it_makes_stale() {
        let app_id = AppId::new();
        let identity_id = IdentityId::new();
        let mut answers = Answers::default();
        let kept = verification(&identity_id);
        let decided = verification(&identity_id);
        answers.verifications = vec![kept.clone(), decided.clone()];
        // Another identity's change, or a new document of this one, leaves
        // the verifications' answers current.
        answers.forget(&Change::IdentityCreated {
            app_id: app_id.clone(),
            identity_id: IdentityId::new(),
        });
        answers.forget(&Change::DocumentCreated {
            app_id: app_id.clone(),
            identity_id: identity_id.clone(),
            document_id: crate::domain::ids::DocumentId::new(),
        });
        assert!(answers.verification(&decided.id).is_some());
        answers.forget(&Change::VerificationStatusChanged {
            app_id,
            identity_id,
            verification_id: decided.id.clone(),
            from: "pending",
            to: "approved",
        });
        assert!(answers.verification(&decided.id).is_none());
        assert!(answers.verification(&kept.id).is_some());
    }
}
