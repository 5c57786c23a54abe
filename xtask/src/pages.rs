//! `cargo xtask bench pages`: how fast the dashboard's pages and the merchant
//! API's lists answer on a large database: 1 M customers (over 1,000
//! partners, 100 k payments) and 10 M events. Prints, per page, the p95
//! latency wrk measured (target: ≤ 50 ms on a 2-core machine) and req/s.
//!
//! The database is made once (`target/bench/pages-*.db`, minutes) and reused.
//! With `--db postgres`, the same pages are measured again on PostgreSQL, the
//! SQLite file moved there by `collector migrate` (a throwaway server, see
//! `bench::PostgresServer`).

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{cargo, check, target_dir, tools};

const SECONDS: u32 = 5;
const CONNECTIONS: u32 = 4;
const TARGET_P95_MS: f64 = 50.0;

pub fn run(quick: bool, postgres: bool) -> Result<()> {
    tools::ensure_wrk()?;
    crate::snippet::build()?;
    cargo(&["build", "--release", "-p", "collector"])?;
    let bin = target_dir().join("release/collector");
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let (customers, events) = if quick {
        (100_000u64, 1_000_000u64)
    } else {
        (1_000_000, 10_000_000)
    };
    let db = dir.join(format!("pages-{customers}.db"));
    let keys = db.with_extension("keys");
    if !keys.exists() || !db.exists() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let out = Command::new(&bin)
            .arg("--db")
            .arg(&db)
            .args(["keys", "create", "--mode", "live", "--name", "bench"])
            .output()?;
        check(out.status, "collector keys create")?;
        let created = String::from_utf8(out.stdout)?;
        let field = |label: &str| -> Result<String> {
            created
                .lines()
                .find_map(|l| l.strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .map(String::from)
                .context("keys create printed no key")
        };
        let (pk, sk) = (field("public key: ")?, field("secret key: ")?);
        eprintln!(
            "filling {} with {customers} customers and {events} events (once)...",
            db.display()
        );
        let status = Command::new(&bin)
            .arg("--db")
            .arg(&db)
            .args(["fill", "--public-key", &pk])
            .args(["--events", &events.to_string(), "--customers", &customers.to_string()])
            .status()?;
        check(status, "collector fill")?;
        std::fs::write(&keys, format!("{pk}\n{sk}\n"))?;
    }
    let saved = std::fs::read_to_string(&keys)?;
    let mut lines = saved.lines();
    let (pk, sk) = (
        lines.next().context("pk")?.to_owned(),
        lines.next().context("sk")?.to_owned(),
    );

    // The same data on PostgreSQL: the SQLite file moved by `migrate`.
    let mut stores = vec![("SQLite", db.display().to_string())];
    let _postgres = match postgres {
        true => {
            let mut server = crate::bench::PostgresServer::start()?;
            let url = server.database()?;
            eprintln!("moving the data to PostgreSQL (collector migrate)...");
            let started = std::time::Instant::now();
            let status = Command::new(&bin)
                .args(["migrate", "--from"])
                .arg(&db)
                .args(["--to", &url])
                .stdout(Stdio::null())
                .status()?;
            check(status, "collector migrate")?;
            eprintln!("  moved in {:.0} s", started.elapsed().as_secs_f64());
            stores.push(("PostgreSQL", url));
            Some(server)
        }
        false => None,
    };
    let mut results = Vec::new();
    for (store, location) in &stores {
        for (label, p95, rps, errors) in measure_pages(&bin, location, (&pk, &sk), customers, &dir)? {
            results.push((*store, label, p95, rps, errors));
        }
    }
    println!(
        "\npages benchmark: {customers} customers, {events} events; wrk, {CONNECTIONS} connections, {SECONDS} s each"
    );
    println!(
        "{:<11} {:<34} {:>9} {:>9} {:>7}",
        "store", "page", "p95 ms", "req/s", "errors"
    );
    for (store, label, p95, rps, errors) in &results {
        let mark = if *p95 <= TARGET_P95_MS {
            ""
        } else {
            "  over the 50 ms target"
        };
        println!("{store:<11} {label:<34} {p95:>9.2} {rps:>9.0} {errors:>7}{mark}");
    }
    Ok(())
}

