//! The `collector` command line: `serve` runs the server; the other commands
//! manage keys and read what was stored, straight from the database file.

use crate::app::App;
use crate::store::{keys, read, Mode, Store};
use anyhow::{Context, Result};
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
    /// SQLite database file (created if missing).
    #[arg(long, global = true, env = "GROWSUMO_DB", default_value = "growsumo.db")]
    pub db: PathBuf,
    #[command(subcommand)]
    pub command: Command,
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
    /// Benchmarks only: add N synthetic click events for the demo key.
    #[command(hide = true)]
    Fill {
        #[arg(long)]
        events: u64,
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
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key pair and print it (the secret is shown only once).
    Create {
        #[arg(long, value_enum, default_value_t = Mode::Test)]
        mode: Mode,
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
        /// An origin whose pages may send events (repeatable), e.g.
        /// https://shop.example; `*` allows any. The collector's own origin is
        /// always allowed.
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// List key pairs (without secrets).
    List,
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

pub fn run(cli: Cli) -> Result<()> {
    let store = Store::open(&cli.db)?;
    match cli.command {
        Command::Serve(args) => serve(store, args),
        Command::Keys(KeysCommand::Create { mode, name, origins }) => {
            let pair = store.write(|tx| keys::create(tx, mode, &name, &origins))?;
            println!("public key: {}", pair.key.public_key);
            println!("secret key: {}  (shown once: keep it safe)", pair.secret_key);
            Ok(())
        }
        Command::Keys(KeysCommand::List) => {
            println!(
                "{:<40} {:<5} {:<8} {:<16} origins",
                "public key", "mode", "status", "name"
            );
            for key in store.read(keys::list)? {
                let mode = if key.mode == Mode::Live { "live" } else { "test" };
                let status = if key.revoked { "revoked" } else { "active" };
                println!(
                    "{:<40} {mode:<5} {status:<8} {:<16} {}",
                    key.public_key,
                    key.name,
                    key.origins.join(" ")
                );
            }
            Ok(())
        }
        Command::Fill { events } => {
            let key = demo_key(&store)?;
            crate::store::fill::clicks(&store, key.id, events)?;
            println!("added {events} click events for key {}", key.public_key);
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

fn serve(store: Store, args: ServeArgs) -> Result<()> {
    let demo_key = if args.demo {
        Some(demo_key(&store)?.public_key)
    } else {
        None
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (writer, writer_thread) = if args.no_persist {
        tracing::warn!("--no-persist: events are answered but NOT stored");
        (crate::store::Writer::discard(), None)
    } else {
        let (writer, thread) = store.writer(args.queue)?;
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
        // Scripts and tests wait for this exact line.
        println!("listening on http://{addr}");
        println!("  snippet:      http://{addr}/v1/");
        if demo_key.is_some() {
            println!("  demo landing: http://{addr}/?ps_partner_key=YWxpY2U&ps_xid=demo-click-1  (partner \"alice\")");
            println!("  demo signup:  http://{addr}/signup.html");
            let exe = std::env::args().next().unwrap_or_else(|| "collector".into());
            println!("  customers:    {exe} --db {} customers list", store.path().display());
        }
        let timeout = std::time::Duration::from_millis(args.client_timeout_ms);
        let app = Arc::new(App::new(store, writer, demo_key, timeout));
        crate::http::serve(listener, app, shutdown_signal()).await;
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

/// The test key named "demo", created on first use.
fn demo_key(store: &Store) -> Result<crate::store::Key> {
    match store.read(|conn| keys::find_by_name(conn, "demo"))? {
        Some(key) => Ok(key),
        None => Ok(store.write(|tx| keys::create(tx, Mode::Test, "demo", &[]))?.key),
    }
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
