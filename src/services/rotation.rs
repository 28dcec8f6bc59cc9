//! `kyc-api encryption rotate`: brings everything sealed by the server's
//! key ring under its first key, so older keys can then be removed, and
//! seals what was written before encryption at rest.
//!
//! Runs beside serving replicas (which must already hold the new key
//! first and the old ones after it): every batch is its own short write,
//! every replacement is a compare-and-set on the value read (a value the
//! server changed meanwhile was sealed with the current key anyway), so a
//! run can be stopped and started again at any point.

use crate::db::custody::{self as q, SealedPlace};
use crate::db::Db;
use crate::domain::crypto::KeyRing;
use crate::domain::ids::{AppId, IdentityId};
use crate::domain::pii::key_context;
use crate::error::ApiError;
use crate::services::custody::NewKey;
use crate::services::write::{Actor, Change, Operation, WritePath};

const BATCH: i64 = 200;

/// What a run did.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationReport {
    /// The key everything is sealed under now.
    pub sealing_key: String,
    /// Identities' data keys wrapped again under the sealing key.
    pub data_keys_rewrapped: usize,
    /// Identities written before encryption at rest, given a data key and
    /// their personal data fields sealed.
    pub identities_sealed: usize,
    /// Server secrets, webhook signing secrets and stored Idempotency-Key
    /// answers sealed again (or sealed for the first time).
    pub values_resealed: usize,
    /// Values that could not be opened (named in the log); a run with any
    /// leaves them as they are and exits non-zero.
    pub failures: usize,
}

/// Runs the whole rotation; `progress` hears a line per batch.
pub fn rotate(
    write: &WritePath,
    db: &Db,
    keys: &KeyRing,
    actor: &Actor,
    mut progress: impl FnMut(&str),
) -> Result<RotationReport, ApiError> {
    let mut report = RotationReport {
        sealing_key: keys.sealing_kid().to_owned(),
        ..RotationReport::default()
    };
    rewrap_data_keys(write, db, keys, actor, &mut report, &mut progress)?;
    seal_legacy_identities(write, db, keys, actor, &mut report, &mut progress)?;
    reseal_values(write, db, keys, actor, &mut report, &mut progress)?;
    Ok(report)
}

fn rewrap_data_keys(
    write: &WritePath,
    db: &Db,
    keys: &KeyRing,
    actor: &Actor,
    report: &mut RotationReport,
    progress: &mut impl FnMut(&str),
) -> Result<(), ApiError> {
    let sealed_now = keys.sealing_prefix();
    let mut after: Option<IdentityId> = None;
    loop {
        let batch = q::keys_to_rewrap(&mut *db.checkout()?, &sealed_now, after.as_ref(), BATCH)?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = Some(last.identity_id.clone());
        let mut rewrapped = Vec::new();
        for key in &batch {
            match keys.rewrap(&key.wrapped_key, &key_context(&key.identity_id)) {
                Ok(new) => rewrapped.push((key, new)),
                Err(e) => {
                    tracing::error!(identity_id = %key.identity_id, error = %e, "a data key does not open; left as it is");
                    report.failures += 1;
                }
            }
        }
        let done = write.run_blocking(actor.clone(), Operation::EncryptionRotate, |tx| {
            let mut done = 0;
            for (key, new) in &rewrapped {
                done += q::rewrap_key(tx.conn(), key, new)?;
            }
            tx.record(Change::SealedAgain {
                what: "data keys",
                count: done,
            });
            Ok::<_, ApiError>(done)
        })?;
        report.data_keys_rewrapped += done;
        progress(&format!(
            "data keys: {} rewrapped under `{}`",
            report.data_keys_rewrapped,
            keys.sealing_kid()
        ));
    }
}

