//! `cargo xtask bench ingest`: the collector's ingest throughput and latency,
//! measured with wrk on loopback against the release binary.
//!
//! One run compares, on this machine and in the same conditions:
//! (a) the HTTP path alone (`--no-persist`: events answered, not stored), the
//!     ceiling; and (b) durable ingest (group commit, `synchronous=FULL`) on an
//!     empty database and on ones pre-filled with 1 M and 10 M events.
//! With `--db postgres`, the same run measures instead (a), (b) on an empty
//! database, and durable ingest on PostgreSQL (a throwaway server, see
//! `postgres_server`) with one collector and with two sharing it (wrk
//! splits its connections over them). The 2 cores are shared by the
//! database, the collectors and wrk.
//! Each is measured `RUNS` times, interleaved; medians are printed with the
//! ratios the issue asks for. Absolute figures swing with the shared machine; the ratios
//! within one run are what to compare.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{cargo, check, target_dir, tools};

const RUNS: usize = 3;
const SECONDS: u32 = 10;
const CONNECTIONS: u32 = 64;

/// One wrk measurement.
#[derive(Clone, Copy)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

struct Setup {
    label: &'static str,
    store: Store,
    persist: bool,
}

/// Where a setup's events go.
enum Store {
    /// A SQLite file pre-filled with this many events.
    Sqlite(u64),
    /// A new PostgreSQL database, shared by this many collectors.
    Postgres(usize),
}

pub fn ingest(quick: bool, postgres: bool) -> Result<()> {
    tools::ensure_wrk()?;
    crate::snippet::build()?;
    cargo(&["build", "--release", "-p", "collector"])?;
    let bin = target_dir().join("release/collector");
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let (runs, big) = if quick { (1, 100_000) } else { (RUNS, 10_000_000) };
    let setup = |label, store, persist| Setup { label, store, persist };
    let setups = match postgres {
        false => vec![
            setup("a: HTTP only (no persistence)", Store::Sqlite(0), false),
            setup("b: durable, empty database", Store::Sqlite(0), true),
            setup("b: durable, 1 M events", Store::Sqlite(big / 10), true),
            setup("b: durable, 10 M events", Store::Sqlite(big), true),
        ],
        true => vec![
            setup("a: HTTP only (no persistence)", Store::Sqlite(0), false),
            setup("b: durable, SQLite, empty", Store::Sqlite(0), true),
            setup("c: durable, PostgreSQL, 1 collector", Store::Postgres(1), true),
            setup("d: durable, PostgreSQL, 2 collectors", Store::Postgres(2), true),
        ],
    };
    let mut server = postgres.then(PostgresServer::start).transpose()?;
    // Runs are interleaved (a, b, b, b, then again) so that a noisy stretch of
    // the shared machine hits every setup alike.
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); setups.len()];
    for run in 0..runs {
        for (setup, samples) in setups.iter().zip(&mut samples) {
            let locations = match setup.store {
                Store::Sqlite(prefill) => {
                    let db = dir.join(format!("ingest-{prefill}.db"));
                    // An empty database starts empty every run; a filled one is made
                    // once (minutes at 10 M) and grows by each run's events (~3%).
                    if prefill == 0 {
                        remove_db(&db);
                    }
                    prepare_db(&bin, &db, prefill)?;
                    vec![db.display().to_string()]
                }
                Store::Postgres(collectors) => {
                    let url = server.as_mut().context("no PostgreSQL server")?.database()?;
                    vec![url; collectors]
                }
            };
            let sample = measure(&bin, &locations, setup.persist, &dir)?;
            eprintln!(
                "  {} run {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
                setup.label,
                run + 1,
                sample.rps,
                sample.p50_ms,
                sample.p99_ms,
                sample.errors
            );
            samples.push(sample);
        }
    }
    let medians: Vec<Sample> = samples.iter().map(|s| median(s)).collect();

    println!("\ningest benchmark: wrk, {CONNECTIONS} connections, {SECONDS} s per run, median of {runs} runs");
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>8}",
        "setup", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (setup, m) in setups.iter().zip(&medians) {
        println!(
            "{:<34} {:>10.0} {:>9.2} {:>9.2} {:>8}",
            setup.label, m.rps, m.p50_ms, m.p99_ms, m.errors
        );
    }
    let (a, empty) = (medians[0], medians[1]);
    if postgres {
        let (one, two) = (medians[2], medians[3]);
        println!(
            "PostgreSQL, 1 collector / SQLite:       {:.2}   (target >= 0.50)",
            one.rps / empty.rps
        );
        println!("PostgreSQL, 1 collector / HTTP only:    {:.2}", one.rps / a.rps);
        println!("PostgreSQL, 2 collectors / HTTP only:   {:.2}", two.rps / a.rps);
        println!("(one machine of 2 cores runs PostgreSQL, the collectors and wrk)");
        return Ok(());
    }
    let (one, ten) = (medians[2], medians[3]);
    println!(
        "ratio b/a (durable empty / HTTP only):  {:.2}   (target >= 0.80)",
        empty.rps / a.rps
    );
    println!(
        "p99 b / p99 a:                          {:.2}   (target <= 2.00)",
        empty.p99_ms / a.p99_ms
    );
    println!("ingest at 1 M / empty:                  {:.2}", one.rps / empty.rps);
    println!(
        "ingest at 10 M / empty:                 {:.2}   (target >= 0.90)",
        ten.rps / empty.rps
    );
    Ok(())
}

