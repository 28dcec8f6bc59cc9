//! HTTP handlers: extract, call one domain or database function, map to the
//! response. Routing lives in `configure`.

pub mod audit;
pub mod console;
pub mod deadline;
pub mod documents;
pub mod events;
pub mod files;
pub mod health;
pub mod idempotent;
pub mod identities;
mod json;
pub mod kyc;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod relations;
pub mod stream;
pub mod webhooks;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceRequest;
use actix_web::error::{JsonPayloadError, PathError};
use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use crate::auth::{KeyCheck, RequiredScope};
use crate::domain::api_key::Scope::{
    self, AuditRead, DocumentsRead, IdentitiesRead, IdentitiesWrite, KycReview, WebhooksManage,
};
use crate::error::ApiError;
use Access::{Key, Public};

/// Every route is registered as a resource whose default answers 405 in our
/// error shape, with the `Allow` header naming the methods it does take; an
/// app-wide default service answers 404 for unknown paths.
pub fn resource(path: &str, methods: &[&str]) -> actix_web::Resource {
    let allow = methods
        .iter()
        .map(|m| m.to_uppercase())
        .collect::<Vec<_>>()
        .join(", ");
    let allow = HeaderValue::from_str(&allow).expect("method names are valid header text");
    web::resource(path).default_service(web::to(move || {
        let allow = allow.clone();
        async move {
            let mut response = ApiError::MethodNotAllowed.error_response();
            response.headers_mut().insert(ALLOW, allow);
            response
        }
    }))
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Declares every route once: `configure` registers them and `ROUTES` lists
/// them (`SANDBOX_ROUTES` and `configure_sandbox` the sandbox-only ones),
/// so a test can hold `openapi.yaml` to exactly what the server has.
macro_rules! routes {
    (
        $($path:literal => { $($method:ident : $handler:path => $access:expr),+ $(,)? })*
        sandbox {
            $($sandbox_path:literal => {
                $($sandbox_method:ident : $sandbox_handler:path => $sandbox_access:expr),+ $(,)?
            })*
        }
    ) => {
        /// (method, path) of every route, paths in actix syntax.
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

        /// Sandbox-only routes: with `KYC_ENV=production` they do not exist
        /// (404).
        pub const SANDBOX_ROUTES: &[(&str, &str)] =
            &[$($((stringify!($sandbox_method), $sandbox_path)),+),*];

        /// (method, path, what it needs of the caller) of every route, the
        /// sandbox's included: `openapi.yaml` states the same.
        pub const ROUTE_ACCESS: &[(&str, &str, Access)] = &[
            $($((stringify!($method), $path, $access)),+,)*
            $($((stringify!($sandbox_method), $sandbox_path, $sandbox_access)),+,)*
        ];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.service(
                resource($path, &[$(stringify!($method)),+])
                    $(.route(with_access(web::$method().to($handler), $access)))+
            );)*
        }

        pub fn configure_sandbox(cfg: &mut web::ServiceConfig) {
            $(cfg.service(
                resource($sandbox_path, &[$(stringify!($sandbox_method)),+])
                    $(.route(with_access(web::$sandbox_method().to($sandbox_handler), $sandbox_access)))+
            );)*
        }
    };
}

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing: health, the contract, metrics, the local storage's own
    /// signed routes.
    Public,
    /// An API key with this scope.
    Key(Scope),
}

/// Marks a route with the scope its key needs, where the `auth` extractors
/// find it: they check the key, then the scope, before anything else.
fn with_access(route: actix_web::Route, access: Access) -> actix_web::Route {
    match access {
        Access::Public => route,
        Access::Key(scope) => route.wrap(from_fn(
            move |req: ServiceRequest, next: Next<BoxBody>| async move {
                req.extensions_mut().insert(RequiredScope(scope));
                next.call(req).await
            },
        )),
    }
}

routes! {
    "/health" => { get: health::health => Public }
    "/openapi.yaml" => { get: openapi::openapi_yaml => Public }
    "/ready" => { get: health::ready => Public }
    "/metrics" => { get: metrics::metrics => Public }
    "/identities" => {
        get: identities::list => Key(IdentitiesRead),
        post: identities::create => Key(IdentitiesWrite),
    }
    "/identities/{id}" => {
        get: identities::get => Key(IdentitiesRead),
        patch: identities::patch => Key(IdentitiesWrite),
        delete: identities::delete => Key(IdentitiesWrite),
    }
    "/identities/{id}/erase" => { post: identities::erase => Key(IdentitiesWrite) }
    "/identities/{id}/relations" => {
        get: relations::list => Key(IdentitiesRead),
        post: relations::create => Key(IdentitiesWrite),
    }
    "/identities/{id}/relations/{relationId}" => {
        get: relations::get => Key(IdentitiesRead),
        patch: relations::patch => Key(IdentitiesWrite),
        delete: relations::delete => Key(IdentitiesWrite),
    }
    "/identities/{id}/block" => { post: kyc::block => Key(KycReview) }
    "/identities/{id}/unblock" => { post: kyc::unblock => Key(KycReview) }
    "/identities/{id}/history" => { get: kyc::history => Key(IdentitiesRead) }
    "/identities/{id}/operations" => { get: kyc::operations => Key(IdentitiesRead) }
    "/operations/validate" => { post: kyc::validate_operation => Key(IdentitiesRead) }
    "/events" => { get: events::list => Key(IdentitiesRead) }
    "/audit-log" => { get: audit::list => Key(AuditRead) }
    "/audit-log/head" => { get: audit::head => Key(AuditRead) }
    "/events/{id}/redeliver" => { post: webhooks::redeliver => Key(WebhooksManage) }
    "/webhook-endpoints" => {
        get: webhooks::list => Key(WebhooksManage),
        post: webhooks::create => Key(WebhooksManage),
    }
    "/webhook-endpoints/{id}" => {
        get: webhooks::get => Key(WebhooksManage),
        patch: webhooks::patch => Key(WebhooksManage),
        delete: webhooks::delete => Key(WebhooksManage),
    }
    "/webhook-endpoints/{id}/rotate-secret" => { post: webhooks::rotate_secret => Key(WebhooksManage) }
    "/webhook-endpoints/{id}/deliveries" => { get: webhooks::deliveries => Key(WebhooksManage) }
    "/verifications" => { get: kyc::list_verifications => Key(IdentitiesRead) }
    "/verifications/{id}" => { get: kyc::get_verification => Key(IdentitiesRead) }
    "/verifications/{id}/decision" => { post: kyc::decide => Key(KycReview) }
    "/presign-url" => { post: documents::presign_upload => Key(IdentitiesWrite) }
    "/identities/{identityId}/documents/{id}/presign-url" => {
        get: documents::presign_download => Key(DocumentsRead),
    }
    // The local storage backend's own signed upload and download; with S3
    // they answer 404. The signature is their authority.
    "/files/upload" => { post: files::upload => Public }
    "/files/{key:.*}" => { get: files::download => Public }
    sandbox {
        "/sandbox/identities/approve" => { post: kyc::sandbox_approve => Key(KycReview) }
        "/sandbox/identities/reject" => { post: kyc::sandbox_reject => Key(KycReview) }
    }
}

