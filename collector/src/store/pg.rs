//! The PostgreSQL backend: a bounded pool of connections (TLS as libpq
//! reads `sslmode`), the schema's migrations, and the write clock.
//!
//! Every write transaction first moves the one-row `write_clock` (see
//! `in_write_transaction`): its row lock makes writes from any number of
//! collectors apply one at a time, as on SQLite (attribution reads a click,
//! a customer, a partnership and then writes; two collectors taking a
//! visitor's click and signup at the same moment must see each other's
//! rows, not both decide alone), and the time it hands out never goes back,
//! whichever collector's clock is ahead. Reads take no lock. The writer's
//! group commit holds the lock for one transaction per group of requests.

use super::db::{Db, PgSession};
use anyhow::{bail, Context, Result};
use postgres::fallible_iterator::FallibleIterator;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Migrations, in order, applied at open and recorded in `schema_version`.
/// The first brings an empty database to SQLite's version 13; each later
/// SQLite migration (schema.rs) gets its PostgreSQL counterpart here.
const MIGRATIONS: &[(i64, &str)] = &[
    (13, include_str!("pg/13.sql")),
    (14, include_str!("pg/14.sql")),
    (15, include_str!("pg/15.sql")),
    (16, include_str!("pg/16.sql")),
];

/// The advisory lock migrations hold: collectors starting together migrate once.
const MIGRATE_LOCK: i64 = 0x6772_6f77_7375_6d6f;

/// Most connections one collector opens: the writer's, the key listener's
/// (outside the pool) and at most this many for reads and API writes. Run
/// N collectors on a server whose `max_connections` exceeds N × 18.
pub const POOL_SIZE: u32 = 16;

/// How long a request waits for a connection (a free one from the pool, or
/// a new one from the server) before it fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection, with the statements prepared on it.
pub struct Conn {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

/// Connections to one PostgreSQL database, reused; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    url: Arc<str>,
    pool: r2d2::Pool<Connector>,
}

/// What the pool makes its connections with.
pub struct Connector {
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl Connector {
    /// The connection settings of `url`: its own, with timeouts and TLS.
    pub fn of(url: &str) -> Result<Connector> {
        let (url, tls) = tls_of(url)?;
        let mut config: postgres::Config = url.parse().context("the PostgreSQL URL")?;
        // A server that does not answer, a lock held by a stuck session, a
        // statement running away, a session left idle inside a transaction
        // (holding the write lock): each gives up, as SQLite's busy timeout
        // does, instead of stalling every collector's writes. TCP
        // keepalives notice a peer that vanished (within about a minute).
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .options("-c lock_timeout=5000 -c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000");
        Ok(Connector { config, tls })
    }

    /// A new connection (outside any pool).
    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        self.config.connect(self.tls.clone())
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl r2d2::ManageConnection for Connector {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: Connector::connect(self)?,
            statements: HashMap::new(),
        })
    }

    /// A round trip before each use: a connection the server closed (a
    /// restart, a failover) is replaced instead of failing a request.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.is_valid(Duration::from_secs(2))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

impl Pool {
    /// Connects to the database at `url` and applies pending migrations.
    pub fn open(url: &str) -> Result<Pool> {
        let connector = Connector::of(url).with_context(|| redacted(url))?;
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .test_on_check_out(true)
            .error_handler(Box::new(LogErrors))
            .build(connector)
            .with_context(|| format!("connecting to {}", redacted(url)))?;
        let pool = Pool { url: url.into(), pool };
        let mut conn = pool.get()?;
        migrate(&mut conn.client).with_context(|| format!("migrating {}", redacted(url)))?;
        Ok(pool)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection from the pool; waits at most `CONNECT_TIMEOUT`.
    pub fn get(&self) -> Result<r2d2::PooledConnection<Connector>> {
        self.pool
            .get()
            .with_context(|| format!("connecting to {}", redacted(&self.url)))
    }

    /// Runs `f` outside a transaction.
    pub fn read<T>(&self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let mut conn = self.get()?;
        let Conn { client, statements } = &mut *conn;
        f(&Db::Postgres(&PgSession::new(client, statements)))
    }

    /// Runs `f` in a write transaction stamped by `clock` (see
    /// `in_write_transaction`), and commits.
    pub fn write<T>(&self, clock: &super::Clock, f: impl FnOnce(&Db, i64) -> Result<T>) -> Result<T> {
        in_write_transaction(&mut *self.get()?, clock, f)
    }
}

/// Calls `on_notice` whenever a notification arrives on `channel`, and
/// whenever the listening connection is made (again): what was sent while
/// no connection listened is unknown, so it counts as a change. A thread
/// of its own, with a connection of its own, for the process's lifetime.
pub fn listen(url: &str, channel: &'static str, on_notice: impl Fn() + Send + 'static) -> Result<()> {
    let connector = Connector::of(url)?;
    let url = redacted(url);
    std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || loop {
            let listened = connector.connect().and_then(|mut client| {
                client.batch_execute(&format!("LISTEN {channel}"))?;
                on_notice();
                // Until the server closes the connection (TCP keepalives
                // notice a peer that vanished).
                let mut notifications = client.notifications();
                let mut waiting = notifications.blocking_iter();
                while waiting.next()?.is_some() {
                    on_notice();
                }
                Ok(())
            });
            if let Err(e) = listened {
                tracing::warn!(error = %super::db::pg_error(e, ""), url, channel, "listening for changes failed");
            }
            std::thread::sleep(Duration::from_secs(1));
        })?;
    Ok(())
}

