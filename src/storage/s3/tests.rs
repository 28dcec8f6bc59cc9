//! The S3 backend: form and URL shapes, and against a real S3-compatible
//! server (s3s-fs) when `KYC_TEST_S3_*` is set.

use super::*;
use chrono::TimeZone;
use uuid::Uuid;

fn settings() -> S3Settings {
    S3Settings {
        bucket: "kyc-docs".into(),
        prefix: None,
        region: Some("eu-west-1".into()),
        endpoint_url: None,
        static_credentials: Some(StaticCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }),
        force_path_style: false,
        server_side_encryption: None,
    }
}

fn key() -> ObjectKey {
    ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "scan.png")
        .unwrap()
        .0
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[test]
fn server_side_encryption_is_asked_for_in_every_form() {
    for (vars, expected) in [
        (
            vec![("KYC_S3_SSE", "AES256")],
            Some(ServerSideEncryption::Aes256),
        ),
        (
            vec![
                ("KYC_S3_SSE", "aws:kms"),
                ("KYC_S3_KMS_KEY_ID", "alias/kyc"),
            ],
            Some(ServerSideEncryption::Kms {
                key_id: Some("alias/kyc".into()),
            }),
        ),
        (
            vec![("KYC_S3_SSE", "aws:kms")],
            Some(ServerSideEncryption::Kms { key_id: None }),
        ),
        (vec![], None),
    ] {
        let settings = S3Settings::from_lookup("b", None, env(&vars)).unwrap();
        assert_eq!(settings.server_side_encryption, expected, "{vars:?}");
    }
    for (vars, words) in [
        (vec![("KYC_S3_SSE", "aes256")], "AES256 or aws:kms"),
        (vec![("KYC_S3_KMS_KEY_ID", "k")], "needs KYC_S3_SSE=aws:kms"),
        (
            vec![("KYC_S3_SSE", "AES256"), ("KYC_S3_KMS_KEY_ID", "k")],
            "needs KYC_S3_SSE=aws:kms",
        ),
    ] {
        let message = S3Settings::from_lookup("b", None, env(&vars)).unwrap_err();
        assert!(message.contains(words), "{message}");
    }

    let kms = ServerSideEncryption::Kms {
        key_id: Some("alias/kyc".into()),
    };
    let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let form = PostForm {
        bucket: "b",
        key: "apps/a/documents/x.png",
        content_type: "image/png",
        max_bytes: 10,
        access_key_id: "AKID",
        region: "eu-west-1",
        session_token: None,
        server_side_encryption: Some(&kms),
        now,
        expires_at: now + chrono::Duration::minutes(5),
    };
    let (policy, fields) = form.policy();
    assert_eq!(fields["x-amz-server-side-encryption"], "aws:kms");
    assert_eq!(
        fields["x-amz-server-side-encryption-aws-kms-key-id"],
        "alias/kyc"
    );
    let conditions = policy["conditions"].as_array().unwrap();
    assert!(conditions.contains(&json!({"x-amz-server-side-encryption": "aws:kms"})));
    assert!(
        conditions.contains(&json!({"x-amz-server-side-encryption-aws-kms-key-id": "alias/kyc"}))
    );
}

