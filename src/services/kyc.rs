//! The KYC lifecycle: verifications start from documents, change status by
//! decisions (an operator's review, a provider's result, the sandbox), and
//! every change lands in the identity's history.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;

use crate::db::identities::{self as identity_q, IdentityRow, IdentityState};
use crate::db::kyc::VerificationQuery;
use crate::db::kyc::{self as q, EventRow, StatusChange, VerificationRow};
use crate::db::relations as relations_q;
use crate::db::Cursor;
use crate::db::{self, DbConnection};
use crate::domain::crypto::KeyRing;
use crate::domain::decisions::{Decision, RejectType};
use crate::domain::document::DocumentType;
use crate::domain::identity::Email;
use crate::domain::identity::IdentityKind;
use crate::domain::ids::{AppId, HistoryEntryId, IdentityId, VerificationId};
use crate::domain::kyc::{levels_supported_by, Level, VerificationStatus};
use crate::domain::list_query::{ListSpec, Sort, VerificationFilter, VERIFICATION_LIST};
use crate::domain::operations::{
    KycFacts, OperationRules, OperationState, RelatedPartyFacts, Rule,
};
use crate::domain::relations::Ownership;
use crate::error::{ApiError, Refusal};
use crate::services::listing::Listing;
use crate::services::write::{Change, Tx};
use crate::storage::Storage;
use crate::views::{
    DecisionView, IdentityView, KycStatusView, VerificationEventView, VerificationView,
};
use diesel::QueryResult;

pub const EVENT_VERIFICATION: &str = "verification";
pub const EVENT_BLOCKED: &str = "blocked";
pub const EVENT_UNBLOCKED: &str = "unblocked";

fn identity_not_found() -> ApiError {
    ApiError::refused(Refusal::IdentityNotFound, "No identity with this id.")
}

fn verification_not_found() -> ApiError {
    ApiError::refused(
        Refusal::VerificationNotFound,
        "No verification with this id.",
    )
}

/// A time strictly after `previous`, so that history entries written in one
/// transaction keep their order.
fn after(previous: NaiveDateTime) -> NaiveDateTime {
    db::now().max(previous + chrono::Duration::microseconds(1))
}

/// Adds the verification's history entry for `status`: its decision's
/// reason, rejection and comments (none for a start).
fn record(
    tx: &mut Tx<'_, '_>,
    verification: &VerificationRow,
    status: VerificationStatus,
    decision: Option<&Decision>,
    at: NaiveDateTime,
) -> Result<(), ApiError> {
    let rejection = decision.and_then(Decision::rejection);
    q::insert_event(
        tx.conn(),
        &EventRow {
            id: HistoryEntryId::new(),
            app_id: verification.app_id.clone(),
            identity_id: verification.identity_id.clone(),
            event_type: EVENT_VERIFICATION.to_string(),
            verification_id: Some(verification.id.clone()),
            level: Some(verification.level),
            status: Some(status),
            reason: decision.and_then(|d| d.reason.clone()),
            created_at: at,
            reject_type: rejection.map(|r| r.reject_type),
            reject_labels: rejection.and_then(|r| r.labels.clone()),
            client_comment: decision.and_then(|d| d.client_comment.clone()),
            internal_comment: decision.and_then(|d| d.internal_comment.clone()),
        },
    )?;
    Ok(())
}

/// A level whose latest verification was rejected for good takes no new
/// one.
fn refuse_if_final(level: Level, latest: Option<&VerificationRow>) -> Result<(), ApiError> {
    match latest {
        Some(row) if row.reject_type == Some(RejectType::Final) => Err(ApiError::refused(
            Refusal::VerificationRejectedFinal,
            format!(
                "The identity's {level} verification was rejected as final: no new {level} verification is accepted."
            ),
        )),
        _ => Ok(()),
    }
}