/// Logs the connection errors the pool meets (a request that then times out
/// waiting says only that it timed out).
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<postgres::Error> for LogErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::warn!(error = %super::db::pg_error(error, ""), "PostgreSQL connection failed");
    }
}

/// How far ahead of the database server's clock a collector's may stamp.
const CLOCK_LEAD_MS: i64 = 5_000;

/// Runs `f` in a transaction of `conn` holding the write lock, and commits.
/// `f` gets the transaction's time: `clock`'s, or the last write's time if
/// that is later (another collector's clock ahead of this one's), so rows
/// commit in the order of their times and a sync reading `min_updated`
/// from the newest time it saw never misses a row committed later. A
/// collector's clock counts only up to `CLOCK_LEAD_MS` ahead of the
/// database server's (shifted as the tests shift `clock`): one collector
/// with a clock running days ahead must not drag every write's time there.
pub fn in_write_transaction<T>(
    conn: &mut Conn,
    clock: &super::Clock,
    f: impl FnOnce(&Db, i64) -> Result<T>,
) -> Result<T> {
    let (now_ms, offset_ms) = (clock.now_ms(), clock.offset_ms());
    let Conn { client, statements } = conn;
    // One round trip opens the transaction and takes the lock (the clock
    // row's, held until the commit), so a group of events pays for it
    // once. READ COMMITTED whatever the server's default: each statement
    // after the lock sees what the writers before it committed (a snapshot
    // taken before the lock, as REPEATABLE READ takes it, would miss them).
    let mut tx = Transaction(client, false);
    let opened = tx.0.simple_query(&format!(
        "START TRANSACTION ISOLATION LEVEL READ COMMITTED;
         UPDATE write_clock SET at = GREATEST(at, LEAST({now_ms},
             CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT) + {offset_ms} + {CLOCK_LEAD_MS}))
         WHERE id = 1 RETURNING at"
    ))?;
    let at: i64 = opened
        .iter()
        .find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
        .context("the write clock has no row")?;
    let value = f(&Db::Postgres(&PgSession::new(&mut *tx.0, statements)), at)?;
    tx.0.batch_execute("COMMIT")?;
    tx.1 = true;
    Ok(value)
}

/// A transaction opened by hand (see `in_write_transaction`), rolled back
/// unless it was committed, however its scope ends: a connection must not
/// go back to the pool inside one.
struct Transaction<'a>(&'a mut postgres::Client, bool);

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.1 {
            let _ = self.0.batch_execute("ROLLBACK");
        }
    }
}

