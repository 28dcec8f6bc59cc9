//! Two replicas (real processes) on one PostgreSQL database and one S3
//! bucket: what one does, the other sees at once; nothing either needs
//! lives in the other's memory.

use serde_json::{json, Value};

use crate::documents::{post_form, with_documents, JPEG};
use crate::helpers::{
    create_test_bucket, json, run_cli, test_s3, Backend, ServerProcess, TestDatabase, BOOTSTRAP_KEY,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_everything_but_memory() {
    if crate::helpers::postgres_admin_url().is_none() {
        eprintln!("KYC_TEST_POSTGRES_URL is not set: replicas need PostgreSQL");
        return;
    }
    let Some((endpoint, access, secret)) = test_s3() else {
        return;
    };
    let db = TestDatabase::create(Backend::Postgres);
    let bucket = create_test_bucket(&endpoint, &access, &secret).await;
    let storage = format!("s3://{bucket}/replicas");
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("KYC_BOOTSTRAP_API_KEY", BOOTSTRAP_KEY),
        ("KYC_STORAGE", storage.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", access.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("KYC_S3_FORCE_PATH_STYLE", "true"),
    ];
    let (a, b) = tokio::join!(ServerProcess::start(&env), ServerProcess::start(&env));
    let client = reqwest::Client::new();
    let send = |server: &ServerProcess, method: reqwest::Method, path: &str, key: &str| {
        client
            .request(method, server.url(path))
            .header("apiKey", key)
    };

    // Each replica's /metrics counts its own requests, and only those.
    for (server, times) in [(&a, 3), (&b, 1)] {
        for _ in 0..times {
            let res = client
                .get(server.url("/openapi.yaml"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    }
    for (server, times) in [(&a, 3.0), (&b, 1.0)] {
        let text = client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let count = crate::helpers::request_count(&text, &[r#"route="/openapi.yaml""#]);
        assert_eq!(count, times, "{}", server.address);
    }

    // An identity created through A reads the same through B.
    let person = crate::identities::person("replica@example.com");
    let (status, created) = json(
        send(&a, reqwest::Method::POST, "/identities", BOOTSTRAP_KEY)
            .json(&person)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    let (status, read) = json(
        send(
            &b,
            reqwest::Method::GET,
            &format!("/identities/{id}"),
            BOOTSTRAP_KEY,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["data"], created["data"]);

    // A key revoked with the CLI is refused by both at once.
    let apps: Value = serde_json::from_slice(&run_cli(&db.url, &["apps", "list"]).stdout).unwrap();
    let app_id = apps[0]["appId"].as_str().unwrap();
    let out = run_cli(&db.url, &["keys", "create", app_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (key_id, secret_key) = (
        key["keyId"].as_str().unwrap(),
        key["apiKey"].as_str().unwrap(),
    );
    for server in [&a, &b] {
        let res = send(server, reqwest::Method::GET, "/identities", secret_key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let out = run_cli(&db.url, &["keys", "revoke", key_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for server in [&a, &b] {
        let (status, body) = json(
            send(server, reqwest::Method::GET, "/identities", secret_key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{}: {body}", server.address);
        assert_eq!(body["code"], "api_key_invalid");
    }

    // An upload form issued by A is accepted by B (the upload goes to the
    // bucket; B attaches it), and the document downloads through B once A
    // is gone.
    let (status, form) = json(
        send(&a, reqwest::Method::POST, "/presign-url", BOOTSTRAP_KEY)
            .json(&json!({"filename": "passport.jpg"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{form}");
    let res = post_form(&client, &form["data"], "image/jpeg", JPEG).await;
    assert!(res.status().is_success(), "{}", res.status());
    let document_url = form["data"]["documentUrl"].as_str().unwrap();
    let (status, with_docs) = json(
        send(&b, reqwest::Method::POST, "/identities", BOOTSTRAP_KEY)
            .json(&with_documents("docs@example.com", document_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{with_docs}");
    let identity = with_docs["data"]["id"].as_str().unwrap();
    let document = with_docs["data"]["documents"][0]["id"].as_str().unwrap();
    a.kill();
    let (status, signed) = json(
        send(
            &b,
            reqwest::Method::GET,
            &format!("/identities/{identity}/documents/{document}/presign-url"),
            BOOTSTRAP_KEY,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{signed}");
    let res = client
        .get(signed["data"]["presignUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), JPEG);
}
