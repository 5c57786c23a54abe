//! Builds the shipped snippet into `target/snippet-dist/`:
//! `growsumo.js` (the loader and wasm-bindgen's glue in one closure, served at
//! `/v1/`) and `growsumo-<hash>.wasm` (optimised, named by its content so it can
//! be cached forever), each beside its precompressed `.gz` and `.br` (made once
//! here, at maximum quality, so the collector never compresses per request).

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use wasm_bindgen_cli_support::Bindgen;

use crate::{cargo, check, root, target_dir, tools};

pub const LOADER_FILE: &str = "growsumo.js";

pub fn dist_dir() -> PathBuf {
    target_dir().join("snippet-dist")
}

pub fn build() -> Result<()> {
    tools::ensure_wasm_target()?;
    cargo(&[
        "build",
        "-p",
        "snippet",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm",
    ])?;
    let compiled = target_dir().join("wasm32-unknown-unknown/wasm/snippet.wasm");

    let bindgen_dir = target_dir().join("snippet-bindgen");
    Bindgen::new()
        .input_path(&compiled)
        .no_modules(true)?
        .typescript(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(&bindgen_dir)
        .context("wasm-bindgen")?;

    let optimised = bindgen_dir.join("snippet_opt.wasm");
    let status = Command::new(tools::wasm_opt()?)
        .arg("-Oz")
        .args([
            "--enable-bulk-memory",
            "--enable-reference-types",
            "--enable-nontrapping-float-to-int",
        ])
        .args(["--enable-sign-ext", "--enable-mutable-globals", "--enable-multivalue"])
        .arg(bindgen_dir.join("snippet_bg.wasm"))
        .arg("-o")
        .arg(&optimised)
        .status()
        .context("running wasm-opt")?;
    check(status, "wasm-opt")?;
    let wasm = fs::read(&optimised)?;
    let hash = Sha256::digest(&wasm);
    let wasm_file = format!("growsumo-{}.wasm", hex(&hash[..8]));

    let glue = fs::read_to_string(bindgen_dir.join("snippet.js"))?;
    let loader = fs::read_to_string(root().join("snippet/loader.js"))?.replace("__WASM_FILE__", &wasm_file);
    let script = minify(&format!("(function(){{\n{glue}\n{loader}}})();\n"))?;

    let dist = dist_dir();
    if dist.exists() {
        fs::remove_dir_all(&dist)?;
    }
    fs::create_dir_all(&dist)?;
    write_shipped(&dist.join(LOADER_FILE), script.as_bytes())?;
    write_shipped(&dist.join(&wasm_file), &wasm)?;
    Ok(())
}

/// Writes a shipped file and its `.gz` (gzip -9) and `.br` (brotli quality 11)
/// variants, which the collector picks by the request's `Accept-Encoding`.
fn write_shipped(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes)?;
    fs::write(with_suffix(path, "gz"), gzip(bytes)?)?;
    fs::write(with_suffix(path, "br"), brotli(bytes)?)?;
    Ok(())
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Minifies the loader script with terser (compress + mangle): the glue is
/// written for reading, and its comments and names are most of its bytes.
fn minify(script: &str) -> Result<String> {
    let source = target_dir().join("snippet-bindgen/growsumo.full.js");
    fs::write(&source, script)?;
    let out = Command::new(tools::terser()?)
        .arg(&source)
        .args(["--compress", "passes=2", "--mangle", "--ecma", "2020"])
        .output()
        .context("running terser")?;
    check(out.status, "terser")?;
    Ok(String::from_utf8(out.stdout)?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn brotli(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
    Ok(out)
}

/// Prints raw, gzip -9 and brotli bytes of every shipped file (the bytes on
/// the wire for each `Accept-Encoding`) and their total.
pub fn print_sizes() -> Result<()> {
    let mut files: Vec<PathBuf> = fs::read_dir(dist_dir())?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "js" || e == "wasm"));
    files.sort();
    let mut totals = [0; 3];
    println!("{:<32} {:>8} {:>8} {:>8}", "file", "raw", "gzip -9", "brotli");
    for file in files {
        let size = |path: &PathBuf| fs::metadata(path).map(|m| m.len());
        let (raw, gz, br) = (
            size(&file)?,
            size(&with_suffix(&file, "gz"))?,
            size(&with_suffix(&file, "br"))?,
        );
        println!(
            "{:<32} {:>8} {:>8} {:>8}",
            file.file_name().unwrap_or_default().to_string_lossy(),
            raw,
            gz,
            br
        );
        for (total, n) in totals.iter_mut().zip([raw, gz, br]) {
            *total += n;
        }
    }
    println!("{:<32} {:>8} {:>8} {:>8}", "total", totals[0], totals[1], totals[2]);
    Ok(())
}