#[test]
fn settings_from_env() {
    let full = [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AK"),
        ("AWS_SECRET_ACCESS_KEY", "SK"),
        ("AWS_SESSION_TOKEN", "TOK"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ("KYC_S3_FORCE_PATH_STYLE", "TRUE"),
    ];
    let s = S3Settings::from_lookup("b", Some("p".into()), env(&full)).unwrap();
    assert_eq!(
        (s.bucket.as_str(), s.prefix.as_deref(), s.region.as_deref()),
        ("b", Some("p"), Some("eu-west-1"))
    );
    let keys = s.static_credentials.clone().unwrap();
    assert_eq!(
        (keys.access_key_id.as_str(), keys.secret_access_key.as_str()),
        ("AK", "SK")
    );
    assert_eq!(keys.session_token.as_deref(), Some("TOK"));
    assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(s.force_path_style);
    let debug = format!("{s:?}");
    assert!(!debug.contains("SK") && !debug.contains("TOK"), "{debug}");

    let minimal = [
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AK"),
        ("AWS_SECRET_ACCESS_KEY", "SK"),
        ("AWS_ENDPOINT_URL", ""),
    ];
    let s = S3Settings::from_lookup("b", None, env(&minimal)).unwrap();
    assert_eq!(s.region.as_deref(), Some("us-east-1"));
    assert_eq!(s.endpoint_url, None);
    assert!(!s.force_path_style);
    assert_eq!(s.static_credentials.unwrap().session_token, None);

    let missing = |drop: &str| {
        let vars: Vec<(&str, &str)> = full.iter().copied().filter(|(k, _)| *k != drop).collect();
        S3Settings::from_lookup("b", None, env(&vars)).unwrap_err()
    };
    let no_keys: Vec<(&str, &str)> = full
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .collect();
    let chain = S3Settings::from_lookup("b", None, env(&no_keys)).unwrap();
    assert!(
        chain.static_credentials.is_none(),
        "no keys: the default chain"
    );
    let no_region: Vec<(&str, &str)> = full
        .iter()
        .copied()
        .filter(|(k, _)| *k != "AWS_REGION")
        .collect();
    let chain = S3Settings::from_lookup("b", None, env(&no_region)).unwrap();
    assert_eq!(chain.region, None, "no region: the region chain");
    assert!(missing("AWS_ACCESS_KEY_ID").starts_with("AWS_SECRET_ACCESS_KEY is set but"));
    assert!(missing("AWS_SECRET_ACCESS_KEY").starts_with("AWS_ACCESS_KEY_ID is set but"));
    let mut bad = full.to_vec();
    bad[5] = ("KYC_S3_FORCE_PATH_STYLE", "yes");
    let err = S3Settings::from_lookup("b", None, env(&bad)).unwrap_err();
    assert!(
        err.contains("KYC_S3_FORCE_PATH_STYLE must be true or false"),
        "{err}"
    );
}

#[test]
fn constructor_checks_settings() {
    let bad: [fn(&mut S3Settings); 6] = [
        |s| s.bucket = "Bad_Bucket".into(),
        |s| s.prefix = Some("../x".into()),
        |s| s.region = Some("EU WEST".into()),
        |s| s.static_credentials.as_mut().unwrap().secret_access_key = String::new(),
        |s| s.endpoint_url = Some("localhost:9000".into()),
        |s| s.endpoint_url = Some("http://h:9000/?x=1".into()),
    ];
    for edit in bad {
        let mut s = settings();
        edit(&mut s);
        assert!(matches!(S3Store::new(s), Err(StorageError::Config(_))));
    }
}

#[test]
fn urls_virtual_hosted_on_aws() {
    let store = S3Store::new(settings()).unwrap();
    let k = key();
    let url = store.object_url(&k);
    assert_eq!(
        url,
        format!("https://kyc-docs.s3.eu-west-1.amazonaws.com/{k}")
    );
    assert_eq!(
        store.post_url(),
        "https://kyc-docs.s3.eu-west-1.amazonaws.com/"
    );
    for ours in [
        url.clone(),
        format!("https://kyc-docs.s3.amazonaws.com/{k}"),
        format!("https://KYC-DOCS.S3.amazonaws.com/{k}"),
        format!("https://kyc-docs.s3-eu-west-1.amazonaws.com/{k}"),
        format!("https://s3.eu-west-1.amazonaws.com/kyc-docs/{k}"),
        format!("https://s3.amazonaws.com/kyc-docs/{k}"),
        format!("{url}?X-Amz-Signature=abc"),
    ] {
        assert_eq!(
            store.parse_object_url(&ours),
            ObjectUrlMatch::Ours(k.clone()),
            "{ours}"
        );
    }
    for external in [
        format!("https://other.s3.amazonaws.com/{k}"),
        format!("https://kyc-docs-2.s3.amazonaws.com/{k}"),
        format!("https://s3.amazonaws.com/other/{k}"),
        format!("https://s3.amazonaws.com/kyc-docs-2/{k}"),
        format!("https://kyc-docs.s3.evil.example/{k}"),
        format!("https://evil.example/kyc-docs/{k}"),
        "ftp://kyc-docs.s3.amazonaws.com/x".into(),
        "data:text/plain,hi".into(),
        "nonsense".into(),
    ] {
        assert_eq!(
            store.parse_object_url(&external),
            ObjectUrlMatch::External,
            "{external}"
        );
    }
    let app = k.app_id();
    for invalid in [
        "https://kyc-docs.s3.amazonaws.com/".to_owned(),
        "https://kyc-docs.s3.amazonaws.com/passport.png".to_owned(),
        format!("https://kyc-docs.s3.amazonaws.com/apps/{app}/documents/x.png"),
        format!("https://kyc-docs.s3.amazonaws.com/apps/{app}/documents/../../{k}"),
        format!("https://kyc-docs.s3.amazonaws.com/x/%2e%2e/{k}"),
        format!("https://kyc-docs.s3.amazonaws.com/{k}/x"),
        format!("https://kyc-docs.s3.amazonaws.com//{k}"),
        format!("https://s3.amazonaws.com/kyc-docs/x/../{k}"),
        "https://s3.amazonaws.com/kyc-docs".to_owned(),
    ] {
        assert_eq!(
            store.parse_object_url(&invalid),
            ObjectUrlMatch::Invalid,
            "{invalid}"
        );
    }
}

#[test]
fn urls_path_style_with_endpoint_and_prefix() {
    let mut s = settings();
    s.endpoint_url = Some("http://127.0.0.1:9000/".into());
    s.prefix = Some("prod/v1".into());
    let store = S3Store::new(s).unwrap();
    let k = key();
    let url = store.object_url(&k);
    assert_eq!(url, format!("http://127.0.0.1:9000/kyc-docs/prod/v1/{k}"));
    assert_eq!(store.post_url(), "http://127.0.0.1:9000/kyc-docs");
    assert_eq!(
        store.parse_object_url(&url),
        ObjectUrlMatch::Ours(k.clone())
    );
    for external in [
        format!("http://127.0.0.1:9001/kyc-docs/prod/v1/{k}"),
        format!("http://127.0.0.1:9000/other/prod/v1/{k}"),
        format!("https://kyc-docs.s3.eu-west-1.amazonaws.com/prod/v1/{k}"),
    ] {
        assert_eq!(
            store.parse_object_url(&external),
            ObjectUrlMatch::External,
            "{external}"
        );
    }
    for invalid in [
        format!("http://127.0.0.1:9000/kyc-docs/{k}"),
        format!("http://127.0.0.1:9000/kyc-docs/prod/{k}"),
        format!("http://127.0.0.1:9000/kyc-docs/prod/v1x/{k}"),
        format!("http://127.0.0.1:9000/kyc-docs/prod/v1/../v1/{k}"),
    ] {
        assert_eq!(
            store.parse_object_url(&invalid),
            ObjectUrlMatch::Invalid,
            "{invalid}"
        );
    }

    // Virtual-hosted URLs on a named custom endpoint are recognized too.
    let mut s = settings();
    s.endpoint_url = Some("https://objects.example.com".into());
    let store = S3Store::new(s).unwrap();
    assert_eq!(
        store.object_url(&k),
        format!("https://objects.example.com/kyc-docs/{k}")
    );
    assert_eq!(
        store.parse_object_url(&format!("https://kyc-docs.objects.example.com/{k}")),
        ObjectUrlMatch::Ours(k.clone())
    );
    assert_eq!(
        store.parse_object_url(&format!("https://other.objects.example.com/{k}")),
        ObjectUrlMatch::External
    );

    let mut s = settings();
    s.force_path_style = true;
    let store = S3Store::new(s).unwrap();
    assert_eq!(
        store.object_url(&k),
        format!("https://s3.eu-west-1.amazonaws.com/kyc-docs/{k}")
    );
    assert_eq!(
        store.post_url(),
        "https://s3.eu-west-1.amazonaws.com/kyc-docs"
    );
}

#[tokio::test]
async fn post_policy_document_names_exactly_the_key_type_and_size() {
    let mut s = settings();
    s.prefix = Some("tenant-data".into());
    let store = S3Store::new(s).unwrap();
    let k = key();
    let now = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
    let expires = now + chrono::Duration::minutes(10);
    let post = store
        .presign_post_until(&k, 5_000_000, now, expires)
        .await
        .unwrap();
    assert_eq!(post.url, "https://kyc-docs.s3.eu-west-1.amazonaws.com/");
    assert_eq!(post.object_url, store.object_url(&k));
    assert_eq!(post.expires_at, expires);
    let full_key = format!("tenant-data/{k}");
    let credential = "AKIDEXAMPLE/20300102/eu-west-1/s3/aws4_request";
    let names: Vec<&str> = post.fields.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Content-Type",
            "key",
            "policy",
            "x-amz-algorithm",
            "x-amz-credential",
            "x-amz-date",
            "x-amz-signature"
        ]
    );
    assert_eq!(post.fields["key"], full_key);
    assert_eq!(post.fields["Content-Type"], "image/png");
    assert_eq!(post.fields["x-amz-algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(post.fields["x-amz-credential"], credential);
    assert_eq!(post.fields["x-amz-date"], "20300102T030405Z");
    let signature = &post.fields["x-amz-signature"];
    assert_eq!(signature.len(), 64);
    assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));

    let policy: Value =
        serde_json::from_slice(&BASE64.decode(&post.fields["policy"]).unwrap()).unwrap();
    assert_eq!(
        policy,
        json!({
            "expiration": "2030-01-02T03:14:05.000Z",
            "conditions": [
                { "bucket": "kyc-docs" },
                ["eq", "$key", full_key],
                ["eq", "$Content-Type", "image/png"],
                ["content-length-range", 1, 5_000_000],
                { "x-amz-algorithm": "AWS4-HMAC-SHA256" },
                { "x-amz-credential": credential },
                { "x-amz-date": "20300102T030405Z" },
            ]
        })
    );

    // Same inputs, same signature; another secret, another signature.
    let again = store
        .presign_post_until(&k, 5_000_000, now, expires)
        .await
        .unwrap();
    assert_eq!(again.fields["x-amz-signature"], *signature);
    let mut other = settings();
    other.prefix = Some("tenant-data".into());
    other.static_credentials.as_mut().unwrap().secret_access_key = "another-secret".into();
    let other = S3Store::new(other).unwrap();
    let theirs = other
        .presign_post_until(&k, 5_000_000, now, expires)
        .await
        .unwrap();
    assert_eq!(theirs.fields["policy"], post.fields["policy"]);
    assert_ne!(theirs.fields["x-amz-signature"], *signature);
}

