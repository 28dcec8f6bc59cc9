//! Logging: `KYC_LOG` filters, `KYC_LOG_FORMAT` picks text or JSON lines.
//! Logs go to stderr so that CLI commands keep stdout for their output.

use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpMessage;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::domain::errors::ErrorCode;

pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: escape codes in a log file or
    // a container's log stream are noise.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    // try_init: tests initialise once per process and may race.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

/// The process's Prometheus recorder, installed on first use (one per
/// process: the `metrics` facade is global). `None` if another recorder was
/// installed first.
pub fn metrics() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A request id from the caller is kept when it is short and printable (so it
/// can tie our logs to theirs); otherwise a fresh one is made.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// One span per request (method, path, request id, and the caller's app id
/// once its key is checked) and one event when it ends (status, error code,
/// latency); the id is echoed in `x-request-id`.
pub fn request_span<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let id = request_id(&req);
    // For the audit trail: the TCP peer, not a forwarded-for header anyone
    // can write.
    req.extensions_mut()
        .insert(crate::domain::audit::RequestContext {
            request_id: Some(id.clone()),
            client_address: req.peer_addr().map(|peer| peer.ip().to_string()),
        });
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.path(),
        request_id = %id,
        // Filled in by the key check (`auth::ApiKey::authenticate`).
        app_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let method = req.method().to_string();
    let response = {
        let _entered = span.enter();
        service.call(req)
    };
    async move {
        let result = response.await;
        let elapsed = started.elapsed();
        // The route template (`/identities/{id}`), never the raw path: metric
        // labels must not carry ids or grow without bound. Read once the
        // router has matched it (before, actix matches the path again:
        // 1.5 % of a GET's instructions). Handlers' and extractors' errors
        // arrive as responses; one that escaped as `Err` is `unmatched`.
        let route = match &result {
            Ok(res) => res.request().match_pattern(),
            Err(_) => None,
        }
        .unwrap_or_else(|| "unmatched".to_string());
        // Milliseconds to the microsecond: more digits are noise.
        let latency_ms = elapsed.as_micros() as f64 / 1000.0;
        let status_class = match &result {
            Ok(res) => format!("{}xx", res.status().as_u16() / 100),
            Err(_) => "5xx".to_string(),
        };
        let labels = [
            ("method", method),
            ("route", route),
            ("status", status_class),
        ];
        metrics::counter!("kyc_http_requests_total", &labels).increment(1);
        metrics::histogram!("kyc_http_request_duration_seconds", &labels)
            .record(elapsed.as_secs_f64());
        match result {
            Ok(mut res) => {
                let status = res.status().as_u16();
                let code = res
                    .response()
                    .extensions()
                    .get::<ErrorCode>()
                    .map(|code| code.0);
                if status >= 500 {
                    tracing::error!(status, code, latency_ms, "request finished");
                } else {
                    tracing::info!(status, code, latency_ms, "request finished");
                }
                if let Ok(value) = HeaderValue::from_str(&id) {
                    res.headers_mut().insert(REQUEST_ID_HEADER, value);
                }
                Ok(res)
            }
            Err(err) => {
                tracing::error!(error = %err, latency_ms, "request failed");
                Err(err)
            }
        }
    }
    .instrument(span)
}
