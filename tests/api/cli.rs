//! The command line, on both backends, including beside a running server.

use serde_json::Value;

use crate::helpers::{json, query_count, run_cli, TestApp, TestDatabase};
use crate::{backend_tests, database_tests};

database_tests!(
    migrate_brings_an_empty_database_up_to_date,
    app_and_key_commands
);
backend_tests!(
    cli_works_beside_a_running_server,
    keys_list_shows_when_a_key_was_last_used
);

async fn migrate_brings_an_empty_database_up_to_date(db: TestDatabase) {
    let out = run_cli(&db.url, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "migrate prints nothing on stdout");
    // Running it again is a no-op.
    let out = run_cli(&db.url, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The schema really exists: an app can be created.
    let out = run_cli(&db.url, &["apps", "create", "after-migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn app_and_key_commands(db: TestDatabase) {
    let out = run_cli(&db.url, &["apps", "create", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // stdout holds exactly one JSON object and nothing else.
    let created: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiKey", "appId", "keyId"]);
    let app_id = created["appId"].as_str().unwrap();

    let out = run_cli(&db.url, &["apps", "create", "acme"]);
    assert!(!out.status.success(), "duplicate app names are refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let out = run_cli(&db.url, &["keys", "create", app_id]);
    assert!(out.status.success());
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["appId"], app_id);
    assert_ne!(key["apiKey"], created["apiKey"]);

    let list = run_cli(&db.url, &["apps", "list"]);
    let apps: Value = serde_json::from_slice(&list.stdout).unwrap();
    let acme = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "acme")
        .unwrap();
    assert_eq!(acme["activeKeys"], 2);
    // Listings never show key material.
    assert!(!String::from_utf8_lossy(&list.stdout).contains(created["apiKey"].as_str().unwrap()));

    let out = run_cli(&db.url, &["keys", "list", app_id]);
    assert!(out.status.success());
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            created["keyId"].as_str().unwrap(),
            key["keyId"].as_str().unwrap()
        ],
        "oldest first"
    );
    assert_eq!(
        listed[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "createdAt",
            "keyId",
            "lastUsedAt",
            "prefix",
            "revokedAt",
            "scopes"
        ]
    );
    assert!(listed[0]["lastUsedAt"].is_null(), "never used yet");
    assert!(created["apiKey"]
        .as_str()
        .unwrap()
        .starts_with(listed[0]["prefix"].as_str().unwrap()));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(created["apiKey"].as_str().unwrap()));

    let out = run_cli(&db.url, &["keys", "revoke", key["keyId"].as_str().unwrap()]);
    assert!(out.status.success());
    let again = run_cli(&db.url, &["keys", "revoke", key["keyId"].as_str().unwrap()]);
    assert!(!again.status.success(), "revoking twice fails");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    let listed: Value =
        serde_json::from_slice(&run_cli(&db.url, &["keys", "list", app_id]).stdout).unwrap();
    assert!(listed[1]["revokedAt"].is_string() && listed[0]["revokedAt"].is_null());
    let apps: Value = serde_json::from_slice(&run_cli(&db.url, &["apps", "list"]).stdout).unwrap();
    let acme = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "acme")
        .unwrap();
    assert_eq!(acme["activeKeys"], 1);

    for bad in [
        vec!["keys", "create", "not-a-uuid"],
        vec!["keys", "create", "00000000-0000-0000-0000-000000000000"],
        vec!["keys", "revoke", "00000000-0000-0000-0000-000000000000"],
        vec!["keys", "list", "00000000-0000-0000-0000-000000000000"],
        vec!["apps", "create", "   "],
    ] {
        let out = run_cli(&db.url, &bad);
        assert!(!out.status.success(), "{bad:?} must fail");
        assert!(out.stdout.is_empty(), "{bad:?} printed on stdout");
    }
}

