//! `kyc-api encryption rotate` with a server serving traffic: no request
//! fails, and afterwards everything reads under the new key alone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::helpers::{json, query_count, Backend, TestApp, TestDatabase};
use crate::identities::{create, person};

const OLD: &str = "old:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const NEW: &str = "new:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn rotate(db: &TestDatabase, keys: &str) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .args(["encryption", "rotate"])
        .env("DATABASE_URL", &db.url)
        .env("KYC_ENCRYPTION_KEYS", keys)
        .env("KYC_LOG", "warn")
        .env_remove("KYC_BOOTSTRAP_API_KEY")
        .output()
        .expect("run kyc-api");
    assert!(
        out.status.success(),
        "rotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_traffic_sqlite() {
    rotation_under_traffic(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_traffic_postgres() {
    if crate::helpers::postgres_admin_url().is_some() {
        rotation_under_traffic(Backend::Postgres).await;
    }
}

async fn rotation_under_traffic(backend: Backend) {
    // Written under the old key: identities, a stored Idempotency-Key
    // answer, a webhook endpoint's secret, and one identity as a version
    // before encryption at rest wrote it (no data key, values in the clear).
    let old = TestApp::spawn_with(
        TestDatabase::create(backend),
        &[("KYC_ENCRYPTION_KEYS", OLD)],
    )
    .await;
    let mut ids = Vec::new();
    // More than one batch (200) of data keys.
    for i in 0..250 {
        let mut body = person(&format!("p{i}@example.com"));
        body["tax"]["idNumber"] = json!(format!("TAX-{i}"));
        ids.push((
            create(&old, &body).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
            format!("TAX-{i}"),
        ));
    }
    let keyed = old
        .post("/identities", &person("keyed@example.com"))
        .header("Idempotency-Key", "rotation-keyed")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    let (status, endpoint) = json(
        old.post(
            "/webhook-endpoints",
            &json!({"url": "https://hooks.example.com/kyc", "enabled": false}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{endpoint}");
    let endpoint_id = endpoint["data"]["id"].as_str().unwrap().to_string();
    let legacy = ids[0].0.clone();
    old.db.execute(&format!(
        "UPDATE identities SET wrapped_key = NULL WHERE id = '{legacy}'; \
         DELETE FROM events WHERE identity_id = '{legacy}'; \
         UPDATE identities SET tax_id_number = 'LEGACY-TAX', phone_number = '+1 555 0100', \
         address_street = 'Legacy St 1', address_postal_code = 'L-1', birthday = '1970-01-01', \
         address_state = NULL, tax_state = NULL WHERE id = '{legacy}'"
    ));
    ids[0].1 = "LEGACY-TAX".into();

    // Servers hold the new key first, the old one after; traffic runs
    // while the rotation does.
    let serving = Arc::new(
        TestApp::spawn_with(
            old.db.alias(),
            &[("KYC_ENCRYPTION_KEYS", &format!("{NEW},{OLD}"))],
        )
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (app, stop, sent, failed) =
            (serving.clone(), stop.clone(), sent.clone(), failed.clone());
        let ids: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let response = match n % 3 {
                    0 => {
                        app.get(&format!("/identities/{}", ids[n % ids.len()]))
                            .send()
                            .await
                    }
                    1 => app.get("/identities?page[size]=50").send().await,
                    _ => {
                        app.post("/identities", &person(&format!("during{n}@example.com")))
                            .send()
                            .await
                    }
                };
                sent.fetch_add(1, Ordering::Relaxed);
                if !response.map(|r| r.status().is_success()).unwrap_or(false) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        })
    };
    let db = old.db.alias();
    let keys = format!("{NEW},{OLD}");
    let report = tokio::task::spawn_blocking(move || rotate(&db, &keys))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert!(sent.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the rotation"
    );
    eprintln!(
        "requests during the rotation: {}",
        sent.load(Ordering::Relaxed)
    );
    assert_eq!(report["sealingKey"], "new", "{report}");
    assert!(
        report["dataKeysRewrapped"].as_u64().unwrap() >= 250,
        "{report}"
    );
    assert_eq!(report["identitiesSealed"], 1, "{report}");
    assert!(report["valuesResealed"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    // Nothing is left under the old key; a second run has nothing to do.
    assert_eq!(
        query_count(
            &old.db,
            "SELECT COUNT(*) AS count FROM identities WHERE wrapped_key LIKE 'sealed:v1:old:%'"
        ),
        0
    );
    let again = rotate(&old.db, &format!("{NEW},{OLD}"));
    assert_eq!(
        (
            &again["dataKeysRewrapped"],
            &again["identitiesSealed"],
            &again["valuesResealed"]
        ),
        (&json!(0), &json!(0), &json!(0)),
        "{again}"
    );

    // The new key alone opens everything.
    let new = TestApp::spawn_with(old.db.alias(), &[("KYC_ENCRYPTION_KEYS", NEW)]).await;
    for (id, tax) in &ids {
        let (status, body) =
            json(new.get(&format!("/identities/{id}")).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["tax"]["idNumber"], json!(tax));
    }
    assert_eq!(
        query_count(&old.db, &format!("SELECT COUNT(*) AS count FROM identities WHERE id = '{legacy}' AND tax_id_number LIKE 'enc:v1:%'")),
        1
    );
    let replay = new
        .post("/identities", &person("keyed@example.com"))
        .header("Idempotency-Key", "rotation-keyed")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (status, body) = json(
        new.post(
            &format!("/webhook-endpoints/{endpoint_id}/rotate-secret"),
            &json!({}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = json(new.get("/events?page[size]=1000").send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
}
