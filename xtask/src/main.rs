//! `cargo xtask`: builds, runs and tests the whole project with one command each.
//!
//! Build orchestration is Rust, not shell (the `cargo xtask` pattern): the snippet
//! needs a wasm build, wasm-bindgen (as a library, so nothing is installed by hand),
//! wasm-opt and a content hash before the collector can embed it. `tools` installs
//! whatever a fresh machine lacks; `snippet` builds the shipped files.

mod bench;
mod fuzz;
mod pages;
mod snippet;
mod tools;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Parser)]
#[command(about = "Build, run and test the growsumo collector and snippet")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the snippet and a release collector that embeds it.
    Build,
    /// Build everything, then run the collector with the demo site on ./growsumo.db.
    Run {
        /// Extra arguments for `collector serve` (e.g. `--addr 0.0.0.0:8080`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Install what is missing, build, lint and run every test (unit, HTTP, browser).
    Test,
    /// Build the snippet and print the raw and gzip bytes of each shipped file.
    Size,
    /// Fuzz the event decoder for a bounded time; prints executions and crashes.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u32,
    },
    /// Run a benchmark and print its figures (not part of `test`).
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Ingest req/s and latency: HTTP only vs durable, on empty, 1 M and 10 M event databases.
    Ingest {
        /// One short run each, 100 k / 10 k prefill: checks the benchmark works.
        #[arg(long)]
        quick: bool,
        /// `postgres`: durable ingest on PostgreSQL with one and two
        /// collectors, beside SQLite's, in the same run.
        #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
        db: String,
    },
    /// p95 of the dashboard's pages and the API's lists on 1 M customers and 10 M events.
    Pages {
        /// 100 k customers and 1 M events: checks the benchmark works.
        #[arg(long)]
        quick: bool,
        /// `postgres`: the same pages on PostgreSQL too (the data moved
        /// there by `collector migrate`).
        #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
        db: String,
    },
    /// Outgoing webhooks to a receiver on loopback: latency from change
    /// to receipt (p50, p99) and the dispatcher's messages per second.
    Webhooks {
        /// `postgres`: on PostgreSQL too.
        #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
        db: String,
    },
    /// The snippet in headless Chromium: time to `growsumo` and to the
    /// referral, long tasks, and requests, on a plain page view and a partner
    /// landing.
    Snippet,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::Build => {
            snippet::build()?;
            cargo(&["build", "--release", "-p", "collector"])
        }
        Task::Run { args } => {
            snippet::build()?;
            cargo(&["build", "--release", "-p", "collector"])?;
            let bin = target_dir().join("release/collector");
            let status = Command::new(&bin)
                .args(["serve", "--demo", "--create"])
                .args(args)
                .status()
                .with_context(|| format!("starting {}", bin.display()))?;
            check(status, "collector")
        }
        Task::Test => {
            tools::ensure_browser()?;
            tools::ensure_web_server()?;
            tools::ensure_postgres()?;
            snippet::build()?;
            cargo(&["fmt", "--all", "--check"])?;
            cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
            cargo(&["build", "-p", "collector"])?;
            test_workspace()
        }
        Task::Bench {
            which: Bench::Ingest { quick, db },
        } => bench::ingest(quick, db == "postgres"),
        Task::Bench {
            which: Bench::Pages { quick, db },
        } => pages::run(quick, db == "postgres"),
        Task::Bench {
            which: Bench::Webhooks { db },
        } => bench::webhooks(db == "postgres"),
        Task::Bench { which: Bench::Snippet } => {
            tools::ensure_browser()?;
            tools::ensure_web_server()?;
            snippet::build()?;
            snippet::print_sizes()?;
            cargo(&["build", "-p", "collector"])?;
            cargo(&["run", "-p", "e2e", "--example", "snippet_bench"])
        }
        Task::Fuzz { seconds } => fuzz::run(seconds),
        Task::Size => {
            snippet::build()?;
            snippet::print_sizes()
        }
    }
}