/// The TLS connector `url` asks for, as libpq reads it, and the URL left
/// for the driver. `sslmode=disable`: none. `prefer` (the default) and
/// `require`: encrypted, the server's certificate not checked (libpq's
/// meaning too). `verify-full`: the certificate must chain to Mozilla's
/// roots or to those in the `sslrootcert` file, and name the host.
fn tls_of(url: &str) -> Result<(String, tokio_postgres_rustls::MakeRustlsConnect)> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut verify = false;
    let mut root_file = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("sslmode", "verify-full") => {
                verify = true;
                kept.push("sslmode=require");
            }
            ("sslmode", "verify-ca") => bail!("sslmode=verify-ca is not supported: use verify-full"),
            ("sslrootcert", path) => {
                root_file = Some(percent_encoding::percent_decode_str(path).decode_utf8()?.into_owned())
            }
            _ => kept.push(pair),
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let config = match (verify, root_file) {
        (false, Some(_)) => bail!("sslrootcert is read with sslmode=verify-full only"),
        (false, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        (true, root_file) => {
            let roots = crate::tls::roots(root_file.as_deref()).context("sslrootcert")?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    let url = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok((url, tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

/// `sslmode=require`'s check: any certificate, so long as the server proves
/// it holds its key (the handshake's signatures are still verified).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `url` without its password (in the user part, which ends at the
/// authority's last `@`, or as a `password` parameter, however its name is
/// cased or percent-encoded), for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The driver's user part ends at the first `@` (a `/`, `?` or `#` in
    // the password included); a password with a raw `@` runs to the last
    // `@` before the host ends.
    let (user, rest) = match rest.find('@') {
        Some(first) => {
            let host_end = rest[first..].find(['/', '?']).map_or(rest.len(), |i| first + i);
            let last = rest[..host_end].rfind('@').unwrap_or(first);
            let user = rest[..last].split(':').next().unwrap_or_default();
            // (A "user" holding a path or query is no user: shown as nothing.)
            let user = if user.contains(['/', '?']) { "" } else { user };
            (Some(user), &rest[last + 1..])
        }
        None => (None, rest),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let is_password = |pair: &&str| {
        let name = pair.split('=').next().unwrap_or_default();
        percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .eq_ignore_ascii_case("password")
    };
    let query: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !is_password(p)).collect();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    format!("{scheme}://{user}{rest}{query}")
}

/// The newest migration applied.
pub fn schema_version(db: &Db) -> Result<i64> {
    db.query_row("SELECT coalesce(max(version), 0) FROM schema_version", [], |r| r.get(0))
}

/// Whether the database has the store's schema (a command that must not
/// start an empty database checks first).
pub fn has_schema(url: &str) -> Result<bool> {
    let mut client = Connector::of(url)?
        .connect()
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
        // An `@` in the password; a parameter name percent-encoded or cased.
        assert_eq!(
            super::redacted("postgres://app:Wr@ngPw2@db:5432/g1"),
            "postgres://app@db:5432/g1"
        );
        assert_eq!(
            super::redacted("postgres://db/g1?user=app&passw%6Frd=Leak1&PASSWORD=Leak2"),
            "postgres://db/g1?user=app"
        );
    }

    /// What the driver takes as the password must not show in `redacted`.
    #[test]
    fn redacted_hides_what_the_driver_reads_as_the_password() {
        let mut leaks = Vec::new();
        for url in [
            "postgres://app:pa/ss@db:5432/g1",
            "postgres://app:p?ss@db:5432/g1",
            "postgres://app:p?ss@db:5432/g1?sslmode=disable",
            "postgres://app:pa#ss@db:5432/g1",
        ] {
            let config: postgres::Config = url.parse().expect(url);
            let password = String::from_utf8(config.get_password().expect("a password").to_vec()).unwrap();
            let shown = super::redacted(url);
            if shown.contains(&password) {
                leaks.push(format!("{url} shows as {shown}"));
            }
        }
        assert!(leaks.is_empty(), "{leaks:#?}");
    }

    #[test]
    fn redacted_other_forms() {
        for (url, want) in [
            ("postgres://u:p@[::1]:5432/db", "postgres://u@[::1]:5432/db"),
            ("postgres://[::1]:5432/db", "postgres://[::1]:5432/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://:p@h/db", "postgres://@h/db"),
            ("postgres://u:p@h/d@b", "postgres://u@h/d@b"),
            (
                "postgres://u:p@h/db?application_name=a@b",
                "postgres://u@h/db?application_name=a@b",
            ),
            ("postgres://h:5432/db?application_name=a@b", "postgres://h@b"), // the driver reads user h, password "5432/db?application_name=a", host b
            ("postgres://u:p@h1:5432,h2:5433/db", "postgres://u@h1:5432,h2:5433/db"),
        ] {
            assert_eq!(super::redacted(url), want, "{url}");
        }
    }
}
