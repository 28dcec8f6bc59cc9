//! Apps and API keys: creating, revoking, bootstrapping and authenticating.
//!
//! The CLI and the server share these; every change goes through the write
//! path.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::domain::ids::{ApiKeyId, AppId};
use anyhow::{anyhow, bail};
use chrono::NaiveDateTime;
use serde::Serialize;

use super::write::{Actor, Change, Operation, Tx, WritePath};
use crate::db::{self, apps as q, DbConnection};
use crate::domain::api_key::{ApiKeySecret, Scopes};
use crate::domain::crypto::KeyRing;
use crate::error::ApiError;

pub const DEFAULT_APP_NAME: &str = "default";

/// What `apps create` prints: the only time the key is ever shown.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApp {
    pub app_id: AppId,
    /// The key's public id, for `keys revoke`.
    pub key_id: ApiKeyId,
    pub api_key: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub key_id: ApiKeyId,
    pub app_id: AppId,
    pub api_key: String,
    pub scopes: Vec<&'static str>,
}

pub fn validate_app_name(name: &str) -> anyhow::Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        bail!("an app name must be 1 to 100 characters");
    }
    Ok(name)
}

/// Creates an app and its first key in one transaction.
fn insert_app_with_key(tx: &mut Tx<'_, '_>, name: &str) -> anyhow::Result<CreatedApp> {
    let secret = ApiKeySecret::generate();
    let app = q::insert_app(tx.conn(), name).map_err(|e| {
        if db::is_unique_violation(&e) {
            anyhow::Error::new(e).context(format!("an app named `{name}` already exists"))
        } else {
            anyhow!(e)
        }
    })?;
    tx.record(Change::AppCreated {
        app_id: app.id.clone(),
    });
    let key_id = insert_key(tx, &app.id, &secret, &Scopes::every())?;
    Ok(CreatedApp {
        app_id: app.id,
        key_id,
        api_key: secret.expose().to_string(),
    })
}

fn insert_key(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    secret: &ApiKeySecret,
    scopes: &Scopes,
) -> anyhow::Result<ApiKeyId> {
    let key = q::insert_api_key(
        tx.conn(),
        app_id,
        &secret.hash(),
        &secret.display_prefix(),
        scopes,
    )?;
    tx.record(Change::ApiKeyCreated {
        app_id: app_id.clone(),
        key_id: key.id.clone(),
    });
    Ok(key.id)
}

pub fn create_app(write: &WritePath, actor: Actor, name: &str) -> anyhow::Result<CreatedApp> {
    let name = validate_app_name(name)?.to_string();
    write.run_blocking(actor, Operation::AppCreate, |tx| {
        insert_app_with_key(tx, &name)
    })
}

/// A new key of the app with these scopes (`*`, or names joined by commas).
pub fn create_key(
    write: &WritePath,
    actor: Actor,
    app_id: &str,
    scopes: &str,
) -> anyhow::Result<CreatedKey> {
    let app_id =
        AppId::parse(app_id).ok_or_else(|| anyhow!("`{app_id}` is not an app id (a UUID)"))?;
    let scopes = Scopes::parse(scopes).map_err(|problem| anyhow!("--scopes: {problem}"))?;
    write.run_blocking(actor, Operation::ApiKeyCreate, |tx| {
        if q::find_app(tx.read(), &app_id)?.is_none() {
            bail!("no app with id {app_id}");
        }
        let secret = ApiKeySecret::generate();
        let key_id = insert_key(tx, &app_id, &secret, &scopes)?;
        Ok(CreatedKey {
            key_id,
            app_id: app_id.clone(),
            api_key: secret.expose().to_string(),
            scopes: scopes.names(),
        })
    })
}

pub fn revoke_key(write: &WritePath, actor: Actor, key_id: &str) -> anyhow::Result<()> {
    let key_id =
        ApiKeyId::parse(key_id).ok_or_else(|| anyhow!("`{key_id}` is not a key id (a UUID)"))?;
    write.run_blocking(actor, Operation::ApiKeyRevoke, |tx| {
        let key = q::revoke_api_key(tx.conn(), &key_id)?
            .ok_or_else(|| anyhow!("no API key with id {key_id}"))?;
        if let Some(at) = key.revoked_at {
            bail!(
                "the API key {key_id} was already revoked at {}",
                crate::domain::time::format_timestamp(at)
            );
        }
        tx.record(Change::ApiKeyRevoked {
            app_id: key.app_id,
            key_id: key.id,
        });
        Ok(())
    })
}

