//! The write path: the one way a change reaches the database.
//!
//! Every use case that changes data, from the API or the CLI, runs through
//! [`WritePath::run`] (or `run_blocking`): it opens the write transaction,
//! hands the use case a [`Tx`], lets the use case record what it changed
//! ([`Change`]), and then, still inside the transaction, runs what must
//! commit with the change (`finish`): today the observers; next the event
//! rows (webhooks), the audit row and the idempotency record. If any of it
//! fails, nothing of the change commits.
//!
//! Query functions that write take a `WriteConn`, which only a write
//! transaction hands out, and only this module opens one (a test holds the
//! source to that), so there is no other way to write.

use std::sync::Arc;

use diesel::result::Error as DieselError;

use crate::db::{ConnectionFault, Db, DbConnection, DbError, WriteConn};
use crate::domain::ids::{
    ApiKeyId, AppId, DeliveryId, DocumentId, IdentityId, VerificationId, WebhookEndpointId,
};
use crate::error::ApiError;

/// Who makes a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A request authenticated with one of the app's API keys.
    Api { app_id: AppId, key_id: ApiKeyId },
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

/// What a write is for: one per use case that changes data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    IdentityCreate,
    IdentityPatch,
    IdentityDelete,
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
    Bootstrap,
    ServerSecretCreate,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::IdentityCreate => "identity.create",
            Operation::IdentityPatch => "identity.patch",
            Operation::IdentityDelete => "identity.delete",
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
            Operation::Bootstrap => "server.bootstrap",
            Operation::ServerSecretCreate => "server_secret.create",
        }
    }
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
}

impl Change {
    /// A stable name per kind, for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Change::IdentityCreated { .. } => "identity.created",
            Change::IdentityUpdated { .. } => "identity.updated",
            Change::IdentityDeleted { .. } => "identity.deleted",
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
        }
    }
}

/// A use case's handle on its write transaction.
pub struct Tx<'t, 'c> {
    conn: &'t mut WriteConn<'c>,
    changes: Vec<Change>,
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

    /// Notes what was just changed.
    pub fn record(&mut self, change: Change) {
        self.changes.push(change);
    }
}

/// A finished use case, about to commit: what `finish` and the observers
/// see.
#[derive(Debug)]
pub struct Write<'w> {
    pub operation: Operation,
    pub actor: &'w Actor,
    pub changes: &'w [Change],
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
}

impl WritePath {
    pub fn new(db: Db, observers: Vec<Arc<dyn WriteObserver>>) -> Self {
        WritePath {
            db,
            observers: observers.into(),
        }
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
        self.db
            .write_transaction(move |conn| {
                in_transaction(conn, &observers, &actor, operation, work)
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
        self.db.write_transaction_blocking(|conn| {
            in_transaction(conn, &self.observers, &actor, operation, work)
        })
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
    };
    let value = work(&mut tx)?;
    let Tx { conn, changes } = tx;
    finish(
        conn,
        observers,
        &Write {
            operation,
            actor,
            changes: &changes,
        },
    )?;
    Ok(value)
}

/// What commits with every change: the observers, among them the event
/// rows of `write.changes` (`services::events::EventRecorder`); next the
/// audit row of `write.actor` and `write.operation`, the idempotency record.
fn finish(
    conn: &mut WriteConn<'_>,
    observers: &[Arc<dyn WriteObserver>],
    write: &Write<'_>,
) -> Result<(), ApiError> {
    for observer in observers {
        observer.before_commit(conn, write)?;
    }
    Ok(())
}
