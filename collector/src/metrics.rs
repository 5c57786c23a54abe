//! What `GET /metrics` reports, in Prometheus' text format: requests by route
//! and status, events by outcome, the writer's group sizes and commit
//! latency, drops the browsers' outboxes reported, refused webhooks.
//! Plain atomics, one per counter (requests: per route and status): counting
//! takes no lock on the request path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A histogram with fixed upper bounds, Prometheus-style (cumulative on output).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum: Mutex<f64>,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: Mutex::new(0.0),
        }
    }

    pub fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        *self.sum.lock().expect("histogram sum") += value;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = self.bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}", *self.sum.lock().expect("histogram sum"));
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The writer's figures (it updates them; `/metrics` reads them).
pub struct WriterMetrics {
    /// Requests per committed group.
    pub group_size: Histogram,
    /// Seconds from the group's first insert to its commit returning.
    pub commit_seconds: Histogram,
    /// Clicks reusing a click id recorded for another partner.
    pub click_id_conflicts: AtomicU64,
    /// Why the last group failed to commit; None once one commits again.
    /// `/readyz` is not ready meanwhile.
    pub failure: std::sync::Mutex<Option<String>>,
}

impl Default for WriterMetrics {
    fn default() -> WriterMetrics {
        WriterMetrics {
            group_size: Histogram::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]),
            failure: std::sync::Mutex::default(),
            click_id_conflicts: AtomicU64::default(),
            commit_seconds: Histogram::new(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
        }
    }
}

/// The routes `/metrics` counts requests by; `http::route_label` picks one.
pub const ROUTES: [&str; 16] = [
    "events",
    "config",
    "diagnostics",
    "loader",
    "wasm",
    "healthz",
    "readyz",
    "metrics",
    "webhooks_stripe",
    "webhooks_chargebee",
    "webhooks_recurly",
    "api",
    "dashboard",
    "portal",
    "static",
    "other",
];
/// HTTP statuses counted: 100 to 599.
const STATUSES: usize = 500;

pub struct Metrics {
    /// One counter per (route, status): a request adds 1 without a lock.
    requests: Box<[AtomicU64]>,
    pub events_accepted: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub events_rejected: AtomicU64,
    pub outbox_dropped: AtomicU64,
    pub webhooks_refused: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: (0..ROUTES.len() * STATUSES).map(|_| AtomicU64::new(0)).collect(),
            events_accepted: AtomicU64::default(),
            events_duplicate: AtomicU64::default(),
            events_rejected: AtomicU64::default(),
            outbox_dropped: AtomicU64::default(),
            webhooks_refused: AtomicU64::default(),
        }
    }
}

impl Metrics {
    /// Counts a request to `ROUTES[route]` answered with `status`.
    pub fn request(&self, route: usize, status: u16) {
        let status = usize::from(status).clamp(100, 100 + STATUSES - 1) - 100;
        if let Some(counter) = self.requests.get(route * STATUSES + status) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, writer: &WriterMetrics) -> String {
        let mut out = String::new();
        out += "# HELP growsumo_requests_total HTTP requests answered, by route and status.\n";
        out += "# TYPE growsumo_requests_total counter\n";
        for (i, counter) in self.requests.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            if count > 0 {
                let (route, status) = (ROUTES[i / STATUSES], 100 + i % STATUSES);
                let _ = writeln!(
                    out,
                    "growsumo_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out += "# HELP growsumo_events_total Browser events, by outcome.\n# TYPE growsumo_events_total counter\n";
        for (outcome, counter) in [
            ("accepted", &self.events_accepted),
            ("duplicate", &self.events_duplicate),
            ("rejected", &self.events_rejected),
        ] {
            let _ = writeln!(
                out,
                "growsumo_events_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        for (name, help, counter) in [
            (
                "growsumo_outbox_dropped_total",
                "Events browsers' outboxes dropped when full, as they reported.",
                &self.outbox_dropped,
            ),
            (
                "growsumo_webhooks_refused_total",
                "Webhook requests refused (signature, credentials, malformed).",
                &self.webhooks_refused,
            ),
            (
                "growsumo_click_id_conflicts_total",
                "Clicks reusing a click id recorded for another partner (squatters, shared ids).",
                &writer.click_id_conflicts,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        writer.group_size.render(
            &mut out,
            "growsumo_writer_group_requests",
            "Requests committed per group.",
        );
        writer.commit_seconds.render(
            &mut out,
            "growsumo_writer_commit_seconds",
            "Time to write and commit a group.",
        );
        out
    }
}
