//! The single writer: one thread owns the only event-writing connection and
//! commits whatever has queued (up to `GROUP_CAP` requests) in one transaction,
//! then answers every request of the group. An answer therefore always means
//! "committed to disk" (`synchronous=FULL`), and one fsync serves many requests.
//!
//! The queue is bounded: when it is full, `submit` fails at once with
//! `WriterError::Busy` (the HTTP layer answers 503 + Retry-After) instead of
//! letting memory grow without bound.

use super::attribution::{self, ServerClick, Source};
use super::db::{padded_slices, params, row_placeholders, Db, Params, Value};
use super::outbox::{self, Outbox, Subject};
use super::{credit, daily, Clock, EventKind, Key, NewEvent};
use crate::metrics::WriterMetrics;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

/// Most requests committed in one transaction.
const GROUP_CAP: usize = 512;
/// How long after its last group the writer keeps its PostgreSQL
/// connection without checking it.
const KEEP_CONNECTION: std::time::Duration = std::time::Duration::from_secs(1);
/// How often the checkpointer moves the WAL into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Seen before (same key, same event id): stored once, acknowledged again.
    Duplicate,
    /// A signup for a customer that exists: stored, but it changes no one's
    /// credit (a customer is attributed once; the merchant's word is final).
    AlreadyAttributed,
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the event queue is full")]
    Busy,
    #[error("the writer has stopped")]
    Stopped,
    #[error("database error: {0}")]
    Database(String),
}

/// Whose events a request carries, and what attribution needs to know of it.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The key (its settings: windows, open partner sign-up).
    pub key: Key,
    /// The server cookie the request carried.
    pub server_click: Option<ServerClick>,
    /// The client's network (`attribution::network`).
    pub network: String,
}

struct Job {
    submission: Submission,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<Outcome>, WriterError>>,
}

/// A handle for submitting events; cheap to clone. The writer thread stops
/// once every handle is dropped and the queue is drained.
#[derive(Clone)]
pub struct Writer {
    /// `None`: the benchmark-only writer that stores nothing.
    queue: Option<mpsc::Sender<Job>>,
    /// Group sizes and commit latency, for `/metrics`.
    pub metrics: Arc<WriterMetrics>,
    /// The database file it writes (None: the discarding writer).
    file: Option<FileIdentity>,
}

/// The writer thread; `join` waits until everything queued is committed and
/// the connection is closed.
pub struct WriterThread(JoinHandle<()>);

impl WriterThread {
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl Writer {
    /// Starts the writer on `target`: on SQLite, with a checkpointer.
    /// `outbox` hears of every commit that wrote an outgoing webhook.
    pub(super) fn start(target: Target, queue: usize, clock: Clock, outbox: Outbox) -> (Writer, WriterThread) {
        let (tx, rx) = mpsc::channel(queue);
        let metrics = Arc::new(WriterMetrics::default());
        let observed = metrics.clone();
        let file = match &target {
            Target::Sqlite { file, .. } => Some(file.clone()),
            Target::Postgres(_) => None,
        };
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || match target {
                Target::Sqlite {
                    conn,
                    checkpoints,
                    file,
                    wal_limit_pages,
                } => {
                    let _ = conn.pragma_update(None, "wal_autocheckpoint", 0);
                    // 64 MiB of page cache (default 2 MiB): the event-id index's
                    // inner pages stay in memory on a large database.
                    let _ = conn.pragma_update(None, "cache_size", -65_536);
                    let (stop, stopped) = std::sync::mpsc::channel::<()>();
                    let checkpointer = std::thread::spawn(move || checkpoint(checkpoints, stopped, wal_limit_pages));
                    run(Conn::Sqlite(conn, file), rx, (&clock, &outbox), &observed);
                    drop(stop);
                    let _ = checkpointer.join();
                }
                Target::Postgres(pool) => run(Conn::Postgres(pool, None), rx, (&clock, &outbox), &observed),
            })
            .expect("spawning the writer thread");
        (
            Writer {
                queue: Some(tx),
                metrics,
                file,
            },
            WriterThread(thread),
        )
    }

    /// A writer that answers "accepted" without storing anything: the
    /// ingest benchmark's ceiling (the HTTP path alone).
    pub fn discard() -> Writer {
        Writer {
            queue: None,
            metrics: Arc::default(),
            file: None,
        }
    }

    /// The last commit succeeded after all (a later write proved the
    /// database takes writes again).
    pub fn recovered(&self) {
        *self.metrics.failure.lock().expect("writer failure") = None;
    }

