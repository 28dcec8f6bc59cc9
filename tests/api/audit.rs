//! The audit trail: a record per write, in the write's transaction, on a
//! per-app hash chain that `kyc-api audit verify` checks.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{json, query_count, query_text, run_cli, TestApp};
use crate::identities::{create, person};

backend_tests!(
    every_write_is_recorded_once_with_its_actor,
    a_changed_row_breaks_the_chain,
    a_removed_row_breaks_the_chain,
    reordered_rows_break_the_chain,
);

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
    let created = create(&app, &person("audited@example.com")).await;
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
    let (ok, out) = verify(app);
    assert!(ok, "{out}");
}

fn row_id(app: &TestApp, seq: i64) -> String {
    query_text(
        &app.db,
        &format!(
            "SELECT id AS value FROM audit_log WHERE chain = '{}' AND seq = {seq}",
            app.app_id
        ),
    )
}

async fn a_changed_row_breaks_the_chain(app: TestApp) {
    five_writes(&app).await;
    app.db.execute(&format!(
        "UPDATE audit_log SET fields = '[\"email\"]' WHERE chain = '{}' AND seq = 3",
        app.app_id
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
    let last = rows(&app);
    // The last row removed: only the head knows it was there.
    app.db.execute(&format!(
        "DELETE FROM audit_log WHERE chain = '{}' AND seq = {last}",
        app.app_id
    ));
    let (ok, out) = verify(&app);
    assert!(!ok, "{out}");
    assert!(out.contains("the head names more rows"), "{out}");
    // A row in the middle removed: the next one no longer follows.
    let third = row_id(&app, 3);
    app.db.execute(&format!(
        "DELETE FROM audit_log WHERE chain = '{}' AND seq = 2",
        app.app_id
    ));
    let (ok, out) = verify(&app);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("BROKEN at seq 3 (row {third})")),
        "{out}"
    );
}

async fn reordered_rows_break_the_chain(app: TestApp) {
    five_writes(&app).await;
    let chain = &app.app_id;
    app.db.execute(&format!(
        "UPDATE audit_log SET seq = -1 WHERE chain = '{chain}' AND seq = 2; \
         UPDATE audit_log SET seq = 2 WHERE chain = '{chain}' AND seq = 3; \
         UPDATE audit_log SET seq = 3 WHERE chain = '{chain}' AND seq = -1;"
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
    let (ok, out) = verify(&app);
    assert!(ok, "{out}");
}
