//! The review console (`/console`): server-rendered pages for compliance
//! officers, no script at all. Every action goes through the same service
//! functions and write path as the API (same events, same audit records,
//! the reviewer's key as the actor).

use std::sync::OnceLock;

use actix_web::body::BoxBody;
use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use minijinja::{context, Environment, Value};
use serde::Deserialize;

use super::audit::{audited_read, target};
use crate::app::AppState;
use crate::auth::request_context;
use crate::domain::decisions::{Decision, DecisionFields, RejectLabel, RejectType};
use crate::domain::ids::{IdentityId, VerificationId};
use crate::domain::input::bounded_text;
use crate::domain::kyc::{Level, RiskRating, VerificationStatus};
use crate::error::ApiError;
use crate::services::console::{self as service, Refused, Session};
use crate::services::write::Operation;
use crate::services::{documents, kyc};

const SESSION_COOKIE: &str = "kyc_console";
const LOGIN_COOKIE: &str = "kyc_console_login";
const CSS: &str = include_str!("console/console.css");

fn templates() -> &'static Environment<'static> {
    static TEMPLATES: OnceLock<Environment<'static>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("console/layout.html")),
            ("login.html", include_str!("console/login.html")),
            ("queue.html", include_str!("console/queue.html")),
            ("identity.html", include_str!("console/identity.html")),
        ] {
            env.add_template(name, source)
                .expect("the console's templates parse (tested)");
        }
        env
    })
}

/// The console's routes, under `/console`, with its security headers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .wrap(from_fn(security_headers))
            .route("", web::get().to(home))
            .route("/", web::get().to(home))
            .route("/static/console.css", web::get().to(stylesheet))
            .route("/login", web::get().to(login_page))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/queue", web::get().to(queue))
            .route("/identities/{id}", web::get().to(identity))
            .route("/identities/{id}/block", web::post().to(block))
            .route("/identities/{id}/unblock", web::post().to(unblock))
            .route("/verifications/{id}/decision", web::post().to(decide))
            .default_service(web::to(|| async {
                page_status(StatusCode::NOT_FOUND, problem_page("No such page.", None))
            })),
    );
}

/// The policy of every console page: nothing but our own stylesheet,
/// images and forms; never framed, never cached, no referrer. The identity
/// page adds the origins of its document images (`img-src`).
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<actix_web::dev::ServiceResponse<BoxBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

fn render(name: &str, ctx: Value) -> HttpResponse {
    match templates()
        .get_template(name)
        .and_then(|template| template.render(ctx))
    {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "console template failed");
            ApiError::internal(anyhow::anyhow!("template {name}: {e}")).error_response()
        }
    }
}

fn page_status(status: StatusCode, mut response: HttpResponse) -> HttpResponse {
    *response.status_mut() = status;
    response
}

fn problem_page(problem: &str, csrf: Option<&str>) -> HttpResponse {
    render("layout.html", context! { problem => problem, csrf => csrf })
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn secure_cookies(state: &AppState) -> bool {
    state
        .settings
        .storage
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
}

fn cookie<'c>(state: &AppState, name: &'c str, value: String, age: CookieAge) -> Cookie<'c> {
    Cookie::build(name, value)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure_cookies(state))
        .max_age(age)
        .finish()
}

fn session_cookie(state: &AppState, session: &Session) -> Result<Cookie<'static>, ApiError> {
    let token = state.console.issue(session)?;
    Ok(cookie(
        state,
        SESSION_COOKIE,
        token,
        CookieAge::seconds(service::SESSION_TTL.num_seconds()),
    ))
}

/// The signed-in reviewer, or where to send the browser instead.
async fn reviewer(state: &AppState, req: &HttpRequest) -> Result<Session, HttpResponse> {
    let Some(session) = req
        .cookie(SESSION_COOKIE)
        .and_then(|c| state.console.open(c.value()))
    else {
        return Err(see_other("/console/login"));
    };
    let checked = session.clone();
    match state
        .db
        .run(move |conn| service::check(conn, &checked))
        .await
    {
        Ok(Ok(())) => Ok(session),
        Ok(Err(Refused::SignIn)) => Err(see_other("/console/login")),
        Ok(Err(Refused::NotAReviewer)) => Err(page_status(
            StatusCode::FORBIDDEN,
            problem_page(
                "This API key no longer has the kyc:review scope; sign in with one that has.",
                None,
            ),
        )),
        Err(e) => Err(e.error_response()),
    }
}

