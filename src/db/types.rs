//! Domain values in text columns, on every backend: one `ToSql`/`FromSql`
//! pair per type, all written by one macro from the type's `StoredText`.
//! (The types themselves derive Diesel's `AsExpression`/`FromSqlRow`, which
//! only say "stored as Text".)

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

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
                let text = String::from_sql(bytes)?;
                <$t as StoredText>::from_stored(&text).ok_or_else(|| {
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