/// What start-up did about the first app.
#[derive(Debug)]
pub enum Bootstrap {
    /// Apps already existed and no bootstrap key was configured.
    NothingToDo,
    /// `KYC_BOOTSTRAP_API_KEY` is registered for the `default` app.
    KeyEnsured { app_id: AppId },
    /// A first start: the `default` app was created with a fresh key, to be
    /// shown to the operator once.
    Created(CreatedApp),
}

/// Makes a fresh installation usable: makes sure the configured bootstrap
/// key belongs to the `default` app, or, when `create_default` (sandbox),
/// creates that app with a fresh key on an empty database. In production
/// nothing is created unasked: a key printed at start-up would land in the
/// container's logs.
pub fn bootstrap(
    write: &WritePath,
    bootstrap_key: Option<&str>,
    create_default: bool,
) -> anyhow::Result<Bootstrap> {
    // Replicas starting together race to create the `default` app: the
    // loser's insert hits the unique name (its transaction rolls back
    // whole) and simply looks again, finding the winner's app.
    let mut attempt = 0;
    loop {
        match bootstrap_once(write, bootstrap_key, create_default) {
            Err(e) if attempt < 3 && is_unique_violation(&e) => attempt += 1,
            other => return other,
        }
    }
}

fn is_unique_violation(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<diesel::result::Error>())
        .any(db::is_unique_violation)
}

fn bootstrap_once(
    write: &WritePath,
    bootstrap_key: Option<&str>,
    create_default: bool,
) -> anyhow::Result<Bootstrap> {
    write.run_blocking(
        Actor::Server,
        Operation::Bootstrap,
        |tx| match bootstrap_key {
            Some(key) => {
                let secret = ApiKeySecret::from_presented(key);
                let app = match q::find_app_by_name(tx.read(), DEFAULT_APP_NAME)? {
                    Some(app) => app,
                    None => {
                        let app = q::insert_app(tx.conn(), DEFAULT_APP_NAME)?;
                        tx.record(Change::AppCreated {
                            app_id: app.id.clone(),
                        });
                        app
                    }
                };
                match q::find_key_by_hash(tx.read(), &secret.hash())? {
                    Some(existing) if existing.app_id != app.id => {
                        bail!("KYC_BOOTSTRAP_API_KEY already belongs to another app")
                    }
                    Some(existing) if existing.revoked_at.is_some() => {
                        bail!("KYC_BOOTSTRAP_API_KEY was revoked; configure a new one")
                    }
                    Some(_) => {}
                    None => {
                        insert_key(tx, &app.id, &secret, &Scopes::every())?;
                    }
                }
                Ok(Bootstrap::KeyEnsured { app_id: app.id })
            }
            None if !create_default || q::any_app_exists(tx.read())? => Ok(Bootstrap::NothingToDo),
            None => Ok(Bootstrap::Created(insert_app_with_key(
                tx,
                DEFAULT_APP_NAME,
            )?)),
        },
    )
}

/// The caller a checked key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub app_id: AppId,
    pub key_id: ApiKeyId,
    /// The key's last noted use (to the hour), as read with it.
    pub last_used_at: Option<NaiveDateTime>,
    pub scopes: Scopes,
}

/// How precisely a key's last use is kept: a busy key costs one write per
/// hour, and the time of day of its last use tells nobody much.
pub const KEY_USE_GRANULARITY: chrono::Duration = chrono::Duration::hours(1);

/// Notes keys' last use off the request path: after a key is checked, a
/// use older than [`KEY_USE_GRANULARITY`] is stamped through the write path
/// on a blocking task, once per key at a time in this process (the
/// conditional update keeps replicas from stamping twice).
#[derive(Clone)]
pub struct KeyUsage {
    write: WritePath,
    in_flight: Arc<Mutex<HashSet<ApiKeyId>>>,
}

impl KeyUsage {
    pub fn new(write: WritePath) -> Self {
        KeyUsage {
            write,
            in_flight: Arc::default(),
        }
    }

