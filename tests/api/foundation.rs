//! Health, readiness, authentication and the shared error shape.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, run_cli, Backend, TestApp, TestDatabase};

backend_tests!(
    health_and_ready_answer_ok,
    requests_carry_a_request_id,
    api_key_is_required_and_checked,
    the_key_is_checked_before_the_input,
    revoked_keys_are_refused_at_once,
    unknown_route_and_wrong_method,
    body_errors_have_the_shared_shape,
    duplicate_json_keys_are_refused_on_every_body,
    a_body_must_be_an_object,
    internal_errors_reveal_nothing,
);

/// serde reads a struct from a JSON array too (`["x"]` as the first
/// field); no route takes one.
async fn a_body_must_be_an_object(app: TestApp) {
    let id = "8c4a5f4e-2b7e-4c1a-9f0e-3d6b1a2c4e5f";
    for (path, body) in [
        (format!("/events/{id}/redeliver"), "[]"),
        (format!("/identities/{id}/block"), "[\"a reason\"]"),
        (format!("/verifications/{id}/decision"), "[\"approved\"]"),
        ("/presign-url".to_owned(), "[\"passport.jpg\"]"),
        ("/identities".to_owned(), "[]"),
    ] {
        let (status, answer) = json(
            app.client
                .post(app.url(&path))
                .header("apiKey", &app.api_key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &answer, 400, "validation_failed");
        assert_eq!(detail_fields(&answer)[0], "body", "{path}: {answer}");
    }
}

/// The SQLite file (all the PII) and its WAL files are created 0600.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sqlite_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(Backend::Sqlite).await;
    crate::identities::create(&app, &crate::identities::person("private@example.com")).await;
    let path = std::path::PathBuf::from(app.db.url.trim_start_matches("sqlite://"));
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", file.display());
    }
}

/// A key given twice would let a proxy and the server read different
/// values; every JSON body refuses it, naming the key's path.
async fn duplicate_json_keys_are_refused_on_every_body(app: TestApp) {
    let send = |method: reqwest::Method, path: &str, raw: String| {
        app.client
            .request(method, app.url(path))
            .header("apiKey", &app.api_key)
            .header("content-type", "application/json")
            .body(raw)
            .send()
    };
    let person = crate::identities::person("dup@example.com").to_string();
    let twice = person.replacen('{', "{\"email\": \"other@example.com\", ", 1);
    let (status, body) = json(
        send(reqwest::Method::POST, "/identities", twice)
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), ["email"]);
    let nested = person.replacen("\"city\"", "\"city\": \"Porto\", \"city\"", 1);
    let (status, body) = json(
        send(reqwest::Method::POST, "/identities", nested)
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), ["address.city"]);
    let list: serde_json::Value = app
        .get("/identities")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0, "nothing was created");

    let created =
        crate::identities::create(&app, &crate::identities::person("one@example.com")).await;
    let id = created["id"].as_str().unwrap();
    for (method, path, raw) in [
        (
            reqwest::Method::PATCH,
            format!("/identities/{id}"),
            r#"{"name": "A", "name": "B"}"#,
        ),
        (
            reqwest::Method::POST,
            format!("/identities/{id}/block"),
            r#"{"reason": "a", "reason": "b"}"#,
        ),
        (
            reqwest::Method::POST,
            "/presign-url".to_string(),
            r#"{"filename": "a.png", "filename": "b.pdf"}"#,
        ),
    ] {
        let (status, body) = json(send(method, &path, raw.to_string()).await.unwrap()).await;
        assert_error(status, &body, 400, "validation_failed");
        assert_eq!(detail_fields(&body).len(), 1, "{path}: {body}");
    }
    let again =
        crate::identities::create(&app, &crate::identities::person("two@example.com")).await;
    assert_eq!(again["name"], created["name"]);
}