    /// Why writes cannot be taken now, if they cannot: the last commit
    /// failed (disk full, I/O), or the database file was deleted or
    /// replaced under the server.
    pub fn trouble(&self) -> Option<String> {
        if let Some(file) = self.file.as_ref().filter(|f| !f.intact()) {
            return Some(format!(
                "the database file {} was deleted or replaced",
                file.path.display()
            ));
        }
        self.metrics.failure.lock().expect("writer failure").clone()
    }

    /// Whether the writer thread still takes requests.
    pub fn is_running(&self) -> bool {
        self.queue.as_ref().is_none_or(|q| !q.is_closed())
    }

    /// Stores `events`; resolves once they are committed.
    pub async fn submit(&self, submission: Submission, events: Vec<NewEvent>) -> Result<Vec<Outcome>, WriterError> {
        let Some(queue) = &self.queue else {
            return Ok(vec![Outcome::Accepted; events.len()]);
        };
        let (reply, answer) = oneshot::channel();
        queue
            .try_send(Job {
                submission,
                events,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => WriterError::Busy,
                mpsc::error::TrySendError::Closed(_) => WriterError::Stopped,
            })?;
        answer.await.map_err(|_| WriterError::Stopped)?
    }
}

/// Copies the WAL into the database file every `CHECKPOINT_EVERY`, on its
/// own connection, so the writer never stalls on a checkpoint (the writer's
/// automatic checkpoints are off); a last full one runs at shutdown.
///
/// The WAL stays bounded while serving: once it holds more than
/// `wal_limit_pages` pages (a flood, or readers that kept passive
/// checkpoints from finishing), a TRUNCATE checkpoint waits for the readers
/// (up to the busy timeout) and empties the file; `journal_size_limit` (see
/// `connect`) trims it after every reset.
fn checkpoint(conn: Connection, stop: std::sync::mpsc::Receiver<()>, wal_limit_pages: i64) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let pages = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        match pages {
            Ok(pages) if pages > wal_limit_pages => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, pages, "truncating checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// The database file as it was opened: a file deleted or replaced under the
/// server (a restore gone wrong, a cleanup script) must stop writes, not
/// take them into a file nobody will read again.
#[derive(Debug, Clone)]
pub struct FileIdentity {
    path: std::path::PathBuf,
    id: Option<(u64, u64)>,
}

impl FileIdentity {
    pub fn of(path: &std::path::Path) -> FileIdentity {
        FileIdentity {
            path: path.to_path_buf(),
            id: Self::id(path),
        }
    }

    #[cfg(unix)]
    fn id(path: &std::path::Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }

    #[cfg(not(unix))]
    fn id(path: &std::path::Path) -> Option<(u64, u64)> {
        std::fs::metadata(path).ok().map(|_| (0, 0))
    }

    /// Whether the path still names the file that was opened.
    pub fn intact(&self) -> bool {
        self.id.is_some() && Self::id(&self.path) == self.id
    }
}

/// What the writer writes to (made once per writer).
#[allow(clippy::large_enum_variant)]
pub(super) enum Target {
    Sqlite {
        conn: Connection,
        checkpoints: Connection,
        /// The database file as it was opened.
        file: FileIdentity,
        wal_limit_pages: i64,
    },
    Postgres(super::pg::Pool),
}

/// The writer's connection: SQLite's, with its file; or PostgreSQL's,
/// made again from the pool when it broke (the server restarted). (One
/// lives, in the writer thread: its size does not matter.)
#[allow(clippy::large_enum_variant)]
enum Conn {
    Sqlite(Connection, FileIdentity),
    /// The connection, and when its last group committed.
    Postgres(
        super::pg::Pool,
        Option<(r2d2::PooledConnection<super::pg::Connector>, std::time::Instant)>,
    ),
}

impl Conn {
    /// Why no group can be committed now, if one cannot.
    fn trouble(&self) -> Option<anyhow::Error> {
        match self {
            Conn::Sqlite(_, file) if !file.intact() => Some(anyhow::anyhow!(
                "the database file {} was deleted or replaced",
                file.path.display()
            )),
            _ => None,
        }
    }

    /// Runs `f` in one write transaction, with the time read once the
    /// write lock is held, and commits.
    fn transaction<T>(&mut self, clock: &Clock, f: impl FnOnce(&Db, i64) -> anyhow::Result<T>) -> anyhow::Result<T> {
        match self {
            Conn::Sqlite(conn, _) => {
                // Immediate: the group reads (click ids, partnerships) before
                // it writes, and a read transaction that must then become a
                // write one fails at once ("database is locked") if a
                // checkpoint moved the WAL meanwhile; taking the write lock
                // first waits (busy timeout) instead.
                let transaction = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let value = f(&Db::from(&transaction), clock.now_ms())?;
                transaction.commit()?;
                Ok(value)
            }
            Conn::Postgres(pool, client) => {
                // Kept from group to group under load; after a pause it goes
                // back to the pool, which checks it before handing it out
                // again (the server may have restarted meanwhile).
                let mut conn = match client.take() {
                    Some((conn, at)) if at.elapsed() < KEEP_CONNECTION => conn,
                    _ => pool.get()?,
                };
                let result = super::pg::in_write_transaction(&mut conn, clock, f);
                // After a failure the connection goes back to the pool, which
                // drops it if it broke and checks it before its next use.
                if result.is_ok() {
                    *client = Some((conn, std::time::Instant::now()));
                }
                result
            }
        }
    }
}

fn run(mut conn: Conn, mut queue: mpsc::Receiver<Job>, (clock, outbox): (&Clock, &Outbox), metrics: &WriterMetrics) {
    let mut group = Vec::with_capacity(GROUP_CAP);
    while let Some(job) = queue.blocking_recv() {
        group.push(job);
        while group.len() < GROUP_CAP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        metrics.group_size.observe(group.len() as f64);
        if let Some(e) = conn.trouble() {
            fail_group(&mut group, &e, metrics);
            continue;
        }
        commit_group(&mut conn, &mut group, (clock, outbox), metrics);
    }
}

/// Commits the group, counts the commit's time, then replies to every job
/// in it (so a client that has its answer also sees the commit in
/// `/metrics`). Events are validated
/// before they reach the writer and every insert is conflict-free, so an error
/// here is the database's (disk full, I/O): the whole group fails, nothing in
/// it is acknowledged, and the clients retry.
fn commit_group(conn: &mut Conn, group: &mut Vec<Job>, (clock, outbox): (&Clock, &Outbox), metrics: &WriterMetrics) {
    let started = std::time::Instant::now();
    let applied = apply_group(conn, group, clock, metrics);
    metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
    match applied {
        Ok((results, sent)) => {
            if sent {
                outbox.notify_one();
            }
            *metrics.failure.lock().expect("writer failure") = None;
            for (job, result) in group.drain(..).zip(results) {
                let _ = job.reply.send(Ok(result));
            }
        }
        Err(e) => fail_group(group, &e, metrics),
    }
}

/// Answers every job of a group that could not be committed with the
/// error, and records it for `/readyz`.
fn fail_group(group: &mut Vec<Job>, e: &anyhow::Error, metrics: &WriterMetrics) {
    tracing::error!(error = %e, requests = group.len(), "commit failed");
    *metrics.failure.lock().expect("writer failure") = Some(e.to_string());
    for job in group.drain(..) {
        let _ = job.reply.send(Err(WriterError::Database(e.to_string())));
    }
}

/// The group's answers, and whether it wrote outgoing webhooks.
fn apply_group(
    conn: &mut Conn,
    group: &[Job],
    clock: &Clock,
    metrics: &WriterMetrics,
) -> anyhow::Result<(Vec<Vec<Outcome>>, bool)> {
    // Stamped once the write lock is held: rows commit in the order of
    // their times, so a sync reading `min_updated` from the newest time it
    // saw never misses a row committed later with an earlier time.
    conn.transaction(clock, |tx, now_ms| apply_all(tx, group, now_ms, metrics))
}

fn apply_all(
    tx: &Db,
    group: &[Job],
    now_ms: i64,
    metrics: &WriterMetrics,
) -> anyhow::Result<(Vec<Vec<Outcome>>, bool)> {
    let mut found = Found::look_up(tx, group)?;
    found.count_click_id_conflicts(group, metrics);
    let mut new = insert_events(tx, group, now_ms)?;
    let mut tally = Tally::new();
    let mut customers = Customers::default();
    let results = group
        .iter()
        .map(|job| {
            let seen = (&mut new, &mut found, &mut customers);
            outcomes(tx, &job.submission, &job.events, now_ms, seen, &mut tally)
        })
        .collect::<anyhow::Result<_>>()?;
    customers.insert(tx)?;
    // (Per key, together: on PostgreSQL each statement is a round trip.)
    let mut made: HashMap<i64, (&Key, Vec<Subject>)> = HashMap::new();
    for (key, customer_key) in &customers.made {
        made.entry(key.id)
            .or_insert((key, Vec::new()))
            .1
            .push(Subject::Customer(customer_key));
    }
    let mut sent = false;
    for (key, subjects) in made.into_values() {
        sent |= outbox::emit_new(tx, key, "customer.created", &subjects, now_ms)?;
    }
    // Partner keys no partnership has are counted in one bucket: anyone
    // can post clicks for made-up keys, and a row each would let a flood
    // grow the table and slow the Partners page without bound. (A partner
    // not found before the group may have been made during it.)
    let mut tally: Vec<_> = tally.into_iter().collect();
    tally.sort();
    for ((key_id, partner_key), (clicks, signups)) in tally {
        let known = partner_key.is_empty()
            || found.partners.contains_key(&(key_id, partner_key.clone()))
            || tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM partners WHERE key_id = ?1 AND partner_key = ?2)",
                params![key_id, partner_key],
                |r| r.get(0),
            )?;
        let bucket = if known {
            partner_key.as_str()
        } else {
            daily::UNKNOWN_PARTNERS
        };
        daily::add(tx, key_id, Some(bucket), now_ms, clicks, signups)?;
    }
    Ok((results, sent))
}

