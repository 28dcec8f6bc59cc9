//! Presigned uploads and downloads of identity documents.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::audit::{audited_read, target};
use super::{idempotent, parse_id, Body};
use crate::app::AppState;
use crate::auth::AuthenticatedApp;
use crate::domain::ids::{DocumentId, IdentityId};
use crate::error::ApiError;
use crate::services::documents as service;
use crate::services::write::{Answer, Operation};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresignBody {
    filename: String,
}

/// `POST /presign-url`: an upload form for one new object of the caller's
/// app, and the URL to reference it by once uploaded.
pub async fn presign_upload(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    req: HttpRequest,
    Body(body): Body<PresignBody>,
) -> Result<HttpResponse, ApiError> {
    idempotent::answer(&state, &auth, &req, |_| async {
        let post = service::presign_upload(
            &state.storage,
            &state.settings.storage,
            &auth.app_id,
            &body.filename,
        )
        .await?;
        Answer::json(
            200,
            &json!({
                "data": {
                    "url": post.url,
                    "fields": post.fields,
                    "documentUrl": post.object_url,
                    "expiresAt": crate::domain::time::format_timestamp(post.expires_at.naive_utc()),
                }
            }),
        )
    })
    .await
}

/// `GET /identities/:identityId/documents/:id/presign-url`: a short-lived
/// download URL for a stored document; an external document's URL as is.
pub async fn presign_download(
    state: web::Data<AppState>,
    auth: AuthenticatedApp,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (identity_id, document_id) = path.into_inner();
    let identity_id: IdentityId = parse_id("identityId", &identity_id)?;
    let document_id: DocumentId = parse_id("id", &document_id)?;
    let targets = vec![
        target("identity", identity_id.as_str()),
        target("document", document_id.as_str()),
    ];
    let url = service::presign_download(
        &state.db,
        &state.storage,
        state.keys.clone(),
        &state.settings.storage,
        &auth.app_id,
        identity_id,
        document_id,
    )
    .await;
    let url = audited_read(
        &state,
        auth.actor(),
        Operation::DocumentDownloadUrl,
        targets,
        url,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "data": { "presignUrl": url } })))
}
