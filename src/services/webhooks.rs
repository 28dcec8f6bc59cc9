//! Webhooks: endpoints (a client's URLs and their signing secrets), the
//! deliveries of every event to them, and the dispatcher that every
//! replica runs.
//!
//! Delivery is at least once, in no guaranteed order: the event is written
//! in its change's transaction (the outbox); the dispatcher's fan-out makes
//! its delivery rows behind each endpoint's cursor ([`fan_out`]), claims due
//! rows with a
//! lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so replicas never claim the
//! same one), posts the event signed per Standard Webhooks, and records the
//! attempt; a replica killed mid-delivery leaves the lease to expire and
//! another claims it again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::NaiveDateTime;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use crate::db::webhooks::{self as q, EndpointChanges, EndpointRow, NewDelivery, SecretRotation};
use crate::db::{self, Db, DbConnection};
use crate::domain::crypto::KeyRing;
use crate::domain::errors::Refusal;
use crate::domain::events::EventType;
use crate::domain::ids::{AppId, AttemptId, DeliveryId, EventId, WebhookEndpointId};
use crate::domain::time::format_timestamp;
use crate::domain::webhooks::{
    is_forbidden, parse_stored_event_types, stored_event_types, DeliveryStatus, EndpointInput,
    TargetPolicy, WebhookSettings,
};
use crate::error::ApiError;
use crate::services::write::{Actor, Change, Operation, Tx, WritePath};

/// After a rotation, the old secret keeps signing this long.
pub const PREVIOUS_SECRET_LIFETIME: chrono::Duration = chrono::Duration::hours(24);
/// At most this much of a receiver's answer is kept.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

fn endpoint_not_found() -> ApiError {
    ApiError::refused(
        Refusal::WebhookEndpointNotFound,
        "No webhook endpoint with this id.",
    )
}

/// A fresh signing secret in the Standard Webhooks format: `whsec_` and
/// the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// An endpoint as answered (never its secret).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    pub id: WebhookEndpointId,
    pub url: String,
    pub description: Option<String>,
    /// `null`: every event type.
    pub event_types: Option<Vec<EventType>>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&EndpointRow> for EndpointView {
    fn from(row: &EndpointRow) -> Self {
        EndpointView {
            id: row.id.clone(),
            url: row.url.clone(),
            description: row.description.clone(),
            event_types: parse_stored_event_types(row.event_types.as_deref()),
            enabled: row.enabled,
            created_at: format_timestamp(row.created_at),
            updated_at: format_timestamp(row.updated_at),
        }
    }
}

/// An endpoint with its secret: answered once, at creation.
#[derive(Debug, Serialize)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    pub secret: String,
}

/// The associated data a stored secret is sealed with: its endpoint and
/// column, so a sealed secret copied to another endpoint does not open.
pub fn secret_context(id: &WebhookEndpointId, column: &str) -> Vec<u8> {
    format!("webhook_endpoints/{}/{column}", id.as_str()).into_bytes()
}

/// A signing secret as stored: sealed with the server's key.
fn seal_secret(keys: &KeyRing, id: &WebhookEndpointId, column: &str, secret: &str) -> String {
    keys.seal(secret.as_bytes(), &secret_context(id, column))
}

/// A stored signing secret in the clear. Secrets stored before sealing
/// existed are read as they are (they are sealed at their next rotation).
fn reveal_secret(
    keys: &KeyRing,
    id: &WebhookEndpointId,
    column: &str,
    stored: &str,
) -> Result<String, ApiError> {
    if !KeyRing::is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    let opened = keys
        .open(stored, &secret_context(id, column))
        .map_err(|e| {
            ApiError::internal(anyhow::anyhow!(
                "webhook endpoint {}: {column}: {e}",
                id.as_str()
            ))
        })?;
    String::from_utf8(opened).map_err(ApiError::internal)
}

