//! The list order every list shares (a timestamp, ties broken by id) and
//! keyset paging over it, written once for both tables. Diesel's columns
//! are distinct types per table, so these are macros over the columns.

use chrono::NaiveDateTime;

use crate::domain::list_query::{Condition, FilterField, Sort, SortField};

/// Where a chunked walk over all matches of a list stopped: the sort key
/// and id of the last row sent. The next chunk starts strictly after it
/// (keyset paging), so each chunk costs the same however deep the walk is.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub at: NaiveDateTime,
    pub id: String,
}

impl Cursor {
    /// The cursor after a row with these times and id, in `sort`'s order.
    pub fn after(
        sort: &Sort,
        created_at: NaiveDateTime,
        updated_at: NaiveDateTime,
        id: &str,
    ) -> Cursor {
        let at = match sort.field {
            SortField::CreatedAt => created_at,
            SortField::UpdatedAt => updated_at,
        };
        Cursor {
            at,
            id: id.to_string(),
        }
    }
}

/// Orders a boxed query by `sort` over `(created | updated, id)`.
macro_rules! order_by {
    ($query:expr, $sort:expr, $created:expr, $updated:expr, $id:expr) => {{
        use $crate::domain::list_query::SortField;
        match ($sort.field, $sort.descending) {
            (SortField::CreatedAt, false) => $query.order(($created.asc(), $id.asc())),
            (SortField::CreatedAt, true) => $query.order(($created.desc(), $id.desc())),
            (SortField::UpdatedAt, false) => $query.order(($updated.asc(), $id.asc())),
            (SortField::UpdatedAt, true) => $query.order(($updated.desc(), $id.desc())),
        }
    }};
}
pub(crate) use order_by;

/// Keeps the rows strictly after `cursor` in `sort`'s order.
///
/// The first, redundant bound (`at >= cursor's time`) is what lets the
/// database start its index walk at the cursor: neither planner derives a
/// range from the `OR` alone, and without one a deep cursor walked (and
/// skipped) every row before it.
macro_rules! after_cursor {
    ($query:expr, $sort:expr, $cursor:expr, $created:expr, $updated:expr, $id:expr) => {{
        use $crate::domain::list_query::SortField;
        let $crate::db::Cursor { at, id } = $cursor.clone();
        match ($sort.field, $sort.descending) {
            (SortField::CreatedAt, false) => $query
                .filter($created.ge(at))
                .filter($created.gt(at).or($created.eq(at).and($id.gt(id)))),
            (SortField::CreatedAt, true) => $query
                .filter($created.le(at))
                .filter($created.lt(at).or($created.eq(at).and($id.lt(id)))),
            (SortField::UpdatedAt, false) => $query
                .filter($updated.ge(at))
                .filter($updated.gt(at).or($updated.eq(at).and($id.gt(id)))),
            (SortField::UpdatedAt, true) => $query
                .filter($updated.le(at))
                .filter($updated.lt(at).or($updated.eq(at).and($id.lt(id)))),
        }
    }};
}
pub(crate) use after_cursor;

/// A filter whose operator its list does not offer. The parser checks
/// every query against the list's spec, so this means the spec and the
/// query code disagree: the request fails (500, cause logged) rather than
/// answering rows the client did not ask for.
pub fn unsupported(field: impl FilterField, condition: &Condition) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(
        format!("filter `{}` has no query for {condition:?}", field.name()).into(),
    )
}
