//! List answers shared by every list route: one page as
//! `{"data": [...], "total": N}`, or with `all=true` the same shape streamed
//! chunk by chunk, so memory stays flat however many rows match.

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use serde::Serialize;

use actix_web::HttpResponse;
use chrono::NaiveDateTime;
use diesel::QueryResult;
use uuid::Uuid;

use crate::auth::ApiKey;
use crate::db::{Cursor, Db, DbConnection};
use crate::domain::list_query::{ListQuery, ListSpec, Page};
use crate::error::ApiError;
use crate::views::ListPage;

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

/// One page of views and the total number of matches.
pub type PageAndTotal<View> = Result<(Vec<View>, i64), ApiError>;
/// Up to `limit` rows of an app's list after a cursor.
pub type RowsAfter<Row> =
    fn(&mut DbConnection, &str, &ListQuery, Option<&Cursor>, i64) -> QueryResult<Vec<Row>>;

/// What answering one kind of list (`GET /identities`, `GET /verifications`)
/// takes from the database.
pub struct ListSource<Row, View> {
    pub spec: &'static ListSpec,
    /// One page and the total, for `page[...]`.
    pub page: fn(&mut DbConnection, Uuid, &ListQuery) -> PageAndTotal<View>,
    /// The total, sent after the stream's rows for `all=true`.
    pub count: fn(&mut DbConnection, &str, &ListQuery) -> QueryResult<i64>,
    /// The next rows after a cursor, in the list's order.
    pub after: RowsAfter<Row>,
    /// A row's `(created_at, updated_at, id)`, to resume after it.
    pub position: fn(&Row) -> (NaiveDateTime, NaiveDateTime, &str),
    pub views: fn(&mut DbConnection, Vec<Row>) -> Result<Vec<View>, ApiError>,
}

/// A list request, start to finish: the key is checked and the query string
/// parsed (in that order) on the connection that then reads the page, or
/// the total of an `all=true` stream.
pub async fn answer_list<Row, View>(
    db: &Db,
    key: ApiKey,
    query_string: String,
    source: ListSource<Row, View>,
) -> Result<HttpResponse, ApiError>
where
    Row: Send + 'static,
    View: Serialize + Send + 'static,
{
    let ListSource {
        spec,
        page,
        count,
        after,
        position,
        views,
    } = source;
    /// What the first database round trip found.
    enum First<View> {
        Page(Vec<View>, i64),
        StreamOf(i64),
    }
    let (query, app_id, first) = db
        .run_as(key, move |conn, auth| {
            let query = ListQuery::parse(&query_string, spec).map_err(ApiError::Validation)?;
            let first = if query.page == Page::All {
                First::StreamOf(count(conn, &auth.app_id.to_string(), &query)?)
            } else {
                let (data, total) = page(conn, auth.app_id, &query)?;
                First::Page(data, total)
            };
            Ok((query, auth.app_id.to_string(), first))
        })
        .await?;
    let total = match first {
        First::Page(data, total) => return Ok(HttpResponse::Ok().json(ListPage { data, total })),
        First::StreamOf(total) => total,
    };
    let sort = query.sort;
    let fetch = move |conn: &mut DbConnection, cursor: Option<&Cursor>| {
        let rows = after(conn, &app_id, &query, cursor, CHUNK)?;
        let next = rows.last().map(|row| {
            let (created_at, updated_at, id) = position(row);
            Cursor::after(&sort, created_at, updated_at, id)
        });
        Ok((views(conn, rows)?, next))
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(json_list(db.clone(), total, fetch)))
}
