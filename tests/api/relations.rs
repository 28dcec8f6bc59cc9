//! A company's related parties (KYB): who may be one, the 100 % bound on
//! beneficial owners (also under concurrent writes), what a company's
//! answer shows, and what happens when a related person leaves.

use serde_json::{json, Value};

use crate::helpers::{assert_error, detail_fields, json, TestApp, TestDatabase};
use crate::identities::{company, create, person, reference_person};
use crate::{backend_tests, database_tests};

backend_tests!(
    relations_are_kept_checked_and_answered,
    who_may_be_related_and_to_what,
    the_owners_never_exceed_the_whole_company_under_concurrent_writes,
    a_related_person_cannot_be_deleted_but_can_be_erased,
);

database_tests!(related_parties_decide_a_companys_operations);

struct Firm {
    company: String,
    people: Vec<String>,
}

async fn firm(app: &TestApp, people: usize) -> Firm {
    let mut ids = Vec::new();
    for i in 0..people {
        let p = create(app, &person(&format!("p{i}@example.com"))).await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let c = create(app, &company("firm@example.com", &ids[0])).await;
    assert_eq!(c["relations"], json!([]), "a new company has none");
    Firm {
        company: c["id"].as_str().unwrap().to_owned(),
        people: ids,
    }
}

async fn relate(app: &TestApp, company: &str, body: Value) -> (u16, Value) {
    json(
        app.post(&format!("/identities/{company}/relations"), &body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn relations_are_kept_checked_and_answered(app: TestApp) {
    let Firm { company, people } = firm(&app, 3).await;
    let (status, first) = relate(
        &app,
        &company,
        json!({"personId": people[0], "role": "beneficialOwner", "ownershipPercent": 60, "title": "Founder"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let first = first["data"].clone();
    assert_eq!(first["companyId"], json!(company));
    assert_eq!(first["personId"], json!(people[0]));
    assert_eq!(first["role"], "beneficialOwner");
    assert_eq!(first["ownershipPercent"], json!(60.0));
    assert_eq!(first["title"], "Founder");

    // 60 + 40.01 is more than the company.
    let (status, body) = relate(
        &app,
        &company,
        json!({"personId": people[1], "role": "beneficialOwner", "ownershipPercent": 40.01}),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), vec!["ownershipPercent"]);
    // Exactly the rest fits.
    let (status, second) = relate(
        &app,
        &company,
        json!({"personId": people[1], "role": "beneficialOwner", "ownershipPercent": 40}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    // One person, several roles; a director's own shares do not count.
    let (status, director) = relate(
        &app,
        &company,
        json!({"personId": people[0], "role": "director", "ownershipPercent": 5}),
    )
    .await;
    assert_eq!(status, 200, "{director}");
    let director = director["data"]["id"].as_str().unwrap().to_owned();

    // The company's answer lists them, compact, in the order made.
    let (status, answer) = json(
        app.get(&format!("/identities/{company}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let compact: Vec<(Value, Value, Value)> = answer["data"]["relations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["personId"].clone(),
                r["role"].clone(),
                r["ownershipPercent"].clone(),
            )
        })
        .collect();
    assert_eq!(
        compact,
        vec![
            (json!(people[0]), json!("beneficialOwner"), json!(60.0)),
            (json!(people[1]), json!("beneficialOwner"), json!(40.0)),
            (json!(people[0]), json!("director"), json!(5.0)),
        ]
    );
    // A person's companies.
    let (status, companies) = json(
        app.get(&format!(
            "/identities?filter[relatedPersonId]={}",
            people[1]
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{companies}");
    assert_eq!(
        companies["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect::<Vec<_>>(),
        vec![json!(company)]
    );
    let (_, nobody) = json(
        app.get(&format!(
            "/identities?filter[relatedPersonId]={}",
            people[2]
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(nobody["data"], json!([]));
    // A person's answer has no relations field.
    let (_, person_answer) = json(
        app.get(&format!("/identities/{}", people[0]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(person_answer["data"].get("relations").is_none());
    let (_, listed) = json(
        app.get(&format!("/identities/{company}/relations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);

    // Patches keep the rules: over the bound, an owner without a share.
    let first_id = first["id"].as_str().unwrap();
    let path = format!("/identities/{company}/relations/{first_id}");
    let (status, body) = json(
        app.patch(&path, &json!({"ownershipPercent": 60.5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    let (status, body) = json(
        app.patch(&path, &json!({"ownershipPercent": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), vec!["ownershipPercent"]);
    let (status, body) = json(
        app.patch(&path, &json!({"ownershipPercent": 33.33, "title": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["ownershipPercent"], json!(33.33));
    assert_eq!(body["data"]["title"], Value::Null);
    let (status, body) = json(app.get(&path).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["ownershipPercent"], json!(33.33));

    // Deleted.
    let response = app
        .delete(&format!("/identities/{company}/relations/{director}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = json(
        app.get(&format!("/identities/{company}/relations/{director}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "relation_not_found");

    // Every change is an identity.updated of the company, naming relations.
    let (_, events) = json(
        app.get(&format!(
            "/events?filter[identityId]={company}&filter[type]=identity.updated"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e["data"]["changedFields"] == json!(["relations"])));
}

async fn who_may_be_related_and_to_what(app: TestApp) {
    let Firm { company, people } = firm(&app, 1).await;
    let cases = [
        // Only a company has relations.
        (
            format!("/identities/{}/relations", people[0]),
            json!({"personId": people[0], "role": "director"}),
            422,
            "identity_must_be_of_type_company",
        ),
        // A company is not a related person.
        (
            format!("/identities/{company}/relations"),
            json!({"personId": company, "role": "director"}),
            422,
            "related_person_must_be_of_type_person",
        ),
        (
            format!("/identities/{company}/relations"),
            json!({"personId": "8c4a5f4e-2b7e-4c1a-9f0e-3d6b1a2c4e5f", "role": "director"}),
            404,
            "related_person_not_found",
        ),
        (
            "/identities/8c4a5f4e-2b7e-4c1a-9f0e-3d6b1a2c4e5f/relations".to_owned(),
            json!({"personId": people[0], "role": "director"}),
            404,
            "identity_not_found",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, answer) = json(app.post(&path, &body).send().await.unwrap()).await;
        assert_error(got, &answer, status, code);
    }
    // Bad bodies name every field.
    let (status, body) = relate(
        &app,
        &company,
        json!({"role": "owner", "ownershipPercent": 101, "title": ""}),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(
        detail_fields(&body),
        vec!["role", "ownershipPercent", "title", "personId"]
    );
    // Another app's person is nobody here.
    let (_, other_key) = app.create_other_app("other");
    let (status, other_person) = json(
        app.client
            .post(app.url("/identities"))
            .header("apiKey", &other_key)
            .json(&person("elsewhere@example.com"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = relate(
        &app,
        &company,
        json!({"personId": other_person["data"]["id"], "role": "director"}),
    )
    .await;
    assert_error(status, &body, 404, "related_person_not_found");
}

/// Ten writers each add a 20 % owner at once: exactly five fit.
async fn the_owners_never_exceed_the_whole_company_under_concurrent_writes(app: TestApp) {
    let Firm { company, people } = firm(&app, 10).await;
    let writes = people.iter().map(|person| {
        let (client, url, key) = (
            app.client.clone(),
            app.url(&format!("/identities/{company}/relations")),
            app.api_key.clone(),
        );
        let body = json!({"personId": person, "role": "beneficialOwner", "ownershipPercent": 20});
        async move {
            client
                .post(url)
                .header("apiKey", key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        5,
        "{statuses:?}"
    );
    let (_, listed) = json(
        app.get(&format!("/identities/{company}/relations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let total: f64 = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ownershipPercent"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 100.0);
}

async fn a_related_person_cannot_be_deleted_but_can_be_erased(app: TestApp) {
    let Firm { company, people } = firm(&app, 2).await;
    let (status, _) = relate(
        &app,
        &company,
        json!({"personId": people[1], "role": "authorizedSignatory"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = json(
        app.delete(&format!("/identities/{}", people[1]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 409, "identity_related_party_in_use");
    // Erasure is owed to everyone: the relation goes with the person.
    let response = app
        .post(&format!("/identities/{}/erase", people[1]), &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (_, answer) = json(
        app.get(&format!("/identities/{company}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer["data"]["relations"], json!([]));
}

/// The KYB example of the default rules file, and a rule without `related`.
const KYB_RULES: &str = r#"
[[operation]]
action = "create"
code = "deposit:wire"
level = "basic"
status = "approved"

[[operation]]
action = "create"
code = "withdrawal:company_wire"
level = "basic"
status = "approved"
related = { roles = ["beneficialOwner", "director"], min_ownership = 25, level = "basic", status = "approved" }
"#;

/// An identity with an identity document and a face image, so a basic
/// verification starts with it.
fn with_documents(mut body: Value) -> Value {
    let reference = reference_person();
    body["documents"] = reference["documents"].clone();
    body["faceImages"] = reference["faceImages"].clone();
    body
}

async fn sandbox(app: &TestApp, outcome: &str, id: &str, email: &str) {
    let (status, body) = json(
        app.post(
            &format!("/sandbox/identities/{outcome}"),
            &json!({"identityId": id, "email": email}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn kyb_wire(app: &TestApp, id: &str) -> Option<String> {
    let (status, body) = json(
        app.get(&format!("/identities/{id}/operations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let op = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["code"] == "withdrawal:company_wire")
        .unwrap()
        .clone();
    assert_eq!(op["active"], op.get("reason").is_none(), "{op}");
    op.get("reason").map(|r| r.as_str().unwrap().to_owned())
}

/// The company's `identity.operations_changed` events so far: whether the
/// KYB operation was active in each.
async fn kyb_changes(app: &TestApp, company: &str) -> Vec<bool> {
    let (status, body) = json(
        app.get(&format!(
            "/events?filter[identityId]={company}&filter[type]=in:identity.operations_changed"
        ))
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
        .map(|event| {
            event["data"]["operations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|op| op["code"] == "withdrawal:company_wire")
                .unwrap()["active"]
                .as_bool()
                .unwrap()
        })
        .collect()
}

async fn related_parties_decide_a_companys_operations(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, KYB_RULES).unwrap();
    let app = TestApp::spawn_with(db, &[("KYC_OPERATION_RULES", rules.to_str().unwrap())]).await;
    let missing = Some("related_party_kyc_missing".to_owned());

    let mut people = Vec::new();
    for i in 0..3 {
        let email = format!("kyb{i}@example.com");
        let p = create(&app, &with_documents(person(&email))).await;
        people.push((p["id"].as_str().unwrap().to_owned(), email));
    }
    let (director, owner, small_owner) = (&people[0], &people[1], &people[2]);
    let c = create(
        &app,
        &with_documents(company("kyb@example.com", &director.0)),
    )
    .await;
    let company = c["id"].as_str().unwrap().to_owned();
    assert_eq!(
        kyb_wire(&app, &company).await,
        Some("kyc_required_status_not_reached".into()),
        "the company's own KYC is reported first"
    );
    sandbox(&app, "approve", &company, "kyb@example.com").await;
    assert_eq!(
        kyb_wire(&app, &company).await,
        missing,
        "a company with no related party has not shown its KYB"
    );
    // identityOwner is not a relation: approving the owner changes nothing.
    sandbox(&app, "approve", &director.0, &director.1).await;
    assert_eq!(kyb_wire(&app, &company).await, missing);
    // A person is not concerned by `related`: their own KYC decides.
    assert_eq!(kyb_wire(&app, &director.0).await, None);

    for (person, role, share) in [
        (director, "director", None),
        (owner, "beneficialOwner", Some(30)),
        (small_owner, "beneficialOwner", Some(10)),
    ] {
        let mut body = json!({"personId": person.0, "role": role});
        if let Some(share) = share {
            body["ownershipPercent"] = json!(share);
        }
        let (status, answer) = relate(&app, &company, body).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(
        kyb_wire(&app, &company).await,
        missing,
        "the 30 % owner is pending"
    );
    let (status, body) = json(
        app.post(
            "/operations/validate",
            &json!({"action": "create", "code": "withdrawal:company_wire", "identityId": company}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(status, &body, 422, "related_party_kyc_missing");
    // So far: the company's approval (deposit:wire opened), the approved
    // director's relation (alone, they met the requirement), the pending
    // 30 % owner's relation.
    assert_eq!(kyb_changes(&app, &company).await, vec![false, true, false]);

    // The owner's approval is a change of the company's operations too;
    // the 10 % owner, still pending, is not asked about.
    sandbox(&app, "approve", &owner.0, &owner.1).await;
    assert_eq!(kyb_wire(&app, &company).await, None);
    assert_eq!(
        kyb_changes(&app, &company).await,
        vec![false, true, false, true]
    );
    let (status, body) = json(
        app.post(
            "/operations/validate",
            &json!({"action": "create", "code": "withdrawal:company_wire", "identityId": company}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    // Blocking a related person closes it again, unblocking reopens it.
    for (path, active) in [("block", false), ("unblock", true)] {
        let (status, body) = json(
            app.post(
                &format!("/identities/{}/{path}", director.0),
                &json!({"reason": "test"}),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(kyb_wire(&app, &company).await.is_none(), active, "{path}");
    }
    assert_eq!(
        kyb_changes(&app, &company).await,
        vec![false, true, false, true, false, true]
    );

    // Raising the small owner to 25 % asks about them: pending, so closed.
    let relations = json(
        app.get(&format!("/identities/{company}/relations"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .1;
    let small = relations["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["personId"] == json!(small_owner.0))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = json(
        app.patch(
            &format!("/identities/{company}/relations/{small}"),
            &json!({"ownershipPercent": 25}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kyb_wire(&app, &company).await, missing);
    // Rejecting them keeps it closed (no change, no event); removing the
    // relation reopens it.
    sandbox(&app, "reject", &small_owner.0, &small_owner.1).await;
    assert_eq!(
        kyb_changes(&app, &company).await,
        vec![false, true, false, true, false, true, false]
    );
    let (status, _) = json(
        app.delete(&format!("/identities/{company}/relations/{small}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(kyb_wire(&app, &company).await, None);
    assert_eq!(
        kyb_changes(&app, &company).await,
        vec![false, true, false, true, false, true, false, true]
    );
}
