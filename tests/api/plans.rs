//! Statements that must not read a whole table do not. Each is captured as
//! the server's own query functions send it (Diesel's instrumentation) and
//! explained on both backends: SQLite plans without statistics, as the
//! server runs it; PostgreSQL with sequential scans discouraged, so that a
//! near-empty test table shows the index a large one would be read by.

use std::sync::{Arc, Mutex};

use diesel::connection::InstrumentationEvent;
use diesel::prelude::*;
use kyc_api::db::{ConnectionManager, DatabaseUrl, DbConnection};
use kyc_api::domain::document::DocumentLocation;
use kyc_api::domain::identity::DocumentUrl;
use kyc_api::domain::ids::{AppId, IdentityId};

use crate::database_tests;
use crate::helpers::{insert_identity_rows, DirectIdentity, TestDatabase};

database_tests!(
    erasure_reads_are_served_by_indexes,
    reads_by_id_are_served_by_indexes,
    substring_searches_are_weighed_per_app
);

/// The SQL of every statement `conn` sends while `run` runs.
fn statements_of(
    conn: &mut DbConnection,
    run: impl FnOnce(&mut DbConnection) -> QueryResult<()>,
) -> Vec<String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&seen);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            // `DebugQuery` prints the SQL, then ` -- binds: [...]`.
            let text = query.to_string();
            let sql = text.split(" -- binds: ").next().unwrap_or_default();
            recorder.lock().unwrap().push(sql.to_owned());
        }
    });
    run(conn).expect("the statements run");
    // Stop recording: the plans are read on the same connection.
    conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    let statements = seen.lock().unwrap().clone();
    assert!(!statements.is_empty(), "nothing was sent");
    statements
}

#[derive(QueryableByName)]
struct SqlitePlanLine {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct PostgresPlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// The plan of `sql` (its parameters unbound), one line per step.
fn plan_of(conn: &mut DbConnection, sql: &str) -> Vec<String> {
    match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<SqlitePlanLine>(c)
            .expect("explain")
            .into_iter()
            .map(|l| l.detail)
            .collect(),
        DbConnection::Postgresql(c) => {
            // A generic plan does not look at the parameters, so NULLs
            // stand in for them.
            let parameters = (1..)
                .take_while(|n| sql.contains(&format!("${n}")))
                .map(|_| "NULL")
                .collect::<Vec<_>>();
            for setup in [
                "SET enable_seqscan = off".to_string(),
                "SET plan_cache_mode = force_generic_plan".to_string(),
                format!("PREPARE plan_check AS {sql}"),
            ] {
                diesel::sql_query(setup).execute(c).expect("prepare");
            }
            let arguments = if parameters.is_empty() {
                String::new()
            } else {
                format!("({})", parameters.join(", "))
            };
            let plan = diesel::sql_query(format!("EXPLAIN EXECUTE plan_check{arguments}"))
                .load::<PostgresPlanLine>(c)
                .expect("explain")
                .into_iter()
                .map(|l| l.line)
                .collect();
            diesel::sql_query("DEALLOCATE plan_check")
                .execute(c)
                .expect("deallocate");
            plan
        }
    }
}

/// PostgreSQL's plan of `sql` for these values of its parameters when the
/// identities' only indexes (but the primary key) are the trigram ones on
/// `column` (the others dropped in a transaction rolled back afterwards;
/// statistics taken, sequential scans off): which conditions enter them.
/// On a test table the planner would rather read the app's btree.
fn trigram_plan_of(
    conn: &mut DbConnection,
    sql: &str,
    values: &[&str],
    column: &str,
) -> Vec<String> {
    let DbConnection::Postgresql(c) = conn else {
        panic!("PostgreSQL only");
    };
    let quoted: Vec<String> = values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect();
    for setup in [
        "ANALYZE identities".to_string(),
        "BEGIN".to_string(),
        format!(
            "DO $$ DECLARE other record; BEGIN \
                 FOR other IN SELECT indexname FROM pg_indexes WHERE tablename = 'identities' \
                     AND indexdef NOT LIKE '%{column} gin_trgm_ops%' AND indexname <> 'identities_pkey' \
                 LOOP EXECUTE 'DROP INDEX ' || quote_ident(other.indexname); END LOOP; \
             END $$"
        ),
        "SET LOCAL enable_seqscan = off".to_string(),
    ] {
        diesel::sql_query(setup).execute(c).expect("setup");
    }
    let plan = diesel::sql_query(format!("EXPLAIN {}", with_values(sql, &quoted)))
        .load::<PostgresPlanLine>(c)
        .expect("explain")
        .into_iter()
        .map(|l| l.line)
        .collect();
    diesel::sql_query("ROLLBACK").execute(c).expect("rollback");
    plan
}

/// `sql` with `$1`, `$2`, … replaced by these literals (from the last, so
/// that `$1` does not eat the start of `$10`).
fn with_values(sql: &str, literals: &[String]) -> String {
    let mut sql = sql.to_owned();
    for (n, literal) in literals.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", n + 1), literal);
    }
    sql
}

/// Asserts that no statement `run` sends reads all of `table`.
fn assert_no_table_scan(
    conn: &mut DbConnection,
    table: &str,
    run: impl FnOnce(&mut DbConnection) -> QueryResult<()>,
) {
    for sql in statements_of(conn, run) {
        let plan = plan_of(conn, &sql);
        let scans = |line: &String| match conn {
            // `SCAN documents`; a covering index walk is `SCAN documents
            // USING ... INDEX`, which reads the whole index: also refused.
            DbConnection::Sqlite(_) => line.starts_with(&format!("SCAN {table}")),
            DbConnection::Postgresql(_) => line.contains(&format!("Seq Scan on {table}")),
        };
        assert!(
            !plan.iter().any(scans),
            "{sql}\nreads the whole {table} table:\n{}",
            plan.join("\n")
        );
    }
}

