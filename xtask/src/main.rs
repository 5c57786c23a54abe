//! `cargo xtask`: builds, runs and tests the whole project with one command each.
//!
//! Build orchestration is Rust, not shell (the `cargo xtask` pattern): the snippet
//! needs a wasm build, wasm-bindgen (as a library, so nothing is installed by hand),
//! wasm-opt and a content hash before the collector can embed it. `tools` installs
//! whatever a fresh machine lacks; `snippet` builds the shipped files.

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
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Build => {
            snippet::build()?;
            cargo(&["build", "--release", "-p", "collector"])
        }
        Task::Run { args } => {
            snippet::build()?;
            cargo(&["build", "--release", "-p", "collector"])?;
            let bin = target_dir().join("release/collector");
            let status = Command::new(&bin)
                .args(["serve", "--demo"])
                .args(args)
                .status()
                .with_context(|| format!("starting {}", bin.display()))?;
            check(status, "collector")
        }
        Task::Test => {
            tools::ensure_browser()?;
            snippet::build()?;
            cargo(&["fmt", "--all", "--check"])?;
            cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])?;
            cargo(&["build", "-p", "collector"])?;
            cargo(&["test", "--workspace"])
        }
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

pub fn check(status: std::process::ExitStatus, what: &str) -> Result<()> {
    if !status.success() {
        bail!("`{what}` failed ({status})");
    }
    Ok(())
}
