//! The test harness: every test gets a real server on port 0 over a fresh
//! database of its own, on SQLite always and on PostgreSQL when
//! `KYC_TEST_POSTGRES_URL` is set (CI always sets it).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use kyc_api::config::Settings;
use kyc_api::services::write::{Write, WriteObserver};
use kyc_api::startup::Application;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(app: TestApp)` once per backend, as tests
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await;
                    super::$name(app).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(app) = $crate::helpers::TestApp::spawn_postgres().await else { return };
                    super::$name(app).await;
                }
            }
        )*
    };
}

/// Same as `backend_tests!` for tests that need only a database, no server:
/// `async fn name(db: TestDatabase)`.
#[macro_export]
macro_rules! database_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::helpers::TestDatabase::create($crate::helpers::Backend::Sqlite);
                    super::$name(db).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(url) = $crate::helpers::postgres_admin_url() else { return };
                    let _ = url;
                    let db = $crate::helpers::TestDatabase::create($crate::helpers::Backend::Postgres);
                    super::$name(db).await;
                }
            }
        )*
    };
}

pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("KYC_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "KYC_TEST_POSTGRES_URL is not set: the PostgreSQL variant of this test did not run"
            );
            None
        }
    }
}

fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            kyc_api::telemetry::init("info", kyc_api::config::LogFormat::Text);
        }
    });
}

/// A database that exists for one test and is dropped afterwards.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    /// For PostgreSQL: the server address part and the database name, so a
    /// test can reach the same database through a proxy.
    pub pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("kyc-test.db");
                TestDatabase {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url().expect("KYC_TEST_POSTGRES_URL");
                let name = format!("kyc_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(&admin)
                    .unwrap_or_else(|e| panic!("cannot reach KYC_TEST_POSTGRES_URL: {e}"));
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create database");
                TestDatabase {
                    backend,
                    url: replace_database(&admin, &name),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// A SQLite database at `path` (a directory the test manages itself).
    pub fn sqlite_at(path: &std::path::Path) -> Self {
        TestDatabase {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}", path.display()),
            pg_name: None,
            _dir: None,
        }
    }

    /// The same database under a second name that does not own it (for a
    /// second server on it); the original still drops it.
    pub fn alias(&self) -> Self {
        TestDatabase {
            backend: self.backend,
            url: self.url.clone(),
            pg_name: None,
            _dir: None,
        }
    }

    /// Runs raw SQL on this database (to set up states the API cannot reach
    /// yet, or to inspect what it stored).
    pub fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = diesel::SqliteConnection::establish(path).expect("sqlite");
                conn.batch_execute(&format!("PRAGMA busy_timeout = 10000; {sql}"))
                    .expect("sql");
            }
            Backend::Postgres => {
                let mut conn = diesel::PgConnection::establish(&self.url).expect("postgres");
                conn.batch_execute(sql).expect("sql");
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let (Some(name), Some(admin)) = (&self.pg_name, postgres_admin_url()) {
            if let Ok(mut conn) = diesel::PgConnection::establish(&admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// `postgres://user@host:port/olddb?x` → `postgres://user@host:port/newdb?x`
pub fn replace_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("KYC_TEST_POSTGRES_URL must be a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// One pass through the server's write path, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedWrite {
    /// `Operation::name`, e.g. `identity.create`.
    pub operation: &'static str,
    /// `Change::name` of every change, in order.
    pub changes: Vec<&'static str>,
}

/// Records every write of the server it is installed in.
#[derive(Default)]
pub struct WriteRecorder(Mutex<Vec<RecordedWrite>>);

impl WriteObserver for WriteRecorder {
    fn before_commit(
        &self,
        _conn: &mut kyc_api::db::WriteConn<'_>,
        write: &Write<'_>,
    ) -> Result<(), kyc_api::error::ApiError> {
        // A key's hourly "last used" stamp, the webhook dispatcher and the
        // audit linker write in the background, not as part of a request,
        // and an Idempotency-Key's claim is bookkeeping beside a request's
        // change; tests of what a request changed leave them out.
        use kyc_api::services::write::Operation;
        if matches!(
            write.operation,
            Operation::ApiKeyUse
                | Operation::WebhookDispatch
                | Operation::IdempotencyClaim
                | Operation::AuditLink
        ) {
            return Ok(());
        }
        self.0.lock().unwrap().push(RecordedWrite {
            operation: write.operation.name(),
            changes: write.changes.iter().map(|c| c.name()).collect(),
        });
        Ok(())
    }
}

