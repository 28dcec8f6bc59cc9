//! The identities contract, on both backends.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, TestApp};

/// The reference's own create body (João Pedro Soares).
pub fn reference_person() -> Value {
    json!({
      "address": {
        "city": "Braga",
        "country": "PT",
        "postalCode": "4444-333",
        "state": "Braga",
        "street": "Avenida D. João I,  40"
      },
      "birthday": "2000-11-11",
      "email": "foobar@publicmint.com",
      "gender": "Male",
      "name": "João Pedro Soares",
      "phone": {"number": "910000000", "sms": false},
      "tax": {"country": "PT", "idNumber": "1111111111", "state": "Braga"},
      "type": "person",
      "documents": [{
        "description": "ID card",
        "label": "id card",
        "side": "FrontSide",
        "type": "IdentityCard",
        "url": "https://pmint-custodial-api-sandbox-identity-docs.s3.amazonaws.com/fd/fc/09/dd/4nHVF9Hz9FArIrUo.jpeg"
      }],
      "faceImages": ["https://pmint-custodial-api-sandbox-identity-docs.s3.amazonaws.com/fd/fc/09/dd/4nHVF9Hz9FArIrUo.jpeg"]
    })
}

pub fn person(email: &str) -> Value {
    let mut body = reference_person();
    body["email"] = json!(email);
    body.as_object_mut().unwrap().remove("documents");
    body.as_object_mut().unwrap().remove("faceImages");
    body
}

pub fn company(email: &str, owner: &str) -> Value {
    json!({
        "type": "company",
        "name": "Soares Lda",
        "email": email,
        "identityOwner": owner,
        "address": {"street": "Rua 1", "city": "Porto", "postalCode": "4000-001", "country": "PT"},
        "phone": {"number": "+351 220 000 000", "sms": true},
        "tax": {"country": "PT", "idNumber": "500000000", "formationRegion": "Porto"}
    })
}