/// The group's new clicks and customers per (key, partner): written to the
/// per-day counts once per group, not once per event.
type Tally = HashMap<(i64, String), (i64, i64)>;

/// Columns of an event row, as `insert_events` writes them.
const EVENT_COLUMNS: usize = 15;
/// Most event rows in one insert (15 parameters each).
const ROWS_PER_INSERT: usize = 1024;
/// Most click ids in one lookup.
const IDS_PER_LOOKUP: usize = 64;

/// What the database holds, before the group, of what the group's events
/// name: read in one statement per key (and slice of ids), not one per
/// event, since on PostgreSQL each statement is a round trip.
#[derive(Default)]
struct Found {
    /// The (key, click id, partner) of the group's clicks whose id was
    /// recorded with another partner.
    taken: HashSet<(i64, String, String)>,
    /// The customers that exist, as (key, customer key); those the group
    /// makes are added.
    customers: HashSet<(i64, String)>,
    /// The email of each partnership, by (key, partner key).
    partners: HashMap<(i64, String), String>,
}

impl Found {
    fn look_up(tx: &Db, group: &[Job]) -> anyhow::Result<Found> {
        // Per key: each click's (click id, partner), each signup's customer
        // key, the partner keys of both.
        let mut ids: HashMap<i64, [Vec<Vec<&str>>; 3]> = HashMap::new();
        for job in group {
            let [clicks, customers, partners] = ids.entry(job.submission.key.id).or_default();
            for event in &job.events {
                if let (EventKind::Click, Some(xid), Some(partner)) = (event.kind, &event.xid, &event.partner_key) {
                    clicks.push(vec![xid, partner]);
                }
                if let Some(signup) = &event.signup {
                    customers.push(vec![&signup.customer_key]);
                }
                if let Some(partner) = &event.partner_key {
                    partners.push(vec![partner]);
                }
            }
        }
        let mut found = Found::default();
        for (key_id, lists) in ids {
            for (kind, id, value) in lookup_each(tx, key_id, lists)? {
                match kind.as_str() {
                    "x" => {
                        found.taken.insert((key_id, id, value));
                    }
                    "c" => {
                        found.customers.insert((key_id, id));
                    }
                    _ => {
                        found.partners.insert((key_id, id), value);
                    }
                }
            }
        }
        Ok(found)
    }

