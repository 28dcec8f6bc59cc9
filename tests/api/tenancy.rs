//! No app reaches another app's data through any route: every route of the
//! route table that names an identity, verification or document is sent
//! another app's ids (a route without a case fails the test), and the
//! owner's data reads back exactly as before.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{json, TestApp};
use crate::identities::{create, reference_person};

backend_tests!(another_apps_ids_are_unknown_on_every_route);

/// Everything the owner can read about its identity.
async fn snapshot(app: &TestApp, id: &str, verification: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/identities/{id}"),
        format!("/identities/{id}/history"),
        format!("/identities/{id}/operations"),
        format!("/verifications/{verification}"),
        "/identities?all=true".to_string(),
    ] {
        let (status, body) = json(app.get(&path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}: {body}");
        out.push(body);
    }
    out
}

async fn another_apps_ids_are_unknown_on_every_route(app: TestApp) {
    let owner = create(&app, &reference_person()).await;
    let id = owner["id"].as_str().unwrap().to_string();
    let verification = owner["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_string();
    let document = owner["documents"][0]["id"].as_str().unwrap().to_string();
    let (status, endpoint) = json(
        app.post(
            "/webhook-endpoints",
            &json!({"url": "http://127.0.0.1:9/hook", "enabled": false}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{endpoint}");
    let endpoint = endpoint["data"]["id"].as_str().unwrap().to_string();
    let events: Value = app
        .get("/events")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = events["data"][0]["id"].as_str().unwrap().to_string();
    let company = create(&app, &crate::identities::company("owned@example.com", &id)).await;
    let company = company["id"].as_str().unwrap().to_string();
    let (status, relation) = json(
        app.post(
            &format!("/identities/{company}/relations"),
            &json!({"personId": id, "role": "director"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{relation}");
    let relation = relation["data"]["id"].as_str().unwrap().to_string();
    crate::audit::all_linked(&app).await;
    let (_, records) = json(app.get("/audit-log").send().await.unwrap()).await;
    let record = records["data"][0]["id"].as_str().unwrap().to_string();
    let before = snapshot(&app, &id, &verification).await;

    let (_, intruder) = app.create_other_app("intruder");
    let mut covered: BTreeSet<(&str, &str)> = BTreeSet::new();
    let cases: Vec<(&str, &str, String, Option<Value>, &str)> = vec![
        (
            "get",
            "/audit-log",
            format!("/audit-log?page[after]={record}"),
            None,
            "audit_record_not_found",
        ),
        (
            "get",
            "/webhook-endpoints/{id}",
            format!("/webhook-endpoints/{endpoint}"),
            None,
            "webhook_endpoint_not_found",
        ),
        (
            "patch",
            "/webhook-endpoints/{id}",
            format!("/webhook-endpoints/{endpoint}"),
            Some(json!({"url": "http://127.0.0.1:9/taken"})),
            "webhook_endpoint_not_found",
        ),
        (
            "delete",
            "/webhook-endpoints/{id}",
            format!("/webhook-endpoints/{endpoint}"),
            None,
            "webhook_endpoint_not_found",
        ),
        (
            "post",
            "/webhook-endpoints/{id}/rotate-secret",
            format!("/webhook-endpoints/{endpoint}/rotate-secret"),
            Some(json!({})),
            "webhook_endpoint_not_found",
        ),
        (
            "get",
            "/webhook-endpoints/{id}/deliveries",
            format!("/webhook-endpoints/{endpoint}/deliveries"),
            None,
            "webhook_endpoint_not_found",
        ),
        (
            "post",
            "/events/{id}/redeliver",
            format!("/events/{event}/redeliver"),
            Some(json!({})),
            "event_not_found",
        ),
        (
            "get",
            "/identities/{id}",
            format!("/identities/{id}"),
            None,
            "identity_not_found",
        ),
        (
            "patch",
            "/identities/{id}",
            format!("/identities/{id}"),
            Some(json!({"name": "Taken Over"})),
            "identity_not_found",
        ),
        (
            "delete",
            "/identities/{id}",
            format!("/identities/{id}"),
            None,
            "identity_not_found",
        ),
        (
            "post",
            "/identities/{id}/erase",
            format!("/identities/{id}/erase"),
            Some(json!({})),
            "identity_not_found",
        ),
        (
            "post",
            "/identities/{id}/relations",
            format!("/identities/{company}/relations"),
            Some(json!({"personId": id, "role": "director"})),
            "identity_not_found",
        ),
        (
            "get",
            "/identities/{id}/relations",
            format!("/identities/{company}/relations"),
            None,
            "identity_not_found",
        ),
        (
            "get",
            "/identities/{id}/relations/{relationId}",
            format!("/identities/{company}/relations/{relation}"),
            None,
            "identity_not_found",
        ),
        (
            "patch",
            "/identities/{id}/relations/{relationId}",
            format!("/identities/{company}/relations/{relation}"),
            Some(json!({"title": "Taken over"})),
            "identity_not_found",
        ),
        (
            "delete",
            "/identities/{id}/relations/{relationId}",
            format!("/identities/{company}/relations/{relation}"),
            None,
            "identity_not_found",
        ),
        (
            "post",
            "/identities/{id}/block",
            format!("/identities/{id}/block"),
            Some(json!({"reason": "x"})),
            "identity_not_found",
        ),
        (
            "post",
            "/identities/{id}/unblock",
            format!("/identities/{id}/unblock"),
            Some(json!({"reason": "x"})),
            "identity_not_found",
        ),
        (
            "get",
            "/identities/{id}/history",
            format!("/identities/{id}/history"),
            None,
            "identity_not_found",
        ),
        (
            "get",
            "/identities/{id}/operations",
            format!("/identities/{id}/operations"),
            None,
            "identity_not_found",
        ),
        (
            "post",
            "/operations/validate",
            "/operations/validate".to_string(),
            Some(json!({"action": "create", "code": "deposit:wire", "identityId": id})),
            "identity_not_found",
        ),
        (
            "get",
            "/verifications/{id}",
            format!("/verifications/{verification}"),
            None,
            "verification_not_found",
        ),
        (
            "post",
            "/verifications/{id}/decision",
            format!("/verifications/{verification}/decision"),
            Some(json!({"status": "approved"})),
            "verification_not_found",
        ),
        (
            "get",
            "/identities/{identityId}/documents/{id}/presign-url",
            format!("/identities/{id}/documents/{document}/presign-url"),
            None,
            "identity_not_found",
        ),
        (
            "post",
            "/sandbox/identities/approve",
            "/sandbox/identities/approve".to_string(),
            Some(json!({"identityId": id, "email": "foobar@publicmint.com"})),
            "identity_not_found",
        ),
        (
            "post",
            "/sandbox/identities/reject",
            "/sandbox/identities/reject".to_string(),
            Some(json!({"identityId": id, "email": "foobar@publicmint.com"})),
            "identity_not_found",
        ),
    ];
    for (method, route, path, body, code) in cases {
        covered.insert((method, route));
        let url = app.url(&path);
        let request = match method {
            "get" => app.client.get(&url),
            "patch" => app.client.patch(&url),
            "delete" => app.client.delete(&url),
            _ => app.client.post(&url),
        };
        let request = match &body {
            Some(body) => request.json(body),
            None => request,
        };
        let (status, answer) =
            json(request.header("apiKey", &intruder).send().await.unwrap()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (404, Some(code)),
            "{method} {path}: {answer}"
        );
    }

    // Routes that name no stored record of an app need no case here.
    let unscoped: BTreeSet<(&str, &str)> = [
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/metrics"),
        ("get", "/openapi.yaml"),
        ("post", "/identities"),
        ("get", "/identities"),
        ("get", "/verifications"),
        // Its cursor naming another app's event: `events::filters_and_tenants`.
        ("get", "/events"),
        // Each app sees its own chain: `audit::the_list_pages_and_filters`.
        ("get", "/audit-log/head"),
        ("get", "/webhook-endpoints"),
        ("post", "/webhook-endpoints"),
        ("post", "/presign-url"),
        ("post", "/files/upload"),
        ("get", "/files/{key:.*}"),
    ]
    .into_iter()
    .collect();
    for route in kyc_api::routes::ROUTES
        .iter()
        .chain(kyc_api::routes::SANDBOX_ROUTES)
    {
        assert!(
            covered.contains(route) || unscoped.contains(route),
            "route {route:?} has no cross-tenant case"
        );
    }

    assert_eq!(snapshot(&app, &id, &verification).await, before);
    let (status, still) = json(
        app.get(&format!("/webhook-endpoints/{endpoint}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(still["data"]["url"], "http://127.0.0.1:9/hook");
}
