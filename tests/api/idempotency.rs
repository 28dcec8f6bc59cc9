//! Idempotency-Key: a retry changes nothing and answers what the first
//! answered, byte for byte; a key names one request of one app.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, Backend, TestApp, TestDatabase};
use crate::identities::{person, reference_person};

backend_tests!(
    a_retry_replays_the_first_answer_and_changes_nothing,
    a_key_names_one_request,
    a_failed_request_leaves_its_key_free,
    concurrent_retries_make_one_write,
    keys_belong_to_their_app,
    malformed_keys_are_refused,
);

/// Sends `request` with `key`: status, the replay header, the body bytes.
async fn send_keyed(request: reqwest::RequestBuilder, key: &str) -> (u16, Option<String>, Vec<u8>) {
    let response = request.header("Idempotency-Key", key).send().await.unwrap();
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_string());
    (status, replayed, response.bytes().await.unwrap().to_vec())
}

async fn total(app: &TestApp, path: &str) -> u64 {
    let (status, body) = json(app.get(path).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["total"]
        .as_u64()
        .unwrap_or_else(|| body["data"].as_array().unwrap().len() as u64)
}

async fn a_retry_replays_the_first_answer_and_changes_nothing(app: TestApp) {
    let key = "create-ana-1";
    let (status, replayed, first) =
        send_keyed(app.post("/identities", &reference_person()), key).await;
    assert_eq!(
        (status, replayed),
        (200, None),
        "{}",
        String::from_utf8_lossy(&first)
    );
    let events = total(&app, "/events?page[size]=1000").await;

    // The same body, its keys in another order and spaced differently.
    let reordered: Value = serde_json::from_slice(&first).unwrap();
    let mut body = reference_person().as_object().unwrap().clone();
    let email = body.remove("email").unwrap();
    body.insert("email".into(), email);
    let (status, replayed, again) = send_keyed(
        app.client
            .post(app.url("/identities"))
            .header("apiKey", &app.api_key)
            .header("Content-Type", "application/json")
            .body(serde_json::to_string_pretty(&Value::Object(body)).unwrap()),
        key,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again, first, "byte for byte");
    assert_eq!(total(&app, "/identities").await, 1, "no second identity");
    assert_eq!(
        total(&app, "/events?page[size]=1000").await,
        events,
        "no second event"
    );

    // A PATCH and an answer without a body (204) replay the same way.
    let id = reordered["data"]["id"].as_str().unwrap();
    let patch = || app.patch(&format!("/identities/{id}"), &json!({"name": "Ana Lima"}));
    let (status, _, patched) = send_keyed(patch(), "patch-1").await;
    assert_eq!(status, 200);
    let (status, replayed, again) = send_keyed(patch(), "patch-1").await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
    assert_eq!(again, patched);
    let validate = || {
        app.post(
            "/operations/validate",
            &json!({"action": "deposit", "code": "wire", "identityId": id}),
        )
    };
    let (first_status, _, _) = send_keyed(validate(), "validate-1").await;
    let (status, _, _) = send_keyed(validate(), "validate-1").await;
    assert_eq!(status, first_status);
}

async fn a_key_names_one_request(app: TestApp) {
    let (status, _, _) = send_keyed(app.post("/identities", &person("a@example.com")), "k").await;
    assert_eq!(status, 200);
    for (request, what) in [
        (
            app.post("/identities", &person("b@example.com")),
            "another body",
        ),
        (
            app.post(
                "/webhook-endpoints",
                &json!({"url": "https://hooks.example/a"}),
            ),
            "another route",
        ),
    ] {
        let (status, _, body) = send_keyed(request, "k").await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_error(status, &body, 422, "idempotency_key_reused");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("POST /identities"),
            "{what}: {body}"
        );
    }
    assert_eq!(total(&app, "/identities").await, 1);
}

async fn a_failed_request_leaves_its_key_free(app: TestApp) {
    // Refused before any write (validation), then refused by a write (a
    // taken email): neither stores an answer, so the key runs again.
    let (status, _, _) = send_keyed(app.post("/identities", &json!({"type": "person"})), "k").await;
    assert_eq!(status, 400);
    let (status, _, _) =
        send_keyed(app.post("/identities", &person("a@example.com")), "first").await;
    assert_eq!(status, 200);
    let (status, _, body) =
        send_keyed(app.post("/identities", &person("a@example.com")), "k").await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_error(status, &body, 400, "email_already_in_use");
    let (status, replayed, _) =
        send_keyed(app.post("/identities", &person("b@example.com")), "k").await;
    assert_eq!((status, replayed), (200, None), "a fresh run, not a replay");
    assert_eq!(total(&app, "/identities").await, 2);
}

