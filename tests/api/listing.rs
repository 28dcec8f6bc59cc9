//! `GET /identities`: the reference's query language.

use serde_json::{json, Value};

use crate::helpers::{
    assert_error, detail_fields, insert_identity_rows, json, query_count, Backend, DirectIdentity,
    TestApp, TestDatabase,
};
use crate::identities::{company, create, get_ok, person, reference_person};
use crate::{backend_tests, database_tests};

backend_tests!(
    filters_select_and_total_counts_all_matches,
    like_is_a_literal_case_insensitive_substring,
    sorting_and_pagination_are_stable,
    brackets_may_be_percent_encoded,
    malformed_queries_are_named,
    all_true_streams_every_match,
    streamed_identities_are_what_each_get_answers,
    a_chunk_with_too_many_child_rows_for_a_range_is_read_whole,
    all_true_total_is_the_rows_sent_while_writers_race,
    indexed_substrings_answer_what_a_full_scan_answers,
    pages_find_bunched_and_spread_matches,
    the_substring_index_follows_every_change,
    lists_entered_by_ids_keep_to_the_callers_app,
    email_patterns_with_an_at_sign_page_exactly,
    email_search_keys_follow_changes,
);

database_tests!(a_shared_snapshot_is_its_readers_snapshot);

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

pub fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
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
    insert_bulk(&app, n);
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

