//! The query language of the list endpoints (`GET /identities`,
//! `GET /verifications`), following the PublicMint convention:
//!
//! ```text
//! filter[<name>]=<value>          exact match
//! filter[<name>]=like:<text>      case-insensitive substring
//! filter[<name>]=in:<a>,<b>,...   any of (1 to 100 values)
//! filter[<name>]=nin:<a>,<b>,...  none of (1 to 100 values)
//! sort=<field> | sort=-<field>    one key; `-` for descending
//! page[size]=N                    1..=100, default 30
//! page[number]=N                  1..=1_000_000, default 1
//! page[after]=C | page[before]=C  the page next to cursor C (from `links`)
//! page[total]=true|false          false: a numbered page without `total`
//! all=true|false                  true: no paging at all
//! ```
//!
//! Each endpoint describes what it allows with a [`ListSpec`]; the parser
//! checks the whole query against it and reports every problem at once, so a
//! client fixes its request in one round trip instead of one per mistake.
//!
//! Known operator prefixes always mean the operator, so an exact match on a
//! text value that itself starts with `like:`, `in:` or `nin:` cannot be
//! expressed. Any other `prefix:` on a text filter that allows exact matches
//! is part of the value, because real values contain colons (an email
//! address may be `a:b@example.com`). Values inside `in:`/`nin:` lists
//! cannot contain commas.

pub const DEFAULT_PAGE_SIZE: u32 = 30;
pub const MAX_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_NUMBER: u32 = 1_000_000;
/// Longer than any cursor this server issues; bounds the work of refusing
/// a forged one.
pub const MAX_CURSOR_LEN: usize = 1024;
/// Bounds the SQL an `in:`/`nin:` filter can generate.
pub const MAX_LIST_VALUES: usize = 100;
/// The longest value a text filter takes: the longest valid email address,
/// which is the longest text anyone has a reason to filter on.
pub const MAX_TEXT_CHARS: usize = 320;

/// A filter operator and its wire prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// No prefix.
    Eq,
    /// `like:`: case-insensitive substring match (see [`like_pattern`]).
    Like,
    /// `in:`
    In,
    /// `nin:`
    NotIn,
}

impl Operator {
    /// Operators that are written as a prefix, checked in this order.
    const PREFIXED: [Operator; 3] = [Operator::Like, Operator::In, Operator::NotIn];

    pub fn prefix(self) -> &'static str {
        match self {
            Operator::Eq => "",
            Operator::Like => "like:",
            Operator::In => "in:",
            Operator::NotIn => "nin:",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Operator::Eq => "exact match (no prefix)",
            Operator::Like => "like:",
            Operator::In => "in:",
            Operator::NotIn => "nin:",
        }
    }
}

/// What values a filter accepts, and so how they are checked and
/// normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Any form the `uuid` crate parses; normalized to lowercase hyphenated.
    Uuid,
    /// Exactly `true` or `false`.
    Bool,
    /// Kept as sent; 1 to [`MAX_TEXT_CHARS`] characters.
    Text,
    /// Exactly one of the listed strings.
    OneOf(&'static [&'static str]),
    /// A family of filters named `filter[<name>.<key>]`, each an exact
    /// value of one key (`filter[metadata.tier]=gold`); the key and value
    /// follow `domain::metadata`.
    Keyed,
}

/// The fields one list filters on: an enum whose variants are its filters,
/// so the database layer's match over them is exhaustive.
pub trait FilterField: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// The wire name: `email` in `filter[email]`.
    fn name(self) -> &'static str;
}

/// `GET /identities` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "camelCase")]
pub enum IdentityFilter {
    AppId,
    Blocked,
    Email,
    Id,
    IdentityOwner,
    Metadata,
    Name,
    RefId,
    /// Companies a person is related to (`identity_relations`).
    RelatedPersonId,
    RiskRating,
    Type,
}

/// `GET /verifications` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "camelCase")]
pub enum VerificationFilter {
    Id,
    IdentityId,
    Status,
    Level,
    /// A rejection's type (`retry`, `final`).
    RejectType,
    /// A rejection with any of these labels.
    RejectLabels,
}

impl FilterField for IdentityFilter {
    fn name(self) -> &'static str {
        self.into()
    }
}

impl FilterField for VerificationFilter {
    fn name(self) -> &'static str {
        self.into()
    }
}

/// What lists sort by (each list sorts by both; ties broken by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "camelCase")]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
}

impl SortField {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterSpec<F: 'static> {
    pub field: F,
    pub operators: &'static [Operator],
    pub kind: ValueKind,
}

/// What one list endpoint allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListSpec<F: 'static> {
    pub filters: &'static [FilterSpec<F>],
    pub sort_fields: &'static [SortField],
    pub default_sort: Sort,
}

