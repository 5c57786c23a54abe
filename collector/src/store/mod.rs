//! The store: everything the collector keeps, in one SQLite file (the
//! default) or one PostgreSQL database that several collectors share.
//!
//! The rest of the collector sees only this narrow interface (`Store`, its
//! `Writer`, and the read functions), so the storage engine can change (the
//! scale-out path is a shared PostgreSQL) without touching the HTTP layer.
//!
//! - `schema`: migrations, applied at open.
//! - `db`: one statement text for both backends.
//! - `pg`: the PostgreSQL backend's pool, schema and write lock.
//! - `writer`: the single writer thread; commits events in groups and answers
//!   each request only after its group is durable.
//! - `read`: queries for the API, the CLI and key lookups, on their own
//!   connections (WAL lets readers run beside the writer).
//! - `attribution`: which partner a signup is credited to.
//! - `clock`: the time events are stamped with (shiftable in tests).
//! - `copy`: moves an install to another store (`migrate --from --to`).
//! - `daily`: clicks and signups per day and partner, for the chart.
//! - `keys`: public/secret key pairs and their settings.
//! - `groups`: partner groups (tiers), which offers may be scoped to.
//! - `leads`: leads and deals partners bring, short of a customer.
//! - `merchant`: partners and customers, for the merchant API and webhooks.
//! - `money`: transactions, offers and the rewards they create.
//! - `outbox`: outgoing webhooks: endpoints, and the messages changes write.
//! - `portal`: partners' sign-in links, sessions, and what they may see.
//! - `program`: a key's program settings, and partners' applications.
//! - `mail`: the emails programs send (an outbox the mailer sends from).
//! - `payouts`: partners' payout details, and payout batches.
//! - `actions`: customers' conversion events, which offers may reward.
//! - `page`: cursor pagination for the API's lists.
//! - `webhooks`: webhook secrets, the event log, and what events do.
//! - `sessions`: dashboard sign-in sessions.
//! - `fill`: synthetic events for benchmarks.

pub mod actions;
pub mod attribution;
pub mod clock;
pub mod copy;
pub mod credit;
pub mod daily;
pub mod db;
pub mod diagnostics;
pub mod fill;
pub mod groups;
pub mod keys;
pub mod leads;
pub mod mail;
pub mod merchant;
pub mod money;
pub mod outbox;
pub mod page;
pub mod payouts;
mod pg;
pub mod portal;
pub mod program;
pub mod read;
pub(crate) mod schema;
pub mod sessions;
pub mod webhooks;
mod writer;

pub use attribution::ServerClick;
pub use clock::Clock;
pub use keys::{Key, KeyPair, Mode, Param, Settings};
pub use read::CustomerRow;
pub use writer::{Outcome, Submission, Writer, WriterError, WriterThread};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A request the data refuses: the item is missing, or would clash with one
/// that exists, or the change is not allowed. Names the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    NotFound,
    Conflict,
    Invalid,
}

impl Refusal {
    pub fn not_found(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            kind: RefusalKind::NotFound,
            field,
            message: message.into(),
        }
    }

    pub fn conflict(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            kind: RefusalKind::Conflict,
            field,
            message: message.into(),
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            kind: RefusalKind::Invalid,
            field,
            message: message.into(),
        }
    }

    /// Whether `error` is a refusal because something does not exist.
    pub fn is_not_found(error: &anyhow::Error) -> bool {
        error
            .downcast_ref::<Refusal>()
            .is_some_and(|r| r.kind == RefusalKind::NotFound)
    }
}

/// A validated browser event, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Browser-generated idempotency key.
    pub id: String,
    pub kind: EventKind,
    /// The browser's clock, epoch milliseconds.
    pub client_ts: i64,
    pub partner_key: Option<String>,
    pub xid: Option<String>,
    pub url: Option<String>,
    pub referrer: Option<String>,
    /// The visitor's fingerprint (a hash computed by the snippet).
    pub fingerprint: Option<String>,
    pub signup: Option<Signup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Click,
    Signup,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Click => wire::EVENT_CLICK,
            EventKind::Signup => wire::EVENT_SIGNUP,
        }
    }
}

/// The customer fields of a signup event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signup {
    pub customer_key: String,
    pub email: String,
    pub name: String,
    pub provider_key: Option<String>,
}

/// Where the data lives: a SQLite file (the default), or a PostgreSQL
/// database that any number of collectors share (`postgres://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Postgres(String),
}

impl std::str::FromStr for Location {
    type Err = std::convert::Infallible;

    /// `postgres://…` or `postgresql://…` is a PostgreSQL URL; `sqlite:path`
    /// or any other text, a SQLite file's path.
    fn from_str(text: &str) -> Result<Location, Self::Err> {
        Ok(
            if text.starts_with("postgres://") || text.starts_with("postgresql://") {
                Location::Postgres(text.to_owned())
            } else {
                Location::File(PathBuf::from(text.strip_prefix("sqlite:").unwrap_or(text)))
            },
        )
    }
}

