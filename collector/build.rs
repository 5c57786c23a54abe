//! Embeds the built snippet (`target/snippet-dist/`, made by `cargo xtask build`)
//! and the demo site (`www-demo/`) into the collector binary, so one file serves
//! everything. Without a built snippet the collector still builds, and `/v1/`
//! answers with an error that says to run `cargo xtask build`.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap();
    println!("cargo:rerun-if-env-changed=SNIPPET_DIST");
    let dist = env::var_os("SNIPPET_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/snippet-dist"));
    let demo = workspace.join("www-demo");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-changed={}", demo.display());

    let mut out = String::new();
    out.push_str(&snippet(&dist));
    out.push_str("pub const DEMO: &[(&str, &[u8])] = &[\n");
    for path in files(&demo) {
        let name = path.file_name().unwrap().to_string_lossy();
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(out, "    ({name:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    fs::write(PathBuf::from(env::var("OUT_DIR").unwrap()).join("assets.rs"), out).unwrap();
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn snippet(dist: &Path) -> String {
    let loader = dist.join("growsumo.js");
    // Stage 2 (`growsumo-<hash>.js`) and the wasm, named by content.
    let hashed: Vec<PathBuf> = files(dist)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("growsumo-") && (name.ends_with(".wasm") || name.ends_with(".js"))
        })
        .collect();
    let complete = |file: &Path| {
        [".gz", ".br"]
            .iter()
            .all(|s| Path::new(&format!("{}{s}", file.display())).exists())
    };
    let built = loader.exists() && hashed.len() == 2 && complete(&loader) && hashed.iter().all(|f| complete(f));
    if !built {
        println!(
            "cargo:warning=no complete built snippet in {}: run `cargo xtask build` (the collector will answer /v1/ with an error)",
            dist.display()
        );
        return "pub const SNIPPET: Option<Snippet> = None;\n".into();
    }
    let mut hasher = DefaultHasher::new();
    hasher.write(&fs::read(&loader).unwrap());
    let mut immutable = String::new();
    for file in &hashed {
        let name = file.file_name().unwrap().to_string_lossy();
        let content_type = if name.ends_with(".wasm") {
            "application/wasm"
        } else {
            "application/javascript; charset=utf-8"
        };
        write!(immutable, "({name:?}, {content_type:?}, {}), ", encoded(file)).unwrap();
    }
    format!(
        "pub const SNIPPET: Option<Snippet> = Some(Snippet {{ loader: {}, loader_etag: \"\\\"{:016x}\\\"\", immutable: &[{immutable}] }});\n",
        encoded(&loader),
        hasher.finish(),
    )
}

/// A shipped file with the `.gz` and `.br` variants `cargo xtask build` made
/// beside it, as an `Encoded` literal.
fn encoded(file: &Path) -> String {
    let variant = |suffix: &str| {
        let path = PathBuf::from(format!("{}{suffix}", file.display()));
        println!("cargo:rerun-if-changed={}", path.display());
        format!("include_bytes!({:?})", path.display().to_string())
    };
    format!(
        "Encoded {{ identity: {}, gzip: {}, brotli: {} }}",
        variant(""),
        variant(".gz"),
        variant(".br")
    )
}