impl<F: FilterField> ListSpec<F> {
    pub fn filter(&self, name: &str) -> Option<&'static FilterSpec<F>> {
        self.filters
            .iter()
            .find(|filter| filter.field.name() == name)
    }
}

#[cfg(test)]
impl<F: FilterField> ListSpec<F> {
    /// One filter for every field and operator the spec offers, for tests
    /// that the query code has an answer for each.
    pub fn every_offered_filter(&self) -> Vec<Filter<F>> {
        let value = || "x".to_string();
        self.filters
            .iter()
            .flat_map(|spec| {
                spec.operators.iter().map(move |operator| Filter {
                    field: spec.field,
                    condition: match (operator, spec.kind) {
                        (Operator::Eq, ValueKind::Keyed) => Condition::KeyEq {
                            key: value(),
                            value: value(),
                        },
                        (Operator::Eq, _) => Condition::Eq(value()),
                        (Operator::Like, _) => Condition::Like(value()),
                        (Operator::In, _) => Condition::In(vec![value()]),
                        (Operator::NotIn, _) => Condition::NotIn(vec![value()]),
                    },
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery<F> {
    /// In the order they appear in the query string; each field at most
    /// once.
    pub filters: Vec<Filter<F>>,
    pub sort: Sort,
    pub page: Page,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter<F> {
    pub field: F,
    pub condition: Condition,
}

/// A validated condition. Values are normalized for their [`ValueKind`]
/// (UUIDs lowercase hyphenated); `Like` holds the raw substring, with `%`
/// and `_` meant literally: turn it into SQL with [`like_pattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Eq(String),
    Like(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    /// A keyed filter's key holds exactly this value.
    KeyEq {
        key: String,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `number` is 1-based. `counted`: the answer carries the `total` of
    /// every match (the default; `page[total]=false` turns it off, and with
    /// it the one part of a numbered page whose cost grows with the list).
    Paged {
        size: u32,
        number: u32,
        counted: bool,
    },
    /// `page[after]` / `page[before]`: the `size` rows next to a cursor. The
    /// cursor is still the opaque text the client sent; the service layer
    /// checks its signature and scope.
    Keyset {
        size: u32,
        direction: Direction,
        cursor: String,
    },
    /// `all=true`: every matching row.
    All,
}

/// Which side of a cursor a keyset page lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `page[after]`: the rows that follow it in the list's order.
    After,
    /// `page[before]`: the rows that precede it.
    Before,
}

impl Direction {
    /// The query parameter that carries a cursor in this direction.
    pub fn param(self) -> &'static str {
        match self {
            Direction::After => "page[after]",
            Direction::Before => "page[before]",
        }
    }
}

impl Page {
    /// Rows to skip; 0 for [`Page::All`] and keyset pages.
    pub fn offset(&self) -> i64 {
        match self {
            // Cannot overflow: both factors fit in u32.
            Page::Paged { size, number, .. } => {
                i64::from(number.saturating_sub(1)) * i64::from(*size)
            }
            Page::Keyset { .. } | Page::All => 0,
        }
    }

    /// How many matches, in list order, a reader of this page must find
    /// before it can stop: `None` when it must visit every match (to count
    /// them, or to send them all). An uncounted page reads its rows, one
    /// more (is there a next page?) and, for a cursor page, one the other
    /// way.
    pub fn reach(&self) -> Option<i64> {
        match self {
            Page::Paged { counted: true, .. } | Page::All => None,
            Page::Paged { size, .. } | Page::Keyset { size, .. } => {
                Some(self.offset() + i64::from(*size) + 2)
            }
        }
    }

    /// Rows to return; `None` (no limit) for [`Page::All`].
    pub fn limit(&self) -> Option<i64> {
        match self {
            Page::Paged { size, .. } | Page::Keyset { size, .. } => Some(i64::from(*size)),
            Page::All => None,
        }
    }
}

impl Sort {
    /// The `sort` parameter that asks for this order (`-createdAt`).
    pub fn wire(self) -> String {
        let sign = if self.descending { "-" } else { "" };
        format!("{sign}{}", self.field.name())
    }

    /// The same key in the opposite direction: a page before a cursor is
    /// the page after it in the reversed order, read back to front.
    pub fn reversed(self) -> Sort {
        Sort {
            descending: !self.descending,
            ..self
        }
    }
}

impl<F: FilterField> ListQuery<F> {
    /// The filters in a canonical text form (sorted by parameter, values as
    /// normalized), so a cursor can name the query it belongs to whatever
    /// the order the parameters were sent in.
    pub fn filters_fingerprint(&self) -> String {
        let mut parts: Vec<String> = self
            .filters
            .iter()
            .map(|filter| format!("{}={:?}", filter.field.name(), filter.condition))
            .collect();
        parts.sort();
        parts.join("&")
    }
}

/// Builds a `LIKE` pattern matching `substring` anywhere, case-insensitively
/// when the column is lowercased too: use it as
/// `lower(col) LIKE pattern ESCAPE '\'`.
///
/// Lowercasing is Unicode-aware, which matches PostgreSQL's `lower`; SQLite's
/// `lower` only folds ASCII, so there non-ASCII letters match case-sensitively.
pub fn like_pattern(substring: &str) -> String {
    let lowered = substring.to_lowercase();
    let mut pattern = String::with_capacity(lowered.len() + 2);
    pattern.push('%');
    for c in lowered.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

const EQ: &[Operator] = &[Operator::Eq];
const EQ_LIKE: &[Operator] = &[Operator::Eq, Operator::Like];
const EQ_IN: &[Operator] = &[Operator::Eq, Operator::In];
const EQ_IN_NIN: &[Operator] = &[Operator::Eq, Operator::In, Operator::NotIn];
const TIMESTAMPS: &[SortField] = &[SortField::CreatedAt, SortField::UpdatedAt];
const NEWEST_FIRST: Sort = Sort {
    field: SortField::CreatedAt,
    descending: true,
};

pub static IDENTITY_LIST: ListSpec<IdentityFilter> = ListSpec {
    filters: &[
        FilterSpec {
            field: IdentityFilter::AppId,
            operators: EQ,
            kind: ValueKind::Uuid,
        },
        FilterSpec {
            field: IdentityFilter::Blocked,
            operators: EQ,
            kind: ValueKind::Bool,
        },
        FilterSpec {
            field: IdentityFilter::Email,
            operators: EQ_LIKE,
            kind: ValueKind::Text,
        },
        FilterSpec {
            field: IdentityFilter::Id,
            operators: EQ_IN,
            kind: ValueKind::Uuid,
        },
        FilterSpec {
            field: IdentityFilter::IdentityOwner,
            operators: EQ_IN,
            kind: ValueKind::Uuid,
        },
        FilterSpec {
            field: IdentityFilter::Metadata,
            operators: EQ,
            kind: ValueKind::Keyed,
        },
        FilterSpec {
            field: IdentityFilter::Name,
            operators: EQ_LIKE,
            kind: ValueKind::Text,
        },
        FilterSpec {
            field: IdentityFilter::RefId,
            operators: EQ_IN,
            kind: ValueKind::Text,
        },
        FilterSpec {
            field: IdentityFilter::RelatedPersonId,
            operators: EQ,
            kind: ValueKind::Uuid,
        },
        FilterSpec {
            field: IdentityFilter::RiskRating,
            operators: EQ_IN_NIN,
            kind: ValueKind::OneOf(&["low", "medium", "high"]),
        },
        FilterSpec {
            field: IdentityFilter::Type,
            operators: EQ,
            kind: ValueKind::OneOf(&["person", "company"]),
        },
    ],
    sort_fields: TIMESTAMPS,
    default_sort: NEWEST_FIRST,
};

pub static VERIFICATION_LIST: ListSpec<VerificationFilter> = ListSpec {
    filters: &[
        FilterSpec {
            field: VerificationFilter::Id,
            operators: EQ_IN,
            kind: ValueKind::Uuid,
        },
        FilterSpec {
            field: VerificationFilter::IdentityId,
            operators: EQ_IN,
            kind: ValueKind::Uuid,
        },
        FilterSpec {
            field: VerificationFilter::Status,
            operators: EQ_IN_NIN,
            kind: ValueKind::OneOf(&["pending", "inReview", "approved", "rejected"]),
        },
        FilterSpec {
            field: VerificationFilter::Level,
            operators: EQ_IN,
            kind: ValueKind::OneOf(&["basic", "enhanced"]),
        },
        FilterSpec {
            field: VerificationFilter::RejectType,
            operators: EQ_IN,
            kind: ValueKind::OneOf(&["retry", "final"]),
        },
        FilterSpec {
            field: VerificationFilter::RejectLabels,
            operators: EQ_IN,
            kind: ValueKind::OneOf(&[
                "documentUnreadable",
                "documentExpired",
                "documentMismatch",
                "selfieMismatch",
                "underage",
                "sanctionsMatch",
                "pepMatch",
                "fraudSuspicion",
                "duplicateIdentity",
                "other",
            ]),
        },
    ],
    sort_fields: TIMESTAMPS,
    default_sort: NEWEST_FIRST,
};

mod parse;
#[cfg(test)]
mod tests;
