//! Documents in object storage, end to end: presign → real multipart upload
//! → identity referencing the URL → presigned download of the same bytes.
//! Local storage always; S3 against a real S3-compatible server that checks
//! signatures when `KYC_TEST_S3_ENDPOINT` is set (CI starts one).

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, Backend, TestApp, TestDatabase};
use crate::identities::person;

pub const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0fake jpeg bytes for a passport scan\xFF\xD9";

pub async fn presign(app: &TestApp, key: &str, filename: &str) -> (u16, Value) {
    json(
        app.client
            .post(app.url("/presign-url"))
            .header("apiKey", key)
            .json(&json!({"filename": filename}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn upload(
    app: &TestApp,
    presigned: &Value,
    content_type: &str,
    bytes: &[u8],
) -> reqwest::Response {
    post_form(&app.client, presigned, content_type, bytes).await
}

/// Posts the form as a browser would: every field, then `file`. Sent again
/// once when the pooled connection it went out on had been closed by the
/// server (hyper retries no POST itself: `IncompleteMessage` before any
/// answer byte), which s3s-fs does after some refusals.
pub async fn post_form(
    client: &reqwest::Client,
    presigned: &Value,
    content_type: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let form = || {
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in presigned["fields"].as_object().unwrap() {
            let value = if name == "Content-Type" {
                content_type.to_string()
            } else {
                value.as_str().unwrap().to_string()
            };
            form = form.text(name.clone(), value);
        }
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name("scan.jpg")
            .mime_str(content_type)
            .unwrap();
        form.part("file", part)
    };
    let url = presigned["url"].as_str().unwrap();
    match client.post(url).multipart(form()).send().await {
        Ok(response) => response,
        // A kept-alive connection the server closed just as the form went
        // out: the answer (IncompleteMessage) or the body (BrokenPipe) is
        // cut. The network's race, not the server's: send it again once.
        Err(err)
            if ["IncompleteMessage", "BrokenPipe"]
                .iter()
                .any(|cut| format!("{err:?}").contains(cut)) =>
        {
            client.post(url).multipart(form()).send().await.unwrap()
        }
        Err(err) => panic!("posting the form failed: {err:?}"),
    }
}

pub fn with_documents(email: &str, document_url: &str) -> Value {
    let mut body = person(email);
    body["documents"] = json!([{"type": "Passport", "side": "FrontSide", "url": document_url}]);
    body["faceImages"] = json!([document_url]);
    body
}

/// The whole happy path plus the cross-app and missing-object refusals,
/// whichever backend `app` stores documents in.
async fn round_trip(app: &TestApp) {
    let (status, body) = presign(app, &app.api_key, "passport.JPG").await;
    assert_eq!(status, 200, "{body}");
    let presigned = body["data"].clone();
    let document_url = presigned["documentUrl"].as_str().unwrap().to_string();
    assert!(
        document_url.contains(&format!("apps/{}/", app.app_id)),
        "{document_url}"
    );
    assert!(
        !document_url.contains("passport"),
        "keys never come from the client's filename"
    );

    // Referencing it before the upload: no such object yet.
    let (status, res) = json(
        app.post(
            "/identities",
            &with_documents("early@example.com", &document_url),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "validation_failed");
    assert_eq!(detail_fields(&res), ["documents[0].url", "faceImages[0]"]);

    let res = upload(app, &presigned, "image/jpeg", JPEG).await;
    assert!(
        res.status().is_success(),
        "upload: {} {}",
        res.status(),
        res.text().await.unwrap()
    );

    let (status, created) = json(
        app.post(
            "/identities",
            &with_documents("docs@example.com", &document_url),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let identity_id = created["data"]["id"].as_str().unwrap().to_string();
    let document_id = created["data"]["documents"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // What is stored is a sealed copy (see `evidence_is_write_once`).
    let evidence_url = created["data"]["documents"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        evidence_url.contains(&format!("apps/{}/evidence/", app.app_id)),
        "{evidence_url}"
    );
    assert_eq!(
        created["data"]["documents"][1]["url"],
        evidence_url.as_str()
    );

    let (status, body) = json(
        app.get(&format!(
            "/identities/{identity_id}/documents/{document_id}/presign-url"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let download_url = body["data"]["presignUrl"].as_str().unwrap().to_string();
    let res = app.client.get(&download_url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        JPEG,
        "the same bytes come back"
    );

    // Without its signature the object is not readable.
    for unsigned in [&document_url, &evidence_url] {
        assert!(app
            .client
            .get(unsigned)
            .send()
            .await
            .unwrap()
            .status()
            .is_client_error());
    }
    // A tampered signature is refused.
    let tampered = tamper(&download_url);
    assert_eq!(
        app.client.get(&tampered).send().await.unwrap().status(),
        403
    );

    // Another app can neither reference our object nor read it through us.
    let (_, other_key) = app.create_other_app("other");
    let (status, res) = json(
        app.client
            .post(app.url("/identities"))
            .header("apiKey", &other_key)
            .json(&with_documents("thief@example.com", &document_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "validation_failed");
    assert_eq!(detail_fields(&res), ["documents[0].url", "faceImages[0]"]);
    let (status, res) = json(
        app.client
            .get(app.url(&format!(
                "/identities/{identity_id}/documents/{document_id}/presign-url"
            )))
            .header("apiKey", &other_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 404, "identity_not_found");

    // Unknown and deleted documents.
    let (status, res) = json(
        app.get(&format!(
            "/identities/{identity_id}/documents/{}/presign-url",
            uuid::Uuid::new_v4()
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &res, 404, "document_not_found");
    app.patch(
        &format!("/identities/{identity_id}"),
        &json!({"documents": []}),
    )
    .send()
    .await
    .unwrap();
    let (status, res) = json(
        app.get(&format!(
            "/identities/{identity_id}/documents/{document_id}/presign-url"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &res, 404, "document_not_found");
}

/// Flips one character of the signature part of a presigned URL.
fn tamper(url: &str) -> String {
    for marker in ["X-Amz-Signature=", "token="] {
        if let Some(pos) = url.find(marker) {
            let at = pos + marker.len() + 5;
            let mut bytes = url.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            return String::from_utf8(bytes).unwrap();
        }
    }
    panic!("no signature in {url}");
}

backend_tests!(
    local_round_trip,
    documents_survive_a_new_public_url,
    local_evidence_is_write_once,
    local_refusals,
    external_documents_and_filenames
);

async fn local_round_trip(app: TestApp) {
    round_trip(&app).await;
}

/// Documents are stored as keys: a server on another address (a restart on
/// another port, a new KYC_PUBLIC_URL) answers them with its own URLs and
/// serves them, after the server that stored them is gone.
async fn documents_survive_a_new_public_url(first: TestApp) {
    let files = tempfile::tempdir().unwrap();
    let storage = format!("local:{}", files.path().display());
    // The fixture's server keeps its own storage; these two share one.
    let a = TestApp::spawn_with(first.db.alias(), &[("KYC_STORAGE", &storage)]).await;
    let (_, body) = presign(&a, &a.api_key, "passport.jpg").await;
    let presigned = body["data"].clone();
    assert!(upload(&a, &presigned, "image/jpeg", JPEG)
        .await
        .status()
        .is_success());
    let document_url = presigned["documentUrl"].as_str().unwrap();
    let created =
        crate::identities::create(&a, &with_documents("moved@example.com", document_url)).await;
    let identity = created["id"].as_str().unwrap();
    let document = created["documents"][0]["id"].as_str().unwrap();
    assert!(created["documents"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with(&a.address));
    drop(a);

    let b = TestApp::spawn_with(first.db.alias(), &[("KYC_STORAGE", &storage)]).await;
    let read = crate::identities::get_ok(&b, identity).await;
    let url = read["documents"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/files/apps/{}/evidence/", b.address, b.app_id)),
        "{url} is built from the new address"
    );
    let (status, body) = json(
        b.get(&format!(
            "/identities/{identity}/documents/{document}/presign-url"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let res = b
        .client
        .get(body["data"]["presignUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), JPEG);
}

async fn local_evidence_is_write_once(app: TestApp) {
    evidence_is_write_once(&app).await;
}

/// A document's bytes never change once attached. Attaching seals a copy
/// under an evidence key no upload form can name; re-posting the upload
/// form (still valid) afterwards is refused by local storage and accepted
/// by S3 (POST policies cannot forbid overwriting), and either way the
/// document still downloads its first bytes. Its URL sent back as answered
/// names the same sealed copy.
async fn evidence_is_write_once(app: &TestApp) {
    let (_, body) = presign(app, &app.api_key, "passport.jpg").await;
    let presigned = body["data"].clone();
    let document_url = presigned["documentUrl"].as_str().unwrap().to_string();
    assert!(upload(app, &presigned, "image/jpeg", JPEG)
        .await
        .status()
        .is_success());
    let created =
        crate::identities::create(app, &with_documents("once@example.com", &document_url)).await;
    let evidence_url = created["documents"][0]["url"].as_str().unwrap().to_string();
    assert_ne!(evidence_url, document_url);

    let replacement = b"\xFF\xD8\xFF\xE0a different face\xFF\xD9";
    let res = upload(app, &presigned, "image/jpeg", replacement).await;
    if app.uses_s3() {
        assert!(res.status().is_success(), "S3 takes the second upload");
    } else {
        let (status, body) = json(res).await;
        assert_error(status, &body, 409, "document_already_uploaded");
    }
    let identity = created["id"].as_str().unwrap();
    let download = |document: String| async move {
        let (_, body) = json(
            app.get(&format!(
                "/identities/{identity}/documents/{document}/presign-url"
            ))
            .send()
            .await
            .unwrap(),
        )
        .await;
        app.client
            .get(body["data"]["presignUrl"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    };
    let first = created["documents"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(download(first).await.as_ref(), JPEG, "the first bytes stay");

    // The answered URL sent back (a client round-tripping its documents)
    // keeps the same sealed copy; the upload URL would seal a new one.
    let (status, patched) = json(
        app.patch(
            &format!("/identities/{identity}"),
            &json!({"documents": [{"type": "Passport", "side": "FrontSide", "url": evidence_url}]}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["data"]["documents"][0]["url"],
        evidence_url.as_str()
    );
    let again = patched["data"]["documents"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(download(again).await.as_ref(), JPEG);
}

async fn local_refusals(app: TestApp) {
    let (_, body) = presign(&app, &app.api_key, "id.png").await;
    let presigned = body["data"].clone();

    // Wrong content type for the policy.
    let res = upload(&app, &presigned, "application/pdf", b"%PDF-1.4").await;
    let (status, body) = json(res).await;
    assert_error(status, &body, 400, "validation_failed");

    // Tampered policy.
    let mut tampered = presigned.clone();
    let policy = tampered["fields"]["policy"].as_str().unwrap().to_string();
    tampered["fields"]["policy"] = json!(format!("{}x", &policy[..policy.len() - 1]));
    let (status, body) = json(upload(&app, &tampered, "image/png", b"png").await).await;
    assert_error(status, &body, 403, "signature_invalid");

    // Another key than the policy's.
    let mut other_key = presigned.clone();
    other_key["fields"]["key"] = json!(format!(
        "apps/{}/documents/{}.png",
        app.app_id,
        uuid::Uuid::new_v4()
    ));
    let (status, body) = json(upload(&app, &other_key, "image/png", b"png").await).await;
    assert_error(status, &body, 403, "signature_invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_limits_size_and_time() {
    let app = TestApp::spawn_with(
        TestDatabase::create(Backend::Sqlite),
        &[
            ("KYC_MAX_DOCUMENT_BYTES", "100"),
            ("KYC_UPLOAD_TTL_SECONDS", "1"),
            ("KYC_PRESIGN_TTL_SECONDS", "1"),
        ],
    )
    .await;
    let (_, body) = presign(&app, &app.api_key, "big.jpg").await;
    let (status, res) = json(upload(&app, &body["data"], "image/jpeg", &[7u8; 101]).await).await;
    assert_error(status, &res, 413, "payload_too_large");
    let res = upload(&app, &body["data"], "image/jpeg", &[7u8; 100]).await;
    assert_eq!(res.status(), 204, "exactly the limit is fine");

    let document_url = body["data"]["documentUrl"].as_str().unwrap().to_string();
    let (_, created) = json(
        app.post(
            "/identities",
            &with_documents("t@example.com", &document_url),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let (identity_id, document_id) = (
        created["data"]["id"].as_str().unwrap().to_string(),
        created["data"]["documents"][0]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let (_, signed) = json(
        app.get(&format!(
            "/identities/{identity_id}/documents/{document_id}/presign-url"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;

    let (_, late) = presign(&app, &app.api_key, "late.jpg").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, res) = json(upload(&app, &late["data"], "image/jpeg", b"late").await).await;
    assert_error(status, &res, 403, "signature_expired");
    let (status, res) = json(
        app.client
            .get(signed["data"]["presignUrl"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 403, "signature_expired");
}

async fn external_documents_and_filenames(app: TestApp) {
    // External https documents are kept as they are and presigned as is.
    let url = "https://cdn.example.com/kyc/passport.jpg";
    let (_, created) = json(
        app.post("/identities", &with_documents("ext@example.com", url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (identity_id, document_id) = (
        created["data"]["id"].as_str().unwrap(),
        created["data"]["documents"][0]["id"].as_str().unwrap(),
    );
    let (status, body) = json(
        app.get(&format!(
            "/identities/{identity_id}/documents/{document_id}/presign-url"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["presignUrl"], url);

    for insecure in [
        "http://cdn.example.com/a.jpg",
        "HTTP://cdn.example.com/a.jpg",
    ] {
        let (status, res) = json(
            app.post("/identities", &with_documents("http@example.com", insecure))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &res, 400, "validation_failed");
        assert_eq!(
            detail_fields(&res),
            ["documents[0].url", "faceImages[0]"],
            "{insecure}"
        );
    }
    // URLs are stored normalised, so what comes back is always a valid URI.
    let (status, res) = json(
        app.post(
            "/identities",
            &with_documents("norm@example.com", "HTTPS://CDN.Example.com/a b|c.jpg"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(
        res["data"]["documents"][0]["url"],
        "https://cdn.example.com/a%20b%7Cc.jpg"
    );
    let (status, res) = json(
        app.post(
            "/identities",
            &with_documents("http@example.com", "http://cdn.example.com/a.jpg"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "validation_failed");

    for filename in ["malware.exe", "", "noextension", "../../etc/passwd"] {
        let (status, res) = presign(&app, &app.api_key, filename).await;
        assert_error(status, &res, 400, "validation_failed");
        assert_eq!(detail_fields(&res), ["filename"], "{filename}");
    }
    let (status, res) = json(
        app.post("/presign-url", &json!({"filename": "a.pdf", "size": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "validation_failed");
    let (status, res) = json(
        app.get("/identities/nope/documents/x/presign-url")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "validation_failed");
}

/// An app storing documents in a fresh bucket of the test S3 server, or
/// None (with a note) when no server is configured.
pub async fn s3_app(backend: Backend) -> Option<TestApp> {
    let (endpoint, access, secret) = crate::helpers::test_s3()?;
    if backend == Backend::Postgres && crate::helpers::postgres_admin_url().is_none() {
        return None;
    }
    let bucket = crate::helpers::create_test_bucket(&endpoint, &access, &secret).await;
    let storage = format!("s3://{bucket}/kyc");
    Some(
        TestApp::spawn_with(
            TestDatabase::create(backend),
            &[
                ("KYC_STORAGE", storage.as_str()),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", access.as_str()),
                ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("KYC_S3_FORCE_PATH_STYLE", "true"),
                ("KYC_MAX_DOCUMENT_BYTES", "1000"),
                ("KYC_PRESIGN_TTL_SECONDS", "2"),
            ],
        )
        .await,
    )
}

async fn s3_round_trip_and_refusals(backend: Backend) {
    let Some(app) = s3_app(backend).await else {
        return;
    };
    round_trip(&app).await;
    evidence_is_write_once(&app).await;

    let (_, body) = presign(&app, &app.api_key, "scan.jpg").await;
    let presigned = body["data"].clone();
    assert!(
        presigned["fields"]["x-amz-signature"].is_string(),
        "{presigned}"
    );
    // The policy, enforced by S3 itself.
    assert_eq!(
        upload(&app, &presigned, "image/png", JPEG).await.status(),
        400,
        "wrong content type"
    );
    assert_eq!(
        upload(&app, &presigned, "image/jpeg", &[1u8; 1001])
            .await
            .status(),
        400,
        "too large"
    );
    let mut tampered = presigned.clone();
    let signature = tampered["fields"]["x-amz-signature"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = match signature.strip_prefix('a') {
        Some(rest) => format!("b{rest}"),
        None => format!("a{}", &signature[1..]),
    };
    tampered["fields"]["x-amz-signature"] = json!(flipped);
    assert_eq!(
        upload(&app, &tampered, "image/jpeg", JPEG).await.status(),
        403,
        "tampered signature"
    );

    // A presigned GET expires.
    assert_eq!(
        upload(&app, &presigned, "image/jpeg", JPEG).await.status(),
        204
    );
    let url = presigned["documentUrl"].as_str().unwrap();
    let (_, created) = json(
        app.post("/identities", &with_documents("exp@example.com", url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (identity_id, document_id) = (
        created["data"]["id"].as_str().unwrap(),
        created["data"]["documents"][0]["id"].as_str().unwrap(),
    );
    let (_, signed) = json(
        app.get(&format!(
            "/identities/{identity_id}/documents/{document_id}/presign-url"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let signed = signed["data"]["presignUrl"].as_str().unwrap().to_string();
    assert_eq!(app.client.get(&signed).send().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        app.client.get(&signed).send().await.unwrap().status(),
        403,
        "expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trip_and_refusals_sqlite() {
    s3_round_trip_and_refusals(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trip_and_refusals_postgres() {
    s3_round_trip_and_refusals(Backend::Postgres).await;
}

/// Role-based setups give no keys in the environment: the server takes its
/// S3 credentials and region from aws-config's default chain, here from
/// shared profile files only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_credentials_and_region_from_a_shared_profile() {
    let Some((endpoint, access, secret)) = crate::helpers::test_s3() else {
        return;
    };
    let bucket = crate::helpers::create_test_bucket(&endpoint, &access, &secret).await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(
        &credentials,
        format!("[kyc]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::write(&config, "[profile kyc]\nregion = us-east-1\n").unwrap();
    let db = TestDatabase::create(Backend::Sqlite);
    let storage = format!("s3://{bucket}");
    let server = crate::helpers::ServerProcess::start(&[
        ("DATABASE_URL", db.url.as_str()),
        ("KYC_BOOTSTRAP_API_KEY", crate::helpers::BOOTSTRAP_KEY),
        ("KYC_STORAGE", storage.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("KYC_S3_FORCE_PATH_STYLE", "true"),
        ("AWS_PROFILE", "kyc"),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        // No instance metadata to wait for on a machine that has none.
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ])
    .await;
    let client = reqwest::Client::new();
    let key = crate::helpers::BOOTSTRAP_KEY;
    let (status, form) = json(
        client
            .post(server.url("/presign-url"))
            .header("apiKey", key)
            .json(&json!({"filename": "passport.jpg"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{form}");
    assert!(
        form["data"]["fields"]["x-amz-credential"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{access}/")),
        "{form}"
    );
    let res = post_form(&client, &form["data"], "image/jpeg", JPEG).await;
    assert!(res.status().is_success(), "{}", res.status());
    let (status, created) = json(
        client
            .post(server.url("/identities"))
            .header("apiKey", key)
            .json(&with_documents(
                "profile@example.com",
                form["data"]["documentUrl"].as_str().unwrap(),
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let (identity, document) = (
        created["data"]["id"].as_str().unwrap(),
        created["data"]["documents"][0]["id"].as_str().unwrap(),
    );
    let (_, signed) = json(
        client
            .get(server.url(&format!(
                "/identities/{identity}/documents/{document}/presign-url"
            )))
            .header("apiKey", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let res = client
        .get(signed["data"]["presignUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), JPEG);
}
