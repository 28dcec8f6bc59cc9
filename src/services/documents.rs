//! Documents in object storage: handing out upload forms and download
//! URLs, and checking that URLs clients send into our storage are theirs and
//! exist.

use crate::config::StorageSettings;
use crate::db::identities as q;
use crate::db::Db;
use crate::domain::identity::DocumentUrl;
use crate::domain::ids::{AppId, DocumentId, IdentityId};
use crate::error::{ApiError, FieldError, Refusal};
use crate::storage::{ObjectKey, ObjectUrlMatch, PresignedPost, Storage, StorageError};

pub fn presign_upload(
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
        .map_err(storage_error)
}

pub async fn presign_download(
    db: &Db,
    storage: &Storage,
    settings: &StorageSettings,
    app_id: &AppId,
    identity_id: IdentityId,
    document_id: DocumentId,
) -> Result<String, ApiError> {
    let app = app_id.clone();
    let document = db
        .run(move |conn| {
            q::find_live(conn, &app, &identity_id)?.ok_or_else(|| {
                ApiError::refused(Refusal::IdentityNotFound, "No identity with this id.")
            })?;
            q::find_live_document(conn, &app, &identity_id, &document_id)?.ok_or_else(|| {
                ApiError::refused(Refusal::DocumentNotFound, "No document with this id.")
            })
        })
        .await?;
    match storage.parse_object_url(&document.url).owned_by(app_id) {
        ObjectUrlMatch::Ours(key) => {
            let signed = storage
                .presign_get(&key, settings.presign_ttl)
                .await
                .map_err(storage_error)?;
            Ok(signed.url)
        }
        ObjectUrlMatch::External => Ok(document.url),
        // Stored URLs were checked on the way in; one that no longer parses
        // as ours means the storage configuration changed under it.
        ObjectUrlMatch::Invalid => Err(ApiError::internal(anyhow::anyhow!(
            "document {} has a URL into our storage that is not a valid key",
            document.id
        ))),
    }
}

fn storage_error(err: StorageError) -> ApiError {
    err.into()
}

/// A URL into our storage must name an existing object of the caller's app;
/// any other URL must be https. Objects are checked concurrently.
pub async fn check_document_urls(
    storage: &Storage,
    app_id: &AppId,
    urls: Vec<(String, &DocumentUrl)>,
) -> Result<(), ApiError> {
    let checks = urls.into_iter().map(|(field, url)| async move {
        match storage.parse_object_url(url.as_str()).owned_by(app_id) {
            ObjectUrlMatch::Ours(key) => match storage.exists(&key).await {
                Ok(true) => Ok(None),
                Ok(false) => Ok(Some(FieldError::new(
                    field,
                    "no uploaded document at this URL",
                ))),
                Err(e) => Err(storage_error(e)),
            },
            ObjectUrlMatch::Invalid => Ok(Some(FieldError::new(
                field,
                "is not a document of this app in our storage",
            ))),
            ObjectUrlMatch::External if url.is_https() => Ok(None),
            ObjectUrlMatch::External => Ok(Some(FieldError::new(
                field,
                "an external document URL must be https",
            ))),
        }
    });
    let mut problems = Vec::new();
    for result in futures_util::future::join_all(checks).await {
        if let Some(problem) = result? {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(problems))
    }
}