pub async fn create(app: &TestApp, body: &Value) -> Value {
    let (status, body) = json(app.post("/identities", body).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// `GET /identities/:id`, which must succeed.
pub async fn get_ok(app: &TestApp, id: &str) -> Value {
    let (status, body) = json(app.get(&format!("/identities/{id}")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn is_wire_timestamp(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

backend_tests!(
    ref_id_links_an_identity_to_the_clients_record,
    metadata_holds_the_clients_pairs,
    reference_create_example_has_the_reference_shape,
    reference_patch_example_replaces_documents,
    get_and_delete_follow_the_contract,
    validation_lists_every_violation,
    nested_unknown_fields_and_wrong_types_are_named,
    person_rules,
    company_rules_and_owner_checks,
    us_addresses_need_a_state,
    emails_are_unique_per_app_case_insensitively,
    non_ascii_email_case_is_folded_alike_on_both_backends,
    concurrent_creates_with_one_email_give_one_success,
    patch_merges_and_validates_the_whole_identity,
    confirmed_identities_lock_their_fields,
    owners_of_live_companies_cannot_be_deleted,
    ids_are_validated_and_scoped,
    apps_never_see_each_other,
);

async fn reference_create_example_has_the_reference_shape(app: TestApp) {
    let data = create(&app, &reference_person()).await;
    assert_eq!(
        keys(&data),
        [
            "address",
            "appId",
            "birthday",
            "blocked",
            "createdAt",
            "documents",
            "email",
            "gender",
            "id",
            "identityConfirmed",
            "identityOwner",
            "kycStatus",
            // Extensions, always present ({} and null when not given).
            "metadata",
            "name",
            "phone",
            "refId",
            "riskRating",
            "tax",
            "type",
            "updatedAt"
        ]
    );
    assert_eq!(data["appId"], app.app_id.as_str());
    assert!(uuid::Uuid::parse_str(data["id"].as_str().unwrap()).is_ok());
    assert_eq!(data["name"], "João Pedro Soares");
    assert_eq!(data["birthday"], "2000-11-11");
    assert_eq!(data["gender"], "Male");
    assert_eq!(data["type"], "person");
    assert_eq!(data["blocked"], false);
    assert_eq!(data["identityConfirmed"], false);
    assert_eq!(data["identityOwner"], Value::Null);
    assert_eq!(data["riskRating"], Value::Null);
    assert!(data["kycStatus"].is_array());
    assert_eq!(
        data["address"],
        json!({"city": "Braga", "state": "Braga", "street": "Avenida D. João I,  40", "country": "PT", "postalCode": "4444-333"})
    );
    assert_eq!(data["phone"], json!({"sms": false, "number": "910000000"}));
    assert_eq!(
        data["tax"],
        json!({"state": "Braga", "country": "PT", "idNumber": "1111111111", "formationRegion": null})
    );
    assert!(
        is_wire_timestamp(&data["createdAt"]),
        "{}",
        data["createdAt"]
    );
    assert_eq!(data["createdAt"], data["updatedAt"]);

    let docs = data["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2);
    for doc in docs {
        assert_eq!(
            keys(doc),
            [
                "createdAt",
                "deletedAt",
                "description",
                "id",
                "identityId",
                "label",
                "side",
                "type",
                "updatedAt",
                "url"
            ]
        );
        assert_eq!(doc["identityId"], data["id"]);
        assert_eq!(doc["deletedAt"], Value::Null);
        assert!(is_wire_timestamp(&doc["createdAt"]));
    }
    assert_eq!(docs[0]["type"], "identityCard");
    assert_eq!(docs[0]["side"], "frontSide");
    assert_eq!(docs[0]["label"], "id card");
    assert_eq!(docs[0]["description"], "ID card");
    assert_eq!(docs[1]["type"], "faceImage");
    assert_eq!(docs[1]["side"], "frontSide");
    assert_eq!(docs[1]["label"], Value::Null);

    // GET answers the same identity.
    let id = data["id"].as_str().unwrap();
    let (status, got) = json(app.get(&format!("/identities/{id}")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(got["data"], data);
}

async fn reference_patch_example_replaces_documents(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut patch = reference_person();
    patch.as_object_mut().unwrap().remove("type"); // the reference's PATCH omits it
    let (status, body) = json(
        app.patch(&format!("/identities/{id}"), &patch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let patched = &body["data"];
    assert_eq!(patched["createdAt"], created["createdAt"]);
    assert_ne!(patched["updatedAt"], created["updatedAt"]);
    let old_ids: Vec<&Value> = created["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["id"])
        .collect();
    let new_docs = patched["documents"].as_array().unwrap();
    assert_eq!(
        new_docs.len(),
        2,
        "old records disappear, new ones replace them"
    );
    for doc in new_docs {
        assert!(!old_ids.contains(&&doc["id"]), "new records get new ids");
        assert_eq!(doc["deletedAt"], Value::Null);
    }
    assert_eq!(new_docs[0]["type"], "identityCard");
    assert_eq!(new_docs[1]["type"], "faceImage");

    // Sending only faceImages replaces only the face images.
    let (_, body) = json(
        app.patch(
            &format!("/identities/{id}"),
            &json!({"faceImages": ["https://example.com/a.png", "https://example.com/b.png"]}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let docs = body["data"]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(
        docs[0]["id"], new_docs[0]["id"],
        "the identity card is kept"
    );
    assert_eq!(docs[1]["url"], "https://example.com/a.png");
    assert_eq!(docs[2]["url"], "https://example.com/b.png");

    // An empty array clears a set.
    let (_, body) = json(
        app.patch(&format!("/identities/{id}"), &json!({"documents": []}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let docs = body["data"]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2);
    assert!(docs.iter().all(|d| d["type"] == "faceImage"));
}

async fn get_and_delete_follow_the_contract(app: TestApp) {
    let data = create(&app, &reference_person()).await;
    let id = data["id"].as_str().unwrap();

    let res = app
        .delete(&format!("/identities/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty(), "204 has no body");

    for (status, body) in [
        json(app.get(&format!("/identities/{id}")).send().await.unwrap()).await,
        json(
            app.delete(&format!("/identities/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await,
        json(
            app.patch(&format!("/identities/{id}"), &json!({"name": "X"}))
                .send()
                .await
                .unwrap(),
        )
        .await,
    ] {
        assert_error(status, &body, 404, "identity_not_found");
    }
    let (_, list) = json(app.get("/identities").send().await.unwrap()).await;
    assert_eq!(list["total"], 0);
    assert_eq!(list["data"], json!([]));

    // The row and its documents stay, marked deleted; the email is free again.
    let again = create(&app, &reference_person()).await;
    assert_ne!(again["id"], data["id"]);
    let count = |sql: String| crate::helpers::query_count(&app.db, &sql);
    assert_eq!(
        count(format!(
            "SELECT count(*) AS count FROM documents WHERE identity_id = '{id}' AND deleted_at IS NOT NULL"
        )),
        2
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) AS count FROM identities WHERE id = '{id}' AND deleted_at IS NOT NULL"
        )),
        1
    );
}

async fn validation_lists_every_violation(app: TestApp) {
    let body = json!({
        "type": "person",
        "email": "not-an-email",
        "address": {"country": "XX"},
        "phone": {"sms": "yes"},
        "tax": {"country": "US", "idNumber": ""},
        "birthday": "11/11/2000",
        "gender": "robot",
        "documents": [{"type": "Selfie", "side": "Top", "url": "ftp://x"}],
        "faceImages": ["not a url", 7],
        "nickname": "jp"
    });
    let (status, body) = json(app.post("/identities", &body).send().await.unwrap()).await;
    assert_error(status, &body, 400, "validation_failed");
    let fields = detail_fields(&body);
    for expected in [
        "name",
        "email",
        "address.street",
        "address.city",
        "address.postalCode",
        "address.country",
        "phone.number",
        "phone.sms",
        "tax.idNumber",
        "tax.state",
        "birthday",
        "gender",
        "documents[0].type",
        "documents[0].side",
        "documents[0].url",
        "faceImages[0]",
        "faceImages[1]",
        "nickname",
    ] {
        assert!(
            fields.contains(&expected.to_string()),
            "missing {expected} in {fields:?}"
        );
    }
    // Each problem is reported once.
    let mut unique = fields.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), fields.len(), "{fields:?}");

    let (status, body) = json(app.post("/identities", &json!([])).send().await.unwrap()).await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = json(app.post("/identities", &json!({})).send().await.unwrap()).await;
    assert_error(status, &body, 400, "validation_failed");
    for required in ["type", "name", "email", "address", "phone", "tax"] {
        assert!(
            detail_fields(&body).contains(&required.to_string()),
            "{required}"
        );
    }
}

async fn nested_unknown_fields_and_wrong_types_are_named(app: TestApp) {
    let mut body = person("nested@example.com");
    body["address"]["planet"] = json!("Earth");
    body["tax"]["idNumber"] = json!(12345);
    body["phone"] = json!("910000000");
    body["name"] = json!(["João"]);
    let (status, body) = json(app.post("/identities", &body).send().await.unwrap()).await;
    assert_error(status, &body, 400, "validation_failed");
    let fields = detail_fields(&body);
    for expected in ["address.planet", "tax.idNumber", "phone", "name"] {
        assert!(
            fields.contains(&expected.to_string()),
            "missing {expected} in {fields:?}"
        );
    }
    // Strings are trimmed and bounded.
    let mut body = person("  trimmed@example.com ");
    body["name"] = json!("   João   ");
    let data = create(&app, &body).await;
    assert_eq!(data["name"], "João");
    assert_eq!(data["email"], "trimmed@example.com");
    let mut body = person("long@example.com");
    body["name"] = json!("x".repeat(201));
    let (status, body) = json(app.post("/identities", &body).send().await.unwrap()).await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), ["name"]);
}

fn years_ago(years: i32, days_offset: i64) -> String {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let date = today.with_year(today.year() - years).unwrap_or(today)
        + chrono::Duration::days(days_offset);
    date.format("%Y-%m-%d").to_string()
}

async fn person_rules(app: TestApp) {
    let cases = [
        (years_ago(18, 0), true),
        (years_ago(18, 1), false),  // turns 18 tomorrow
        (years_ago(100, 1), true),  // still 99
        (years_ago(100, 0), false), // 100 today
        ("2999-01-01".to_string(), false),
        ("2000-02-30".to_string(), false),
    ];
    for (i, (birthday, ok)) in cases.iter().enumerate() {
        let mut body = person(&format!("age{i}@example.com"));
        body["birthday"] = json!(birthday);
        let (status, res) = json(app.post("/identities", &body).send().await.unwrap()).await;
        if *ok {
            assert_eq!(status, 200, "{birthday}: {res}");
        } else {
            assert_error(status, &res, 400, "validation_failed");
            assert_eq!(detail_fields(&res), ["birthday"], "{birthday}");
        }
    }
    for (i, gender) in ["male", "FEMALE", "undefined"].iter().enumerate() {
        let mut body = person(&format!("gender{i}@example.com"));
        body["gender"] = json!(gender);
        let data = create(&app, &body).await;
        assert_eq!(data["gender"], ["Male", "Female", "Undefined"][i]);
    }
    let mut body = person("nobirthday@example.com");
    body.as_object_mut().unwrap().remove("birthday");
    body.as_object_mut().unwrap().remove("gender");
    body["tax"]["formationRegion"] = json!("Braga");
    let (status, res) = json(app.post("/identities", &body).send().await.unwrap()).await;
    assert_error(status, &res, 400, "validation_failed");
    assert_eq!(
        detail_fields(&res),
        ["birthday", "gender", "tax.formationRegion"]
    );
}

async fn company_rules_and_owner_checks(app: TestApp) {
    let owner = create(&app, &person("owner@example.com")).await;
    let owner_id = owner["id"].as_str().unwrap();
    let data = create(&app, &company("co@example.com", owner_id)).await;
    assert_eq!(data["type"], "company");
    assert_eq!(data["identityOwner"], owner_id);
    assert_eq!(data["birthday"], Value::Null);
    assert_eq!(data["gender"], Value::Null);
    assert_eq!(data["tax"]["formationRegion"], "Porto");

    let mut body = company("co2@example.com", owner_id);
    body.as_object_mut().unwrap().remove("identityOwner");
    body["tax"]
        .as_object_mut()
        .unwrap()
        .remove("formationRegion");
    body["birthday"] = json!("2000-01-01");
    body["gender"] = json!("Male");
    let (status, res) = json(app.post("/identities", &body).send().await.unwrap()).await;
    assert_error(status, &res, 400, "validation_failed");
    assert_eq!(
        detail_fields(&res),
        ["birthday", "gender", "identityOwner", "tax.formationRegion"]
    );

    let missing = uuid::Uuid::new_v4().to_string();
    let (status, res) = json(
        app.post("/identities", &company("co3@example.com", &missing))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 404, "identity_owner_not_found");

    let company_id = data["id"].as_str().unwrap();
    let (status, res) = json(
        app.post("/identities", &company("co4@example.com", company_id))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 422, "identity_owner_must_be_of_type_person");

    let (status, res) = json(
        app.post("/identities", &company("co5@example.com", "not-a-uuid"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "validation_failed");
    assert_eq!(detail_fields(&res), ["identityOwner"]);

    // A deleted person is no owner.
    let gone = create(&app, &person("gone@example.com")).await;
    let gone_id = gone["id"].as_str().unwrap();
    app.delete(&format!("/identities/{gone_id}"))
        .send()
        .await
        .unwrap();
    let (status, res) = json(
        app.post("/identities", &company("co6@example.com", gone_id))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 404, "identity_owner_not_found");
}

async fn us_addresses_need_a_state(app: TestApp) {
    let mut body = person("us@example.com");
    body["address"] =
        json!({"street": "1 Main St", "city": "Austin", "postalCode": "73301", "country": "US"});
    body["tax"] = json!({"country": "us", "idNumber": "123-45-6789"});
    let (status, res) = json(app.post("/identities", &body).send().await.unwrap()).await;
    assert_error(status, &res, 400, "validation_failed");
    assert_eq!(detail_fields(&res), ["address.state", "tax.state"]);

    body["address"]["state"] = json!("TX");
    body["tax"]["state"] = json!("TX");
    let data = create(&app, &body).await;
    assert_eq!(
        data["tax"]["country"], "US",
        "country codes are normalised to upper case"
    );
}

async fn emails_are_unique_per_app_case_insensitively(app: TestApp) {
    create(&app, &person("Same@Example.com")).await;
    let (status, res) = json(
        app.post("/identities", &person("same@example.COM"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "email_already_in_use");

    // Patching another identity onto the email is refused too.
    let other = create(&app, &person("other@example.com")).await;
    let (status, res) = json(
        app.patch(
            &format!("/identities/{}", other["id"].as_str().unwrap()),
            &json!({"email": "SAME@example.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "email_already_in_use");

    // Another app may use it.
    let (_, other_key) = app.create_other_app("other-tenant");
    let res = app
        .client
        .post(app.url("/identities"))
        .header("apiKey", other_key)
        .json(&person("same@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Every email comparison (the unique index, exact and substring filters, the
/// sandbox's email check) uses one stored form, the server's Unicode
/// lowercase: SQLite's own lower() folds only ASCII, which once let
/// `a@MÜNCHEN.de` and `a@münchen.de` both exist and missed exact matches.
async fn non_ascii_email_case_is_folded_alike_on_both_backends(app: TestApp) {
    let dora = create(&app, &person("Dora@MÜNCHEN.de")).await;
    assert_eq!(dora["email"], "Dora@MÜNCHEN.de", "stored as sent");
    let (status, res) = json(
        app.post("/identities", &person("dora@münchen.de"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "email_already_in_use");

    for query in [
        "filter[email]=dora@münchen.de",
        "filter[email]=DORA@MÜNCHEN.DE",
        "filter[email]=like:münchen",
        "filter[email]=like:RA@MÜN",
        "filter[email]=like:ÜNCHEN.",
    ] {
        let (status, list) = json(
            app.get(&format!("/identities?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{query}: {list}");
        assert_eq!(list["total"], 1, "{query}: {list}");
        assert_eq!(list["data"][0]["id"], dora["id"], "{query}");
    }

    // A patch onto a case variant of a used address is refused too.
    let other = create(&app, &person("other@example.com")).await;
    let (status, res) = json(
        app.patch(
            &format!("/identities/{}", other["id"].as_str().unwrap()),
            &json!({"email": "DORA@münchen.DE"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "email_already_in_use");
}

async fn concurrent_creates_with_one_email_give_one_success(app: TestApp) {
    let body = person("race@example.com");
    let requests = (0..8).map(|_| app.post("/identities", &body).send());
    let results = futures_util::future::join_all(requests).await;
    let mut ok = 0;
    for res in results {
        let (status, body) = json(res.unwrap()).await;
        match status {
            200 => ok += 1,
            _ => assert_error(status, &body, 400, "email_already_in_use"),
        }
    }
    assert_eq!(ok, 1);
    let (_, list) = json(
        app.get("/identities?filter[email]=race@example.com")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["total"], 1);
}

async fn patch_merges_and_validates_the_whole_identity(app: TestApp) {
    let data = create(&app, &reference_person()).await;
    let path = format!("/identities/{}", data["id"].as_str().unwrap());

    let (status, body) = json(
        app.patch(
            &path,
            &json!({"phone": {"number": "+351 911 111 111", "sms": true}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["phone"],
        json!({"number": "+351 911 111 111", "sms": true})
    );
    assert_eq!(
        body["data"]["name"], data["name"],
        "fields not sent are kept"
    );
    assert_eq!(
        body["data"]["documents"].as_array().unwrap().len(),
        2,
        "documents not sent are kept"
    );

    // Nested objects are replaced whole and must be complete.
    let (status, body) = json(
        app.patch(&path, &json!({"address": {"city": "Lisboa"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(
        detail_fields(&body),
        ["address.street", "address.postalCode", "address.country"]
    );

    let (status, body) = json(
        app.patch(&path, &json!({"nickname": "x", "name": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    let mut fields = detail_fields(&body);
    fields.sort();
    assert_eq!(fields, ["name", "nickname"]);

    // Turning the person into a company must satisfy the company rules...
    let (status, body) = json(
        app.patch(&path, &json!({"type": "company"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(
        detail_fields(&body),
        ["birthday", "gender", "identityOwner", "tax.formationRegion"]
    );
    // ...and succeeds when it does.
    let owner = create(&app, &person("new-owner@example.com")).await;
    let (status, body) = json(
        app.patch(
            &path,
            &json!({
                "type": "company", "birthday": null, "gender": null,
                "identityOwner": owner["id"],
                "tax": {"country": "PT", "idNumber": "500000001", "formationRegion": "Braga"}
            }),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["type"], "company");
    assert_eq!(body["data"]["birthday"], Value::Null);

    // A company cannot own itself.
    let (status, body) = json(
        app.patch(&path, &json!({"identityOwner": data["id"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");

    let (status, body) = json(app.patch(&path, &json!("text")).send().await.unwrap()).await;
    assert_error(status, &body, 400, "validation_failed");
}

async fn confirmed_identities_lock_their_fields(app: TestApp) {
    let data = create(&app, &reference_person()).await;
    let id = data["id"].as_str().unwrap();
    let path = format!("/identities/{id}");
    app.db.execute(&format!(
        "UPDATE identities SET identity_confirmed = TRUE WHERE id = '{id}'"
    ));

    for (patch, field) in [
        (json!({"name": "Someone Else"}), "name"),
        (json!({"birthday": "1990-01-01"}), "birthday"),
        (json!({"gender": "Female"}), "gender"),
        (
            json!({"tax": {"country": "ES", "idNumber": "1111111111"}}),
            "tax.country",
        ),
        (
            json!({"tax": {"country": "PT", "idNumber": "999", "state": "Braga"}}),
            "tax.idNumber",
        ),
    ] {
        let (status, body) = json(app.patch(&path, &patch).send().await.unwrap()).await;
        assert_error(status, &body, 422, "identity_field_locked");
        assert_eq!(detail_fields(&body), [field]);
    }
    // Unchanged values and unlocked fields are fine.
    let (status, body) = json(
        app.patch(
            &path,
            &json!({"name": "João Pedro Soares", "gender": "male", "email": "new@example.com",
                    "tax": {"country": "PT", "idNumber": "1111111111"}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["identityConfirmed"], true);
    assert_eq!(body["data"]["email"], "new@example.com");
}

async fn owners_of_live_companies_cannot_be_deleted(app: TestApp) {
    let owner = create(&app, &person("owner@example.com")).await;
    let owner_path = format!("/identities/{}", owner["id"].as_str().unwrap());
    let co = create(
        &app,
        &company("co@example.com", owner["id"].as_str().unwrap()),
    )
    .await;

    let (status, body) = json(app.delete(&owner_path).send().await.unwrap()).await;
    assert_error(status, &body, 409, "identity_owner_in_use");
    // Nor turned into a company, which would leave the company owned by one.
    let someone = create(&app, &person("someone@example.com")).await;
    let (status, body) = json(
        app.patch(
            &owner_path,
            &json!({"type": "company", "birthday": null, "gender": null, "identityOwner": someone["id"],
                    "tax": {"country": "PT", "idNumber": "1", "formationRegion": "Braga"}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 409, "identity_owner_in_use");

    assert_eq!(
        app.delete(&format!("/identities/{}", co["id"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(app.delete(&owner_path).send().await.unwrap().status(), 204);
}

async fn ids_are_validated_and_scoped(app: TestApp) {
    for (status, body) in [
        json(app.get("/identities/not-a-uuid").send().await.unwrap()).await,
        json(app.delete("/identities/123").send().await.unwrap()).await,
        json(
            app.patch("/identities/xyz", &json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await,
    ] {
        assert_error(status, &body, 400, "validation_failed");
        assert_eq!(detail_fields(&body), ["id"]);
    }
    let missing = uuid::Uuid::new_v4();
    let (status, body) = json(
        app.get(&format!("/identities/{missing}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "identity_not_found");
}

async fn apps_never_see_each_other(app: TestApp) {
    let mine = create(&app, &reference_person()).await;
    let id = mine["id"].as_str().unwrap();
    let (_, other_key) = app.create_other_app("intruder");
    let other = |req: reqwest::RequestBuilder| req.header("apiKey", &other_key);
    let url = app.url(&format!("/identities/{id}"));

    for req in [
        other(app.client.get(&url)),
        other(app.client.patch(&url).json(&json!({"name": "Hacked"}))),
        other(app.client.delete(&url)),
    ] {
        let (status, body) = json(req.send().await.unwrap()).await;
        assert_error(status, &body, 404, "identity_not_found");
    }
    let (_, list) = json(
        other(app.client.get(app.url("/identities")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["total"], 0);
    let (_, list) = json(
        other(
            app.client
                .get(app.url(&format!("/identities?filter[appId]={}", app.app_id))),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(list["total"], 0, "filter[appId] cannot widen the scope");
    let (_, list) = json(
        other(app.client.get(app.url("/identities?all=true")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["total"], 0);
    assert_eq!(list["data"], json!([]));
    // The other app cannot use our identity as a company owner either.
    let (status, body) = json(
        other(
            app.client
                .post(app.url("/identities"))
                .json(&company("co@example.com", id)),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "identity_owner_not_found");

    // Our identity is untouched, and filter[appId] with our own id matches.
    let (_, got) = json(app.get(&format!("/identities/{id}")).send().await.unwrap()).await;
    assert_eq!(got["data"]["name"], "João Pedro Soares");
    let (_, list) = json(
        app.get(&format!("/identities?filter[appId]={}", app.app_id))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["total"], 1);
}

/// `refId`: the client's own id, unique among the app's live identities,
/// set on create or PATCH, cleared with null, found by `filter[refId]`.
async fn ref_id_links_an_identity_to_the_clients_record(app: TestApp) {
    let plain = create(&app, &person("plain@example.com")).await;
    assert_eq!(plain["refId"], Value::Null, "always present");
    let mut body = person("ref@example.com");
    body["refId"] = json!("cust_42:A-1.x");
    let linked = create(&app, &body).await;
    assert_eq!(linked["refId"], "cust_42:A-1.x");

    let mut again = person("other@example.com");
    again["refId"] = json!("cust_42:A-1.x");
    let (status, res) = json(app.post("/identities", &again).send().await.unwrap()).await;
    assert_error(status, &res, 400, "ref_id_already_in_use");
    assert_eq!(detail_fields(&res), ["refId"]);

    for query in [
        "filter[refId]=cust_42:A-1.x",
        "filter[refId]=in:cust_42:A-1.x,nobody",
    ] {
        let (status, page) = json(
            app.get(&format!("/identities?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 1, "{query}");
        assert_eq!(page["data"][0]["id"], linked["id"], "{query}");
    }

    // PATCH sets, refuses a taken one, and clears with null.
    let plain_id = plain["id"].as_str().unwrap();
    let patch = |body: Value| app.patch(&format!("/identities/{plain_id}"), &body);
    let (status, res) = json(patch(json!({"refId": "cust_43"})).send().await.unwrap()).await;
    assert_eq!(
        (status, &res["data"]["refId"]),
        (200, &json!("cust_43")),
        "{res}"
    );
    let (status, res) = json(
        patch(json!({"refId": "cust_42:A-1.x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &res, 400, "ref_id_already_in_use");
    let (status, res) = json(patch(json!({"refId": null})).send().await.unwrap()).await;
    assert_eq!(
        (status, &res["data"]["refId"]),
        (200, &Value::Null),
        "{res}"
    );
    let (_, events) = json(
        app.get("/events?filter[type]=identity.updated")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(events["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["data"]["changedFields"] == json!(["refId"])));

    // A deleted identity's refId can be used again.
    let linked_id = linked["id"].as_str().unwrap();
    let (status, _) = json(
        app.delete(&format!("/identities/{linked_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204);
    let reused = create(&app, &again).await;
    assert_eq!(reused["refId"], "cust_42:A-1.x");

    let long = "r".repeat(129);
    for bad in [
        json!(""),
        json!("has space"),
        json!("é"),
        json!(long),
        json!(42),
    ] {
        let mut body = person("bad@example.com");
        body["refId"] = bad.clone();
        let (status, res) = json(app.post("/identities", &body).send().await.unwrap()).await;
        assert_error(status, &res, 400, "validation_failed");
        assert_eq!(detail_fields(&res), ["refId"], "{bad}");
    }
}

/// `metadata`: the client's pairs, merged key by key by PATCH (null
/// deletes), found by `filter[metadata.<key>]`.
async fn metadata_holds_the_clients_pairs(app: TestApp) {
    let plain = create(&app, &person("plain@example.com")).await;
    assert_eq!(plain["metadata"], json!({}), "always present");
    let mut body = person("meta@example.com");
    body["metadata"] = json!({"tier": "gold", "plan": "pro"});
    let tagged = create(&app, &body).await;
    assert_eq!(tagged["metadata"], json!({"plan": "pro", "tier": "gold"}));
    let id = tagged["id"].as_str().unwrap();

    let (status, res) = json(
        app.patch(
            &format!("/identities/{id}"),
            &json!({"metadata": {"tier": "silver", "plan": null, "since": "2024"}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(
        res["data"]["metadata"],
        json!({"since": "2024", "tier": "silver"})
    );
    let (_, events) = json(
        app.get("/events?filter[type]=identity.updated")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        events["data"][0]["data"]["changedFields"],
        json!(["metadata"])
    );
    assert_eq!(
        events["data"][0]["data"]["object"]["metadata"],
        res["data"]["metadata"]
    );

    let mut gold = person("gold@example.com");
    gold["metadata"] = json!({"tier": "gold"});
    let gold = create(&app, &gold).await;
    for (query, expected) in [
        ("filter[metadata.tier]=silver", vec![id]),
        (
            "filter[metadata.tier]=gold",
            vec![gold["id"].as_str().unwrap()],
        ),
        ("filter[metadata.tier]=bronze", vec![]),
        (
            "filter[metadata.since]=2024&filter[metadata.tier]=silver",
            vec![id],
        ),
        ("filter[metadata.plan]=pro", vec![]),
    ] {
        let (status, page) = json(
            app.get(&format!("/identities?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let ids: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected, "{query}");
        assert_eq!(page["total"], expected.len(), "{query}");
    }

    let fifty: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut fifty_one = fifty.clone();
    fifty_one.insert("k50".into(), json!("v"));
    for (metadata, field) in [
        (Value::Object(fifty_one), "metadata"),
        (json!({"k": "v".repeat(501)}), "metadata.k"),
        (json!({"k": 7}), "metadata.k"),
        (json!({"a[b]": "v"}), "metadata.a[b]"),
        (Value::Null, "metadata"),
        (json!("tier=gold"), "metadata"),
    ] {
        let mut body = person("bad@example.com");
        body["metadata"] = metadata;
        let (status, res) = json(app.post("/identities", &body).send().await.unwrap()).await;
        assert_error(status, &res, 400, "validation_failed");
        assert_eq!(detail_fields(&res), [field], "{body}");
    }
    // Fifty keys are allowed; a PATCH that would make fifty-one is not.
    let plain_id = plain["id"].as_str().unwrap();
    let patch = |metadata: Value| {
        app.patch(
            &format!("/identities/{plain_id}"),
            &json!({"metadata": metadata}),
        )
    };
    let (status, _) = json(patch(Value::Object(fifty)).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, res) = json(patch(json!({"one-more": "v"})).send().await.unwrap()).await;
    assert_error(status, &res, 400, "validation_failed");
    assert_eq!(detail_fields(&res), ["metadata"]);
    let (status, res) = json(
        patch(json!({"k0": null, "one-more": "v"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["data"]["metadata"].as_object().unwrap().len(), 50);
}