fn start(
    tx: &mut Tx<'_, '_>,
    identity: &IdentityRow,
    level: Level,
    at: NaiveDateTime,
) -> Result<VerificationRow, ApiError> {
    let row = VerificationRow {
        id: VerificationId::new(),
        app_id: identity.app_id.clone(),
        identity_id: identity.id.clone(),
        level,
        status: VerificationStatus::Pending,
        reason: None,
        risk_rating: None,
        created_at: at,
        updated_at: at,
        reject_type: None,
        reject_labels: None,
        client_comment: None,
    };
    q::insert_verification(tx.conn(), &row)?;
    tx.record(Change::VerificationCreated {
        app_id: row.app_id.clone(),
        identity_id: row.identity_id.clone(),
        verification_id: row.id.clone(),
    });
    record(tx, &row, VerificationStatus::Pending, None, at)?;
    // Its answer now: pending, with that one history entry.
    tx.answered_verification(VerificationView {
        id: row.id.clone(),
        identity_id: row.identity_id.clone(),
        level: row.level,
        status: row.status,
        reason: None,
        risk_rating: None,
        created_at: at,
        updated_at: at,
        decision: DecisionView::default(),
        history: vec![VerificationEventView {
            status: Some(VerificationStatus::Pending),
            reason: None,
            created_at: at,
            decision: DecisionView::default(),
        }],
    });
    Ok(row)
}

/// The latest verification per level of one identity.
fn latest_by_level(
    conn: &mut DbConnection,
    app_id: &AppId,
    identity_id: &IdentityId,
) -> Result<BTreeMap<Level, VerificationRow>, ApiError> {
    let mut latest = BTreeMap::new();
    for row in q::of_identities(conn, app_id, &[identity_id])? {
        latest.entry(row.level).or_insert(row);
    }
    Ok(latest)
}

/// Starts the verifications the identity's documents now allow: a level
/// with no verification yet, or whose latest was rejected and whose
/// documents were just replaced. Called after documents change; returns
/// the verifications it started.
///
/// `new_identity`: the identity was created in this transaction, so it has
/// no earlier verifications and looking for them is skipped.
pub fn start_verifications(
    tx: &mut Tx<'_, '_>,
    identity: &IdentityRow,
    documents: &[DocumentType],
    new_identity: bool,
) -> Result<Vec<VerificationRow>, ApiError> {
    let supported = levels_supported_by(documents.iter().copied());
    if supported.is_empty() {
        return Ok(Vec::new());
    }
    let latest = if new_identity {
        BTreeMap::new()
    } else {
        latest_by_level(tx.read(), &identity.app_id, &identity.id)?
    };
    let mut at = db::now();
    let mut started = Vec::new();
    for level in supported {
        let fresh_needed = match latest.get(&level) {
            None => true,
            Some(row) => row.status == VerificationStatus::Rejected,
        };
        if fresh_needed {
            refuse_if_final(level, latest.get(&level))?;
        }
        if fresh_needed {
            started.push(start(tx, identity, level, at)?);
            at = after(at);
        }
    }
    Ok(started)
}

