//! Both migration trees stay in step, and every migration reverts cleanly.

use diesel_migrations::MigrationHarness;
use kyc_api::db::{
    ConnectionManager, DatabaseUrl, DbConnection, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS,
};

use crate::database_tests;
use crate::helpers::{Backend, TestDatabase, IDENTITY_COLUMNS};

fn migration_names(backend: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| {
            for file in ["up.sql", "down.sql"] {
                assert!(
                    e.path().join(file).is_file(),
                    "{} has no {file}",
                    e.path().display()
                );
            }
            e.file_name().to_string_lossy().to_string()
        })
        .collect();
    names.sort();
    names
}

/// Replicas starting together on an empty PostgreSQL database: every
/// `kyc-api migrate` succeeds (the runs queue on an advisory lock instead of
/// racing to create the same tables), and the schema is complete once.
#[test]
fn parallel_migrations_on_postgres_all_succeed() {
    if crate::helpers::postgres_admin_url().is_none() {
        return;
    }
    for _ in 0..2 {
        let db = TestDatabase::create(Backend::Postgres);
        let runs: Vec<std::process::Child> = (0..4)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
                    .arg("migrate")
                    .env("DATABASE_URL", &db.url)
                    .env("KYC_LOG", "warn")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let out = run.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(
            crate::helpers::query_count(&db, "SELECT count(*) FROM __diesel_schema_migrations"),
            migration_names("postgres").len() as i64
        );
    }
}

/// Three replicas started together on an empty PostgreSQL database all come
/// up ready (each waits for the one migrating, and the losers of the race
/// to create the `default` app find the winner's), three times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_servers_on_an_empty_postgres_all_start() {
    if crate::helpers::postgres_admin_url().is_none() {
        return;
    }
    for _ in 0..3 {
        three_servers_start_together().await;
    }
}