/// The workspace root (the parent of this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Runs cargo in the workspace root; the collector's build script and the tests
/// find the built snippet through `SNIPPET_DIST`.
pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .env("SNIPPET_DIST", snippet::dist_dir())
        .status()
        .context("running cargo")?;
    check(status, &format!("cargo {}", args.join(" ")))
}

/// Runs every test of the workspace, echoing cargo's output, then prints the
/// attribution scenario and deployment shape tables and ends with one summary line over all test
/// binaries (`tests: N passed, M failed`).
fn test_workspace() -> Result<()> {
    // Every test on SQLite; then the end-to-end suites again on PostgreSQL,
    // but for what only SQLite has (tests/tests/sqlite.rs), the snippet's
    // bytes (size.rs) and several collectors on one PostgreSQL
    // (scale_out.rs: on PostgreSQL already in the first pass).
    let everything = ["test", "--workspace", "--all-targets", "--no-fail-fast"];
    let mut on_postgres = vec!["test".to_owned(), "-p".into(), "e2e".into(), "--no-fail-fast".into()];
    for entry in std::fs::read_dir(root().join("tests/tests"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(suite) = name
            .strip_suffix(".rs")
            .filter(|s| !["sqlite", "size", "scale_out"].contains(s))
        {
            on_postgres.extend(["--test".into(), suite.to_owned()]);
        }
    }
    let on_postgres: Vec<&str> = on_postgres.iter().map(String::as_str).collect();
    let (sqlite_passed, sqlite_failed, sqlite_ok) = test_pass("SQLite", &everything, None)?;
    let (pg_passed, pg_failed, pg_ok) = test_pass("PostgreSQL", &on_postgres, Some("postgres"))?;
    println!("tests on SQLite: {sqlite_passed} passed, {sqlite_failed} failed");
    println!("tests on PostgreSQL: {pg_passed} passed, {pg_failed} failed");
    println!(
        "tests: {} passed, {} failed",
        sqlite_passed + pg_passed,
        sqlite_failed + pg_failed
    );
    if !(sqlite_ok && pg_ok) {
        bail!("cargo test failed");
    }
    Ok(())
}

/// Runs `cargo ARGS` with the suites' database backend (`GROWSUMO_TEST_DB`);
/// returns the tests passed and failed, and whether cargo succeeded.
fn test_pass(backend: &str, args: &[&str], test_db: Option<&str>) -> Result<(usize, usize, bool)> {
    use std::io::{BufRead, BufReader};
    // Written by the attribution and deployment suites (tests/tests/).
    let tables = [
        ("attribution scenarios", target_dir().join("attribution-scenarios.txt")),
        ("deployment shapes", target_dir().join("deployment-shapes.txt")),
    ];
    for (_, file) in &tables {
        let _ = std::fs::remove_file(file);
    }
    println!("xtask: the tests on {backend}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(args)
        .current_dir(root())
        .env("SNIPPET_DIST", snippet::dist_dir())
        .stdout(std::process::Stdio::piped());
    match test_db {
        Some(db) => command.env("GROWSUMO_TEST_DB", db),
        None => command.env_remove("GROWSUMO_TEST_DB"),
    };
    let mut child = command.spawn().context("running cargo test")?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(counts) = line.strip_prefix("test result: ") {
            let count = |word: &str| -> usize {
                counts
                    .split(['.', ';'])
                    .find_map(|part| part.trim().strip_suffix(word)?.trim().parse().ok())
                    .unwrap_or(0)
            };
            passed += count(" passed");
            failed += count(" failed");
        }
    }
    let status = child.wait()?;
    for (title, file) in &tables {
        if let Ok(table) = std::fs::read_to_string(file) {
            println!("\n{title} ({backend}):\n{table}");
        }
    }
    Ok((passed, failed, status.success()))
}

pub fn check(status: std::process::ExitStatus, what: &str) -> Result<()> {
    if !status.success() {
        bail!("`{what}` failed ({status})");
    }
    Ok(())
}