/// Creates the database once per size (filling takes minutes at 10 M).
/// `bench webhooks`: the `webhooks_bench` example against the release
/// collector, on SQLite, then on PostgreSQL when asked.
pub fn webhooks(postgres: bool) -> Result<()> {
    crate::snippet::build()?;
    crate::cargo(&["build", "--release", "-p", "collector"])?;
    let bin = crate::target_dir().join("release/collector");
    let backends: &[&str] = if postgres { &["sqlite", "postgres"] } else { &["sqlite"] };
    for backend in backends {
        if *backend == "postgres" {
            crate::tools::ensure_postgres()?;
        }
        let status = Command::new("cargo")
            .args(["run", "--release", "-q", "-p", "e2e", "--example", "webhooks_bench"])
            .env("COLLECTOR_BIN", &bin)
            .env("GROWSUMO_TEST_DB", backend)
            .env("RUST_LOG", "error")
            .status()?;
        crate::check(status, "webhooks_bench")?;
    }
    Ok(())
}

fn prepare_db(bin: &Path, db: &Path, prefill: u64) -> Result<()> {
    let ready = db.with_extension("ready");
    if ready.exists() && db.exists() {
        return Ok(());
    }
    remove_db(db);
    let status = Command::new(bin)
        .arg("--db")
        .arg(db)
        .args(["fill", "--events", &prefill.to_string()])
        .status()?;
    check(status, "collector fill")?;
    std::fs::write(ready, "")?;
    Ok(())
}

fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let _ = std::fs::remove_file(db.with_extension("ready"));
}

/// Runs wrk against one collector per location at once, the connections
/// split between them: their requests summed, the slower one's latencies.
fn measure(bin: &Path, locations: &[String], persist: bool, dir: &Path) -> Result<Sample> {
    let mut servers = Vec::new();
    for location in locations {
        servers.push(Server::start(bin, location, persist)?);
    }
    let script = dir.join("ingest.lua");
    std::fs::write(&script, LUA.replace("__PK__", &servers[0].public_key))?;
    let connections = CONNECTIONS / servers.len() as u32;
    let runs: Vec<Child> = servers
        .iter()
        .map(|server| {
            Command::new("wrk")
                .args([
                    "-t2",
                    &format!("-c{connections}"),
                    &format!("-d{SECONDS}s"),
                    "--latency",
                    "-s",
                ])
                .arg(&script)
                .arg(format!("{}/v1/events", server.url))
                .stdout(Stdio::piped())
                .spawn()
                .context("running wrk")
        })
        .collect::<Result<_>>()?;
    let mut total: Option<Sample> = None;
    for run in runs {
        let out = run.wait_with_output()?;
        check(out.status, "wrk")?;
        let sample = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
        total = Some(match total {
            None => sample,
            Some(t) => Sample {
                rps: t.rps + sample.rps,
                p50_ms: t.p50_ms.max(sample.p50_ms),
                p99_ms: t.p99_ms.max(sample.p99_ms),
                errors: t.errors + sample.errors,
            },
        });
    }
    for server in &mut servers {
        server.stop();
    }
    total.context("no collector")
}

