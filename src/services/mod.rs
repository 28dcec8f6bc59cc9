//! Use cases: each runs on one database connection (inside the transaction
//! the caller opened) and combines domain rules with queries.

pub mod documents;
pub mod identities;
pub mod kyc;
