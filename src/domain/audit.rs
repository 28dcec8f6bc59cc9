//! Audit records and their hash chain.
//!
//! Each record of a chain (one per app) stores the previous record's hash
//! and its own: `SHA-256(previous hash || canonical encoding)`, in hex. The
//! canonical encoding is the record's JSON with its fields in a fixed order
//! and its time to the microsecond, so any change to a stored field, a
//! removed record or two records swapped breaks the chain.

use chrono::NaiveDateTime;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The previous hash of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain of writes that belong to no app (start-up, server secrets).
pub const SERVER_CHAIN: &str = "server";

/// Where a request came from, as the audit trail records it: the request
/// id the server logs (the caller's `x-request-id` when it sent a usable
/// one) and the client's address (the TCP peer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub client_address: Option<String>,
}

/// What became of the action a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A write, committed with its record.
    Committed,
    /// A sensitive read, answered.
    Allowed,
    /// A sensitive read, refused (not found, bad or expired signature).
    Denied,
    /// A sensitive read the server failed to answer (a 5xx).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One thing a write touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// An audit record, everything its hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub chain: String,
    pub seq: i64,
    pub created_at: NaiveDateTime,
    /// `api`, `cli` or `server`.
    pub actor: String,
    pub api_key_id: Option<String>,
    pub os_user: Option<String>,
    pub action: String,
    pub targets: Vec<Target>,
    /// Wire names of the fields a change touched, never their values.
    pub fields: Vec<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
    /// The HTTP status answered, for a request.
    pub status: Option<i32>,
}

#[derive(Serialize)]
struct Canonical<'a> {
    id: &'a str,
    chain: &'a str,
    seq: i64,
    created_at: String,
    actor: &'a str,
    api_key_id: Option<&'a str>,
    os_user: Option<&'a str>,
    action: &'a str,
    targets: &'a [Target],
    fields: &'a [String],
    outcome: &'a str,
    // Added after the first records were written: left out when empty, so
    // those records keep their hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<i32>,
}

impl AuditRecord {
    /// The bytes the hash covers.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&Canonical {
            id: &self.id,
            chain: &self.chain,
            seq: self.seq,
            created_at: self.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            actor: &self.actor,
            api_key_id: self.api_key_id.as_deref(),
            os_user: self.os_user.as_deref(),
            action: &self.action,
            targets: &self.targets,
            fields: &self.fields,
            outcome: &self.outcome,
            request_id: self.request_id.as_deref(),
            client_address: self.client_address.as_deref(),
            status: self.status,
        })
        .expect("an audit record serializes")
    }

    /// The identity the record concerns: its first target of that type
    /// (stored beside the record for the list's filter, and checked
    /// against this by the chain check).
    pub fn identity_id(&self) -> Option<&str> {
        self.targets
            .iter()
            .find(|t| t.kind == "identity")
            .map(|t| t.id.as_str())
    }

    /// Its hash after the record whose hash is `previous`.
    pub fn hash_after(&self, previous: &str) -> String {
        let mut digest = Sha256::new();
        digest.update(previous.as_bytes());
        digest.update(self.canonical());
        hex::encode(digest.finalize())
    }
}

/// Where a chain first goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first record that does not verify (or `None`: the chain's head
    /// names records that are not there).
    pub record_id: Option<String>,
    pub seq: i64,
    pub expected: String,
    pub found: String,
}

/// Walks a chain's records in `seq` order: each must follow the one
/// before (its `seq` one more, its previous hash that record's hash) and
/// hash to what it stores. Feed records with [`ChainCheck::next`]; a break
/// is final.
#[derive(Debug)]
pub struct ChainCheck {
    seq: i64,
    hash: String,
    pub verified: u64,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck {
            seq: 0,
            hash: GENESIS.to_owned(),
            verified: 0,
        }
    }
}