/// Twenty requests with one key at once: one write; every other answer is
/// the replay of it or `idempotency_key_in_use`.
async fn concurrent_retries_make_one_write(app: TestApp) {
    let body = reference_person();
    let sends = (0..20).map(|_| send_keyed(app.post("/identities", &body), "racing"));
    let answers = futures_util::future::join_all(sends).await;
    let mut created = None;
    for (status, replayed, bytes) in &answers {
        match status {
            200 => {
                let first = created.get_or_insert_with(|| bytes.clone());
                assert_eq!(first, bytes, "every success is the same answer");
                let _ = replayed;
            }
            409 => {
                let body: Value = serde_json::from_slice(bytes).unwrap();
                assert_error(*status, &body, 409, "idempotency_key_in_use");
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(bytes)),
        }
    }
    assert_eq!(
        answers
            .iter()
            .filter(|(s, r, _)| *s == 200 && r.is_none())
            .count(),
        1,
        "exactly one request ran"
    );
    assert_eq!(total(&app, "/identities").await, 1);
    // Once it has answered, a retry replays.
    let (status, replayed, bytes) = send_keyed(app.post("/identities", &body), "racing").await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
    assert_eq!(Some(bytes), created);
}

async fn keys_belong_to_their_app(app: TestApp) {
    let (_, other_key) = app.create_other_app("other");
    let body = person("a@example.com");
    let (status, _, ours) = send_keyed(app.post("/identities", &body), "shared").await;
    assert_eq!(status, 200);
    let (status, replayed, theirs) = send_keyed(
        app.client
            .post(app.url("/identities"))
            .header("apiKey", &other_key)
            .json(&body),
        "shared",
    )
    .await;
    assert_eq!(
        (status, replayed),
        (200, None),
        "the other app's request runs"
    );
    assert_ne!(ours, theirs);
}

async fn malformed_keys_are_refused(app: TestApp) {
    let long = "k".repeat(256);
    for key in ["", "   ", long.as_str(), "\"unclosed"] {
        let (status, _, body) =
            send_keyed(app.post("/identities", &person("a@example.com")), key).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_error(status, &body, 400, "validation_failed");
        assert_eq!(detail_fields(&body), ["Idempotency-Key"], "{key:?}");
    }
    let response = app
        .post("/identities", &person("a@example.com"))
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(total(&app, "/identities").await, 0, "nothing was written");
}

/// The server is killed right after the write committed, before the
/// client read any answer: the retry, on a new process, replays the
/// stored answer and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_crash_between_commit_and_answer_replays() {
    use tokio::io::AsyncWriteExt;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if backend == Backend::Postgres && crate::helpers::postgres_admin_url().is_none() {
            continue;
        }
        let db = TestDatabase::create(backend);
        let files = tempfile::tempdir().unwrap();
        let storage = format!("local:{}", files.path().display());
        let env = [
            ("DATABASE_URL", db.url.as_str()),
            ("KYC_BOOTSTRAP_API_KEY", crate::helpers::BOOTSTRAP_KEY),
            ("KYC_STORAGE", storage.as_str()),
        ];
        let first = crate::helpers::ServerProcess::start(&env).await;
        let body = person("crash@example.com").to_string();
        let request = format!(
            "POST /identities HTTP/1.1\r\nHost: x\r\napiKey: {}\r\nIdempotency-Key: crash-1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            crate::helpers::BOOTSTRAP_KEY,
            body.len()
        );
        // The client sends and never reads: whatever the server wrote back
        // is lost with it.
        let host = first.address.trim_start_matches("http://").to_string();
        let mut socket = tokio::net::TcpStream::connect(&host).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        let client = reqwest::Client::new();
        let listed = |address: String| {
            let client = client.clone();
            async move {
                let body: Value = client
                    .get(format!("{address}/identities"))
                    .header("apiKey", crate::helpers::BOOTSTRAP_KEY)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body
            }
        };
        let started = std::time::Instant::now();
        let created = loop {
            let body = listed(first.address.clone()).await;
            if body["total"] == 1 {
                break body["data"][0].clone();
            }
            assert!(
                started.elapsed().as_secs() < 15,
                "{backend:?}: never committed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        first.kill();
        drop(socket);

        let second = crate::helpers::ServerProcess::start(&env).await;
        let response = client
            .post(second.url("/identities"))
            .header("apiKey", crate::helpers::BOOTSTRAP_KEY)
            .header("Idempotency-Key", "crash-1")
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{backend:?}");
        assert_eq!(response.headers()["idempotent-replayed"], "true");
        let replayed: Value = response.json().await.unwrap();
        assert_eq!(replayed["data"], created, "{backend:?}: the first answer");
        assert_eq!(
            listed(second.address.clone()).await["total"],
            1,
            "{backend:?}"
        );
        second.kill();
    }
}