/// Adds a renewed session cookie when the token is due (the session is in
/// use, so it lasts another 15 minutes from now).
fn renewed(state: &AppState, session: &Session, mut response: HttpResponse) -> HttpResponse {
    if session.due_for_renewal() {
        if let Ok(cookie) = session_cookie(state, session) {
            let _ = response.add_cookie(&cookie);
        }
    }
    response
}

/// An urlencoded form, every pair kept (check boxes repeat a name).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A field's value, `None` when absent or blank.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    fn all<'f>(&'f self, name: &'f str) -> impl Iterator<Item = &'f str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn csrf_refused() -> HttpResponse {
    page_status(
        StatusCode::FORBIDDEN,
        problem_page(
            "This form was not sent by this console session (its CSRF token is missing or stale). Reload the page and try again.",
            None,
        ),
    )
}

async fn home() -> HttpResponse {
    see_other("/console/queue")
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(CSS)
}

async fn login_page(state: web::Data<AppState>) -> HttpResponse {
    login_form(&state, None, StatusCode::OK)
}

/// The sign-in form, with a fresh token in a cookie and in the form (a
/// double submit: another site can neither read the cookie nor send it).
fn login_form(state: &AppState, problem: Option<&str>, status: StatusCode) -> HttpResponse {
    let token = service::random_token();
    let mut response = page_status(
        status,
        render(
            "login.html",
            context! { login_csrf => &token, problem => problem },
        ),
    );
    let _ = response.add_cookie(&cookie(state, LOGIN_COOKIE, token, CookieAge::minutes(30)));
    response
}

async fn login(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = Form::parse(&body);
    let expected = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_owned());
    let token_ok = match (expected, form.get("csrf")) {
        (Some(expected), Some(given)) => {
            use subtle::ConstantTimeEq;
            bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
        }
        _ => false,
    };
    if !token_ok {
        return csrf_refused();
    }
    let Some(key) = form.get("apiKey").map(|k| k.trim().to_owned()) else {
        return login_form(&state, Some("Enter an API key."), StatusCode::BAD_REQUEST);
    };
    match service::sign_in(&state.db, &state.write, key, request_context(&req)).await {
        Ok(Ok(session)) => match session_cookie(&state, &session) {
            Ok(cookie) => {
                let mut response = see_other("/console/queue");
                let _ = response.add_cookie(&cookie);
                let mut spent = Cookie::build(LOGIN_COOKIE, "").path("/console").finish();
                spent.make_removal();
                let _ = response.add_cookie(&spent);
                response
            }
            Err(e) => e.error_response(),
        },
        Ok(Err(Refused::SignIn)) => login_form(
            &state,
            Some("This API key is unknown or revoked."),
            StatusCode::UNAUTHORIZED,
        ),
        Ok(Err(Refused::NotAReviewer)) => login_form(
            &state,
            Some("This API key does not have the kyc:review scope."),
            StatusCode::FORBIDDEN,
        ),
        Err(e) => e.error_response(),
    }
}

async fn logout(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let session = match reviewer(&state, &req).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    if !Form::parse(&body)
        .get("csrf")
        .is_some_and(|t| session.csrf_matches(t))
    {
        return csrf_refused();
    }
    if let Err(e) = service::sign_out(&state.write, &session, request_context(&req)).await {
        return e.error_response();
    }
    let mut response = see_other("/console/login");
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/console").finish();
    gone.make_removal();
    let _ = response.add_cookie(&gone);
    response
}

#[derive(Deserialize)]
struct QueueQuery {
    level: Option<String>,
    status: Option<String>,
    q: Option<String>,
}

async fn queue(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<QueueQuery>,
) -> HttpResponse {
    let session = match reviewer(&state, &req).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    let query = query.into_inner();
    let level = query.level.as_deref().and_then(Level::parse);
    let status = query
        .status
        .as_deref()
        .and_then(VerificationStatus::parse)
        .filter(|s| s.is_open());
    let text = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| q.chars().take(200).collect::<String>());
    let (storage, keys, app_id, search) = (
        state.storage.clone(),
        state.keys.clone(),
        session.app_id.clone(),
        text.clone(),
    );
    let found = state
        .db
        .run(move |conn| {
            let entries = service::queue(conn, &storage, &keys, &app_id, level, status)?;
            let found = match &search {
                Some(text) => service::search(conn, &storage, &keys, &app_id, text)?,
                None => Vec::new(),
            };
            Ok::<_, ApiError>((entries, found))
        })
        .await;
    let response = match found {
        Ok((entries, found)) => render(
            "queue.html",
            context! {
                csrf => session.csrf(),
                entries => entries,
                found => found,
                q => text.unwrap_or_default(),
                level => level.map(|l| l.as_str()),
                status => status.map(|s| s.as_str()),
            },
        ),
        Err(e) => e.error_response(),
    };
    renewed(&state, &session, response)
}

