//! Events: written with every change, in its transaction (the outbox), and
//! listed by `GET /events`.
//!
//! [`EventRecorder`] is the write path's observer that turns a write's
//! [`Change`]s into event rows, each carrying the object as `GET` would
//! answer it at that moment (read inside the transaction), and compares the
//! identity's operations before and after (`identity.operations_changed`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, value::RawValue, Value};

use crate::db::events::{self as q, EventQuery, EventRow, NewEvent};
use crate::db::identities as identity_q;
use crate::db::relations as relations_q;
use crate::db::{self, DbConnection, WriteConn};
use crate::domain::crypto::{DataKey, KeyRing};
use crate::domain::events::EventType;
use crate::domain::ids::{AppId, EventId, IdentityId, VerificationId};
use crate::domain::operations::OperationRules;
use crate::domain::time::format_timestamp;
use crate::error::{ApiError, FieldError};
use crate::services::identities::views_of;
use crate::services::write::{Change, Operation, Write, WriteObserver};
use crate::services::{custody, kyc};
use crate::storage::Storage;
use crate::views::DocumentView;

/// The most events one page answers.
pub const MAX_PAGE: i64 = 1000;
/// Events per page when `page[size]` is not given.
pub const DEFAULT_PAGE: i64 = 100;

/// Writes the events of every change, in the change's transaction.
pub struct EventRecorder {
    storage: Arc<Storage>,
    keys: Arc<KeyRing>,
    rules: Arc<OperationRules>,
}

impl EventRecorder {
    pub fn new(storage: Arc<Storage>, keys: Arc<KeyRing>, rules: Arc<OperationRules>) -> Self {
        EventRecorder {
            storage,
            keys,
            rules,
        }
    }

    /// Seals each event's body under its identity's data key (when the
    /// identity has one: not one written before encryption at rest and
    /// not yet sealed, nor one erased by this write), so erasing the
    /// identity makes its events' data unreadable too.
    fn seal_payloads(
        &self,
        conn: &mut DbConnection,
        write: &Write<'_>,
        rows: &mut [NewEvent],
    ) -> Result<(), ApiError> {
        let mut keys: HashMap<IdentityId, Option<Arc<DataKey>>> = HashMap::new();
        for row in rows {
            let Some(identity_id) = &row.identity_id else {
                continue;
            };
            let key = match keys.get(identity_id) {
                Some(key) => key.clone(),
                None => {
                    let key = match write.answers.data_key(identity_id) {
                        Some(key) => Some(key),
                        None => custody::key_of(conn, &self.keys, &row.app_id, identity_id)?,
                    };
                    keys.insert(identity_id.clone(), key.clone());
                    key
                }
            };
            if let Some(key) = key {
                row.payload = key.seal_text(&row.payload, &payload_context(&row.id));
            }
        }
        Ok(())
    }
}

/// The associated data of an event's sealed body.
fn payload_context(id: &EventId) -> Vec<u8> {
    format!("events/{id}").into_bytes()
}

/// The wire bodies of stored events, opened with their identities' data
/// keys (one query per app for the keys). The data of an erased
/// identity's event no longer opens: its body says so instead, with the
/// event's id, type and time.
pub fn open_payloads(
    conn: &mut DbConnection,
    keys: &KeyRing,
    rows: Vec<EventRow>,
) -> Result<Vec<(EventId, String)>, ApiError> {
    let mut sealed_for: HashMap<&AppId, Vec<&IdentityId>> = HashMap::new();
    for row in &rows {
        if let (Some(identity_id), true) = (&row.identity_id, DataKey::is_sealed_text(&row.payload))
        {
            sealed_for.entry(&row.app_id).or_default().push(identity_id);
        }
    }
    let mut data_keys = HashMap::new();
    for (app_id, mut ids) in sealed_for {
        ids.sort();
        ids.dedup();
        data_keys.extend(custody::keys_of(conn, keys, app_id, &ids)?);
    }
    rows.into_iter()
        .map(|row| {
            if !DataKey::is_sealed_text(&row.payload) {
                return Ok((row.id, row.payload));
            }
            let key = row.identity_id.as_ref().and_then(|id| data_keys.get(id));
            let body = match key {
                Some(key) => key
                    .open_text(&row.payload, &payload_context(&row.id))
                    .map_err(|e| {
                        ApiError::internal(anyhow::anyhow!("event {} does not open: {e}", row.id))
                    })?,
                None => json!({
                    "id": row.id,
                    "type": row.event_type,
                    "timestamp": format_timestamp(row.created_at),
                    "data": {"erased": true, "object": {"id": row.identity_id}},
                })
                .to_string(),
            };
            Ok((row.id, body))
        })
        .collect()
}

