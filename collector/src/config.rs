//! The configuration file (`--config FILE` or `GROWSUMO_CONFIG`), TOML.
//!
//! Precedence: a flag wins over its environment variable, which wins over
//! the file, which wins over the default. Keys listed under `[[keys]]` get
//! their origins, attribution settings and webhook secrets from the file each
//! time `serve` starts (so the file is the source of truth for them).
//!
//! ```toml
//! db = "/var/lib/growsumo/growsumo.db"
//! log_format = "json"
//!
//! [serve]
//! addr = "0.0.0.0:8080"
//! trusted_proxies = ["10.0.0.1"]
//!
//! [[keys]]
//! public_key = "pk_live_…"
//! origins = ["https://shop.example"]
//! cookie_domain = "shop.example"
//! window_days = 60
//! params = ["via", "ref:base64"]
//! require_consent = false
//! honor_gpc = true
//! fingerprint_hours = 24
//! auto_partners = false
//! stripe_secret = "whsec_…"
//! program_name = "Shop"                # the partner program (see `store::program`)
//! merchant_email = "owner@shop.example"
//! portal_url = "https://growsumo.shop.example"
//! applications = "review"               # closed, review or auto
//! emails = ["application", "approved"]  # the kinds sent (all when left out)
//!
//! [smtp]                                # see `mailer`
//! host = "smtp.shop.example"
//! tls = "starttls"
//! username = "partners"
//! password = "…"                        # or GROWSUMO_SMTP_PASSWORD
//! from = "Shop partners <partners@shop.example>"
//! ```

use crate::cli::{Cli, Command, LogFormat};
use crate::store::program::{Applications, Program};
use crate::store::webhooks::WebhookSettings;
use crate::store::{keys, webhooks, Param, Settings, Store};
use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub db: Option<String>,
    pub log_format: Option<LogFormat>,
    #[serde(default)]
    pub serve: ServeFile,
    #[serde(default)]
    pub keys: Vec<KeyFile>,
    /// The SMTP server programs' emails go through (none: no email is sent).
    pub smtp: Option<SmtpFile>,
}

fn starttls() -> String {
    "starttls".into()
}

/// `[smtp]`: where the mailer sends (see `mailer`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    pub host: String,
    /// 587 for starttls, 465 for tls, 25 for none, unless given.
    pub port: Option<u16>,
    /// "starttls" (required, the default), "tls" (from the start) or "none".
    #[serde(default = "starttls")]
    pub tls: String,
    #[serde(default)]
    pub username: String,
    /// Also `GROWSUMO_SMTP_PASSWORD`, which wins.
    #[serde(default)]
    pub password: String,
    /// The sender: `Shop partners <partners@shop.example>`.
    pub from: String,
    /// A CA certificate (PEM) to trust besides Mozilla's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    pub addr: Option<SocketAddr>,
    pub queue: Option<usize>,
    pub client_timeout_ms: Option<u64>,
    pub trusted_proxies: Option<Vec<IpAddr>>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub metrics_token: Option<String>,
}

fn yes() -> bool {
    true
}

fn ninety() -> u32 {
    90
}

fn twenty_four() -> u32 {
    24
}

fn invoice_event() -> String {
    "invoice.payment_succeeded".into()
}

/// One key's settings (see README, "Key settings").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub public_key: String,
    #[serde(default)]
    pub origins: Vec<String>,
    #[serde(default)]
    pub cookie_domain: String,
    #[serde(default = "ninety")]
    pub window_days: u32,
    #[serde(default)]
    pub params: Vec<String>,
    #[serde(default)]
    pub require_consent: bool,
    #[serde(default = "yes")]
    pub honor_gpc: bool,
    #[serde(default = "twenty_four")]
    pub fingerprint_hours: u32,
    #[serde(default)]
    pub auto_partners: bool,
    #[serde(default)]
    pub stripe_secret: String,
    #[serde(default = "invoice_event")]
    pub stripe_payment_event: String,
    #[serde(default)]
    pub chargebee_auth: String,
    #[serde(default)]
    pub recurly_auth: String,
    /// The program's settings (see `store::program`), when any is given.
    pub program_name: Option<String>,
    pub merchant_email: Option<String>,
    pub portal_url: Option<String>,
    /// "closed", "review" or "auto".
    pub applications: Option<String>,
    pub program_group: Option<String>,
    /// The kinds of email sent (all when not given).
    pub emails: Option<Vec<String>>,
}

/// Reads the file at `path`.
pub fn load(path: &Path) -> Result<File> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in the config file {}", path.display()))
}

