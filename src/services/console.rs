//! Review console sessions: a reviewer signs in with an API key that has
//! `kyc:review`; the browser then holds a short-lived signed token (HS256
//! JWT, 15 minutes, renewed while in use) naming a `console_sessions` row.
//! Every request checks the token, then the row (not signed out) and the
//! key (not revoked, still `kyc:review`), so sign-out and revocation end a
//! session at its next request on every replica.

use chrono::{NaiveDateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::db::console::{self as q, ConsoleSessionRow};
use crate::db::{self, apps as keys_q, Db, DbConnection};
use crate::domain::api_key::Scope;
use crate::domain::audit::RequestContext;
use crate::domain::ids::{ApiKeyId, AppId, ConsoleSessionId};
use crate::error::ApiError;
use crate::services::tenancy;
use crate::services::write::{Actor, Change, Operation, WritePath};

/// The server secret that signs session tokens (shared by replicas).
pub const SECRET_NAME: &str = "console_session_key";
const AUDIENCE: &str = "kyc-api:console";
/// How long a token lasts without use.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::minutes(15);
/// A token older than this is renewed on its next use.
pub const RENEW_AFTER: chrono::Duration = chrono::Duration::minutes(1);
/// However busy, a session ends this long after its sign-in (a working
/// day); maintenance then deletes its row.
pub const MAX_SESSION_AGE: chrono::Duration = chrono::Duration::hours(12);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    aud: String,
    sid: String,
    app: String,
    key: String,
    /// The session's CSRF token: every form carries it.
    csrf: String,
    iat: i64,
    exp: i64,
}

/// A signed-in reviewer, as the token says.
#[derive(Clone)]
pub struct Session {
    pub id: ConsoleSessionId,
    pub app_id: AppId,
    pub key_id: ApiKeyId,
    csrf: String,
    issued_at: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The token forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a form's token is this session's (constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.csrf.as_bytes().ct_eq(given.as_bytes()).into()
    }

    /// Whether its token should be issued again (it is in use).
    pub fn due_for_renewal(&self) -> bool {
        Utc::now().timestamp() - self.issued_at >= RENEW_AFTER.num_seconds()
    }

    /// The reviewer, as the write path records them: their key.
    pub fn actor(&self, request: RequestContext) -> Actor {
        Actor::Api {
            app_id: self.app_id.clone(),
            key_id: self.key_id.clone(),
            request,
        }
    }
}

/// A random token for a form (hex of 32 random bytes).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[derive(Clone)]
pub struct SessionSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSigner(..)")
    }
}

impl SessionSigner {
    pub fn new(secret: &[u8]) -> Self {
        SessionSigner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// The session's token, issued now for [`SESSION_TTL`].
    pub fn issue(&self, session: &Session) -> Result<String, ApiError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            aud: AUDIENCE.to_owned(),
            sid: session.id.to_string(),
            app: session.app_id.to_string(),
            key: session.key_id.to_string(),
            csrf: session.csrf.clone(),
            iat: now,
            exp: now + SESSION_TTL.num_seconds(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("console token: {e}")))
    }

    /// The session a token names, if it is ours and not expired.
    pub fn open(&self, token: &str) -> Option<Session> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        Some(Session {
            id: ConsoleSessionId::parse(&claims.sid)?,
            app_id: AppId::parse(&claims.app)?,
            key_id: ApiKeyId::parse(&claims.key)?,
            csrf: claims.csrf,
            issued_at: claims.iat,
        })
    }
}

/// Why a console request is not let in.
#[derive(Debug)]
pub enum Refused {
    /// Sign in (again): no session, or it ended.
    SignIn,
    /// The key is valid but lacks `kyc:review`.
    NotAReviewer,
}