/// A document as the page shows it: a short-lived URL, or why there is none.
#[derive(serde::Serialize)]
struct ShownDocument {
    #[serde(rename = "type")]
    document_type: String,
    side: String,
    src: Option<String>,
    problem: Option<String>,
}

async fn identity(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let session = match reviewer(&state, &req).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    let response = identity_response(&state, &req, &session, &id, None, StatusCode::OK).await;
    renewed(&state, &session, response)
}

/// The identity page; `problem` is what a refused action said.
async fn identity_response(
    state: &AppState,
    req: &HttpRequest,
    session: &Session,
    id: &str,
    problem: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let Some(id) = IdentityId::parse(id) else {
        return page_status(
            StatusCode::NOT_FOUND,
            problem_page("No identity with this id.", Some(session.csrf())),
        );
    };
    let (storage, keys, rules, app_id, identity_id) = (
        state.storage.clone(),
        state.keys.clone(),
        state.operation_rules.clone(),
        session.app_id.clone(),
        id.clone(),
    );
    let page = state
        .db
        .run(move |conn| {
            service::identity_page(conn, &storage, &keys, &rules, &app_id, &identity_id)
        })
        .await;
    let page = match page {
        Ok(page) => page,
        Err(e) => {
            return page_status(
                e.status_code(),
                problem_page(&e.to_message(), Some(session.csrf())),
            )
        }
    };
    // Each image is a short-lived URL, issued and audited exactly as
    // `GET .../presign-url` issues one.
    let mut shown = Vec::new();
    let mut image_origins: Vec<String> = Vec::new();
    for document in &page.identity.documents {
        let url = documents::presign_download(
            &state.db,
            &state.storage,
            state.keys.clone(),
            &state.settings.storage,
            &session.app_id,
            id.clone(),
            document.id.clone(),
        )
        .await;
        let url = audited_read(
            state,
            session.actor(request_context(req)),
            Operation::DocumentDownloadUrl,
            vec![
                target("identity", id.as_str()),
                target("document", document.id.as_str()),
            ],
            url,
        )
        .await;
        let (src, problem) = match url {
            Ok(url) => {
                if let Some(origin) = origin_of(&url) {
                    if !image_origins.contains(&origin) {
                        image_origins.push(origin);
                    }
                }
                (Some(url), None)
            }
            Err(e) => (None, Some(e.to_message())),
        };
        shown.push(ShownDocument {
            document_type: document.document_type.as_str().to_owned(),
            side: document.side.as_str().to_owned(),
            src,
            problem,
        });
    }
    let labels: Vec<&str> = RejectLabel::ALL.iter().map(|l| l.as_str()).collect();
    let mut response = page_status(
        status,
        render(
            "identity.html",
            context! {
                csrf => session.csrf(),
                page => page,
                documents => shown,
                labels => labels,
                problem => problem,
            },
        ),
    );
    if !image_origins.is_empty() {
        let policy = CSP.replace(
            "img-src 'self'",
            &format!("img-src 'self' {}", image_origins.join(" ")),
        );
        if let Ok(value) = HeaderValue::from_str(&policy) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    response
}

/// `https://host:port` of a URL; `None` for a relative one (same origin).
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Runs a console action for the signed-in reviewer: session and CSRF
/// first, then `act`; success goes back to the identity page, a refusal
/// shows it there with its status.
async fn act<F, Fut>(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
    act: F,
) -> HttpResponse
where
    F: FnOnce(Session, Form) -> Fut,
    Fut: std::future::Future<Output = (String, Result<(), ApiError>)>,
{
    let session = match reviewer(&state, &req).await {
        Ok(session) => session,
        Err(elsewhere) => return elsewhere,
    };
    let form = Form::parse(&body);
    if !form.get("csrf").is_some_and(|t| session.csrf_matches(t)) {
        return csrf_refused();
    }
    let (identity_id, outcome) = act(session.clone(), form).await;
    let response = match outcome {
        Ok(()) => see_other(&format!("/console/identities/{identity_id}")),
        Err(e) => {
            let message = e.to_message();
            identity_response(
                &state,
                &req,
                &session,
                &identity_id,
                Some(message),
                e.status_code(),
            )
            .await
        }
    };
    renewed(&state, &session, response)
}

async fn decide(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let write = state.write.clone();
    let request = request_context(&req);
    act(state.clone(), req, body, move |session, form| async move {
        let outcome = async {
            let id: VerificationId = super::parse_id("id", &id)?;
            let decision = decision_of(&form)?;
            let app_id = session.app_id.clone();
            write
                .run(
                    session.actor(request),
                    Operation::VerificationDecide,
                    move |tx| kyc::decide(tx, &app_id, &id, decision),
                )
                .await
        }
        .await;
        match outcome {
            // Back to the verification's own identity, never to a page the
            // form names.
            Ok(view) => (view.identity_id.to_string(), Ok(())),
            Err(e) => {
                let shown = form
                    .get("identityId")
                    .and_then(IdentityId::parse)
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                (shown, Err(e))
            }
        }
    })
    .await
}

/// The decision form, read like the API's body: every problem named.
fn decision_of(form: &Form) -> Result<Decision, ApiError> {
    let mut problems = Vec::new();
    let status = form.get("status").and_then(|s| {
        let parsed = VerificationStatus::parse(s);
        if parsed.is_none() {
            problems.push(crate::error::FieldError::new("status", "is not a status"));
        }
        parsed
    });
    let risk_rating = form.get("riskRating").and_then(|r| {
        let parsed = RiskRating::parse(r);
        if parsed.is_none() {
            problems.push(crate::error::FieldError::new(
                "riskRating",
                "is not a rating",
            ));
        }
        parsed
    });
    let reject_type = form.get("rejectType").and_then(|t| {
        let parsed = RejectType::parse(t);
        if parsed.is_none() {
            problems.push(crate::error::FieldError::new("rejectType", "is not a type"));
        }
        parsed
    });
    let mut labels = Vec::new();
    for label in form.all("rejectLabels") {
        match RejectLabel::parse(label) {
            Some(label) => labels.push(label),
            None => problems.push(crate::error::FieldError::new(
                "rejectLabels",
                format!("`{label}` is not a label"),
            )),
        }
    }
    let decision = Decision::new(DecisionFields {
        status,
        reason: form.get("reason").map(str::to_owned),
        risk_rating,
        reject_type,
        // Boxes left unticked send nothing: no labels is no labels.
        reject_labels: (!labels.is_empty()).then_some(labels),
        client_comment: form.get("clientComment").map(str::to_owned),
        internal_comment: form.get("internalComment").map(str::to_owned),
    });
    match decision {
        Ok(decision) if problems.is_empty() => Ok(decision),
        Ok(_) => Err(ApiError::Validation(problems)),
        Err(more) => {
            problems.extend(more);
            Err(ApiError::Validation(problems))
        }
    }
}

async fn block(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    set_blocked(state, req, id.into_inner(), body, true).await
}

async fn unblock(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    set_blocked(state, req, id.into_inner(), body, false).await
}

async fn set_blocked(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: String,
    body: web::Bytes,
    blocked: bool,
) -> HttpResponse {
    let (write, storage, keys) = (
        state.write.clone(),
        state.storage.clone(),
        state.keys.clone(),
    );
    let request = request_context(&req);
    act(state.clone(), req, body, move |session, form| async move {
        let outcome = async {
            let identity_id: IdentityId = super::parse_id("id", &id)?;
            let reason = bounded_text(form.get("reason").unwrap_or_default(), 500)
                .map_err(|m| ApiError::invalid("reason", m))?;
            let operation = if blocked {
                Operation::IdentityBlock
            } else {
                Operation::IdentityUnblock
            };
            let app_id = session.app_id.clone();
            write
                .run(session.actor(request), operation, move |tx| {
                    kyc::set_blocked(tx, &storage, &keys, &app_id, &identity_id, blocked, &reason)
                })
                .await
                .map(|_| ())
        }
        .await;
        (id, outcome)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for name in ["layout.html", "login.html", "queue.html", "identity.html"] {
            templates().get_template(name).unwrap();
        }
    }

    #[test]
    fn origins_of_image_urls() {
        assert_eq!(
            origin_of("https://bucket.s3.amazonaws.com/a/b?X=1").as_deref(),
            Some("https://bucket.s3.amazonaws.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/files/x?token=y").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("/files/x"), None);
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let form =
            Form::parse(b"rejectLabels=underage&rejectLabels=other&reason=+&status=rejected");
        assert_eq!(
            form.all("rejectLabels").collect::<Vec<_>>(),
            ["underage", "other"]
        );
        assert_eq!(form.get("reason"), None, "blank is absent");
        assert_eq!(form.get("status"), Some("rejected"));
    }
}
