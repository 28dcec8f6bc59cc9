//! Typed ids. Each names one kind of record, so an identity id cannot be
//! passed where a verification id is expected, and each holds a valid UUID
//! in its canonical text form (lowercase, hyphenated): the form stored in
//! the database, compared in SQL and answered on the wire.

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use super::stored::StoredText;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident($generate:ident);)*) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh id (random, or time-ordered where the type says so).
            pub fn new() -> Self {
                Self::from_uuid(Uuid::$generate())
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id.hyphenated().to_string())
            }

            /// Any form the `uuid` crate reads (hyphenated, simple, braced,
            /// URN, any letter case), kept in the canonical form.
            pub fn parse(s: &str) -> Option<Self> {
                Uuid::parse_str(s).ok().map(Self::from_uuid)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self::from_uuid(id)
            }
        }

        impl StoredText for $name {
            fn stored(&self) -> &str {
                &self.0
            }

            fn from_stored(s: &str) -> Option<Self> {
                Self::parse(s)
            }
        }
    )*};
}

id_type! {
    /// An app: the tenant that owns everything else.
    AppId(new_v4);
    /// An API key (not the secret: its public id).
    ApiKeyId(new_v4);
    /// A person or company.
    IdentityId(new_v4);
    /// A document or face image record.
    DocumentId(new_v4);
    /// A verification of one identity at one level.
    VerificationId(new_v4);
    /// An entry of an identity's history.
    HistoryEntryId(new_v4);
    /// An event (`GET /events`, webhooks): UUIDv7, so ids sort by time.
    EventId(now_v7);
    /// A webhook endpoint of an app.
    WebhookEndpointId(new_v4);
    /// One event's delivery to one endpoint (its attempts share it).
    DeliveryId(now_v7);
    /// One attempt of a delivery.
    AttemptId(now_v7);
    /// An audit record: UUIDv7.
    AuditId(now_v7);
    /// A company's relation to one of its people.
    RelationId(new_v4);
    /// A review console sign-in.
    ConsoleSessionId(new_v4);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_in_canonical_form() {
        let id = IdentityId::parse("{A1A2A3A4-B1B2-C1C2-D1D2-D3D4D5D6D7D8}").unwrap();
        assert_eq!(id.as_str(), "a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8");
        assert_eq!(
            IdentityId::parse("a1a2a3a4b1b2c1c2d1d2d3d4d5d6d7d8"),
            Some(id)
        );
        assert_eq!(IdentityId::parse("not-a-uuid"), None);
        assert_eq!(IdentityId::new().as_str().len(), 36);
    }
}