/// Signs a reviewer in: the key must be valid and have `kyc:review`.
pub async fn sign_in(
    db: &Db,
    write: &WritePath,
    presented: String,
    request: RequestContext,
) -> Result<Result<Session, Refused>, ApiError> {
    let owner = db
        .run(move |conn| match tenancy::authenticate(conn, &presented) {
            Ok(owner) => Ok(Some(owner)),
            Err(ApiError::ApiKeyInvalid) => Ok(None),
            Err(other) => Err(other),
        })
        .await?;
    let Some(owner) = owner else {
        return Ok(Err(Refused::SignIn));
    };
    if !owner.scopes.allows(Scope::KycReview) {
        return Ok(Err(Refused::NotAReviewer));
    }
    let session = Session {
        id: ConsoleSessionId::new(),
        app_id: owner.app_id,
        key_id: owner.key_id,
        csrf: random_token(),
        issued_at: Utc::now().timestamp(),
    };
    let row = ConsoleSessionRow {
        id: session.id.clone(),
        app_id: session.app_id.clone(),
        api_key_id: session.key_id.clone(),
        created_at: db::now(),
        ended_at: None,
    };
    write
        .run(
            session.actor(request),
            Operation::ConsoleSignIn,
            move |tx| {
                q::insert(tx.conn(), &row)?;
                tx.record(Change::ConsoleSessionStarted {
                    app_id: row.app_id.clone(),
                    session_id: row.id.clone(),
                });
                Ok::<_, ApiError>(())
            },
        )
        .await?;
    Ok(Ok(session))
}

/// Whether the session may go on: not signed out, its key not revoked and
/// still a reviewer's.
pub fn check(conn: &mut DbConnection, session: &Session) -> Result<Result<(), Refused>, ApiError> {
    let Some(row) = q::find(conn, &session.id)? else {
        return Ok(Err(Refused::SignIn));
    };
    if row.ended_at.is_some()
        || row.created_at < db::now() - MAX_SESSION_AGE
        || row.app_id != session.app_id
        || row.api_key_id != session.key_id
    {
        return Ok(Err(Refused::SignIn));
    }
    let Some(key) = keys_q::find_key(conn, &session.key_id)? else {
        return Ok(Err(Refused::SignIn));
    };
    if key.revoked_at.is_some() || key.app_id != session.app_id {
        return Ok(Err(Refused::SignIn));
    }
    if !key.scopes.allows(Scope::KycReview) {
        return Ok(Err(Refused::NotAReviewer));
    }
    Ok(Ok(()))
}

/// Ends the session (signing out twice is harmless).
pub async fn sign_out(
    write: &WritePath,
    session: &Session,
    request: RequestContext,
) -> Result<(), ApiError> {
    let (id, app_id) = (session.id.clone(), session.app_id.clone());
    write
        .run(
            session.actor(request),
            Operation::ConsoleSignOut,
            move |tx| {
                let at: NaiveDateTime = db::now();
                if q::end(tx.conn(), &id, at)? {
                    tx.record(Change::ConsoleSessionEnded {
                        app_id,
                        session_id: id,
                    });
                }
                Ok::<_, ApiError>(())
            },
        )
        .await
}

/// Deletes the rows of sessions past [`MAX_SESSION_AGE`] (signed out or
/// not, they are over); safe on several replicas at once.
pub fn prune(write: &WritePath) -> Result<usize, ApiError> {
    let before = db::now() - MAX_SESSION_AGE;
    write.run_blocking(Actor::Server, Operation::ConsoleSessionPrune, |tx| {
        Ok::<_, ApiError>(q::prune(tx.conn(), before)?)
    })
}

/// One line of the review queue: an open verification and whose it is.
#[derive(Debug, Serialize)]
pub struct QueueEntry {
    pub verification: crate::views::VerificationView,
    pub name: String,
    pub email: String,
}

/// The most lines the queue and a search show.
pub const QUEUE_SIZE: i64 = 100;