impl WriteRecorder {
    /// Everything recorded so far, emptying the record.
    pub fn take(&self) -> Vec<RecordedWrite> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

pub struct TestApp {
    /// Every write the server made (before commit), in order.
    pub writes: Arc<WriteRecorder>,
    pub address: String,
    pub api_key: String,
    pub app_id: String,
    pub db: TestDatabase,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    /// Documents go to S3 (else to a local directory).
    s3: bool,
    /// `KYC_STORAGE` of this server.
    storage: String,
    /// The local storage directory of this server.
    _files: tempfile::TempDir,
}

pub const BOOTSTRAP_KEY: &str = "kyc_test_bootstrap_key_0123456789abcdef";

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(TestDatabase::create(backend), &[]).await
    }

    pub async fn spawn_postgres() -> Option<TestApp> {
        postgres_admin_url()?;
        Some(Self::spawn(Backend::Postgres).await)
    }

    /// Starts a server on `db` with extra environment variables.
    pub async fn spawn_with(db: TestDatabase, env: &[(&str, &str)]) -> TestApp {
        let url = db.url.clone();
        Self::spawn_on_url(db, &url, env).await
    }

    /// Starts a server whose DATABASE_URL is `url` (which may point at `db`
    /// through a proxy).
    pub async fn spawn_on_url(db: TestDatabase, url: &str, env: &[(&str, &str)]) -> TestApp {
        init_logging();
        let files = tempfile::tempdir().expect("temp dir");
        let mut vars: Vec<(String, String)> = vec![
            (
                "KYC_STORAGE".into(),
                format!("local:{}", files.path().display()),
            ),
            ("DATABASE_URL".into(), url.to_string()),
            ("KYC_BIND".into(), "127.0.0.1:0".into()),
            ("KYC_BOOTSTRAP_API_KEY".into(), BOOTSTRAP_KEY.into()),
            ("KYC_WORKERS".into(), "2".into()),
            ("KYC_DB_POOL_SIZE".into(), "4".into()),
            ("KYC_DB_TIMEOUT_MS".into(), "2000".into()),
        ];
        for (k, v) in env {
            vars.retain(|(name, _)| name != k);
            vars.push((k.to_string(), v.to_string()));
        }
        let storage = vars
            .iter()
            .find(|(k, _)| k == "KYC_STORAGE")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let s3 = storage.starts_with("s3://");
        let settings = Settings::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .expect("test settings");
        let writes = Arc::new(WriteRecorder::default());
        let app = Application::build_with(settings, vec![writes.clone()])
            .await
            .expect("server starts");
        let port = app.port();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let me: Value = client
            .get(format!("{address}/health"))
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("health json");
        assert_eq!(me["status"], "ok");
        let app_id = default_app_id(&db);
        TestApp {
            writes,
            address,
            api_key: BOOTSTRAP_KEY.to_string(),
            app_id,
            db,
            client,
            handle,
            s3,
            storage,
            _files: files,
        }
    }

    pub fn uses_s3(&self) -> bool {
        self.s3
    }

    /// Every byte of every file in the local storage directory.
    pub fn local_storage_bytes(&self) -> Vec<u8> {
        walk(self._files.path())
            .into_iter()
            .flat_map(|path| std::fs::read(path).unwrap_or_default())
            .collect()
    }

    /// The keys of every object in this server's document storage (the
    /// local directory's files, or the S3 bucket's objects).
    pub async fn stored_objects(&self) -> Vec<String> {
        if let Some(rest) = self.storage.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap();
            let (endpoint, access, secret) = test_s3().expect("an S3 test server");
            let listed = s3_client(&endpoint, &access, &secret)
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .expect("list objects");
            return listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect();
        }
        let root = self._files.path();
        walk(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(path))
            .header("apiKey", &self.api_key)
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("apiKey", &self.api_key)
            .json(body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .patch(self.url(path))
            .header("apiKey", &self.api_key)
            .json(body)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .delete(self.url(path))
            .header("apiKey", &self.api_key)
    }

    /// Creates another app on the same database and returns its API key.
    pub fn create_other_app(&self, name: &str) -> (String, String) {
        let out = run_cli(&self.db.url, &["apps", "create", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("apps create prints JSON");
        (
            v["appId"].as_str().unwrap().to_string(),
            v["apiKey"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stops accepting at once; the database is dropped (with FORCE) after.
        drop(self.handle.stop(false));
    }
}

fn default_app_id(db: &TestDatabase) -> String {
    let out = run_cli(&db.url, &["apps", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let apps: Value = serde_json::from_slice(&out.stdout).unwrap();
    apps.as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "default")
        .expect("default app")["appId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs the real `kyc-api` binary against `database_url`.
pub fn run_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("KYC_LOG", "warn")
        .env_remove("KYC_BOOTSTRAP_API_KEY")
        .output()
        .expect("run kyc-api")
}

/// Everything the database holds, as an attacker with a copy would see
/// it: the SQLite file and its write-ahead log, or a `pg_dump`.
pub fn database_bytes(db: &TestDatabase) -> Vec<u8> {
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://");
            let mut bytes = std::fs::read(path).expect("read the database file");
            for suffix in ["-wal", "-journal"] {
                if let Ok(more) = std::fs::read(format!("{path}{suffix}")) {
                    bytes.extend(more);
                }
            }
            bytes
        }
        Backend::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .arg(&db.url)
                .output()
                .expect("run pg_dump");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

/// Runs a query on the test database and loads its rows.
fn load<T>(db: &TestDatabase, sql: &str) -> Vec<T>
where
    T: diesel::QueryableByName<diesel::pg::Pg>
        + diesel::QueryableByName<diesel::sqlite::Sqlite>
        + 'static,
{
    use diesel::RunQueryDsl;
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://");
            let mut conn = diesel::SqliteConnection::establish(path).expect("sqlite");
            diesel::sql_query(sql).load(&mut conn).expect("query")
        }
        Backend::Postgres => {
            let mut conn = diesel::PgConnection::establish(&db.url).expect("postgres");
            diesel::sql_query(sql).load(&mut conn).expect("query")
        }
    }
}

/// Runs a query returning one `count` column on the test database.
pub fn query_count(db: &TestDatabase, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    load::<Count>(db, sql)[0].count
}

/// Runs a query returning one text column `value` on the test database.
pub fn query_text(db: &TestDatabase, sql: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    load::<Text>(db, sql).remove(0).value
}

/// Reads a response as (status, JSON body); an empty body reads as Null.
/// Every error answer read here must carry a code that `openapi.yaml` lists
/// for its route and status: the whole suite checks the contract's error
/// enums against what the server really answers.
pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let path = response.url().path().to_string();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)))
    };
    if status >= 400 {
        if let Some(code) = body["code"].as_str() {
            crate::openapi::assert_documented_error(&path, status, code);
        }
    }
    (status, body)
}

