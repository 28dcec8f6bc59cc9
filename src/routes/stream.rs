//! `all=true`: a list answered as `{"data": [...], "total": N}` streamed
//! chunk by chunk, so memory stays flat however many rows match.

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde::Serialize;

use crate::auth::AuthenticatedApp;
use crate::db::{Cursor, Db, DbConnection};
use crate::domain::list_query::ListQuery;
use crate::error::ApiError;

/// Rows per database round trip.
pub const CHUNK: i64 = 500;

enum Walk {
    Start,
    Next(Option<Cursor>),
    Done,
}

/// Streams every row `fetch` yields, chunk after chunk, until it returns no
/// cursor. A failure half way cannot change the status any more; the
/// connection is cut so the client sees a truncated body, never a short list.
pub fn json_list<T, F>(db: Db, total: i64, fetch: F) -> impl Stream<Item = Result<Bytes, ApiError>>
where
    T: Serialize + Send + 'static,
    F: Fn(&mut DbConnection, Option<&Cursor>) -> Result<(Vec<T>, Option<Cursor>), ApiError>
        + Clone
        + Send
        + 'static,
{
    stream::unfold(Walk::Start, move |walk| {
        let (db, fetch) = (db.clone(), fetch.clone());
        async move {
            match walk {
                Walk::Start => Some((Ok(Bytes::from_static(b"{\"data\":[")), Walk::Next(None))),
                Walk::Done => None,
                Walk::Next(after) => {
                    let first = after.is_none();
                    match db.run(move |conn| fetch(conn, after.as_ref())).await {
                        Err(err) => {
                            tracing::error!(error = %err, "streaming a list failed");
                            Some((Err(err), Walk::Done))
                        }
                        Ok((_, None)) => {
                            let tail = format!("],\"total\":{total}}}");
                            Some((Ok(Bytes::from(tail)), Walk::Done))
                        }
                        Ok((items, Some(cursor))) => {
                            let mut out = Vec::with_capacity(items.len() * 1024);
                            for (i, item) in items.iter().enumerate() {
                                if !(first && i == 0) {
                                    out.push(b',');
                                }
                                if let Err(e) = serde_json::to_writer(&mut out, item) {
                                    return Some((Err(ApiError::internal(e)), Walk::Done));
                                }
                            }
                            Some((Ok(Bytes::from(out)), Walk::Next(Some(cursor))))
                        }
                    }
                }
            }
        }
    })
}

/// A list request's answer: one page, or what the `all=true` stream needs.
pub enum Listed<T> {
    Page {
        views: Vec<T>,
        total: i64,
    },
    Stream {
        auth: AuthenticatedApp,
        query: ListQuery,
        total: i64,
    },
}