/// Whether the user left `id` to its default (neither flag nor environment).
fn defaulted(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), None | Some(ValueSource::DefaultValue))
}

/// Fills what the command line left to defaults from the file.
pub fn apply(cli: &mut Cli, matches: &ArgMatches, file: &File) {
    if let (Some(db), true) = (&file.db, defaulted(matches, "db")) {
        cli.db = db.parse().unwrap_or_else(|never| match never {});
    }
    if let (Some(format), true) = (file.log_format, defaulted(matches, "log_format")) {
        cli.log_format = format;
    }
    if let (Command::Serve(args), Some(serve)) = (&mut cli.command, matches.subcommand_matches("serve")) {
        let file = &file.serve;
        if let (Some(addr), true) = (file.addr, defaulted(serve, "addr")) {
            args.addr = addr;
        }
        if let (Some(queue), true) = (file.queue, defaulted(serve, "queue")) {
            args.queue = queue;
        }
        if let (Some(ms), true) = (file.client_timeout_ms, defaulted(serve, "client_timeout_ms")) {
            args.client_timeout_ms = ms;
        }
        if let (Some(proxies), true) = (&file.trusted_proxies, defaulted(serve, "trusted_proxies")) {
            args.trusted_proxies = proxies.clone();
        }
        if let (Some(n), true) = (file.max_connections, defaulted(serve, "max_connections")) {
            args.max_connections = n;
        }
        if let (Some(n), true) = (
            file.max_connections_per_client,
            defaulted(serve, "max_connections_per_client"),
        ) {
            args.max_connections_per_client = n;
        }
        if let (Some(token), true) = (&file.metrics_token, defaulted(serve, "metrics_token")) {
            args.metrics_token = Some(token.clone());
        }
    }
}

/// The program settings a `[[keys]]` entry gives, if it gives any.
fn program_of(key: &KeyFile) -> Result<Option<Program>> {
    let given = key.program_name.is_some()
        || key.merchant_email.is_some()
        || key.portal_url.is_some()
        || key.applications.is_some()
        || key.program_group.is_some()
        || key.emails.is_some();
    if !given {
        return Ok(None);
    }
    let applications = key.applications.as_deref().unwrap_or("closed");
    Ok(Some(Program {
        name: key.program_name.clone().unwrap_or_default(),
        merchant_email: key.merchant_email.clone().unwrap_or_default(),
        portal_url: key.portal_url.clone().unwrap_or_default(),
        applications: Applications::parse(applications).ok_or_else(|| {
            anyhow::anyhow!(
                "config: key {}: applications must be closed, review or auto",
                key.public_key
            )
        })?,
        group_key: key.program_group.clone(),
        emails: key
            .emails
            .clone()
            .unwrap_or_else(|| crate::store::mail::KINDS.iter().map(|k| k.to_string()).collect()),
    }))
}

/// Writes the `[[keys]]` settings into the database.
pub fn apply_keys(store: &Store, file: &File) -> Result<()> {
    for key in &file.keys {
        if !["invoice.payment_succeeded", "charge.succeeded"].contains(&key.stripe_payment_event.as_str()) {
            anyhow::bail!(
                "config: key {}: stripe_payment_event must be invoice.payment_succeeded or charge.succeeded",
                key.public_key
            );
        }
        let params = key
            .params
            .iter()
            .map(|p| p.parse::<Param>())
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| anyhow::anyhow!("config: key {}: params: {e}", key.public_key))?;
        let settings = Settings {
            cookie_domain: key.cookie_domain.to_ascii_lowercase(),
            window_days: key.window_days,
            params,
            require_consent: key.require_consent,
            honor_gpc: key.honor_gpc,
            fingerprint_hours: key.fingerprint_hours,
            auto_partners: key.auto_partners,
        };
        let hooks = WebhookSettings {
            stripe_secret: key.stripe_secret.clone(),
            stripe_payment_event: key.stripe_payment_event.clone(),
            chargebee_auth: key.chargebee_auth.clone(),
            recurly_auth: key.recurly_auth.clone(),
        };
        let program = program_of(key)?;
        store
            .write_stamped(|tx, now| {
                keys::update(tx, &key.public_key, &key.origins, &settings)?;
                let found = keys::find(tx, &key.public_key)?;
                let id = found.as_ref().map(|k| k.id).unwrap_or_default();
                if let (Some(found), Some(program)) = (&found, &program) {
                    crate::store::program::set(tx, found, program, now)?;
                }
                webhooks::set(tx, id, &hooks)
            })
            .with_context(|| format!("config: key {}", key.public_key))?;
    }
    Ok(())
}