/// Open verifications (`pending`, `inReview`, or the one status asked
/// for), oldest first, optionally of one level.
pub fn queue(
    conn: &mut DbConnection,
    storage: &crate::storage::Storage,
    keys: &crate::domain::crypto::KeyRing,
    app_id: &AppId,
    level: Option<crate::domain::kyc::Level>,
    status: Option<crate::domain::kyc::VerificationStatus>,
) -> Result<Vec<QueueEntry>, ApiError> {
    use crate::domain::list_query::{ListQuery, VERIFICATION_LIST};
    use crate::services::listing::Listing;
    let status = status.map_or("in:pending,inReview".to_owned(), |s| s.as_str().to_owned());
    let mut query =
        format!("filter[status]={status}&sort=createdAt&page[size]={QUEUE_SIZE}&page[total]=false");
    if let Some(level) = level {
        query.push_str(&format!("&filter[level]={level}"));
    }
    let query = ListQuery::parse(&query, &VERIFICATION_LIST).map_err(ApiError::Validation)?;
    // The queue shows no total: its rows only.
    let rows = crate::services::kyc::VerificationListing::after(
        conn,
        app_id,
        &query,
        &(),
        None,
        0,
        QUEUE_SIZE,
    )?;
    let mut ids: Vec<&crate::domain::ids::IdentityId> =
        rows.iter().map(|r| &r.identity_id).collect();
    ids.sort();
    ids.dedup();
    let identities = identities_by_id(conn, storage, keys, app_id, &ids)?;
    let verifications = crate::services::kyc::verification_views(conn, rows)?;
    Ok(verifications
        .into_iter()
        .map(|verification| {
            let (name, email) = identities
                .iter()
                .find(|i| i.id == verification.identity_id)
                .map(|i| (i.name.clone(), i.email.as_str().to_owned()))
                .unwrap_or_default();
            QueueEntry {
                verification,
                name,
                email,
            }
        })
        .collect())
}

fn identities_by_id(
    conn: &mut DbConnection,
    storage: &crate::storage::Storage,
    keys: &crate::domain::crypto::KeyRing,
    app_id: &AppId,
    ids: &[&crate::domain::ids::IdentityId],
) -> Result<Vec<crate::views::IdentityView>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
    search_with(
        conn,
        storage,
        keys,
        app_id,
        &format!(
            "filter[id]=in:{}&page[size]=100&page[total]=false",
            list.join(",")
        ),
    )
}

fn search_with(
    conn: &mut DbConnection,
    storage: &crate::storage::Storage,
    keys: &crate::domain::crypto::KeyRing,
    app_id: &AppId,
    query: &str,
) -> Result<Vec<crate::views::IdentityView>, ApiError> {
    use crate::domain::list_query::{ListQuery, IDENTITY_LIST};
    use crate::services::listing::Listing;
    let query = ListQuery::parse(query, &IDENTITY_LIST).map_err(ApiError::Validation)?;
    use crate::services::identities::IdentityListing;
    // The console shows no total: the page without one, planned for that
    // (a common substring is walked only as far as its first rows).
    let plan = IdentityListing::plan(conn, app_id, &query)?;
    let size = query.page.limit().unwrap_or(QUEUE_SIZE);
    let rows = IdentityListing::after(conn, app_id, &query, &plan, None, 0, size)?;
    crate::services::identities::views_of(conn, storage, keys, rows)
}

/// Identities whose email or name holds `text`, or whose refId is it.
pub fn search(
    conn: &mut DbConnection,
    storage: &crate::storage::Storage,
    keys: &crate::domain::crypto::KeyRing,
    app_id: &AppId,
    text: &str,
) -> Result<Vec<crate::views::IdentityView>, ApiError> {
    let encoded: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let mut found: Vec<crate::views::IdentityView> = Vec::new();
    for query in [
        format!("filter[email]=like:{encoded}&page[size]={QUEUE_SIZE}&page[total]=false"),
        format!("filter[name]=like:{encoded}&page[size]={QUEUE_SIZE}&page[total]=false"),
        format!("filter[refId]={encoded}&page[size]={QUEUE_SIZE}&page[total]=false"),
    ] {
        // A text one filter cannot take (a refId with a comma) finds nothing
        // there rather than failing the search.
        let Ok(more) = search_with(conn, storage, keys, app_id, &query) else {
            continue;
        };
        for identity in more {
            if found.iter().all(|f| f.id != identity.id) {
                found.push(identity);
            }
        }
    }
    Ok(found)
}

/// One entry of an identity's history as a reviewer sees it: with the
/// internal comment.
#[derive(Debug, Serialize)]
pub struct ReviewHistoryEntry {
    pub kind: String,
    pub verification_id: Option<String>,
    pub level: Option<String>,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub reject_type: Option<String>,
    pub reject_labels: Vec<String>,
    pub client_comment: Option<String>,
    pub internal_comment: Option<String>,
    pub at: String,
}