/// The effects of a decision on the verification, its history and the
/// identity (confirmation on basic approval, risk rating).
fn apply_decision(
    tx: &mut Tx<'_, '_>,
    verification: &VerificationRow,
    decision: &Decision,
    at: NaiveDateTime,
) -> Result<(), ApiError> {
    let current = verification.status;
    let next = decision.status();
    current
        .transition(next)
        .map_err(|e| ApiError::refused(Refusal::InvalidStatusTransition, e.message()))?;
    let rejection = decision.rejection();
    q::update_status(
        tx.conn(),
        &verification.app_id,
        &verification.id,
        &StatusChange {
            status: next,
            reason: decision.reason.as_deref(),
            risk_rating: decision.risk_rating.or(verification.risk_rating),
            updated_at: at,
            reject_type: rejection.map(|r| r.reject_type),
            reject_labels: rejection.and_then(|r| r.labels.as_ref()),
            client_comment: decision.client_comment.as_deref(),
        },
    )?;
    tx.record(Change::VerificationStatusChanged {
        app_id: verification.app_id.clone(),
        identity_id: verification.identity_id.clone(),
        verification_id: verification.id.clone(),
        from: current.as_str(),
        to: next.as_str(),
    });
    record(tx, verification, next, Some(decision), at)?;
    let risk_rating = decision.risk_rating;

    let confirms = verification.level == Level::Basic && next == VerificationStatus::Approved;
    if confirms || risk_rating.is_some() {
        let identity = identity_q::find_live_for_update(
            tx.read(),
            &verification.app_id,
            &verification.identity_id,
        )?
        .ok_or_else(identity_not_found)?;
        let mut fields = Vec::new();
        let mut state = IdentityState::of(&identity, at);
        if confirms && !identity.identity_confirmed {
            state.identity_confirmed = true;
            fields.push("identityConfirmed");
        }
        if let Some(r) = risk_rating {
            if identity.risk_rating != Some(r) {
                state.risk_rating = Some(r);
                fields.push("riskRating");
            }
        }
        identity_q::set_state(tx.conn(), &verification.app_id, &identity.id, &state)?;
        if !fields.is_empty() {
            tx.record(Change::IdentityUpdated {
                app_id: identity.app_id.clone(),
                identity_id: identity.id.clone(),
                fields,
            });
        }
    }
    Ok(())
}

pub fn decide(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    id: &VerificationId,
    decision: Decision,
) -> Result<VerificationView, ApiError> {
    let verification = q::find(tx.read(), app_id, id)?.ok_or_else(verification_not_found)?;
    // Lock the identity first: every decision about one identity queues here.
    identity_q::find_live_for_update(tx.read(), app_id, &verification.identity_id)?
        .ok_or_else(verification_not_found)?;
    let verification = q::find(tx.read(), app_id, id)?.ok_or_else(verification_not_found)?;
    apply_decision(tx, &verification, &decision, db::now())?;
    get_verification(tx.read(), app_id, id)
}

/// The sandbox's shortcut: settle the identity's open verifications at once,
/// starting the basic one first when the documents allow and none is open.
pub fn sandbox_settle(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    identity_id: &IdentityId,
    email: &str,
    outcome: &Decision,
) -> Result<(), ApiError> {
    let identity = identity_q::find_live_for_update(tx.read(), app_id, identity_id)?
        .ok_or_else(identity_not_found)?;
    if identity.email.normalized() != Email::normalize(email) {
        return Err(ApiError::invalid(
            "email",
            "does not match the identity's email",
        ));
    }
    let mut at = db::now();
    let mut open: Vec<VerificationRow> = Vec::new();
    let latest = latest_by_level(tx.read(), app_id, &identity.id)?;
    for row in latest.values() {
        if row.status.is_open() {
            open.push(row.clone());
        }
    }
    if !open.iter().any(|v| v.level == Level::Basic)
        && outcome.status() == VerificationStatus::Approved
    {
        let documents = identity_q::live_documents_of(tx.read(), app_id, &[&identity.id])?;
        let types: Vec<DocumentType> = documents.iter().map(|d| d.document_type).collect();
        let basic_done = latest
            .get(&Level::Basic)
            .is_some_and(|v| v.status == VerificationStatus::Approved);
        if !basic_done && levels_supported_by(types).contains(&Level::Basic) {
            refuse_if_final(Level::Basic, latest.get(&Level::Basic))?;
            open.insert(0, start(tx, &identity, Level::Basic, at)?);
            at = after(at);
        }
    }
    if open.is_empty() {
        return Err(ApiError::refused(
            Refusal::InvalidStatusTransition,
            "Nothing to settle: the identity has no open verification (and, to approve, its documents do not allow a basic one: it needs an identity document and a face image).",
        ));
    }
    for verification in &open {
        apply_decision(tx, verification, outcome, at)?;
        at = after(at);
    }
    Ok(())
}