pub fn create_endpoint(
    tx: &mut Tx<'_, '_>,
    keys: &KeyRing,
    app_id: &AppId,
    input: EndpointInput,
) -> Result<EndpointWithSecret, ApiError> {
    let Some(url) = input.url else {
        return Err(ApiError::invalid("url", "is required"));
    };
    let now = db::now();
    let id = WebhookEndpointId::new();
    let secret = new_secret();
    let row = EndpointRow {
        secret: seal_secret(keys, &id, "secret", &secret),
        id,
        app_id: app_id.clone(),
        url,
        description: input.description.flatten(),
        event_types: stored_event_types(&input.event_types.flatten()),
        enabled: input.enabled.unwrap_or(true),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    q::insert_endpoint(tx.conn(), &row)?;
    start_fan_out_now(tx, &row.id)?;
    tx.record(Change::WebhookEndpointCreated {
        app_id: app_id.clone(),
        endpoint_id: row.id.clone(),
    });
    Ok(EndpointWithSecret {
        endpoint: EndpointView::from(&row),
        secret,
    })
}

pub fn list_endpoints(
    conn: &mut DbConnection,
    app_id: &AppId,
) -> Result<Vec<EndpointView>, ApiError> {
    Ok(q::endpoints_of(conn, app_id)?
        .iter()
        .map(EndpointView::from)
        .collect())
}

pub fn get_endpoint(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &WebhookEndpointId,
) -> Result<EndpointView, ApiError> {
    let row = q::find_endpoint(conn, app_id, id)?.ok_or_else(endpoint_not_found)?;
    Ok(EndpointView::from(&row))
}

pub fn update_endpoint(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    id: &WebhookEndpointId,
    input: EndpointInput,
) -> Result<EndpointView, ApiError> {
    let mut row = q::find_endpoint(tx.read(), app_id, id)?.ok_or_else(endpoint_not_found)?;
    if let Some(url) = input.url {
        row.url = url;
    }
    if let Some(description) = input.description {
        row.description = description;
    }
    if let Some(types) = input.event_types {
        row.event_types = stored_event_types(&types);
    }
    let enabled_again = input.enabled == Some(true) && !row.enabled;
    if let Some(enabled) = input.enabled {
        row.enabled = enabled;
    }
    row.updated_at = db::now();
    if enabled_again {
        start_fan_out_now(tx, id)?;
    }
    q::update_endpoint(
        tx.conn(),
        app_id,
        id,
        &EndpointChanges {
            url: row.url.clone(),
            description: row.description.clone(),
            event_types: row.event_types.clone(),
            enabled: row.enabled,
            updated_at: row.updated_at,
        },
    )?;
    tx.record(Change::WebhookEndpointUpdated {
        app_id: app_id.clone(),
        endpoint_id: id.clone(),
    });
    Ok(EndpointView::from(&row))
}

pub fn delete_endpoint(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    id: &WebhookEndpointId,
) -> Result<(), ApiError> {
    q::find_endpoint(tx.read(), app_id, id)?.ok_or_else(endpoint_not_found)?;
    q::soft_delete_endpoint(tx.conn(), app_id, id, db::now())?;
    tx.record(Change::WebhookEndpointDeleted {
        app_id: app_id.clone(),
        endpoint_id: id.clone(),
    });
    Ok(())
}

/// The new secret, answered once.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    pub secret: String,
    /// Until then the previous secret signs too.
    pub previous_secret_expires_at: String,
}

pub fn rotate_secret(
    tx: &mut Tx<'_, '_>,
    keys: &KeyRing,
    app_id: &AppId,
    id: &WebhookEndpointId,
) -> Result<RotatedSecret, ApiError> {
    let row = q::find_endpoint(tx.read(), app_id, id)?.ok_or_else(endpoint_not_found)?;
    let now = db::now();
    let expires = now + PREVIOUS_SECRET_LIFETIME;
    let secret = new_secret();
    let previous = reveal_secret(keys, id, "secret", &row.secret)?;
    q::rotate_secret(
        tx.conn(),
        app_id,
        id,
        &SecretRotation {
            secret: seal_secret(keys, id, "secret", &secret),
            previous_secret: Some(seal_secret(keys, id, "previous_secret", &previous)),
            previous_secret_expires_at: Some(expires),
            updated_at: now,
        },
    )?;
    tx.record(Change::WebhookSecretRotated {
        app_id: app_id.clone(),
        endpoint_id: id.clone(),
    });
    Ok(RotatedSecret {
        secret,
        previous_secret_expires_at: format_timestamp(expires),
    })
}

