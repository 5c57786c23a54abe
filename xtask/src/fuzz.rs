//! `cargo xtask fuzz`: runs the collector's cargo-fuzz targets for a bounded
//! time and prints executions and crashes. Not part of `test` (CI's critical
//! path); run it before a release or after touching the decoder.
//!
//! cargo-fuzz needs nightly-only compiler flags; `RUSTC_BOOTSTRAP=1` lets the
//! pinned stable toolchain accept them, since no other toolchain can be fetched.

use anyhow::{bail, Context, Result};
use std::process::Command;

use crate::{check, root, target_dir};

const TARGET: &str = "decode_batch";

pub fn run(seconds: u32) -> Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("xtask: installing cargo-fuzz");
        check(
            Command::new("cargo")
                .args(["install", "cargo-fuzz", "--locked"])
                .status()?,
            "cargo install cargo-fuzz",
        )?;
    }
    let corpus = target_dir().join("fuzz-corpus").join(TARGET);
    std::fs::create_dir_all(&corpus)?;
    let out = Command::new("cargo")
        .args(["fuzz", "run", TARGET])
        .arg(&corpus)
        .arg(root().join("fuzz/seeds").join(TARGET))
        .args(["--", &format!("-max_total_time={seconds}"), "-print_final_stats=1"])
        .current_dir(root())
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .context("running cargo fuzz")?;
    let log = String::from_utf8_lossy(&out.stderr);
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let executions = stat("stat::number_of_executed_units:");
    let crashed = !out.status.success();
    println!(
        "fuzz {TARGET}: {seconds} s, {executions} executions, {} crashes",
        u8::from(crashed)
    );
    if crashed {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        bail!("the fuzzer found a crash: see fuzz/artifacts/{TARGET}/");
    }
    if executions == 0 {
        bail!("the fuzzer ran no input:\n{log}");
    }
    Ok(())
}