pub fn set_blocked(
    tx: &mut Tx<'_, '_>,
    storage: &Storage,
    keys: &KeyRing,
    app_id: &AppId,
    identity_id: &IdentityId,
    blocked: bool,
    reason: &str,
) -> Result<IdentityView, ApiError> {
    let mut identity = identity_q::find_live_for_update(tx.read(), app_id, identity_id)?
        .ok_or_else(identity_not_found)?;
    // Blocking a blocked identity changes nothing and records nothing, so a
    // retried request is harmless.
    if identity.blocked != blocked {
        let at = db::now();
        let mut state = IdentityState::of(&identity, at);
        state.blocked = blocked;
        identity_q::set_state(tx.conn(), app_id, identity_id, &state)?;
        identity.blocked = blocked;
        identity.updated_at = at;
        tx.record(Change::IdentityUpdated {
            app_id: app_id.clone(),
            identity_id: identity.id.clone(),
            fields: vec!["blocked"],
        });
        q::insert_event(
            tx.conn(),
            &EventRow {
                id: HistoryEntryId::new(),
                app_id: identity.app_id.clone(),
                identity_id: identity.id.clone(),
                event_type: if blocked {
                    EVENT_BLOCKED
                } else {
                    EVENT_UNBLOCKED
                }
                .to_string(),
                verification_id: None,
                level: None,
                status: None,
                reason: Some(reason.to_string()),
                created_at: at,
                reject_type: None,
                reject_labels: None,
                client_comment: None,
                internal_comment: None,
            },
        )?;
    }
    let mut views =
        crate::services::identities::views_of(tx.read(), storage, keys, vec![identity])?;
    Ok(views.remove(0))
}

