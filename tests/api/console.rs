//! The review console over HTTP (the browser test in `.ci/console_check.py`
//! drives the same pages in Chromium): sign-in with a reviewer's key and
//! its CSRF token, the security headers, the queue, an identity, a
//! decision and a block through the same write path as the API, sign-out
//! and revocation ending the session.

use crate::backend_tests;
use crate::helpers::{json, run_cli, TestApp};
use crate::identities::{create, reference_person};
use crate::scopes::key_with;

backend_tests!(a_reviewer_signs_in_decides_and_signs_out);

/// A browser's view of one response: status, the cookies it set, its body.
struct Page {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn page(response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let cookies = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let location = headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    Page {
        status,
        location,
        cookies,
        headers,
        body: response.text().await.unwrap(),
    }
}

impl Page {
    /// `name=value` of a cookie this response set.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
    }

    /// The first form token on the page.
    fn csrf(&self) -> String {
        let start = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form token")
            + 19;
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> Page {
    page(
        client()
            .get(app.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn post(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> Page {
    page(
        client()
            .post(app.url(path))
            .header("cookie", cookie)
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Signs in with `key`: the login page's token, then the form.
async fn sign_in(app: &TestApp, key: &str) -> Page {
    let login = get(app, "/console/login", "").await;
    assert_eq!(login.status, 200);
    let cookie = login
        .cookie("kyc_console_login")
        .expect("the login token cookie");
    post(
        app,
        "/console/login",
        &cookie,
        &[("csrf", &login.csrf()), ("apiKey", key)],
    )
    .await
}

async fn a_reviewer_signs_in_decides_and_signs_out(app: TestApp) {
    let created = create(&app, &reference_person()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let verification = created["kycStatus"][0]["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Every console page carries the security headers.
    let login = get(&app, "/console/login", "").await;
    for (name, expected) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(login.headers[name], expected, "{name}");
    }
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!login.body.contains("<script"), "no script at all");

    // The login form needs its token; a key must be valid and a reviewer's.
    let refused = post(&app, "/console/login", "", &[("apiKey", &app.api_key)]).await;
    assert_eq!(refused.status, 403, "no CSRF token");
    let cookie = login.cookie("kyc_console_login").unwrap();
    let refused = post(
        &app,
        "/console/login",
        &cookie,
        &[("csrf", "forged"), ("apiKey", &app.api_key)],
    )
    .await;
    assert_eq!(refused.status, 403, "a wrong CSRF token");
    let (_, reader) = key_with(&app, "identities:read");
    let refused = sign_in(&app, &reader).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("kyc:review"), "{}", refused.body);
    assert!(refused.cookie("kyc_console").is_none());
    let refused = sign_in(&app, "kyc_not_a_key").await;
    assert_eq!(refused.status, 401);

    let (reviewer_id, reviewer) = key_with(&app, "kyc:review");
    let signed_in = sign_in(&app, &reviewer).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location.as_deref(), Some("/console/queue"));
    let set = signed_in
        .cookies
        .iter()
        .find(|c| c.starts_with("kyc_console="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain http without an https KYC_PUBLIC_URL"
    );
    let session = signed_in.cookie("kyc_console").unwrap();

    // Without a session: the sign-in page.
    let away = get(&app, "/console/queue", "").await;
    assert_eq!(away.status, 303);
    assert_eq!(away.location.as_deref(), Some("/console/login"));

    let queue = get(&app, "/console/queue", &session).await;
    assert_eq!(queue.status, 200);
    assert!(
        queue.body.contains(&format!("/console/identities/{id}")),
        "{}",
        queue.body
    );
    assert!(
        queue.body.contains("João Pedro Soares"),
        "decrypted for the reviewer"
    );
    let search = get(&app, "/console/queue?q=foobar%40publicmint", &session).await;
    assert!(
        search.body.contains("Identities matching"),
        "{}",
        search.body
    );
    assert!(
        search
            .body
            .matches(&format!("/console/identities/{id}"))
            .count()
            >= 2
    );
    let nothing = get(&app, "/console/queue?q=nobody-here", &session).await;
    assert!(nothing.body.contains("No identity matches."));

    let identity = get(&app, &format!("/console/identities/{id}"), &session).await;
    assert_eq!(identity.status, 200, "{}", identity.body);
    assert!(
        identity.body.contains("Avenida D. João I"),
        "fields decrypted"
    );
    assert!(
        identity.body.contains("withdrawal:wire"),
        "operations shown"
    );
    let csrf = identity.csrf();

    // Another app's reviewer finds nothing of ours, and cannot decide.
    let (_, other_key) = app.create_other_app("elsewhere");
    let other = sign_in(&app, &other_key)
        .await
        .cookie("kyc_console")
        .unwrap();
    let hidden = get(&app, &format!("/console/identities/{id}"), &other).await;
    assert_eq!(hidden.status, 404);
    assert!(!hidden.body.contains("João"), "{}", hidden.body);
    let other_csrf = get(&app, "/console/queue", &other).await.csrf();
    let refused = post(
        &app,
        &format!("/console/verifications/{verification}/decision"),
        &other,
        &[("csrf", &other_csrf), ("status", "rejected")],
    )
    .await;
    assert_eq!(refused.status, 404);
    let queue = get(&app, "/console/queue", &other).await;
    assert!(!queue.body.contains(&id), "another app's queue");

    // A form without its token changes nothing.
    let forged = post(
        &app,
        &format!("/console/verifications/{verification}/decision"),
        &session,
        &[("status", "approved"), ("identityId", &id)],
    )
    .await;
    assert_eq!(forged.status, 403);
    let (_, still) = json(
        app.get(&format!("/verifications/{verification}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(still["data"]["status"], "pending");

    // A refused decision is shown on the page with its status.
    let refused = post(
        &app,
        &format!("/console/verifications/{verification}/decision"),
        &session,
        &[
            ("csrf", &csrf),
            ("identityId", &id),
            ("status", "approved"),
            ("rejectType", "final"),
        ],
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .body
            .contains("rejectType: only applies to a rejection"),
        "{}",
        refused.body
    );

    let decided = post(
        &app,
        &format!("/console/verifications/{verification}/decision"),
        &session,
        &[
            ("csrf", &csrf),
            ("identityId", &id),
            ("status", "approved"),
            ("reason", "documents checked"),
            ("riskRating", "low"),
            ("internalComment", "looked at the MRZ by hand"),
        ],
    )
    .await;
    assert_eq!(decided.status, 303, "{}", decided.body);
    assert_eq!(decided.location, Some(format!("/console/identities/{id}")));
    let (_, after) = json(
        app.get(&format!("/verifications/{verification}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(after["data"]["status"], "approved");
    assert_eq!(after["data"]["reason"], "documents checked");
    let shown = get(&app, &format!("/console/identities/{id}"), &session).await;
    assert!(
        shown.body.contains("looked at the MRZ by hand"),
        "the console shows internal comments"
    );

    let blocked = post(
        &app,
        &format!("/console/identities/{id}/block"),
        &session,
        &[("csrf", &csrf), ("reason", "chargeback")],
    )
    .await;
    assert_eq!(blocked.status, 303, "{}", blocked.body);
    let (_, identity) = json(app.get(&format!("/identities/{id}")).send().await.unwrap()).await;
    assert_eq!(identity["data"]["blocked"], true);

    // The same events and audit records as the API, the reviewer's key as
    // the actor.
    crate::audit::all_linked(&app).await;
    let (_, audit) = json(
        app.get(&format!(
            "/audit-log?filter[apiKeyId]={reviewer_id}&page[size]=1000"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in ["console.sign_in", "verification.decide", "identity.block"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let (_, events) = json(
        app.get(&format!("/events?filter[identityId]={id}&filter[type]=in:verification.status_changed,identity.blocked"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 2, "{events}");

    // Signing out ends the session itself, not only the cookie.
    let out = post(&app, "/console/logout", &session, &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/console/login"));
    let replayed = get(&app, "/console/queue", &session).await;
    assert_eq!(replayed.status, 303, "a signed-out token is refused");

    // However busy, a session ends 12 hours after its sign-in.
    let aged = sign_in(&app, &reviewer)
        .await
        .cookie("kyc_console")
        .unwrap();
    assert_eq!(get(&app, "/console/queue", &aged).await.status, 200);
    app.db
        .execute("UPDATE console_sessions SET created_at = '2000-01-01 00:00:00'");
    assert_eq!(get(&app, "/console/queue", &aged).await.status, 303);

    // Revoking the key ends its sessions at the next request.
    let again = sign_in(&app, &reviewer).await;
    let session = again.cookie("kyc_console").unwrap();
    assert_eq!(get(&app, "/console/queue", &session).await.status, 200);
    let out = run_cli(&app.db.url, &["keys", "revoke", &reviewer_id]);
    assert!(out.status.success());
    let revoked = get(&app, "/console/queue", &session).await;
    assert_eq!(revoked.status, 303);
    assert_eq!(revoked.location.as_deref(), Some("/console/login"));
}
