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
use crate::helpers::TestDatabase;

database_tests!(
    erasure_reads_are_served_by_indexes,
    reads_by_id_are_served_by_indexes
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
