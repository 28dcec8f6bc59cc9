//! HTTP handlers: extract, call one domain or database function, map to the
//! response. Routing lives in `configure`.

pub mod audit;
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

use actix_web::error::{JsonPayloadError, PathError};
use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;

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
        $($path:literal => { $($method:ident : $handler:path),+ $(,)? })*
        sandbox {
            $($sandbox_path:literal => { $($sandbox_method:ident : $sandbox_handler:path),+ $(,)? })*
        }
    ) => {
        /// (method, path) of every route, paths in actix syntax.
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

        /// Sandbox-only routes: with `KYC_ENV=production` they do not exist
        /// (404).
        pub const SANDBOX_ROUTES: &[(&str, &str)] =
            &[$($((stringify!($sandbox_method), $sandbox_path)),+),*];

        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.service(
                resource($path, &[$(stringify!($method)),+])$(.route(web::$method().to($handler)))+
            );)*
        }

        pub fn configure_sandbox(cfg: &mut web::ServiceConfig) {
            $(cfg.service(
                resource($sandbox_path, &[$(stringify!($sandbox_method)),+])
                    $(.route(web::$sandbox_method().to($sandbox_handler)))+
            );)*
        }
    };
}

routes! {
    "/health" => { get: health::health }
    "/openapi.yaml" => { get: openapi::openapi_yaml }
    "/ready" => { get: health::ready }
    "/metrics" => { get: metrics::metrics }
    "/identities" => { get: identities::list, post: identities::create }
    "/identities/{id}" => {
        get: identities::get,
        patch: identities::patch,
        delete: identities::delete,
    }
    "/identities/{id}/erase" => { post: identities::erase }
    "/identities/{id}/relations" => { get: relations::list, post: relations::create }
    "/identities/{id}/relations/{relationId}" => {
        get: relations::get,
        patch: relations::patch,
        delete: relations::delete,
    }
    "/identities/{id}/block" => { post: kyc::block }
    "/identities/{id}/unblock" => { post: kyc::unblock }
    "/identities/{id}/history" => { get: kyc::history }
    "/identities/{id}/operations" => { get: kyc::operations }
    "/operations/validate" => { post: kyc::validate_operation }
    "/events" => { get: events::list }
    "/audit-log" => { get: audit::list }
    "/audit-log/head" => { get: audit::head }
    "/events/{id}/redeliver" => { post: webhooks::redeliver }
    "/webhook-endpoints" => { get: webhooks::list, post: webhooks::create }
    "/webhook-endpoints/{id}" => { get: webhooks::get, patch: webhooks::patch, delete: webhooks::delete }
    "/webhook-endpoints/{id}/rotate-secret" => { post: webhooks::rotate_secret }
    "/webhook-endpoints/{id}/deliveries" => { get: webhooks::deliveries }
    "/verifications" => { get: kyc::list_verifications }
    "/verifications/{id}" => { get: kyc::get_verification }
    "/verifications/{id}/decision" => { post: kyc::decide }
    "/presign-url" => { post: documents::presign_upload }
    "/identities/{identityId}/documents/{id}/presign-url" => { get: documents::presign_download }
    // The local storage backend's own signed upload and download; with S3
    // they answer 404.
    "/files/upload" => { post: files::upload }
    "/files/{key:.*}" => { get: files::download }
    sandbox {
        "/sandbox/identities/approve" => { post: kyc::sandbox_approve }
        "/sandbox/identities/reject" => { post: kyc::sandbox_reject }
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
        Box::pin(async move {
            let checked = json.await?.into_inner();
            match checked.duplicate {
                Some(path) => Err(ApiError::invalid(
                    path,
                    "is given more than once; give each key once",
                )
                .into()),
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

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let json = JsonBody::from_request(req, payload);
        Box::pin(async move {
            let JsonBody(value) = json.await?;
            // serde's derived structs also read a JSON array, field by field
            // in order (`["x"]` as `{"reason": "x"}`, `[]` as `{}`); every
            // body of this API is an object.
            if !value.is_object() {
                return Err(ApiError::invalid(
                    "body",
                    format!(
                        "must be an object, not {}",
                        crate::domain::input::type_name(&value)
                    ),
                )
                .into());
            }
            serde_path_to_error::deserialize(value)
                .map(Body)
                .map_err(|e| {
                    let field = match e.path().to_string() {
                        path if path == "." => missing_or_unknown_field(e.inner()),
                        path => path,
                    };
                    ApiError::invalid(field, e.inner().to_string()).into()
                })
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
