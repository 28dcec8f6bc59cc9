//! Structured decisions: a rejection's type (retry or final) and labels,
//! comments for the customer and for reviewers only, the sandbox's same
//! fields, the verification list's filters, and erasure of the free text.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, query_count, TestApp};
use crate::identities::{create, reference_person};

backend_tests!(
    a_rejection_says_whether_and_why,
    the_sandbox_rejects_with_the_same_fields,
);

async fn decide(app: &TestApp, verification_id: &str, body: Value) -> (u16, Value) {
    json(
        app.post(&format!("/verifications/{verification_id}/decision"), &body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = json(app.get(path).send().await.unwrap()).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn new_documents(app: &TestApp, id: &str) -> (u16, Value) {
    json(
        app.patch(
            &format!("/identities/{id}"),
            &json!({"documents": [{"type": "Passport", "side": "FrontSide", "url": "https://example.com/passport-2.jpg"}]}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await
}

/// Ids of the verifications a `GET /verifications` query answers.
async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    get(app, &format!("/verifications?{query}")).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every answer that could carry a decision's text, as raw bodies.
async fn everything_answered(app: &TestApp, id: &str, verifications: &[&str]) -> String {
    let mut bodies = Vec::new();
    for path in [
        format!("/identities/{id}"),
        format!("/identities/{id}/history"),
        format!("/verifications?filter[identityId]={id}"),
        format!("/verifications?filter[identityId]={id}&all=true"),
        "/events?page[size]=1000".to_owned(),
        "/audit-log?page[size]=1000".to_owned(),
    ]
    .into_iter()
    .chain(verifications.iter().map(|v| format!("/verifications/{v}")))
    {
        let response = app.get(&path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        bodies.push(response.text().await.unwrap());
    }
    bodies.join("\n")
}

async fn a_rejection_says_whether_and_why(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first = created["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();

    // A rejection's fields go with a rejection only, each label once, from
    // the catalogue; every problem is named.
    let (status, body) = decide(
        &app,
        &first,
        json!({"status": "approved", "rejectType": "final", "rejectLabels": ["other"]}),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), ["rejectType", "rejectLabels"]);
    let (status, body) = decide(
        &app,
        &first,
        json!({"status": "rejected", "rejectLabels": ["underage", "underage"], "clientComment": " "}),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), ["clientComment", "rejectLabels"]);
    for bad in [
        json!({"status": "rejected", "rejectLabels": ["blurry"]}),
        json!({"status": "rejected", "rejectType": "never"}),
        json!({"status": "rejected", "rejectLabels": "other"}),
    ] {
        let (status, body) = decide(&app, &first, bad.clone()).await;
        assert_error(status, &body, 400, "validation_failed");
        assert_eq!(
            get(&app, &format!("/verifications/{first}")).await["data"]["status"],
            "pending",
            "{bad}"
        );
    }

    // A retry: the customer may send new documents.
    let (status, body) = decide(
        &app,
        &first,
        json!({
            "status": "rejected",
            "reason": "photo",
            "rejectType": "retry",
            "rejectLabels": ["documentUnreadable"],
            "clientComment": "Please send a sharper photo of your passport.\nThank you.",
            "internalComment": "INTERNAL-NOTE-one: glare over the MRZ",
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = &body["data"];
    assert_eq!(answer["status"], "rejected");
    assert_eq!(answer["rejectType"], "retry");
    assert_eq!(answer["rejectLabels"], json!(["documentUnreadable"]));
    assert_eq!(
        answer["clientComment"],
        "Please send a sharper photo of your passport.\nThank you."
    );
    assert!(answer.get("internalComment").is_none(), "{answer}");
    let last = answer["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["rejectType"], "retry");
    assert_eq!(last["rejectLabels"], json!(["documentUnreadable"]));
    assert_eq!(last["clientComment"], answer["clientComment"]);
    // The pending entry has none of it.
    let pending = &answer["history"][0];
    assert!(
        pending.get("rejectType").is_none() && pending.get("clientComment").is_none(),
        "{pending}"
    );

    let (status, body) = new_documents(&app, &id).await;
    assert_eq!(status, 200, "{body}");
    let second = body["data"]["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second, first);
    assert_eq!(body["data"]["kycStatus"][0]["status"], "pending");

    // A final rejection: no new verification at the level.
    let (status, body) = decide(
        &app,
        &second,
        json!({
            "status": "rejected",
            "rejectType": "final",
            "rejectLabels": ["fraudSuspicion", "documentMismatch"],
            "internalComment": "INTERNAL-NOTE-two: same face as another applicant",
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["rejectType"], "final");
    assert_eq!(
        body["data"]["rejectLabels"],
        json!(["documentMismatch", "fraudSuspicion"]),
        "catalogue order"
    );
    assert!(body["data"].get("clientComment").is_none());
    let documents_before =
        get(&app, &format!("/identities/{id}")).await["data"]["documents"].clone();
    let (status, body) = new_documents(&app, &id).await;
    assert_error(status, &body, 422, "verification_rejected_final");
    let after = get(&app, &format!("/identities/{id}")).await["data"].clone();
    assert_eq!(after["documents"], documents_before, "nothing was written");
    assert_eq!(after["kycStatus"][0]["verificationId"], json!(second));
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
    assert_error(status, &body, 422, "verification_rejected_final");

    // The list finds rejections by type and by label.
    assert_eq!(
        listed(&app, "filter[rejectType]=final").await,
        std::slice::from_ref(&second)
    );
    assert_eq!(
        listed(&app, "filter[rejectType]=retry").await,
        std::slice::from_ref(&first)
    );
    assert_eq!(
        listed(&app, "filter[rejectLabels]=documentUnreadable").await,
        std::slice::from_ref(&first)
    );
    assert_eq!(
        listed(&app, "filter[rejectLabels]=in:underage,fraudSuspicion").await,
        std::slice::from_ref(&second)
    );
    assert_eq!(
        listed(
            &app,
            "filter[rejectLabels]=in:documentMismatch,documentUnreadable&sort=createdAt"
        )
        .await,
        [first.clone(), second.clone()]
    );
    assert!(listed(&app, "filter[rejectLabels]=underage")
        .await
        .is_empty());
    let (status, body) = json(
        app.get("/verifications?filter[rejectLabels]=blurry")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // The event carries the decision, never the internal comment.
    let events = get(
        &app,
        &format!("/events?filter[identityId]={id}&filter[type]=in:verification.status_changed"),
    )
    .await;
    let data = &events["data"][0]["data"];
    assert_eq!(data["rejectType"], "retry");
    assert_eq!(data["rejectLabels"], json!(["documentUnreadable"]));
    assert_eq!(data["clientComment"], answer["clientComment"]);
    assert_eq!(events["data"][1]["data"]["rejectType"], "final");

    let everything = everything_answered(&app, &id, &[&first, &second]).await;
    assert!(
        everything.contains("sharper photo"),
        "the check reads what it should"
    );
    assert!(
        !everything.contains("INTERNAL-NOTE"),
        "an internal comment was answered"
    );
    assert!(!everything.contains("internalComment"));
    // It is kept, for reviewers.
    assert_eq!(
        query_count(
            &app.db,
            "SELECT COUNT(*) AS count FROM identity_events WHERE internal_comment LIKE 'INTERNAL-NOTE%'"
        ),
        2
    );

    // Erasure takes the free text with the rest of the person.
    let (status, body) = json(
        app.post(&format!("/identities/{id}/erase"), &json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        query_count(
            &app.db,
            &format!(
                "SELECT COUNT(*) AS count FROM identity_events WHERE identity_id = '{id}' \
                 AND (internal_comment IS NOT NULL OR client_comment IS NOT NULL OR reason IS NOT NULL)"
            )
        ),
        0
    );
    assert_eq!(
        query_count(
            &app.db,
            &format!(
                "SELECT COUNT(*) AS count FROM verifications WHERE identity_id = '{id}' \
                 AND (client_comment IS NOT NULL OR reason IS NOT NULL)"
            )
        ),
        0
    );
}

async fn the_sandbox_rejects_with_the_same_fields(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let sandbox = |outcome: &str, body: Value| {
        let request = app.post(&format!("/sandbox/identities/{outcome}"), &body);
        async move { json(request.send().await.unwrap()).await }
    };
    let (status, body) = sandbox(
        "approve",
        json!({"identityId": id, "email": "foobar@publicmint.com", "rejectType": "final"}),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), ["rejectType"]);
    let (status, body) = sandbox(
        "reject",
        json!({
            "identityId": id,
            "email": "foobar@publicmint.com",
            "reason": "minor",
            "rejectType": "final",
            "rejectLabels": ["underage"],
            "clientComment": "You must be 18 or older.",
            "internalComment": "INTERNAL-NOTE-three",
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let verification = created["kycStatus"][0]["verificationId"].as_str().unwrap();
    let answer = get(&app, &format!("/verifications/{verification}")).await["data"].clone();
    assert_eq!(answer["rejectType"], "final");
    assert_eq!(answer["rejectLabels"], json!(["underage"]));
    assert_eq!(answer["clientComment"], "You must be 18 or older.");
    assert_eq!(answer["reason"], "minor");
    let history = get(&app, &format!("/identities/{id}/history")).await;
    let rejected = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "rejected")
        .unwrap()
        .clone();
    assert_eq!(rejected["rejectType"], "final");
    assert_eq!(rejected["rejectLabels"], json!(["underage"]));
    assert_eq!(rejected["clientComment"], "You must be 18 or older.");
    let everything = everything_answered(&app, &id, &[verification]).await;
    assert!(!everything.contains("INTERNAL-NOTE"));
    // A plain sandbox rejection, as the reference sends it, is a retry.
    let other = create(&app, &{
        let mut body = reference_person();
        body["email"] = json!("second@example.com");
        body
    })
    .await;
    let (status, body) = sandbox(
        "reject",
        json!({"identityId": other["id"], "email": "second@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let verification = other["kycStatus"][0]["verificationId"].as_str().unwrap();
    let answer = get(&app, &format!("/verifications/{verification}")).await["data"].clone();
    assert_eq!(answer["rejectType"], "retry");
    assert_eq!(answer["rejectLabels"], json!([]));
}
