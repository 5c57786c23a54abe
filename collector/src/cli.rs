//! The `collector` command line: `serve` runs the server; the other commands
//! manage keys and read what was stored, straight from the database file.

use crate::app::App;
use crate::http::api::records::{OfferRecord, Partnership};
use crate::store::merchant;
use crate::store::money::{self, OfferKind, OfferSpec};
use crate::store::page::List;
use crate::store::webhooks::{self, WebhookSettings};
use crate::store::{keys, read, Clock, Key, Mode, Param, Settings, Store};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "collector",
    version,
    about = "Self-hosted, PartnerStack-compatible partner-referral collector"
)]
pub struct Cli {
    /// A TOML configuration file (see README, "Configuration"); flags and
    /// environment variables win over it.
    #[arg(long, global = true, env = "GROWSUMO_CONFIG")]
    pub config: Option<PathBuf>,
    /// The database: a SQLite file (created if missing; `sqlite:path` also
    /// works), or a PostgreSQL URL (`postgres://user:password@host/db`)
    /// that several collectors share.
    #[arg(long, global = true, env = "GROWSUMO_DB", default_value = "growsumo.db")]
    pub db: crate::store::Location,
    /// Log lines as text, or as JSON objects (with each request's id).
    #[arg(long, global = true, env = "GROWSUMO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the collector (snippet, events endpoint, health check).
    Serve(ServeArgs),
    /// Manage key pairs.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read customers (partner → customer line items).
    #[command(subcommand)]
    Customers(CustomersCommand),
    /// Set and list a key's offers: what partners earn.
    #[command(subcommand)]
    Offers(OffersCommand),
    /// Configure a key's payment-provider webhooks.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Add and list a key's partners.
    #[command(subcommand)]
    Partners(PartnersCommand),
    /// A key's partner program: its name, applications, emails.
    #[command(subcommand)]
    Program(ProgramCommand),
    /// A key's outgoing webhook endpoints: where its changes are sent.
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
    /// Write a key's customers, transactions or rewards as CSV.
    Export {
        public_key: String,
        #[arg(value_enum)]
        table: crate::export::Table,
        /// The file to write (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Apply pending schema migrations and the config file's `[[keys]]`,
    /// then print the schema version (`serve` does both at start too).
    /// With `--from` and `--to`: copy everything in one store into another,
    /// empty one (e.g. `--from growsumo.db --to postgres://…`), and check
    /// every table's count.
    Migrate {
        /// The store to copy from (a SQLite file or a PostgreSQL URL).
        #[arg(long, requires = "to")]
        from: Option<crate::store::Location>,
        /// The store to copy into; made if missing, and must hold no data.
        #[arg(long, requires = "from")]
        to: Option<crate::store::Location>,
    },
    /// Copy the database to FILE while it is in use (SQLite online backup).
    Backup { file: PathBuf },
    /// Benchmarks only: add N synthetic click events for the demo key.
    #[command(hide = true)]
    Fill {
        #[arg(long)]
        events: u64,
        /// Also add this many customers (over 1,000 partners, one in ten with a payment).
        #[arg(long, default_value_t = 0)]
        customers: u64,
        /// The key to fill (default: the demo key).
        #[arg(long)]
        public_key: Option<String>,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, env = "GROWSUMO_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Also serve the demo merchant site at `/`, with a test key named "demo".
    #[arg(long)]
    pub demo: bool,
    /// Create the database file when it does not exist (without it, `serve`
    /// refuses a missing file).
    #[arg(long)]
    pub create: bool,
    /// Most event requests waiting for the writer before new ones get 503.
    #[arg(long, default_value_t = 4096)]
    pub queue: usize,
    /// Milliseconds a client may take to send its request headers, and again
    /// its body, before the connection is closed (slow clients hold nothing).
    #[arg(long, default_value_t = 10_000)]
    pub client_timeout_ms: u64,
    /// Benchmarks only: answer events without storing them, to measure the
    /// HTTP path alone. Never use it in production.
    #[arg(long, hide = true)]
    pub no_persist: bool,
    /// A reverse proxy whose `X-Forwarded-For` / `X-Forwarded-Proto` are
    /// believed (repeatable; an IP address). Others' are ignored.
    #[arg(long = "trusted-proxy", env = "GROWSUMO_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Most connections served at once (lowered to fit the open-file limit,
    /// which is raised to its hard limit at start).
    #[arg(long, env = "GROWSUMO_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Most connections served at once from one client address (a trusted
    /// proxy's are not capped): one client cannot take them all.
    #[arg(long, env = "GROWSUMO_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub max_connections_per_client: usize,
    /// A bearer token that opens `/metrics` to other hosts (a Prometheus
    /// scraper); without one, `/metrics` answers direct loopback clients only.
    #[arg(long, env = "GROWSUMO_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// Milliseconds an answer may wait for the client to read it (pipelined
    /// requests whose answers are never read); then the connection is dropped.
    #[arg(long, default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// Seconds a keep-alive connection is kept: past it, the next answer
    /// closes it (a client cannot hold one connection forever).
    #[arg(long, default_value_t = 300)]
    pub connection_max_age_s: u64,
    /// Requests per second one client address may make (bursts of twice
    /// that); over it, 429 with Retry-After. 0: off.
    #[arg(long, env = "GROWSUMO_CLIENT_REQUESTS_PER_SECOND", default_value_t = 1000)]
    pub client_requests_per_second: u32,
    /// Browser events per second one key may receive (bursts of twice
    /// that); over it, 429 with Retry-After, which the snippet retries. 0: off.
    #[arg(long, env = "GROWSUMO_KEY_EVENTS_PER_SECOND", default_value_t = 5000)]
    pub key_events_per_second: u32,
    /// Megabytes the WAL may hold before the checkpointer empties it (a
    /// flood, or long readers, would grow it without bound).
    #[arg(long, default_value_t = 256)]
    pub wal_limit_mb: u64,
    /// Megabytes that must stay free on the database's disk: below it,
    /// events get 503 (the snippet retries) and /readyz says why; 0: off.
    #[arg(long, env = "GROWSUMO_MIN_FREE_MB", default_value_t = 256)]
    pub min_free_mb: u64,
    /// Tests only: shift the collector's clock by the seconds written in this
    /// file (re-read at every use), so "30 days later" takes no time.
    #[arg(long, hide = true)]
    pub clock_offset_file: Option<PathBuf>,
    /// Let outgoing webhooks reach private, loopback and link-local
    /// addresses, and plain http URLs (an intranet's endpoints; tests).
    /// Off by default: an endpoint URL is a request made from inside your
    /// network on an API key holder's behalf.
    #[arg(long, env = "GROWSUMO_ALLOW_PRIVATE_WEBHOOK_TARGETS")]
    pub allow_private_webhook_targets: bool,
    /// A PEM file of CA certificates outgoing webhooks trust besides
    /// Mozilla's roots (endpoints on an intranet with its own CA).
    #[arg(long, env = "GROWSUMO_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<String>,
}

/// A key's allowed origins and attribution settings (see README, "Attribution").
/// Each is optional: `keys create` starts from the defaults, `keys set`
/// from the key's current settings, and only what is given changes.
#[derive(Args)]
pub struct KeyArgs {
    /// An origin whose pages may send events (repeatable), e.g.
    /// https://shop.example; `*` allows any. The collector's own origin is
    /// always allowed. Given to `keys set`, the list replaces the current one.
    #[arg(long = "origin")]
    origins: Vec<String>,
    /// Server-cookie mode: the merchant's registrable domain (shop.example)
    /// when the collector is served on it (t.shop.example, or a proxied path).
    /// Clicks then set an HttpOnly attribution cookie there. "" turns it off.
    #[arg(long)]
    cookie_domain: Option<String>,
    /// Days after a click during which a signup is credited to it [default: 90].
    #[arg(long)]
    window_days: Option<u32>,
    /// An extra landing-URL parameter carrying the partner key (repeatable):
    /// `via` (plain text) or `ref:base64`. Given to `keys set`, the list
    /// replaces the current one.
    #[arg(long = "param")]
    params: Vec<Param>,
    /// Store nothing in the browser until the page calls growsumo.consent(true)
    /// (`--require-consent false` turns it off).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    require_consent: Option<bool>,
    /// Track browsers that send Global Privacy Control (honoured by default).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    ignore_gpc: Option<bool>,
    /// Hours after a click during which a signup from the same fingerprint
    /// and client network may be suggested for it; 0 turns fingerprint
    /// matching off [default: 24].
    #[arg(long)]
    fingerprint_hours: Option<u32>,
    /// Turn partner keys no partnership has into partnerships (open
    /// programs); by default their signups wait for review.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    auto_partners: Option<bool>,
}

impl KeyArgs {
    /// `origins` and `settings` with what these arguments give applied.
    fn applied(&self, origins: &[String], settings: &Settings) -> (Vec<String>, Settings) {
        let origins = match self.origins.is_empty() {
            true => origins.to_vec(),
            false => self.origins.clone(),
        };
        let settings = Settings {
            cookie_domain: self
                .cookie_domain
                .as_ref()
                .map_or(settings.cookie_domain.clone(), |d| d.to_ascii_lowercase()),
            window_days: self.window_days.unwrap_or(settings.window_days),
            params: match self.params.is_empty() {
                true => settings.params.clone(),
                false => self.params.clone(),
            },
            require_consent: self.require_consent.unwrap_or(settings.require_consent),
            honor_gpc: self.ignore_gpc.map_or(settings.honor_gpc, |ignore| !ignore),
            fingerprint_hours: self.fingerprint_hours.unwrap_or(settings.fingerprint_hours),
            auto_partners: self.auto_partners.unwrap_or(settings.auto_partners),
        };
        (origins, settings)
    }
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key pair and print it (the secret is shown only once).
    Create {
        #[arg(long, value_enum, default_value_t = Mode::Test)]
        mode: Mode,
        /// Create a test key and a live key, paired (the dashboard, signed in
        /// with the live secret, switches between them).
        #[arg(long, conflicts_with = "mode", requires = "name")]
        pair: bool,
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Change a key's origins and settings (only those given), and print it.
    /// A running collector applies them within 30 s (at once on PostgreSQL).
    Set {
        public_key: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Pair a live key with a test key: the dashboard, signed in with the
    /// live secret, may switch to the test key's data.
    Pair {
        live_public_key: String,
        test_public_key: String,
    },
    /// List key pairs (without secrets).
    List,
    /// Revoke a key pair: its secret stops working at once, its public key
    /// within 30 s on a running collector (at once on PostgreSQL).
    Revoke { public_key: String },
}

#[derive(Subcommand)]
pub enum OffersCommand {
    /// Create or replace an offer. Examples: `--kind new-customer --amount
    /// USD:5000` (50.00 per new customer); `--kind percent --percent 20
    /// --months 12` (20% of each payment for a year); `--kind action
    /// --action-key activated --amount USD:1000` (10.00 when a customer
    /// activates).
    Set {
        public_key: String,
        /// The offer's name, unique per key.
        #[arg(long)]
        key: String,
        #[arg(long, value_enum)]
        kind: OfferKind,
        /// Percent offers: the share of each payment, in percent.
        #[arg(long)]
        percent: Option<f64>,
        /// New-customer offers: CURRENCY:CENTS (repeatable, one per currency).
        #[arg(long = "amount")]
        amounts: Vec<String>,
        /// Percent offers: months it pays after the first payment (default: forever).
        #[arg(long)]
        months: Option<u32>,
        /// Action offers: the customer action it pays for.
        #[arg(long)]
        action_key: Option<String>,
        /// Pays only this group's partnerships (default: every group).
        #[arg(long)]
        group: Option<String>,
    },
    /// List a key's offers.
    List { public_key: String },
}

#[derive(Subcommand)]
pub enum ProgramCommand {
    /// Change a key's program settings (those not given stay as they are);
    /// prints them.
    Set {
        public_key: String,
        /// The name partners see (the key's name by default).
        #[arg(long)]
        name: Option<String>,
        /// Where new applications are announced ("" for nowhere).
        #[arg(long)]
        merchant_email: Option<String>,
        /// The collector's public URL, for links in emails sent outside a request.
        #[arg(long)]
        portal_url: Option<String>,
        /// Who may join through the public application page.
        #[arg(long, value_parser = ["closed", "review", "auto"])]
        applications: Option<String>,
        /// The group approved applicants join ("" for the default group).
        #[arg(long)]
        group: Option<String>,
        /// The kinds of email sent, comma-separated ("all", or "" for none).
        #[arg(long)]
        emails: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PartnersCommand {
    /// Add a partner (prints it with its referral link parameter).
    Add {
        public_key: String,
        #[arg(long)]
        email: String,
        /// Default: generated.
        #[arg(long)]
        partner_key: Option<String>,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
    },
    /// List a key's partners, newest first.
    List {
        public_key: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Print a one-time sign-in link to the partner portal (valid 24 h)
    /// for a partner to open.
    Link {
        public_key: String,
        partner_key: String,
        /// The collector's public URL (https://t.shop.example): printed
        /// before the link's path.
        #[arg(long, default_value = "")]
        base_url: String,
    },
}

#[derive(Subcommand)]
pub enum EndpointsCommand {
    /// Register an endpoint (prints it with its whsec_ secret).
    Add {
        public_key: String,
        /// An https URL.
        #[arg(long)]
        url: String,
        /// An event type to send (repeatable; default: every one), e.g.
        /// customer.created.
        #[arg(long = "event")]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Accept a private address or plain http (the server sends to it
        /// only with --allow-private-webhook-targets).
        #[arg(long)]
        allow_private: bool,
    },
    /// List a key's endpoints.
    List { public_key: String },
    /// Delete an endpoint, with its deliveries.
    Remove { public_key: String, endpoint_key: String },
}

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Set a key's webhook secrets (options left out are turned off).
    Set {
        public_key: String,
        /// Stripe's endpoint signing secret (whsec_…), for POST /webhooks/stripe.
        #[arg(long, default_value = "")]
        stripe_secret: String,
        /// The Stripe event that records a payment.
        #[arg(long, default_value = "invoice.payment_succeeded",
              value_parser = ["invoice.payment_succeeded", "charge.succeeded"])]
        stripe_payment_event: String,
        /// USER:PASSWORD Chargebee sends (Basic auth), for POST /webhooks/chargebee.
        #[arg(long, default_value = "")]
        chargebee_auth: String,
        /// USER:PASSWORD Recurly sends (Basic auth), for POST /webhooks/recurly.
        #[arg(long, default_value = "")]
        recurly_auth: String,
    },
}

#[derive(Subcommand)]
pub enum CustomersCommand {
    /// List the newest customers with their partner and attribution source.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `migrate --from --to`: copies one store into another, empty one, and
/// prints what each table held.
fn move_store(from: &crate::store::Location, to: &crate::store::Location) -> Result<()> {
    if from == to {
        bail!("--from and --to are the same store");
    }
    if !from.exists()? {
        bail!("no database at {from}");
    }
    let copied = crate::store::copy::copy(&Store::open(from)?, &Store::open(to)?)?;
    for c in &copied {
        println!("{:<20} {:>12} rows", c.table, c.rows);
    }
    let rows: i64 = copied.iter().map(|c| c.rows).sum();
    println!("copied {rows} rows from {from} to {to}; every table's count checked");
    Ok(())
}

/// Runs the command; `file` is the configuration file's content (empty
/// without `--config`), already merged into `cli` by `config::apply`.
pub fn run(cli: Cli, file: &crate::config::File) -> Result<()> {
    // Only commands that mean to start a database create its file: any
    // other on a missing file (a wrong path, a lost volume) would silently
    // begin an empty database where one was expected.
    if let Command::Migrate {
        from: Some(from),
        to: Some(to),
    } = &cli.command
    {
        return move_store(from, to);
    }
    let creates = match &cli.command {
        Command::Serve(args) => args.create,
        Command::Migrate { .. } | Command::Fill { .. } | Command::Keys(KeysCommand::Create { .. }) => true,
        _ => false,
    };
    if !creates && !cli.db.exists()? {
        bail!(
            "no database at {}: give the right --db, or make a new one with `collector migrate` (or `serve --create`)",
            cli.db
        );
    }
    let store = Store::open(&cli.db)?;
    match cli.command {
        Command::Serve(args) => {
            crate::config::apply_keys(&store, file)?;
            let mailer = file.smtp.as_ref().map(crate::mailer::Mailer::new).transpose()?;
            serve(store, args, mailer)
        }
        Command::Keys(KeysCommand::Create { mode, pair, name, key }) => {
            let modes = if pair { vec![Mode::Test, Mode::Live] } else { vec![mode] };
            let mut made = Vec::new();
            for mode in modes {
                let (origins, settings) = key.applied(&[], &Settings::default());
                let created = store.write(|tx| keys::create(tx, mode, &name, &origins, &settings))?;
                println!("public key: {}", created.key.public_key);
                println!("secret key: {}  (shown once: keep it safe)", created.secret_key);
                made.push(created.key.public_key);
            }
            if let [test, live] = &made[..] {
                store.write(|tx| keys::pair(tx, live, test))?;
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Pair {
            live_public_key,
            test_public_key,
        }) => {
            store.write(|tx| keys::pair(tx, &live_public_key, &test_public_key))?;
            println!("paired {live_public_key} (live) with {test_public_key} (test)");
            Ok(())
        }
        Command::Keys(KeysCommand::Revoke { public_key }) => {
            let now = store.clock().now_ms();
            store.write(|tx| keys::revoke(tx, &public_key, now))?;
            println!("revoked {public_key}");
            Ok(())
        }
        Command::Partners(PartnersCommand::Add {
            public_key,
            email,
            partner_key,
            first_name,
            last_name,
        }) => {
            let owner = key_named(&store, &public_key)?;
            if !crate::http::decode::is_email(&email) {
                anyhow::bail!("--email {email:?} is not an email address");
            }
            let fields = merchant::PartnerFields {
                email: Some(email),
                first_name: Some(first_name),
                last_name: Some(last_name),
                group_key: None,
            };
            let now = store.clock().now_ms();
            let partner = store.write(|tx| merchant::create_partner(tx, &owner, partner_key, fields, now))?;
            println!("{}", serde_json::to_string(&Partnership::new(partner, &owner))?);
            Ok(())
        }
        Command::Program(ProgramCommand::Set {
            public_key,
            name,
            merchant_email,
            portal_url,
            applications,
            group,
            emails,
        }) => {
            use crate::store::program::{self, Applications};
            let owner = key_named(&store, &public_key)?;
            let program = store.write_stamped(|tx, now| {
                let mut program = program::get(tx, &owner)?;
                if program.name == owner.name {
                    program.name.clear();
                }
                if let Some(name) = name {
                    program.name = name;
                }
                if let Some(email) = merchant_email {
                    program.merchant_email = email;
                }
                if let Some(url) = portal_url {
                    program.portal_url = url;
                }
                if let Some(applications) = applications.as_deref().and_then(Applications::parse) {
                    program.applications = applications;
                }
                if let Some(group) = group {
                    program.group_key = Some(group).filter(|g| !g.is_empty());
                }
                if let Some(emails) = emails {
                    program.emails = match emails.as_str() {
                        "all" => crate::store::mail::KINDS.iter().map(|k| k.to_string()).collect(),
                        list => list
                            .split(',')
                            .map(str::trim)
                            .filter(|k| !k.is_empty())
                            .map(String::from)
                            .collect(),
                    };
                }
                program::set(tx, &owner, &program, now)?;
                program::get(tx, &owner)
            })?;
            println!(
                "name: {}\nmerchant_email: {}\nportal_url: {}\napplications: {}\ngroup: {}\nemails: {}",
                program.name,
                program.merchant_email,
                program.portal_url,
                program.applications.as_str(),
                program.group_key.as_deref().unwrap_or("(default)"),
                program.emails.join(",")
            );
            Ok(())
        }
        Command::Partners(PartnersCommand::Link {
            public_key,
            partner_key,
            base_url,
        }) => {
            let owner = key_named(&store, &public_key)?;
            let token =
                store.write_stamped(|tx, now| crate::store::portal::sign_in_link(tx, owner.id, &partner_key, now))?;
            println!("{}/partners/sign-in/{token}", base_url.trim_end_matches('/'));
            Ok(())
        }
        Command::Partners(PartnersCommand::List { public_key, limit }) => {
            let owner = key_named(&store, &public_key)?;
            let page = store.read(|conn| {
                merchant::partners(conn, owner.id, &Default::default(), List::first(limit.clamp(1, 250)))
            })?;
            for partner in page.items {
                println!("{}", serde_json::to_string(&Partnership::new(partner, &owner))?);
            }
            Ok(())
        }
        Command::Endpoints(command) => endpoints(&store, command),
        Command::Export {
            public_key,
            table,
            output,
        } => {
            let owner = key_named(&store, &public_key)?;
            match output {
                Some(path) => {
                    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                    crate::export::write_csv(&store, owner.id, table, std::io::BufWriter::new(file))
                }
                None => crate::export::write_csv(&store, owner.id, table, std::io::stdout().lock()),
            }
        }
        Command::Migrate { .. } => {
            crate::config::apply_keys(&store, file)?;
            println!("schema version {}", store.schema_version()?);
            Ok(())
        }
        Command::Backup { file } => {
            store.backup(&file)?;
            println!("backed up {} to {}", store.location(), file.display());
            Ok(())
        }
        Command::Keys(KeysCommand::Set { public_key, key }) => {
            // Only what is given changes; the result is printed.
            let current = key_named(&store, &public_key)?;
            let (origins, settings) = key.applied(&current.origins, &current.settings);
            store.write(|tx| keys::update(tx, &public_key, &origins, &settings))?;
            println!("updated {public_key}");
            print_keys(&store, Some(&public_key))
        }
        Command::Keys(KeysCommand::List) => print_keys(&store, None),
        Command::Offers(OffersCommand::Set {
            public_key,
            key,
            kind,
            percent,
            amounts,
            months,
            action_key,
            group,
        }) => {
            let owner = key_named(&store, &public_key)?;
            let mut by_currency = std::collections::BTreeMap::new();
            for spec in &amounts {
                let (currency, cents) = spec
                    .split_once(':')
                    .and_then(|(c, a)| Some((crate::http::currency(c).ok()?, a.parse::<i64>().ok()?)))
                    .with_context(|| format!("--amount {spec:?}: write CURRENCY:CENTS, e.g. USD:5000"))?;
                by_currency.insert(currency, cents);
            }
            let spec = OfferSpec {
                key,
                kind,
                percent_bp: percent.map(|p| (p * 100.0).round() as u32),
                amounts: by_currency,
                months,
                group_key: group,
                action_key,
            };
            let now = store.clock().now_ms();
            let offer = store.write(|tx| money::set_offer(tx, owner.id, &spec, now))?;
            println!("{}", serde_json::to_string(&OfferRecord::from(offer))?);
            Ok(())
        }
        Command::Offers(OffersCommand::List { public_key }) => {
            let owner = key_named(&store, &public_key)?;
            for offer in store
                .read(|conn| money::offers(conn, owner.id, List::first(250)))?
                .items
            {
                println!("{}", serde_json::to_string(&OfferRecord::from(offer))?);
            }
            Ok(())
        }
        Command::Webhooks(WebhooksCommand::Set {
            public_key,
            stripe_secret,
            stripe_payment_event,
            chargebee_auth,
            recurly_auth,
        }) => {
            let owner = key_named(&store, &public_key)?;
            let settings = WebhookSettings {
                stripe_secret,
                stripe_payment_event,
                chargebee_auth,
                recurly_auth,
            };
            store.write(|tx| webhooks::set(tx, owner.id, &settings))?;
            println!("webhooks set for {public_key}");
            Ok(())
        }
        Command::Fill {
            events,
            customers,
            public_key,
        } => {
            let key = match public_key {
                Some(pk) => key_named(&store, &pk)?,
                None => demo_key(&store)?.0,
            };
            crate::store::fill::clicks(&store, key.id, events)?;
            crate::store::fill::customers(&store, key.id, customers)?;
            println!(
                "added {events} click events and {customers} customers for key {}",
                key.public_key
            );
            Ok(())
        }
        Command::Customers(CustomersCommand::List { limit, json }) => {
            let rows = store.read(|conn| read::customers(conn, limit))?;
            if json {
                for row in rows {
                    println!("{}", serde_json::to_string(&row)?);
                }
            } else {
                println!(
                    "{:<24} {:<32} {:<20} {:<16} {:<20} {:<12}",
                    "customer_key", "email", "name", "partner", "xid", "source"
                );
                for r in rows {
                    println!(
                        "{:<24} {:<32} {:<20} {:<16} {:<20} {:<12}",
                        r.customer_key,
                        r.email,
                        r.name,
                        r.partner_key.as_deref().unwrap_or("-"),
                        r.xid.as_deref().unwrap_or("-"),
                        r.source.as_deref().unwrap_or("unattributed"),
                    );
                }
            }
            Ok(())
        }
    }
}

fn serve(store: Store, args: ServeArgs, mailer: Option<crate::mailer::Mailer>) -> Result<()> {
    let store = match args.clock_offset_file.clone() {
        Some(path) => store.with_clock(Clock::with_offset_file(path)),
        None => store,
    };
    let (demo_key, demo_secret) = match args.demo {
        true => {
            let (key, secret) = demo_key(&store)?;
            (Some(key.public_key), secret)
        }
        false => (None, None),
    };
    let sender =
        crate::dispatch::send::Sender::new(args.allow_private_webhook_targets, args.webhook_ca_file.as_deref())
            .context("--webhook-ca-file")?;
    // Outlives the runtime (locals drop in reverse order): the store's
    // last owner must not be a task, since dropping a PostgreSQL client
    // blocks, which panics on the runtime's threads (the aborted
    // dispatcher could otherwise be the last one at shutdown).
    let _kept = store.clone();
    let runtime = tokio::runtime::Runtime::new()?;
    let (writer, writer_thread) = if args.no_persist {
        tracing::warn!("--no-persist: events are answered but NOT stored");
        (crate::store::Writer::discard(), None)
    } else {
        let (writer, thread) = store.writer(args.queue, args.wal_limit_mb)?;
        (writer, Some(thread))
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| {
            format!(
                "cannot listen on {}: is another server using it? Try --addr 127.0.0.1:0",
                args.addr
            )
        })?;
        let addr = listener.local_addr()?;
        println!("  snippet:      http://{addr}/v1/");
        if demo_key.is_some() {
            println!("  demo landing: http://{addr}/?ps_partner_key=YWxpY2U&ps_xid=demo-click-1  (partner \"alice\")");
            println!("  demo signup:  http://{addr}/signup.html");
            if let Some(key) = &demo_key {
                println!("  partners:     http://{addr}/partners/apply/{key}  (apply to the demo's program)");
            }
            let exe = std::env::args().next().unwrap_or_else(|| "collector".into());
            println!("  customers:    {exe} --db {} customers list", store.location());
        }
        if let Some(secret) = &demo_secret {
            println!("  dashboard:    http://{addr}/dashboard  (sign in with the demo's secret key {secret})");
        }
        // Scripts and tests wait for this exact line, the last one.
        println!("listening on http://{addr}");
        let timeout = std::time::Duration::from_millis(args.client_timeout_ms);
        let mut app = App::new(store, writer, demo_key, timeout)?;
        app.trusted_proxies = args.trusted_proxies.clone();
        app.max_connections = args.max_connections;
        app.max_connections_per_client = args.max_connections_per_client;
        app.write_timeout = std::time::Duration::from_millis(args.write_timeout_ms);
        app.connection_max_age = std::time::Duration::from_secs(args.connection_max_age_s);
        app.metrics_token = args.metrics_token.clone().filter(|t| !t.is_empty());
        // (A PostgreSQL server watches its own disk.)
        if let Some(path) = app.store.path() {
            app.disk = crate::disk::DiskGuard::new(path, args.min_free_mb);
        }
        app.limits = crate::http::limits::Limits::new(args.client_requests_per_second, args.key_events_per_second);
        app.allow_private_webhook_targets = args.allow_private_webhook_targets;
        let dispatcher = (!args.no_persist).then(|| tokio::spawn(crate::dispatch::run(app.store.clone(), sender)));
        app.smtp = mailer.is_some();
        let mailer = (!args.no_persist).then(|| tokio::spawn(crate::mailer::run(app.store.clone(), mailer)));
        let app = Arc::new(app);
        crate::http::serve(listener, app, shutdown_signal()).await;
        for task in dispatcher.into_iter().chain(mailer) {
            task.abort();
        }
        anyhow::Ok(())
    })?;
    // Every writer handle is gone with the server: the writer commits what is
    // queued and closes the database.
    if let Some(thread) = writer_thread {
        thread.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// `endpoints add|list|remove`: each endpoint printed as the API's JSON record.
fn endpoints(store: &Store, command: EndpointsCommand) -> Result<()> {
    use crate::http::api::records::WebhookRecord;
    use crate::store::outbox::{self, EndpointFields};
    let print = |endpoint| -> Result<()> {
        println!("{}", serde_json::to_string(&WebhookRecord::from(endpoint))?);
        Ok(())
    };
    match command {
        EndpointsCommand::Add {
            public_key,
            url,
            events,
            description,
            allow_private,
        } => {
            let owner = key_named(store, &public_key)?;
            crate::dispatch::target::parse(&url, allow_private).map_err(|m| anyhow::anyhow!("--url {m}"))?;
            let description = crate::http::decode::text("--description", &description, outbox::DESCRIPTION_CHARS)
                .map_err(|e| anyhow::anyhow!("--description {}", e.message))?;
            let events = match events.is_empty() {
                true => None,
                false => Some(outbox::event_list(&events).map_err(|m| anyhow::anyhow!("--event {m}"))?),
            };
            let fields = EndpointFields {
                url: Some(url),
                events,
                description: Some(description),
                disabled: None,
            };
            print(store.write_stamped(|tx, now| outbox::create_endpoint(tx, owner.id, fields, now))?)
        }
        EndpointsCommand::List { public_key } => {
            let owner = key_named(store, &public_key)?;
            store
                .read(|c| outbox::endpoints(c, owner.id))?
                .into_iter()
                .try_for_each(print)
        }
        EndpointsCommand::Remove {
            public_key,
            endpoint_key,
        } => {
            let owner = key_named(store, &public_key)?;
            print(store.write(|tx| outbox::delete_endpoint(tx, owner.id, &endpoint_key))?)
        }
    }
}

/// Prints the keys (or the one `only` names) with their settings.
fn print_keys(store: &Store, only: Option<&str>) -> Result<()> {
    println!(
        "{:<40} {:<5} {:<8} {:<16} {:<7} {:<20} settings",
        "public key", "mode", "status", "name", "window", "cookie domain"
    );
    for key in store
        .read(keys::list)?
        .into_iter()
        .filter(|k| only.is_none_or(|pk| k.public_key == pk))
    {
        let mode = if key.mode == Mode::Live { "live" } else { "test" };
        let status = if key.revoked { "revoked" } else { "active" };
        let s = &key.settings;
        let mut notes: Vec<String> = s.params.iter().map(|p| format!("param={p}")).collect();
        notes.extend(key.origins.iter().map(|o| format!("origin={o}")));
        if s.require_consent {
            notes.push("consent=required".into());
        }
        if !s.honor_gpc {
            notes.push("gpc=ignored".into());
        }
        notes.push(format!("fingerprint={}h", s.fingerprint_hours));
        if s.auto_partners {
            notes.push("partners=auto".into());
        }
        println!(
            "{:<40} {mode:<5} {status:<8} {:<16} {:<7} {:<20} {}",
            key.public_key,
            key.name,
            format!("{}d", s.window_days),
            if s.cookie_domain.is_empty() {
                "-"
            } else {
                &s.cookie_domain
            },
            notes.join(" ")
        );
    }
    Ok(())
}

/// The key with this public key, or an error that says how to find one.
fn key_named(store: &Store, public_key: &str) -> Result<Key> {
    store
        .read(|conn| keys::find(conn, public_key))?
        .with_context(|| format!("no key {public_key:?}: `collector keys list` shows the keys"))
}

/// The test key named "demo", created on first use, with the demo links'
/// partners `alice` and `bob` (a partner key no partnership has would wait
/// for review, see README "Attribution"); and its secret, when the demo
/// made the key: kept beside the database (`<db>.demo-secret`, mode 0600) so
/// every start can print a dashboard sign-in. A key named "demo" made with
/// `keys create` keeps its secret to its owner.
fn demo_key(store: &Store) -> Result<(crate::store::Key, Option<String>)> {
    // (On PostgreSQL, the secret is shown once: when the demo makes the key.)
    let secret_file = store
        .path()
        .map(|path| PathBuf::from(format!("{}.demo-secret", path.display())));
    let mut made = None;
    let key = match store.read(|conn| keys::find_by_name(conn, "demo"))? {
        Some(key) if key.mode == Mode::Live => bail!(
            "the key named \"demo\" ({}) is a live key: the demo site uses a test key; rename or revoke that key",
            key.public_key
        ),
        Some(key) => key,
        None => {
            let pair = store.write_stamped(|tx, now| {
                let pair = keys::create(tx, Mode::Test, "demo", &[], &Settings::default())?;
                // The demo's program takes applications (reviewed on the dashboard).
                let program = crate::store::program::Program {
                    applications: crate::store::program::Applications::Review,
                    ..crate::store::program::get(tx, &pair.key)?
                };
                crate::store::program::set(tx, &pair.key, &program, now)?;
                Ok(pair)
            })?;
            match &secret_file {
                Some(file) => write_private(file, &pair.secret_key)?,
                None => made = Some(pair.secret_key),
            }
            pair.key
        }
    };
    let kept = secret_file
        .and_then(|file| std::fs::read_to_string(file).ok())
        .or(made)
        .unwrap_or_default();
    let secret = store
        .read(|conn| keys::authenticate(conn, &key.public_key, kept.trim()))?
        .map(|_| kept.trim().to_owned());
    let now = store.clock().now_ms();
    for partner in ["alice", "bob"] {
        if store.read(|conn| Ok(merchant::partner(conn, key.id, partner).is_err()))? {
            let fields = merchant::PartnerFields {
                email: Some(format!("{partner}@demo.invalid")),
                first_name: Some(partner.into()),
                last_name: None,
                group_key: None,
            };
            store.write(|tx| merchant::create_partner(tx, &key, Some(partner.into()), fields, now))?;
        }
    }
    Ok((key, secret))
}

/// Writes `text` to a new file only its owner may read.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
