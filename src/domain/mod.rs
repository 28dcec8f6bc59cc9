//! Domain types: values that cannot hold invalid data, built by parsing.

pub mod api_key;
pub mod audit;
pub mod crypto;
pub mod decisions;
pub mod document;
pub mod email_search;
pub mod errors;
pub mod events;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod input;
pub mod kyc;
pub mod list_query;
pub mod metadata;
pub mod object_key;
pub mod operations;
pub mod pii;
pub mod relations;
pub mod sealed_object;
pub mod stored;
pub mod time;
pub mod webhooks;
