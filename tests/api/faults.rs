//! Faults and hostile clients: every request is bounded in time, and faults
//! are answered as faults (503 with `Retry-After`), then recovered from
//! without a restart.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{app_behind_a_proxy, assert_error, json, Backend, TestApp, TestDatabase};
use crate::identities::create;

/// Sends `head` and a partial body, never the rest, and returns the first
/// line of the answer and how long it took.
async fn send_slow_body(app: &TestApp, head: String) -> (String, Duration) {
    let address = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{}").await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..read]).to_string();
    (
        text.lines().next().unwrap_or_default().to_string(),
        started.elapsed(),
    )
}

/// A body announced but never sent in full is cut off after
/// `KYC_BODY_TIMEOUT_MS` with 408, on JSON and on multipart routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let app = TestApp::spawn_with(
        TestDatabase::create(Backend::Sqlite),
        &[("KYC_BODY_TIMEOUT_MS", "500")],
    )
    .await;
    for (path, content_type) in [
        ("/identities", "application/json"),
        ("/files/upload", "multipart/form-data; boundary=x"),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\napiKey: {}\r\ncontent-type: {content_type}\r\ncontent-length: 100\r\n\r\n",
            app.api_key
        );
        let (status_line, took) = send_slow_body(&app, head).await;
        assert!(status_line.contains(" 408 "), "{path}: {status_line}");
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(3),
            "{path}: answered after {took:?}"
        );
    }
    // A body that arrives in time is served as usual.
    let res = app
        .post("/presign-url", &serde_json::json!({"filename": "a.png"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Asserts a 503 with `code` and a `Retry-After`, answered within `bound`.
async fn assert_fault_within(
    request: reqwest::RequestBuilder,
    code: &str,
    bound: Duration,
    what: &str,
) {
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let took = started.elapsed();
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = json(response).await;
    assert_error(status, &body, 503, code);
    assert!(retry_after.is_some(), "{what}: no Retry-After");
    assert!(took < bound, "{what}: answered after {took:?}");
}

async fn wait_until_ok(app: &TestApp, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = app.get(path).send().await.unwrap().status();
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not recover: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A network to PostgreSQL that keeps its sockets open and forwards nothing
/// (no error ever arrives) holds no request past the database deadline
/// (checkout + statement timeout + 1 s), and the service recovers by itself
/// when the network does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_postgres_bounds_every_request_and_recovers() {
    let Some((app, proxy)) = app_behind_a_proxy(&[
        ("KYC_DB_TIMEOUT_MS", "1000"),
        ("KYC_DB_STATEMENT_TIMEOUT_MS", "1000"),
    ])
    .await
    else {
        return;
    };
    let person = create(&app, &crate::identities::person("stall@example.com")).await;
    let one = format!("/identities/{}", person["id"].as_str().unwrap());

    proxy.stall();
    let bound = Duration::from_secs(5);
    for (request, what) in [
        (app.client.get(app.url("/ready")), "ready"),
        (app.get(&one), "get"),
        (app.get("/identities"), "list"),
        (
            app.post(
                "/identities",
                &crate::identities::person("during@example.com"),
            ),
            "create",
        ),
    ] {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(response.status(), 503, "{what}");
        assert!(response.headers().contains_key("retry-after"), "{what}");
        assert!(took < bound, "{what}: answered after {took:?}");
    }

    proxy.release();
    wait_until_ok(&app, &one).await;
    wait_until_ok(&app, "/ready").await;
}

/// A stream whose database goes away mid-way ends short, so the client can
/// tell (what arrived is not the JSON document a whole stream is), and once
/// the database is back the next stream is whole: the connections that
/// failed are not handed out again. On PostgreSQL a stream reads on two
/// connections (its parts on a spare sharing its snapshot), and either may
/// meet the cut first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_the_database_ends_short_and_the_next_is_whole() {
    let Some((app, proxy)) = app_behind_a_proxy(&[]).await else {
        return;
    };
    // Far more than the server reads ahead and the sockets hold (~14 MB).
    let rows = 20_000;
    crate::listing::insert_bulk(&app, rows);

    let mut response = app.get("/identities?all=true").send().await.unwrap();
    assert_eq!(response.status(), 200);
    // Cut once rows are flowing (~1,500 of them arrived), not before.
    let mut body = Vec::new();
    while body.len() < 1 << 20 {
        let bytes = response.chunk().await.unwrap().expect("more of the stream");
        body.extend_from_slice(&bytes);
    }
    proxy.cut();
    let ended = loop {
        let next = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("the cut stream ends");
        match next {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            Ok(None) => break "its end",
            Err(_) => break "an error",
        }
    };
    assert!(
        serde_json::from_slice::<serde_json::Value>(&body).is_err(),
        "a stream cut by the database must not look whole (it met {ended} after {} bytes)",
        body.len()
    );

    proxy.restore();
    wait_until_ok(&app, "/identities?page[size]=1").await;
    for _ in 0..2 {
        let (status, all) = json(app.get("/identities?all=true").send().await.unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(all["total"], rows);
        assert_eq!(all["data"].as_array().unwrap().len(), rows);
    }
}

/// A lock held by someone else costs a request `KYC_DB_LOCK_TIMEOUT_MS`,
/// then 503 `database_timeout`; without the lock the same request works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_costs_a_request_the_lock_timeout() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    if crate::helpers::postgres_admin_url().is_none() {
        return;
    }
    let db = TestDatabase::create(Backend::Postgres);
    let db_url = db.url.clone();
    let app = TestApp::spawn_with(db, &[("KYC_DB_LOCK_TIMEOUT_MS", "300")]).await;
    let person = create(&app, &crate::identities::person("locked@example.com")).await;
    let one = format!("/identities/{}", person["id"].as_str().unwrap());

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut conn = diesel::PgConnection::establish(&db_url).unwrap();
        conn.batch_execute("BEGIN; LOCK TABLE identities IN ACCESS EXCLUSIVE MODE;")
            .unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(30));
        conn.batch_execute("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    assert_fault_within(
        app.get(&one),
        "database_timeout",
        Duration::from_secs(2),
        "get",
    )
    .await;
    assert_fault_within(
        app.patch(&one, &serde_json::json!({"name": "Other"})),
        "database_timeout",
        Duration::from_secs(2),
        "patch",
    )
    .await;
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let (status, body) = json(app.get(&one).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["name"], person["name"],
        "the refused patch changed nothing"
    );
}