impl WriteObserver for EventRecorder {
    fn before_commit(&self, conn: &mut WriteConn<'_>, write: &Write<'_>) -> Result<(), ApiError> {
        let mut out = Events::default();
        // Identities whose operations may have changed, with whether the
        // write created them (their first operations are a baseline).
        let mut touched: Vec<(AppId, IdentityId, bool)> = Vec::new();
        let touch =
            |touched: &mut Vec<(AppId, IdentityId, bool)>,
             app: &AppId,
             identity: &IdentityId,
             created: bool| match touched.iter_mut().find(|(_, id, _)| id == identity) {
                Some(entry) => entry.2 |= created,
                None => touched.push((app.clone(), identity.clone(), created)),
            };
        for change in write.changes {
            match change {
                Change::IdentityCreated {
                    app_id,
                    identity_id,
                } => {
                    let object = self.identity(conn, write, app_id, identity_id)?;
                    out.push(EventType::IdentityCreated, app_id, identity_id, object, []);
                    touch(&mut touched, app_id, identity_id, true);
                }
                Change::IdentityUpdated {
                    app_id,
                    identity_id,
                    fields,
                } => {
                    let object = self.identity(conn, write, app_id, identity_id)?;
                    match write.operation {
                        Operation::IdentityBlock => {
                            out.push(EventType::IdentityBlocked, app_id, identity_id, object, [])
                        }
                        Operation::IdentityUnblock => out.push(
                            EventType::IdentityUnblocked,
                            app_id,
                            identity_id,
                            object,
                            [],
                        ),
                        _ => out.push(
                            EventType::IdentityUpdated,
                            app_id,
                            identity_id,
                            object,
                            [("changedFields", json!(fields))],
                        ),
                    }
                    touch(&mut touched, app_id, identity_id, false);
                }
                Change::IdentityDeleted {
                    app_id,
                    identity_id,
                } => out.push(
                    EventType::IdentityDeleted,
                    app_id,
                    identity_id,
                    json!({"id": identity_id, "appId": app_id}),
                    [],
                ),
                Change::IdentityErased {
                    app_id,
                    identity_id,
                } => out.push(
                    EventType::IdentityErased,
                    app_id,
                    identity_id,
                    json!({"id": identity_id, "appId": app_id, "erased": true}),
                    [],
                ),
                Change::DocumentCreated {
                    app_id,
                    identity_id,
                    document_id,
                } => {
                    let object = match write.answers.document(document_id) {
                        Some(view) => json!(view),
                        None => {
                            let document = identity_q::find_live_document(
                                conn,
                                app_id,
                                identity_id,
                                document_id,
                            )?
                            .ok_or_else(|| missing("document", document_id.as_str()))?;
                            json!(DocumentView::new(document, &self.storage))
                        }
                    };
                    out.push(EventType::DocumentCreated, app_id, identity_id, object, []);
                    touch(&mut touched, app_id, identity_id, false);
                }
                Change::DocumentRemoved {
                    app_id,
                    identity_id,
                    document_id,
                } => {
                    out.push(
                        EventType::DocumentDeleted,
                        app_id,
                        identity_id,
                        json!({"id": document_id, "identityId": identity_id}),
                        [],
                    );
                    touch(&mut touched, app_id, identity_id, false);
                }
                Change::VerificationCreated {
                    app_id,
                    identity_id,
                    verification_id,
                } => {
                    let object = self.verification(conn, write, app_id, verification_id)?;
                    out.push(
                        EventType::VerificationCreated,
                        app_id,
                        identity_id,
                        object,
                        [],
                    );
                    touch(&mut touched, app_id, identity_id, false);
                }
                Change::VerificationStatusChanged {
                    app_id,
                    identity_id,
                    verification_id,
                    from,
                    to,
                } => {
                    let object = self.verification(conn, write, app_id, verification_id)?;
                    let extras = [
                        ("from", json!(from)),
                        ("to", json!(to)),
                        ("reason", object["reason"].clone()),
                        ("riskRating", object["riskRating"].clone()),
                        // Null when they do not apply, like `reason`.
                        ("rejectType", object["rejectType"].clone()),
                        ("rejectLabels", object["rejectLabels"].clone()),
                        ("clientComment", object["clientComment"].clone()),
                    ];
                    out.push(
                        EventType::VerificationStatusChanged,
                        app_id,
                        identity_id,
                        object,
                        extras,
                    );
                    touch(&mut touched, app_id, identity_id, false);
                }
                Change::AppCreated { .. }
                | Change::SealedAgain { .. }
                | Change::WebhookEndpointCreated { .. }
                | Change::WebhookEndpointUpdated { .. }
                | Change::WebhookEndpointDeleted { .. }
                | Change::WebhookSecretRotated { .. }
                | Change::WebhookDeliveryScheduled { .. }
                | Change::ApiKeyCreated { .. }
                | Change::ApiKeyRevoked { .. }
                | Change::ApiKeyUsed { .. }
                | Change::ServerSecretCreated { .. }
                | Change::ConsoleSessionStarted { .. }
                | Change::ConsoleSessionEnded { .. } => {}
            }
        }
        if self.rules.ask_about_related_parties() {
            // A person's KYC counts toward the operations of the companies
            // they are related to: those are compared too.
            for (app_id, identity_id, created) in touched.clone() {
                if created {
                    continue;
                }
                for company in relations_q::of_person(conn, &app_id, &identity_id)? {
                    touch(&mut touched, &app_id, &company, false);
                }
            }
        }
        for (app_id, identity_id, created) in touched {
            self.compare_operations(conn, write, &mut out, &app_id, &identity_id, created)?;
        }
        self.seal_payloads(conn, write, &mut out.rows)?;
        q::insert_events(conn, &out.rows)?;
        Ok(())
    }
}