fn migrated(db: &TestDatabase) -> DbConnection {
    let manager = ConnectionManager::new(DatabaseUrl::parse(&db.url).unwrap());
    let mut conn = manager.connect().expect("connect");
    kyc_api::db::run_migrations(&mut conn).expect("migrate");
    conn
}

/// Erasure (and retention, which erases) reads every document an identity
/// ever had and which other identities share its stored objects; a
/// document sent with a stored object's URL looks up whose it is. Each ran
/// inside its write transaction, and read the whole documents table until
/// migration 25 indexed `identity_id` and `url` over every document.
async fn erasure_reads_are_served_by_indexes(db: TestDatabase) {
    use kyc_api::db::custody;
    let mut conn = migrated(&db);
    let app = AppId::new();
    let identity = IdentityId::new();
    let location =
        DocumentLocation::External(DocumentUrl::parse("https://files.example.com/a.jpg").unwrap());
    assert_no_table_scan(&mut conn, "documents", |c| {
        custody::stored_objects_of(c, &app, &identity)?;
        custody::shared_with_others(c, &app, &identity, std::slice::from_ref(&location))?;
        custody::object_secret_of(c, &app, &location)?;
        Ok(())
    });
}

/// A GET's reads by id: the identity, its documents, its metadata.
async fn reads_by_id_are_served_by_indexes(db: TestDatabase) {
    use kyc_api::db::identities as q;
    let mut conn = migrated(&db);
    let app = AppId::new();
    let identity = IdentityId::new();
    for table in ["identities", "documents", "identity_metadata"] {
        assert_no_table_scan(&mut conn, table, |c| {
            q::find_live(c, &app, &identity)?;
            q::live_documents_of(c, &app, &[&identity])?;
            q::metadata_of(c, &app, &[&identity])?;
            Ok(())
        });
    }
}

/// `n` identities of `app`, the first `matching` of them with `zq7` in
/// their email and name.
fn insert_identities(db: &TestDatabase, app: &AppId, n: usize, matching: usize) {
    let values: Vec<String> = (0..n)
        .map(|i| {
            let local = if i < matching {
                format!("zq7x{i}")
            } else {
                format!("other{i}")
            };
            DirectIdentity {
                id: &uuid::Uuid::new_v4().to_string(),
                app_id: app.as_str(),
                name: &format!("P {local}"),
                email: &format!("{local}@example.com"),
                created_at: "2025-01-01 00:00:00",
                updated_at: "2025-01-01 00:00:00",
            }
            .values()
        })
        .collect();
    db.execute(&format!(
        "INSERT INTO apps (id, name, created_at) VALUES ('{app}', '{app}', '2025-01-01 00:00:00')"
    ));
    insert_identity_rows(db, &values);
}

/// A substring search costs what the app's own identities make it cost,
/// not every app's. One app holds 1,200 identities, 50 of them matching
/// `zq7`; another holds 10, none matching. PostgreSQL: the trigram index
/// the count reads is keyed by app first (migration 26), so that neither
/// app reads the other's postings. SQLite: the FTS5 table is shared,
/// and its 50 candidates are worth taking for the big app (1/12 of its
/// identities is 100) but not for the small one, whose walk passes 10; its
/// count of identities follows deletions too.
async fn substring_searches_are_weighed_per_app(db: TestDatabase) {
    use kyc_api::db::identities::{self as q, SubstringIndex};
    use kyc_api::domain::list_query::{ListQuery, IDENTITY_LIST};
    let mut conn = migrated(&db);
    let (big, small) = (AppId::new(), AppId::new());
    insert_identities(&db, &big, 1_200, 50);
    insert_identities(&db, &small, 10, 0);
    for field in ["email", "name"] {
        let query = ListQuery::parse(&format!("filter[{field}]=like:zq7"), &IDENTITY_LIST).unwrap();
        let filters = &query.filters;
        match conn {
            DbConnection::Postgresql(_) => {
                let statements = statements_of(&mut conn, |c| {
                    q::count(c, &big, &query, &SubstringIndex::Planner).map(|_| ())
                });
                for sql in statements {
                    let column = if field == "email" {
                        "email_normalized"
                    } else {
                        "lower(name)"
                    };
                    let plan =
                        trigram_plan_of(&mut conn, &sql, &[big.as_str(), "%zq7%", "\\"], column);
                    let both = format!("Index Cond: ((app_id = '{big}'::text) AND (");
                    assert!(
                        plan.iter().any(|line| line.contains(&both)),
                        "{sql}\nis not served by an index on the app and the pattern:\n{}",
                        plan.join("\n")
                    );
                }
            }
            DbConnection::Sqlite(_) => {
                let big_plan = SubstringIndex::of(&mut conn, &big, filters, None).unwrap();
                assert!(
                    matches!(big_plan, SubstringIndex::Fts5(_)),
                    "{field}: {big_plan:?}"
                );
                let small_plan = SubstringIndex::of(&mut conn, &small, filters, None).unwrap();
                assert_eq!(small_plan, SubstringIndex::Planner, "{field}");
            }
        }
    }
    if let DbConnection::Sqlite(_) = conn {
        // Down to its 50 matches, the big app's walk is shorter than 50
        // candidates.
        db.execute(&format!(
            "DELETE FROM identities WHERE app_id = '{big}' AND email NOT LIKE 'zq7%'"
        ));
        let query = ListQuery::parse("filter[email]=like:zq7", &IDENTITY_LIST).unwrap();
        let plan = SubstringIndex::of(&mut conn, &big, &query.filters, None).unwrap();
        assert_eq!(plan, SubstringIndex::Planner);
    }
}
