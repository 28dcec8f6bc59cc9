//! Scoped API keys: every route of the route table refuses a key without
//! the scope it needs (403 `insufficient_scope` naming it) and lets one
//! with only that scope through; the CLI makes and lists scoped keys.

use std::collections::HashMap;

use serde_json::{json, Value};

use kyc_api::domain::api_key::Scope;
use kyc_api::routes::{Access, ROUTE_ACCESS};

use crate::backend_tests;
use crate::helpers::{assert_error, json, run_cli, TestApp};

backend_tests!(
    every_route_needs_its_scope,
    keys_are_made_and_listed_with_scopes
);

/// A new key of the test app with these scopes: (key id, secret).
pub fn key_with(app: &TestApp, scopes: &str) -> (String, String) {
    let out = run_cli(
        &app.db.url,
        &["keys", "create", &app.app_id, "--scopes", scopes],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        created["keyId"].as_str().unwrap().to_owned(),
        created["apiKey"].as_str().unwrap().to_owned(),
    )
}

/// The route's path with a fresh id for every parameter.
fn sample_path(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(&uuid::Uuid::new_v4().to_string());
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

async fn send(app: &TestApp, method: &str, path: &str, key: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .header("apiKey", key);
    if method == reqwest::Method::POST || method == reqwest::Method::PATCH {
        request = request.json(&json!({}));
    }
    json(request.send().await.unwrap()).await
}

async fn every_route_needs_its_scope(app: TestApp) {
    let mut only = HashMap::new();
    let mut all_but = HashMap::new();
    for &scope in Scope::ALL {
        only.insert(scope, key_with(&app, scope.as_str()).1);
        let others: Vec<&str> = Scope::ALL
            .iter()
            .filter(|&&other| other != scope)
            .map(|other| other.as_str())
            .collect();
        all_but.insert(scope, key_with(&app, &others.join(",")).1);
    }
    let mut checked = 0;
    for (method, path, access) in ROUTE_ACCESS {
        let Access::Key(scope) = access else {
            continue;
        };
        let path = sample_path(path);
        let (status, body) = send(&app, method, &path, &all_but[scope]).await;
        assert_error(status, &body, 403, "insufficient_scope");
        assert!(
            body["message"].as_str().unwrap().contains(scope.as_str()),
            "{method} {path}: {body}"
        );
        let (status, body) = send(&app, method, &path, &only[scope]).await;
        assert!(
            status != 401 && status != 403,
            "{method} {path} with only {scope}: {status} {body}"
        );
        checked += 1;
    }
    assert!(checked >= 30, "{checked}");
    // A scoped key reads what its scope covers and nothing else.
    let (status, _) = send(&app, "get", "/identities", &only[&Scope::IdentitiesRead]).await;
    assert_eq!(status, 200);
    let (status, body) = send(&app, "get", "/audit-log", &only[&Scope::IdentitiesRead]).await;
    assert_error(status, &body, 403, "insufficient_scope");
    // A bad key is still 401 before any scope is considered, and before a
    // bad body is (the body is refused at once, the key after a query).
    let (status, body) = send(&app, "get", "/audit-log", "kyc_not_a_key").await;
    assert_error(status, &body, 401, "api_key_invalid");
    let block = sample_path("/identities/{id}/block");
    let (status, body) = send(&app, "post", &block, "kyc_not_a_key").await;
    assert_error(status, &body, 401, "api_key_invalid");
}

async fn keys_are_made_and_listed_with_scopes(app: TestApp) {
    let out = run_cli(
        &app.db.url,
        &[
            "keys",
            "create",
            &app.app_id,
            "--scopes",
            "kyc:review,identities:read",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["scopes"], json!(["identities:read", "kyc:review"]));
    for bad in ["identities", "*,kyc:review", ""] {
        let out = run_cli(
            &app.db.url,
            &["keys", "create", &app.app_id, "--scopes", bad],
        );
        assert!(!out.status.success(), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--scopes"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run_cli(&app.db.url, &["keys", "list", &app.app_id]);
    assert!(out.status.success());
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scopes: Vec<Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["scopes"].clone())
        .collect();
    assert_eq!(
        scopes,
        [json!(["*"]), json!(["identities:read", "kyc:review"])],
        "the bootstrap key keeps every scope"
    );
}
