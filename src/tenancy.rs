//! Apps and API keys: creating, revoking, bootstrapping and authenticating.
//!
//! These run on a plain connection so the CLI and the server share them.

use anyhow::{anyhow, bail};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{self, apps as q, write_transaction, DbConnection};
use crate::domain::api_key::ApiKeySecret;
use crate::error::ApiError;

pub const DEFAULT_APP_NAME: &str = "default";

/// What `apps create` prints: the only time the key is ever shown.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApp {
    pub app_id: String,
    pub api_key: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub key_id: String,
    pub app_id: String,
    pub api_key: String,
}

pub fn validate_app_name(name: &str) -> anyhow::Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        bail!("an app name must be 1 to 100 characters");
    }
    Ok(name)
}

pub fn create_app(conn: &mut DbConnection, name: &str) -> anyhow::Result<CreatedApp> {
    let name = validate_app_name(name)?.to_string();
    let secret = ApiKeySecret::generate();
    write_transaction(conn, |conn| -> anyhow::Result<CreatedApp> {
        let app = q::insert_app(conn, &name).map_err(|e| {
            if db::is_unique_violation(&e) {
                anyhow!("an app named `{name}` already exists")
            } else {
                anyhow!(e)
            }
        })?;
        q::insert_api_key(conn, &app.id, &secret.hash(), &secret.display_prefix())?;
        Ok(CreatedApp {
            app_id: app.id,
            api_key: secret.expose().to_string(),
        })
    })
}

pub fn create_key(conn: &mut DbConnection, app_id: &str) -> anyhow::Result<CreatedKey> {
    let app_id = Uuid::parse_str(app_id)
        .map_err(|_| anyhow!("`{app_id}` is not an app id (a UUID)"))?
        .to_string();
    if q::find_app(conn, &app_id)?.is_none() {
        bail!("no app with id {app_id}");
    }
    let secret = ApiKeySecret::generate();
    let key = q::insert_api_key(conn, &app_id, &secret.hash(), &secret.display_prefix())?;
    Ok(CreatedKey {
        key_id: key.id,
        app_id,
        api_key: secret.expose().to_string(),
    })
}

pub fn revoke_key(conn: &mut DbConnection, key_id: &str) -> anyhow::Result<()> {
    let key_id = Uuid::parse_str(key_id)
        .map_err(|_| anyhow!("`{key_id}` is not a key id (a UUID)"))?
        .to_string();
    if !q::revoke_api_key(conn, &key_id)? {
        bail!("no API key with id {key_id}");
    }
    Ok(())
}

/// What start-up did about the first app.
#[derive(Debug)]
pub enum Bootstrap {
    /// Apps already existed and no bootstrap key was configured.
    NothingToDo,
    /// `KYC_BOOTSTRAP_API_KEY` is registered for the `default` app.
    KeyEnsured { app_id: String },
    /// A first start: the `default` app was created with a fresh key, to be
    /// shown to the operator once.
    Created(CreatedApp),
}

/// Makes a fresh installation usable: creates the `default` app on an empty
/// database, or makes sure the configured bootstrap key belongs to it.
pub fn bootstrap(
    conn: &mut DbConnection,
    bootstrap_key: Option<&str>,
) -> anyhow::Result<Bootstrap> {
    write_transaction(conn, |conn| -> anyhow::Result<Bootstrap> {
        match bootstrap_key {
            Some(key) => {
                let secret = ApiKeySecret::from_presented(key);
                let app = match q::find_app_by_name(conn, DEFAULT_APP_NAME)? {
                    Some(app) => app,
                    None => q::insert_app(conn, DEFAULT_APP_NAME)?,
                };
                match q::find_key_by_hash(conn, &secret.hash())? {
                    Some(existing) if existing.app_id != app.id => {
                        bail!("KYC_BOOTSTRAP_API_KEY already belongs to another app")
                    }
                    Some(existing) if existing.revoked_at.is_some() => {
                        bail!("KYC_BOOTSTRAP_API_KEY was revoked; configure a new one")
                    }
                    Some(_) => {}
                    None => {
                        q::insert_api_key(conn, &app.id, &secret.hash(), &secret.display_prefix())?;
                    }
                }
                Ok(Bootstrap::KeyEnsured { app_id: app.id })
            }
            None if q::any_app_exists(conn)? => Ok(Bootstrap::NothingToDo),
            None => {
                let secret = ApiKeySecret::generate();
                let app = q::insert_app(conn, DEFAULT_APP_NAME)?;
                q::insert_api_key(conn, &app.id, &secret.hash(), &secret.display_prefix())?;
                Ok(Bootstrap::Created(CreatedApp {
                    app_id: app.id,
                    api_key: secret.expose().to_string(),
                }))
            }
        }
    })
}

/// The app a presented key belongs to, or `api_key_invalid`.
pub fn authenticate(conn: &mut DbConnection, presented: &str) -> Result<Uuid, ApiError> {
    let secret = ApiKeySecret::from_presented(presented);
    let hash = secret.hash();
    let key = q::find_key_by_hash(conn, &hash)?.ok_or(ApiError::ApiKeyInvalid)?;
    let stored = crate::domain::api_key::KeyHash::from_stored(key.key_hash);
    if key.revoked_at.is_some() || !stored.matches(&hash) {
        return Err(ApiError::ApiKeyInvalid);
    }
    Uuid::parse_str(&key.app_id).map_err(ApiError::internal)
}
