//! The KYC lifecycle: verifications, decisions, sandbox, blocking, operations.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, Backend, TestApp, TestDatabase};
use crate::identities::{create, person, reference_person};

backend_tests!(
    sandbox_flow_end_to_end,
    verifications_start_when_documents_allow,
    decisions_follow_the_state_machine_and_keep_history,
    replacing_documents_after_rejection_starts_afresh,
    blocking_is_recorded_and_stops_every_operation,
    sandbox_checks_email_and_identity,
    verifications_are_listed_filtered_and_scoped,
    operation_validation,
    all_verifications_stream_across_chunks,
);

async fn all_verifications_stream_across_chunks(app: TestApp) {
    let created = create(&app, &person("many@example.com")).await;
    let id = created["id"].as_str().unwrap();
    let n = 1207;
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "('{}', '{}', '{id}', 'basic', 'rejected', NULL, NULL, '2025-01-01 00:00:{:02}.{i:06}', '2025-01-01 00:00:00', NULL, NULL, NULL, NULL)",
                uuid::Uuid::new_v4(),
                app.app_id,
                i % 60
            )
        })
        .collect();
    app.db.execute(&format!(
        "INSERT INTO verifications VALUES {}",
        rows.join(",")
    ));
    for query in [
        "all=true",
        "all=true&sort=updatedAt",
        "all=true&filter[status]=rejected",
    ] {
        let (status, body) = json(
            app.get(&format!("/verifications?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(body["total"], n, "{query}");
        let mut ids: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), n, "{query}");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "no row twice: {query}");
    }
}