pub fn history(
    conn: &mut DbConnection,
    app_id: &AppId,
    identity_id: &IdentityId,
) -> Result<Vec<crate::views::IdentityEventView>, ApiError> {
    let identity =
        identity_q::find_live(conn, app_id, identity_id)?.ok_or_else(identity_not_found)?;
    Ok(q::events_of_identity(conn, &identity.app_id, &identity.id)?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Verifications with their history, in a fixed number of queries.
pub fn verification_views(
    conn: &mut DbConnection,
    rows: Vec<VerificationRow>,
) -> Result<Vec<VerificationView>, ApiError> {
    let histories = histories_of(conn, &rows)?;
    Ok(assemble_verifications(rows, histories))
}

/// The history entries of these verifications, in one query.
fn histories_of(
    conn: &mut DbConnection,
    rows: &[VerificationRow],
) -> Result<Vec<EventRow>, ApiError> {
    let Some(app_id) = rows.first().map(|r| &r.app_id) else {
        return Ok(Vec::new());
    };
    let ids: Vec<&VerificationId> = rows.iter().map(|r| &r.id).collect();
    Ok(q::events_of_verifications(conn, app_id, &ids)?)
}

fn assemble_verifications(
    rows: Vec<VerificationRow>,
    histories: Vec<EventRow>,
) -> Vec<VerificationView> {
    let mut history: HashMap<VerificationId, Vec<VerificationEventView>> = HashMap::new();
    for event in histories {
        if let Some(vid) = event.verification_id.clone() {
            history.entry(vid).or_default().push(VerificationEventView {
                status: event.status,
                reason: event.reason,
                created_at: event.created_at,
                decision: DecisionView::new(
                    event.reject_type,
                    event.reject_labels,
                    event.client_comment,
                ),
            });
        }
    }
    rows.into_iter()
        .map(|row| VerificationView {
            history: history.remove(&row.id).unwrap_or_default(),
            id: row.id,
            identity_id: row.identity_id,
            level: row.level,
            status: row.status,
            reason: row.reason,
            risk_rating: row.risk_rating,
            created_at: row.created_at,
            updated_at: row.updated_at,
            decision: DecisionView::new(row.reject_type, row.reject_labels, row.client_comment),
        })
        .collect()
}

pub fn get_verification(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &VerificationId,
) -> Result<VerificationView, ApiError> {
    let row = q::find(conn, app_id, id)?.ok_or_else(verification_not_found)?;
    Ok(verification_views(conn, vec![row])?.remove(0))
}

/// `GET /verifications`.
pub struct VerificationListing;

impl Listing for VerificationListing {
    type Filter = VerificationFilter;
    type Row = VerificationRow;
    type View = VerificationView;

    /// Every verification filter is an index range: nothing to decide.
    type Plan = ();

    const NAME: &'static str = "verifications";

    fn spec() -> &'static ListSpec<VerificationFilter> {
        &VERIFICATION_LIST
    }

    fn plan(_: &mut DbConnection, _: &AppId, _: &VerificationQuery) -> QueryResult<()> {
        Ok(())
    }

    fn page(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &VerificationQuery,
        _: &(),
    ) -> QueryResult<(Vec<VerificationRow>, i64)> {
        let rows = q::list(conn, app_id, query)?;
        let total = q::count(conn, app_id, query)?;
        Ok((rows, total))
    }

    fn count(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &VerificationQuery,
        _: &(),
    ) -> QueryResult<i64> {
        q::count(conn, app_id, query)
    }

    fn after(
        conn: &mut DbConnection,
        app_id: &AppId,
        query: &VerificationQuery,
        _: &(),
        after: Option<&Cursor>,
        skip: i64,
        limit: i64,
    ) -> QueryResult<Vec<VerificationRow>> {
        q::list_after(conn, app_id, query, after, skip, limit)
    }

    fn cursor(row: &VerificationRow, sort: &Sort) -> Cursor {
        Cursor::after(sort, row.created_at, row.updated_at, row.id.as_str())
    }

    type Parts = Vec<EventRow>;

    fn parts(
        conn: &mut DbConnection,
        _query: &VerificationQuery,
        rows: &[VerificationRow],
    ) -> Result<Vec<EventRow>, ApiError> {
        histories_of(conn, rows)
    }

    fn assemble(
        _storage: &Storage,
        _keys: &KeyRing,
        rows: Vec<VerificationRow>,
        histories: Vec<EventRow>,
    ) -> Result<Vec<VerificationView>, ApiError> {
        Ok(assemble_verifications(rows, histories))
    }
}

/// `kycStatus` for many identities from their verifications, newest first
/// (as [`crate::db::kyc::statuses_of`] reads them): the latest per level.
pub fn latest_per_level(rows: Vec<q::StatusRow>) -> HashMap<IdentityId, Vec<KycStatusView>> {
    let mut out: HashMap<IdentityId, Vec<KycStatusView>> = HashMap::new();
    for row in rows {
        let entries = out.entry(row.identity_id.clone()).or_default();
        if entries.iter().all(|e| e.level != row.level) {
            entries.push(KycStatusView::from(row));
        }
    }
    for entries in out.values_mut() {
        entries.sort_by_key(|e| e.level);
    }
    out
}

/// What the operation rules need, from an identity as answered: its KYC
/// status is the latest verification per level and its documents the live
/// ones, exactly what [`live_facts`] reads; a company's related parties are
/// read when the rules ask about them.
pub fn facts_of(
    conn: &mut DbConnection,
    rules: &OperationRules,
    view: &IdentityView,
) -> Result<KycFacts, ApiError> {
    Ok(KycFacts {
        blocked: view.blocked,
        latest: view
            .kyc_status
            .iter()
            .map(|status| (status.level, status.status))
            .collect(),
        document_types: view.documents.iter().map(|d| d.document_type).collect(),
        risk_rating: view.risk_rating,
        related: related_facts(conn, rules, &view.app_id, &view.id, view.kind)?,
    })
}

/// What the operation rules need to know about one identity.
fn facts(
    conn: &mut DbConnection,
    rules: &OperationRules,
    app_id: &AppId,
    identity_id: &IdentityId,
) -> Result<KycFacts, ApiError> {
    live_facts(conn, rules, app_id, identity_id)?.ok_or_else(identity_not_found)
}

/// [`facts`], or `None` when the identity is not live.
pub fn live_facts(
    conn: &mut DbConnection,
    rules: &OperationRules,
    app_id: &AppId,
    identity_id: &IdentityId,
) -> Result<Option<KycFacts>, ApiError> {
    let Some(identity) = identity_q::find_live(conn, app_id, identity_id)? else {
        return Ok(None);
    };
    let latest = latest_by_level(conn, app_id, &identity.id)?
        .into_iter()
        .map(|(level, row)| (level, row.status))
        .collect();
    let document_types = identity_q::live_documents_of(conn, app_id, &[&identity.id])?
        .iter()
        .map(|d| d.document_type)
        .collect();
    Ok(Some(KycFacts {
        blocked: identity.blocked,
        latest,
        document_types,
        risk_rating: identity.risk_rating,
        related: related_facts(conn, rules, app_id, &identity.id, identity.identity_type)?,
    }))
}

/// A company's related parties with their persons' KYC, when some rule
/// asks about them (three queries whatever their number); `None` for a
/// person, or when no rule needs them.
fn related_facts(
    conn: &mut DbConnection,
    rules: &OperationRules,
    app_id: &AppId,
    company_id: &IdentityId,
    kind: IdentityKind,
) -> Result<Option<Vec<RelatedPartyFacts>>, ApiError> {
    if kind != IdentityKind::Company || !rules.ask_about_related_parties() {
        return Ok(None);
    }
    let relations = relations_q::of_companies(conn, app_id, &[company_id])?;
    let mut persons: Vec<&IdentityId> = relations.iter().map(|r| &r.person_id).collect();
    persons.sort();
    persons.dedup();
    let blocked: HashMap<IdentityId, bool> = identity_q::blocked_of(conn, app_id, &persons)?
        .into_iter()
        .collect();
    let mut latest: HashMap<IdentityId, BTreeMap<Level, VerificationStatus>> = HashMap::new();
    // Newest first per identity and level: the first seen is the latest.
    for row in q::of_identities(conn, app_id, &persons)? {
        latest
            .entry(row.identity_id)
            .or_default()
            .entry(row.level)
            .or_insert(row.status);
    }
    Ok(Some(
        relations
            .into_iter()
            .map(|relation| RelatedPartyFacts {
                role: relation.role,
                ownership: relation.ownership.and_then(Ownership::from_hundredths),
                // A related person is never deleted while related (the
                // delete is refused); were one missing, it counts as blocked.
                blocked: blocked.get(&relation.person_id).copied().unwrap_or(true),
                latest: latest.remove(&relation.person_id).unwrap_or_default(),
            })
            .collect(),
    ))
}

pub fn operations(
    conn: &mut DbConnection,
    rules: &OperationRules,
    app_id: &AppId,
    identity_id: &IdentityId,
) -> Result<Vec<OperationState>, ApiError> {
    let facts = facts(conn, rules, app_id, identity_id)?;
    Ok(rules.evaluate(&facts))
}

/// `Ok(())` when the identity may perform the operation, else the refusal
/// whose code is the reason.
pub fn validate_operation(
    conn: &mut DbConnection,
    rules: &OperationRules,
    rule: &Rule,
    app_id: &AppId,
    identity_id: &IdentityId,
) -> Result<(), ApiError> {
    let facts = facts(conn, rules, app_id, identity_id)?;
    match rule.blocking_reason(&facts) {
        None => Ok(()),
        Some(reason) => Err(ApiError::refused(reason.refusal(), reason.message())),
    }
}