    /// Called with every checked key; returns at once.
    pub fn note(&self, owner: &KeyOwner) {
        let now = db::now();
        let stale_before = now - KEY_USE_GRANULARITY;
        if owner.last_used_at.is_some_and(|at| at >= stale_before) {
            return;
        }
        // Outside a runtime (never in the server) there is nowhere to run it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.in_flight.lock().unwrap().insert(owner.key_id.clone()) {
            return;
        }
        let (usage, owner) = (self.clone(), owner.clone());
        runtime.spawn_blocking(move || {
            let actor = Actor::Api {
                app_id: owner.app_id.clone(),
                key_id: owner.key_id.clone(),
                request: Default::default(),
            };
            let stamped = usage
                .write
                .run_blocking(actor, Operation::ApiKeyUse, |tx| {
                    if q::stamp_key_use(tx.conn(), &owner.key_id, now, stale_before)? {
                        tx.record(Change::ApiKeyUsed {
                            app_id: owner.app_id.clone(),
                            key_id: owner.key_id.clone(),
                        });
                    }
                    Ok::<_, ApiError>(())
                });
            if let Err(e) = stamped {
                // Only the usage stamp is lost; the next use tries again.
                tracing::warn!(key_id = %owner.key_id, error = %e, "could not note an API key's use");
            }
            usage.in_flight.lock().unwrap().remove(&owner.key_id);
        });
    }
}

/// The app (and key) a presented key belongs to, or `api_key_invalid`.
pub fn authenticate(conn: &mut DbConnection, presented: &str) -> Result<KeyOwner, ApiError> {
    let secret = ApiKeySecret::from_presented(presented);
    let hash = secret.hash();
    let key = q::find_key_by_hash(conn, &hash)?.ok_or(ApiError::ApiKeyInvalid)?;
    let stored = crate::domain::api_key::KeyHash::from_stored(key.key_hash);
    if key.revoked_at.is_some() || !stored.matches(&hash) {
        return Err(ApiError::ApiKeyInvalid);
    }
    Ok(KeyOwner {
        app_id: key.app_id,
        key_id: key.id,
        last_used_at: key.last_used_at,
        scopes: key.scopes,
    })
}

/// One API key as `keys list` shows it: never the secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyListing {
    pub key_id: ApiKeyId,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: String,
    /// To the hour ([`KEY_USE_GRANULARITY`]); `null` if never used.
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub scopes: Vec<&'static str>,
}

/// The keys of an app, oldest first, for `keys list`.
pub fn list_keys(db: &crate::db::Db, app_id: &str) -> anyhow::Result<Vec<KeyListing>> {
    let app_id =
        AppId::parse(app_id).ok_or_else(|| anyhow!("`{app_id}` is not an app id (a UUID)"))?;
    let mut conn = db.checkout()?;
    if q::find_app(&mut conn, &app_id)?.is_none() {
        bail!("no app with id {app_id}");
    }
    let format = crate::domain::time::format_timestamp;
    Ok(q::keys_of_app(&mut conn, &app_id)?
        .into_iter()
        .map(|key| KeyListing {
            key_id: key.id,
            prefix: key.key_prefix,
            created_at: format(key.created_at),
            last_used_at: key.last_used_at.map(format),
            revoked_at: key.revoked_at.map(format),
            scopes: key.scopes.names(),
        })
        .collect())
}

/// Every app with its number of active keys, for `apps list`.
pub fn list_apps(db: &crate::db::Db) -> anyhow::Result<Vec<(q::AppRow, i64)>> {
    let mut conn = db.checkout()?;
    Ok(q::list_apps(&mut conn)?)
}

/// A server secret every replica shares (the local storage backend's
/// signing key when none is configured, the list cursors' key): read from
/// the database, or generated once and kept there, sealed by the server's
/// key ring (a value stored in the clear by an earlier version is read as
/// it is).
pub fn shared_secret(
    write: &WritePath,
    db: &crate::db::Db,
    keys: &KeyRing,
    name: &'static str,
) -> anyhow::Result<String> {
    let stored = stored_secret(write, db, name, |clear| {
        keys.seal(clear.as_bytes(), name.as_bytes())
    })?;
    if !KeyRing::is_sealed(&stored) {
        return Ok(stored);
    }
    let opened = keys
        .open(&stored, name.as_bytes())
        .map_err(|e| anyhow!("the server secret {name} does not open: {e}"))?;
    String::from_utf8(opened).map_err(|_| anyhow!("the server secret {name} is not text"))
}

