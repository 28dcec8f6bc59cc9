//! List answers shared by every list route: one page and its total, or with
//! `all=true` every match, chunk by chunk; either way from one read
//! snapshot, so the rows and the total describe the same data.

use std::sync::Arc;

use anyhow::anyhow;
use diesel::QueryResult;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::db::{read_snapshot, Cursor, Db, DbConnection, DbError, SharedSnapshot};
use crate::domain::crypto::KeyRing;
use crate::domain::ids::AppId;
use crate::domain::list_query::{Direction, FilterField, ListQuery, ListSpec, Page, Sort};
use crate::error::ApiError;
use crate::services::cursor::{CursorScope, CursorSigner};
use crate::storage::Storage;

/// Rows per database round trip of an `all=true` walk.
pub const CHUNK: i64 = 500;
/// Chunks an `all=true` walk reads ahead of the client.
const CHUNKS_AHEAD: usize = 2;

/// One kind of list (`GET /identities`, `GET /verifications`): what it
/// accepts and how it reads from the database. Every function runs inside
/// the list's read snapshot.
pub trait Listing: 'static {
    type Filter: FilterField;
    type Row: Send + 'static;
    type View: Serialize + Send + 'static;

    /// The list's name in its cursors: a cursor of one list is refused by
    /// another.
    const NAME: &'static str;

    /// How one request's filters are read (which index serves them),
    /// decided once per request, inside its snapshot, and handed to every
    /// read of it: a stream's chunks and a cursor page's probe the other
    /// way do not decide again.
    type Plan;

    /// The filters and sorts the list accepts.
    fn spec() -> &'static ListSpec<Self::Filter>;
    /// The plan of `query`.
    fn plan(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &ListQuery<Self::Filter>,
    ) -> QueryResult<Self::Plan>;
    /// One numbered page of rows and the total number of matches.
    fn page(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &ListQuery<Self::Filter>,
        plan: &Self::Plan,
    ) -> QueryResult<(Vec<Self::Row>, i64)>;
    /// The total number of matches.
    fn count(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &ListQuery<Self::Filter>,
        plan: &Self::Plan,
    ) -> QueryResult<i64>;
    /// Up to `limit` matches after `after` (from the start without one),
    /// in the list's order, past the first `skip` of them.
    fn after(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &ListQuery<Self::Filter>,
        plan: &Self::Plan,
        after: Option<&Cursor>,
        skip: i64,
        limit: i64,
    ) -> QueryResult<Vec<Self::Row>>;
    /// Where a walk that stopped at `row` resumes.
    fn cursor(row: &Self::Row, sort: &Sort) -> Cursor;
    /// What the views of some rows are made of besides the rows: read in a
    /// fixed number of queries, whatever the number of rows.
    type Parts: Send + 'static;
    fn parts(
        conn: &mut DbConnection,
        query: &ListQuery<Self::Filter>,
        rows: &[Self::Row],
    ) -> Result<Self::Parts, ApiError>;
    /// The wire views of rows and their parts, without the database.
    fn assemble(
        storage: &Storage,
        keys: &KeyRing,
        rows: Vec<Self::Row>,
        parts: Self::Parts,
    ) -> Result<Vec<Self::View>, ApiError>;
}

/// A list request's answer.
pub enum ListAnswer<View> {
    Page {
        data: Vec<View>,
        /// The number of matches; numbered pages only, unless asked without
        /// (counting every match is what a cursor page does without).
        total: Option<i64>,
        /// Cursors of the neighbouring pages: `next` for `page[after]`,
        /// `prev` for `page[before]`; `None` where no row lies that way.
        next: Option<String>,
        prev: Option<String>,
    },
    /// `all=true`: every match arrives on `chunks`, in order; the channel
    /// closes after the last. An error ends it: the status (200) is gone by
    /// then, so the caller cuts the response short.
    Stream {
        total: i64,
        chunks: mpsc::Receiver<Result<Vec<View>, ApiError>>,
    },
}

