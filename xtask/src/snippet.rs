//! Builds the shipped snippet into `target/snippet-dist/`:
//! - `growsumo.js`, stage 1 (`snippet/stage1.js`, minified), served at `/v1/`
//!   on every page view;
//! - `growsumo-<hash>.js`, stage 2: `snippet/core.js` and wasm-bindgen's
//!   glue in one closure, loaded by stage 1 when a page view has work;
//! - `growsumo-<hash>.wasm` (optimised).
//!
//! Stage 2 and the wasm are named by their content, so they can be cached
//! forever. Each file sits beside its precompressed `.gz` and `.br` (made once
//! here, at maximum quality, so the collector never compresses per request).

use anyhow::{ensure, Context, Result};
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
    let out = Command::new(tools::wasm_opt()?)
        .arg("-Oz")
        // wasm-bindgen's import names are hashed (`__wbg_get_e6325ad374eff861`),
        // 54 of them, each in the wasm and the glue: about 2.5 KB gzip.
        // Binaryen renames imports, exports and the module to one or two
        // letters and prints the mapping, which `shorten_names` applies to
        // the glue.
        .arg("--minify-imports-and-exports-and-modules")
        // The target-features section only informs tools: 126 B gzip.
        .arg("--strip-target-features")
        .args([
            "--enable-bulk-memory",
            "--enable-reference-types",
            "--enable-nontrapping-float-to-int",
        ])
        .args(["--enable-sign-ext", "--enable-mutable-globals", "--enable-multivalue"])
        .arg(bindgen_dir.join("snippet_bg.wasm"))
        .arg("-o")
        .arg(&optimised)
        .output()
        .context("running wasm-opt")?;
    check(out.status, "wasm-opt")?;
    let wasm = fs::read(&optimised)?;
    let hash = Sha256::digest(&wasm);
    let wasm_file = format!("growsumo-{}.wasm", hex(&hash[..8]));

    let glue = shorten_names(&fs::read_to_string(bindgen_dir.join("snippet.js"))?, &out.stdout)?;
    let core = fs::read_to_string(root().join("snippet/core.js"))?.replace("__WASM_FILE__", &wasm_file);
    let core = minify(&format!("(function(){{\n{glue}\n{core}}})();\n"), "core")?;
    let core_file = format!("growsumo-{}.js", hex(&Sha256::digest(core.as_bytes())[..6]));
    let stage1 = fs::read_to_string(root().join("snippet/stage1.js"))?.replace("__CORE_FILE__", &core_file);
    let stage1 = minify(&stage1, "stage1")?;

    let dist = dist_dir();
    if dist.exists() {
        fs::remove_dir_all(&dist)?;
    }
    fs::create_dir_all(&dist)?;
    write_shipped(&dist.join(LOADER_FILE), stage1.as_bytes())?;
    write_shipped(&dist.join(&core_file), core.as_bytes())?;
    write_shipped(&dist.join(&wasm_file), &wasm)?;
    Ok(())
}

/// Applies binaryen's mapping (`{"imports": [[module, name, short]…],
/// "exports": [[name, short]…]}`) to wasm-bindgen's glue: the import
/// object's keys, its module (one, renamed `a`), and the glue's `wasm.<export>`
/// calls. Each name must be found where expected: a glue that changed shape
/// fails the build rather than shipping a module that cannot link.
fn shorten_names(glue: &str, mapping: &[u8]) -> Result<String> {
    let mapping: serde_json::Value = serde_json::from_slice(mapping).context("wasm-opt's name mapping")?;
    let imports: Vec<(String, String, String)> =
        serde_json::from_value(mapping["imports"].clone()).context("wasm-opt's import mapping")?;
    let exports: Vec<(String, String)> =
        serde_json::from_value(mapping["exports"].clone()).context("wasm-opt's export mapping")?;
    let module = &imports.first().context("the wasm imports nothing")?.0;
    ensure!(
        imports.iter().all(|(m, _, _)| m == module),
        "the wasm should import from one module: shorten_names renames one"
    );
    let mut glue = replace_once(glue, &format!("\"{module}\": import0"), "\"a\": import0")?;
    for (_, name, short) in &imports {
        glue = replace_once(&glue, &format!(" {name}: function"), &format!(" {short}: function"))?;
    }
    for (name, short) in &exports {
        glue = replace_member(&glue, &format!("wasm.{name}"), &format!("wasm.{short}"));
        // Left under its long name (reached another way than `wasm.x`, e.g.
        // `wasm["x"]`), a wasm-bindgen export would be undefined at run time.
        // (The JS-facing ones, `init`, `next`…, name the glue's own
        // functions too.)
        ensure!(
            !name.starts_with("__") || !glue.contains(name.as_str()),
            "the glue still names `{name}` after shortening"
        );
    }
    ensure!(
        !glue.contains(module.as_str()),
        "the glue still names module `{module}`"
    );
    Ok(glue)
}

/// `text` with every `from` that is a whole member access (`wasm.init`, not
/// `wasm.init_x`) replaced by `to`.
fn replace_member(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        out.push_str(&rest[..at]);
        let longer = after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(if longer { from } else { to });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    ensure!(text.matches(from).count() == 1, "the glue should hold `{from}` once");
    Ok(text.replacen(from, to, 1))
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

/// Minifies a script with terser (compress + mangle): the sources and the
/// glue are written for reading, and their comments and names are most of
/// their bytes. `name` names the unminified copy kept for reading.
fn minify(script: &str, name: &str) -> Result<String> {
    let source = target_dir().join(format!("snippet-bindgen/{name}.full.js"));
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
/// the wire for each `Accept-Encoding`), and of each stage: stage 1 is what
/// every page view downloads, stages 1 and 2 what a page view with work does.
pub fn print_sizes() -> Result<()> {
    let mut files: Vec<PathBuf> = fs::read_dir(dist_dir())?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "js" || e == "wasm"));
    files.sort_by_key(|p| !p.ends_with(LOADER_FILE));
    let (mut stage1, mut both) = ([0; 3], [0; 3]);
    let row = |label: &str, sizes: [u64; 3]| {
        println!("{label:<40} {:>8} {:>8} {:>8}", sizes[0], sizes[1], sizes[2]);
    };
    println!("{:<40} {:>8} {:>8} {:>8}", "file", "raw", "gzip -9", "brotli");
    for file in files {
        let size = |path: &PathBuf| fs::metadata(path).map(|m| m.len());
        let sizes = [
            size(&file)?,
            size(&with_suffix(&file, "gz"))?,
            size(&with_suffix(&file, "br"))?,
        ];
        let first = file.ends_with(LOADER_FILE);
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        row(
            &format!("{} {name}", if first { "stage 1:" } else { "stage 2:" }),
            sizes,
        );
        for i in 0..3 {
            both[i] += sizes[i];
            if first {
                stage1[i] += sizes[i];
            }
        }
    }
    row("stage 1 (every page view)", stage1);
    row("stage 1 + 2 (a page view with work)", both);
    Ok(())
}