impl std::fmt::Display for Location {
    /// The file's path, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&pg::redacted(url)),
        }
    }
}

impl Location {
    /// Whether there is a store there already: the file, or the schema in
    /// the PostgreSQL database (an error when the server cannot be reached
    /// or refuses the connection: its reason, not "no database").
    pub fn exists(&self) -> Result<bool> {
        match self {
            Location::File(path) => Ok(path.exists()),
            Location::Postgres(url) => pg::has_schema(url),
        }
    }
}

/// An open database and the clock events are stamped with.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    clock: Clock,
    /// Told after a commit that wrote outgoing webhooks (see `outbox`).
    outbox: outbox::Outbox,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(pg::Pool),
}

/// A SQLite file: the path, the file as it was opened, and a small pool of
/// read connections.
#[derive(Clone)]
struct Sqlite {
    path: PathBuf,
    file: writer::FileIdentity,
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(location: &Location) -> Result<Store> {
        let backend = match location {
            Location::File(path) => {
                let mut conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
                schema::migrate(&mut conn).with_context(|| format!("migrating {}", path.display()))?;
                Backend::Sqlite(Sqlite {
                    file: writer::FileIdentity::of(path),
                    path: path.to_path_buf(),
                    readers: Arc::default(),
                })
            }
            Location::Postgres(url) => Backend::Postgres(pg::Pool::open(url)?),
        };
        Ok(Store {
            backend,
            clock: Clock::system(),
            outbox: outbox::Outbox::default(),
        })
    }

    /// This store, with events stamped by `clock` instead of the system clock.
    pub fn with_clock(self, clock: Clock) -> Store {
        Store { clock, ..self }
    }

