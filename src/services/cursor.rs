//! The opaque cursors of `page[after]` / `page[before]`: HS256 JWTs that
//! hold a position in a list (the sort key's time and the row's id) and the
//! scope they were issued for (list, app, sort, filters).
//!
//! The position is what makes a deep page cost what the first does; the
//! signature keeps a client from steering it (or from reading another
//! app's position); the scope turns a cursor sent with another sort,
//! other filters or another key into a clear 400 instead of a page from
//! somewhere else. The signing key is shared by every replica through the
//! database (`tenancy::shared_secret`).

use chrono::{DateTime, NaiveDateTime};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::Cursor;
use crate::domain::errors::FieldError;
use crate::domain::ids::AppId;
use crate::domain::list_query::{Direction, FilterField, ListQuery};
use crate::error::ApiError;

/// The `aud` claim of every cursor, so no other token signed with the same
/// key is taken for one.
const AUDIENCE: &str = "kyc-api:list-cursor";

/// The name of the cursor key among the server's shared secrets.
pub const SECRET_NAME: &str = "list_cursor_key";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    aud: String,
    /// The list: `identities`, `verifications`.
    list: String,
    app: String,
    /// As the `sort` parameter writes it: `-createdAt`.
    sort: String,
    /// `ListQuery::filters_fingerprint`, hashed so the cursor stays short
    /// and does not repeat the filter values (an email, a name) in clear.
    filters: String,
    /// The sort key's time, in nanoseconds since the epoch.
    at: i64,
    id: String,
}

/// What a cursor must have been issued for to be accepted.
pub struct CursorScope {
    list: &'static str,
    app: String,
    sort: String,
    filters: String,
}

impl CursorScope {
    pub fn of<F: FilterField>(list: &'static str, app_id: &AppId, query: &ListQuery<F>) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(query.filters_fingerprint().as_bytes());
        CursorScope {
            list,
            app: app_id.as_str().to_owned(),
            sort: query.sort.wire(),
            filters: hex::encode(&digest[..16]),
        }
    }
}

/// Signs and opens cursors with one key.
#[derive(Clone)]
pub struct CursorSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for CursorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSigner(..)")
    }
}

impl CursorSigner {
    pub fn new(secret: &[u8]) -> Self {
        CursorSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// The cursor of `position` within `scope`.
    pub fn issue(&self, scope: &CursorScope, position: &Cursor) -> Result<String, ApiError> {
        let at = position.at.and_utc().timestamp_nanos_opt().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "a row's time is outside the cursor's range"
            ))
        })?;
        let claims = Claims {
            aud: AUDIENCE.into(),
            list: scope.list.into(),
            app: scope.app.clone(),
            sort: scope.sort.clone(),
            filters: scope.filters.clone(),
            at,
            id: position.id.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// The position a cursor names, if this server signed it for `scope`;
    /// otherwise a 400 naming the parameter it came in.
    pub fn open(
        &self,
        token: &str,
        direction: Direction,
        scope: &CursorScope,
    ) -> Result<Cursor, ApiError> {
        let refuse =
            |problem: &str| ApiError::Validation(vec![FieldError::new(direction.param(), problem)]);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["aud"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| {
                refuse("is not a cursor this server issued (altered, truncated or made up); use a value from a list answer's links")
            })?;
        if claims.list != scope.list {
            return Err(refuse(&format!(
                "is a cursor of the {} list, not of this one",
                claims.list
            )));
        }
        if claims.app != scope.app {
            return Err(refuse("was issued to another app"));
        }
        if claims.sort != scope.sort {
            return Err(refuse(&format!(
                "was issued for sort={}; send that sort with it, or start again without a cursor",
                claims.sort
            )));
        }
        if claims.filters != scope.filters {
            return Err(refuse(
                "was issued for other filters; send the same filters with it, or start again without a cursor",
            ));
        }
        Ok(Cursor {
            at: at_of(claims.at),
            id: claims.id,
        })
    }
}

fn at_of(nanos: i64) -> NaiveDateTime {
    DateTime::from_timestamp_nanos(nanos).naive_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::list_query::{IdentityFilter, IDENTITY_LIST, VERIFICATION_LIST};

    fn query(raw: &str) -> ListQuery<IdentityFilter> {
        ListQuery::parse(raw, &IDENTITY_LIST).unwrap()
    }

    fn field_and_message(result: Result<Cursor, ApiError>) -> (String, String) {
        match result {
            Err(ApiError::Validation(details)) => {
                (details[0].field.clone(), details[0].message.clone())
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_cursor_opens_only_in_its_own_scope() {
        let signer = CursorSigner::new(&[7; 32]);
        let app = AppId::new();
        let at = DateTime::from_timestamp_nanos(1_764_000_000_123_456_789).naive_utc();
        let position = Cursor {
            at,
            id: "0192f0c4-0000-7000-8000-000000000001".into(),
        };
        let issued_for = query("sort=-updatedAt&filter[name]=like:ann&filter[type]=person");
        let scope = CursorScope::of("identities", &app, &issued_for);
        let token = signer.issue(&scope, &position).unwrap();

        // The same query with its parameters in another order opens it, to
        // the nanosecond.
        let same = query("filter[type]=person&filter[name]=like:ann&sort=-updatedAt&page[size]=5");
        let opened = signer
            .open(
                &token,
                Direction::Before,
                &CursorScope::of("identities", &app, &same),
            )
            .unwrap();
        assert_eq!((opened.at, opened.id.as_str()), (at, position.id.as_str()));

        let refusals = [
            CursorScope::of("identities", &AppId::new(), &issued_for),
            CursorScope::of(
                "identities",
                &app,
                &query("sort=updatedAt&filter[name]=like:ann&filter[type]=person"),
            ),
            CursorScope::of(
                "identities",
                &app,
                &query("sort=-updatedAt&filter[name]=like:an&filter[type]=person"),
            ),
            CursorScope::of(
                "verifications",
                &app,
                &ListQuery::parse("sort=-updatedAt", &VERIFICATION_LIST).unwrap(),
            ),
        ];
        let messages: Vec<String> = refusals
            .iter()
            .map(|scope| field_and_message(signer.open(&token, Direction::After, scope)).1)
            .collect();
        assert!(messages[0].contains("another app"), "{messages:?}");
        assert!(messages[1].contains("sort=-updatedAt"), "{messages:?}");
        assert!(messages[2].contains("other filters"), "{messages:?}");
        assert!(messages[3].contains("identities list"), "{messages:?}");
    }

    #[test]
    fn altered_or_foreign_cursors_are_refused_naming_the_parameter() {
        let signer = CursorSigner::new(&[7; 32]);
        let app = AppId::new();
        let scope = CursorScope::of("identities", &app, &query(""));
        let position = Cursor {
            at: DateTime::from_timestamp_nanos(0).naive_utc(),
            id: "x".into(),
        };
        let token = signer.issue(&scope, &position).unwrap();
        let mut altered = token.clone().into_bytes();
        let middle = altered.len() / 2;
        altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
        let other_key = CursorSigner::new(&[8; 32])
            .issue(&scope, &position)
            .unwrap();
        for bad in [
            String::from_utf8(altered).unwrap(),
            other_key,
            token[..token.len() - 3].to_string(),
            "nope".into(),
        ] {
            let (field, message) = field_and_message(signer.open(&bad, Direction::After, &scope));
            assert_eq!(field, "page[after]");
            assert!(
                message.contains("not a cursor this server issued"),
                "{message}"
            );
        }
    }
}
