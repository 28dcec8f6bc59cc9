//! Every route that changes data goes through the write path, and only
//! those: each non-GET route of the route table is exercised here, and the
//! test fails when a route has no case (so a new route cannot be missed).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{json, query_count, RecordedWrite, TestApp};
use crate::identities::{create, person, reference_person};

backend_tests!(every_changing_route_passes_the_write_path);

/// Sends one request and returns what the write path saw of it. A `POST`
/// or `PATCH` is sent with an Idempotency-Key and then again: the second
/// must replay the first answer and write nothing (every such route
/// honours the key; the local storage's own upload form, which takes no
/// API key, is the one exception).
async fn writes_of(app: &TestApp, request: reqwest::RequestBuilder) -> (u16, Vec<RecordedWrite>) {
    app.writes.take();
    let probe = request.try_clone().and_then(|r| r.build().ok());
    let keyed = probe.as_ref().is_some_and(|r| {
        matches!(r.method().as_str(), "POST" | "PATCH") && r.url().path() != "/files/upload"
    });
    let request = if keyed {
        request.header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
    } else {
        request
    };
    // Each write's audit record names the request it came from.
    let request_id = uuid::Uuid::new_v4().to_string();
    let request = request.header("x-request-id", &request_id);
    let retry = request.try_clone();
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let first = response.bytes().await.unwrap();
    assert!(
        status < 300,
        "{status}: {}",
        String::from_utf8_lossy(&first)
    );
    let writes = app.writes.take();
    let records = |app: &TestApp| {
        query_count(
            &app.db,
            &format!("SELECT COUNT(*) AS count FROM audit_log WHERE request_id = '{request_id}'"),
        )
    };
    // Every write a request made is recorded once, with its action.
    assert_eq!(records(app), writes.len() as i64, "{writes:?}");
    for write in &writes {
        assert_eq!(
            query_count(
                &app.db,
                &format!(
                    "SELECT COUNT(*) AS count FROM audit_log WHERE request_id = '{request_id}' \
                     AND action = '{}' AND actor = 'api' AND status = {status}",
                    write.operation
                ),
            ),
            1,
            "{write:?}"
        );
    }
    if keyed {
        let probe = probe.unwrap();
        let what = format!("{} {}", probe.method(), probe.url().path());
        let again = retry.unwrap().send().await.unwrap();
        assert_eq!(again.status().as_u16(), status, "{what}");
        assert_eq!(
            again
                .headers()
                .get("idempotent-replayed")
                .map(|v| v.as_bytes()),
            Some(&b"true"[..]),
            "{what}"
        );
        assert_eq!(again.bytes().await.unwrap(), first, "{what}");
        assert_eq!(app.writes.take(), vec![], "{what}: the replay wrote");
        assert_eq!(
            records(app),
            writes.len() as i64,
            "{what}: the replay was recorded"
        );
    }
    (status, writes)
}

fn one(operation: &'static str, changes: &[&'static str]) -> Vec<RecordedWrite> {
    vec![RecordedWrite {
        operation,
        changes: changes.to_vec(),
    }]
}

