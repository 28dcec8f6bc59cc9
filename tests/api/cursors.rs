//! `page[after]` / `page[before]`: cursor pages on `GET /identities` and
//! `GET /verifications`.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{assert_error, detail_fields, json, TestApp};
use crate::identities::{company, create, person};
use crate::listing::ids;

backend_tests!(
    links_walk_every_match_both_ways,
    cursors_hold_their_place_while_rows_come_and_go,
    verification_cursors_page_through_ties,
    altered_or_misplaced_cursors_are_refused,
    numbered_pages_without_their_total,
);

async fn get(app: &TestApp, path_and_query: &str) -> Value {
    let (status, body) = json(app.get(path_and_query).send().await.unwrap()).await;
    assert_eq!(status, 200, "{path_and_query}: {body}");
    body
}

/// Follows `links.<way>` from `start` to the end; the ids of every page in
/// the order they were read, and how many pages that took.
async fn follow(app: &TestApp, start: &Value, way: &str) -> (Vec<Vec<String>>, usize) {
    let mut pages = Vec::new();
    let mut body = start.clone();
    loop {
        let Some(link) = body["links"][way].as_str() else {
            return (pages.clone(), pages.len());
        };
        assert!(link.starts_with('/'), "{link}");
        body = get(app, link).await;
        assert!(
            body.get("total").is_none(),
            "cursor pages have no total: {body}"
        );
        pages.push(ids(&body));
        assert!(pages.len() < 50, "links never end");
    }
}

async fn links_walk_every_match_both_ways(app: TestApp) {
    let mut owner = String::new();
    for i in 0..8 {
        let created = create(&app, &person(&format!("p{i}@example.com"))).await;
        owner = created["id"].as_str().unwrap().to_string();
    }
    create(&app, &company("co@example.com", &owner)).await;
    // Equal sort keys: ties are broken by id, on cursor pages too.
    app.db.execute(
        "UPDATE identities SET created_at = '2024-01-01 00:00:00', updated_at = '2024-01-01 00:00:00' \
         WHERE email IN ('p1@example.com','p2@example.com','p3@example.com','p4@example.com')",
    );
    for (filters, matches) in [("", 9), ("&filter[type]=person", 8)] {
        for sort in ["-createdAt", "createdAt", "-updatedAt", "updatedAt"] {
            let query = format!("sort={sort}{filters}");
            let everything = get(&app, &format!("/identities?{query}&page[size]=100")).await;
            let everything = ids(&everything);
            assert_eq!(everything.len(), matches);

            // From a numbered first page, forwards to the end.
            let first = get(&app, &format!("/identities?{query}&page[size]=2")).await;
            assert_eq!(first["total"], matches);
            assert_eq!(first["links"]["prev"], Value::Null);
            let (pages, count) = follow(&app, &first, "next").await;
            assert_eq!(count, (matches - 1) / 2, "{query}");
            let mut walked = ids(&first);
            walked.extend(pages.iter().flatten().cloned());
            assert_eq!(walked, everything, "{query} forwards");

            // From the last page, backwards to the start: the same pages.
            let last_link = {
                let mut body = first.clone();
                while let Some(link) = body["links"]["next"].as_str() {
                    body = get(&app, link).await;
                }
                assert_eq!(body["links"]["next"], Value::Null);
                body
            };
            let (back, _) = follow(&app, &last_link, "prev").await;
            let mut walked: Vec<String> = ids(&last_link);
            for page in &back {
                let mut page = page.clone();
                page.extend(walked);
                walked = page;
            }
            assert_eq!(walked, everything, "{query} backwards");
            assert!(back.iter().all(|page| page.len() == 2), "{query}: {back:?}");
        }
    }

    // A numbered page in the middle links to its neighbours.
    let middle = get(&app, "/identities?page[size]=3&page[number]=2").await;
    let all = ids(&get(&app, "/identities?page[size]=100").await);
    let next = get(&app, middle["links"]["next"].as_str().unwrap()).await;
    let prev = get(&app, middle["links"]["prev"].as_str().unwrap()).await;
    assert_eq!(ids(&prev), all[0..3]);
    assert_eq!(ids(&next), all[6..9]);
    assert_eq!(prev["links"]["prev"], Value::Null);
    assert_eq!(next["links"]["next"], Value::Null);
    // Links keep the request's page size, sort and filters.
    let link = middle["links"]["next"].as_str().unwrap();
    assert!(link.starts_with("/identities?"), "{link}");
    assert!(
        link.contains("page%5Bsize%5D=3") && !link.contains("page%5Bnumber%5D"),
        "{link}"
    );
    // Past the end of a numbered list: no links.
    let beyond = get(&app, "/identities?page[size]=3&page[number]=9").await;
    assert_eq!(beyond["links"], json!({"next": null, "prev": null}));
    // Every match at once: nothing either way.
    let everything = get(&app, "/identities?all=true").await;
    assert_eq!(everything["total"], 9);
    assert_eq!(everything["links"], json!({"next": null, "prev": null}));
}

