//! The `local:` storage backend's own upload and download routes.
//!
//! - `POST /files/upload`: a browser-style `multipart/form-data` upload made
//!   from a [`PresignedPost`](crate::storage::PresignedPost): the text fields
//!   `key`, `Content-Type` and `policy` (a signed token), then `file` last.
//!   Answers 204 like S3. Errors: 403 `signature_expired` / `signature_invalid`
//!   (bad policy, or a `key` the policy does not name), 400
//!   `validation_failed` (missing or unknown fields, `Content-Type` other than
//!   the policy's, empty file, not multipart), 413 `payload_too_large`.
//! - `GET /files/{key}?token=…`: the object's bytes with its content type, for
//!   a token naming exactly that key. 403 as above, 404 `not_found`.
//!
//! Registered in the route table (`routes::ROUTES`); the handlers take a
//! `web::Data<Storage>`. With the S3 backend both routes answer 404.

use std::collections::BTreeMap;

use actix_multipart::{Multipart, MultipartError};
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt;

use super::audit::{audited_read, target};
use crate::app::AppState;
use crate::error::{ApiError, Refusal};
use crate::services::write::{Actor, Operation};
use crate::storage::{LocalStore, ObjectKey, Storage, StorageError, TokenError, UploadError};

/// Longest text field accepted in the upload form (the policy is ~400 bytes).
const MAX_TEXT_FIELD_BYTES: usize = 8 * 1024;

fn local(storage: &Storage) -> Result<&LocalStore, ApiError> {
    storage.as_local().ok_or(ApiError::NotFound)
}

fn refused(e: TokenError) -> ApiError {
    match e {
        TokenError::Expired => {
            ApiError::refused(Refusal::SignatureExpired, "The signature has expired.")
        }
        TokenError::Invalid => {
            ApiError::refused(Refusal::SignatureInvalid, "The signature is invalid.")
        }
    }
}

fn multipart_error(e: MultipartError) -> ApiError {
    match e {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => {
            ApiError::invalid("body", "Send the upload as multipart/form-data.")
        }
        MultipartError::Payload(e) if super::deadline::is_body_timeout(&e) => {
            ApiError::RequestTimeout
        }
        other => ApiError::invalid("body", format!("The multipart body is malformed: {other}")),
    }
}

/// The form's text fields, by their canonical name.
const TEXT_FIELDS: [&str; 3] = ["key", "Content-Type", "policy"];

pub async fn upload(
    storage: web::Data<Storage>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let local = local(&storage)?;
    let mut fields: BTreeMap<&'static str, String> = BTreeMap::new();
    while let Some(field) = form.try_next().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name.eq_ignore_ascii_case("file") {
            store_file(local, &fields, field).await?;
            // Like S3, anything after the file is ignored.
            return Ok(HttpResponse::NoContent().finish());
        }
        let Some(canonical) = TEXT_FIELDS
            .into_iter()
            .find(|f| f.eq_ignore_ascii_case(&name))
        else {
            return Err(ApiError::invalid(
                name,
                "Unknown form field; send key, Content-Type and policy, then file.",
            ));
        };
        if fields.contains_key(canonical) {
            return Err(ApiError::invalid(
                canonical,
                "The field is sent more than once.",
            ));
        }
        let value = read_text(canonical, field).await?;
        fields.insert(canonical, value);
    }
    Err(ApiError::invalid(
        "file",
        "The form has no file; send it last, named file.",
    ))
}

async fn read_text(name: &str, mut field: actix_multipart::Field) -> Result<String, ApiError> {
    let mut value = Vec::new();
    while let Some(chunk) = field.try_next().await.map_err(multipart_error)? {
        if value.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            return Err(ApiError::invalid(name, "The field is too long."));
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).map_err(|_| ApiError::invalid(name, "The field is not UTF-8 text."))
}