async fn three_servers_start_together() {
    let db = TestDatabase::create(Backend::Postgres);
    let files = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let mut servers: Vec<std::process::Child> = ports
        .iter()
        .map(|port| {
            std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
                .arg("serve")
                .env("DATABASE_URL", &db.url)
                .env("KYC_BIND", format!("127.0.0.1:{port}"))
                .env("KYC_BOOTSTRAP_API_KEY", crate::helpers::BOOTSTRAP_KEY)
                .env(
                    "KYC_STORAGE",
                    format!("local:{}", files.path().join(port.to_string()).display()),
                )
                .env("KYC_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    for port in &ports {
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{port}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                break;
            }
            for server in servers.iter_mut() {
                if let Some(status) = server.try_wait().unwrap() {
                    let mut stderr = String::new();
                    use std::io::Read;
                    server
                        .stderr
                        .take()
                        .unwrap()
                        .read_to_string(&mut stderr)
                        .unwrap();
                    panic!("a replica exited ({status}): {stderr}");
                }
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "not ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    for server in servers.iter_mut() {
        let _ = server.kill();
        let _ = server.wait();
    }
}

#[test]
fn both_backends_have_the_same_migrations() {
    let postgres = migration_names("postgres");
    assert!(!postgres.is_empty());
    assert_eq!(postgres, migration_names("sqlite"));
}

database_tests!(
    migrations_run_down_and_up_again,
    email_keys_migration_fills_existing_rows,
    email_normalized_migration_fills_existing_rows,
    verification_listing_migration_marks_deleted_identities,
    document_keys_migration_keeps_only_keys
);

/// Reverts migrations, newest first, up to and including `version`.
fn revert_through(conn: &mut DbConnection, version: &str) {
    loop {
        let migrations = match conn {
            DbConnection::Postgresql(_) => POSTGRES_MIGRATIONS,
            DbConnection::Sqlite(_) => SQLITE_MIGRATIONS,
        };
        let reverted = conn.revert_last_migration(migrations).expect("down");
        if reverted.to_string() == version {
            return;
        }
    }
}

/// Identities stored before the normalized email existed get the form the
/// server writes (`Email::normalize`), and the unique index moves onto it.
/// The non-ASCII case is SQLite's: its lower() (the old index) folds only
/// ASCII, the server's function folds Unicode; PostgreSQL's lower() is used
/// there and folds it alike under a UTF-8 LC_CTYPE.
async fn email_normalized_migration_fills_existing_rows(db: TestDatabase) {
    use diesel::prelude::*;
    use kyc_api::db::schema::identities;
    use kyc_api::domain::identity::Email;

    let manager = ConnectionManager::new(DatabaseUrl::parse(&db.url).unwrap());
    let mut conn = manager.connect().expect("connect");
    kyc_api::db::run_migrations(&mut conn).expect("up");
    revert_through(&mut conn, "20261203000006");

    let emails = [
        "Ana.Lima@Alpha.COM",
        "b+tag@sub.Example.org",
        "Dora@MÜNCHEN.de",
    ];
    let mut sql = "INSERT INTO apps VALUES ('app', 'app', '2025-01-01 00:00:00');".to_string();
    for (i, email) in emails.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO identities VALUES ('id{i}', 'app', 'person', 'N', '{email}', NULL, NULL, \
             'S', 'C', NULL, 'P', 'PT', '9', FALSE, 'PT', '1', NULL, NULL, NULL, FALSE, FALSE, NULL, \
             '2025-01-01 00:00:00', '2025-01-01 00:00:00', NULL, 'd', 'l');"
        ));
    }
    db.execute(&sql);
    kyc_api::db::run_migrations(&mut conn).expect("up again");

    let stored: Vec<(String, String)> = identities::table
        .select((identities::email, identities::email_normalized))
        .order(identities::id)
        .load(&mut conn)
        .expect("read back");
    assert_eq!(stored.len(), emails.len());
    for (email, normalized) in stored {
        assert_eq!(normalized, Email::normalize(&email), "{email}");
    }
    // The unique index is on the normalized form now.
    let duplicate = diesel::sql_query(
        format!(
            "INSERT INTO identities ({IDENTITY_COLUMNS}) VALUES ('dup', 'app', 'person', 'N', 'dora@münchen.de', NULL, NULL, \
             'S', 'C', NULL, 'P', 'PT', '9', FALSE, 'PT', '1', NULL, NULL, NULL, FALSE, FALSE, NULL, \
             '2025-01-01 00:00:00', '2025-01-01 00:00:00', NULL, 'd', 'l', 'dora@münchen.de', NULL, NULL, NULL)"
        ),
    )
    .execute(&mut conn);
    assert!(
        matches!(
            duplicate,
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        ),
        "{duplicate:?}"
    );
}

async fn migrations_run_down_and_up_again(db: TestDatabase) {
    let manager = ConnectionManager::new(DatabaseUrl::parse(&db.url).unwrap());
    let mut conn = manager.connect().expect("connect");
    let first = kyc_api::db::run_migrations(&mut conn).expect("up");
    assert_eq!(first.len(), migration_names("sqlite").len());
    let migrations = match conn {
        DbConnection::Postgresql(_) => POSTGRES_MIGRATIONS,
        DbConnection::Sqlite(_) => SQLITE_MIGRATIONS,
    };
    let reverted = conn.revert_all_migrations(migrations).expect("down");
    assert_eq!(reverted.len(), first.len());
    let again = kyc_api::db::run_migrations(&mut conn).expect("up again");
    assert_eq!(again.len(), first.len());
}