    /// Counts the group's clicks that reuse a click id recorded for another
    /// partner (a squatter, or two partners sharing an id), before the
    /// group or earlier in it. The click is stored anyway (the id stays
    /// bound to each partner it was recorded with, see `attribution`).
    fn count_click_id_conflicts(&self, group: &[Job], metrics: &WriterMetrics) {
        let mut earlier: HashMap<(i64, &str), Vec<&str>> = HashMap::new();
        for job in group {
            let key_id = job.submission.key.id;
            for event in &job.events {
                let (EventKind::Click, Some(xid), Some(partner)) = (event.kind, &event.xid, &event.partner_key) else {
                    continue;
                };
                let partners = earlier.entry((key_id, xid)).or_default();
                let taken = self.taken.contains(&(key_id, xid.clone(), partner.clone()))
                    || partners.iter().any(|p| p != partner);
                if taken {
                    tracing::warn!(xid, partner, "a click reuses a click id recorded for another partner");
                    metrics
                        .click_id_conflicts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                partners.push(partner);
            }
        }
    }
}

/// Looks up, for key `key_id`, the (click id, partner) pairs, customer keys
/// and partner keys in `lists` (repeats allowed): rows of ("x", click id,
/// partner) for a click id recorded with another partner, ("c", customer
/// key, _) for a customer that exists, ("p", partner key, email) for a
/// partnership. One statement per slice of each list: equality lookups
/// joined by `UNION ALL`, not `IN (…)`, since PostgreSQL, before it has
/// statistics (a new or just migrated database), scans every row of the
/// key for a list instead of probing the index with each id. Each list is
/// padded (see `padded_slices`): few statement texts.
fn lookup_each(tx: &Db, key_id: i64, lists: [Vec<Vec<&str>>; 3]) -> anyhow::Result<Vec<(String, String, String)>> {
    let lookups: [&str; 3] = [
        attribution::CLICK_ID_TAKEN,
        "SELECT 'c', $A, $A FROM customers WHERE key_id = ?1 AND customer_key = $A",
        "SELECT 'p', partner_key, email FROM partners WHERE key_id = ?1 AND partner_key = $A",
    ];
    let slices: Vec<Vec<Vec<Vec<&str>>>> = lists
        .into_iter()
        .map(|mut items| {
            items.sort_unstable();
            items.dedup();
            padded_slices(&items, IDS_PER_LOOKUP).collect()
        })
        .collect();
    let rounds = slices.iter().map(Vec::len).max().unwrap_or(0);
    let mut found = Vec::new();
    for round in 0..rounds {
        let mut values = vec![Value::Integer(key_id)];
        let mut selects = Vec::new();
        for (lookup, slices) in lookups.iter().zip(&slices) {
            for item in slices.get(round).into_iter().flatten() {
                let mut select = lookup.to_string();
                for (marker, value) in ["$A", "$B"].iter().zip(item) {
                    values.push(Value::Text((*value).to_owned()));
                    select = select.replace(marker, &format!("?{}", values.len()));
                }
                selects.push(select);
            }
        }
        found.extend(tx.query_all(&selects.join(" UNION ALL "), values, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?);
    }
    Ok(found)
}

/// Stores every event of the group that is new (one row per key and event
/// id), in order, in multi-row inserts (a repeated row is skipped as a
/// conflict); answers the `seq` of each (key, event id) inserted.
fn insert_events(tx: &Db, group: &[Job], received_at: i64) -> anyhow::Result<HashMap<(i64, String), i64>> {
    let rows: Vec<Vec<Value>> = group
        .iter()
        .flat_map(|job| {
            job.events
                .iter()
                .map(move |event| event_row(&job.submission, event, received_at))
        })
        .collect();
    let mut new = HashMap::new();
    for slice in padded_slices(&rows, ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO events (key_id, event_id, type, received_at, client_ts, partner_key, xid,
                                 url, referrer, customer_key, email, name, provider_key, fingerprint, network)
             VALUES {} ON CONFLICT (key_id, event_id) DO NOTHING RETURNING key_id, event_id, seq",
            row_placeholders(slice.len(), EVENT_COLUMNS)
        );
        new.extend(tx.query_all(&sql, slice.concat(), |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?);
    }
    Ok(new)
}

fn event_row(submission: &Submission, event: &NewEvent, received_at: i64) -> Vec<Value> {
    let signup = event.signup.as_ref();
    params![
        submission.key.id,
        event.id,
        event.kind.as_str(),
        received_at,
        event.client_ts,
        event.partner_key,
        event.xid,
        event.url,
        event.referrer,
        signup.map(|s| &s.customer_key),
        signup.map(|s| &s.email),
        signup.map(|s| &s.name),
        signup.and_then(|s| s.provider_key.as_ref()),
        event.fingerprint,
        submission.network,
    ]
    .values()
}

/// What became of one request's events, stored by `insert_events`: each
/// new one (in `new`, which loses it: a repeat in the same group is a
/// duplicate) accepted, and each new signup's customer made (added to
/// `found`, and to the `customers` the group inserts). `received_at` is the
/// group's time.
fn outcomes(
    conn: &Db,
    submission: &Submission,
    events: &[NewEvent],
    received_at: i64,
    (new, found, customers): (&mut HashMap<(i64, String), i64>, &mut Found, &mut Customers),
    tally: &mut Tally,
) -> anyhow::Result<Vec<Outcome>> {
    let key = &submission.key;
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        let Some(seq) = new.remove(&(key.id, event.id.clone())) else {
            outcomes.push(Outcome::Duplicate);
            continue;
        };
        let outcome = match (event.kind, event.signup.as_ref()) {
            (EventKind::Signup, Some(signup)) => {
                let context = attribution::Context {
                    key_id: key.id,
                    now_ms: received_at,
                    window_ms: key.settings.window_ms(),
                    fingerprint_ms: key.settings.fingerprint_ms(),
                    server_click: submission.server_click.clone(),
                    network: submission.network.clone(),
                    before_seq: seq,
                };
                if found.customers.insert((key.id, signup.customer_key.clone())) {
                    let row = new_customer(conn, key, &context, (event, signup), &found.partners, customers, tally)?;
                    customers.rows.push(row);
                    customers.made.push((key.clone(), signup.customer_key.clone()));
                    Outcome::Accepted
                } else {
                    Outcome::AlreadyAttributed
                }
            }
            _ => {
                let partner = event.partner_key.clone().unwrap_or_default();
                tally.entry((key.id, partner)).or_default().0 += 1;
                Outcome::Accepted
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Customers the group makes, inserted together once it has decided each
/// (`insert`), or before a statement that may read them.
#[derive(Default)]
struct Customers {
    /// Rows not inserted yet.
    rows: Vec<Vec<Value>>,
    /// Every customer made, as (key, customer key).
    made: Vec<(Key, String)>,
}

impl Customers {
    /// Columns of a customer row, as `new_customer` makes them.
    const COLUMNS: usize = 14;

    fn insert(&mut self, tx: &Db) -> anyhow::Result<()> {
        for slice in padded_slices(&self.rows, ROWS_PER_INSERT / 2) {
            // (A repeated row, the padding, is skipped as a conflict.)
            let sql = format!(
                "INSERT INTO customers (key_id, customer_key, email, name, provider_key, partner_key, xid, source,
                                        confidence, review, suggested_partner, event_id, created_at, updated_at)
                 VALUES {} ON CONFLICT (key_id, customer_key) DO NOTHING",
                row_placeholders(slice.len(), Self::COLUMNS)
            );
            tx.execute(&sql, slice.concat())?;
        }
        self.rows.clear();
        Ok(())
    }
}

/// The row of the customer a new signup names (the caller knows it is
/// new), credited as the engine decides (a fingerprint only suggests a
/// partner for review; an unknown partner or a self-referral waits for
/// review).
fn new_customer(
    conn: &Db,
    key: &Key,
    context: &attribution::Context,
    (event, signup): (&NewEvent, &super::Signup),
    partners: &HashMap<(i64, String), String>,
    customers: &mut Customers,
    tally: &mut Tally,
) -> anyhow::Result<Vec<Value>> {
    let decided = attribution::decide(conn, context, event)?;
    let (credited, suggested) = match decided {
        Some(a) if a.source == Source::Fingerprint => (None, Some(a.partner_key)),
        other => (other, None),
    };
    let review = match (&credited, &suggested) {
        // A partnership found before the group; else asked (it may have
        // been made since, or be made now: see `review_for`).
        (Some(a), _) => match partners.get(&(key.id, a.partner_key.clone())) {
            Some(partner_email) => credit::review_of_partnership(partner_email, &signup.email),
            None => {
                // (Making a partner approves the customers waiting for it:
                // those of the group too.)
                customers.insert(conn)?;
                credit::review_for(conn, key, &a.partner_key, &signup.email, context.now_ms)?
            }
        },
        (None, Some(_)) => Some(credit::Review::Fingerprint),
        (None, None) => None,
    };
    let row = params![
        key.id,
        signup.customer_key,
        signup.email,
        signup.name,
        // A provider id a browser claims is kept with its event only:
        // anyone can send one, and payments must not follow it.
        None::<String>,
        credited.as_ref().map(|a| &a.partner_key),
        credited.as_ref().and_then(|a| a.xid.as_ref()),
        credited.as_ref().map(|a| a.source.as_str()),
        credited.as_ref().map(|a| credit::confidence(a.source.as_str())),
        review.map(credit::Review::as_str),
        suggested,
        event.id,
        context.now_ms,
        context.now_ms,
    ]
    .values();
    let partner = credited.map(|a| a.partner_key).unwrap_or_default();
    tally.entry((key.id, partner)).or_default().1 += 1;
    Ok(row)
}
