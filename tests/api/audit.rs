//! The audit trail: a record per write and per sensitive read, written in
//! the write's transaction, linked into a per-app hash chain right after
//! its commit, which `kyc-api audit verify` checks and `GET /audit-log`
//! lists.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backend_tests;
use crate::documents::{post_form, presign, with_documents, JPEG};
use crate::helpers::{assert_error, json, query_count, query_text, run_cli, TestApp};
use crate::identities::{create, person};

backend_tests!(
    every_write_is_recorded_once_with_its_actor,
    a_changed_row_breaks_the_chain,
    a_removed_row_breaks_the_chain,
    reordered_rows_break_the_chain,
    sensitive_reads_are_recorded_allowed_or_denied,
    the_list_pages_and_filters,
    a_record_a_dead_process_left_unlinked_is_linked_by_the_next_linker,
    the_command_line_is_recorded_with_its_user_and_links_its_own,
);

/// Waits until the linker has linked every record written so far (it runs
/// right after each write commits); fails after 10 s.
pub async fn all_linked(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = query_count(&app.db, "SELECT COUNT(*) AS count FROM audit_pending");
        if waiting == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} audit records still unlinked after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The app's records, as `GET /audit-log` lists them once linked.
async fn listed(app: &TestApp, query: &str) -> Value {
    all_linked(app).await;
    let (status, body) = json(app.get(&format!("/audit-log{query}")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn key_id(app: &TestApp) -> String {
    query_text(
        &app.db,
        &format!(
            "SELECT id AS value FROM api_keys WHERE app_id = '{}' AND revoked_at IS NULL",
            app.app_id
        ),
    )
}

fn rows(app: &TestApp) -> i64 {
    query_count(
        &app.db,
        &format!(
            "SELECT COUNT(*) AS count FROM audit_log WHERE chain = '{}'",
            app.app_id
        ),
    )
}

fn verify(app: &TestApp) -> (bool, String) {
    let out = run_cli(&app.db.url, &["audit", "verify", "--app", &app.app_id]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn every_write_is_recorded_once_with_its_actor(app: TestApp) {
    let before = rows(&app);
    let (status, created) = json(
        app.post("/identities", &person("audited@example.com"))
            .header("x-request-id", "audit-create-1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let created = created["data"].clone();
    let id = created["id"].as_str().unwrap();
    assert_eq!(rows(&app), before + 1);
    let recorded = query_count(
        &app.db,
        &format!(
            "SELECT COUNT(*) AS count FROM audit_log a JOIN api_keys k ON k.id = a.api_key_id \
             WHERE a.chain = '{app_id}' AND k.app_id = '{app_id}' AND a.actor = 'api' \
             AND a.action = 'identity.create' AND a.targets LIKE '%{id}%' AND a.outcome = 'committed'",
            app_id = app.app_id
        ),
    );
    assert_eq!(recorded, 1);
    let listed = listed(&app, "?filter[action]=identity.create").await;
    let record = &listed["data"][0];
    assert_eq!(record["actor"], "api");
    assert_eq!(record["apiKeyId"], json!(key_id(&app)));
    assert_eq!(record["requestId"], "audit-create-1");
    assert_eq!(record["clientAddress"], "127.0.0.1");
    assert_eq!(record["status"], 200);
    assert_eq!(record["outcome"], "committed");
    assert_eq!(record["targets"][0], json!({"type": "identity", "id": id}));
    assert_eq!(record["hash"].as_str().unwrap().len(), 64);

    let response = app
        .patch(&format!("/identities/{id}"), &json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        query_count(
            &app.db,
            &format!(
                "SELECT COUNT(*) AS count FROM audit_log WHERE chain = '{}' \
                 AND action = 'identity.patch' AND fields = '[\"name\"]'",
                app.app_id
            )
        ),
        1
    );
    // A refused write (the email is taken) records nothing.
    let count = rows(&app);
    let response = app
        .post("/identities", &person("audited@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(rows(&app), count);

    all_linked(&app).await;
    let (status, head) = json(app.get("/audit-log/head").send().await.unwrap()).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(head["data"]["count"], json!(count));
    assert_eq!(head["data"]["hash"].as_str().unwrap().len(), 64);
    let (ok, out) = verify(&app);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{}: {count} rows verified", app.app_id)),
        "{out}"
    );
}

/// An app with five identities created: five chained rows.
async fn five_writes(app: &TestApp) {
    for i in 0..5 {
        create(app, &person(&format!("chain{i}@example.com"))).await;
    }
    all_linked(app).await;
    let (ok, out) = verify(app);
    assert!(ok, "{out}");
}

fn row_id(app: &TestApp, seq: i64) -> String {
    query_text(
        &app.db,
        &format!(
            "SELECT record_id AS value FROM audit_links WHERE chain = '{}' AND seq = {seq}",
            app.app_id
        ),
    )
}

async fn a_changed_row_breaks_the_chain(app: TestApp) {
    five_writes(&app).await;
    app.db.execute(&format!(
        "UPDATE audit_log SET fields = '[\"email\"]' WHERE id = '{}'",
        row_id(&app, 3)
    ));
    let (ok, out) = verify(&app);
    assert!(!ok, "{out}");
    assert!(
        out.contains("2 rows verified, then BROKEN at seq 3"),
        "{out}"
    );
    assert!(out.contains(&format!("(row {})", row_id(&app, 3))), "{out}");
}

async fn a_removed_row_breaks_the_chain(app: TestApp) {
    five_writes(&app).await;
    let chain = app.app_id.clone();
    let remove = |seq: i64| {
        let id = row_id(&app, seq);
        app.db.execute(&format!(
            "DELETE FROM audit_links WHERE chain = '{chain}' AND seq = {seq}; \
             DELETE FROM audit_log WHERE id = '{id}';"
        ));
    };
    // The last record removed with its link: only the head knows it was
    // there.
    let last = query_count(
        &app.db,
        &format!("SELECT MAX(seq) AS count FROM audit_links WHERE chain = '{chain}'"),
    );
    remove(last);
    let (ok, out) = verify(&app);
    assert!(!ok, "{out}");
    assert!(out.contains("the head names more rows"), "{out}");
    // One in the middle removed with its link: the next no longer follows.
    let third = row_id(&app, 3);
    remove(2);
    let (ok, out) = verify(&app);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("BROKEN at seq 3 (row {third})")),
        "{out}"
    );
    // A record removed, its link left: the link names it.
    let first = row_id(&app, 1);
    app.db
        .execute(&format!("DELETE FROM audit_log WHERE id = '{first}'"));
    let (ok, out) = verify(&app);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "BROKEN at seq 1 (row {first}): expected the record this link names, found no record"
        )),
        "{out}"
    );
}

async fn reordered_rows_break_the_chain(app: TestApp) {
    five_writes(&app).await;
    let chain = &app.app_id;
    app.db.execute(&format!(
        "UPDATE audit_links SET seq = -1 WHERE chain = '{chain}' AND seq = 2; \
         UPDATE audit_links SET seq = 2 WHERE chain = '{chain}' AND seq = 3; \
         UPDATE audit_links SET seq = 3 WHERE chain = '{chain}' AND seq = -1;"
    ));
    let (ok, out) = verify(&app);
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at seq 2"), "{out}");
}

/// 32 writers at once on PostgreSQL: the chain stays linear and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_the_chain_linear() {
    let Some(app) = TestApp::spawn_postgres().await else {
        return;
    };
    let before = rows(&app);
    let writes = (0..32).map(|i| {
        let (client, url, key) = (
            app.client.clone(),
            app.url("/identities"),
            app.api_key.clone(),
        );
        async move {
            client
                .post(url)
                .header("apiKey", key)
                .json(&person(&format!("racer{i}@example.com")))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    for status in futures_util::future::join_all(writes).await {
        assert_eq!(status, 200);
    }
    assert_eq!(rows(&app), before + 32);
    all_linked(&app).await;
    let (ok, out) = verify(&app);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{}: {} rows verified", app.app_id, before + 32)),
        "{out}"
    );
}

/// The records of `action` on the app's chain, oldest first.
async fn of_action(app: &TestApp, action: &str) -> Vec<Value> {
    listed(app, &format!("?filter[action]={action}")).await["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn sensitive_reads_are_recorded_allowed_or_denied(app: TestApp) {
    let (_, form) = presign(&app, &app.api_key, "passport.jpg").await;
    let form = form["data"].clone();
    assert!(post_form(&app.client, &form, "image/jpeg", JPEG)
        .await
        .status()
        .is_success());
    let upload = app.url(&format!(
        "/files/{}",
        form["fields"]["key"].as_str().unwrap()
    ));
    let created = create(&app, &with_documents("reader@example.com", &upload)).await;
    let id = created["id"].as_str().unwrap();
    let document = created["documents"][0]["id"].as_str().unwrap();

    // A download URL issued, then one refused (no such document).
    let (status, body) = json(
        app.get(&format!(
            "/identities/{id}/documents/{document}/presign-url"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["data"]["presignUrl"].as_str().unwrap().to_owned();
    let missing = "018f3b5e-0000-7000-8000-000000000000";
    let (status, _) = json(
        app.get(&format!("/identities/{id}/documents/{missing}/presign-url"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let issued = of_action(&app, "document.download_url").await;
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert_eq!(
        (issued[0]["outcome"].clone(), issued[0]["status"].clone()),
        (json!("allowed"), json!(200))
    );
    assert_eq!(
        issued[0]["targets"],
        json!([{"type": "identity", "id": id}, {"type": "document", "id": document}])
    );
    assert_eq!(
        (issued[1]["outcome"].clone(), issued[1]["status"].clone()),
        (json!("denied"), json!(404))
    );

    // Reads through the API never say which object they served; only the
    // local backend serves bytes, and it records each time it does or
    // refuses.
    if !app.uses_s3() {
        let served = app.client.get(&url).send().await.unwrap();
        assert_eq!(served.status(), 200);
        let tampered = format!("{}x", url);
        assert_eq!(
            app.client.get(&tampered).send().await.unwrap().status(),
            403
        );
        let served = of_action(&app, "document.serve").await;
        assert_eq!(served.len(), 1, "{served:?}");
        assert_eq!(served[0]["actor"], "signed_url");
        assert_eq!(served[0]["outcome"], "allowed");
        assert_eq!(served[0]["targets"][0]["type"], "object");
        // The refused one names no app anyone vouched for: the server's chain.
        assert_eq!(
            query_count(
                &app.db,
                "SELECT COUNT(*) AS count FROM audit_log WHERE chain = 'server' \
                 AND action = 'document.serve' AND outcome = 'denied' AND status = 403",
            ),
            1
        );
    }

    // Reading with includeErased, live or erased, is recorded too.
    let response = app
        .get(&format!("/identities/{id}?includeErased=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .get(&format!("/identities/{missing}?includeErased=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // A plain read is not.
    let response = app.get(&format!("/identities/{id}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let past = of_action(&app, "identity.read_erased").await;
    assert_eq!(
        past.iter()
            .map(|r| (r["targets"][0]["id"].clone(), r["outcome"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!(id), json!("allowed")),
            (json!(missing), json!("denied"))
        ]
    );
    let (ok, out) = verify(&app);
    assert!(ok, "{out}");
}

async fn the_list_pages_and_filters(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..3 {
        let created = create(&app, &person(&format!("listed{i}@example.com"))).await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let response = app
        .patch(
            &format!("/identities/{}", ids[1]),
            &json!({"name": "Renamed"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Chain order, by cursor, nothing missed or repeated.
    let all = listed(&app, "").await["data"].as_array().unwrap().clone();
    assert!(all.len() >= 4, "{all:?}");
    let seqs: Vec<i64> = all.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(all.windows(2).all(|w| w[1]["prevHash"] == w[0]["hash"]));
    let mut paged = Vec::new();
    let mut query = "?page[size]=2".to_owned();
    loop {
        let page = listed(&app, &query).await;
        let data = page["data"].as_array().unwrap();
        paged.extend(data.iter().map(|r| r["id"].clone()));
        if page["hasMore"] != json!(true) {
            break;
        }
        query = format!(
            "?page[size]=2&page[after]={}",
            data.last().unwrap()["id"].as_str().unwrap()
        );
    }
    assert_eq!(
        paged,
        all.iter().map(|r| r["id"].clone()).collect::<Vec<_>>()
    );

    // Filters.
    let of_identity = listed(&app, &format!("?filter[identityId]={}", ids[1])).await;
    assert_eq!(
        of_identity["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].clone())
            .collect::<Vec<_>>(),
        vec![json!("identity.create"), json!("identity.patch")]
    );
    let patches = listed(&app, "?filter[action]=in:identity.patch,identity.delete").await;
    assert_eq!(patches["data"].as_array().unwrap().len(), 1);
    assert_eq!(patches["data"][0]["fields"], json!(["name"]));
    let by_key = listed(&app, &format!("?filter[apiKeyId]={}", key_id(&app))).await;
    assert_eq!(by_key["data"].as_array().unwrap().len(), 4);
    let first = all[0]["createdAt"].as_str().unwrap();
    let last = all.last().unwrap()["createdAt"].as_str().unwrap();
    let none_before = listed(&app, &format!("?filter[createdAt][lt]={first}")).await;
    assert_eq!(none_before["data"], json!([]));
    let through = listed(
        &app,
        &format!("?filter[createdAt][gte]={first}&filter[createdAt][lt]=2999-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(through["data"].as_array().unwrap().len(), all.len());
    let after_last = listed(&app, &format!("?filter[createdAt][gte]={last}")).await;
    assert!(!after_last["data"].as_array().unwrap().is_empty());

    // Bad queries are named; a cursor of another app's (or no) record is 404.
    for bad in [
        "?filter[action]=identity.made",
        "?filter[createdAt][after]=2026-01-01T00:00:00Z",
        "?filter[createdAt][gte]=2026-02-30T00:00:00Z",
        "?filter[identityId]=nope",
        "?page[size]=1001",
        "?sort=seq",
    ] {
        let (status, body) = json(app.get(&format!("/audit-log{bad}")).send().await.unwrap()).await;
        assert_error(status, &body, 400, "validation_failed");
    }
    let (status, body) = json(
        app.get("/audit-log?page[after]=018f3b5e-0000-7000-8000-000000000000")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "audit_record_not_found");
    let (_, other_key) = app.create_other_app("other");
    let (status, body) = json(
        app.client
            .get(app.url("/audit-log"))
            .header("apiKey", &other_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !ids.iter().any(|id| r["targets"].to_string().contains(id))));
}

/// A process that died between a write's commit and its link leaves the
/// record unlinked; the next linker (any write, any replica, or the
/// maintenance task) links it, and the chain verifies.
async fn a_record_a_dead_process_left_unlinked_is_linked_by_the_next_linker(app: TestApp) {
    create(&app, &person("before@example.com")).await;
    all_linked(&app).await;
    let before = rows(&app);
    app.db.execute(&format!(
        "INSERT INTO audit_log (id, chain, created_at, actor, action, targets, fields, outcome) \
         VALUES ('018f3b5e-0000-7000-8000-0000000000aa', '{chain}', CURRENT_TIMESTAMP, 'cli', \
         'identity.delete', '[]', '[]', 'committed'); \
         INSERT INTO audit_pending (record_id, chain) \
         VALUES ('018f3b5e-0000-7000-8000-0000000000aa', '{chain}');",
        chain = app.app_id
    ));
    let (ok, out) = verify(&app);
    assert!(ok, "{out}");
    assert!(out.contains("1 rows not linked yet"), "{out}");
    create(&app, &person("after@example.com")).await;
    all_linked(&app).await;
    let (ok, out) = verify(&app);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{}: {} rows verified", app.app_id, before + 2)),
        "{out}"
    );
}

async fn the_command_line_is_recorded_with_its_user_and_links_its_own(app: TestApp) {
    let out = run_cli(&app.db.url, &["keys", "create", &app.app_id]);
    assert!(out.status.success(), "{out:?}");
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["keyId"].as_str().unwrap();
    // Linked before the command returned: no server needs to run.
    assert_eq!(
        query_count(
            &app.db,
            &format!(
                "SELECT COUNT(*) AS count FROM audit_log a JOIN audit_links l ON l.record_id = a.id \
                 WHERE a.action = 'api_key.create' AND a.targets LIKE '%{key}%'"
            ),
        ),
        1
    );
    let records = listed(&app, "?filter[action]=api_key.create").await;
    let record = &records["data"][0];
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    assert_eq!(record["actor"], "cli");
    assert_eq!(record["osUser"], json!(user));
    assert_eq!(record["apiKeyId"], Value::Null);
    assert_eq!(record["requestId"], Value::Null);
    assert_eq!(record["status"], Value::Null);
    assert_eq!(record["targets"], json!([{"type": "api_key", "id": key}]));
}
