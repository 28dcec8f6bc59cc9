//! Events: written in the transaction of every change, listed by
//! `GET /events` oldest first, and never missed by a reader that pages
//! with `page[after]` while writers race.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, query_count, Backend, TestApp};
use crate::identities::{create, get_ok, person, reference_person};

backend_tests!(
    every_change_writes_its_events,
    a_refused_change_writes_no_event,
    filters_and_tenants,
    a_paging_reader_never_misses_an_event_of_racing_writers
);

/// The `data` of a GET that must succeed.
async fn get_data(app: &TestApp, path: &str) -> Value {
    let (status, body) = json(app.get(path).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn events(app: &TestApp, query: &str) -> Value {
    let (status, body) = json(app.get(&format!("/events{query}")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn types(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// Every event after `after` (an event id), page by page.
async fn all_after(app: &TestApp, mut after: Option<String>, size: u32) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let query = match &after {
            Some(id) => format!("?page[size]={size}&page[after]={id}"),
            None => format!("?page[size]={size}"),
        };
        let page = events(app, &query).await;
        let data = page["data"].as_array().unwrap().clone();
        if let Some(last) = data.last() {
            after = Some(last["id"].as_str().unwrap().to_string());
        }
        out.extend(data);
        if page["hasMore"] == false {
            return out;
        }
    }
}

async fn every_change_writes_its_events(app: TestApp) {
    let identity = create(&app, &reference_person()).await;
    let id = identity["id"].as_str().unwrap();
    let page = events(&app, "").await;
    assert_eq!(
        types(&page),
        [
            "identity.created",
            "document.created",
            "document.created",
            "verification.created"
        ]
    );
    assert_eq!(page["hasMore"], false);
    let first = &page["data"][0];
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["data", "id", "timestamp", "type"]
    );
    assert_eq!(
        uuid::Uuid::parse_str(first["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        7,
        "event ids are UUIDv7"
    );
    assert_eq!(first["timestamp"].as_str().unwrap().len(), 24, "{first}");
    // The object as GET answers it then.
    assert_eq!(first["data"]["object"], identity);
    assert_eq!(get_ok(&app, id).await, identity);
    assert_eq!(page["data"][1]["data"]["object"], identity["documents"][0]);
    let verification_id = identity["kycStatus"][0]["verificationId"].as_str().unwrap();
    assert_eq!(
        page["data"][3]["data"]["object"],
        get_data(&app, &format!("/verifications/{verification_id}")).await
    );
    let last = page["data"][3]["id"].as_str().unwrap().to_string();

    let (status, patched) = json(
        app.patch(&format!("/identities/{id}"), &json!({"name": "Ana Lima"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let patched = patched["data"].clone();
    assert_eq!(patched, get_ok(&app, id).await);
    let (status, _) = json(
        app.post(
            "/sandbox/identities/approve",
            &json!({"identityId": id, "email": "foobar@publicmint.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    for path in ["block", "unblock"] {
        let (status, body) = json(
            app.post(
                &format!("/identities/{id}/{path}"),
                &json!({"reason": "checking"}),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = json(
        app.delete(&format!("/identities/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204);

    let later = all_after(&app, Some(last), 2).await;
    let later_types: Vec<&str> = later.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        later_types,
        [
            "identity.updated",
            "verification.status_changed",
            "identity.updated",
            "identity.operations_changed",
            "identity.blocked",
            "identity.operations_changed",
            "identity.unblocked",
            "identity.operations_changed",
            "identity.deleted",
        ],
        "{later:#?}"
    );
    assert_eq!(later[0]["data"]["changedFields"], json!(["name"]));
    assert_eq!(later[0]["data"]["object"], patched);
    let decided = &later[1]["data"];
    assert_eq!(
        (&decided["from"], &decided["to"]),
        (&json!("pending"), &json!("approved"))
    );
    assert_eq!(decided["object"]["status"], "approved");
    assert!(decided.get("reason").is_some() && decided.get("riskRating").is_some());
    // Approval opens the wire operations; blocking closes everything.
    let active = |event: &Value| -> Vec<String> {
        event["data"]["operations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|op| op["active"] == true)
            .map(|op| op["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        active(&later[3]).contains(&"deposit:wire".to_string()),
        "{}",
        later[3]
    );
    assert!(active(&later[5]).is_empty(), "{}", later[5]);
    assert_eq!(active(&later[7]), active(&later[3]));
    assert_eq!(later[4]["data"]["object"]["blocked"], true);
    assert_eq!(later[8]["data"]["object"]["id"], id);
    // Ids are unique, and every page kept the order.
    let ids: HashSet<&str> = later.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), later.len());
}

/// A change that fails after it began writing rolls back its events too.
async fn a_refused_change_writes_no_event(app: TestApp) {
    create(&app, &person("taken@example.com")).await;
    let before = query_count(&app.db, "SELECT COUNT(*) AS count FROM events");
    // The unique email index refuses the insert inside the transaction.
    let (status, body) = json(
        app.post("/identities", &person("TAKEN@example.com"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "email_already_in_use");
    assert_eq!(
        query_count(&app.db, "SELECT COUNT(*) AS count FROM events"),
        before
    );
}

async fn filters_and_tenants(app: TestApp) {
    let a = create(&app, &reference_person()).await;
    let b = create(&app, &person("b@example.com")).await;
    let only_a = events(
        &app,
        &format!("?filter[identityId]={}", a["id"].as_str().unwrap()),
    )
    .await;
    assert!(only_a["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["data"]["object"]["id"] == a["id"]
            || e["data"]["object"]["identityId"] == a["id"]));
    assert_eq!(only_a["data"].as_array().unwrap().len(), 4);
    let created = events(
        &app,
        "?filter[type]=in:identity.created,verification.created",
    )
    .await;
    assert_eq!(
        types(&created),
        [
            "identity.created",
            "verification.created",
            "identity.created"
        ]
    );
    assert_eq!(created["data"][2]["data"]["object"]["id"], b["id"]);
    let one = events(&app, "?filter[type]=identity.created&page[size]=1").await;
    assert_eq!(one["hasMore"], true);

    let (status, body) = json(
        app.get("/events?filter[type]=identity.made&page[size]=0&sort=id")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert_eq!(detail_fields(&body), ["filter[type]", "page[size]", "sort"]);

    // Another app sees none of these, and cannot page from our events.
    let (_, other_key) = app.create_other_app("other");
    let (status, body) = json(
        app.client
            .get(app.url("/events"))
            .header("apiKey", &other_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([]));
    let ours = created["data"][0]["id"].as_str().unwrap();
    let (status, body) = json(
        app.client
            .get(app.url(&format!("/events?page[after]={ours}")))
            .header("apiKey", &other_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "event_not_found");
}

/// Writers on several connections commit in any order; a reader paging
/// with `page[after]` the whole time still gets every event exactly once.
/// On PostgreSQL a transaction held open across the run writes an event
/// first and commits last: the reader must not pass it; and one held open
/// in another database of the cluster must not hold the reader back.
async fn a_paging_reader_never_misses_an_event_of_racing_writers(app: TestApp) {
    use diesel::Connection;
    let app = std::sync::Arc::new(app);
    let late = if app.db.backend == Backend::Postgres {
        let mut conn = diesel::PgConnection::establish(&app.db.url).unwrap();
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            &format!(
                "BEGIN; INSERT INTO events (id, app_id, event_type, identity_id, payload, created_at) \
                 VALUES ('{id}', '{app}', 'identity.created', NULL, \
                 '{{\"id\": \"{id}\", \"type\": \"identity.created\"}}', now());",
                id = uuid::Uuid::now_v7(),
                app = app.app_id
            ),
        )
        .unwrap();
        Some(conn)
    } else {
        None
    };
    // A transaction of another database of the cluster, open the whole
    // time: it cannot write these events, so it must not hold them back.
    let foreign = if app.db.backend == Backend::Postgres {
        let admin = crate::helpers::postgres_admin_url().unwrap();
        let mut conn = diesel::PgConnection::establish(&admin).unwrap();
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            "BEGIN; SELECT pg_current_xact_id();",
        )
        .unwrap();
        Some(conn)
    } else {
        None
    };

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..12 {
                    create(&app, &person(&format!("w{w}-{i}@example.com"))).await;
                }
            })
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    fn read(page: Vec<Value>, after: &mut Option<String>, seen: &mut Vec<String>) {
        if let Some(last) = page.last() {
            *after = Some(last["id"].as_str().unwrap().to_string());
        }
        seen.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_string()));
    }
    while writers.iter().any(|w| !w.is_finished()) {
        let page = all_after(&app, after.clone(), 5).await;
        read(page, &mut after, &mut seen);
    }
    for w in writers {
        w.await.unwrap();
    }
    if let Some(mut conn) = late {
        let before = seen.len();
        read(
            all_after(&app, after.clone(), 5).await,
            &mut after,
            &mut seen,
        );
        assert_eq!(
            seen.len(),
            before,
            "nothing shows past a running transaction"
        );
        diesel::connection::SimpleConnection::batch_execute(&mut conn, "COMMIT").unwrap();
    }
    // Everything has committed now, but a read may still stop short for a
    // moment: a transaction that finished after the read's snapshot holds
    // events back until the next read (it may have written some). A reader
    // keeps paging; so does this one, for a few seconds at most.
    let total = query_count(&app.db, "SELECT COUNT(*) AS count FROM events");
    let started = std::time::Instant::now();
    loop {
        read(
            all_after(&app, after.clone(), 5).await,
            &mut after,
            &mut seen,
        );
        if seen.len() as i64 >= total || started.elapsed().as_secs() >= 10 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    drop(foreign);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice");
    assert_eq!(seen.len() as i64, total, "every event once");
}
