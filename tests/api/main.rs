//! Black-box API tests: one binary, every test against a real server.

mod helpers;

mod audit;
mod cli;
mod console;
mod cursors;
mod custody;
mod decisions;
mod documents;
mod events;
mod faults;
mod foundation;
mod idempotency;
mod identities;
mod kyc;
mod layers;
mod listing;
mod migrations;
mod openapi;
mod plans;
mod relations;
mod replicas;
mod rotation;
mod scopes;
mod tenancy;
mod webhooks;
mod write_path;
