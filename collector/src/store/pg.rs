//! The PostgreSQL backend: a pool of connections, the schema's migrations,
//! and the write lock.
//!
//! Every write transaction first takes one transaction-scoped advisory lock
//! (`WRITE_LOCK`), so writes from any number of collectors are applied one
//! at a time, as on SQLite: attribution reads (a click, a customer, a
//! partnership) and then writes, and two collectors taking a visitor's click
//! and signup at the same moment must see each other's rows, not both
//! decide alone. Reads take no lock. The writer's group commit keeps the
//! lock to one transaction per group of requests.

use super::db::Db;
use anyhow::{Context, Result};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// Migrations, in order, applied at open and recorded in `schema_version`.
/// The first brings an empty database to SQLite's version 13; each later
/// SQLite migration (schema.rs) gets its PostgreSQL counterpart here.
const MIGRATIONS: &[(i64, &str)] = &[(13, include_str!("pg/13.sql"))];

/// The advisory lock every write transaction holds ("growsumo").
const WRITE_LOCK: i64 = 0x6772_6f77_7375_6d6f;
/// The advisory lock migrations hold: collectors starting together migrate once.
const MIGRATE_LOCK: i64 = WRITE_LOCK + 1;

/// Connections to one PostgreSQL database, reused; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    url: String,
    config: Arc<postgres::Config>,
    idle: Arc<Mutex<Vec<postgres::Client>>>,
}

impl Pool {
    /// Connects to the database at `url` and applies pending migrations.
    pub fn open(url: &str) -> Result<Pool> {
        let mut config: postgres::Config = url
            .parse()
            .with_context(|| format!("the PostgreSQL URL {}", redacted(url)))?;
        // A server that does not answer, a lock held by a stuck session, a
        // session left idle inside a transaction (holding the write lock):
        // each gives up, as SQLite's busy timeout does, instead of stalling
        // every collector's writes. TCP keepalives notice a dead peer.
        config
            .connect_timeout(std::time::Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(30))
            .options("-c lock_timeout=5000 -c idle_in_transaction_session_timeout=60000");
        let pool = Pool {
            url: url.to_owned(),
            config: Arc::new(config),
            idle: Arc::default(),
        };
        let mut client = pool.client()?;
        migrate(&mut client).with_context(|| format!("migrating {}", redacted(url)))?;
        pool.give_back(client);
        Ok(pool)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection: an idle one, or a new one.
    pub fn client(&self) -> Result<postgres::Client> {
        while let Some(client) = self.idle.lock().expect("pool").pop() {
            if !client.is_closed() {
                return Ok(client);
            }
        }
        self.config
            .connect(postgres::NoTls)
            .with_context(|| format!("connecting to {}", redacted(&self.url)))
    }

    /// Returns a connection for reuse, unless it broke.
    pub fn give_back(&self, client: postgres::Client) {
        if !client.is_closed() {
            self.idle.lock().expect("pool").push(client);
        }
    }

    /// Runs `f` outside a transaction.
    pub fn read<T>(&self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let cell = RefCell::new(self.client()?);
        let result = f(&Db::Postgres(&cell));
        self.give_back(cell.into_inner());
        result
    }

    /// Runs `f` in a transaction holding the write lock, and commits.
    pub fn write<T>(&self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let mut client = self.client()?;
        let result = in_write_transaction(&mut client, f);
        self.give_back(client);
        result
    }
}

/// Runs `f` in a transaction of `client` holding the write lock, and commits.
pub fn in_write_transaction<T>(client: &mut postgres::Client, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
    // READ COMMITTED whatever the server's default: each statement sees what
    // the writers before the lock committed (a snapshot taken before the
    // lock, as REPEATABLE READ takes it, would miss them).
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::ReadCommitted)
        .start()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    let cell = RefCell::new(tx);
    let value = f(&Db::Postgres(&cell))?;
    cell.into_inner().commit()?;
    Ok(value)
}

/// `url` without its password (in the user part or as a `password=`
/// parameter), for messages and logs.
pub fn redacted(url: &str) -> String {
    let (url, query) = url.split_once('?').unwrap_or((url, ""));
    let query: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("password="))
        .collect();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let url = match url
        .split_once("://")
        .and_then(|(scheme, rest)| Some((scheme, rest.split_once('@')?)))
    {
        Some((scheme, (user, host))) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    };
    url + &query
}

/// The newest migration applied.
pub fn schema_version(db: &Db) -> Result<i64> {
    db.query_row("SELECT coalesce(max(version), 0) FROM schema_version", [], |r| r.get(0))
}

/// Whether the database has the store's schema (a command that must not
/// start an empty database checks first).
pub fn has_schema(url: &str) -> Result<bool> {
    let config: postgres::Config = url.parse()?;
    let mut client = config
        .connect(postgres::NoTls)
        .with_context(|| format!("connecting to {}", redacted(url)))?;
    Ok(client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?
        .get(0))
}

/// Applies pending migrations in one transaction holding the migration
/// lock (transaction-scoped: released however it ends, also through a
/// pooler that hands each transaction another server connection).
fn migrate(client: &mut postgres::Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
    // (Asked first: `CREATE TABLE IF NOT EXISTS` logs a notice at every start.)
    let fresh: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NULL", &[])?
        .get(0);
    if fresh {
        tx.batch_execute("CREATE TABLE schema_version (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")?;
    }
    let current: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
        .get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).with_context(|| format!("migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
            &[version, &super::now_ms()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            super::redacted("postgres://app:s3cret@db:5432/growsumo"),
            "postgres://app@db:5432/growsumo"
        );
        assert_eq!(
            super::redacted("postgres://app@db/growsumo"),
            "postgres://app@db/growsumo"
        );
        assert_eq!(super::redacted("postgres://db/growsumo"), "postgres://db/growsumo");
        assert_eq!(
            super::redacted("postgres://db/growsumo?user=app&password=s3cret&sslmode=require"),
            "postgres://db/growsumo?user=app&sslmode=require"
        );
    }
}
