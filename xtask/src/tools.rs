//! Installs what a fresh machine lacks: the wasm32 target (rustup), the wasm
//! optimiser (npm `binaryen`: Debian's wasm-opt 108 silently breaks wasm-bindgen's
//! output), headless Chromium with its driver, nginx and openssl (the tests'
//! merchant web server and its certificate), PostgreSQL (the second store's
//! tests) and wrk (Debian's packages, as root).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

use crate::{check, target_dir};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The optimiser version measured to work with wasm-bindgen 0.2.130.
const BINARYEN: &str = "binaryen@132.0.0";
/// The JS minifier for the loader and wasm-bindgen's glue.
const TERSER: &str = "terser@5.51.2";

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn ensure_wasm_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is needed to add the wasm32 target")?;
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        eprintln!("xtask: installing the {WASM_TARGET} target");
        check(
            Command::new("rustup").args(["target", "add", WASM_TARGET]).status()?,
            "rustup target add",
        )?;
    }
    Ok(())
}

/// The path of a working `wasm-opt`, installed from npm on first use.
pub fn wasm_opt() -> Result<PathBuf> {
    npm_tool("wasm-opt")
}

/// The path of `terser`, installed from npm on first use.
pub fn terser() -> Result<PathBuf> {
    npm_tool("terser")
}

/// Installs the pinned npm tools into target/tools (once) and returns `bin`'s path.
fn npm_tool(bin: &str) -> Result<PathBuf> {
    let prefix = target_dir().join("tools");
    let path = prefix.join("node_modules/.bin").join(bin);
    if !path.exists() {
        eprintln!("xtask: installing {BINARYEN} and {TERSER} with npm");
        std::fs::create_dir_all(&prefix)?;
        let status = Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .args([BINARYEN, TERSER])
            .status()
            .context("npm (from Node.js) is needed to install wasm-opt and terser")?;
        check(status, "npm install")?;
    }
    Ok(path)
}

/// Makes sure `chromium` and `chromedriver` are on the PATH for the browser tests.
pub fn ensure_browser() -> Result<()> {
    apt_install(&["chromium", "chromedriver"], &["chromium", "chromium-driver"])
}

/// Makes sure `nginx` and `openssl` are installed: the browser tests serve
/// the merchant's pages (http and https) from a real nginx.
pub fn ensure_web_server() -> Result<()> {
    apt_install(&["nginx", "openssl"], &["nginx", "openssl"])
}

/// Makes sure Debian's PostgreSQL server is installed: the tests start
/// throwaway clusters of their own (`initdb` under `target/`), so the
/// package is told not to create and start one of its own.
pub fn ensure_postgres() -> Result<()> {
    if postgres_installed() {
        return Ok(());
    }
    let conf = std::path::Path::new("/etc/postgresql-common/createcluster.conf");
    if !conf.exists() && root()? {
        std::fs::create_dir_all("/etc/postgresql-common")?;
        std::fs::write(conf, "create_main_cluster = false\n")?;
    }
    apt_get_install(&["postgresql"])
}

/// Whether a PostgreSQL server's `initdb` is in Debian's place for it.
fn postgres_installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| versions.flatten().any(|v| v.path().join("bin/initdb").is_file()))
        .unwrap_or(false)
}

fn root() -> Result<bool> {
    Ok(output(Command::new("id").arg("-u"))?.trim() == "0")
}

/// Installs Debian `packages` unless every command in `commands` is on the
/// PATH (or in /usr/sbin, where Debian puts servers).
fn apt_install(commands: &[&str], packages: &[&str]) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push("/usr/sbin".into());
    let have = |name: &&str| dirs.iter().any(|dir| dir.join(name).is_file());
    if commands.iter().all(have) {
        return Ok(());
    }
    apt_get_install(packages)
}

fn apt_get_install(packages: &[&str]) -> Result<()> {
    let list = packages.join(" ");
    if !root()? {
        bail!("this needs Debian's {list}: run `sudo apt-get install -y {list}`, then try again");
    }
    eprintln!("xtask: installing {list} with apt-get");
    check(Command::new("apt-get").arg("update").status()?, "apt-get update")?;
    check(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?,
        &format!("apt-get install {list}"),
    )
}

/// Makes sure `wrk` (the load generator of `cargo xtask bench`) is installed.
pub fn ensure_wrk() -> Result<()> {
    apt_install(&["wrk"], &["wrk"])
}