/// A throwaway PostgreSQL server: the tests' own, started by the e2e
/// crate's `postgres_server` example, which answers each line written to
/// it with a new database's URL and stops the server when its stdin closes.
pub struct PostgresServer {
    child: Child,
    urls: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl PostgresServer {
    pub fn start() -> Result<PostgresServer> {
        tools::ensure_postgres()?;
        cargo(&["build", "-p", "e2e", "--example", "postgres_server"])?;
        let mut child = Command::new(target_dir().join("debug/examples/postgres_server"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting PostgreSQL")?;
        let urls = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut server = PostgresServer { child, urls };
        // The first line is a database made at start; unused.
        server.next_url()?;
        Ok(server)
    }

    /// The URL of a new, empty database.
    pub fn database(&mut self) -> Result<String> {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().context("stdin")?;
        writeln!(stdin)?;
        self.next_url()
    }

    fn next_url(&mut self) -> Result<String> {
        self.urls
            .next()
            .context("the PostgreSQL server stopped")?
            .map_err(Into::into)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Each request is one event with a unique id; one in ten is a signup.
const LUA: &str = r#"
local counter = 0
local prefix = ""
function setup(thread) thread:set("prefix", tostring(math.random(1, 1e9))) end
function init(args) prefix = prefix .. tostring(math.random(1, 1e9)) end
function request()
  counter = counter + 1
  local id = prefix .. "-" .. counter
  local event
  if counter % 10 == 0 then
    event = '{"id":"' .. id .. '","type":"signup","email":"' .. id .. '@example.com","partner_key":"alice"}'
  else
    event = '{"id":"' .. id .. '","type":"click","partner_key":"alice","xid":"' .. id .. '"}'
  end
  return wrk.format("POST", nil, {["Content-Type"] = "text/plain"}, '{"pk":"__PK__","events":[' .. event .. ']}')
end
"#;

struct Server {
    child: Child,
    url: String,
    public_key: String,
}

impl Server {
    fn start(bin: &Path, db: &str, persist: bool) -> Result<Server> {
        let mut cmd = Command::new(bin);
        cmd.arg("--db")
            .arg(db)
            .args(["serve", "--demo", "--create", "--addr", "127.0.0.1:0"])
            // The load generator is one client sending one key's events.
            .args(["--client-requests-per-second", "0", "--key-events-per-second", "0"]);
        if !persist {
            cmd.arg("--no-persist");
        }
        let mut child = cmd.env("RUST_LOG", "error").stdout(Stdio::piped()).spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("listening on ").map(String::from))
            .context("the collector did not start")?;
        std::thread::spawn(move || lines.for_each(drop));
        let keys = Command::new(bin).arg("--db").arg(db).args(["keys", "list"]).output()?;
        let public_key = String::from_utf8_lossy(&keys.stdout)
            .lines()
            .find(|l| l.contains(" demo"))
            .and_then(|l| l.split_whitespace().next())
            .context("no demo key")?
            .to_owned();
        Ok(Server { child, url, public_key })
    }

    /// SIGTERM, then wait: the writer flushes before the next run starts.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn parse_wrk(out: &str) -> Result<Sample> {
    let mut sample = Sample {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in out.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", n] => sample.rps = n.parse()?,
            ["50%", t] => sample.p50_ms = millis(t)?,
            ["99%", t] => sample.p99_ms = millis(t)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => sample.errors += n.parse::<u64>()?,
            ["Socket", "errors:", ..] => sample.errors += line.matches(char::is_numeric).count() as u64,
            _ => {}
        }
    }
    if sample.rps == 0.0 {
        bail!("could not read wrk's output:\n{out}");
    }
    Ok(sample)
}

fn millis(t: &str) -> Result<f64> {
    let (number, unit) = t.split_at(t.find(|c: char| c.is_alphabetic()).context("a unit")?);
    let n: f64 = number.parse()?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => bail!("unknown unit in {t}"),
    })
}

fn median(samples: &[Sample]) -> Sample {
    let pick = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Sample {
        rps: pick(|s| s.rps),
        p50_ms: pick(|s| s.p50_ms),
        p99_ms: pick(|s| s.p99_ms),
        errors: samples.iter().map(|s| s.errors).max().unwrap_or(0),
    }
}