async fn internal_errors_reveal_nothing(app: TestApp) {
    let created =
        crate::identities::create(&app, &crate::identities::person("corrupt@example.com")).await;
    let id = created["id"].as_str().unwrap();
    // A row no code path of ours could have written.
    app.db.execute(&format!(
        "UPDATE identities SET gender = 'Robot' WHERE id = '{id}'"
    ));
    let (status, body) = json(
        app.patch(&format!("/identities/{id}"), &json!({"name": "New Name"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 500, "internal_error");
    assert_eq!(body["message"], "Internal server error.");
    assert_eq!(body["details"], json!([]));
    let text = body.to_string();
    for leak in ["Robot", "gender", "identity", "stored"] {
        assert!(!text.contains(leak), "500 body leaks `{leak}`: {text}");
    }
}

async fn health_and_ready_answer_ok(app: TestApp) {
    for path in ["/health", "/ready"] {
        let (status, body) = json(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, json!({"status": "ok"}));
    }
}

async fn requests_carry_a_request_id(app: TestApp) {
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok());

    let res = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
}

async fn api_key_is_required_and_checked(app: TestApp) {
    let (status, body) = json(app.client.get(app.url("/identities")).send().await.unwrap()).await;
    assert_error(status, &body, 401, "api_key_missing");

    let (status, body) = json(
        app.client
            .get(app.url("/identities"))
            .header("apiKey", "kyc_not_a_real_key_at_all_000000000000")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 401, "api_key_invalid");

    // Header names are case-insensitive.
    for header in ["apiKey", "apikey", "APIKEY"] {
        let res = app
            .client
            .get(app.url("/identities"))
            .header(header, &app.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{header}");
    }
}

/// A caller without a valid key learns nothing about the input rules: every
/// route that needs a key answers 401 even when its input is also wrong.
async fn the_key_is_checked_before_the_input(app: TestApp) {
    let bad_key = "kyc_not_a_real_key_at_all_000000000000";
    let gets = [
        "/identities/not-a-uuid",
        "/identities?page[size]=0&filter[nope]=1",
        "/identities/not-a-uuid/operations",
        "/identities/not-a-uuid/history",
        "/verifications/not-a-uuid",
        "/verifications?sort=nope",
        "/identities/not-a-uuid/documents/not-a-uuid/presign-url",
    ];
    for path in gets {
        let (status, body) = json(
            app.client
                .get(app.url(path))
                .header("apiKey", bad_key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &body, 401, "api_key_invalid");
        let (status, body) = json(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_error(status, &body, 401, "api_key_missing");
    }
    // Bodies that are JSON of the expected shape but break the rules. (A
    // body that is not JSON at all, or not of the shape, is refused by the
    // body reader as it arrives, which can come first: that tells nothing
    // about the data or its rules.)
    let posts = [
        ("/identities", "{}"),
        (
            "/operations/validate",
            r#"{"action": "create", "code": "nope", "identityId": "not-a-uuid"}"#,
        ),
        ("/presign-url", r#"{"filename": "x.exe"}"#),
    ];
    for (path, body) in posts {
        let (status, body) = json(
            app.client
                .post(app.url(path))
                .header("apiKey", bad_key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &body, 401, "api_key_invalid");
    }
}

async fn revoked_keys_are_refused_at_once(app: TestApp) {
    let out = run_cli(&app.db.url, &["keys", "create", &app.app_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["apiKey"].as_str().unwrap();
    let key_id = created["keyId"].as_str().unwrap();

    let res = app
        .client
        .get(app.url("/identities"))
        .header("apiKey", key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let out = run_cli(&app.db.url, &["keys", "revoke", key_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, body) = json(
        app.client
            .get(app.url("/identities"))
            .header("apiKey", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 401, "api_key_invalid");
    // The other key of the app still works.
    assert_eq!(app.get("/identities").send().await.unwrap().status(), 200);
}

async fn unknown_route_and_wrong_method(app: TestApp) {
    let (status, body) = json(app.get("/no/such/route").send().await.unwrap()).await;
    assert_error(status, &body, 404, "not_found");

    for (method, path, allow) in [
        (reqwest::Method::PUT, "/identities", "GET, POST"),
        (reqwest::Method::DELETE, "/health", "GET"),
        (
            reqwest::Method::POST,
            "/identities/00000000-0000-0000-0000-000000000000",
            "GET, PATCH, DELETE",
        ),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        // RFC 9110: a 405 names the methods the resource does support.
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        let (status, body) = json(res).await;
        assert_error(status, &body, 405, "method_not_allowed");
    }
}

async fn body_errors_have_the_shared_shape(app: TestApp) {
    let post = || {
        app.client
            .post(app.url("/identities"))
            .header("apiKey", &app.api_key)
    };

    let (status, body) = json(
        post()
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "malformed_json");

    let (status, body) = json(
        post()
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 415, "unsupported_media_type");

    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, body) = json(
        post()
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
}

/// `/ready` follows the database: through a TCP proxy in front of the shared
/// PostgreSQL that the test cuts and restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_a_lost_postgres_and_recovers() {
    let Some((app, proxy)) = crate::helpers::app_behind_a_proxy(&[]).await else {
        return;
    };
    let ready = || async { json(app.client.get(app.url("/ready")).send().await.unwrap()).await };

    assert_eq!(ready().await.0, 200);

    proxy.cut();
    let (status, body) = ready().await;
    assert_error(status, &body, 503, "database_unavailable");
    // Liveness does not depend on the database.
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = ready().await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn serve_and_migrate_fail_fast_on_unreachable_postgres() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let url = "postgres://postgres@127.0.0.1:1/kyc";
    for command in [vec!["migrate"], vec!["serve"]] {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
            .args(&command)
            .env("DATABASE_URL", url)
            .env("KYC_BIND", "127.0.0.1:0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command:?} must fail");
        assert!(
            stderr.contains("Connection refused"),
            "libpq's reason expected: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn invalid_configuration_stops_start_up_with_the_variable_named() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .env("KYC_BIND", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KYC_BIND"));
}

/// A libpq keyword/value string in `DATABASE_URL` reaches PostgreSQL (it was
/// once taken for a SQLite file name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libpq_keyword_string_selects_postgres() {
    if crate::helpers::postgres_admin_url().is_none() {
        return;
    }
    let db = TestDatabase::create(Backend::Postgres);
    let url = url::Url::parse(&db.url).unwrap();
    let keywords = format!(
        "host={} port={} user={} dbname={}",
        url.host_str().unwrap(),
        url.port().unwrap_or(5432),
        url.username(),
        db.pg_name.clone().unwrap()
    );
    let app = TestApp::spawn_on_url(db, &keywords, &[]).await;
    let created =
        crate::identities::create(&app, &crate::identities::person("kw@example.com")).await;
    assert_eq!(
        crate::helpers::query_count(
            &app.db,
            &format!(
                "SELECT count(*) FROM identities WHERE id = '{}'",
                created["id"].as_str().unwrap()
            )
        ),
        1
    );
}

/// `/metrics` counts requests by route template (never the raw path) and
/// status class; with `KYC_METRICS_BIND` it moves to that address and the
/// public route answers 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_template() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{metrics_port}");
    let app = TestApp::spawn_with(
        TestDatabase::create(Backend::Sqlite),
        &[("KYC_METRICS_BIND", bind.as_str())],
    )
    .await;
    let id = uuid::Uuid::new_v4();
    for _ in 0..3 {
        app.get(&format!("/identities/{id}/history"))
            .send()
            .await
            .unwrap();
    }
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let text = app
        .client
        .get(format!("http://{bind}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = crate::helpers::request_count(
        &text,
        &[r#"route="/identities/{id}/history""#, r#"status="4xx""#],
    );
    // Other tests of this process count into the same recorder.
    assert!(count >= 3.0, "{count}");
    assert!(
        !text.contains(&id.to_string()),
        "raw paths never become labels"
    );
    assert!(text.contains("kyc_http_request_duration_seconds_bucket"));
    assert!(text.contains("kyc_db_pool_connections"));
    assert!(text.contains("kyc_db_pool_waiting_checkouts 0"), "{text}");
    assert!(text.contains("kyc_db_checkout_wait_seconds"));
}
