//! Domain values in text columns, on every backend: one `ToSql`/`FromSql`
//! pair per type, all written by one macro from the type's `StoredText`.
//! (The types themselves derive Diesel's `AsExpression`/`FromSqlRow`, which
//! only say "stored as Text".)

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Text, Timestamp};
use diesel::sqlite::{Sqlite, SqliteType};

use super::MultiBackend;

use crate::domain::api_key::Scopes;
use crate::domain::decisions::{RejectLabels, RejectType};
use crate::domain::document::{DocumentLocation, DocumentSide, DocumentType};
use crate::domain::events::EventType;
use crate::domain::identity::{Country, Email, Gender, IdentityKind, RefId};
use crate::domain::ids::{
    ApiKeyId, AppId, AttemptId, ConsoleSessionId, DeliveryId, DocumentId, EventId, HistoryEntryId,
    IdentityId, RelationId, VerificationId, WebhookEndpointId,
};
use crate::domain::kyc::{Level, RiskRating, VerificationStatus};
use crate::domain::relations::RelationRole;
use crate::domain::stored::StoredText;
use crate::domain::webhooks::DeliveryStatus;

macro_rules! text_columns {
    ($($t:ty),* $(,)?) => {$(
        impl<DB> ToSql<Text, DB> for $t
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.stored().to_sql(out)
            }
        }

        impl<DB> FromSql<Text, DB> for $t
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                <$t as StoredText>::from_stored_string(String::from_sql(bytes)?).map_err(|text| {
                    format!("{text:?} is not a stored {}", stringify!($t)).into()
                })
            }
        }
    )*};
}

text_columns!(
    AppId,
    ApiKeyId,
    IdentityId,
    DocumentId,
    VerificationId,
    HistoryEntryId,
    EventId,
    WebhookEndpointId,
    DeliveryId,
    AttemptId,
    RelationId,
    ConsoleSessionId,
    RelationRole,
    DeliveryStatus,
    IdentityKind,
    Gender,
    Country,
    Email,
    RefId,
    DocumentType,
    DocumentSide,
    DocumentLocation,
    Level,
    VerificationStatus,
    RiskRating,
    RejectType,
    RejectLabels,
    Scopes,
    EventType,
);

/// A non-null timestamp column read back: `#[diesel(deserialize_as =
/// StoredTime)]` on a row's `NaiveDateTime` field. On SQLite a timestamp is
/// text, and Diesel tries up to 18 chrono format strings on each one (7 %
/// of an `all=true` download); the server writes one layout only (`%F
/// %T%.f`, [`crate::domain::time`]'s microseconds), which is read here
/// directly, anything else still going through Diesel's own parsing.
/// PostgreSQL's binary timestamps are read by Diesel as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct StoredTime(pub NaiveDateTime);

impl From<StoredTime> for NaiveDateTime {
    fn from(time: StoredTime) -> Self {
        time.0
    }
}

impl FromSql<Timestamp, Sqlite> for StoredTime {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        if value.value_type() == Some(SqliteType::Text) {
            if let Some(time) = parse_written_time(value.read_text()) {
                return Ok(StoredTime(time));
            }
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(StoredTime)
    }
}

impl FromSql<Timestamp, Pg> for StoredTime {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(StoredTime)
    }
}

impl FromSql<Timestamp, MultiBackend> for StoredTime {
    fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional fraction of 1 to 9 digits, the
/// layout `%F %T%.f` writes; `None` for anything else.
fn parse_written_time(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(20..b.len())? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let time =
        NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every time the server writes reads back exactly.
        #[test]
        fn written_times_read_back(secs in 0i64..8_000_000_000, micros in 0u32..1_000_000) {
            let time = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap().naive_utc();
            let text = time.format("%F %T%.f").to_string();
            prop_assert_eq!(parse_written_time(&text), Some(time));
        }

        /// Anything read directly is what chrono reads from the same text.
        #[test]
        fn agrees_with_chrono(text in "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?") {
            if let Some(time) = parse_written_time(&text) {
                prop_assert_eq!(NaiveDateTime::parse_from_str(&text, "%F %T%.f").ok(), Some(time));
            }
        }
    }

    #[test]
    fn other_layouts_are_left_to_diesel() {
        for text in [
            "2025-01-01T00:00:00",
            "2025-01-01 00:00",
            "2025-13-01 00:00:00",
            "2025-01-01 00:00:00.",
            "2025-01-01 00:00:00Z",
        ] {
            assert_eq!(parse_written_time(text), None, "{text}");
        }
    }
}