/// One attempt in an endpoint's delivery log.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub attempted_at: String,
    /// The receiver's status, when it answered.
    pub status_code: Option<i32>,
    /// Why no answer counted (timeout, refused, TLS, address not allowed).
    pub error: Option<String>,
    pub latency_ms: i32,
    /// The first 4 KiB of the answer.
    pub response_body: Option<String>,
    /// Where the delivery stands now: pending, delivered or failed.
    pub delivery_status: DeliveryStatus,
}

pub fn attempts(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &WebhookEndpointId,
    limit: i64,
) -> Result<Vec<AttemptView>, ApiError> {
    q::find_endpoint(conn, app_id, id)?.ok_or_else(endpoint_not_found)?;
    Ok(q::attempts_of(conn, app_id, id, limit)?
        .into_iter()
        .map(|logged| AttemptView {
            id: logged.attempt.id,
            delivery_id: logged.attempt.delivery_id,
            event_id: logged.attempt.event_id,
            attempted_at: format_timestamp(logged.attempt.attempted_at),
            status_code: logged.attempt.status_code,
            error: logged.attempt.error,
            latency_ms: logged.attempt.latency_ms,
            response_body: logged.attempt.response_excerpt,
            delivery_status: logged.delivery_status,
        })
        .collect())
}

/// A delivery scheduled by a redelivery request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledDelivery {
    pub delivery_id: DeliveryId,
    pub endpoint_id: WebhookEndpointId,
}

/// Sends an event again: to one endpoint of the app, or to every enabled
/// endpoint subscribed to its type.
pub fn redeliver(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    event_id: &EventId,
    endpoint_id: Option<&WebhookEndpointId>,
) -> Result<Vec<ScheduledDelivery>, ApiError> {
    let event_type = q::event_exists(tx.read(), app_id, event_id)?
        .and_then(|t| EventType::parse(&t))
        .ok_or_else(|| ApiError::refused(Refusal::EventNotFound, "No event with this id."))?;
    let endpoints: Vec<EndpointRow> = match endpoint_id {
        Some(id) => vec![q::find_endpoint(tx.read(), app_id, id)?.ok_or_else(endpoint_not_found)?],
        None => q::endpoints_of(tx.read(), app_id)?
            .into_iter()
            .filter(|e| e.enabled && subscribes(e, event_type))
            .collect(),
    };
    let now = db::now();
    let rows: Vec<NewDelivery> = endpoints
        .iter()
        .map(|endpoint| new_delivery(app_id, &endpoint.id, event_id, now))
        .collect();
    q::insert_deliveries(tx.conn(), &rows)?;
    for row in &rows {
        tx.record(Change::WebhookDeliveryScheduled {
            app_id: app_id.clone(),
            delivery_id: row.id.clone(),
        });
    }
    Ok(rows
        .into_iter()
        .map(|row| ScheduledDelivery {
            delivery_id: row.id,
            endpoint_id: row.endpoint_id,
        })
        .collect())
}

fn subscribes(endpoint: &EndpointRow, event_type: EventType) -> bool {
    parse_stored_event_types(endpoint.event_types.as_deref())
        .is_none_or(|types| types.contains(&event_type))
}

