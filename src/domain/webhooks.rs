//! Webhook endpoints: what a client may register, and where a delivery may
//! go.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use crate::domain::errors::FieldError;
use crate::domain::events::EventType;
use crate::domain::stored::text_enum;

text_enum! {
    #[serde(rename_all = "lowercase")]
    #[strum(serialize_all = "lowercase")]
    pub enum DeliveryStatus {
        /// Waiting for its first or next attempt.
        Pending,
        /// A 2xx answer arrived.
        Delivered,
        /// Every attempt of the schedule failed, or the endpoint went away.
        Failed,
    }
}

/// How webhooks are delivered by this process (from the environment).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub policy: TargetPolicy,
    pub schedule: RetrySchedule,
    /// A receiver must answer within this (10 s).
    pub timeout: Duration,
    /// How often an idle dispatcher looks for due deliveries.
    pub poll: Duration,
    /// How long a claimed delivery stays this dispatcher's.
    pub lease: Duration,
    /// The most deliveries claimed at a time.
    pub batch: i64,
    /// Deliveries a process holds (being sent or recorded) at most.
    pub concurrency: usize,
    /// Of those, at most this many for any one endpoint, so a slow or
    /// dead endpoint cannot hold up the others.
    pub endpoint_concurrency: usize,
}

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// The longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 500;

/// Where webhooks may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Production: https only, and no address a server should not reach
    /// on a client's behalf (loopback, private, link-local, metadata).
    pub strict: bool,
    /// Hosts exempt from the address check (on-premises receivers),
    /// lowercase.
    pub allowed_hosts: Vec<String>,
}

impl TargetPolicy {
    pub fn sandbox() -> Self {
        TargetPolicy {
            strict: false,
            allowed_hosts: Vec::new(),
        }
    }

    /// Whether the address check applies to `host`.
    pub fn checks_addresses_of(&self, host: &str) -> bool {
        self.strict
            && !self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// A URL an endpoint may have: absolute http(s) with a host, no
    /// credentials (a fragment is dropped); under a strict policy https only, and an IP
    /// literal must be a public address (names are checked when resolved,
    /// at every delivery).
    pub fn check_url(&self, raw: &str) -> Result<url::Url, String> {
        if raw.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        let mut url =
            url::Url::parse(raw.trim()).map_err(|_| "must be an absolute URL".to_string())?;
        match url.scheme() {
            "https" => {}
            "http" if !self.strict => {}
            "http" => return Err("must be https".into()),
            _ => return Err("must be an http(s) URL".into()),
        }
        // A fragment is never sent; keep the URL as it will be used.
        url.set_fragment(None);
        let Some(host) = url.host() else {
            return Err("must name a host".into());
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        let host_text = url.host_str().unwrap_or_default().to_string();
        if self.checks_addresses_of(host_text.trim_matches(['[', ']'])) {
            let literal = match host {
                url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
                url::Host::Domain(_) => None,
            };
            if let Some(ip) = literal.filter(|ip| is_forbidden(*ip)) {
                return Err(format!(
                    "{ip} is a loopback, private, link-local or metadata address"
                ));
            }
        }
        Ok(url)
    }
}

/// Addresses a webhook must never reach under a strict policy: loopback,
/// private, shared (CGNAT), link-local (cloud metadata lives there),
/// unique-local, unspecified, multicast, broadcast, documentation.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b
        }
    }
}

/// The waits between attempts: attempt n+1 waits the n-th entry (with
/// jitter); after the last, the delivery fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl RetrySchedule {
    /// About 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over
    /// a day and a half.
    pub fn standard() -> Self {
        RetrySchedule::parse("5s,5m,30m,2h,5h,10h,10h").expect("a valid schedule")
    }

    /// A comma-separated list of waits with units: `250ms`, `5s`, `5m`, `2h`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let waits = s
            .split(',')
            .map(|part| {
                let part = part.trim();
                let (digits, unit) = part
                    .find(|c: char| !c.is_ascii_digit())
                    .map(|i| part.split_at(i))
                    .ok_or_else(|| format!("{part:?} has no unit (ms, s, m or h)"))?;
                let n: u64 = digits
                    .parse()
                    .map_err(|_| format!("{part:?} does not start with a number"))?;
                let wait = match unit {
                    "ms" => Duration::from_millis(n),
                    "s" => Duration::from_secs(n),
                    "m" => Duration::from_secs(n * 60),
                    "h" => Duration::from_secs(n * 3600),
                    _ => return Err(format!("{part:?}: the unit must be ms, s, m or h")),
                };
                if wait.is_zero() || wait > Duration::from_secs(7 * 24 * 3600) {
                    return Err(format!("{part:?}: a wait is 1 ms to 7 days"));
                }
                Ok(wait)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if waits.is_empty() || waits.len() > 20 {
            return Err("a schedule has 1 to 20 waits".into());
        }
        Ok(RetrySchedule(waits))
    }

    /// The wait before the attempt after `attempts_made` attempts, or
    /// `None` when the schedule is exhausted.
    pub fn wait_after(&self, attempts_made: u32) -> Option<Duration> {
        let index = usize::try_from(attempts_made).ok()?.checked_sub(1)?;
        self.0.get(index).copied()
    }
}

/// An endpoint as a create or patch sends it; `None`: not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointInput {
    pub url: Option<String>,
    /// `Some(None)`: every type (sent as `null`).
    pub event_types: Option<Option<Vec<EventType>>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