/// `page[total]=false`: a numbered page without `total`, the same rows and
/// links as the counted page, on both lists; a cursor page refuses `true`.
async fn numbered_pages_without_their_total(app: TestApp) {
    let mut last = Value::Null;
    for i in 0..7 {
        last = create(&app, &person(&format!("u{i}@example.com"))).await;
    }
    let everything = ids(&get(&app, "/identities?page[size]=100").await);
    for number in 1..=4 {
        let query = format!("page[size]=3&page[number]={number}");
        let counted = get(&app, &format!("/identities?{query}")).await;
        let uncounted = get(&app, &format!("/identities?{query}&page[total]=false")).await;
        assert_eq!(counted["total"], 7);
        assert!(uncounted.get("total").is_none(), "{query}: {uncounted}");
        assert_eq!(uncounted["data"], counted["data"], "{query}");
        let start = (3 * (number - 1)).min(7);
        assert_eq!(ids(&uncounted), everything[start..(start + 3).min(7)]);
        for way in ["next", "prev"] {
            assert_eq!(
                uncounted["links"][way].is_null(),
                counted["links"][way].is_null(),
                "{query}: {way}"
            );
        }
    }
    // The links are cursor links without `page[total]`, and lead on.
    let first = get(&app, "/identities?page[size]=3&page[total]=false").await;
    let next = first["links"]["next"].as_str().unwrap();
    assert!(!next.contains("total"), "{next}");
    assert_eq!(ids(&get(&app, next).await), everything[3..6]);
    // `false` beside a cursor says again what a cursor page does.
    let again = get(&app, &format!("{next}&page[total]=false")).await;
    assert_eq!(ids(&again), everything[3..6]);
    // With a filter, and with a substring (planned for a page, not a count).
    let substring = get(
        &app,
        "/identities?filter[email]=like:u6@exa&page[total]=false",
    )
    .await;
    assert_eq!(ids(&substring), [last["id"].as_str().unwrap()]);
    assert!(substring.get("total").is_none());
    // `all=true` ignores page parameters: it always counts.
    let all = get(&app, "/identities?all=true&page[total]=false").await;
    assert_eq!(all["total"], 7);

    // The verifications list too.
    let rows: Vec<String> = ["rejected", "approved", "pending"]
        .iter()
        .enumerate()
        .map(|(i, status)| {
            format!(
                "('{}', '{}', '{}', 'basic', '{status}', NULL, NULL, '2025-01-01 00:00:0{i}', '2025-01-01 00:00:00', NULL, NULL, NULL, NULL)",
                uuid::Uuid::new_v4(),
                app.app_id,
                last["id"].as_str().unwrap(),
            )
        })
        .collect();
    app.db.execute(&format!(
        "INSERT INTO verifications VALUES {}",
        rows.join(",")
    ));
    let counted = get(&app, "/verifications?page[size]=2").await;
    let uncounted = get(&app, "/verifications?page[size]=2&page[total]=false").await;
    let total = counted["total"].as_u64().unwrap();
    assert!(total >= 3, "{counted}");
    assert!(uncounted.get("total").is_none(), "{uncounted}");
    assert_eq!(uncounted["data"], counted["data"]);
    assert!(uncounted["links"]["next"].is_string());
    let last_number = total.div_ceil(2);
    let last_page = get(
        &app,
        &format!("/verifications?page[size]=2&page[number]={last_number}&page[total]=false"),
    )
    .await;
    assert_eq!(ids(&last_page).len() as u64, total - 2 * (last_number - 1));
    assert_eq!(last_page["links"]["next"], Value::Null);
    assert!(last_page["links"]["prev"].is_string());

    // A cursor page has no total to give; a value other than true or false
    // is refused.
    let cursor = next.split("page%5Bafter%5D=").nth(1).unwrap();
    for (query, words) in [
        (format!("page[after]={cursor}&page[total]=true"), "no total"),
        ("page[total]=yes".to_string(), "true or false"),
        ("page[total]=".to_string(), "true or false"),
    ] {
        let (status, body) = json(
            app.get(&format!("/identities?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &body, 400, "validation_failed");
        assert_eq!(detail_fields(&body), ["page[total]"], "{query}: {body}");
        assert!(body.to_string().contains(words), "{query}: {body}");
    }
}

async fn cursors_hold_their_place_while_rows_come_and_go(app: TestApp) {
    for i in 0..6 {
        create(&app, &person(&format!("q{i}@example.com"))).await;
    }
    let first = get(&app, "/identities?page[size]=2").await;
    let before: Vec<String> = ids(&get(&app, "/identities?page[size]=100").await);
    // New rows sort first (newest first); an offset would now repeat rows,
    // the cursor does not. The row the cursor names is deleted: the cursor
    // still knows its place.
    for i in 0..3 {
        create(&app, &person(&format!("late{i}@example.com"))).await;
    }
    let cursor_row = ids(&first)[1].clone();
    let deleted = app
        .delete(&format!("/identities/{cursor_row}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let second = get(&app, first["links"]["next"].as_str().unwrap()).await;
    assert_eq!(ids(&second), before[2..4]);
    let (rest, _) = follow(&app, &second, "next").await;
    let mut walked = ids(&second);
    walked.extend(rest.into_iter().flatten());
    assert_eq!(walked, before[2..]);
    // Backwards from the second page: the first page less the deleted row,
    // then the new rows.
    let back = get(&app, second["links"]["prev"].as_str().unwrap()).await;
    assert_eq!(ids(&back)[1..], before[0..1]);
    assert!(back["links"]["prev"].is_string());
}

async fn verification_cursors_page_through_ties(app: TestApp) {
    let created = create(&app, &person("many@example.com")).await;
    let id = created["id"].as_str().unwrap();
    let n = 25;
    // Every row has the same updated_at, and groups share created_at.
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "('{}', '{}', '{id}', 'basic', '{}', NULL, NULL, '2025-01-01 00:00:0{}', '2025-01-01 00:00:00', NULL, NULL, NULL, NULL)",
                uuid::Uuid::new_v4(),
                app.app_id,
                if i % 2 == 0 { "rejected" } else { "approved" },
                i % 3
            )
        })
        .collect();
    app.db.execute(&format!(
        "INSERT INTO verifications VALUES {}",
        rows.join(",")
    ));
    for query in ["sort=updatedAt", "sort=-createdAt&filter[status]=rejected"] {
        let everything = ids(&get(&app, &format!("/verifications?{query}&page[size]=100")).await);
        let first = get(&app, &format!("/verifications?{query}&page[size]=4")).await;
        let (pages, _) = follow(&app, &first, "next").await;
        let mut walked = ids(&first);
        walked.extend(pages.into_iter().flatten());
        assert_eq!(walked, everything, "{query}");
    }
}

async fn altered_or_misplaced_cursors_are_refused(app: TestApp) {
    let mut owner = String::new();
    for i in 0..3 {
        owner = create(&app, &person(&format!("r{i}@example.com"))).await["id"]
            .as_str()
            .unwrap()
            .to_string();
    }
    create(&app, &company("co@example.com", &owner)).await;
    let first = get(
        &app,
        "/identities?page[size]=1&filter[type]=person&sort=createdAt",
    )
    .await;
    let next = first["links"]["next"].as_str().unwrap().to_string();
    let cursor: String = url::form_urlencoded::parse(next.split_once('?').unwrap().1.as_bytes())
        .find(|(name, _)| name == "page[after]")
        .unwrap()
        .1
        .into_owned();
    let encoded = |c: &str| url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>();
    let mut altered = cursor.clone().into_bytes();
    let at = altered.len() / 2;
    altered[at] = if altered[at] == b'x' { b'y' } else { b'x' };
    let altered = String::from_utf8(altered).unwrap();
    let c = encoded(&cursor);
    let refused = |query: String, field: &'static str, words: &'static str| (query, field, words);
    let cases = [
        refused(
            format!(
                "/identities?filter[type]=person&sort=createdAt&page[after]={}",
                encoded(&altered)
            ),
            "page[after]",
            "not a cursor this server issued",
        ),
        refused(
            format!("/identities?filter[type]=person&sort=-createdAt&page[after]={c}"),
            "page[after]",
            "sort=createdAt",
        ),
        refused(
            format!("/identities?sort=createdAt&page[before]={c}"),
            "page[before]",
            "other filters",
        ),
        refused(
            format!("/verifications?sort=createdAt&page[after]={c}"),
            "page[after]",
            "identities list",
        ),
        refused(
            format!(
                "/identities?filter[type]=person&sort=createdAt&page[after]={c}&page[number]=2"
            ),
            "page[after]",
            "page[number]",
        ),
        refused(
            format!("/identities?filter[type]=person&sort=createdAt&page[after]={c}&all=true"),
            "page[after]",
            "all=true",
        ),
    ];
    for (query, field, words) in cases {
        let (status, body) = json(app.get(&query).send().await.unwrap()).await;
        assert_error(status, &body, 400, "validation_failed");
        assert_eq!(detail_fields(&body), [field], "{query}");
        let message = body["details"][0]["message"].as_str().unwrap();
        assert!(message.contains(words), "{query}: {message}");
    }
    // The same cursor, sent by another app's key: refused, nothing read.
    let (_, other_key) = app.create_other_app("other");
    let (status, body) = json(
        app.client
            .get(app.url(&next))
            .header("apiKey", &other_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "validation_failed");
    assert!(
        body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("another app"),
        "{body}"
    );
    // The untouched cursor still works.
    assert_eq!(ids(&get(&app, &next).await).len(), 1);
}