/// Identities stored before the email search keys existed get the keys the
/// server would write for them (`EmailKeys`): SQLite through the server's own
/// functions, PostgreSQL through lower/split_part/reverse (exact for ASCII).
async fn email_keys_migration_fills_existing_rows(db: TestDatabase) {
    use diesel::prelude::*;
    use kyc_api::db::schema::identities;
    use kyc_api::domain::email_search::EmailKeys;

    let manager = ConnectionManager::new(DatabaseUrl::parse(&db.url).unwrap());
    let mut conn = manager.connect().expect("connect");
    kyc_api::db::run_migrations(&mut conn).expect("up");
    revert_through(&mut conn, "20261202000005");

    let mut emails = vec![
        "Ana.Lima@Alpha.COM",
        "b+tag@sub.Example.org",
        "c@[127.0.0.1]",
    ];
    if db.backend == Backend::Sqlite {
        emails.push("Dora@MÜNCHEN.de");
    }
    let mut sql = "INSERT INTO apps VALUES ('app', 'app', '2025-01-01 00:00:00');".to_string();
    for (i, email) in emails.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO identities VALUES ('id{i}', 'app', 'person', 'N', '{email}', NULL, NULL, \
             'S', 'C', NULL, 'P', 'PT', '9', FALSE, 'PT', '1', NULL, NULL, NULL, FALSE, FALSE, NULL, \
             '2025-01-01 00:00:00', '2025-01-01 00:00:00', NULL);"
        ));
    }
    db.execute(&sql);
    kyc_api::db::run_migrations(&mut conn).expect("up again");

    let stored: Vec<(String, String, String)> = identities::table
        .select((
            identities::email,
            identities::email_domain,
            identities::email_local_reversed,
        ))
        .order(identities::id)
        .load(&mut conn)
        .expect("read back");
    assert_eq!(stored.len(), emails.len());
    for (email, domain, local_reversed) in stored {
        let keys = EmailKeys::of(&email);
        assert_eq!(
            (domain, local_reversed),
            (keys.domain, keys.local_reversed),
            "{email}"
        );
    }
}

/// Verifications of identities deleted before the listing migration leave
/// the list: the migration copies the identity's deletion onto them.
async fn verification_listing_migration_marks_deleted_identities(db: TestDatabase) {
    use diesel::prelude::*;
    use kyc_api::db::schema::verifications;

    let manager = ConnectionManager::new(DatabaseUrl::parse(&db.url).unwrap());
    let mut conn = manager.connect().expect("connect");
    kyc_api::db::run_migrations(&mut conn).expect("up");
    revert_through(&mut conn, "20261203000007");

    let mut sql = "INSERT INTO apps VALUES ('app', 'app', '2025-01-01 00:00:00');".to_string();
    for (id, deleted_at) in [("live", "NULL"), ("gone", "'2025-02-01 00:00:00'")] {
        sql.push_str(&format!(
            "INSERT INTO identities VALUES ('{id}', 'app', 'person', 'N', '{id}@x.com', NULL, NULL, \
             'S', 'C', NULL, 'P', 'PT', '9', FALSE, 'PT', '1', NULL, NULL, NULL, FALSE, FALSE, NULL, \
             '2025-01-01 00:00:00', '2025-01-01 00:00:00', {deleted_at}, 'x.com', 'x', '{id}@x.com'); \
             INSERT INTO verifications VALUES ('v-{id}', 'app', '{id}', 'basic', 'pending', NULL, NULL, \
             '2025-01-01 00:00:00', '2025-01-01 00:00:00');"
        ));
    }
    db.execute(&sql);
    kyc_api::db::run_migrations(&mut conn).expect("up again");

    let stored: Vec<(String, Option<chrono::NaiveDateTime>)> = verifications::table
        .select((verifications::id, verifications::identity_deleted_at))
        .order(verifications::id)
        .load(&mut conn)
        .expect("read back");
    assert_eq!(
        stored,
        vec![
            (
                "v-gone".to_string(),
                Some(
                    chrono::NaiveDate::from_ymd_opt(2025, 2, 1)
                        .unwrap()
                        .and_hms_opt(0, 0, 0)
                        .unwrap()
                )
            ),
            ("v-live".to_string(), None),
        ]
    );
}

