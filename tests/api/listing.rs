//! `GET /identities`: the reference's query language.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, TestApp};
use crate::identities::{company, create, person};

backend_tests!(
    filters_select_and_total_counts_all_matches,
    like_is_a_literal_case_insensitive_substring,
    sorting_and_pagination_are_stable,
    brackets_may_be_percent_encoded,
    malformed_queries_are_named,
    all_true_streams_every_match,
);

async fn list(app: &TestApp, query: &str) -> Value {
    let (status, body) = json(
        app.get(&format!("/identities?{query}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn emails(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap().to_string())
        .collect()
}

async fn filters_select_and_total_counts_all_matches(app: TestApp) {
    let ana = create(&app, &person("ana@alpha.com")).await;
    let mut b = person("bruno@beta.com");
    b["name"] = json!("Bruno Lima");
    let bruno = create(&app, &b).await;
    let co = create(&app, &company("co@alpha.com", ana["id"].as_str().unwrap())).await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    app.db.execute(&format!(
        "UPDATE identities SET risk_rating = 'high', blocked = TRUE WHERE id = '{}'",
        id(&bruno)
    ));
    app.db.execute(&format!(
        "UPDATE identities SET risk_rating = 'low' WHERE id = '{}'",
        id(&ana)
    ));

    let cases: Vec<(String, Vec<&str>)> = vec![
        ("filter[type]=company".into(), vec!["co@alpha.com"]),
        (
            "filter[type]=person".into(),
            vec!["bruno@beta.com", "ana@alpha.com"],
        ),
        ("filter[blocked]=true".into(), vec!["bruno@beta.com"]),
        (
            "filter[blocked]=false".into(),
            vec!["co@alpha.com", "ana@alpha.com"],
        ),
        ("filter[email]=ANA@alpha.com".into(), vec!["ana@alpha.com"]),
        (
            "filter[email]=like:ALPHA".into(),
            vec!["co@alpha.com", "ana@alpha.com"],
        ),
        (format!("filter[id]={}", id(&bruno)), vec!["bruno@beta.com"]),
        (
            format!("filter[id]=in:{},{}", id(&bruno), id(&co)),
            vec!["co@alpha.com", "bruno@beta.com"],
        ),
        (
            format!("filter[identityOwner]={}", id(&ana)),
            vec!["co@alpha.com"],
        ),
        (
            format!("filter[identityOwner]=in:{},{}", id(&bruno), id(&ana)),
            vec!["co@alpha.com"],
        ),
        ("filter[name]=Bruno Lima".into(), vec!["bruno@beta.com"]),
        ("filter[name]=bruno lima".into(), vec![]),
        ("filter[name]=like:LIMA".into(), vec!["bruno@beta.com"]),
        ("filter[riskRating]=high".into(), vec!["bruno@beta.com"]),
        (
            "filter[riskRating]=in:low,high".into(),
            vec!["bruno@beta.com", "ana@alpha.com"],
        ),
        // Unrated identities are not rated "high".
        (
            "filter[riskRating]=nin:high".into(),
            vec!["co@alpha.com", "ana@alpha.com"],
        ),
        (
            format!("filter[appId]={}", app.app_id),
            vec!["co@alpha.com", "bruno@beta.com", "ana@alpha.com"],
        ),
        (
            "filter[type]=person&filter[email]=like:alpha".into(),
            vec!["ana@alpha.com"],
        ),
    ];
    for (query, expected) in cases {
        let body = list(&app, &query).await;
        assert_eq!(emails(&body), expected, "{query}");
        assert_eq!(body["total"], expected.len(), "{query}");
    }
    // total counts every match, not the page.
    let body = list(&app, "page[size]=1").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["total"], 3);
}

async fn like_is_a_literal_case_insensitive_substring(app: TestApp) {
    for email in ["a_b@x.com", "axb@x.com", "c%d@x.com", "cxd@x.com"] {
        create(&app, &person(email)).await;
    }
    let mut slash = person("slash@y.com");
    slash["name"] = json!("Back\\Slash");
    create(&app, &slash).await;
    assert_eq!(
        emails(&list(&app, "filter[email]=like:a_b").await),
        ["a_b@x.com"]
    );
    assert_eq!(
        emails(&list(&app, "filter[email]=like:c%25d").await),
        ["c%d@x.com"]
    );
    assert_eq!(
        emails(&list(&app, "filter[name]=like:K%5CS").await),
        ["slash@y.com"]
    );
    assert_eq!(
        emails(&list(&app, "filter[name]=like:K%5C").await),
        ["slash@y.com"]
    );
    assert_eq!(
        emails(&list(&app, "filter[email]=like:X.COM").await).len(),
        4
    );
    assert!(emails(&list(&app, "filter[email]=like:%25").await) == ["c%d@x.com"]);
}

async fn sorting_and_pagination_are_stable(app: TestApp) {
    for i in 0..7 {
        create(&app, &person(&format!("p{i}@example.com"))).await;
    }
    // Same created_at for some rows: ties are broken by id, so pages never
    // repeat or skip a row.
    app.db.execute("UPDATE identities SET created_at = '2024-01-01 00:00:00' WHERE email IN ('p1@example.com','p2@example.com','p3@example.com')");
    let newest_first = emails(&list(&app, "page[size]=100").await);
    assert_eq!(newest_first.len(), 7);
    let oldest_first = emails(&list(&app, "sort=createdAt&page[size]=100").await);
    let mut reversed = newest_first.clone();
    reversed.reverse();
    assert_eq!(oldest_first, reversed);

    let mut paged = Vec::new();
    for page in 1..=4 {
        let body = list(&app, &format!("page[size]=2&page[number]={page}")).await;
        assert_eq!(body["total"], 7);
        paged.extend(emails(&body));
    }
    assert_eq!(paged, newest_first);
    let beyond = list(&app, "page[size]=2&page[number]=50").await;
    assert_eq!(beyond["data"], json!([]));
    assert_eq!(beyond["total"], 7);

    // A substring filter takes another path (page and total from one walk
    // over the matches): same order, same ties, same totals, both ways.
    for sort in ["-createdAt", "createdAt", "-updatedAt"] {
        let everything = emails(&list(&app, &format!("sort={sort}&page[size]=100")).await);
        let mut paged = Vec::new();
        for page in 1..=4 {
            let body = list(
                &app,
                &format!(
                    "filter[email]=like:EXAMPLE.com&sort={sort}&page[size]=2&page[number]={page}"
                ),
            )
            .await;
            assert_eq!(body["total"], 7, "{sort} page {page}");
            let rows = body["data"].as_array().unwrap();
            assert_eq!(
                rows.len(),
                if page < 4 { 2 } else { 1 },
                "{sort} page {page}"
            );
            // Whole identities, not just ids.
            assert!(rows
                .iter()
                .all(|r| r["documents"].is_array() && r["name"].is_string()));
            paged.extend(emails(&body));
        }
        assert_eq!(paged, everything, "{sort}");
    }
    let beyond = list(
        &app,
        "filter[email]=like:example&page[size]=2&page[number]=50",
    )
    .await;
    assert_eq!(beyond["data"], json!([]));
    assert_eq!(beyond["total"], 7);
    let none = list(&app, "filter[email]=like:nobody-has-this").await;
    assert_eq!(none["data"], json!([]));
    assert_eq!(none["total"], 0);
    assert_eq!(
        list(&app, "").await["data"].as_array().unwrap().len(),
        7,
        "default page size is 30"
    );

    // updatedAt follows edits.
    let first = list(&app, "sort=createdAt&page[size]=1").await["data"][0].clone();
    app.patch(
        &format!("/identities/{}", first["id"].as_str().unwrap()),
        &json!({"name": "Edited"}),
    )
    .send()
    .await
    .unwrap();
    let latest = list(&app, "sort=-updatedAt&page[size]=1").await;
    assert_eq!(latest["data"][0]["id"], first["id"]);
    let earliest = list(&app, "sort=updatedAt&page[size]=7").await;
    assert_eq!(earliest["data"][6]["id"], first["id"]);
}

async fn brackets_may_be_percent_encoded(app: TestApp) {
    create(&app, &person("enc@example.com")).await;
    create(&app, &person("other@example.com")).await;
    let raw = list(&app, "filter[email]=like:enc&page[size]=5").await;
    let encoded = list(&app, "filter%5Bemail%5D=like%3Aenc&page%5Bsize%5D=5").await;
    assert_eq!(raw, encoded);
    assert_eq!(emails(&raw), ["enc@example.com"]);
}

async fn malformed_queries_are_named(app: TestApp) {
    for (query, field) in [
        ("page[size]=0", "page[size]"),
        ("page[size]=101", "page[size]"),
        ("page[number]=0", "page[number]"),
        ("page[number]=abc", "page[number]"),
        ("sort=name", "sort"),
        ("filter[colour]=red", "filter[colour]"),
        ("filter[type]=robot", "filter[type]"),
        ("filter[blocked]=yes", "filter[blocked]"),
        ("filter[id]=in:not-a-uuid", "filter[id]"),
        ("filter[type]=like:per", "filter[type]"),
        ("filter[riskRating]=nin:", "filter[riskRating]"),
        ("all=maybe", "all"),
        ("limit=10", "limit"),
        // PostgreSQL refuses NUL in text; it must be a 400, never a 500.
        ("filter[email]=like:a%00b", "filter[email]"),
        ("filter[name]=x%0Ay", "filter[name]"),
    ] {
        let (status, body) = json(
            app.get(&format!("/identities?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &body, 400, "validation_failed");
        assert!(
            detail_fields(&body).contains(&field.to_string()),
            "{query}: {body}"
        );
    }
    // Every problem at once.
    let (_, body) = json(
        app.get("/identities?page[size]=0&sort=x&foo=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["details"].as_array().unwrap().len(), 3, "{body}");
}

async fn all_true_streams_every_match(app: TestApp) {
    // More rows than one streamed chunk (500), inserted directly for speed.
    let n = 1203;
    let mut values = Vec::new();
    for i in 0..n {
        values.push(format!(
            "('{id}', '{app}', 'person', 'Bulk {i}', 'bulk{i}@example.com', '1990-01-01', 'Male', 'S', 'C', NULL, 'P', 'PT', \
             '910000000', FALSE, 'PT', '{i}', NULL, NULL, NULL, FALSE, FALSE, NULL, '2025-01-01 00:00:{s:02}.{i:06}', '2025-01-01 00:00:00', NULL)",
            id = uuid::Uuid::new_v4(),
            app = app.app_id,
            s = i % 60,
        ));
    }
    app.db.execute(&format!(
        "INSERT INTO identities VALUES {}",
        values.join(",")
    ));
    create(&app, &person("someone-else@example.com")).await;

    let body = list(&app, "all=true&filter[email]=like:bulk").await;
    let data = body["data"].as_array().unwrap();
    assert_eq!(body["total"], n);
    assert_eq!(data.len(), n);
    let mut ids: Vec<&str> = data.iter().map(|i| i["id"].as_str().unwrap()).collect();
    // Same order as paging would give.
    let first_page = list(&app, "filter[email]=like:bulk&page[size]=100").await;
    let paged: Vec<&str> = first_page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(&ids[..100], &paged[..]);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no duplicates across chunks");

    let sorted = list(&app, "all=true&sort=createdAt").await;
    assert_eq!(sorted["total"], n + 1);
    assert_eq!(sorted["data"].as_array().unwrap().len(), n + 1);
    assert_eq!(sorted["data"][n]["email"], "someone-else@example.com");
}
