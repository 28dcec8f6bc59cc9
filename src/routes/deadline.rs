//! A time limit on reading a request body. actix-web bounds the headers
//! (`client_request_timeout`) but not the body: a client that announces
//! `Content-Length: 100` and sends two bytes would hold its connection (and
//! a worker's buffers) for as long as it likes. Every request's body is read
//! through `BodyDeadline`, which fails the read once the deadline passes;
//! the extractors then answer 408 `request_timeout` (see `is_body_timeout`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::web::{self, Bytes};
use actix_web::HttpMessage;
use futures_util::Stream;

use crate::app::AppState;

/// Wraps the request's body in a `BodyDeadline` of `KYC_BODY_TIMEOUT_MS`,
/// counted from the moment the headers were read.
pub fn limit_body_time<S, B>(mut req: ServiceRequest, service: &S) -> S::Future
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    if let Some(timeout) = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.body_timeout)
    {
        let body = req.take_payload();
        let limited: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(BodyDeadline::new(body, timeout));
        req.set_payload(Payload::Stream { payload: limited });
    }
    service.call(req)
}

/// True for the error a `BodyDeadline` yields.
pub fn is_body_timeout(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
}

struct BodyDeadline {
    body: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl BodyDeadline {
    fn new(body: Payload, timeout: Duration) -> Self {
        BodyDeadline {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            expired: false,
        }
    }
}

impl Stream for BodyDeadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.body).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Poll::Pending
    }
}
