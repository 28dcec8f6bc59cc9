//! PII custody: personal data sealed at rest under each identity's own
//! key, and what a sealed value moved elsewhere does.

use base64::Engine;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, database_bytes, json, TestApp};
use crate::identities::{company, create, person};

backend_tests!(
    personal_data_is_sealed_at_rest,
    a_sealed_value_moved_to_another_identity_does_not_open,
);

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