async fn every_changing_route_passes_the_write_path(app: TestApp) {
    let mut covered: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut case = |method: &'static str, path: &'static str| {
        covered.insert((method, path));
    };

    case("post", "/identities");
    let (_, writes) = writes_of(&app, app.post("/identities", &reference_person())).await;
    assert_eq!(
        writes,
        one(
            "identity.create",
            &[
                "identity.created",
                "document.created",
                "document.created",
                "verification.created"
            ]
        )
    );
    // A refused change rolls back and reaches no observer.
    app.writes.take();
    let (status, _) = json(
        app.post("/identities", &reference_person())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(app.writes.take(), vec![]);

    let listed: Value = app
        .get("/identities")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = listed["data"][0]["id"].as_str().unwrap().to_string();
    let verification = listed["data"][0]["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_string();

    case("patch", "/identities/{id}");
    let (_, writes) = writes_of(
        &app,
        app.patch(
            &format!("/identities/{id}"),
            &json!({"phone": {"number": "911111111"}}),
        ),
    )
    .await;
    assert_eq!(writes, one("identity.patch", &["identity.updated"]));

    case("post", "/identities/{id}/block");
    let reason = json!({"reason": "review"});
    let (_, writes) = writes_of(&app, app.post(&format!("/identities/{id}/block"), &reason)).await;
    assert_eq!(writes, one("identity.block", &["identity.updated"]));

    case("post", "/identities/{id}/unblock");
    let (_, writes) = writes_of(
        &app,
        app.post(&format!("/identities/{id}/unblock"), &reason),
    )
    .await;
    assert_eq!(writes, one("identity.unblock", &["identity.updated"]));

    case("post", "/verifications/{id}/decision");
    let (_, writes) = writes_of(
        &app,
        app.post(
            &format!("/verifications/{verification}/decision"),
            &json!({"status": "inReview"}),
        ),
    )
    .await;
    assert_eq!(
        writes,
        one("verification.decide", &["verification.status_changed"])
    );

    case("post", "/sandbox/identities/approve");
    let (_, writes) = writes_of(
        &app,
        app.post(
            "/sandbox/identities/approve",
            &json!({"identityId": id, "email": "foobar@publicmint.com"}),
        ),
    )
    .await;
    assert_eq!(
        writes,
        one(
            "sandbox.approve",
            &["verification.status_changed", "identity.updated"]
        )
    );

    let mut second = reference_person();
    second["email"] = json!("second@example.com");
    let second = create(&app, &second).await;
    let second_id = second["id"].as_str().unwrap();
    case("post", "/sandbox/identities/reject");
    let (_, writes) = writes_of(
        &app,
        app.post(
            "/sandbox/identities/reject",
            &json!({"identityId": second_id, "email": "second@example.com"}),
        ),
    )
    .await;
    assert_eq!(
        writes,
        one("sandbox.reject", &["verification.status_changed"])
    );

    case("delete", "/identities/{id}");
    let (status, writes) = writes_of(&app, app.delete(&format!("/identities/{second_id}"))).await;
    assert_eq!(status, 204);
    assert_eq!(writes, one("identity.delete", &["identity.deleted"]));

    case("post", "/identities/{id}/erase");
    let (status, writes) = writes_of(
        &app,
        app.post(&format!("/identities/{second_id}/erase"), &json!({})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(writes, one("identity.erase", &["identity.erased"]));

    // Routes that change nothing in the database.
    case("post", "/operations/validate");
    let (_, writes) = writes_of(
        &app,
        app.post(
            "/operations/validate",
            &json!({"action": "create", "code": "deposit:wire", "identityId": id}),
        ),
    )
    .await;
    assert_eq!(writes, vec![]);

    case("post", "/presign-url");
    let (_, writes) = writes_of(
        &app,
        app.post("/presign-url", &json!({"filename": "scan.jpg"})),
    )
    .await;
    assert_eq!(writes, vec![]);
    let presigned: Value = app
        .post("/presign-url", &json!({"filename": "scan.jpg"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    case("post", "/files/upload");
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in presigned["data"]["fields"].as_object().unwrap() {
        form = form.text(name.clone(), value.as_str().unwrap().to_string());
    }
    let part = reqwest::multipart::Part::bytes(b"\xff\xd8\xff scan".to_vec())
        .file_name("scan.jpg")
        .mime_str("image/jpeg")
        .unwrap();
    app.writes.take();
    let uploaded = app
        .client
        .post(presigned["data"]["url"].as_str().unwrap())
        .multipart(form.part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status().as_u16(), 204);
    assert_eq!(app.writes.take(), vec![]);

    case("post", "/webhook-endpoints");
    let (_, writes) = writes_of(
        &app,
        app.post(
            "/webhook-endpoints",
            &json!({"url": "http://127.0.0.1:9/hook", "enabled": false}),
        ),
    )
    .await;
    assert_eq!(
        writes,
        one("webhook_endpoint.create", &["webhook_endpoint.created"])
    );
    let endpoints: Value = app
        .get("/webhook-endpoints")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = endpoints["data"][0]["id"].as_str().unwrap().to_string();

    case("patch", "/webhook-endpoints/{id}");
    let (_, writes) = writes_of(
        &app,
        app.patch(
            &format!("/webhook-endpoints/{endpoint}"),
            &json!({"description": "d"}),
        ),
    )
    .await;
    assert_eq!(
        writes,
        one("webhook_endpoint.update", &["webhook_endpoint.updated"])
    );

    case("post", "/webhook-endpoints/{id}/rotate-secret");
    let (_, writes) = writes_of(
        &app,
        app.post(
            &format!("/webhook-endpoints/{endpoint}/rotate-secret"),
            &json!({}),
        ),
    )
    .await;
    assert_eq!(
        writes,
        one(
            "webhook_endpoint.rotate_secret",
            &["webhook_endpoint.secret_rotated"]
        )
    );

    case("post", "/events/{id}/redeliver");
    let events: Value = app
        .get("/events")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = events["data"][0]["id"].as_str().unwrap().to_string();
    let (status, writes) = writes_of(
        &app,
        app.post(
            &format!("/events/{event}/redeliver"),
            &json!({"endpointId": endpoint}),
        ),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        writes,
        one("event.redeliver", &["webhook_delivery.scheduled"])
    );

    case("delete", "/webhook-endpoints/{id}");
    let (status, writes) =
        writes_of(&app, app.delete(&format!("/webhook-endpoints/{endpoint}"))).await;
    assert_eq!(status, 204);
    assert_eq!(
        writes,
        one("webhook_endpoint.delete", &["webhook_endpoint.deleted"])
    );

    // A person without documents: one change, no documents.
    let (_, writes) = writes_of(&app, app.post("/identities", &person("third@example.com"))).await;
    assert_eq!(writes, one("identity.create", &["identity.created"]));

    // A company's relations change the company's answer.
    let owner = create(&app, &person("owner@example.com")).await;
    let owner = owner["id"].as_str().unwrap();
    let company = create(&app, &crate::identities::company("firm@example.com", owner)).await;
    let company = company["id"].as_str().unwrap();
    case("post", "/identities/{id}/relations");
    let (status, writes) = writes_of(
        &app,
        app.post(
            &format!("/identities/{company}/relations"),
            &json!({"personId": owner, "role": "beneficialOwner", "ownershipPercent": 30}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(writes, one("relation.create", &["identity.updated"]));
    let relations: Value = app
        .get(&format!("/identities/{company}/relations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let relation = relations["data"][0]["id"].as_str().unwrap().to_string();
    case("patch", "/identities/{id}/relations/{relationId}");
    let (status, writes) = writes_of(
        &app,
        app.patch(
            &format!("/identities/{company}/relations/{relation}"),
            &json!({"ownershipPercent": 35}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(writes, one("relation.update", &["identity.updated"]));
    case("delete", "/identities/{id}/relations/{relationId}");
    let (status, writes) = writes_of(
        &app,
        app.delete(&format!("/identities/{company}/relations/{relation}")),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(writes, one("relation.delete", &["identity.updated"]));

    let changing: BTreeSet<(&str, &str)> = kyc_api::routes::ROUTES
        .iter()
        .chain(kyc_api::routes::SANDBOX_ROUTES)
        .filter(|(method, _)| *method != "get")
        .copied()
        .collect();
    assert_eq!(
        covered, changing,
        "every route that is not a GET needs a case in this test"
    );
}