/// What the identity page shows.
#[derive(Debug, Serialize)]
pub struct IdentityPage {
    pub identity: crate::views::IdentityView,
    pub verifications: Vec<crate::views::VerificationView>,
    pub history: Vec<ReviewHistoryEntry>,
    pub operations: Vec<crate::domain::operations::OperationState>,
    pub audit: Vec<crate::views::AuditRecordView>,
}

pub fn identity_page(
    conn: &mut DbConnection,
    storage: &crate::storage::Storage,
    keys: &crate::domain::crypto::KeyRing,
    rules: &crate::domain::operations::OperationRules,
    app_id: &AppId,
    id: &crate::domain::ids::IdentityId,
) -> Result<IdentityPage, ApiError> {
    use crate::services::kyc;
    let identity = crate::services::identities::get(conn, storage, keys, app_id, id)?;
    let rows = crate::db::kyc::of_identities(conn, app_id, &[id])?;
    let verifications = kyc::verification_views(conn, rows)?;
    let history = crate::db::kyc::events_of_identity(conn, app_id, id)?
        .into_iter()
        .map(|row| ReviewHistoryEntry {
            kind: row.event_type,
            verification_id: row.verification_id.map(|v| v.to_string()),
            level: row.level.map(|l| l.to_string()),
            status: row.status.map(|s| s.to_string()),
            reason: row.reason,
            reject_type: row.reject_type.map(|t| t.to_string()),
            reject_labels: row
                .reject_labels
                .map(|l| l.labels().iter().map(|x| x.to_string()).collect())
                .unwrap_or_default(),
            client_comment: row.client_comment,
            internal_comment: row.internal_comment,
            at: crate::domain::time::format_timestamp(row.created_at),
        })
        .collect();
    let operations = kyc::operations(conn, rules, app_id, id)?;
    let audit = crate::services::audit::list(
        conn,
        app_id,
        &format!("filter[identityId]={id}&page[size]={QUEUE_SIZE}"),
    )?
    .data;
    Ok(IdentityPage {
        identity,
        verifications,
        history,
        operations,
        audit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            id: ConsoleSessionId::new(),
            app_id: AppId::new(),
            key_id: ApiKeyId::new(),
            csrf: random_token(),
            issued_at: Utc::now().timestamp(),
        }
    }

    #[test]
    fn tokens_open_only_with_their_key_and_before_they_expire() {
        let signer = SessionSigner::new(b"console test key");
        let session = session();
        let token = signer.issue(&session).unwrap();
        let opened = signer.open(&token).expect("opens");
        assert_eq!(opened.id, session.id);
        assert_eq!(opened.app_id, session.app_id);
        assert_eq!(opened.key_id, session.key_id);
        assert!(opened.csrf_matches(session.csrf()));
        assert!(!opened.csrf_matches("forged"));
        assert!(!opened.due_for_renewal(), "just issued");

        assert!(SessionSigner::new(b"another key").open(&token).is_none());
        let mut tampered = token.clone();
        tampered.insert(tampered.len() - 3, 'x');
        assert!(signer.open(&tampered).is_none());

        // Expired, or made for another purpose with the same key: refused.
        let expired = Claims {
            aud: AUDIENCE.to_owned(),
            sid: session.id.to_string(),
            app: session.app_id.to_string(),
            key: session.key_id.to_string(),
            csrf: "x".into(),
            iat: 0,
            exp: Utc::now().timestamp() - 1,
        };
        let key = EncodingKey::from_secret(b"console test key");
        let header = Header::new(Algorithm::HS256);
        assert!(signer
            .open(&jsonwebtoken::encode(&header, &expired, &key).unwrap())
            .is_none());
        let other = Claims {
            aud: "kyc-api:list-cursor".into(),
            exp: Utc::now().timestamp() + 60,
            ..expired
        };
        assert!(signer
            .open(&jsonwebtoken::encode(&header, &other, &key).unwrap())
            .is_none());
    }

    #[test]
    fn an_older_token_is_due_for_renewal() {
        let session = Session {
            issued_at: Utc::now().timestamp() - RENEW_AFTER.num_seconds(),
            ..session()
        };
        assert!(session.due_for_renewal());
        assert!(
            !format!("{session:?}").contains(session.csrf()),
            "no token in Debug"
        );
    }
}