fn new_delivery(
    app_id: &AppId,
    endpoint_id: &WebhookEndpointId,
    event_id: &EventId,
    now: NaiveDateTime,
) -> NewDelivery {
    NewDelivery {
        id: DeliveryId::new(),
        app_id: app_id.clone(),
        endpoint_id: endpoint_id.clone(),
        event_id: event_id.clone(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(now),
        lease_until: None,
        created_at: now,
        updated_at: now,
    }
}

/// Events read per endpoint per fan-out transaction.
const FAN_OUT_BATCH: i64 = 1000;

/// Starts an endpoint's deliveries at the events still to come: those of
/// transactions running now or later (on creation, and when it is enabled
/// again: events written while it was disabled are not sent to it).
fn start_fan_out_now(tx: &mut Tx<'_, '_>, id: &WebhookEndpointId) -> Result<(), ApiError> {
    let next = crate::db::events::next_position(tx.read())?;
    q::advance_fan_out(tx.conn(), id, next, "")?;
    Ok(())
}

/// The outbox's other half: every enabled endpoint gets a delivery for each
/// event of its app written since its cursor that it subscribes to, and its
/// cursor moves past the events read. Answers how many deliveries were
/// made, and whether an endpoint has more events waiting than one round
/// reads. A write never makes deliveries itself, so it costs the same with
/// or without endpoints; replicas running this at once skip each other's
/// endpoints.
pub fn fan_out(tx: &mut Tx<'_, '_>) -> Result<(usize, bool), ApiError> {
    let now = db::now();
    let (mut made, mut more) = (0, false);
    for cursor in q::lock_fan_out_cursors(tx.conn())? {
        let marks = crate::db::events::marks_after(
            tx.read(),
            &cursor.app_id,
            (cursor.position, &cursor.event_id),
            FAN_OUT_BATCH,
        )?;
        let Some(last) = marks.last() else {
            continue;
        };
        more |= marks.len() as i64 == FAN_OUT_BATCH;
        let types = parse_stored_event_types(cursor.event_types.as_deref());
        let rows: Vec<NewDelivery> = marks
            .iter()
            .filter(|mark| types.as_ref().is_none_or(|t| t.contains(&mark.event_type)))
            .map(|mark| new_delivery(&cursor.app_id, &cursor.id, &mark.id, now))
            .collect();
        q::insert_deliveries(tx.conn(), &rows)?;
        q::advance_fan_out(tx.conn(), &cursor.id, last.position, last.id.as_str())?;
        made += rows.len();
    }
    Ok((made, more))
}

/// Resolves a webhook host and, under a strict policy, refuses it when any
/// address is one a server must not reach. The connection uses exactly the
/// addresses checked here, so a name that changes its answer between check
/// and connect (DNS rebinding) gains nothing.
struct CheckedResolver {
    policy: TargetPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.checks_addresses_of(&host) {
                if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
                    return Err(format!(
                        "{host} resolves to {}, a loopback, private, link-local or metadata address",
                        bad.ip()
                    )
                    .into());
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// How one claimed delivery ends this round.
enum Settlement {
    Attempted {
        attempt: q::AttemptRow,
        status: DeliveryStatus,
        next: Option<NaiveDateTime>,
    },
    /// Its endpoint or event is gone: it fails without an attempt.
    Dropped { delivery_id: DeliveryId },
}

impl Settlement {
    fn delivery_id(&self) -> &DeliveryId {
        match self {
            Settlement::Attempted { attempt, .. } => &attempt.delivery_id,
            Settlement::Dropped { delivery_id } => delivery_id,
        }
    }
}

/// What one attempt found.
#[derive(Debug)]
struct Outcome {
    status_code: Option<i32>,
    error: Option<String>,
    latency: Duration,
    excerpt: Option<String>,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends due deliveries; one per process, run by [`Dispatcher::spawn`].
///
/// A claiming loop takes what is due, within this process's slots
/// (`concurrency`) and each endpoint's share of them
/// (`endpoint_concurrency`, the most sends to one endpoint at a time), and
/// starts a send for each without waiting for the others; a recording task
/// writes the outcomes in batches. A share frees when its send ends, a
/// slot once its outcome is recorded. So a slow or dead endpoint holds at
/// most its share, and everyone else's deliveries go on around it.
#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    write: WritePath,
    /// Opens the endpoints' sealed signing secrets.
    keys: Arc<KeyRing>,
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
    slots: Arc<Slots>,
}

/// The deliveries this process holds: a slot each from claim until its
/// outcome is recorded (bounding what waits in memory), and a share of
/// its endpoint while it is being sent (bounding what one endpoint takes).
struct Slots {
    free: Arc<tokio::sync::Semaphore>,
    per_endpoint: std::sync::Mutex<HashMap<WebhookEndpointId, usize>>,
    /// Wakes the claiming loop when a slot or a share frees, or the fan-out
    /// made deliveries.
    freed: tokio::sync::Notify,
}

/// One claimed delivery's place in this process; dropping it frees it.
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    notify: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.notify.freed.notify_one();
    }
}

/// One delivery being sent: a share of its endpoint, freed when dropped.
struct Share {
    slots: Arc<Slots>,
    endpoint_id: WebhookEndpointId,
}

impl Drop for Share {
    fn drop(&mut self) {
        {
            let mut busy = self
                .slots
                .per_endpoint
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(count) = busy.get_mut(&self.endpoint_id) {
                *count -= 1;
                if *count == 0 {
                    busy.remove(&self.endpoint_id);
                }
            }
        }
        self.slots.freed.notify_one();
    }
}

impl Dispatcher {
    pub fn new(
        db: Db,
        write: WritePath,
        settings: WebhookSettings,
        keys: Arc<KeyRing>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A proxy would resolve names itself, past the address check.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: settings.policy.clone(),
            }))
            .user_agent(concat!("kyc-api-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let slots = Arc::new(Slots {
            free: Arc::new(tokio::sync::Semaphore::new(settings.concurrency)),
            per_endpoint: std::sync::Mutex::new(HashMap::new()),
            freed: tokio::sync::Notify::new(),
        });
        Ok(Dispatcher {
            db,
            write,
            keys,
            client,
            settings: Arc::new(settings),
            slots,
        })
    }

    /// Runs for the life of the process: the claiming loop and the task
    /// that records outcomes.
    pub fn spawn(self) {
        let (settled, outcomes) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(record_outcomes(self.write.clone(), outcomes));
        tokio::spawn(self.clone().fan_out_loop());
        tokio::spawn(async move {
            loop {
                let idle = match self.claim_and_send(&settled).await {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook dispatcher");
                        true
                    }
                };
                if idle {
                    // Nothing claimable: look again after `poll`, or as soon
                    // as a slot frees (its endpoint may have more due).
                    tokio::select! {
                        _ = tokio::time::sleep(self.settings.poll) => {}
                        _ = self.slots.freed.notified() => {}
                    }
                }
            }
        });
    }

    /// Makes the deliveries of new events every `poll` (at once again while
    /// endpoints have more waiting), and wakes the claiming loop when it
    /// made some. A read asks first, so an idle server opens no write
    /// transaction for it.
    async fn fan_out_loop(self) {
        loop {
            let round = async {
                if !self
                    .db
                    .run(|conn| q::any_to_fan_out(conn).map_err(ApiError::from))
                    .await?
                {
                    return Ok((0, false));
                }
                self.write
                    .run(Actor::Server, Operation::WebhookDispatch, fan_out)
                    .await
            };
            let more = match round.await {
                Ok((made, more)) => {
                    if made > 0 {
                        self.slots.freed.notify_one();
                    }
                    more
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook fan-out");
                    false
                }
            };
            if !more {
                tokio::time::sleep(self.settings.poll).await;
            }
        }
    }

    /// Claims what is due within the free slots and starts sending it.
    /// Returns how many deliveries it claimed.
    async fn claim_and_send(
        &self,
        settled: &tokio::sync::mpsc::UnboundedSender<(Settlement, Slot)>,
    ) -> Result<usize, ApiError> {
        let free = self.slots.free.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = db::now();
        let due = self
            .db
            .run(move |conn| q::endpoints_with_due(conn, now).map_err(ApiError::from))
            .await?;
        // What each endpoint with something due may still take: its share
        // less what this process is sending to it. An endpoint at its share
        // is not asked at all.
        let mut wanted: Vec<(WebhookEndpointId, i64)> = {
            let busy = self
                .slots
                .per_endpoint
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            due.into_iter()
                .filter_map(|id| {
                    let left = self.settings.endpoint_concurrency as i64
                        - busy.get(&id).copied().unwrap_or(0) as i64;
                    (left > 0).then_some((id, left))
                })
                .collect()
        };
        if wanted.is_empty() {
            return Ok(0);
        }
        // When the free slots are fewer than the endpoints want, no endpoint
        // is always the first served.
        wanted.shuffle(&mut rand::thread_rng());
        let lease_until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let mut room = self.settings.batch.min(free as i64);
        let claimed = self
            .write
            .run(Actor::Server, Operation::WebhookDispatch, move |tx| {
                let mut claimed = Vec::new();
                for (endpoint_id, left) in &wanted {
                    if room == 0 {
                        break;
                    }
                    let got =
                        q::claim_due(tx.conn(), endpoint_id, now, lease_until, (*left).min(room))?;
                    room -= got.len() as i64;
                    claimed.extend(got);
                }
                Ok::<_, ApiError>(claimed)
            })
            .await?;
        let count = claimed.len();
        if count == 0 {
            return Ok(0);
        }
        // Only this loop takes slots, and it claimed no more than were free.
        let mut held = Vec::with_capacity(count);
        for claim in &claimed {
            let Ok(permit) = self.slots.free.clone().try_acquire_owned() else {
                break;
            };
            *self
                .slots
                .per_endpoint
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(claim.endpoint_id.clone())
                .or_default() += 1;
            let share = Share {
                slots: self.slots.clone(),
                endpoint_id: claim.endpoint_id.clone(),
            };
            let slot = Slot {
                _permit: permit,
                notify: self.slots.clone(),
            };
            held.push((slot, share));
        }
        // What the sends need, read once for the whole claim.
        let (endpoints, payloads) = {
            let endpoint_ids: Vec<WebhookEndpointId> =
                claimed.iter().map(|c| c.endpoint_id.clone()).collect();
            let event_ids: Vec<EventId> = claimed.iter().map(|c| c.event_id.clone()).collect();
            let keys = self.keys.clone();
            self.db
                .run(move |conn| {
                    let events = crate::db::events::by_ids(conn, &event_ids)?;
                    Ok::<_, ApiError>((
                        q::endpoints_by_ids(conn, &endpoint_ids)?,
                        crate::services::events::open_payloads(conn, &keys, events)?
                            .into_iter()
                            .collect::<std::collections::HashMap<_, _>>(),
                    ))
                })
                .await?
        };
        let endpoints = Arc::new(endpoints);
        let payloads = Arc::new(payloads);
        for (claim, (slot, share)) in claimed.into_iter().zip(held) {
            let dispatcher = self.clone();
            let (endpoints, payloads, settled) =
                (endpoints.clone(), payloads.clone(), settled.clone());
            tokio::spawn(async move {
                let endpoint = endpoints
                    .iter()
                    .find(|e| e.id == claim.endpoint_id)
                    .filter(|e| e.enabled && e.deleted_at.is_none());
                let payload = payloads.get(&claim.event_id);
                let settlement = dispatcher.attempt(claim, endpoint, payload).await;
                drop(share);
                // The recorder is gone only when the process stops; the
                // lease then lets another replica retry.
                let _ = settled.send((settlement, slot));
            });
        }
        Ok(count)
    }

    /// Sends one claimed delivery (unless its endpoint or event is gone)
    /// and says how it ends.
    async fn attempt(
        &self,
        claim: q::ClaimedDelivery,
        endpoint: Option<&EndpointRow>,
        payload: Option<&String>,
    ) -> Settlement {
        let (Some(endpoint), Some(payload)) = (endpoint, payload) else {
            // The endpoint was disabled or deleted, or the event expired.
            return Settlement::Dropped {
                delivery_id: claim.id,
            };
        };
        let outcome = self.send(endpoint, &claim.event_id, payload).await;
        let attempts_made = u32::try_from(claim.attempts).unwrap_or(0) + 1;
        let now = db::now();
        let (status, next) = if outcome.delivered() {
            (DeliveryStatus::Delivered, None)
        } else {
            match self.settings.schedule.wait_after(attempts_made) {
                Some(wait) => (DeliveryStatus::Pending, Some(now + jittered(wait))),
                None => (DeliveryStatus::Failed, None),
            }
        };
        Settlement::Attempted {
            attempt: q::AttemptRow {
                id: AttemptId::new(),
                delivery_id: claim.id,
                app_id: claim.app_id,
                endpoint_id: claim.endpoint_id,
                event_id: claim.event_id,
                attempted_at: now,
                status_code: outcome.status_code,
                error: outcome.error,
                latency_ms: i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX),
                response_excerpt: outcome.excerpt,
            },
            status,
            next,
        }
    }

    /// Posts one event, signed with the endpoint's secret (and, for a day
    /// after a rotation, its previous one too).
    async fn send(&self, endpoint: &EndpointRow, event_id: &EventId, payload: &str) -> Outcome {
        let started = Instant::now();
        let failed = |error: String| Outcome {
            status_code: None,
            error: Some(error),
            latency: started.elapsed(),
            excerpt: None,
        };
        if let Err(e) = self.settings.policy.check_url(&endpoint.url) {
            return failed(format!("the endpoint URL is not allowed: {e}"));
        }
        let timestamp = chrono::Utc::now().timestamp();
        let mut sealed = vec![("secret", endpoint.secret.as_str())];
        if let (Some(previous), Some(until)) = (
            &endpoint.previous_secret,
            endpoint.previous_secret_expires_at,
        ) {
            if until > db::now() {
                sealed.push(("previous_secret", previous));
            }
        }
        let mut signatures = Vec::new();
        for (column, stored) in sealed {
            let secret = match reveal_secret(&self.keys, &endpoint.id, column, stored) {
                Ok(secret) => secret,
                Err(e) => {
                    tracing::error!(error = %e, "webhook dispatcher: a signing secret does not open");
                    return failed("the endpoint's signing secret cannot be read".into());
                }
            };
            let signed = standardwebhooks::Webhook::new(&secret)
                .and_then(|hook| hook.sign(event_id.as_str(), timestamp, payload.as_bytes()));
            match signed {
                Ok(signature) => signatures.push(signature),
                Err(e) => return failed(format!("the endpoint's secret cannot sign: {e}")),
            }
        }
        let request = self
            .client
            .post(&endpoint.url)
            .header(standardwebhooks::HEADER_WEBHOOK_ID, event_id.as_str())
            .header(
                standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
                timestamp.to_string(),
            )
            .header(
                standardwebhooks::HEADER_WEBHOOK_SIGNATURE,
                signatures.join(" "),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.to_string());
        match request.send().await {
            Ok(mut response) => {
                let status = i32::from(response.status().as_u16());
                let mut body = Vec::new();
                while body.len() < RESPONSE_EXCERPT_BYTES {
                    match response.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                body.truncate(RESPONSE_EXCERPT_BYTES);
                Outcome {
                    status_code: Some(status),
                    error: None,
                    latency: started.elapsed(),
                    excerpt: (!body.is_empty())
                        .then(|| String::from_utf8_lossy(&body).into_owned()),
                }
            }
            Err(e) => failed(describe(&e)),
        }
    }
}