/// A generated secret as stored (`seal` makes its stored form), created
/// once whichever replica comes first.
fn stored_secret(
    write: &WritePath,
    db: &crate::db::Db,
    name: &'static str,
    seal: impl FnOnce(&str) -> String,
) -> anyhow::Result<String> {
    if let Some(key) = q::find_secret(&mut *db.checkout()?, name)? {
        return Ok(key);
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let stored = seal(&hex::encode(bytes));
    let created = write.run_blocking(Actor::Server, Operation::ServerSecretCreate, |tx| {
        q::insert_secret(tx.conn(), name, &stored)?;
        tx.record(Change::ServerSecretCreated { name });
        anyhow::Ok(())
    });
    match created {
        Ok(()) => Ok(stored),
        // Another replica generated one at the same moment: use theirs.
        Err(e) if e.downcast_ref().is_some_and(db::is_unique_violation) => {
            q::find_secret(&mut *db.checkout()?, name)?
                .ok_or_else(|| anyhow!("the shared secret {name} vanished"))
        }
        Err(e) => Err(e),
    }
}

/// The server secret holding sandbox's generated key-encryption key (the
/// one secret kept in the clear: nothing could seal it).
pub const SANDBOX_KEY_NAME: &str = "sandbox_encryption_key";

/// The keys the server seals secrets with: `KYC_ENCRYPTION_KEYS`, or in
/// sandbox without it one key generated once and kept in the database
/// (which protects nothing from a database reader: hence the warning).
/// Either way the ring must open this database's key check (see
/// [`check_keys`]).
pub fn key_ring(
    write: &WritePath,
    db: &crate::db::Db,
    configured: Option<Arc<KeyRing>>,
) -> anyhow::Result<Arc<KeyRing>> {
    let ring = match configured {
        Some(ring) => ring,
        None => {
            tracing::warn!(
                "KYC_ENCRYPTION_KEYS is not set: secrets are sealed with a key generated for this \
                 sandbox and kept in its own database; set KYC_ENCRYPTION_KEYS before real data"
            );
            // The key that seals everything else cannot seal itself.
            let generated = stored_secret(write, db, SANDBOX_KEY_NAME, str::to_owned)?;
            let key: [u8; crate::domain::crypto::KEY_BYTES] = hex::decode(&generated)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| {
                    anyhow!("the stored sandbox encryption key is not 32 bytes of hex")
                })?;
            Arc::new(KeyRing::single("sandbox", &key).map_err(|e| anyhow!(e))?)
        }
    };
    check_keys(write, db, &ring)?;
    tracing::info!(
        sealing_key = ring.sealing_kid(),
        "encryption keys open this database"
    );
    Ok(ring)
}

/// A value sealed by the first key ever configured for this database:
/// keys that cannot open it are refused at start, with the key id it
/// needs, instead of failing on the first sealed secret a request reads.
fn check_keys(write: &WritePath, db: &crate::db::Db, ring: &KeyRing) -> anyhow::Result<()> {
    const NAME: &str = "encryption_key_check";
    const CHECK: &[u8] = b"kyc-api encryption key check";
    let stored = match q::find_secret(&mut *db.checkout()?, NAME)? {
        Some(stored) => stored,
        None => {
            let sealed = ring.seal(CHECK, NAME.as_bytes());
            let created = write.run_blocking(Actor::Server, Operation::ServerSecretCreate, |tx| {
                q::insert_secret(tx.conn(), NAME, &sealed)?;
                tx.record(Change::ServerSecretCreated { name: NAME });
                anyhow::Ok(())
            });
            match created {
                Ok(()) => sealed,
                // Another replica stored one at the same moment: check theirs.
                Err(e) if e.downcast_ref().is_some_and(db::is_unique_violation) => {
                    q::find_secret(&mut *db.checkout()?, NAME)?
                        .ok_or_else(|| anyhow!("the encryption key check vanished"))?
                }
                Err(e) => return Err(e),
            }
        }
    };
    match ring.open(&stored, NAME.as_bytes()) {
        Ok(opened) if opened == CHECK => Ok(()),
        Ok(_) => Err(anyhow!("the encryption key check holds an unexpected value")),
        Err(e) => Err(anyhow!(
            "KYC_ENCRYPTION_KEYS cannot open this database's key check: {e}. \
             Configure the key this database was set up with (keep old keys in the list after the new first one)"
        )),
    }
}
