//! Use cases: each combines domain rules with queries. Reads run on a
//! connection they are given; changes run through the write path
//! (`write`), which hands them a `Tx`.

pub mod audit;
pub mod console;
pub mod cursor;
pub mod custody;
pub mod documents;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod identities;
pub mod kyc;
pub mod listing;
pub mod rate_limit;
pub mod relations;
pub mod rotation;
pub mod tenancy;
pub mod webhooks;
pub mod write;
