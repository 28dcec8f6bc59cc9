//! `openapi.yaml` is the contract: it must describe exactly the routes the
//! server has, and the server must serve it as it is in the repository.

use std::collections::BTreeSet;

use crate::helpers::TestApp;

const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> serde_yaml::Value {
    serde_yaml::from_str(OPENAPI_YAML).expect("openapi.yaml is valid YAML")
}

/// Every operation of the spec, labelled `METHOD /path`.
fn operations(doc: &serde_yaml::Value) -> Vec<(String, &serde_yaml::Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_mapping().expect("openapi.yaml has `paths`") {
        for (method, operation) in item.as_mapping().expect("a path item is a mapping") {
            let method = method.as_str().expect("path item keys are strings");
            if HTTP_METHODS.contains(&method) {
                let path = path.as_str().expect("paths are strings");
                found.push((format!("{} {path}", method.to_uppercase()), operation));
            }
        }
    }
    found
}

/// `/files/{key:.*}` (actix) → `/files/{key}` (OpenAPI).
fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    let mut skipping_regex = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push(c);
            }
            '}' if in_param => {
                in_param = false;
                skipping_regex = false;
                out.push(c);
            }
            ':' if in_param => skipping_regex = true,
            _ if skipping_regex => {}
            _ => out.push(c),
        }
    }
    out
}

/// Every (method, path) the spec describes.
fn spec_routes() -> BTreeSet<(String, String)> {
    let doc = document();
    let paths = doc["paths"]
        .as_mapping()
        .expect("openapi.yaml has a `paths` mapping");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("paths are strings");
        let item = item.as_mapping().expect("a path item is a mapping");
        for key in item.keys() {
            let key = key.as_str().expect("path item keys are strings");
            if HTTP_METHODS.contains(&key) {
                routes.insert((key.to_string(), path.to_string()));
            }
        }
    }
    routes
}

/// Every (method, path) the server has, in OpenAPI syntax.
fn server_routes() -> BTreeSet<(String, String)> {
    kyc_api::routes::ROUTES
        .iter()
        .chain(kyc_api::routes::SANDBOX_ROUTES)
        .map(|(method, path)| (method.to_string(), normalise(path)))
        .collect()
}

