//! `GET /openapi.yaml`: the API's OpenAPI description, compiled into the
//! binary so it always matches the routes it was built with.

use actix_web::HttpResponse;

/// The contract, as committed at the root of the repository.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// No API key: the contract is public.
pub async fn openapi_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}