impl EventRecorder {
    /// The identity as `GET /identities/:id` answers it now: as the use
    /// case answered it, or read back.
    fn identity(
        &self,
        conn: &mut DbConnection,
        write: &Write<'_>,
        app_id: &AppId,
        identity_id: &IdentityId,
    ) -> Result<Value, ApiError> {
        if let Some(view) = write.answers.identity(identity_id) {
            return Ok(json!(view));
        }
        let row = identity_q::find_live(conn, app_id, identity_id)?
            .ok_or_else(|| missing("identity", identity_id.as_str()))?;
        let mut views = views_of(conn, &self.storage, &self.keys, vec![row])?;
        Ok(json!(views.remove(0)))
    }

    /// The verification as `GET /verifications/:id` answers it now.
    fn verification(
        &self,
        conn: &mut DbConnection,
        write: &Write<'_>,
        app_id: &AppId,
        verification_id: &VerificationId,
    ) -> Result<Value, ApiError> {
        match write.answers.verification(verification_id) {
            Some(view) => Ok(json!(view)),
            None => Ok(json!(kyc::get_verification(conn, app_id, verification_id)?)),
        }
    }

    /// Emits `identity.operations_changed` when the set of active
    /// operations differs from the one recorded after the identity's last
    /// change (a new identity's first set is recorded silently, as is the
    /// first set of an identity from before events existed).
    fn compare_operations(
        &self,
        conn: &mut WriteConn<'_>,
        write: &Write<'_>,
        out: &mut Events,
        app_id: &AppId,
        identity_id: &IdentityId,
        created: bool,
    ) -> Result<(), ApiError> {
        let facts = match write.answers.identity(identity_id) {
            Some(view) => kyc::facts_of(conn, &self.rules, view)?,
            None => match kyc::live_facts(conn, &self.rules, app_id, identity_id)? {
                Some(facts) => facts,
                // Deleted in this write: it has no operations any more.
                None => return Ok(()),
            },
        };
        let operations = self.rules.evaluate(&facts);
        let active: BTreeSet<String> = operations
            .iter()
            .filter(|op| op.active)
            .map(|op| format!("{}:{}", op.action.as_str(), op.code))
            .collect();
        let active = active.into_iter().collect::<Vec<_>>().join(",");
        if created {
            // Its first set: nothing to compare with.
            q::insert_operations_seen(conn, app_id, identity_id, &active)?;
            return Ok(());
        }
        let seen = q::operations_seen(conn, identity_id)?;
        if seen.as_deref() == Some(active.as_str()) {
            return Ok(());
        }
        if seen.is_some() {
            let mut data = serde_json::Map::new();
            data.insert("identityId".into(), json!(identity_id));
            data.insert("operations".into(), json!(operations));
            out.push_data(
                EventType::IdentityOperationsChanged,
                app_id,
                identity_id,
                data,
            );
        }
        q::set_operations_seen(conn, app_id, identity_id, &active)?;
        Ok(())
    }
}

