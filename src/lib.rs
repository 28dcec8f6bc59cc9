//! kyc-api: a self-hostable, custodial KYC identity API.
//!
//! Layout: `routes` (thin HTTP handlers) → `domain` (types and rules) and
//! `db` (every Diesel query) → `storage` (documents' bytes).

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod routes;
pub mod services;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod tenancy;
pub mod views;