/// A small tmpfs this test mounts (root only); `None` where the machine
/// does not allow it, said on stderr.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("cannot mount a tmpfs here (needs root): this fault test did not run");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// SQLite on a full disk: writes answer 503 `insufficient_storage`, nothing
/// is half-written, and space freed is used again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_answers_503_and_recovers() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let db = TestDatabase::sqlite_at(&disk.path().join("kyc.db"));
    let files = format!("local:{}", disk.path().join("files").display());
    let app = TestApp::spawn_with(db, &[("KYC_STORAGE", files.as_str())]).await;
    create(&app, &crate::identities::person("first@example.com")).await;
    let (_, form) = json(
        app.post("/presign-url", &serde_json::json!({"filename": "scan.png"}))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Fill the disk to the last byte.
    let fill = |name: &str| {
        use std::io::Write;
        let mut file = std::fs::File::create(disk.path().join(name)).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.write_all(&[0u8; 512]);
        let _ = file.sync_all();
    };
    fill("filler");
    let mut refused = None;
    for i in 0..50 {
        let response = app
            .post(
                "/identities",
                &crate::identities::person(&format!("full{i}@example.com")),
            )
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            let retry_after = response.headers().contains_key("retry-after");
            refused = Some((json(response).await, retry_after));
            break;
        }
    }
    let ((status, body), retry_after) = refused.expect("a full disk refuses writes");
    assert_error(status, &body, 503, "insufficient_storage");
    assert!(retry_after);
    // A document upload to the full disk too, and it leaves no partial file.
    // SQLite gives space back now and then (a connection dropped after the
    // fault checkpoints its WAL), at most a few MiB here, so the disk is
    // filled again and the upload is larger than anything freed.
    fill("filler-2");
    let mut upload = reqwest::multipart::Form::new();
    for (name, value) in form["data"]["fields"].as_object().unwrap() {
        upload = upload.text(name.clone(), value.as_str().unwrap().to_string());
    }
    upload = upload.part(
        "file",
        reqwest::multipart::Part::bytes(vec![7u8; 8 * 1024 * 1024])
            .file_name("scan.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let response = app
        .client
        .post(form["data"]["url"].as_str().unwrap())
        .multipart(upload)
        .send()
        .await
        .unwrap();
    let upload_status = response.status();
    assert!(
        response.headers().contains_key("retry-after"),
        "{upload_status}: {:?}",
        response.headers()
    );
    let (status, body) = json(response).await;
    assert_error(status, &body, 503, "insufficient_storage");
    let mut stack = vec![disk.path().join("files")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            assert!(path.is_dir(), "left behind: {}", path.display());
            stack.push(path);
        }
    }

    for filler in ["filler", "filler-2"] {
        std::fs::remove_file(disk.path().join(filler)).unwrap();
    }
    let after = create(&app, &crate::identities::person("after@example.com")).await;
    let (_, list) = json(app.get("/identities?all=true").send().await.unwrap()).await;
    let emails: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"after@example.com"), "{emails:?}");
    assert_eq!(
        list["total"],
        emails.len(),
        "every listed identity is whole"
    );
    assert_eq!(after["email"], "after@example.com");
}