impl EndpointInput {
    /// Reads a JSON object, checking every field; unknown fields are refused.
    pub fn parse(body: &Value, policy: &TargetPolicy) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut input = EndpointInput::default();
        let Some(object) = body.as_object() else {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        };
        for (name, value) in object {
            match name.as_str() {
                "url" => match value.as_str().map(|u| policy.check_url(u)) {
                    Some(Ok(url)) => input.url = Some(url.to_string()),
                    Some(Err(e)) => errors.push(FieldError::new("url", e)),
                    None => errors.push(FieldError::new("url", "must be a string")),
                },
                "eventTypes" => match value {
                    Value::Null => input.event_types = Some(None),
                    Value::Array(items) if !items.is_empty() => {
                        let mut types = Vec::new();
                        for (i, item) in items.iter().enumerate() {
                            match item.as_str().and_then(EventType::parse) {
                                Some(t) if !types.contains(&t) => types.push(t),
                                Some(_) => errors.push(FieldError::new(
                                    format!("eventTypes[{i}]"),
                                    "is listed twice",
                                )),
                                None => errors.push(FieldError::new(
                                    format!("eventTypes[{i}]"),
                                    "is not an event type",
                                )),
                            }
                        }
                        input.event_types = Some(Some(types));
                    }
                    _ => errors.push(FieldError::new(
                        "eventTypes",
                        "must be a non-empty list of event types, or null for every type",
                    )),
                },
                "description" => match value {
                    Value::Null => input.description = Some(None),
                    // The length sent counts (as the contract states it), not
                    // the length once trimmed.
                    // Control characters are refused: PostgreSQL cannot store
                    // NUL in text, and none belongs in a one-line label.
                    Value::String(s) if s.chars().any(char::is_control) => errors.push(
                        FieldError::new("description", "must not contain control characters"),
                    ),
                    Value::String(s) if s.chars().count() <= MAX_DESCRIPTION_LEN => {
                        let s = s.trim();
                        input.description = Some((!s.is_empty()).then(|| s.to_string()));
                    }
                    _ => errors.push(FieldError::new(
                        "description",
                        format!("must be a string of at most {MAX_DESCRIPTION_LEN} characters"),
                    )),
                },
                "enabled" => match value.as_bool() {
                    Some(b) => input.enabled = Some(b),
                    None => errors.push(FieldError::new("enabled", "must be true or false")),
                },
                other => errors.push(FieldError::new(
                    other,
                    "is not a field of a webhook endpoint",
                )),
            }
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(errors)
        }
    }
}

/// The stored form of an endpoint's event types: comma-separated, `None`
/// for every type.
pub fn stored_event_types(types: &Option<Vec<EventType>>) -> Option<String> {
    types.as_ref().map(|types| {
        types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The event types of a stored list (unknown names are skipped).
pub fn parse_stored_event_types(stored: Option<&str>) -> Option<Vec<EventType>> {
    stored.map(|s| s.split(',').filter_map(EventType::parse).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy {
            strict: true,
            allowed_hosts: vec!["hooks.internal".into(), "10.1.2.3".into()],
        }
    }

    #[test]
    fn strict_policy_refuses_what_a_server_must_not_reach() {
        for bad in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://10.0.0.1/hook",
            "https://192.168.1.1/hook",
            "https://172.16.0.1/hook",
            "https://100.64.0.1/hook",
            "https://[fd00::1]/hook",
            "https://[fe80::1]/hook",
            "https://0.0.0.0/hook",
            "https://user:pw@example.com/hook",
            "ftp://example.com/hook",
            "not a url",
        ] {
            assert!(strict().check_url(bad).is_err(), "{bad}");
        }
        for good in [
            "https://example.com/hook",
            "https://93.184.216.34/hook",
            "https://hooks.internal/hook",
            "https://10.1.2.3/hook",
        ] {
            assert!(strict().check_url(good).is_ok(), "{good}");
        }
        let sandbox = TargetPolicy::sandbox();
        assert!(sandbox.check_url("http://127.0.0.1:9/hook").is_ok());
        assert!(sandbox.check_url("ftp://127.0.0.1/hook").is_err());
    }

    #[test]
    fn schedules_parse_with_units() {
        let s = RetrySchedule::parse("10ms, 5s,5m,2h").unwrap();
        assert_eq!(
            s.0,
            [
                Duration::from_millis(10),
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(7200)
            ]
        );
        assert_eq!(s.wait_after(0), None);
        assert_eq!(s.wait_after(1), Some(Duration::from_millis(10)));
        assert_eq!(s.wait_after(4), Some(Duration::from_secs(7200)));
        assert_eq!(s.wait_after(5), None);
        assert_eq!(RetrySchedule::standard().0.len(), 7);
        for bad in ["", "5", "5x", "0s", "8d", "s", "1s,,2s"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_input_is_checked_field_by_field() {
        let policy = TargetPolicy::sandbox();
        let input = EndpointInput::parse(
            &serde_json::json!({"url": "http://127.0.0.1:9/h", "eventTypes": ["identity.created"], "description": " d ", "enabled": false}),
            &policy,
        )
        .unwrap();
        assert_eq!(input.url.as_deref(), Some("http://127.0.0.1:9/h"));
        assert_eq!(
            input.event_types,
            Some(Some(vec![EventType::IdentityCreated]))
        );
        assert_eq!(input.description, Some(Some("d".into())));
        assert_eq!(input.enabled, Some(false));
        let errors = EndpointInput::parse(
            &serde_json::json!({"url": 1, "eventTypes": ["x", "identity.created", "identity.created"], "enabled": "yes", "secret": "s"}),
            &policy,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["enabled", "eventTypes[0]", "eventTypes[2]", "secret", "url"]
        );
    }
}