/// Documents stored as absolute URLs of our own storage (local behind any
/// address, S3 path-style or virtual-hosted, with or without a presigned
/// query) become bare keys; every other URL stays exactly as it was.
async fn document_keys_migration_keeps_only_keys(db: TestDatabase) {
    use diesel::prelude::*;
    use kyc_api::db::schema::documents;
    use kyc_api::domain::document::DocumentLocation;
    use kyc_api::domain::stored::StoredText;

    let manager = ConnectionManager::new(DatabaseUrl::parse(&db.url).unwrap());
    let mut conn = manager.connect().expect("connect");
    kyc_api::db::run_migrations(&mut conn).expect("up");
    revert_through(&mut conn, "20261203000008");

    let app = "6f0c1f8e-3b7a-4d2e-9a51-0c2d4e6f8a10";
    let other = "11111111-2222-4333-8444-555555555555";
    let file = |n: u32| format!("0b9e6d0e-2f1a-4c3b-8d7e-5a4b3c2d{n:04}");
    let key = |n: u32, ext: &str| format!("apps/{app}/documents/{}.{ext}", file(n));
    let converted = [
        (
            format!("http://127.0.0.1:8080/files/{}", key(1, "jpg")),
            key(1, "jpg"),
        ),
        (
            format!(
                "https://kyc.example.com/base/files/{}?token=abc.def",
                key(2, "png")
            ),
            key(2, "png"),
        ),
        (
            format!("http://127.0.0.1:9000/bucket/kyc/{}", key(3, "pdf")),
            key(3, "pdf"),
        ),
        (
            format!(
                "https://bucket.s3.eu-west-1.amazonaws.com/{}?X-Amz-Signature=ab#x",
                key(4, "jpeg")
            ),
            key(4, "jpeg"),
        ),
    ];
    let kept = [
        "https://cdn.example.com/passport.jpg".to_string(),
        format!(
            "https://cdn.example.com/apps/{other}/documents/{}.jpg",
            file(5)
        ),
        format!("https://cdn.example.com/apps/{app}/documents/not-a-uuid.jpg"),
        format!(
            "https://cdn.example.com/apps/{app}/documents/{}.JPG",
            file(6)
        ),
        format!(
            "https://cdn.example.com/apps/{app}/documents/{}.jpg/more",
            file(7)
        ),
    ];
    let mut sql = format!(
        "INSERT INTO apps VALUES ('{app}', 'app', '2025-01-01 00:00:00'); \
         INSERT INTO identities VALUES ('person', '{app}', 'person', 'N', 'p@x.com', NULL, NULL, \
         'S', 'C', NULL, 'P', 'PT', '9', FALSE, 'PT', '1', NULL, NULL, NULL, FALSE, FALSE, NULL, \
         '2025-01-01 00:00:00', '2025-01-01 00:00:00', NULL, 'x.com', 'p', 'p@x.com');"
    );
    let all: Vec<&String> = converted.iter().map(|(url, _)| url).chain(&kept).collect();
    for (i, url) in all.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO documents (id, app_id, identity_id, document_type, side, label, \
             description, url, position, created_at, updated_at, deleted_at) VALUES \
             ('d{i:02}', '{app}', 'person', 'passport', 'frontSide', NULL, NULL, '{url}', {i}, \
             '2025-01-01 00:00:00', '2025-01-01 00:00:00', NULL);"
        ));
    }
    db.execute(&sql);
    kyc_api::db::run_migrations(&mut conn).expect("up again");

    let stored: Vec<String> = documents::table
        .select(documents::url)
        .order(documents::id)
        .load(&mut conn)
        .expect("read back");
    let expected: Vec<&String> = converted.iter().map(|(_, key)| key).chain(&kept).collect();
    assert_eq!(stored.iter().collect::<Vec<_>>(), expected);
    // And the server reads every one back: keys as ours, the rest as URLs.
    for (i, text) in stored.iter().enumerate() {
        let location = DocumentLocation::from_stored(text).expect(text);
        assert_eq!(
            matches!(location, DocumentLocation::Stored(_)),
            i < converted.len(),
            "{text}"
        );
    }
}