async fn get_identity(app: &TestApp, id: &str) -> Value {
    let (status, body) = json(app.get(&format!("/identities/{id}")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn operations(app: &TestApp, id: &str) -> Vec<(String, Option<String>)> {
    let (status, body) = json(
        app.get(&format!("/identities/{id}/operations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            assert_eq!(
                op["active"],
                op.get("reason").is_none(),
                "reason iff inactive: {op}"
            );
            (
                op["code"].as_str().unwrap().to_string(),
                op.get("reason").map(|r| r.as_str().unwrap().to_string()),
            )
        })
        .collect()
}

fn op(code: &str, reason: Option<&str>) -> (String, Option<String>) {
    (code.to_string(), reason.map(str::to_string))
}

async fn decide(app: &TestApp, verification_id: &str, body: Value) -> (u16, Value) {
    json(
        app.post(&format!("/verifications/{verification_id}/decision"), &body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn sandbox_flow_end_to_end(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap();
    let kyc = created["kycStatus"].as_array().unwrap();
    assert_eq!(kyc.len(), 1, "{kyc:?}");
    assert_eq!(kyc[0]["level"], "basic");
    assert_eq!(kyc[0]["status"], "pending");
    assert!(kyc[0]["verificationId"].is_string());

    assert_eq!(
        operations(&app, id).await,
        [
            op("deposit:wire", Some("kyc_required_status_not_reached")),
            op("deposit:stablecoin", None),
            op("withdrawal:wire", Some("kyc_required_status_not_reached")),
            op("withdrawal:stablecoin", Some("identity_kyc_is_missing")),
        ]
    );

    let (status, body) = json(
        app.post(
            "/sandbox/identities/approve",
            &json!({"identityId": id, "email": "foobar@publicmint.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"message": "Identity sent to approval"}));

    let identity = get_identity(&app, id).await;
    assert_eq!(identity["identityConfirmed"], true);
    assert_eq!(identity["kycStatus"][0]["status"], "approved");
    assert_eq!(
        operations(&app, id).await,
        [
            op("deposit:wire", None),
            op("deposit:stablecoin", None),
            op(
                "withdrawal:wire",
                Some("operation_not_active_due_to_extra_kyc_missing")
            ),
            op("withdrawal:stablecoin", Some("identity_kyc_is_missing")),
        ]
    );

    let (status, body) = json(
        app.patch(&format!("/identities/{id}"), &json!({"name": "Other Name"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 422, "identity_field_locked");

    // Approving again has nothing left to settle.
    let (status, body) = json(
        app.post(
            "/sandbox/identities/approve",
            &json!({"identityId": id, "email": "foobar@publicmint.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 409, "invalid_status_transition");
}

async fn verifications_start_when_documents_allow(app: TestApp) {
    let created = create(&app, &person("docs@example.com")).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/identities/{id}");
    assert_eq!(created["kycStatus"], json!([]));
    assert_eq!(
        operations(&app, id).await[0],
        op("deposit:wire", Some("identity_kyc_is_missing"))
    );

    let id_card =
        json!({"type": "IdentityCard", "side": "FrontSide", "url": "https://example.com/id.jpg"});
    let (_, body) = json(
        app.patch(&path, &json!({"documents": [id_card]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        body["data"]["kycStatus"],
        json!([]),
        "an identity document alone is not enough"
    );

    let (_, body) = json(
        app.patch(
            &path,
            &json!({"faceImages": ["https://example.com/face.jpg"]}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let kyc = body["data"]["kycStatus"].as_array().unwrap().clone();
    assert_eq!(kyc.len(), 1);
    assert_eq!(
        (kyc[0]["level"].as_str(), kyc[0]["status"].as_str()),
        (Some("basic"), Some("pending"))
    );
    let basic_id = kyc[0]["verificationId"].clone();

    let bill =
        json!({"type": "UtilityBill", "side": "FrontSide", "url": "https://example.com/bill.pdf"});
    let (_, body) = json(
        app.patch(&path, &json!({"documents": [id_card, bill]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kyc = body["data"]["kycStatus"].as_array().unwrap();
    assert_eq!(kyc.len(), 2);
    assert_eq!(kyc[0]["level"], "basic");
    assert_eq!(
        kyc[0]["verificationId"], basic_id,
        "the open basic verification is kept"
    );
    assert_eq!(kyc[1]["level"], "enhanced");
    assert_eq!(kyc[1]["status"], "pending");
    // The open basic verification was not duplicated.
    let (_, list) = json(
        app.get(&format!("/verifications?filter[identityId]={id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["total"], 2);
}

async fn decisions_follow_the_state_machine_and_keep_history(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap();
    let vid = created["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, body) = decide(&app, &vid, json!({"status": "inReview"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "inReview");
    let (status, body) = decide(&app, &vid, json!({"status": "inReview"})).await;
    assert_error(status, &body, 409, "invalid_status_transition");

    let (status, body) = decide(
        &app,
        &vid,
        json!({"status": "approved", "riskRating": "medium", "reason": "docs ok"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v = &body["data"];
    assert_eq!(v["status"], "approved");
    assert_eq!(v["riskRating"], "medium");
    assert_eq!(v["reason"], "docs ok");
    let history: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["pending", "inReview", "approved"]);
    let times: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["createdAt"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let identity = get_identity(&app, id).await;
    assert_eq!(identity["riskRating"], "medium");
    assert_eq!(identity["identityConfirmed"], true);

    // Terminal states refuse every decision.
    for status in ["rejected", "approved", "inReview"] {
        let (code, body) = decide(&app, &vid, json!({"status": status})).await;
        assert_error(code, &body, 409, "invalid_status_transition");
    }
    let (status, body) = json(
        app.get(&format!("/verifications/{vid}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["history"].as_array().unwrap().len(),
        3,
        "refused decisions leave no trace"
    );

    for bad in [
        json!({"status": "pending"}),
        json!({"status": "done"}),
        json!({"status": "approved", "riskRating": "extreme"}),
        json!({"status": "approved", "note": "x"}),
        json!({}),
    ] {
        let (code, body) = decide(&app, &vid, bad.clone()).await;
        assert_error(code, &body, 400, "validation_failed");
    }
    let (code, body) = decide(
        &app,
        &uuid::Uuid::new_v4().to_string(),
        json!({"status": "approved"}),
    )
    .await;
    assert_error(code, &body, 404, "verification_not_found");
    let (code, body) = decide(&app, "nope", json!({"status": "approved"})).await;
    assert_error(code, &body, 400, "validation_failed");

    // Rejected from pending, on a second identity.
    let mut other = reference_person();
    other["email"] = json!("second@example.com");
    let created = create(&app, &other).await;
    let vid2 = created["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = decide(
        &app,
        &vid2,
        json!({"status": "rejected", "reason": "blurry"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get_identity(&app, created["id"].as_str().unwrap()).await["identityConfirmed"],
        false
    );
    let (code, body) = decide(&app, &vid2, json!({"status": "approved"})).await;
    assert_error(code, &body, 409, "invalid_status_transition");
}

async fn replacing_documents_after_rejection_starts_afresh(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap();
    let first = created["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = json(
        app.post(
            "/sandbox/identities/reject",
            &json!({"identityId": id, "email": "foobar@publicmint.com", "reason": "expired id"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let identity = get_identity(&app, id).await;
    assert_eq!(identity["kycStatus"][0]["status"], "rejected");
    assert_eq!(
        operations(&app, id).await[1],
        op(
            "deposit:stablecoin",
            Some("kyc_required_status_not_reached")
        )
    );

    // Editing other fields does not restart KYC...
    app.patch(
        &format!("/identities/{id}"),
        &json!({"phone": {"number": "919999999"}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        get_identity(&app, id).await["kycStatus"][0]["verificationId"],
        first.as_str()
    );
    // ...replacing the documents does.
    let (_, body) = json(
        app.patch(
            &format!("/identities/{id}"),
            &json!({"documents": [{"type": "Passport", "side": "FrontSide", "url": "https://example.com/passport.jpg"}]}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let kyc = &body["data"]["kycStatus"][0];
    assert_eq!(kyc["status"], "pending");
    assert_ne!(kyc["verificationId"], first.as_str());
    let (_, list) = json(
        app.get(&format!(
            "/verifications?filter[identityId]={id}&sort=createdAt"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let statuses: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["rejected", "pending"]);
    assert_eq!(list["data"][0]["reason"], "expired id");
}

async fn blocking_is_recorded_and_stops_every_operation(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap();
    app.post(
        "/sandbox/identities/approve",
        &json!({"identityId": id, "email": "foobar@publicmint.com"}),
    )
    .send()
    .await
    .unwrap();

    let (status, body) = json(
        app.post(
            &format!("/identities/{id}/block"),
            &json!({"reason": "fraud alert"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["blocked"], true);
    assert!(operations(&app, id)
        .await
        .iter()
        .all(|(_, r)| r.as_deref() == Some("identity_blocked")));
    let (_, list) = json(
        app.get("/identities?filter[blocked]=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["total"], 1);
    // Blocking again is harmless and records nothing.
    app.post(
        &format!("/identities/{id}/block"),
        &json!({"reason": "again"}),
    )
    .send()
    .await
    .unwrap();

    let (status, body) = json(
        app.post(
            &format!("/identities/{id}/unblock"),
            &json!({"reason": "cleared"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["blocked"], false);
    assert_eq!(operations(&app, id).await[0], op("deposit:wire", None));

    let (_, history) = json(
        app.get(&format!("/identities/{id}/history"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let events: Vec<(String, Option<String>, Option<String>)> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["status"].as_str().map(str::to_string),
                e["reason"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("verification".into(), Some("pending".into()), None),
            ("verification".into(), Some("approved".into()), None),
            ("blocked".into(), None, Some("fraud alert".into())),
            ("unblocked".into(), None, Some("cleared".into())),
        ]
    );

    for body in [
        json!({}),
        json!({"reason": "  "}),
        json!({"reason": "x", "extra": 1}),
    ] {
        let (status, res) = json(
            app.post(&format!("/identities/{id}/block"), &body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &res, 400, "validation_failed");
    }
    let missing = uuid::Uuid::new_v4();
    let (status, res) = json(
        app.post(
            &format!("/identities/{missing}/block"),
            &json!({"reason": "x"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &res, 404, "identity_not_found");
}

async fn sandbox_checks_email_and_identity(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap();
    let (status, body) = json(
        app.post(
            "/sandbox/identities/approve",
            &json!({"identityId": id, "email": "someone@else.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), ["email"]);
    let (status, body) = json(
        app.post(
            "/sandbox/identities/approve",
            &json!({"identityId": uuid::Uuid::new_v4(), "email": "x@y.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "identity_not_found");
    // Without documents there is nothing a sandbox approval can approve.
    let bare = create(&app, &person("bare@example.com")).await;
    let (status, body) = json(
        app.post(
            "/sandbox/identities/approve",
            &json!({"identityId": bare["id"], "email": "bare@example.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 409, "invalid_status_transition");
    // Another app cannot reach it.
    let (_, other_key) = app.create_other_app("other");
    let res = app
        .client
        .post(app.url("/sandbox/identities/approve"))
        .header("apiKey", other_key)
        .json(&json!({"identityId": id, "email": "foobar@publicmint.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(get_identity(&app, id).await["identityConfirmed"], false);
}

async fn verifications_are_listed_filtered_and_scoped(app: TestApp) {
    let a = create(&app, &reference_person()).await;
    let mut b = reference_person();
    b["email"] = json!("b@example.com");
    b["documents"][0]["type"] = json!("UtilityBill");
    b["documents"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Passport", "side": "FrontSide", "url": "https://example.com/p.jpg"}));
    let b = create(&app, &b).await;
    let va = a["kycStatus"][0]["verificationId"].as_str().unwrap();
    decide(&app, va, json!({"status": "approved"})).await;

    let list = |q: String| {
        let app = &app;
        async move {
            let (status, body) = json(
                app.get(&format!("/verifications?{q}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 200, "{q}: {body}");
            body
        }
    };
    assert_eq!(list(String::new()).await["total"], 3);
    assert_eq!(list("filter[status]=approved".into()).await["total"], 1);
    assert_eq!(list("filter[status]=nin:approved".into()).await["total"], 2);
    assert_eq!(list("filter[level]=enhanced".into()).await["total"], 1);
    assert_eq!(
        list(format!("filter[identityId]={}", b["id"].as_str().unwrap())).await["total"],
        2
    );
    assert_eq!(
        list(format!("filter[id]={va}")).await["data"][0]["history"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        list("page[size]=1".into()).await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        list("all=true".into()).await["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (status, body) = json(
        app.get("/verifications?filter[status]=done")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");

    // Deleted identities' verifications leave the listing.
    app.delete(&format!("/identities/{}", b["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(list(String::new()).await["total"], 1);

    let (_, other_key) = app.create_other_app("other");
    let (_, body) = json(
        app.client
            .get(app.url("/verifications"))
            .header("apiKey", &other_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["total"], 0, "{body}");
    let (status, body) = json(
        app.client
            .get(app.url(&format!("/verifications/{va}")))
            .header("apiKey", &other_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "verification_not_found");
    let (status, body) = json(
        app.client
            .post(app.url(&format!("/verifications/{va}/decision")))
            .header("apiKey", &other_key)
            .json(&json!({"status": "rejected"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "verification_not_found");
}

async fn operation_validation(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap();
    let validate = |action: &str, code: &str, identity: &str| {
        app.post(
            "/operations/validate",
            &json!({"action": action, "code": code, "identityId": identity}),
        )
        .send()
    };
    let res = validate("create", "deposit:stablecoin", id).await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());
    let (status, body) = json(validate("create", "deposit:wire", id).await.unwrap()).await;
    assert_error(status, &body, 422, "kyc_required_status_not_reached");
    let (status, body) = json(
        validate("confirm", "withdrawal:stablecoin", id)
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 422, "identity_kyc_is_missing");
    let (status, body) = json(validate("confirm", "deposit:wire", id).await.unwrap()).await;
    assert_error(status, &body, 404, "unknown_operation");
    let (status, body) = json(
        validate("create", "deposit:wire", &uuid::Uuid::new_v4().to_string())
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "identity_not_found");
    let (status, body) = json(validate("create", "deposit:wire", "nope").await.unwrap()).await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = json(
        app.get(&format!("/identities/{}/operations", uuid::Uuid::new_v4()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "identity_not_found");
}

#[tokio::test]
async fn production_has_no_sandbox_routes() {
    let app = TestApp::spawn_with(
        TestDatabase::create(Backend::Sqlite),
        &[
            ("KYC_ENV", "production"),
            ("KYC_SIGNING_KEY", "0123456789abcdef0123456789abcdef"),
            (
                "KYC_ENCRYPTION_KEYS",
                "k1:aHVudGVyMmh1bnRlcjJodW50ZXIyaHVudGVyMmFiY2Q=",
            ),
        ],
    )
    .await;
    let (status, body) = json(
        app.post(
            "/sandbox/identities/approve",
            &json!({"identityId": uuid::Uuid::new_v4(), "email": "x@y.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn a_custom_rules_file_replaces_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(
        &path,
        "[[operation]]\naction = \"create\"\ncode = \"card:issue\"\nlevel = \"basic\"\nstatus = \"inReview\"\nmax_risk_rating = \"low\"\n",
    )
    .unwrap();
    let app = TestApp::spawn_with(
        TestDatabase::create(Backend::Sqlite),
        &[("KYC_OPERATION_RULES", path.to_str().unwrap())],
    )
    .await;
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        operations(&app, id).await,
        [op("card:issue", Some("kyc_required_status_not_reached"))]
    );
    let vid = created["kycStatus"][0]["verificationId"].as_str().unwrap();
    decide(
        &app,
        vid,
        json!({"status": "inReview", "riskRating": "medium"}),
    )
    .await;
    assert_eq!(
        operations(&app, id).await,
        [op(
            "card:issue",
            Some("operation_not_active_due_to_extra_kyc_missing")
        )]
    );
    let (status, body) = json(
        app.post(
            "/operations/validate",
            &json!({"action": "create", "code": "deposit:wire", "identityId": id}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "unknown_operation");
}

#[tokio::test]
async fn a_malformed_rules_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, "[[operation]]\naction = \"create\"\ncode = \"deposit:wire\"\nlevel = \"platinum\"\nstatus = \"approved\"\n").unwrap();
    let db = TestDatabase::create(Backend::Sqlite);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .env("DATABASE_URL", &db.url)
        .env("KYC_BIND", "127.0.0.1:0")
        .env("KYC_OPERATION_RULES", &path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KYC_OPERATION_RULES") && stderr.contains("platinum"),
        "{stderr}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .env("DATABASE_URL", &db.url)
        .env("KYC_BIND", "127.0.0.1:0")
        .env("KYC_OPERATION_RULES", dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