/// Maps actix's JSON extractor failures onto our error codes: a body that
/// is not JSON at all is `malformed_json`; a body of the wrong shape (type,
/// unknown or missing field) is `validation_failed` (`Body` names the
/// field's path).
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api_error = match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::invalid("body", e.to_string()),
        JsonPayloadError::Deserialize(e) => ApiError::MalformedJson(e.to_string()),
        JsonPayloadError::Payload(e) if deadline::is_body_timeout(&e) => ApiError::RequestTimeout,
        JsonPayloadError::Payload(e) => ApiError::MalformedJson(e.to_string()),
        other => ApiError::MalformedJson(other.to_string()),
    };
    api_error.into()
}

/// A JSON body as a `Value`. Read as JSON by actix (`JsonConfig`: size
/// limit, content type, syntax); a key given twice in one object is a
/// `validation_failed` naming it (see `json`).
pub struct JsonBody(pub serde_json::Value);

impl actix_web::FromRequest for JsonBody {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let json = web::Json::<json::CheckedValue>::from_request(req, payload);
        let keyed = idempotent::has_key(req).then(|| req.clone());
        let key_check = KeyCheck::of(req);
        Box::pin(async move {
            let checked = match json.await {
                Ok(checked) => checked.into_inner(),
                Err(refused) => return Err(after_key_check(key_check, refused).await),
            };
            match checked.duplicate {
                Some(path) => Err(after_key_check(
                    key_check,
                    ApiError::invalid(path, "is given more than once; give each key once").into(),
                )
                .await),
                None => {
                    if let Some(req) = keyed {
                        use actix_web::HttpMessage;
                        req.extensions_mut()
                            .insert(idempotent::BodyDigest::of(&checked.value));
                    }
                    Ok(JsonBody(checked.value))
                }
            }
        })
    }
}

/// A JSON body of type `T`. Read as JSON by actix (`JsonConfig`: size limit,
/// content type, syntax), then deserialized with `serde_path_to_error`, so
/// a field of the wrong type, an unknown field or a missing one is a
/// `validation_failed` naming the field's path (`status`, `reason`).
pub struct Body<T>(pub T);

/// A body's refusal, held back until the request's key check has finished
/// (see `KeyCheck`).
async fn after_key_check(
    key_check: Option<KeyCheck>,
    refused: actix_web::Error,
) -> actix_web::Error {
    if let Some(key_check) = key_check {
        key_check.finished().await;
    }
    refused
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let json = JsonBody::from_request(req, payload);
        let key_check = KeyCheck::of(req);
        Box::pin(async move {
            let JsonBody(value) = json.await?;
            // serde's derived structs also read a JSON array, field by field
            // in order (`["x"]` as `{"reason": "x"}`, `[]` as `{}`); every
            // body of this API is an object.
            let parsed = if value.is_object() {
                serde_path_to_error::deserialize(value).map_err(|e| {
                    let field = match e.path().to_string() {
                        path if path == "." => missing_or_unknown_field(e.inner()),
                        path => path,
                    };
                    ApiError::invalid(field, e.inner().to_string())
                })
            } else {
                Err(ApiError::invalid(
                    "body",
                    format!(
                        "must be an object, not {}",
                        crate::domain::input::type_name(&value)
                    ),
                ))
            };
            match parsed {
                Ok(body) => Ok(Body(body)),
                Err(refused) => Err(after_key_check(key_check, refused.into()).await),
            }
        })
    }
}

/// At the top level, serde_path_to_error has no path for a missing field
/// (nor for an unknown one in a struct without flattening): serde's error
/// names it, as `missing field `x``. Anything else is the body as a whole.
fn missing_or_unknown_field(err: &serde_json::Error) -> String {
    let message = err.to_string();
    for marker in ["unknown field `", "missing field `"] {
        if let Some(name) = message
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split('`').next())
        {
            return name.to_string();
        }
    }
    "body".to_string()
}

pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("path", err.to_string()).into()
}

/// Parses a path segment that must be an id (a UUID); a malformed one is a
/// validation error naming the parameter, not a 404.
pub fn parse_id<Id: crate::domain::stored::StoredText>(
    field: &str,
    raw: &str,
) -> Result<Id, ApiError> {
    Id::from_stored(raw).ok_or_else(|| ApiError::invalid(field, "must be a UUID"))
}