async fn store_file(
    local: &LocalStore,
    fields: &BTreeMap<&'static str, String>,
    file: actix_multipart::Field,
) -> Result<(), ApiError> {
    let field = |name: &'static str| {
        fields.get(name).ok_or_else(|| {
            ApiError::invalid(name, "The field is missing; send it before the file.")
        })
    };
    let grant = local
        .verify_upload_policy(field("policy")?)
        .map_err(refused)?;
    if field("key")? != grant.key.as_str() {
        return Err(ApiError::refused(
            Refusal::SignatureInvalid,
            "The policy does not allow uploading to this key.",
        ));
    }
    if field("Content-Type")? != &grant.content_type {
        return Err(ApiError::invalid(
            "Content-Type",
            format!("Must be {}, as the policy says.", grant.content_type),
        ));
    }
    match local.write_stream(&grant.key, grant.max_bytes, file).await {
        Ok(_) => Ok(()),
        Err(UploadError::TooLarge { .. }) => Err(ApiError::PayloadTooLarge),
        Err(UploadError::Empty) => Err(ApiError::invalid("file", "The file is empty.")),
        Err(UploadError::AlreadyUploaded) => Err(ApiError::refused(
            Refusal::DocumentAlreadyUploaded,
            "This key already holds an upload; KYC evidence cannot be replaced. Ask for a new upload form.",
        )),
        Err(UploadError::Body(e)) => Err(ApiError::invalid(
            "file",
            format!("Reading the file failed: {e}"),
        )),
        Err(UploadError::Storage(e)) => Err(e.into()),
    }
}

/// Serves a document's bytes, and records the attempt in the audit trail
/// whatever its outcome: on the chain of the object's app when the token
/// held, else on the server's (a refused token's path is only the
/// caller's word). The storage-only servers of this module's tests have no
/// write path and record nothing.
pub async fn download(
    storage: web::Data<Storage>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let local = local(&storage)?;
    let path = req.match_info().get("key").unwrap_or_default();
    let (app_id, served) = match serve(local, &req, path).await {
        Ok((key, response)) => (Some(key.app_id().clone()), Ok(response)),
        Err((key, refused)) => (key.map(|key| key.app_id().clone()), Err(refused)),
    };
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return served;
    };
    let actor = Actor::SignedUrl {
        app_id,
        request: crate::auth::request_context(&req),
    };
    // At most as long as a key can be; a refused path is the caller's text.
    let object: String = path.chars().take(512).collect();
    audited_read(
        state,
        actor,
        Operation::DocumentServe,
        vec![target("object", &object)],
        served,
    )
    .await
}