fn listing(routes: &BTreeSet<(String, String)>) -> String {
    routes
        .iter()
        .map(|(method, path)| format!("  {} {path}", method.to_uppercase()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn normalise_drops_route_regexes() {
    assert_eq!(normalise("/files/{key:.*}"), "/files/{key}");
    assert_eq!(normalise("/identities/{id}"), "/identities/{id}");
    assert_eq!(normalise("/a/{x:[0-9]+}/b/{y}"), "/a/{x}/b/{y}");
}

#[test]
fn openapi_describes_exactly_the_routes_of_the_server() {
    let spec = spec_routes();
    let server = server_routes();
    let undocumented: BTreeSet<_> = server.difference(&spec).cloned().collect();
    let phantom: BTreeSet<_> = spec.difference(&server).cloned().collect();
    let mut problems = Vec::new();
    if !undocumented.is_empty() {
        problems.push(format!(
            "routes the server has that openapi.yaml does not describe:\n{}",
            listing(&undocumented)
        ));
    }
    if !phantom.is_empty() {
        problems.push(format!(
            "routes openapi.yaml describes that the server does not have:\n{}",
            listing(&phantom)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_audit_actions_are_the_servers() {
    let doc = document();
    let stated: Vec<&str> = doc["components"]["schemas"]["AuditRecord"]["properties"]["action"]
        ["enum"]
        .as_sequence()
        .expect("AuditRecord.action is an enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let server: Vec<&str> = kyc_api::services::audit::actions().collect();
    assert_eq!(stated, server);
}

#[test]
fn every_operation_states_the_scope_its_route_needs() {
    use kyc_api::routes::{Access, ROUTE_ACCESS};
    let doc = document();
    let mut problems = Vec::new();
    for (method, path, access) in ROUTE_ACCESS {
        let operation = &doc["paths"][normalise(path).as_str()][*method];
        let stated = operation["x-required-scope"].as_str();
        let needed = match access {
            Access::Public => None,
            Access::Key(scope) => Some(scope.as_str()),
        };
        if stated != needed {
            problems.push(format!(
                "{} {path}: openapi.yaml says {stated:?}, the server needs {needed:?}",
                method.to_uppercase()
            ));
        }
        if needed.is_some() && operation["responses"]["403"].is_null() {
            problems.push(format!(
                "{} {path}: no 403 documented",
                method.to_uppercase()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        ROUTE_ACCESS.len(),
        server_routes().len(),
        "every route has its access"
    );
}

#[test]
fn every_operation_has_a_unique_operation_id_and_documented_responses() {
    let doc = document();
    let mut ids = BTreeSet::new();
    for (label, operation) in operations(&doc) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{label} has no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        let responses = operation["responses"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{label} has no responses"));
        assert!(
            responses
                .keys()
                .any(|status| status.as_str().is_some_and(|s| s.starts_with('2'))),
            "{label} documents no success response"
        );
    }
}

async fn serves_the_openapi_document_without_an_api_key(app: TestApp) {
    let response = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/yaml"),
        "content-type: {content_type}"
    );
    let body = response.bytes().await.expect("body");
    assert!(
        body.as_ref() == OPENAPI_YAML.as_bytes(),
        "GET /openapi.yaml must answer the bytes of openapi.yaml"
    );
}

crate::backend_tests!(serves_the_openapi_document_without_an_api_key);

fn spec() -> &'static serde_yaml::Value {
    static SPEC: std::sync::OnceLock<serde_yaml::Value> = std::sync::OnceLock::new();
    SPEC.get_or_init(document)
}

/// A response object, with a `$ref` to `components/responses` followed.
fn resolved<'a>(
    doc: &'a serde_yaml::Value,
    response: &'a serde_yaml::Value,
) -> &'a serde_yaml::Value {
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/responses/")
                .unwrap_or_else(|| {
                    panic!("a response $ref into components/responses: {reference}")
                });
            &doc["components"]["responses"][name]
        }
        None => response,
    }
}

/// The codes an error response lists: its schema is `allOf` of `Error` and
/// an object whose `code` is an enum.
fn listed_codes(response: &serde_yaml::Value) -> Option<Vec<String>> {
    let parts = response["content"]["application/json"]["schema"]["allOf"].as_sequence()?;
    if parts.first()?["$ref"].as_str() != Some("#/components/schemas/Error") {
        return None;
    }
    let codes = parts.get(1)?["properties"]["code"]["enum"].as_sequence()?;
    Some(
        codes
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect(),
    )
}

/// Spec paths matching a request path, the most literal first.
fn matching_paths(doc: &serde_yaml::Value, path: &str) -> Vec<String> {
    let wanted: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut found: Vec<(usize, String)> = Vec::new();
    for template in doc["paths"].as_mapping().unwrap().keys() {
        let template = template.as_str().unwrap();
        let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        let rest_param = template == "/files/{key}";
        let fits = if rest_param {
            wanted.len() >= 2 && wanted[0] == "files"
        } else {
            parts.len() == wanted.len()
                && parts
                    .iter()
                    .zip(&wanted)
                    .all(|(p, w)| p.starts_with('{') || p == w)
        };
        if fits {
            let literal = parts.iter().filter(|p| !p.starts_with('{')).count();
            found.push((literal, template.to_string()));
        }
    }
    found.sort_by_key(|(literal, _)| std::cmp::Reverse(*literal));
    let best = found.first().map(|(literal, _)| *literal);
    found
        .into_iter()
        .filter(|(literal, _)| Some(*literal) == best)
        .map(|(_, template)| template)
        .collect()
}

/// Called for every error answer the API tests read (`helpers::json`):
/// the code must be one that `openapi.yaml` lists for that route and
/// status. A method the route does not take (405) is the one answer no
/// operation lists; a path no route has is the router's `not_found`.
pub fn assert_documented_error(path: &str, status: u16, code: &str) {
    if status == 405 && code == "method_not_allowed" {
        return;
    }
    let doc = spec();
    let templates = matching_paths(doc, path);
    if templates.is_empty() {
        assert_eq!(
            (status, code),
            (404, "not_found"),
            "{path} is no route of openapi.yaml"
        );
        return;
    }
    let mut listed = BTreeSet::new();
    for template in &templates {
        for (method, operation) in doc["paths"][template.as_str()].as_mapping().unwrap() {
            if !HTTP_METHODS.contains(&method.as_str().unwrap()) {
                continue;
            }
            let response = &operation["responses"][status.to_string().as_str()];
            if !response.is_null() {
                listed.extend(listed_codes(resolved(doc, response)).unwrap_or_default());
            }
        }
    }
    assert!(
        listed.contains(code),
        "openapi.yaml does not list `{code}` for {status} on {templates:?} (it lists {listed:?})"
    );
}

#[test]
fn the_error_codes_are_the_servers() {
    let doc = document();
    let stated: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_sequence()
        .expect("ErrorCode is an enum")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let server: BTreeSet<String> = kyc_api::error::ApiError::catalogue()
        .into_iter()
        .map(|(code, _)| code.to_string())
        .collect();
    assert_eq!(stated, server);
}

/// Each error response of each operation lists its codes, and each code is
/// one the server answers with that status.
#[test]
fn every_error_response_lists_codes_of_its_status() {
    let doc = document();
    let status_of: std::collections::BTreeMap<&str, u16> =
        kyc_api::error::ApiError::catalogue().into_iter().collect();
    let mut problems = Vec::new();
    for (where_, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_mapping().unwrap() {
            let status: u16 = status.as_str().unwrap().parse().unwrap();
            if status < 400 {
                continue;
            }
            match listed_codes(resolved(&doc, response)) {
                None => problems.push(format!("{where_} {status}: no code enum")),
                Some(codes) => {
                    for code in codes {
                        match status_of.get(code.as_str()) {
                            Some(s) if *s == status => {}
                            Some(s) => problems
                                .push(format!("{where_} {status}: `{code}` is answered with {s}")),
                            None => {
                                problems.push(format!("{where_} {status}: `{code}` is no code"))
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn request_paths_find_their_templates() {
    let doc = document();
    assert_eq!(
        matching_paths(&doc, "/identities/abc"),
        ["/identities/{id}"]
    );
    assert_eq!(matching_paths(&doc, "/files/a/b/c.png"), ["/files/{key}"]);
    assert!(matching_paths(&doc, "/nope").is_empty());
}

/// The headers the server sends are declared: `x-request-id` on every
/// response, `Idempotent-Replayed` on the success of every operation that
/// takes an `Idempotency-Key`, the rate-limit headers on the success of
/// every keyed operation, `Allow` on the 405 answer.
#[test]
fn responses_declare_the_headers_the_server_sends() {
    let doc = document();
    let mut problems = Vec::new();
    for (where_, operation) in operations(&doc) {
        let idempotent = operation["parameters"].as_sequence().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["$ref"].as_str() == Some("#/components/parameters/IdempotencyKey"))
        });
        let keyed = operation["security"]
            .as_sequence()
            .is_none_or(|s| !s.is_empty());
        for (status, response) in operation["responses"].as_mapping().unwrap() {
            let status = status.as_str().unwrap();
            let headers = &resolved(&doc, response)["headers"];
            let mut wanted = vec!["x-request-id"];
            if status.starts_with('2') {
                if idempotent {
                    wanted.push("Idempotent-Replayed");
                }
                if keyed {
                    wanted.extend(["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]);
                }
            }
            for header in wanted {
                if headers[header].is_null() {
                    problems.push(format!("{where_} {status}: no `{header}` header"));
                }
            }
        }
    }
    let method_not_allowed = &doc["components"]["responses"]["MethodNotAllowed"]["headers"];
    if method_not_allowed["Allow"].is_null() {
        problems.push("MethodNotAllowed: no `Allow` header".into());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