/// Each page's p95 (ms), req/s and non-2xx answers, from a collector on
/// `location`.
fn measure_pages(
    bin: &Path,
    location: &str,
    (pk, sk): (&str, &str),
    customers: u64,
    dir: &Path,
) -> Result<Vec<(&'static str, f64, f64, u64)>> {
    let mut server = Server::start(bin, location)?;
    let session = sign_in(&server.addr, sk)?;
    let basic = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{pk}:{sk}"))
        )
    };
    let middle = customers / 2;
    let pages: Vec<(&'static str, String, String)> = vec![
        (
            "dashboard: customers",
            "/dashboard/customers".into(),
            format!("Cookie: {session}"),
        ),
        (
            "dashboard: customers, deep page",
            format!("/dashboard/customers?after={middle}"),
            format!("Cookie: {session}"),
        ),
        (
            "dashboard: customer search",
            "/dashboard/customers?q=customer4242".into(),
            format!("Cookie: {session}"),
        ),
        (
            "dashboard: partners (+ chart)",
            "/dashboard/partners".into(),
            format!("Cookie: {session}"),
        ),
        (
            "dashboard: transactions",
            "/dashboard/transactions".into(),
            format!("Cookie: {session}"),
        ),
        (
            "api: customers, 100",
            "/api/v2/customers?limit=100".into(),
            format!("Authorization: {basic}"),
        ),
        (
            "api: customers of a partner",
            "/api/v2/customers?partner_key=partner7&limit=100".into(),
            format!("Authorization: {basic}"),
        ),
        (
            "api: partnerships, 100",
            "/api/v2/partnerships?limit=100".into(),
            format!("Authorization: {basic}"),
        ),
        (
            "api: transactions, 100",
            "/api/v2/transactions?limit=100".into(),
            format!("Authorization: {basic}"),
        ),
    ];
    let mut results = Vec::new();
    for (label, path, header) in pages {
        let (p95, rps, errors) = measure(dir, &server.addr, &path, &header)?;
        eprintln!("  {label}: p95 {p95:.2} ms, {rps:.0} req/s, errors {errors}");
        results.push((label, p95, rps, errors));
    }
    server.stop();
    Ok(results)
}

/// p95 (ms), req/s and non-2xx answers of `path`, sending `header`.
fn measure(dir: &Path, addr: &str, path: &str, header: &str) -> Result<(f64, f64, u64)> {
    let (name, value) = header.split_once(": ").context("a header")?;
    let script = dir.join("pages.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.headers[\"{name}\"] = \"{value}\"\n\
             function done(summary, latency, requests)\n  \
               io.write(string.format(\"P95 %f\\nRPS %f\\nNON2XX %d\\n\", latency:percentile(95) / 1000, summary.requests / (summary.duration / 1e6), summary.errors.status))\n\
             end\n"
        ),
    )?;
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{CONNECTIONS}"), &format!("-d{SECONDS}s"), "-s"])
        .arg(&script)
        .arg(format!("http://{addr}{path}"))
        .output()
        .context("running wrk")?;
    check(out.status, "wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |label: &str| -> Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("wrk printed no {label}:\n{text}"))
    };
    Ok((value("P95 ")?, value("RPS ")?, value("NON2XX ")? as u64))
}

/// Signs in to the dashboard with the secret key; returns the session cookie
/// (`name=value`). A hand-written HTTP/1.1 request: the xtask has no client.
fn sign_in(addr: &str, secret: &str) -> Result<String> {
    let body = format!("secret_key={secret}");
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(
        stream,
        "POST /dashboard/sign-in HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .map(String::from)
        .with_context(|| format!("sign-in set no cookie:\n{answer}"))
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(bin: &Path, db: &str) -> Result<Server> {
        let mut child = Command::new(bin)
            .arg("--db")
            .arg(db)
            .args(["serve", "--addr", "127.0.0.1:0", "--client-requests-per-second", "0"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("listening on http://").map(String::from))
            .context("the collector did not start")?;
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server { child, addr: url })
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
