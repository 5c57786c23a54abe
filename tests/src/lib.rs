//! The end-to-end harness: starts the real `collector` binary on an ephemeral
//! port with a fresh SQLite file, the merchant's own web server (nginx) in
//! front of it, drives headless Debian Chromium over WebDriver, and reads the
//! database file back to check what was stored.
//!
//! Nothing here sleeps to synchronise: processes are ready when they print
//! their ready line, pages when the snippet says so (see `browser`).

#![cfg(not(target_arch = "wasm32"))]

pub mod browser;
pub mod collector;
pub mod contract;
pub mod http;
pub mod postgres;
pub mod receiver;
pub mod site;
pub mod smtp;

pub use browser::{in_browser, with_browser, with_profile, Page, Profile};
pub use collector::{Collector, Customer};

/// What the suites count in the database (`Collector::count`,
/// `wait_for_count`).
pub mod count {
    pub const CLICKS: &str = "SELECT count(*) FROM events WHERE type = 'click'";
    pub const SIGNUPS: &str = "SELECT count(*) FROM events WHERE type = 'signup'";
    pub const CUSTOMERS: &str = "SELECT count(*) FROM customers";
}

/// Base64 (standard alphabet, padded) of a partner key, as partner links carry it.
pub fn b64(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// The workspace's target directory.
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}
