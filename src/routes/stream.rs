//! List answers over HTTP: one page as `{"data": [...], "total": N}`, or
//! with `all=true` the same shape streamed chunk by chunk, so memory stays
//! flat however many rows match.

use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::auth::ApiKey;
use crate::domain::list_query::Direction;
use crate::error::ApiError;
use crate::services::listing::{self, ListAnswer, Listing};
use crate::views::{ListPage, PageLinks};

/// The request again, with its page given by `cursor` in `direction`:
/// every other parameter (filters, sort, `page[size]`) is kept as sent.
/// (`page[total]` is not: a cursor page never counts, and refuses `true`.)
fn page_link(req: &HttpRequest, direction: Direction, cursor: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if !matches!(
            name.as_ref(),
            "page[number]" | "page[after]" | "page[before]" | "page[total]"
        ) {
            query.append_pair(&name, &value);
        }
    }
    query.append_pair(direction.param(), cursor);
    format!("{}?{}", req.path(), query.finish())
}

/// A list request, start to finish (see `services::listing::answer`).
pub async fn answer_list<L: Listing>(
    state: &AppState,
    key: ApiKey,
    req: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let authenticate = move |conn: &mut _| key.authenticate(conn).map(|auth| auth.app_id);
    match listing::answer::<L, _>(
        &state.db,
        state.storage.clone(),
        state.keys.clone(),
        state.cursors.clone(),
        authenticate,
        req.query_string().to_owned(),
    )
    .await?
    {
        ListAnswer::Page {
            data,
            total,
            next,
            prev,
        } => {
            let links = PageLinks {
                next: next.map(|cursor| page_link(req, Direction::After, &cursor)),
                prev: prev.map(|cursor| page_link(req, Direction::Before, &cursor)),
            };
            Ok(HttpResponse::Ok().json(ListPage { data, total, links }))
        }
        ListAnswer::Stream { total, chunks } => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .streaming(json_list(total, chunks))),
    }
}

enum Walk<View> {
    Start(mpsc::Receiver<Result<Vec<View>, ApiError>>),
    Next {
        chunks: mpsc::Receiver<Result<Vec<View>, ApiError>>,
        first: bool,
    },
    Done,
}

/// The bytes of a streamed list. A failure half way cannot change the
/// status any more; the connection is cut so the client sees a truncated
/// body, never a short list.
fn json_list<View: Serialize + 'static>(
    total: i64,
    chunks: mpsc::Receiver<Result<Vec<View>, ApiError>>,
) -> impl Stream<Item = Result<Bytes, ApiError>> {
    stream::unfold(Walk::Start(chunks), move |walk| async move {
        match walk {
            Walk::Start(chunks) => Some((
                Ok(Bytes::from_static(b"{\"data\":[")),
                Walk::Next {
                    chunks,
                    first: true,
                },
            )),
            Walk::Done => None,
            Walk::Next { mut chunks, first } => match chunks.recv().await {
                None => {
                    // Every match is here: no page lies either way.
                    let tail =
                        format!("],\"total\":{total},\"links\":{{\"next\":null,\"prev\":null}}}}");
                    Some((Ok(Bytes::from(tail)), Walk::Done))
                }
                Some(Err(err)) => {
                    tracing::error!(error = %err, "streaming a list failed");
                    Some((Err(err), Walk::Done))
                }
                Some(Ok(items)) => {
                    let mut out = Vec::with_capacity(items.len() * 1024);
                    for (i, item) in items.iter().enumerate() {
                        if !(first && i == 0) {
                            out.push(b',');
                        }
                        if let Err(e) = serde_json::to_writer(&mut out, item) {
                            return Some((Err(ApiError::internal(e)), Walk::Done));
                        }
                    }
                    let first = first && items.is_empty();
                    Some((Ok(Bytes::from(out)), Walk::Next { chunks, first }))
                }
            },
        }
    })
}
