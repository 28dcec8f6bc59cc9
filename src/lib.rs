//! kyc-api: a self-hostable, custodial KYC identity API.
//!
//! Layers, each importing only the ones below it (ARCHITECTURE.md):
//! `cli` → `startup` → `routes` → `auth`, `app` → `services` → `error`,
//! `views`, `config` → `db`, `storage` → `domain`.

pub mod app;
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
pub mod views;
