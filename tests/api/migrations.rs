//! Both migration trees stay in step, and every migration reverts cleanly.

use diesel_migrations::MigrationHarness;
use kyc_api::db::{
    ConnectionManager, DatabaseUrl, DbConnection, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS,
};

use crate::database_tests;
use crate::helpers::TestDatabase;

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

#[test]
fn both_backends_have_the_same_migrations() {
    let postgres = migration_names("postgres");
    assert!(!postgres.is_empty());
    assert_eq!(postgres, migration_names("sqlite"));
}

database_tests!(migrations_run_down_and_up_again);

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
