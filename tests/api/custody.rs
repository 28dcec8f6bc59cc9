//! PII custody: personal data sealed at rest under each identity's own
//! key, and what a sealed value moved elsewhere does.

use base64::Engine;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::documents::{post_form, presign, with_documents, JPEG};
use crate::helpers::{
    assert_error, database_bytes, json, query_count, Backend, TestApp, TestDatabase,
};
use crate::identities::{company, create, person};

backend_tests!(
    personal_data_is_sealed_at_rest,
    a_sealed_value_moved_to_another_identity_does_not_open,
    erasure_destroys_the_key_the_documents_and_the_personal_data,
    erasure_is_tenant_isolated_and_refuses_owners_of_live_companies,
    erasure_keeps_a_document_another_identity_shares,
    local_document_bytes_are_sealed_at_rest,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_erases_identities_deleted_long_enough_ago_sqlite() {
    retention_erases_identities_deleted_long_enough_ago(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_erases_identities_deleted_long_enough_ago_postgres() {
    if crate::helpers::postgres_admin_url().is_some() {
        retention_erases_identities_deleted_long_enough_ago(Backend::Postgres).await;
    }
}

/// With `KYC_RETENTION_DAYS=0` every deleted identity is due: the
/// background task (every second here) erases it; live ones stay.
async fn retention_erases_identities_deleted_long_enough_ago(backend: Backend) {
    let app = TestApp::spawn_with(
        TestDatabase::create(backend),
        &[
            ("KYC_RETENTION_DAYS", "0"),
            ("KYC_MAINTENANCE_INTERVAL_SECONDS", "1"),
        ],
    )
    .await;
    let kept = create(&app, &person("kept@example.com")).await;
    let gone = create(
        &app,
        &with_values(person("gone@example.com"), &PERSON_SECRETS),
    )
    .await;
    let (kept, gone) = (kept["id"].as_str().unwrap(), gone["id"].as_str().unwrap());
    let response = app
        .delete(&format!("/identities/{gone}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, body) = json(
            app.get(&format!("/identities/{gone}?includeErased=true"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if status == 200 {
            assert_eq!(body["data"]["erased"], true, "{body}");
            break;
        }
        assert_error(status, &body, 404, "identity_not_found");
        assert!(std::time::Instant::now() < deadline, "not erased in 15 s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, body) = json(
        app.get(&format!("/identities/{kept}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, events) = json(
        app.get(&format!(
            "/events?filter[identityId]={gone}&filter[type]=identity.erased"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_the_objects_from_s3_sqlite() {
    if let Some(app) = crate::documents::s3_app(Backend::Sqlite).await {
        erase_with_documents(&app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_the_objects_from_s3_postgres() {
    if let Some(app) = crate::documents::s3_app(Backend::Postgres).await {
        erase_with_documents(&app).await;
    }
}

/// The sealed fields of a person and a company, each a value found
/// nowhere else.
const PERSON_SECRETS: [(&str, &str); 6] = [
    ("/tax/idNumber", "TX7Q9Z4K2M"),
    ("/tax/state", "Zeta Province"),
    ("/birthday", "1987-06-05"),
    ("/phone/number", "+351 913 577 246"),
    ("/address/street", "Rua Secreta 4417"),
    ("/address/postalCode", "9988-771"),
];
const COMPANY_SECRETS: [(&str, &str); 2] = [
    ("/tax/formationRegion", "Omicron Region"),
    ("/address/state", "Xistral Heights"),
];

fn with_values(mut body: Value, values: &[(&str, &str)]) -> Value {
    for (pointer, value) in values {
        *body
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = json!(value);
    }
    body
}

/// Every form a value could leak in: as is, and in base64.
fn forms(value: &str) -> Vec<Vec<u8>> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut forms = vec![value.as_bytes().to_vec()];
    forms.extend(engines.iter().map(|e| e.encode(value).into_bytes()));
    forms
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn personal_data_is_sealed_at_rest(app: TestApp) {
    // A create with an Idempotency-Key (its answer is stored), a patch
    // (events carry the identity), a company and a block.
    let person_body = with_values(person("sealed@example.com"), &PERSON_SECRETS);
    let response = app
        .post("/identities", &person_body)
        .header("Idempotency-Key", "sealed-create-1")
        .send()
        .await
        .unwrap();
    let (status, created) = json(response).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let (status, body) = json(
        app.patch(
            &format!("/identities/{id}"),
            &json!({"name": "Sealed Person"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut company_body = company("sealed-co@example.com", &id);
    company_body["address"]["state"] = json!("");
    let company_body = with_values(company_body, &COMPANY_SECRETS);
    let company_id = create(&app, &company_body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = json(
        app.post(
            &format!("/identities/{id}/block"),
            &json!({"reason": "check"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Every value reads back as sent, one by one and in lists and events.
    let (_, one) = json(app.get(&format!("/identities/{id}")).send().await.unwrap()).await;
    let (_, other) = json(
        app.get(&format!("/identities/{company_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for (pointer, value) in PERSON_SECRETS {
        assert_eq!(one["data"].pointer(pointer), Some(&json!(value)), "{one}");
    }
    for (pointer, value) in COMPANY_SECRETS {
        assert_eq!(
            other["data"].pointer(pointer),
            Some(&json!(value)),
            "{other}"
        );
    }
    let (_, list) = json(app.get("/identities?page[size]=10").send().await.unwrap()).await;
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == json!(id))
        .expect("listed");
    assert_eq!(listed["tax"]["idNumber"], json!("TX7Q9Z4K2M"));
    let (_, events) = json(
        app.get(&format!("/events?filter[identityId]={id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let first = &events["data"][0];
    assert_eq!(first["type"], "identity.created", "{events}");
    assert_eq!(first["data"]["object"]["tax"]["idNumber"], "TX7Q9Z4K2M");

    // A retry answers the stored answer, opened.
    let (status, replayed) = json(
        app.post("/identities", &person_body)
            .header("Idempotency-Key", "sealed-create-1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &replayed), (200, &created));

    // What a copy of the database holds: none of them, in any form.
    let stored = database_bytes(&app.db);
    assert!(
        contains(&stored, b"sealed@example.com"),
        "the dump is readable"
    );
    for (_, value) in PERSON_SECRETS.iter().chain(COMPANY_SECRETS.iter()) {
        for form in forms(value) {
            assert!(
                !contains(&stored, &form),
                "{value} is stored as {}",
                String::from_utf8_lossy(&form)
            );
        }
    }
}

async fn a_sealed_value_moved_to_another_identity_does_not_open(app: TestApp) {
    let a = create(&app, &with_values(person("a@example.com"), &PERSON_SECRETS)).await;
    let b = create(&app, &person("b@example.com")).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    app.db.execute(&format!(
        "UPDATE identities SET tax_id_number = \
         (SELECT tax_id_number FROM identities WHERE id = '{a}') WHERE id = '{b}'"
    ));
    let response = app.get(&format!("/identities/{b}")).send().await.unwrap();
    let (status, body) = json(response).await;
    assert_error(status, &body, 500, "internal_error");
    assert!(!body.to_string().contains("TX7Q9Z4K2M"), "{body}");
    // The identity it came from still reads.
    let (status, body) = json(app.get(&format!("/identities/{a}")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["tax"]["idNumber"], "TX7Q9Z4K2M");
}

async fn erase(app: &TestApp, id: &str) -> u16 {
    let response = app
        .post(&format!("/identities/{id}/erase"), &json!({}))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// An identity with an uploaded document and PII, erased: its documents
/// leave the storage (sealed copies and uploads), its key row goes, it
/// answers 404 except with includeErased, its events stay but no longer
/// carry its data. Answers the identity's id.
async fn erase_with_documents(app: &TestApp) -> String {
    let (status, body) = presign(app, &app.api_key, "passport.jpg").await;
    assert_eq!(status, 200, "{body}");
    let form = body["data"].clone();
    assert_eq!(
        post_form(&app.client, &form, "image/jpeg", JPEG)
            .await
            .status()
            .as_u16()
            / 100,
        2
    );
    let upload_url = format!(
        "{}/{}",
        form["url"].as_str().unwrap().trim_end_matches('/'),
        form["fields"]["key"].as_str().unwrap()
    );
    let url = if app.uses_s3() {
        upload_url
    } else {
        // The local backend's object URL of the key.
        app.url(&format!(
            "/files/{}",
            form["fields"]["key"].as_str().unwrap()
        ))
    };
    let body = with_values(
        with_documents("erase-me@example.com", &url),
        &PERSON_SECRETS,
    );
    let created = create(app, &body).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(!app.stored_objects().await.is_empty());
    let before = query_count(
        &app.db,
        &format!("SELECT COUNT(*) AS count FROM identities WHERE id = '{id}' AND wrapped_key IS NOT NULL"),
    );
    assert_eq!(before, 1);

    assert_eq!(erase(app, &id).await, 204);
    assert_eq!(
        app.stored_objects().await,
        Vec::<String>::new(),
        "documents left in storage"
    );
    assert_eq!(
        query_count(
            &app.db,
            &format!("SELECT COUNT(*) AS count FROM identities WHERE id = '{id}' AND wrapped_key IS NOT NULL")
        ),
        0
    );
    assert_eq!(
        query_count(&app.db, &format!("SELECT COUNT(*) AS count FROM identities WHERE id = '{id}' AND name = '[erased]' AND email = 'erased@erased.invalid' AND phone_number = '' AND tax_id_number = ''")),
        1
    );

    let (status, body) = json(app.get(&format!("/identities/{id}")).send().await.unwrap()).await;
    assert_error(status, &body, 404, "identity_not_found");
    let (status, body) = json(
        app.get(&format!("/identities/{id}?includeErased=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["erased"], true);
    assert_eq!(body["data"]["id"], json!(id));
    assert!(body["data"]["erasedAt"].is_string(), "{body}");
    assert!(body["data"].get("name").is_none(), "{body}");
    let (status, body) = json(
        app.get(&format!("/identities/{id}?includeErased=maybe"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    // Without a key the caller learns nothing of the parameters first.
    let (status, body) = json(
        app.client
            .get(app.url(&format!("/identities/{id}?includeErased=maybe")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{body}");

    // Its events stay, in order, without its data.
    let (_, events) = json(
        app.get(&format!("/events?filter[identityId]={id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let types: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"identity.created"), "{events}");
    assert!(
        types.ends_with(&["identity.deleted", "identity.erased"]),
        "{types:?}"
    );
    let first = &events["data"][0];
    assert_eq!(
        first["data"],
        json!({"erased": true, "object": {"id": id}}),
        "{first}"
    );
    assert!(!events.to_string().contains("TX7Q9Z4K2M"));

    // Again: 204, nothing new; the email is free again.
    let count = events["data"].as_array().unwrap().len();
    assert_eq!(erase(app, &id).await, 204);
    let (_, again) = json(
        app.get(&format!("/events?filter[identityId]={id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again["data"].as_array().unwrap().len(), count);
    create(app, &person("erase-me@example.com")).await;
    id
}

async fn erasure_destroys_the_key_the_documents_and_the_personal_data(app: TestApp) {
    erase_with_documents(&app).await;
    // A deleted identity can be erased too (retention's case).
    let other = create(&app, &person("deleted-first@example.com")).await;
    let other = other["id"].as_str().unwrap();
    let response = app
        .delete(&format!("/identities/{other}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(erase(&app, other).await, 204);
    let (status, body) = json(
        app.get(&format!("/identities/{other}?includeErased=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["erased"]),
        (200, &json!(true)),
        "{body}"
    );
}

async fn erasure_is_tenant_isolated_and_refuses_owners_of_live_companies(app: TestApp) {
    let owner = create(&app, &person("owner@example.com")).await;
    let owner = owner["id"].as_str().unwrap();
    let company_id = create(&app, &company("co@example.com", owner)).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (_, other_key) = app.create_other_app("other");
    let response = app
        .client
        .post(app.url(&format!("/identities/{owner}/erase")))
        .header("apiKey", &other_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_error(status, &body, 404, "identity_not_found");
    let response = app
        .client
        .get(app.url(&format!("/identities/{owner}?includeErased=true")))
        .header("apiKey", &other_key)
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_error(status, &body, 404, "identity_not_found");

    let response = app
        .post(&format!("/identities/{owner}/erase"), &json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_error(status, &body, 409, "identity_owner_in_use");
    assert_eq!(erase(&app, &company_id).await, 204);
    assert_eq!(erase(&app, owner).await, 204);
    assert_eq!(erase(&app, &uuid::Uuid::new_v4().to_string()).await, 404);
}

/// A sealed copy sent back as another identity's document is that
/// identity's too: erasing the first keeps it.
async fn erasure_keeps_a_document_another_identity_shares(app: TestApp) {
    let (_, body) = presign(&app, &app.api_key, "passport.jpg").await;
    let form = body["data"].clone();
    let uploaded = post_form(&app.client, &form, "image/jpeg", JPEG).await;
    assert!(uploaded.status().is_success());
    let url = app.url(&format!(
        "/files/{}",
        form["fields"]["key"].as_str().unwrap()
    ));
    let first = create(&app, &with_documents("first@example.com", &url)).await;
    let sealed_url = first["documents"][0]["url"].as_str().unwrap();
    let second = create(&app, &with_documents("second@example.com", sealed_url)).await;
    let (first, second_id) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    let document = second["documents"][0]["id"].as_str().unwrap();
    assert_eq!(erase(&app, first).await, 204);

    let (status, body) = json(
        app.get(&format!(
            "/identities/{second_id}/documents/{document}/presign-url"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let download = app
        .client
        .get(body["data"]["presignUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), JPEG);
    // Once the second is erased too, nothing is left.
    assert_eq!(erase(&app, second_id).await, 204);
    assert_eq!(app.stored_objects().await, Vec::<String>::new());
}

/// The local storage directory never holds a document's bytes in the
/// clear: not the upload, not the sealed copies; downloads answer them.
async fn local_document_bytes_are_sealed_at_rest(app: TestApp) {
    let (_, body) = presign(&app, &app.api_key, "passport.jpg").await;
    let form = body["data"].clone();
    assert!(post_form(&app.client, &form, "image/jpeg", JPEG)
        .await
        .status()
        .is_success());
    let url = app.url(&format!(
        "/files/{}",
        form["fields"]["key"].as_str().unwrap()
    ));
    let created = create(&app, &with_documents("scan@example.com", &url)).await;
    // The same sealed copy sent back by another identity.
    let sealed_url = created["documents"][0]["url"].as_str().unwrap();
    let other = create(&app, &with_documents("scan2@example.com", sealed_url)).await;
    assert_eq!(
        app.stored_objects().await.len(),
        2,
        "the upload and the one sealed copy both identities name"
    );
    let stored = app.local_storage_bytes();
    let secret = &JPEG[4..40];
    assert!(
        !contains(&stored, secret),
        "document bytes stored in the clear"
    );
    for identity in [&created, &other] {
        for document in identity["documents"].as_array().unwrap() {
            let (status, body) = json(
                app.get(&format!(
                    "/identities/{}/documents/{}/presign-url",
                    identity["id"].as_str().unwrap(),
                    document["id"].as_str().unwrap()
                ))
                .send()
                .await
                .unwrap(),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let url = body["data"]["presignUrl"].as_str().unwrap();
            let download = app.client.get(url).send().await.unwrap();
            assert_eq!(download.status(), 200);
            assert!(download.bytes().await.unwrap().as_ref() == JPEG);
        }
    }
}
