//! Domain types: values that cannot hold invalid data, built by parsing.

pub mod api_key;
pub mod document;
pub mod time;