fn missing(what: &str, id: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "the {what} {id} a change names is not there"
    ))
}

/// The events of one write, in the order they happened.
#[derive(Default)]
struct Events {
    rows: Vec<NewEvent>,
}

impl Events {
    /// Adds an event whose `data` is `{"object": object, ...extras}`.
    fn push<const N: usize>(
        &mut self,
        event_type: EventType,
        app_id: &AppId,
        identity_id: &IdentityId,
        object: Value,
        extras: [(&str, Value); N],
    ) {
        let mut data = serde_json::Map::new();
        data.insert("object".into(), object);
        for (name, value) in extras {
            data.insert(name.into(), value);
        }
        self.push_data(event_type, app_id, identity_id, data);
    }

    /// Adds an event with this `data`.
    fn push_data(
        &mut self,
        event_type: EventType,
        app_id: &AppId,
        identity_id: &IdentityId,
        data: serde_json::Map<String, Value>,
    ) {
        let id = EventId::new();
        let at = db::now();
        let payload = json!({
            "id": id,
            "type": event_type,
            "timestamp": format_timestamp(at),
            "data": data,
        });
        self.rows.push(NewEvent {
            id,
            app_id: app_id.clone(),
            event_type,
            identity_id: Some(identity_id.clone()),
            payload: payload.to_string(),
            created_at: at,
        });
    }
}

/// A page of `GET /events`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub data: Vec<Box<RawValue>>,
    /// More events matched than this page holds: ask again with the last
    /// one's id as `page[after]`.
    pub has_more: bool,
}

