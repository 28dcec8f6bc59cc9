//! Documents in object storage: handing out upload forms and download
//! URLs, and checking that URLs clients send into our storage are theirs and
//! exist.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::StorageSettings;
use crate::db::identities as q;
use crate::db::Db;
use crate::domain::crypto::KeyRing;
use crate::domain::document::DocumentLocation;
use crate::domain::identity::DocumentUrl;
use crate::domain::ids::{AppId, DocumentId, IdentityId};
use crate::error::{ApiError, FieldError, Refusal};
use crate::services::custody;
use crate::storage::{
    ObjectKey, ObjectKind, ObjectSecret, ObjectUrlMatch, PresignedPost, Storage, StorageError,
};

pub async fn presign_upload(
    storage: &Storage,
    settings: &StorageSettings,
    app_id: &AppId,
    filename: &str,
) -> Result<PresignedPost, ApiError> {
    let filename = crate::domain::input::bounded_text(filename, 255)
        .map_err(|m| ApiError::invalid("filename", m))?;
    let (key, _content_type) = ObjectKey::new_upload(app_id, &filename)
        .map_err(|e| ApiError::invalid("filename", e.to_string()))?;
    storage
        .presign_post(&key, settings.upload_ttl, settings.max_document_bytes)
        .await
        .map_err(storage_error)
}

pub async fn presign_download(
    db: &Db,
    storage: &Storage,
    keys: Arc<KeyRing>,
    settings: &StorageSettings,
    app_id: &AppId,
    identity_id: IdentityId,
    document_id: DocumentId,
) -> Result<String, ApiError> {
    let app = app_id.clone();
    let (document, secret) = db
        .run(move |conn| {
            let identity = q::find_live(conn, &app, &identity_id)?.ok_or_else(|| {
                ApiError::refused(Refusal::IdentityNotFound, "No identity with this id.")
            })?;
            let document = q::find_live_document(conn, &app, &identity_id, &document_id)?
                .ok_or_else(|| {
                    ApiError::refused(Refusal::DocumentNotFound, "No document with this id.")
                })?;
            let secret = match &document.object_secret {
                Some(sealed) => {
                    let key = custody::key_in(&keys, &identity)?.ok_or_else(|| {
                        ApiError::internal(anyhow::anyhow!(
                            "document {} has a sealed key but its identity has no data key",
                            document.id
                        ))
                    })?;
                    Some(custody::open_object_secret(&key, &document.id, sealed)?)
                }
                None => None,
            };
            Ok::<_, ApiError>((document, secret))
        })
        .await?;
    match document.url {
        // Rows are read by app, so the key is the app's; checked again
        // because signing another app's key would be a leak.
        DocumentLocation::Stored(key) if key.app_id() == app_id => {
            let signed = storage
                .presign_get(&key, secret.as_ref(), settings.presign_ttl)
                .await
                .map_err(storage_error)?;
            Ok(signed.url)
        }
        DocumentLocation::Stored(key) => Err(ApiError::internal(anyhow::anyhow!(
            "document {} of app {app_id} names a key of another app: {key}",
            document.id
        ))),
        DocumentLocation::External(url) => Ok(url.as_str().to_owned()),
    }
}

fn storage_error(err: StorageError) -> ApiError {
    err.into()
}

/// Where each document URL of a create or patch is stored, keyed by the
/// URL as sent (normalized): made by [`seal_document_urls`] before the
/// write transaction, read by the use case inside it.
#[derive(Debug, Default)]
pub struct SealedDocuments(HashMap<String, Sealed>);

/// Where a sent URL is stored, the upload it was copied from (when it
/// named an upload), and a local sealed copy's own key.
#[derive(Debug)]
pub struct Sealed {
    pub location: DocumentLocation,
    pub upload: Option<ObjectKey>,
    pub secret: Option<ObjectSecret>,
}

impl SealedDocuments {
    /// Where a URL the input sent is stored; every URL of the input was
    /// sealed before the transaction, so a miss is a bug.
    pub fn sealed(&self, url: &DocumentUrl) -> Result<&Sealed, ApiError> {
        self.0.get(url.as_str()).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "document URL {url:?} was not sealed before the write"
            ))
        })
    }
}

/// A field of the input and its position among the URLs sent.
type FieldAt = (usize, String);

/// Checks every document URL an input sends and makes what will be stored
/// for it. A URL into our storage must name an upload (or a sealed copy) of
/// the caller's app; it is sealed now ([`Storage::seal`]), so the document
/// keeps these bytes whatever happens to the upload later. Any other URL
/// must be https and is kept as sent. Nothing is copied unless every URL
/// passed the checks that need no storage access; copies run concurrently.
pub async fn seal_document_urls(
    storage: &Storage,
    app_id: &AppId,
    urls: Vec<(String, &DocumentUrl)>,
) -> Result<SealedDocuments, ApiError> {
    let mut problems = Vec::new();
    // Our objects to seal, each once, with every (position, field) that
    // sent it: a face image may also be a document.
    let mut ours: Vec<(&DocumentUrl, ObjectKey, Vec<FieldAt>)> = Vec::new();
    let mut sealed = HashMap::new();
    for (position, (field, url)) in urls.into_iter().enumerate() {
        match storage.parse_object_url(url.as_str()).owned_by(app_id) {
            ObjectUrlMatch::Ours(key) => match ours.iter_mut().find(|(u, _, _)| *u == url) {
                Some((_, _, fields)) => fields.push((position, field)),
                None => ours.push((url, key, vec![(position, field)])),
            },
            ObjectUrlMatch::Invalid => problems.push((
                position,
                FieldError::new(field, "is not a document of this app in our storage"),
            )),
            ObjectUrlMatch::External if url.is_https() => {
                sealed.insert(
                    url.as_str().to_owned(),
                    Sealed {
                        location: DocumentLocation::External(url.clone()),
                        upload: None,
                        secret: None,
                    },
                );
            }
            ObjectUrlMatch::External => problems.push((
                position,
                FieldError::new(field, "an external document URL must be https"),
            )),
        }
    }
    if problems.is_empty() {
        let copies = ours
            .into_iter()
            .map(|(url, key, fields)| async move { (url, storage.seal(&key).await, key, fields) });
        for (url, result, sent, fields) in futures_util::future::join_all(copies).await {
            match result {
                Ok((key, secret)) => {
                    let upload = (sent.kind() == ObjectKind::Upload).then_some(sent);
                    sealed.insert(
                        url.as_str().to_owned(),
                        Sealed {
                            location: DocumentLocation::Stored(key),
                            upload,
                            secret,
                        },
                    );
                }
                Err(StorageError::NotFound) => {
                    problems.extend(fields.into_iter().map(|(position, field)| {
                        let problem = FieldError::new(field, "no uploaded document at this URL");
                        (position, problem)
                    }))
                }
                Err(e) => return Err(storage_error(e)),
            }
        }
    }
    if problems.is_empty() {
        return Ok(SealedDocuments(sealed));
    }
    problems.sort_by_key(|(position, _)| *position);
    Err(ApiError::Validation(
        problems.into_iter().map(|(_, problem)| problem).collect(),
    ))
}