/// `KYC_RATE_LIMIT_PER_SECOND` per API key: a burst of the rate passes with
/// `RateLimit-*` headers, the next request gets 429 `rate_limited` with
/// `Retry-After`, other keys are not affected, and a client below the rate
/// is never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_rate_limit_get_429() {
    let app = TestApp::spawn_with(
        TestDatabase::create(Backend::Sqlite),
        &[("KYC_RATE_LIMIT_PER_SECOND", "5")],
    )
    .await;
    for left in (0..5).rev() {
        let response = app.get("/identities").send().await.unwrap();
        assert_eq!(response.status(), 200);
        let header = |name: &str| {
            response.headers()[name]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(header("ratelimit-limit"), 5);
        assert_eq!(header("ratelimit-remaining"), left);
        assert!(header("ratelimit-reset") <= 1);
    }
    let response = app.get("/identities").send().await.unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(response.headers()["ratelimit-remaining"], "0");
    assert!(response.headers().contains_key("x-request-id"));
    let (status, body) = json(response).await;
    assert_error(status, &body, 429, "rate_limited");
    assert_eq!(retry_after, 1);

    let (_, other_key) = app.create_other_app("neighbour");
    let other = app
        .client
        .get(app.url("/identities"))
        .header("apiKey", &other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another key has its own allowance");

    // Below the rate (4 per second against 5), nothing is refused.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..12 {
        assert_eq!(app.get("/identities").send().await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// SQLite whose files turn read-only under a running server (an operator's
/// `chmod`), then writable again. Connections opened meanwhile would be
/// opened read-only by SQLite and, pooled, fail every later write until a
/// restart; the pool refuses them (and drops any connection that met a
/// fault), so nothing is ever a 500 and every write after the files are
/// writable again succeeds. (Connections opened before keep their writable
/// descriptors: Unix checks permissions at open.) The server runs as
/// `nobody` (root ignores file permissions); skipped, with a message,
/// where the test cannot switch users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_recover_after_the_files_were_read_only() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    if !nix_is_root() {
        eprintln!("not root: cannot run the server as another user; this fault test did not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let key = crate::helpers::BOOTSTRAP_KEY;
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/kyc.db", dir.path().display()),
        )
        .env(
            "KYC_STORAGE",
            format!("local:{}/files", dir.path().display()),
        )
        .env("KYC_BIND", format!("127.0.0.1:{port}"))
        .env("KYC_BOOTSTRAP_API_KEY", key)
        .env("KYC_DB_POOL_SIZE", "4")
        .env("KYC_DB_TIMEOUT_MS", "2000")
        .env("KYC_LOG", "warn")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let create = |email: String| {
        client
            .post(format!("{base}/identities"))
            .header("apiKey", key)
            .json(&crate::identities::person(&email))
            .send()
    };
    assert_eq!(
        create("before@example.com".into()).await.unwrap().status(),
        200
    );

    let set_mode = |mode: u32| {
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
    };
    set_mode(0o444);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    // Concurrent reads make the pool open connections while the files are
    // read-only (SQLite then opens them read-only); writes then meet them.
    let churn = || async {
        let reads = futures_util::future::join_all((0..16).map(|_| {
            client
                .get(format!("{base}/identities"))
                .header("apiKey", key)
                .send()
        }))
        .await;
        assert!(reads
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status() == 200)));
    };
    let mut during = Vec::new();
    for round in 0..3 {
        churn().await;
        for i in 0..4 {
            let email = format!("during{round}-{i}@example.com");
            during.push(create(email).await.unwrap().status().as_u16());
        }
    }
    assert!(
        during.iter().all(|s| *s == 200 || *s == 503),
        "faults are 503, never 500: {during:?}"
    );

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    set_mode(0o644);
    let mut after = Vec::new();
    for round in 0..4 {
        churn().await;
        for i in 0..5 {
            let email = format!("after{round}-{i}@example.com");
            after.push(create(email).await.unwrap().status().as_u16());
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        after.iter().all(|s| *s == 200),
        "writes recovered: {after:?}"
    );
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `/ready` says why a replica cannot serve: a schema behind the binary is
/// 503 `migrations_pending`, a storage directory that is gone 503
/// `storage_unavailable`; both recover once fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_pending_migrations_and_missing_storage() {
    use diesel_migrations::MigrationHarness;
    use kyc_api::db::{ConnectionManager, DatabaseUrl, SQLITE_MIGRATIONS};

    let files = tempfile::tempdir().unwrap();
    let storage = format!("local:{}", files.path().join("docs").display());
    let db = TestDatabase::create(Backend::Sqlite);
    let db_url = db.url.clone();
    let app = TestApp::spawn_with(db, &[("KYC_STORAGE", storage.as_str())]).await;
    let ready = || async { json(app.client.get(app.url("/ready")).send().await.unwrap()).await };

    let mut conn = ConnectionManager::new(DatabaseUrl::parse(&db_url).unwrap())
        .connect()
        .unwrap();
    conn.revert_last_migration(SQLITE_MIGRATIONS).unwrap();
    let (status, body) = ready().await;
    assert_error(status, &body, 503, "migrations_pending");
    kyc_api::db::run_migrations(&mut conn).unwrap();
    assert_eq!(ready().await.0, 200);

    std::fs::remove_dir_all(files.path().join("docs")).unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await; // past the cached success
    let (status, body) = ready().await;
    assert_error(status, &body, 503, "storage_unavailable");
    std::fs::create_dir_all(files.path().join("docs")).unwrap();
    assert_eq!(ready().await.0, 200);
}
