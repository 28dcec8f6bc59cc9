//! Faults and hostile clients: every request is bounded in time, and faults
//! are answered as faults (503 with `Retry-After`), then recovered from
//! without a restart.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, TestApp, TestDatabase};

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