/// `keys list` shows when a key was last used, noted after the request (at
/// most once an hour per key, whatever the number of requests).
async fn keys_list_shows_when_a_key_was_last_used(app: TestApp) {
    let (app_id, key) = app.create_other_app("usage");
    let listed = |app_id: &str| -> Value {
        serde_json::from_slice(&run_cli(&app.db.url, &["keys", "list", app_id]).stdout).unwrap()
    };
    assert!(listed(&app_id)[0]["lastUsedAt"].is_null());
    for _ in 0..3 {
        let res = app
            .client
            .get(app.url("/identities"))
            .header("apiKey", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let started = std::time::Instant::now();
    let first = loop {
        let stamp = listed(&app_id)[0]["lastUsedAt"].clone();
        if stamp.is_string() {
            break stamp;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the use was never noted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Within the hour, later uses change nothing.
    let res = app
        .client
        .get(app.url("/identities"))
        .header("apiKey", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(listed(&app_id)[0]["lastUsedAt"], first);
    assert_eq!(
        query_count(
            &app.db,
            "SELECT COUNT(*) AS count FROM api_keys WHERE last_used_at IS NOT NULL"
        ),
        1,
        "only the key that was used (the bootstrap key of this test was not)"
    );
}

async fn cli_works_beside_a_running_server(app: TestApp) {
    let (_, key) = app.create_other_app("beside-the-server");
    let (status, body) = json(
        app.client
            .get(app.url("/identities"))
            .header("apiKey", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn first_start_creates_the_default_app_and_prints_its_key_once() {
    let db = TestDatabase::create(crate::helpers::Backend::Sqlite);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
            .env("DATABASE_URL", &db.url)
            .env("KYC_BIND", format!("127.0.0.1:{port}"))
            .env_remove("KYC_BOOTSTRAP_API_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let stop_and_read = |child: std::process::Child| {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // SIGTERM: a graceful shutdown, exit code 0.
        unsafe_kill(child.id());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "graceful shutdown exits 0");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = stop_and_read(spawn());
    assert!(
        first.contains("kyc_"),
        "first start prints the key: {first}"
    );
    let key = first
        .split_whitespace()
        .find(|w| w.starts_with("kyc_"))
        .unwrap()
        .to_string();

    let second = stop_and_read(spawn());
    assert!(
        !second.contains("kyc_"),
        "the key is shown only once: {second}"
    );

    let apps: Value = serde_json::from_slice(&run_cli(&db.url, &["apps", "list"]).stdout).unwrap();
    assert_eq!(apps.as_array().unwrap().len(), 1);
    assert_eq!(apps[0]["name"], "default");
    assert!(key.len() > 40);
    // The printed key id is the key's: it can be revoked.
    let keys: Value = serde_json::from_slice(
        &run_cli(
            &db.url,
            &["keys", "list", apps[0]["appId"].as_str().unwrap()],
        )
        .stdout,
    )
    .unwrap();
    assert!(
        first.contains(keys[0]["keyId"].as_str().unwrap()),
        "{first}"
    );

    // In production a first start creates nothing and prints no key.
    let prod = TestDatabase::create(crate::helpers::Backend::Sqlite);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .env("DATABASE_URL", &prod.url)
        .env("KYC_BIND", format!("127.0.0.1:{port}"))
        .env("KYC_ENV", "production")
        .env("KYC_SIGNING_KEY", "a-production-signing-key-of-32-bytes!")
        .env(
            "KYC_ENCRYPTION_KEYS",
            "k1:aHVudGVyMmh1bnRlcjJodW50ZXIyaHVudGVyMmFiY2Q=",
        )
        .env_remove("KYC_BOOTSTRAP_API_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    unsafe_kill(child.id());
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !printed
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .any(|word| word.starts_with("kyc_") && word.len() > 40),
        "no API key is printed: {printed}"
    );
    assert!(printed.contains("kyc-api apps create"), "{printed}");
    let apps: Value =
        serde_json::from_slice(&run_cli(&prod.url, &["apps", "list"]).stdout).unwrap();
    assert_eq!(apps, serde_json::json!([]));
}

/// `apps list` and `keys …` on a SQLite path where no database exists
/// fail with the path named, and create nothing.
#[test]
fn admin_commands_do_not_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.db");
    let url = format!("sqlite://{}", path.display());
    for args in [
        vec!["apps", "list"],
        vec!["keys", "create", "6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"],
        vec!["keys", "revoke", "6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"],
    ] {
        let out = run_cli(&url, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("nothing-here.db"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Logs written to a file or a pipe carry no terminal colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .arg("migrate")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("kyc.db").display()),
        )
        .env("KYC_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("applied migrations"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

fn unsafe_kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `kyc-api health` (the container health check) exits 0 when the server
/// on KYC_BIND is ready and non-zero when nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_command_asks_the_running_server() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let bind = app.address.trim_start_matches("http://").to_string();
    let db_url = app.db.url.clone();
    let check = move |bind: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
            .arg("health")
            .env("KYC_BIND", bind)
            .env("DATABASE_URL", &db_url)
            .output()
            .unwrap()
    };
    let ok = tokio::task::spawn_blocking({
        let bind = bind.clone();
        let check = check.clone();
        move || check(bind)
    })
    .await
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let down = tokio::task::spawn_blocking(move || check(closed))
        .await
        .unwrap();
    assert!(!down.status.success());
}

/// `kyc-api --help` names every environment variable the server reads (a
/// new setting must be listed there to pass).
#[test]
fn help_lists_every_environment_variable() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut read = std::collections::BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split('"').skip(1).step_by(2) {
                    let is_name = (part.starts_with("KYC_") || part.starts_with("AWS_"))
                        && !part.starts_with("KYC_TEST_")
                        && part.chars().all(|c| c.is_ascii_uppercase() || c == '_');
                    if is_name {
                        read.insert(part.to_string());
                    }
                }
            }
        }
    }
    assert!(read.len() > 20, "{read:?}");
    for name in read {
        assert!(help.contains(&name), "--help does not list {name}");
    }
}

/// The request's log line names the error code of an error answer, its
/// latency to the microsecond, and the caller's app once its key is checked.
#[test]
fn request_log_lines_carry_the_error_code() {
    let db = TestDatabase::create(crate::helpers::Backend::Sqlite);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .env("DATABASE_URL", &db.url)
        .env("KYC_BIND", format!("127.0.0.1:{port}"))
        .env("KYC_LOG", "info")
        .env("KYC_LOG_FORMAT", "json")
        .env("KYC_BOOTSTRAP_API_KEY", crate::helpers::BOOTSTRAP_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let send = |headers: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.write_all(
            format!("GET /identities HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        Ok::<_, std::io::Error>(answer.lines().next().unwrap_or_default().to_string())
    };
    let status = loop {
        if let Ok(status) = send("") {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no server"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.contains(" 401 "), "{status}");
    let status = send(&format!("apiKey: {}\r\n", crate::helpers::BOOTSTRAP_KEY)).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    unsafe_kill(child.id());
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    let line = logs
        .lines()
        .find(|l| l.contains("request finished"))
        .unwrap_or_else(|| panic!("no request line in {logs}"));
    let event: Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["code"], "api_key_missing", "{line}");
    assert_eq!(event["status"], 401);
    assert!(event["latency_ms"].as_f64().is_some(), "{line}");
    let raw = line
        .split("\"latency_ms\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap();
    let decimals = raw.split('.').nth(1).map_or(0, str::len);
    assert!(decimals <= 3, "latency to the microsecond: {raw}");
    assert!(!line.contains("app_id"), "no app before a key: {line}");

    let app_id = run_cli(&db.url, &["apps", "list"]);
    let apps: Value = serde_json::from_slice(&app_id.stdout).unwrap();
    let app_id = apps[0]["appId"].as_str().unwrap();
    let line = logs
        .lines()
        .filter(|l| l.contains("request finished"))
        .nth(1)
        .unwrap_or_else(|| panic!("no second request line in {logs}"));
    assert!(line.contains(&format!("\"app_id\":\"{app_id}\"")), "{line}");
    assert!(!line.contains(crate::helpers::BOOTSTRAP_KEY), "{line}");
}