/// An unfiltered list in creation order reads the documents and
/// verifications of each chunk (of 64 identities or more) as one range of
/// identity ids (UUIDv7) instead of one probe per identity. Every identity
/// streamed, and every one on a page of 100, must be exactly what its own
/// GET answers: with another app's identities and their documents created
/// in between, identities with two documents, none, a decided verification,
/// and a deleted one among them.
async fn streamed_identities_are_what_each_get_answers(app: TestApp) {
    let (_, other_key) = app.create_other_app("neighbour");
    let mut mine = Vec::new();
    for i in 0..90 {
        let mut body = if i % 9 == 4 {
            person(&format!("plain{i}@example.com"))
        } else {
            reference_person()
        };
        body["email"] = json!(format!("mine{i}@example.com"));
        let documents = body.get_mut("documents").and_then(Value::as_array_mut);
        if let Some(documents) = documents.filter(|_| i % 5 == 0) {
            documents.push(documents[0].clone());
        }
        mine.push(
            create(&app, &body).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let mut theirs = reference_person();
        theirs["email"] = json!(format!("theirs{i}@example.com"));
        let response = app
            .client
            .post(app.url("/identities"))
            .header("apiKey", &other_key)
            .json(&theirs)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let (status, body) = json(
        app.delete(&format!("/identities/{}", mine[45]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = json(
        app.get(&format!("/identities/{}", mine[10]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let verification = body["data"]["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = json(
        app.post(
            &format!("/verifications/{verification}/decision"),
            &json!({"status": "inReview"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let streamed = list(&app, "all=true").await;
    let page = list(&app, "page[size]=100").await;
    assert_eq!(streamed["total"], 89);
    assert_eq!(page["data"], streamed["data"]);
    for item in streamed["data"].as_array().unwrap() {
        let own = get_ok(&app, item["id"].as_str().unwrap()).await;
        assert_eq!(item, &own);
    }
    let documents = |i: usize| {
        streamed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["id"] == mine[i].as_str())
            .unwrap()["documents"]
            .as_array()
            .unwrap()
            .len()
    };
    // 1 document + 1 face image, 2 + 1, none.
    assert_eq!((documents(1), documents(5), documents(4)), (2, 3, 0));
}

/// A range read is bounded (16 child rows per identity asked for); a chunk
/// whose range holds more is read by probes instead, never cut short:
/// identities with 20 documents and a face image each must stream all 21.
async fn a_chunk_with_too_many_child_rows_for_a_range_is_read_whole(app: TestApp) {
    let mut body = reference_person();
    let document = body["documents"][0].clone();
    body["documents"] = json!(vec![document; 20]);
    for i in 0..70 {
        body["email"] = json!(format!("many{i}@example.com"));
        create(&app, &body).await;
    }
    let streamed = list(&app, "all=true").await;
    assert_eq!(streamed["total"], 70);
    for item in streamed["data"].as_array().unwrap() {
        assert_eq!(
            item["documents"].as_array().unwrap().len(),
            21,
            "{}",
            item["id"]
        );
    }
}

/// `like:` patterns with an `@` are answered from the email search keys
/// (domain, reversed local part): pages and totals must be exactly what a
/// case-insensitive substring match gives, in every path the query layer
/// takes: one domain or one local part walked in index order (more than
/// 1,000 matches), several domains sorted, a page walked from the end,
/// pages beyond the end.
async fn email_patterns_with_an_at_sign_page_exactly(app: TestApp) {
    // (created_at, id, email), created_at shared by pairs so that ids break ties.
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for i in 0..4000 {
        let email = if i % 2 == 0 {
            format!("even@d{i}.Even.test")
        } else {
            let domain = match i % 5 {
                0 => "one.test",
                1 => "two.test",
                _ => "ONE.test.br",
            };
            format!("Bulk{i}@{domain}")
        };
        let at = format!("2025-01-01 00:{:02}:{:02}.000000", i / 2 / 60, i / 2 % 60);
        rows.push((at, uuid::Uuid::new_v4().to_string(), email));
    }
    let values: Vec<String> = rows
        .iter()
        .map(|(at, id, email)| {
            DirectIdentity {
                id,
                app_id: &app.app_id,
                name: "Bulk",
                email,
                created_at: at,
                updated_at: at,
            }
            .values()
        })
        .collect();
    insert_identity_rows(&app.db, &values);
    rows.sort();

    for (pattern, sort, more) in [
        ("@one.test", "-createdAt", ""), // two domains: one.test, one.test.br
        ("@one.test.br", "-createdAt", ""), // one domain, 1,200 matches
        ("@one.test.br", "createdAt", ""),
        (
            "@one.test.br",
            "-createdAt",
            "&filter[blocked]=false&filter[type]=person",
        ),
        ("even@", "createdAt", "&filter[blocked]=true"),
        ("@two.test", "createdAt", ""),
        ("@d1", "-createdAt", ""),   // 1,100 domains d1…
        ("even@", "-createdAt", ""), // one local part, 2,000 matches
        ("even@", "createdAt", ""),
        ("EVEN@D10", "-createdAt", ""),
        ("n@d2", "createdAt", ""),
        ("7@one", "-createdAt", ""),
        ("k7@one.test", "createdAt", ""),
        ("@", "-createdAt", ""),
        ("@one.test", "-updatedAt", ""),
        ("even@d1", "updatedAt", ""),
        ("a@b@c", "-createdAt", ""),
        ("@nowhere", "-createdAt", ""),
    ] {
        let needle = pattern.to_lowercase();
        // No bulk identity is blocked; all are people.
        let none_blocked = !more.contains("blocked]=true");
        let mut expected: Vec<&str> = rows
            .iter()
            .filter(|(_, _, email)| email.to_lowercase().contains(&needle) && none_blocked)
            .map(|(_, id, _)| id.as_str())
            .collect();
        if sort.starts_with('-') {
            expected.reverse();
        }
        let size = 100;
        let pages = expected.len().div_ceil(size) + 1;
        let mut got: Vec<String> = Vec::new();
        for number in 1..=pages {
            let body = list(
                &app,
                &format!(
                    "filter[email]=like:{}&sort={sort}&page[size]={size}&page[number]={number}{more}",
                    pattern.replace('@', "%40")
                ),
            )
            .await;
            assert_eq!(body["total"], expected.len(), "{pattern} {sort} total");
            got.extend(ids(&body));
        }
        let first_difference = got.iter().zip(&expected).position(|(g, e)| g != e);
        assert_eq!(
            (got.len(), first_difference),
            (expected.len(), None),
            "{pattern} sort={sort}{more}: (rows, first wrong position)"
        );
    }

    // all=true streams the same matches in the same order.
    for pattern in ["@one.test", "even@"] {
        let needle = pattern.to_lowercase();
        let expected: Vec<&str> = rows
            .iter()
            .rev()
            .filter(|(_, _, email)| email.to_lowercase().contains(&needle))
            .map(|(_, id, _)| id.as_str())
            .collect();
        let body = list(
            &app,
            &format!(
                "all=true&filter[email]=like:{}",
                pattern.replace('@', "%40")
            ),
        )
        .await;
        assert_eq!(body["total"], expected.len(), "{pattern} all=true total");
        assert!(ids(&body) == expected, "{pattern} all=true order");
    }
}

/// The search keys change with the email and go with a deleted identity.
async fn email_search_keys_follow_changes(app: TestApp) {
    let ana = create(&app, &person("Ana@Old.example")).await;
    let id = ana["id"].as_str().unwrap();
    assert_eq!(list(&app, "filter[email]=like:ana@old").await["total"], 1);

    let (status, body) = json(
        app.patch(
            &format!("/identities/{id}"),
            &json!({"email": "Lima@NEW.example"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        list(&app, "filter[email]=like:@old.example").await["total"],
        0
    );
    assert_eq!(list(&app, "filter[email]=like:ana@").await["total"], 0);
    let found = list(&app, "filter[email]=like:lima@new.").await;
    assert_eq!(emails(&found), vec!["Lima@NEW.example"]);

    let status = app
        .delete(&format!("/identities/{id}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    assert_eq!(list(&app, "filter[email]=like:lima@new.").await["total"], 0);
}

/// Persons with these emails and creation times, inserted directly.
fn insert_people(app: &TestApp, people: &[(String, String)]) {
    let values: Vec<String> = people
        .iter()
        .map(|(email, created_at)| {
            let local = email
                .split_once('@')
                .map_or(email.as_str(), |(local, _)| local);
            DirectIdentity {
                id: &uuid::Uuid::new_v4().to_string(),
                app_id: &app.app_id,
                name: &format!("P {local}"),
                email,
                created_at,
                updated_at: created_at,
            }
            .values()
        })
        .collect();
    insert_identity_rows(&app.db, &values);
}

/// A page without a count stops after its rows. On SQLite a common
/// substring is then walked in list order for a bounded stretch, and its
/// candidates are taken when the matches are not there; on PostgreSQL a
/// counted page is walked for one stretch, else its matches are counted and
/// sorted in one statement. Matches bunched at the far end of the list, at
/// its start, spread through it or in most of it are all found, in order,
/// by every way of paging, and a counted page's total is every match.
async fn pages_find_bunched_and_spread_matches(app: TestApp) {
    let at = |second: usize| {
        format!(
            "2025-01-{:02} {:02}:{:02}:{:02}",
            1 + second / 86_400,
            second / 3600 % 24,
            second / 60 % 60,
            second % 60
        )
    };
    let mut people = Vec::new();
    // 100 bunched at the oldest end, 100 spread through 12,000 others:
    // more than a bounded walk passes on either backend.
    for i in 0..100 {
        people.push((format!("bunch{i}@cluster.example"), at(i)));
    }
    for i in 0..12_000 {
        let email = if i % 120 == 0 {
            format!("spread{i}@wide.example")
        } else {
            format!("filler{i}@plain.example")
        };
        people.push((email, at(1000 + i)));
    }
    insert_people(&app, &people);
    // `plain` is most of the list: too long to walk a cursor through page
    // by page; its numbered pages are read.
    for pattern in ["cluster", "wide", "spread1", "bunch3", "plain"] {
        for sort in ["-createdAt", "createdAt"] {
            let query = format!("filter[email]=like:{pattern}&sort={sort}");
            let streamed = ids(&list(&app, &format!("all=true&{query}")).await);
            for size in [1, 7] {
                let sized = format!("{query}&page[size]={size}");
                if pattern != "plain" {
                    let walked = uncounted_walk_from(&app, &sized).await;
                    assert_eq!(
                        walked, streamed,
                        "{sized}: by cursor from an uncounted page"
                    );
                }
                // Numbered pages, counted and not, each from the start;
                // the last one is past every match.
                for number in [1, 2, 5, 400, 2000] {
                    let from = (size * (number - 1)).min(streamed.len());
                    let to = (from + size).min(streamed.len());
                    let numbered = format!("{sized}&page[number]={number}");
                    let page = list(&app, &format!("{numbered}&page[total]=false")).await;
                    assert_eq!(ids(&page), streamed[from..to], "{numbered} uncounted");
                    let counted = list(&app, &numbered).await;
                    assert_eq!(counted["total"], streamed.len(), "{numbered} total");
                    assert_eq!(ids(&counted), streamed[from..to], "{numbered} counted");
                }
            }
        }
    }
}

/// `n` persons (`bulk<i>@example.com`), inserted directly for speed.
pub fn insert_bulk(app: &TestApp, n: usize) {
    let values: Vec<String> = (0..n)
        .map(|i| {
            DirectIdentity {
                id: &uuid::Uuid::new_v4().to_string(),
                app_id: &app.app_id,
                name: &format!("Bulk {i}"),
                email: &format!("bulk{i}@example.com"),
                created_at: &format!("2025-01-01 00:00:{:02}.{i:06}", i % 60),
                updated_at: "2025-01-01 00:00:00",
            }
            .values()
        })
        .collect();
    insert_identity_rows(&app.db, &values);
}

/// An `all=true` answer is one read snapshot from its count to its last
/// row: while a writer creates and deletes identities through the API, each
/// stream's `total` is exactly the rows it sends, none twice.
async fn all_true_total_is_the_rows_sent_while_writers_race(app: TestApp) {
    insert_bulk(&app, 1500);
    let victims = ids(&list(&app, "all=true").await);
    let stop = std::cell::Cell::new(false);
    // Both futures run at once on this task (`join!`), sharing the server.
    let writer = async {
        let mut changes = 0;
        for (i, victim) in victims.iter().enumerate() {
            if stop.get() {
                break;
            }
            create(&app, &person(&format!("racer{i}@example.com"))).await;
            let response = app
                .delete(&format!("/identities/{victim}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 204);
            changes += 2;
        }
        changes
    };
    let readers = async {
        for _ in 0..6 {
            let body = list(&app, "all=true").await;
            let sent = ids(&body);
            assert_eq!(body["total"], sent.len(), "total is the rows sent");
            let mut unique = sent.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), sent.len(), "no row twice");
        }
        stop.set(true);
    };
    let (changes, ()) = tokio::join!(writer, readers);
    assert!(
        changes >= 6,
        "the writer raced the streams ({changes} changes)"
    );
}

/// The ids of every match of `query` (all=true).
async fn all_ids(app: &TestApp, query: &str) -> Vec<String> {
    let body = list(app, &format!("all=true&{query}")).await;
    let mut found = ids(&body);
    assert_eq!(body["total"], found.len());
    found.sort();
    found
}

/// Substring filters may read candidates from an index (PostgreSQL's
/// pg_trgm today) but keep their `LIKE`: every answer must be what that
/// `LIKE` alone finds over the table, whatever the case, accents, quotes,
/// wildcards or length of the pattern.
async fn indexed_substrings_answer_what_a_full_scan_answers(app: TestApp) {
    // Enough other identities that SQLite answers rare patterns from its
    // FTS5 index and common ones (`.example`) by the walk: both are held
    // to the scan.
    insert_bulk(&app, 400);
    let names = [
        "Élodie Martin",
        "ÉLODIE MARTIN",
        "Straße Weg",
        "Çağlar Öztürk",
        "O\"Brien \"Quote\"",
        "Ana_Paula 100%",
        "José da Silva",
        "Zoë Åberg",
        "Mary-Ann O'Neil",
        "李小龙 Bruce",
        "Back\\Slash",
        "abcabcabc",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut body = person(&format!("user.{i}_x%{}@Mail{}.Example.com", i * 7, i % 3));
        body["name"] = json!(name);
        create(&app, &body).await;
    }
    let mut deleted = person("deleted.martin@mail1.example.com");
    deleted["name"] = json!("Élodie Deleted");
    let gone = create(&app, &deleted).await;
    let response = app
        .delete(&format!("/identities/{}", gone["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let patterns = [
        "élodie",
        "ÉLO",
        "lodie",
        "é",
        "el",
        "martin",
        "MARTIN",
        "straße",
        "STRASSE",
        "çağ",
        "ÖZT",
        "\"quote\"",
        "o\"b",
        "_paula",
        "100%",
        "%",
        "_",
        "a_p",
        "josé",
        "zoë",
        "åberg",
        "'ne",
        "李小",
        "小龙",
        "\\s",
        "abcabc",
        "bca",
        "mail1",
        "MAIL2.EX",
        "x%1",
        "user.1",
        "ser.",
        ".example",
        "example.co",
        "zzz",
        "ab",
    ];
    for pattern in patterns {
        let like = kyc_api::domain::list_query::like_pattern(pattern).replace('\'', "''");
        for (field, column) in [("name", "lower(name)"), ("email", "email_normalized")] {
            let encoded =
                percent_encoding::utf8_percent_encode(pattern, percent_encoding::NON_ALPHANUMERIC);
            let found = all_ids(&app, &format!("filter[{field}]=like:{encoded}")).await;
            let scan = format!(
                "SELECT COUNT(*) AS count FROM identities WHERE app_id = '{}' \
                 AND deleted_at IS NULL AND {column} LIKE '{like}' ESCAPE '\\'",
                app.app_id
            );
            let expected = query_count(&app.db, &scan);
            let listed = found.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>();
            let agreeing = if listed.is_empty() {
                0
            } else {
                query_count(&app.db, &format!("{scan} AND id IN ({})", listed.join(",")))
            };
            assert_eq!(
                (found.len() as i64, agreeing),
                (expected, expected),
                "filter[{field}]=like:{pattern}: the list and a full scan disagree"
            );
            // Pages without a count are planned for their few rows (SQLite
            // may then walk where the count took candidates, or the other
            // way): the same matches, in list order.
            let query = format!("filter[{field}]=like:{encoded}");
            let walked = uncounted_walk(&app, &query).await;
            let streamed = ids(&list(&app, &format!("all=true&{query}")).await);
            assert_eq!(walked, streamed, "filter[{field}]=like:{pattern}");
        }
    }
}

/// Every match of `query` from its first page without a total, following
/// `links.next` to the end.
async fn uncounted_walk(app: &TestApp, query: &str) -> Vec<String> {
    uncounted_walk_from(app, &format!("{query}&page[size]=30")).await
}

async fn uncounted_walk_from(app: &TestApp, query: &str) -> Vec<String> {
    let mut body = list(app, &format!("{query}&page[total]=false")).await;
    let mut walked = Vec::new();
    loop {
        assert!(body.get("total").is_none(), "{query}: {body}");
        walked.extend(ids(&body));
        let Some(next) = body["links"]["next"].as_str() else {
            return walked;
        };
        let (status, next_body) = json(app.get(next).send().await.unwrap()).await;
        assert_eq!(status, 200, "{next}: {next_body}");
        body = next_body;
    }
}

/// A list that names the rows it wants (ten ids or more, or the substring
/// index's few candidates) is not entered through the app's indexes
/// (`db::app_is_not_the_way_in`), and still answers the caller's own
/// identities only.
async fn lists_entered_by_ids_keep_to_the_callers_app(app: TestApp) {
    // Enough other identities that SQLite takes the rare pattern below from
    // its FTS5 index.
    insert_bulk(&app, 100);
    let mut own = Vec::new();
    for i in 0..12 {
        let created = create(&app, &person(&format!("own{i}.rare@tenant.example"))).await;
        own.push(created["id"].as_str().unwrap().to_string());
    }
    let by_ids = format!("filter[id]=in:{}", own.join(","));
    let rare = "filter[email]=like:own1.rar";
    assert_eq!(list(&app, &by_ids).await["total"], 12);
    assert_eq!(ids(&list(&app, rare).await), vec![own[1].clone()]);

    let (_, intruder) = app.create_other_app("intruder");
    for query in [&by_ids, &rare.to_string()] {
        let (status, body) = json(
            app.client
                .get(app.url(&format!("/identities?{query}")))
                .header("apiKey", &intruder)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(
            body["total"], 0,
            "{query}: another app's identities listed: {body}"
        );
    }
}

/// Substring searches follow creates, patches of email and name, deletes
/// and erasure: they find what the identities hold now, never what they
/// held (any search index must be kept in step by every write).
async fn the_substring_index_follows_every_change(app: TestApp) {
    // Enough other identities that SQLite takes these rare patterns from
    // its FTS5 index (few candidates among many rows).
    insert_bulk(&app, 100);
    let mut body = person("first.address@alpha.example.com");
    body["name"] = json!("Original Name");
    let created = create(&app, &body).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        all_ids(&app, "filter[name]=like:original").await,
        std::slice::from_ref(&id)
    );
    assert_eq!(
        all_ids(&app, "filter[email]=like:first.addr").await,
        std::slice::from_ref(&id)
    );

    let (status, _) = json(
        app.patch(
            &format!("/identities/{id}"),
            &json!({"name": "Renamed Person", "email": "second.address@beta.example.com"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(all_ids(&app, "filter[name]=like:original").await.is_empty());
    assert!(all_ids(&app, "filter[email]=like:first.addr")
        .await
        .is_empty());
    assert_eq!(
        all_ids(&app, "filter[name]=like:renamed").await,
        std::slice::from_ref(&id)
    );
    assert_eq!(
        all_ids(&app, "filter[email]=like:second.addr").await,
        std::slice::from_ref(&id)
    );

    let response = app
        .delete(&format!("/identities/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(all_ids(&app, "filter[name]=like:renamed").await.is_empty());
    let response = app
        .post(&format!("/identities/{id}/erase"), &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let remaining = "SELECT COUNT(*) AS count FROM identities WHERE lower(name) LIKE '%renamed%' \
         OR email_normalized LIKE '%second.addr%'";
    assert_eq!(
        query_count(&app.db, remaining),
        0,
        "erasure leaves no searchable trace"
    );
    // A later identity is found under its own name.
    let mut later = person("later@alpha.example.com");
    later["name"] = json!("Later Person");
    let later = create(&app, &later).await;
    assert_eq!(
        all_ids(&app, "filter[name]=like:later").await,
        [later["id"].as_str().unwrap().to_string()]
    );
}

/// An `all=true` stream on PostgreSQL reads each chunk's parts (documents,
/// verifications, ...) on a second connection while the next chunk's rows
/// are read (`Db::share_snapshot`). That connection must see the reader's
/// snapshot, not the data as it is when it starts, and go back to the pool
/// outside any transaction. SQLite shares no snapshot, nor does a pool with
/// no connection to spare.
async fn a_shared_snapshot_is_its_readers_snapshot(db: TestDatabase) {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use kyc_api::db::{read_snapshot, ConnectionManager, DatabaseUrl, Db, DbConnection};
    use std::time::Duration;

    fn rows(conn: &mut DbConnection) -> i64 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "count(*) FROM snapshot_probe",
        ))
        .get_result(conn)
        .expect("count")
    }
    let url = DatabaseUrl::parse(&db.url).unwrap();
    let mut writer = ConnectionManager::new(url.clone()).connect().unwrap();
    writer
        .batch_execute("CREATE TABLE snapshot_probe (n INTEGER NOT NULL); INSERT INTO snapshot_probe VALUES (1)")
        .unwrap();
    let connect =
        |size| Db::connect(&url, size, Duration::from_secs(5), Default::default()).unwrap();

    let pool = connect(2);
    let mut reader = pool.checkout().unwrap();
    let shared_saw = read_snapshot(&mut reader, |conn| -> QueryResult<Option<i64>> {
        assert_eq!(rows(conn), 1, "the reader's snapshot begins here");
        writer.batch_execute("INSERT INTO snapshot_probe VALUES (2)")?;
        let Some(mut shared) = pool.share_snapshot(conn)? else {
            return Ok(None);
        };
        let seen = rows(shared.conn());
        assert_eq!(rows(conn), 1, "the reader still sees its snapshot");
        Ok(Some(seen))
    })
    .unwrap();
    match db.backend {
        Backend::Postgres => assert_eq!(
            shared_saw,
            Some(1),
            "the second connection sees the reader's snapshot"
        ),
        Backend::Sqlite => assert_eq!(shared_saw, None, "SQLite shares no snapshot"),
    }
    drop(reader);
    // Both connections are back in the pool, their transactions ended: each
    // sees the row committed meanwhile.
    let mut first = pool.checkout().unwrap();
    let mut second = pool.checkout().unwrap();
    assert_eq!((rows(&mut first), rows(&mut second)), (2, 2));
    drop((first, second));

    let single = connect(1);
    let mut only = single.checkout().unwrap();
    let shared = read_snapshot(&mut only, |conn| -> QueryResult<bool> {
        rows(conn);
        Ok(single.share_snapshot(conn)?.is_some())
    })
    .unwrap();
    assert!(!shared, "a pool with no connection to spare shares none");
}