/// Answers a list request: `authenticate` checks the caller on the
/// connection that then parses the query string (in that order) and reads
/// the page, or the total and every chunk of an `all=true` stream. A stream
/// holds its connection and snapshot until the last chunk is read or the
/// client goes away.
pub async fn answer<L, A>(
    db: &Db,
    storage: Arc<Storage>,
    keys: Arc<KeyRing>,
    cursors: CursorSigner,
    authenticate: A,
    query_string: String,
) -> Result<ListAnswer<L::View>, ApiError>
where
    L: Listing,
    A: FnOnce(&mut DbConnection) -> Result<AppId, ApiError> + Send + 'static,
{
    let (first_tx, first_rx) = oneshot::channel();
    let deadline = db.deadline();
    let db = db.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let mut first_tx = Some(first_tx);
        let mut answer_first = |answer: Result<ListAnswer<L::View>, ApiError>| {
            if let Some(tx) = first_tx.take() {
                // A closed receiver: the request was cancelled.
                let _ = tx.send(answer);
            }
        };
        let mut conn = match db.checkout() {
            Ok(conn) => conn,
            Err(e) => return answer_first(Err(e.into())),
        };
        let parsed = authenticate(&mut conn).and_then(|app_id| {
            let query = ListQuery::parse(&query_string, L::spec()).map_err(ApiError::Validation)?;
            Ok((app_id, query))
        });
        let (app_id, query) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return answer_first(Err(e)),
        };
        if query.page != Page::All {
            let page = read_snapshot(&mut conn, |conn| {
                one_page::<L>(conn, &storage, &keys, &cursors, &app_id, &query)
            });
            conn.note(&page);
            return answer_first(page);
        }
        let (chunk_tx, chunks) = mpsc::channel(CHUNKS_AHEAD);
        let mut chunks = Some(chunks);
        // Reading a chunk and turning it into views are two threads: the
        // views of one chunk are assembled while the next is read.
        let (parts_tx, parts_rx) = std::sync::mpsc::sync_channel(1);
        actix_web::rt::task::spawn_blocking(move || {
            assemble_chunks::<L>(&storage, &keys, parts_rx, chunk_tx)
        });
        let mut parts_on = PartsOn::<L>::ThisConnection(parts_tx);
        let walked = read_snapshot(&mut conn, |conn| -> Result<(), ApiError> {
            let plan = L::plan(conn, &app_id, &query)?;
            let total = L::count(conn, &app_id, &query, &plan)?;
            if let Some(chunks) = chunks.take() {
                answer_first(Ok(ListAnswer::Stream { total, chunks }));
            }
            // PostgreSQL, with a connection to spare: a third thread reads
            // each chunk's parts on it, in this snapshot, while this one
            // reads the next chunk's rows.
            if let Some(shared) = db.share_snapshot(conn)? {
                let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel(0);
                let before = std::mem::replace(&mut parts_on, PartsOn::SharedSnapshot(rows_tx));
                if let PartsOn::ThisConnection(parts_tx) = before {
                    let query = query.clone();
                    actix_web::rt::task::spawn_blocking(move || {
                        read_parts::<L>(shared, &query, rows_rx, parts_tx)
                    });
                }
            }
            let mut cursor = None;
            loop {
                let rows = L::after(conn, &app_id, &query, &plan, cursor.as_ref(), 0, CHUNK)?;
                let Some(last) = rows.last() else {
                    return Ok(());
                };
                cursor = Some(L::cursor(last, &query.sort));
                let last_chunk = (rows.len() as i64) < CHUNK;
                let sent = match &parts_on {
                    PartsOn::ThisConnection(parts_tx) => {
                        let parts = L::parts(conn, &query, &rows)?;
                        parts_tx.send(Ok((rows, parts))).is_ok()
                    }
                    PartsOn::SharedSnapshot(rows_tx) => rows_tx.send(Ok(rows)).is_ok(),
                };
                if !sent || last_chunk {
                    // Done, or the client went away.
                    return Ok(());
                }
            }
        });
        conn.note(&walked);
        if let Err(e) = walked {
            if chunks.is_some() {
                answer_first(Err(e));
            } else {
                // The stream is on its way: the error ends it (unless the
                // client went away first).
                let _ = match parts_on {
                    PartsOn::ThisConnection(parts_tx) => parts_tx.send(Err(e)).map_err(drop),
                    PartsOn::SharedSnapshot(rows_tx) => rows_tx.send(Err(e)).map_err(drop),
                };
            }
        }
    });
    // A stalled database must not hold the request: past the deadline the
    // client gets `database_timeout` (the task ends when the database does).
    match tokio::time::timeout(deadline, first_rx).await {
        Ok(answer) => answer
            .map_err(|_| ApiError::internal(anyhow!("the list task ended without an answer")))?,
        Err(_) => Err(DbError::TimedOut(deadline).into()),
    }
}

/// A chunk of an `all=true` stream as read: its rows and their parts.
type ChunkRead<L> = (Vec<<L as Listing>::Row>, <L as Listing>::Parts);

/// Where the reader of an `all=true` stream sends each chunk it read.
enum PartsOn<L: Listing> {
    /// Its parts are read on the reader's connection too, then the chunk
    /// goes to `assemble_chunks`.
    ThisConnection(std::sync::mpsc::SyncSender<Result<ChunkRead<L>, ApiError>>),
    /// Its rows go to `read_parts`, reading on a second connection.
    SharedSnapshot(std::sync::mpsc::SyncSender<Result<Vec<L::Row>, ApiError>>),
}