/// `GET /events`: the query string's filters and cursor, then one page.
pub fn list(
    conn: &mut DbConnection,
    keys: &KeyRing,
    app_id: &AppId,
    query_string: &str,
) -> Result<EventPage, ApiError> {
    let params = parse_query(query_string)?;
    let mut query = EventQuery {
        types: params.types,
        identity_id: params.identity_id,
        after: None,
        limit: params.size + 1,
    };
    if let Some(after) = params.after {
        let position = q::position_of(conn, app_id, &after)?.ok_or_else(|| {
            ApiError::refused(
                crate::domain::errors::Refusal::EventNotFound,
                "page[after] names no event of this app (it may be older than the retention period).",
            )
        })?;
        query.after = Some((position, after));
    }
    let mut rows = q::page(conn, app_id, &query)?;
    let has_more = rows.len() as i64 > params.size;
    rows.truncate(params.size as usize);
    let data = open_payloads(conn, keys, rows)?
        .into_iter()
        .map(|(id, payload)| {
            RawValue::from_string(payload)
                .map_err(|e| ApiError::internal(anyhow::anyhow!("event {id} is not JSON: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(EventPage { data, has_more })
}

struct EventParams {
    types: Option<Vec<EventType>>,
    identity_id: Option<IdentityId>,
    after: Option<EventId>,
    size: i64,
}

/// `filter[type]` (`in:a,b` or one type), `filter[identityId]`,
/// `page[after]`, `page[size]` (1 to 1000); anything else is refused.
fn parse_query(query_string: &str) -> Result<EventParams, ApiError> {
    let mut params = EventParams {
        types: None,
        identity_id: None,
        after: None,
        size: DEFAULT_PAGE,
    };
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (name, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
        let (name, value) = (name.as_ref(), value.as_ref());
        if !names.insert(name.to_owned()) {
            problems.push(FieldError::new(name, "is given more than once"));
            continue;
        }
        match name {
            "filter[type]" => {
                let list = value.strip_prefix("in:").unwrap_or(value);
                let mut types = Vec::new();
                for t in list.split(',') {
                    match EventType::parse(t) {
                        Some(t) => types.push(t),
                        None => problems.push(FieldError::new(
                            name,
                            format!(
                                "{t:?} is not an event type; one of {}",
                                EventType::ALL
                                    .iter()
                                    .map(|t| t.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )),
                    }
                }
                params.types = Some(types);
            }
            "filter[identityId]" => match IdentityId::parse(value) {
                Some(id) => params.identity_id = Some(id),
                None => problems.push(FieldError::new(name, "must be an identity id (a UUID)")),
            },
            "page[after]" => match EventId::parse(value) {
                Some(id) => params.after = Some(id),
                None => problems.push(FieldError::new(name, "must be an event id (a UUID)")),
            },
            "page[size]" => match value.parse::<i64>() {
                Ok(size) if (1..=MAX_PAGE).contains(&size) => params.size = size,
                _ => problems.push(FieldError::new(
                    name,
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )),
            },
            other => problems.push(FieldError::new(
                other,
                "is not a parameter of this list (filter[type], filter[identityId], page[after], page[size])",
            )),
        }
    }
    if problems.is_empty() {
        Ok(params)
    } else {
        Err(ApiError::Validation(problems))
    }
}

/// Deletes events older than the retention period; safe to run on every
/// replica at once.
pub fn prune(
    write: &crate::services::write::WritePath,
    retention: chrono::Duration,
) -> Result<usize, ApiError> {
    let before = db::now() - retention;
    write.run_blocking(
        crate::services::write::Actor::Server,
        Operation::EventsPrune,
        |tx| Ok::<_, ApiError>(q::prune(tx.conn(), before)?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_checked() {
        let p = parse_query(
            "filter[type]=in:identity.created,verification.status_changed&page[size]=5",
        )
        .unwrap();
        assert_eq!(
            p.types,
            Some(vec![
                EventType::IdentityCreated,
                EventType::VerificationStatusChanged
            ])
        );
        assert_eq!(p.size, 5);
        assert_eq!(parse_query("").unwrap().size, DEFAULT_PAGE);
        for bad in [
            "filter[type]=identity.made",
            "page[size]=0",
            "page[size]=1001",
            "page[size]=x",
            "page[after]=nope",
            "filter[identityId]=1",
            "sort=-id",
            "page[size]=5&page[size]=6",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }
}