#[tokio::test]
async fn post_policy_carries_the_session_token() {
    let mut s = settings();
    s.static_credentials.as_mut().unwrap().session_token = Some("SESSION".into());
    let store = S3Store::new(s).unwrap();
    let now = Utc::now();
    let post = store
        .presign_post_until(&key(), 10, now, now + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(post.fields["x-amz-security-token"], "SESSION");
    let policy: Value =
        serde_json::from_slice(&BASE64.decode(&post.fields["policy"]).unwrap()).unwrap();
    assert!(policy["conditions"]
        .as_array()
        .unwrap()
        .contains(&json!({ "x-amz-security-token": "SESSION" })));
}

/// Against a real S3-compatible server: only when `KYC_TEST_S3_ENDPOINT`
/// is set (`.ci/s3-server.sh` starts s3s-fs and sets it).
mod live {
    use super::*;
    use reqwest::multipart::{Form, Part};
    use reqwest::StatusCode;

    /// A store on a fresh bucket, or `None` (after saying so) when no
    /// server is configured.
    async fn fresh_store(test: &str) -> Option<S3Store> {
        let Ok(endpoint) = std::env::var("KYC_TEST_S3_ENDPOINT") else {
            // Straight to stderr, past the test harness's output capture,
            // so a skipped run is visible.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: KYC_TEST_S3_ENDPOINT is not set (source .ci/s3-server.sh to run the S3 tests)"
            );
            return None;
        };
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} must be set with KYC_TEST_S3_ENDPOINT"))
        };
        let bucket = format!("kyc-test-{}", Uuid::new_v4().simple());
        let store = S3Store::new(S3Settings {
            bucket: bucket.clone(),
            prefix: Some("tests/p".into()),
            region: Some("us-east-1".into()),
            endpoint_url: Some(endpoint),
            static_credentials: Some(StaticCredentials {
                access_key_id: var("KYC_TEST_S3_ACCESS_KEY"),
                secret_access_key: var("KYC_TEST_S3_SECRET_KEY"),
                session_token: None,
            }),
            force_path_style: true,
            // Every form and copy asks for SSE-S3, as a bucket that
            // enforces it would demand.
            server_side_encryption: Some(ServerSideEncryption::Aes256),
        })
        .unwrap();
        store
            .client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        Some(store)
    }

    fn form(fields: &BTreeMap<String, String>, file: Vec<u8>) -> Form {
        let mut form = Form::new();
        for (name, value) in fields {
            form = form.text(name.clone(), value.clone());
        }
        form.part("file", Part::bytes(file).file_name("upload.bin"))
    }

    async fn post(
        post: &PresignedPost,
        fields: &BTreeMap<String, String>,
        file: Vec<u8>,
    ) -> (StatusCode, String) {
        let response = reqwest::Client::new()
            .post(&post.url)
            .multipart(form(fields, file))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn presign(store: &S3Store, key: &ObjectKey, max_bytes: u64) -> PresignedPost {
        let now = Utc::now();
        store
            .presign_post_until(key, max_bytes, now, now + chrono::Duration::minutes(5))
            .await
            .unwrap()
    }

    fn png(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn s3_upload_then_signed_download() {
        let Some(store) = fresh_store("s3_upload_then_signed_download").await else {
            return;
        };
        let storage = super::super::super::Storage::S3(Box::new(store.clone()));
        let (k, ct) = ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "face.PNG").unwrap();
        assert!(!storage.exists(&k).await.unwrap());
        let form_data = storage
            .presign_post(&k, Duration::from_secs(300), 1000)
            .await
            .unwrap();
        let bytes = png(1000);
        let (status, body) = post(&form_data, &form_data.fields, bytes.clone()).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert!(storage.exists(&k).await.unwrap());
        assert_eq!(storage.read(&k).await.unwrap(), bytes);
        assert_eq!(
            storage.parse_object_url(&form_data.object_url),
            ObjectUrlMatch::Ours(k.clone())
        );

        let get = storage
            .presign_get(&k, None, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            storage.parse_object_url(&get.url),
            ObjectUrlMatch::Ours(k.clone())
        );
        let response = reqwest::get(&get.url).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], ct.as_str());
        assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);

        // Unsigned, the object URL gives nothing.
        let response = reqwest::get(&form_data.object_url).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn s3_missing_object() {
        let Some(store) = fresh_store("s3_missing_object").await else {
            return;
        };
        let k = key();
        assert!(!store.exists(&k).await.unwrap());
        assert!(matches!(store.read(&k).await, Err(StorageError::NotFound)));
        let get = store
            .presign_get(&k, Duration::from_secs(60), Utc::now())
            .await
            .unwrap();
        assert_eq!(
            reqwest::get(&get.url).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn s3_expired_get_url_is_refused() {
        let Some(store) = fresh_store("s3_expired_get_url_is_refused").await else {
            return;
        };
        let k = key();
        let p = presign(&store, &k, 10).await;
        assert_eq!(post(&p, &p.fields, png(10)).await.0, StatusCode::NO_CONTENT);
        let get = store
            .presign_get(&k, Duration::from_secs(1), Utc::now())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let response = reqwest::get(&get.url).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn s3_tampered_signatures_are_refused() {
        let Some(store) = fresh_store("s3_tampered_signatures_are_refused").await else {
            return;
        };
        let k = key();
        let p = presign(&store, &k, 10).await;

        // Upload: flipped signature.
        let mut fields = p.fields.clone();
        let sig = fields.get_mut("x-amz-signature").unwrap();
        let flipped = if sig.starts_with('0') { "1" } else { "0" };
        sig.replace_range(0..1, flipped);
        let (status, body) = post(&p, &fields, png(5)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // Upload: policy rewritten to allow more bytes, signature kept.
        let mut fields = p.fields.clone();
        let mut policy: Value =
            serde_json::from_slice(&BASE64.decode(&fields["policy"]).unwrap()).unwrap();
        policy["conditions"][3] = json!(["content-length-range", 1, 1_000_000]);
        fields.insert(
            "policy".into(),
            BASE64.encode(serde_json::to_vec(&policy).unwrap()),
        );
        let (status, body) = post(&p, &fields, png(50)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(!store.exists(&k).await.unwrap());

        // Download: flipped signature.
        assert_eq!(post(&p, &p.fields, png(5)).await.0, StatusCode::NO_CONTENT);
        let get = store
            .presign_get(&k, Duration::from_secs(60), Utc::now())
            .await
            .unwrap();
        let mut url = Url::parse(&get.url).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(n, v)| {
                let v = if n == "X-Amz-Signature" {
                    let flipped = if v.starts_with('0') { "1" } else { "0" };
                    format!("{flipped}{}", &v[1..])
                } else {
                    v.into_owned()
                };
                (n.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        assert_ne!(url.as_str(), get.url);
        assert_eq!(
            reqwest::get(url).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        // Download: the signature of one key used for another.
        let other = ObjectKey::parse(&k.as_str().replace(".png", ".pdf")).unwrap();
        let swapped = get.url.replace(k.as_str(), other.as_str());
        assert_eq!(
            reqwest::get(swapped).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn s3_upload_must_match_the_policy() {
        let Some(store) = fresh_store("s3_upload_must_match_the_policy").await else {
            return;
        };
        let k = key();
        let p = presign(&store, &k, 10).await;

        // Another content type than the key's.
        let mut fields = p.fields.clone();
        fields.insert("Content-Type".into(), "text/html".into());
        let (status, body) = post(&p, &fields, png(5)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("InvalidPolicyDocument"), "{body}");

        // More bytes than the policy allows, and none at all.
        let (status, body) = post(&p, &p.fields, png(11)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("EntityTooLarge"), "{body}");
        let (status, body) = post(&p, &p.fields, Vec::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("EntityTooSmall"), "{body}");

        // Another key than the policy's (same app, and another app's).
        for other in [
            ObjectKey::new_upload(k.app_id(), "x.png").unwrap().0,
            ObjectKey::new_upload(&crate::domain::ids::AppId::new(), "x.png")
                .unwrap()
                .0,
        ] {
            let mut fields = p.fields.clone();
            fields.insert("key".into(), store.full_key(&other));
            let (status, body) = post(&p, &fields, png(5)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body.contains("InvalidPolicyDocument"), "{body}");
            assert!(!store.exists(&other).await.unwrap());
        }

        // A field the policy does not name.
        let mut fields = p.fields.clone();
        fields.insert("x-amz-meta-owner".into(), "me".into());
        let (status, body) = post(&p, &fields, png(5)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // The same form posted to another bucket.
        let Some(elsewhere) = fresh_store("s3_upload_must_match_the_policy").await else {
            unreachable!()
        };
        let mut to_other_bucket = p.clone();
        to_other_bucket.url = elsewhere.post_url();
        let (status, body) = post(&to_other_bucket, &p.fields, png(5)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(!elsewhere.exists(&k).await.unwrap());

        assert!(
            !store.exists(&k).await.unwrap(),
            "no refused upload was stored"
        );
        // The untouched form still works.
        assert_eq!(post(&p, &p.fields, png(10)).await.0, StatusCode::NO_CONTENT);
        assert!(store.exists(&k).await.unwrap());
    }

    #[tokio::test]
    async fn s3_expired_upload_policy_is_refused() {
        let Some(store) = fresh_store("s3_expired_upload_policy_is_refused").await else {
            return;
        };
        let k = key();
        let now = Utc::now();
        let p = store
            .presign_post_until(
                &k,
                10,
                now - chrono::Duration::seconds(10),
                now - chrono::Duration::seconds(1),
            )
            .await
            .unwrap();
        let (status, body) = post(&p, &p.fields, png(5)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(!store.exists(&k).await.unwrap());
    }
}