fn seal_legacy_identities(
    write: &WritePath,
    db: &Db,
    keys: &KeyRing,
    actor: &Actor,
    report: &mut RotationReport,
    progress: &mut impl FnMut(&str),
) -> Result<(), ApiError> {
    let mut after: Option<IdentityId> = None;
    loop {
        let batch = q::identities_without_key(&mut *db.checkout()?, after.as_ref(), BATCH)?;
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        let (sealed, failed) = write.run_blocking(actor.clone(), Operation::EncryptionRotate, |tx| {
            let (mut sealed, mut failed) = (0, 0);
            for (id, app_id) in &batch {
                // Locked, and looked at again: the server may have sealed it
                // (a patch does) since the batch was read.
                let Some(row) = q::find_any_for_update(tx.read(), app_id, id)? else {
                    continue;
                };
                if row.erased_at.is_some() || row.wrapped_key.is_some() {
                    continue;
                }
                let data = match row.data(None) {
                    Ok(data) => data,
                    Err(e) => {
                        tracing::error!(identity_id = %id, error = %e, "an identity without a data key holds a sealed value; left as it is");
                        failed += 1;
                        continue;
                    }
                };
                let key = NewKey::make(keys, id);
                let pii = crate::db::identities::StoredPii::seal(&data, id, key.key());
                if key.store_for_existing(tx, app_id, id)?.is_some() {
                    q::set_pii(tx.conn(), app_id, id, &pii)?;
                    sealed += 1;
                }
            }
            tx.record(Change::SealedAgain {
                what: "identities",
                count: sealed,
            });
            Ok::<_, ApiError>((sealed, failed))
        })?;
        report.identities_sealed += sealed;
        report.failures += failed;
        progress(&format!(
            "identities written before encryption at rest: {} sealed",
            report.identities_sealed
        ));
    }
}

/// The value as it should be stored now, or `None` when it already is.
fn resealed(
    keys: &KeyRing,
    stored: &str,
    context: &[u8],
    report: &mut RotationReport,
    place: &SealedPlace,
) -> Option<String> {
    match KeyRing::kid_of(stored) {
        Some(kid) if kid == keys.sealing_kid() => None,
        Some(_) => match keys.open(stored, context) {
            Ok(clear) => Some(keys.seal(&clear, context)),
            Err(e) => {
                tracing::error!(?place, error = %e, "a sealed value does not open; left as it is");
                report.failures += 1;
                None
            }
        },
        None => Some(keys.seal(stored.as_bytes(), context)),
    }
}

fn reseal_values(
    write: &WritePath,
    db: &Db,
    keys: &KeyRing,
    actor: &Actor,
    report: &mut RotationReport,
    progress: &mut impl FnMut(&str),
) -> Result<(), ApiError> {
    let mut replacements: Vec<(SealedPlace, String, String)> = Vec::new();
    {
        let mut conn = db.checkout()?;
        for (name, value) in q::server_secrets(&mut conn)? {
            if name == crate::services::tenancy::SANDBOX_KEY_NAME {
                continue;
            }
            let place = SealedPlace::ServerSecret(name.clone());
            if let Some(new) = resealed(keys, &value, name.as_bytes(), report, &place) {
                replacements.push((place, value, new));
            }
        }
        for (id, secret, previous) in q::webhook_secrets(&mut conn)? {
            let context = crate::services::webhooks::secret_context(&id, "secret");
            let place = SealedPlace::WebhookSecret(id.clone());
            if let Some(new) = resealed(keys, &secret, &context, report, &place) {
                replacements.push((place, secret, new));
            }
            if let Some(previous) = previous {
                let context = crate::services::webhooks::secret_context(&id, "previous_secret");
                let place = SealedPlace::WebhookPreviousSecret(id);
                if let Some(new) = resealed(keys, &previous, &context, report, &place) {
                    replacements.push((place, previous, new));
                }
            }
        }
    }
    let mut after: Option<(AppId, String)> = None;
    loop {
        let batch = q::idempotency_answers(&mut *db.checkout()?, after.as_ref(), BATCH)?;
        let Some((app_id, key, _)) = batch.last() else {
            break;
        };
        after = Some((app_id.clone(), key.clone()));
        for (app_id, key, body) in batch {
            // Answers are JSON text, sealed or not.
            let Ok(stored) = String::from_utf8(body) else {
                continue;
            };
            let context = crate::services::idempotency::answer_context(&app_id, &key);
            let place = SealedPlace::IdempotencyAnswer(app_id, key);
            if let Some(new) = resealed(keys, &stored, &context, report, &place) {
                replacements.push((place, stored, new));
            }
        }
    }
    for chunk in replacements.chunks(BATCH as usize) {
        let done = write.run_blocking(actor.clone(), Operation::EncryptionRotate, |tx| {
            let mut done = 0;
            for (place, old, new) in chunk {
                done += q::replace_sealed(tx.conn(), place, old, new)?;
            }
            tx.record(Change::SealedAgain {
                what: "sealed values",
                count: done,
            });
            Ok::<_, ApiError>(done)
        })?;
        report.values_resealed += done;
        progress(&format!(
            "secrets and stored answers: {} sealed under `{}`",
            report.values_resealed,
            keys.sealing_kid()
        ));
    }
    Ok(())
}