    /// The SQLite file, when the store is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(sqlite) => Some(&sqlite.path),
            Backend::Postgres(_) => None,
        }
    }

    /// Where the store is, for people: the file, or the URL without its password.
    pub fn location(&self) -> Location {
        match &self.backend {
            Backend::Sqlite(sqlite) => Location::File(sqlite.path.clone()),
            Backend::Postgres(pool) => Location::Postgres(pool.url().to_owned()),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Notified after a commit in this process that may have written
    /// outgoing webhooks: the dispatcher waits on it.
    pub fn outbox(&self) -> &outbox::Outbox {
        &self.outbox
    }

    /// Starts the writer thread: the only connection that writes events,
    /// with a queue of at most `queue` requests; on SQLite, its
    /// checkpointer empties the WAL once it passes `wal_limit_mb`.
    pub fn writer(&self, queue: usize, wal_limit_mb: u64) -> Result<(Writer, WriterThread)> {
        let target = match &self.backend {
            Backend::Sqlite(sqlite) => {
                // Pages of 4 KiB.
                let wal_limit_pages = i64::try_from(wal_limit_mb.saturating_mul(256)).unwrap_or(i64::MAX);
                writer::Target::Sqlite {
                    conn: connect(&sqlite.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?,
                    checkpoints: connect(&sqlite.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?,
                    file: sqlite.file.clone(),
                    wal_limit_pages,
                }
            }
            Backend::Postgres(pool) => writer::Target::Postgres(pool.clone()),
        };
        Ok(Writer::start(target, queue, self.clock.clone(), self.outbox.clone()))
    }

    /// Runs `f` on a read connection from the pool (blocking: call it from
    /// `spawn_blocking` or a CLI).
    pub fn read<T>(&self, f: impl FnOnce(&db::Db) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                let pooled = sqlite.readers.lock().expect("reader pool").pop();
                let conn = match pooled {
                    Some(conn) => conn,
                    None => connect(&sqlite.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
                };
                let result = f(&db::Db::from(&conn));
                sqlite.readers.lock().expect("reader pool").push(conn);
                result
            }
            Backend::Postgres(pool) => pool.read(f),
        }
    }

    /// Runs `f` on one read connection inside one read-only transaction:
    /// every statement sees the database as it was at the first (SQLite's
    /// WAL snapshot; PostgreSQL's REPEATABLE READ), whatever commits
    /// meanwhile.
    pub fn snapshot<T>(&self, f: impl FnOnce(&db::Db) -> Result<T>) -> Result<T> {
        /// Rolls the read transaction back unless it was ended, however
        /// `f` ends (a panic too): the connection goes back to the pool.
        struct Open<'a, 'b>(&'a db::Db<'b>, bool);
        impl Drop for Open<'_, '_> {
            fn drop(&mut self) {
                if !self.1 {
                    let _ = self.0.execute("ROLLBACK", []);
                }
            }
        }
        self.read(|db| {
            let begin = match db.is_postgres() {
                true => "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
                false => "BEGIN",
            };
            db.execute(begin, [])?;
            let mut open = Open(db, false);
            let value = f(db)?;
            db.execute("COMMIT", [])?;
            open.1 = true;
            Ok(value)
        })
    }

    /// Calls `f` whenever a key may have changed: on PostgreSQL, when any
    /// collector or CLI sharing the database commits a change to a key
    /// (`keys::tell_collectors`; a thread listens). On SQLite, never: one
    /// collector serves the file, and key changes come from the CLI, which
    /// a cached copy's expiry picks up.
    pub fn on_key_change(&self, f: impl Fn() + Send + 'static) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(pool) => pg::listen(pool.url(), keys::CHANGES, f),
        }
    }

    /// Whether the database takes writes now: a row larger than the largest
    /// batch of events takes on disk is really written and committed, so a
    /// disk too full for a batch fails here too (taking the write lock
    /// alone would not), waiting at most the busy timeout.
    pub fn check_writable(&self) -> Result<()> {
        self.write_quietly(|tx, _| {
            let pad = if tx.is_postgres() {
                "decode(repeat('00', ?2), 'hex')"
            } else {
                "zeroblob(?2)"
            };
            tx.execute(
                &format!(
                    "INSERT INTO health (id, at, pad) VALUES (1, ?1, {pad})
                     ON CONFLICT (id) DO UPDATE SET at = excluded.at, pad = excluded.pad"
                ),
                // Twice the largest body (64 KiB): a full batch takes more
                // room on disk than its JSON (row headers, indexes), and a
                // probe smaller than the batch that failed could find room
                // the batch did not, and call a full disk ready.
                db::params![now_ms(), 2 * wire::limit::BODY_BYTES],
            )?;
            Ok(())
        })
    }

    /// Copies the whole SQLite database to `target` while it is in use
    /// (SQLite's online backup), a consistent snapshot. PostgreSQL is
    /// backed up with its own tools (`pg_dump`, a managed service's backups).
    pub fn backup(&self, target: &Path) -> Result<()> {
        let Backend::Sqlite(sqlite) = &self.backend else {
            anyhow::bail!("backup copies a SQLite file; back PostgreSQL up with pg_dump or your service's backups");
        };
        let conn = connect(&sqlite.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.backup(rusqlite::MAIN_DB, target, None)
            .with_context(|| format!("backing up to {}", target.display()))?;
        Ok(())
    }

    /// The schema version (migrations applied).
    pub fn schema_version(&self) -> Result<i64> {
        match &self.backend {
            Backend::Sqlite(_) => self.read(|conn| conn.query_row("PRAGMA user_version", [], |r| r.get(0))),
            Backend::Postgres(_) => self.read(pg::schema_version),
        }
    }

    /// Runs `f` in a write transaction on a fresh connection: for the CLI and
    /// rare administrative writes, never for events. On SQLite, refused
    /// once the database file was deleted or replaced since it was opened
    /// (the writer's events stop too; see `writer::FileIdentity`).
    pub fn write<T>(&self, f: impl FnOnce(&db::Db) -> Result<T>) -> Result<T> {
        self.write_stamped(|tx, _| f(tx))
    }

    /// Like `write`, with the transaction's time, read once the write lock
    /// is held: rows commit in the order of their times, so a sync reading
    /// `min_updated` from the newest time it saw never misses a row
    /// committed later. (On PostgreSQL the time never goes back, whichever
    /// collector wrote last: see `pg::in_write_transaction`.)
    pub fn write_stamped<T>(&self, f: impl FnOnce(&db::Db, i64) -> Result<T>) -> Result<T> {
        let written = self.write_quietly(f);
        // (Rare writes: the dispatcher looks whether they sent anything.)
        if written.is_ok() {
            self.outbox.notify_one();
        }
        written
    }

    /// Like `write_stamped`, without waking the dispatcher: for writes
    /// that send no webhook (the dispatcher's own, the health probe).
    pub fn write_quietly<T>(&self, f: impl FnOnce(&db::Db, i64) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                if !sqlite.file.intact() {
                    anyhow::bail!("the database file {} was deleted or replaced", sqlite.path.display());
                }
                let mut conn = connect(&sqlite.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
                // Immediate: reads then writes in one transaction would otherwise
                // fail at once ("database is locked") when another writer got in.
                let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let value = f(&db::Db::from(&tx), self.clock.now_ms())?;
                tx.commit()?;
                Ok(value)
            }
            Backend::Postgres(pool) => pool.write(&self.clock, f),
        }
    }
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening database {}", path.display()))?;
    // WAL: readers never block the writer. FULL: a commit is on disk before
    // the writer acknowledges it. The busy timeout covers CLI writes racing
    // the server's writer.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A WAL emptied by a checkpoint is trimmed to 64 MiB, not kept at its peak.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