/// The parts of each chunk's rows, read on a connection sharing the
/// reader's snapshot and passed on with the rows to `assemble_chunks`,
/// until the reader is done, something fails (the error is passed on and
/// ends the stream) or the client goes away.
fn read_parts<L: Listing>(
    mut shared: SharedSnapshot,
    query: &ListQuery<L::Filter>,
    rows_read: std::sync::mpsc::Receiver<Result<Vec<L::Row>, ApiError>>,
    chunks_read: std::sync::mpsc::SyncSender<Result<ChunkRead<L>, ApiError>>,
) {
    for rows in rows_read {
        let chunk = rows.and_then(|rows| {
            let parts = L::parts(shared.conn(), query, &rows);
            shared.note(&parts);
            Ok((rows, parts?))
        });
        let failed = chunk.is_err();
        if chunks_read.send(chunk).is_err() || failed {
            return;
        }
    }
}

/// The second thread of an `all=true` stream: the views of each chunk read,
/// in order, until the reader is done, fails (the error is passed on and
/// ends the stream) or the client goes away.
fn assemble_chunks<L: Listing>(
    storage: &Storage,
    keys: &KeyRing,
    chunks_read: std::sync::mpsc::Receiver<Result<ChunkRead<L>, ApiError>>,
    views: mpsc::Sender<Result<Vec<L::View>, ApiError>>,
) {
    for chunk in chunks_read {
        let assembled = chunk.and_then(|(rows, parts)| L::assemble(storage, keys, rows, parts));
        let failed = assembled.is_err();
        if views.blocking_send(assembled).is_err() || failed {
            return;
        }
    }
}

/// One page, numbered or next to a cursor, with the cursors of its
/// neighbours. A numbered page knows them from its total (without one, it
/// reads one row more); a cursor page reads one row more than it answers in
/// its direction, and probes one row the other way, so its cost does not
/// depend on how deep it lies.
fn one_page<L: Listing>(
    conn: &mut DbConnection,
    storage: &Storage,
    keys: &KeyRing,
    cursors: &CursorSigner,
    app_id: &AppId,
    query: &ListQuery<L::Filter>,
) -> Result<ListAnswer<L::View>, ApiError> {
    let scope = CursorScope::of(L::NAME, app_id, query);
    // The reversed sort below reads the same filters: one plan for both.
    let plan = L::plan(conn, app_id, query)?;
    let (rows, total, more_after, more_before) = match &query.page {
        Page::Keyset {
            size,
            direction,
            cursor,
        } => {
            let position = cursors.open(cursor, *direction, &scope)?;
            let size = *size as usize;
            let backwards = ListQuery {
                sort: query.sort.reversed(),
                ..query.clone()
            };
            // Read in the direction of travel; the rows before a cursor are
            // the rows after it in the reversed order.
            let (ahead, behind) = match direction {
                Direction::After => (query, &backwards),
                Direction::Before => (&backwards, query),
            };
            let mut rows = L::after(
                conn,
                app_id,
                ahead,
                &plan,
                Some(&position),
                0,
                size as i64 + 1,
            )?;
            let more_ahead = rows.len() > size;
            rows.truncate(size);
            let more_behind = match rows.first() {
                Some(nearest) => {
                    let from = L::cursor(nearest, &query.sort);
                    !L::after(conn, app_id, behind, &plan, Some(&from), 0, 1)?.is_empty()
                }
                None => false,
            };
            match direction {
                Direction::After => (rows, None, more_ahead, more_behind),
                Direction::Before => {
                    rows.reverse();
                    (rows, None, more_behind, more_ahead)
                }
            }
        }
        // `page[total]=false`: the rows from the start of the list, and one
        // more to know whether a next page exists; no count.
        Page::Paged {
            size,
            counted: false,
            ..
        } => {
            let size = *size as usize;
            let offset = query.page.offset();
            let mut rows = L::after(conn, app_id, query, &plan, None, offset, size as i64 + 1)?;
            let more_after = rows.len() > size;
            rows.truncate(size);
            (rows, None, more_after, offset > 0)
        }
        Page::Paged { .. } | Page::All => {
            let (rows, total) = L::page(conn, app_id, query, &plan)?;
            let offset = query.page.offset();
            let more_after = offset + (rows.len() as i64) < total;
            (rows, Some(total), more_after, offset > 0)
        }
    };
    let link = |row: Option<&L::Row>, wanted: bool| match row {
        Some(row) if wanted => cursors
            .issue(&scope, &L::cursor(row, &query.sort))
            .map(Some),
        _ => Ok(None),
    };
    let next = link(rows.last(), more_after)?;
    let prev = link(rows.first(), more_before)?;
    let parts = L::parts(conn, query, &rows)?;
    Ok(ListAnswer::Page {
        data: L::assemble(storage, keys, rows, parts)?,
        total,
        next,
        prev,
    })
}
