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
                Self(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).to_owned())
            }

            /// Any form the `uuid` crate reads (hyphenated, simple, braced,
            /// URN, any letter case), kept in the canonical form.
            pub fn parse(s: &str) -> Option<Self> {
                Uuid::parse_str(s).ok().map(Self::from_uuid)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether this is a UUIDv7 (time-ordered; the version digit of
            /// the canonical form is `7`).
            pub fn is_time_ordered(&self) -> bool {
                self.0.as_bytes().get(14) == Some(&b'7')
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

            /// What this type writes is canonical, so stored text in that
            /// form is kept as read; anything else is parsed (and
            /// normalized) as on input.
            fn from_stored_string(s: String) -> Result<Self, String> {
                if is_canonical(&s) {
                    Ok(Self(s))
                } else {
                    Self::parse(&s).ok_or(s)
                }
            }
        }
    )*};
}

/// Whether `s` is a UUID in canonical text: lowercase hex in 8-4-4-4-12
/// groups.
fn is_canonical(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

id_type! {
    /// An app: the tenant that owns everything else.
    AppId(new_v4);
    /// An API key (not the secret: its public id).
    ApiKeyId(new_v4);
    /// A person or company: UUIDv7, so ids sort by creation time, and the
    /// indexes that find an identity's documents, verifications and
    /// history by its id keep the identities of one time range together
    /// (an `all=true` list reads them chunk by chunk in that order: 30 %
    /// faster than with random ids; BENCHMARKS.md, "Performance, third
    /// round"). The time in it is the identity's `createdAt`, which every
    /// answer that carries the id already shows.
    IdentityId(now_v7);
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
        assert!(IdentityId::new().is_time_ordered());
        assert!(!DocumentId::new().is_time_ordered());
    }

    proptest::proptest! {
        /// Stored text reads back as `parse` reads it, whether or not it is
        /// the canonical form kept as read.
        #[test]
        fn stored_ids_read_as_parsed(
            id in proptest::prelude::any::<u128>(),
            form in 0..4usize,
            noise in "[0-9a-zA-Z{}-]{0,40}",
        ) {
            let id = Uuid::from_u128(id);
            let text = match form {
                0 => id.hyphenated().to_string(),
                1 => id.hyphenated().to_string().to_uppercase(),
                2 => id.simple().to_string(),
                _ => noise,
            };
            proptest::prop_assert_eq!(
                IdentityId::from_stored_string(text.clone()).ok(),
                IdentityId::parse(&text)
            );
        }
    }
}