/// Records settled deliveries, as many per transaction as have arrived,
/// then frees their slots. A batch that cannot be recorded is logged and
/// its slots freed: the leases expire and the deliveries are sent again
/// (at least once).
async fn record_outcomes(
    write: WritePath,
    mut outcomes: tokio::sync::mpsc::UnboundedReceiver<(Settlement, Slot)>,
) {
    const MOST_PER_TRANSACTION: usize = 200;
    while let Some(first) = outcomes.recv().await {
        let mut batch = vec![first];
        while batch.len() < MOST_PER_TRANSACTION {
            match outcomes.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // In delivery id order, the order an endpoint's delete locks them in
        // (PostgreSQL's index scan of `id = ANY(...)` takes the ids sorted
        // too). The dropped deliveries are settled before the attempted
        // ones, so a cycle with a delete remains possible only for an
        // endpoint that has both at once (disabled while sends to it were
        // under way) and is deleted at that moment; PostgreSQL then rolls
        // one back, and if it is this batch its leases resend it.
        batch.sort_by(|(a, _), (b, _)| a.delivery_id().as_str().cmp(b.delivery_id().as_str()));
        let (settlements, slots): (Vec<Settlement>, Vec<Slot>) = batch.into_iter().unzip();
        let recorded = write
            .run(Actor::Server, Operation::WebhookDispatch, move |tx| {
                let now = db::now();
                let mut attempted = Vec::with_capacity(settlements.len());
                for settlement in settlements {
                    match settlement {
                        Settlement::Attempted {
                            attempt,
                            status,
                            next,
                        } => attempted.push((
                            attempt,
                            q::AfterAttempt {
                                status,
                                next_attempt_at: next,
                            },
                        )),
                        Settlement::Dropped { delivery_id } => {
                            q::fail_delivery(tx.conn(), &delivery_id, now)?
                        }
                    }
                }
                q::record_attempts(tx.conn(), &attempted, now)?;
                Ok::<_, ApiError>(())
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "webhook dispatcher: outcomes not recorded; their deliveries will be sent again when their leases end");
        }
        drop(slots);
    }
}

/// A send error in a few words, with its cause (timeouts, refused
/// connections, TLS, a refused address).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}

/// `wait`, give or take a fifth, so retries of many deliveries spread out.
fn jittered(wait: Duration) -> chrono::Duration {
    let factor = rand::thread_rng().gen_range(0.8..1.2);
    chrono::Duration::from_std(wait.mul_f64(factor)).unwrap_or(chrono::Duration::MAX)
}