/// The object's bytes for a token naming it, with the key once the token
/// held.
async fn serve(
    local: &LocalStore,
    req: &HttpRequest,
    key: &str,
) -> Result<(ObjectKey, HttpResponse), (Option<ObjectKey>, ApiError)> {
    let token = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| {
            ApiError::refused(
                Refusal::SignatureInvalid,
                "A signed download URL is required.",
            )
        })
        .map_err(|e| (None, e))?;
    let (key, secret) = local
        .verify_download_token(&token, key)
        .map_err(|e| (None, refused(e)))?;
    let bytes = match local.read_clear(&key, secret.as_ref()).await {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound) => return Err((Some(key), ApiError::NotFound)),
        Err(other) => return Err((Some(key), other.into())),
    };
    let response = HttpResponse::Ok()
        .content_type(key.content_type().as_str())
        .insert_header(CacheControl(vec![
            CacheDirective::Private,
            CacheDirective::NoStore,
        ]))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(bytes);
    Ok((key, response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{files_under, ObjectKey, PresignedPost, S3Settings, StaticCredentials};
    use actix_web::dev::ServerHandle;
    use actix_web::{App, HttpServer};
    use reqwest::multipart::{Form, Part};
    use reqwest::StatusCode;
    use serde_json::Value;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

    struct Server {
        storage: web::Data<Storage>,
        handle: ServerHandle,
        base: String,
        _dir: tempfile::TempDir,
    }

    impl Server {
        async fn start() -> Server {
            let dir = tempfile::tempdir().unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let storage = web::Data::new(
                Storage::local(
                    dir.path().join("files"),
                    &base,
                    SECRET,
                    crate::storage::test_ring(),
                )
                .unwrap(),
            );
            Self::serve(storage, listener, base, dir)
        }

        fn serve(
            storage: web::Data<Storage>,
            listener: std::net::TcpListener,
            base: String,
            dir: tempfile::TempDir,
        ) -> Server {
            let data = storage.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .configure(crate::routes::configure)
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
            let handle = server.handle();
            actix_web::rt::spawn(server);
            Server {
                storage,
                handle,
                base,
                _dir: dir,
            }
        }

        fn local(&self) -> &LocalStore {
            self.storage.as_local().unwrap()
        }

        fn root(&self) -> &Path {
            self.local().root()
        }

        async fn presign(&self, key: &ObjectKey, max_bytes: u64) -> PresignedPost {
            self.storage
                .presign_post(key, Duration::from_secs(300), max_bytes)
                .await
                .unwrap()
        }

        async fn stop(self) {
            self.handle.stop(true).await;
        }
    }

    fn new_key(name: &str) -> ObjectKey {
        ObjectKey::new_upload(&crate::domain::ids::AppId::new(), name)
            .unwrap()
            .0
    }

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 256) as u8).collect()
    }

    fn form(fields: &[(&str, &str)], file: Option<Vec<u8>>) -> Form {
        let mut form = Form::new();
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        match file {
            Some(file) => form.part("file", Part::bytes(file).file_name("scan.bin")),
            None => form,
        }
    }

    fn fields_of(post: &PresignedPost) -> Vec<(&str, &str)> {
        post.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    async fn send(
        post: &PresignedPost,
        fields: &[(&str, &str)],
        file: Option<Vec<u8>>,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(&post.url)
            .multipart(form(fields, file))
            .send()
            .await
            .unwrap()
    }

    async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{body}");
        body
    }

    fn detail_field(body: &Value) -> &str {
        body["details"][0]["field"].as_str().unwrap_or_default()
    }

    #[actix_web::test]
    async fn upload_then_signed_download() {
        let server = Server::start().await;
        let storage = &server.storage;
        let (key, ct) =
            ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "Passport.JPEG").unwrap();
        let post = server.presign(&key, 100_000).await;
        assert_eq!(post.url, format!("{}/files/upload", server.base));
        assert!(!storage.exists(&key).await.unwrap());

        let content = bytes(100_000);
        let response = send(&post, &fields_of(&post), Some(content.clone())).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(storage.exists(&key).await.unwrap());
        // Stored sealed (nothing of the content in the clear), read back.
        let stored = storage.read(&key).await.unwrap();
        assert!(!stored.windows(64).any(|w| w == &content[1000..1064]));
        assert!(server.local().read_clear(&key, None).await.unwrap() == content);
        assert_eq!(
            files_under(server.root()),
            vec![server.root().join(key.as_str())]
        );

        let get = storage
            .presign_get(&key, None, Duration::from_secs(60))
            .await
            .unwrap();
        let response = reqwest::get(&get.url).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], ct.as_str());
        assert_eq!(response.headers()["content-length"], "100000");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store"));
        assert_eq!(response.bytes().await.unwrap().to_vec(), content);

        // The object URL alone gives nothing.
        let response = reqwest::get(&post.object_url).await.unwrap();
        expect_error(response, StatusCode::FORBIDDEN, "signature_invalid").await;
        // A second upload with the same form is refused: evidence is
        // write-once, and no temporary file is left behind.
        let response = send(&post, &fields_of(&post), Some(b"new".to_vec())).await;
        expect_error(response, StatusCode::CONFLICT, "document_already_uploaded").await;
        assert!(storage.read(&key).await.unwrap() == stored);
        assert_eq!(
            files_under(server.root()),
            vec![server.root().join(key.as_str())]
        );
        server.stop().await;
    }

    #[actix_web::test]
    async fn expired_signatures_are_refused() {
        let server = Server::start().await;
        let key = new_key("a.png");
        let past = chrono::Utc::now() - chrono::Duration::seconds(2);
        let post = server.local().presign_post_until(&key, 10, past).unwrap();
        let response = send(&post, &fields_of(&post), Some(bytes(5))).await;
        expect_error(response, StatusCode::FORBIDDEN, "signature_expired").await;
        assert!(!server.storage.exists(&key).await.unwrap());

        let fresh = server.presign(&key, 10).await;
        assert_eq!(
            send(&fresh, &fields_of(&fresh), Some(bytes(5)))
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        let get = server.local().presign_get_until(&key, None, past).unwrap();
        let response = reqwest::get(&get.url).await.unwrap();
        expect_error(response, StatusCode::FORBIDDEN, "signature_expired").await;
        server.stop().await;
    }

    #[actix_web::test]
    async fn tampered_signatures_are_refused() {
        let server = Server::start().await;
        let key = new_key("a.png");
        let post = server.presign(&key, 10).await;
        let mut policy = post.fields["policy"].clone();
        let at = policy.len() - 3;
        let c = if &policy[at..at + 1] == "A" { "B" } else { "A" };
        policy.replace_range(at..at + 1, c);
        let mut fields = fields_of(&post);
        fields.retain(|(n, _)| *n != "policy");
        fields.push(("policy", &policy));
        let response = send(&post, &fields, Some(bytes(5))).await;
        expect_error(response, StatusCode::FORBIDDEN, "signature_invalid").await;
        let mut fields = fields_of(&post);
        fields.retain(|(n, _)| *n != "policy");
        fields.push(("policy", "not-a-token"));
        let response = send(&post, &fields, Some(bytes(5))).await;
        expect_error(response, StatusCode::FORBIDDEN, "signature_invalid").await;
        assert!(!server.storage.exists(&key).await.unwrap());

        assert_eq!(
            send(&post, &fields_of(&post), Some(bytes(5)))
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        let get = server
            .storage
            .presign_get(&key, None, Duration::from_secs(60))
            .await
            .unwrap();
        let tampered = format!("{}x", get.url);
        let response = reqwest::get(&tampered).await.unwrap();
        expect_error(response, StatusCode::FORBIDDEN, "signature_invalid").await;
        let (without, _) = get.url.split_once('?').unwrap();
        let response = reqwest::get(format!("{without}?token=")).await.unwrap();
        expect_error(response, StatusCode::FORBIDDEN, "signature_invalid").await;
        server.stop().await;
    }

    #[actix_web::test]
    async fn tokens_are_for_one_key_and_one_method() {
        let server = Server::start().await;
        let key = new_key("a.png");
        let other_same_app = ObjectKey::new_upload(key.app_id(), "b.png").unwrap().0;
        let other_app = new_key("b.png");
        let post = server.presign(&key, 10).await;

        // Upload to another key with this key's policy.
        for other in [&other_same_app, &other_app] {
            let mut fields = fields_of(&post);
            fields.retain(|(n, _)| *n != "key");
            fields.push(("key", other.as_str()));
            let response = send(&post, &fields, Some(bytes(5))).await;
            expect_error(response, StatusCode::FORBIDDEN, "signature_invalid").await;
        }
        assert_eq!(files_under(server.root()), Vec::<PathBuf>::new());

        assert_eq!(
            send(&post, &fields_of(&post), Some(bytes(5)))
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            send(
                &server.presign(&other_app, 10).await,
                &fields_of(&server.presign(&other_app, 10).await),
                Some(bytes(3))
            )
            .await
            .status(),
            StatusCode::NO_CONTENT
        );

        // Download another (existing) key with this key's token.
        let get = server
            .storage
            .presign_get(&key, None, Duration::from_secs(60))
            .await
            .unwrap();
        let token = get.url.split_once("?token=").unwrap().1;
        for other in [&other_same_app, &other_app] {
            let url = format!("{}?token={token}", server.storage.object_url(other));
            let response = reqwest::get(&url).await.unwrap();
            expect_error(response, StatusCode::FORBIDDEN, "signature_invalid").await;
        }
        let url = format!("{}/files/{key}/?token={token}", server.base);
        expect_error(
            reqwest::get(&url).await.unwrap(),
            StatusCode::FORBIDDEN,
            "signature_invalid",
        )
        .await;

        // The upload policy does not download, the download token does not upload.
        let url = format!(
            "{}?token={}",
            server.storage.object_url(&key),
            post.fields["policy"]
        );
        expect_error(
            reqwest::get(&url).await.unwrap(),
            StatusCode::FORBIDDEN,
            "signature_invalid",
        )
        .await;
        let mut fields = fields_of(&post);
        fields.retain(|(n, _)| *n != "policy");
        fields.push(("policy", token));
        let response = send(&post, &fields, Some(bytes(5))).await;
        expect_error(response, StatusCode::FORBIDDEN, "signature_invalid").await;
        server.stop().await;
    }

    #[actix_web::test]
    async fn upload_must_match_the_policy() {
        let server = Server::start().await;
        let key = new_key("a.png");
        let post = server.presign(&key, 10).await;

        let mut fields = fields_of(&post);
        fields.retain(|(n, _)| *n != "Content-Type");
        fields.push(("Content-Type", "text/html"));
        let body = expect_error(
            send(&post, &fields, Some(bytes(5))).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(detail_field(&body), "Content-Type");

        expect_error(
            send(&post, &fields_of(&post), Some(bytes(11))).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
        let big = server.presign(&key, 100_000).await;
        expect_error(
            send(&big, &fields_of(&big), Some(bytes(300_000))).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .await;
        let body = expect_error(
            send(&post, &fields_of(&post), Some(Vec::new())).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(detail_field(&body), "file");

        let mut fields = fields_of(&post);
        fields.push(("x-amz-meta-owner", "me"));
        let body = expect_error(
            send(&post, &fields, Some(bytes(5))).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(detail_field(&body), "x-amz-meta-owner");

        let mut fields = fields_of(&post);
        fields.push(("key", key.as_str()));
        let body = expect_error(
            send(&post, &fields, Some(bytes(5))).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(detail_field(&body), "key");

        for missing in ["key", "Content-Type", "policy"] {
            let mut fields = fields_of(&post);
            fields.retain(|(n, _)| *n != missing);
            let body = expect_error(
                send(&post, &fields, Some(bytes(5))).await,
                StatusCode::BAD_REQUEST,
                "validation_failed",
            )
            .await;
            assert_eq!(detail_field(&body), missing);
        }
        let body = expect_error(
            send(&post, &fields_of(&post), None).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert_eq!(detail_field(&body), "file");

        // The file before the fields.
        let response = reqwest::Client::new()
            .post(&post.url)
            .multipart(form(&[], Some(bytes(5))).text("policy", post.fields["policy"].clone()))
            .send()
            .await
            .unwrap();
        let body = expect_error(response, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(detail_field(&body), "policy");

        // Not multipart at all.
        let response = reqwest::Client::new()
            .post(&post.url)
            .json(&post.fields)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "validation_failed").await;

        assert_eq!(
            files_under(server.root()),
            Vec::<PathBuf>::new(),
            "refused uploads leave nothing"
        );
        assert!(!server.storage.exists(&key).await.unwrap());
        server.stop().await;
    }

    #[actix_web::test]
    async fn missing_objects_and_wrong_methods() {
        let server = Server::start().await;
        let key = new_key("a.pdf");
        let get = server
            .storage
            .presign_get(&key, None, Duration::from_secs(60))
            .await
            .unwrap();
        expect_error(
            reqwest::get(&get.url).await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;

        let client = reqwest::Client::new();
        let response = client
            .put(format!("{}/files/upload", server.base))
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
        let response = client.delete(&get.url).send().await.unwrap();
        expect_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
        server.stop().await;
    }

    #[actix_web::test]
    async fn routes_answer_404_with_the_s3_backend() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let storage = Storage::s3(S3Settings {
            bucket: "kyc-docs".into(),
            prefix: None,
            region: Some("us-east-1".into()),
            endpoint_url: None,
            static_credentials: Some(StaticCredentials {
                access_key_id: "AK".into(),
                secret_access_key: "SK".into(),
                session_token: None,
            }),
            force_path_style: false,
            server_side_encryption: None,
        })
        .await
        .unwrap();
        let server = Server::serve(
            web::Data::new(storage),
            listener,
            base.clone(),
            tempfile::tempdir().unwrap(),
        );
        let key = new_key("a.png");
        let response = reqwest::get(format!("{base}/files/{key}?token=x"))
            .await
            .unwrap();
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
        let response = reqwest::Client::new()
            .post(format!("{base}/files/upload"))
            .multipart(form(&[("key", key.as_str())], Some(bytes(1))))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
        server.stop().await;
    }
}
