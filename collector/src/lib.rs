//! The growsumo collector: serves the snippet, receives browser events, and
//! stores who referred whom in SQLite.
//!
//! - `http`: the server (accept loop, routing table, handlers, assets).
//! - `app`: state shared by every request.
//! - `metrics`: the counters `GET /metrics` reports.
//! - `store`: the only code that touches the database; a narrow interface.
//! - `cli`: the `collector` command line.
//! - `config`: the TOML configuration file, merged under flags and environment.
//! - `export`: CSV exports (CLI and dashboard).
//! - `dispatch`: sends outgoing webhooks (signed, retried, to safe targets).
//! - `mailer`: sends programs' emails over SMTP (retried).
//! - `tls`: the certificates trusted as a TLS client.

pub mod app;
pub mod cli;
pub mod config;
pub mod disk;
pub mod dispatch;
pub mod export;
pub mod http;
pub mod mailer;
pub mod metrics;
pub mod store;
pub mod tls;