impl ChainCheck {
    /// Checks the next stored record (`prev_hash`, `hash` and the
    /// `identity_id` column as stored).
    pub fn next(
        &mut self,
        record: &AuditRecord,
        prev_hash: &str,
        hash: &str,
        identity_id: Option<&str>,
    ) -> Result<(), Break> {
        let broken = |expected: String, found: &str| Break {
            record_id: Some(record.id.clone()),
            seq: record.seq,
            expected,
            found: found.to_owned(),
        };
        if record.seq != self.seq + 1 {
            return Err(broken(
                format!("seq {}", self.seq + 1),
                &format!("seq {}", record.seq),
            ));
        }
        if prev_hash != self.hash {
            return Err(broken(self.hash.clone(), prev_hash));
        }
        let computed = record.hash_after(&self.hash);
        if computed != hash {
            return Err(broken(computed, hash));
        }
        // Not hashed (it is derived), but a list filtered by identity must
        // not be able to lose a record.
        if identity_id != record.identity_id() {
            let shown = |id: Option<&str>| format!("identity_id {}", id.unwrap_or("null"));
            return Err(broken(shown(record.identity_id()), &shown(identity_id)));
        }
        self.seq = record.seq;
        self.hash = computed;
        self.verified += 1;
        Ok(())
    }

    /// After the last record: the head must name it.
    pub fn finish(&self, head_seq: i64, head_hash: &str) -> Result<(), Break> {
        if head_seq != self.seq || head_hash != self.hash {
            return Err(Break {
                record_id: None,
                seq: head_seq,
                expected: format!("head at seq {} with hash {}", self.seq, self.hash),
                found: format!("head at seq {head_seq} with hash {head_hash}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, action: &str) -> AuditRecord {
        AuditRecord {
            id: format!("r{seq}"),
            chain: "app".into(),
            seq,
            created_at: chrono::DateTime::from_timestamp(1_700_000_000 + seq, 123_456_000)
                .unwrap()
                .naive_utc(),
            actor: "api".into(),
            api_key_id: Some("k".into()),
            os_user: None,
            action: action.into(),
            targets: vec![Target {
                kind: "identity".into(),
                id: "i".into(),
            }],
            fields: vec!["name".into()],
            outcome: "committed".into(),
            request_id: None,
            client_address: None,
            status: None,
        }
    }

    fn chain(n: i64) -> Vec<(AuditRecord, String, String)> {
        let mut previous = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let r = record(seq, "identity.patch");
                let hash = r.hash_after(&previous);
                let out = (r, previous.clone(), hash.clone());
                previous = hash;
                out
            })
            .collect()
    }

    fn check(rows: &[(AuditRecord, String, String)]) -> Result<u64, Break> {
        let mut c = ChainCheck::default();
        for (r, prev, hash) in rows {
            c.next(r, prev, hash, r.identity_id())?;
        }
        let (seq, hash) = rows
            .last()
            .map(|(r, _, h)| (r.seq, h.clone()))
            .unwrap_or((0, GENESIS.to_owned()));
        c.finish(seq, &hash)?;
        Ok(c.verified)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(check(&chain(5)), Ok(5));
        assert_eq!(check(&[]), Ok(0));
    }

    #[test]
    fn a_changed_field_a_removed_or_swapped_record_breaks_the_chain() {
        let mut changed = chain(5);
        changed[2].0.fields = vec!["email".into()];
        assert_eq!(
            check(&changed).unwrap_err().record_id.as_deref(),
            Some("r3")
        );

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(
            check(&removed).unwrap_err().record_id.as_deref(),
            Some("r3")
        );

        let mut swapped = chain(5);
        swapped.swap(1, 2);
        assert_eq!(
            check(&swapped).unwrap_err().record_id.as_deref(),
            Some("r3")
        );

        // The last record removed: only the head knows.
        let mut c = ChainCheck::default();
        let rows = chain(3);
        for (r, prev, hash) in &rows[..2] {
            c.next(r, prev, hash, r.identity_id()).unwrap();
        }
        let broken = c.finish(3, &rows[2].2).unwrap_err();
        assert_eq!(broken.record_id, None);
    }

    #[test]
    fn the_encoding_is_stable() {
        let r = record(1, "identity.create");
        assert_eq!(
            String::from_utf8(r.canonical()).unwrap(),
            r#"{"id":"r1","chain":"app","seq":1,"created_at":"2023-11-14T22:13:21.123456","actor":"api","api_key_id":"k","os_user":null,"action":"identity.create","targets":[{"type":"identity","id":"i"}],"fields":["name"],"outcome":"committed"}"#
        );
        // The request's fields, when known, are covered too.
        let r = AuditRecord {
            request_id: Some("req-1".into()),
            client_address: Some("192.0.2.7".into()),
            status: Some(201),
            ..r
        };
        assert!(String::from_utf8(r.canonical()).unwrap().ends_with(
            r#""outcome":"committed","request_id":"req-1","client_address":"192.0.2.7","status":201}"#
        ));
    }
}