/// Asserts the shared error shape and returns the body.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "body: {body}");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].is_string(), "body: {body}");
    assert!(body["details"].is_array(), "body: {body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        3,
        "error bodies have exactly code, message, details: {body}"
    );
}

/// The fields named in an error's `details`.
pub fn detail_fields(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect()
}

/// A TCP proxy in front of the shared PostgreSQL that can drop every
/// connection and refuse new ones (`cut`), or keep every socket open and
/// forward nothing (`stall`, a network that hangs), then come back, without
/// touching the server other tests share.
pub struct TcpProxy {
    pub port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    stalled: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl TcpProxy {
    pub async fn start(upstream: &'static str) -> TcpProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = std::sync::Arc::new(tx);
        let (stall_tx, _) = tokio::sync::watch::channel(false);
        let stalled = std::sync::Arc::new(stall_tx);
        let (open2, generation2, stalled2) = (open.clone(), generation.clone(), stalled.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !open2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = generation2.subscribe();
                let (up, down) = (stalled2.subscribe(), stalled2.subscribe());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        _ = pump(client_read, server_write, up) => {}
                        _ = pump(server_read, client_write, down) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpProxy {
            port,
            open,
            generation,
            stalled,
        }
    }

    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Bytes are read and held, never forwarded, until `release`.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    pub fn release(&self) {
        self.stalled.send_replace(false);
    }
}

/// Copies `from` to `to`, holding what it read while `stalled` is true.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *stalled.borrow_and_update() {
            if stalled.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A server on a fresh PostgreSQL database that it reaches through a
/// `TcpProxy` the test can cut or stall; `None` without PostgreSQL.
pub async fn app_behind_a_proxy(env: &[(&str, &str)]) -> Option<(TestApp, TcpProxy)> {
    postgres_admin_url()?;
    let db = TestDatabase::create(Backend::Postgres);
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let url = through(&proxy, &db);
    Some((TestApp::spawn_on_url(db, &url, env).await, proxy))
}

/// The URL of `db` reached through `proxy`.
pub fn through(proxy: &TcpProxy, db: &TestDatabase) -> String {
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    url.to_string()
}

/// A real `kyc-api serve` process (its own metrics recorder, its own pool),
/// for tests of several replicas; killed when dropped.
pub struct ServerProcess {
    pub address: String,
    child: std::process::Child,
}

impl ServerProcess {
    /// Starts the binary with `env` on a free loopback port and waits until
    /// `/ready` answers 200 (panicking with its stderr if it exits).
    pub async fn start(env: &[(&str, &str)]) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kyc-api"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KYC_BIND", format!("127.0.0.1:{port}"))
            .env("KYC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        loop {
            let ready = client
                .get(format!("{address}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return ServerProcess { address, child };
            }
            if let Some(status) = child.try_wait().unwrap() {
                use std::io::Read;
                let mut stderr = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                panic!("the server exited ({status}): {stderr}");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the server is not ready after 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the process at once (SIGKILL: nothing it would do on a
    /// graceful stop may be needed by the others).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test S3 server's settings (endpoint, access key, secret key), or
/// None with a note when CI's server is not configured.
pub fn test_s3() -> Option<(String, String, String)> {
    let Ok(endpoint) = std::env::var("KYC_TEST_S3_ENDPOINT") else {
        eprintln!("KYC_TEST_S3_ENDPOINT is not set: the S3 variant of this test did not run");
        return None;
    };
    let access = std::env::var("KYC_TEST_S3_ACCESS_KEY").expect("KYC_TEST_S3_ACCESS_KEY");
    let secret = std::env::var("KYC_TEST_S3_SECRET_KEY").expect("KYC_TEST_S3_SECRET_KEY");
    Some((endpoint, access, secret))
}

/// A fresh bucket on the test S3 server.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn s3_client(endpoint: &str, access: &str, secret: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            access, secret, None, None, "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub async fn create_test_bucket(endpoint: &str, access: &str, secret: &str) -> String {
    let bucket = format!("kyc-test-{}", uuid::Uuid::new_v4().simple());
    s3_client(endpoint, access, secret)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    bucket
}

/// The value of `kyc_http_requests_total` for the series whose labels
/// include every one of `labels` (`route="/x"`), from a /metrics text.
pub fn request_count(metrics: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("kyc_http_requests_total{") && labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no request counter with {labels:?} in:\n{metrics}"))
}

/// The columns of a directly inserted identity row, in the order of the
/// tests' VALUES (named, so that a column added later does not break them).
pub const IDENTITY_COLUMNS: &str = "id, app_id, identity_type, name, email, birthday, gender, \
    address_street, address_city, address_state, address_postal_code, address_country, \
    phone_number, phone_sms, tax_country, tax_id_number, tax_state, tax_formation_region, \
    identity_owner, blocked, identity_confirmed, risk_rating, created_at, updated_at, deleted_at, \
    email_domain, email_local_reversed, email_normalized, ref_id, wrapped_key, erased_at";

/// A person as a directly inserted identity row: `id`, `app_id`, `name`
/// and `email` as given, created and updated at those times (`YYYY-MM-DD
/// HH:MM:SS[.ffffff]`), the email's search keys as the server writes them,
/// the rest fixed.
pub struct DirectIdentity<'a> {
    pub id: &'a str,
    pub app_id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub created_at: &'a str,
    pub updated_at: &'a str,
}

impl DirectIdentity<'_> {
    /// Its `VALUES` tuple, in `IDENTITY_COLUMNS`' order.
    pub fn values(&self) -> String {
        let keys = kyc_api::domain::email_search::EmailKeys::of(self.email);
        format!(
            "('{id}', '{app}', 'person', '{name}', '{email}', '1990-01-01', 'Male', 'S', 'C', NULL, 'P', 'PT', \
             '910000000', FALSE, 'PT', '1', NULL, NULL, NULL, FALSE, FALSE, NULL, '{created}', '{updated}', NULL, \
             '{domain}', '{local}', '{normalized}', NULL, NULL, NULL)",
            id = self.id,
            app = self.app_id,
            name = self.name,
            email = self.email,
            created = self.created_at,
            updated = self.updated_at,
            domain = keys.domain,
            local = keys.local_reversed,
            normalized = kyc_api::domain::identity::Email::normalize(self.email),
        )
    }
}

/// Inserts these `VALUES` tuples (`DirectIdentity::values`) into
/// `identities`, 500 to a statement.
pub fn insert_identity_rows(db: &TestDatabase, rows: &[String]) {
    for chunk in rows.chunks(500) {
        db.execute(&format!(
            "INSERT INTO identities ({IDENTITY_COLUMNS}) VALUES {}",
            chunk.join(",")
        ));
    }
}
