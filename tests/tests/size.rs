//! The snippet's size budget: every visitor of every merchant page downloads
//! it. Deterministic (bytes of the built files), so a test may hold it;
//! `cargo xtask size` prints the same figures per file.

use std::io::Write;

/// gzip -9 bytes of loader + glue + wasm together. Measured 30,419 B when
/// set (with attribution: fingerprint, site-wide cookies, consent, settings,
/// form capture; and for real merchant sites: an outbox entry per event,
/// single-page-app navigations, start-failure reports). Lower it when the
/// snippet shrinks.
const BUDGET_GZIP: usize = 31_000;

fn gzip_len(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap().len()
}

#[test]
fn shipped_snippet_fits_its_budget() {
    let dist = std::env::var_os("SNIPPET_DIST")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| e2e::target_dir().join("snippet-dist"));
    let files: Vec<_> = std::fs::read_dir(&dist)
        .unwrap_or_else(|_| panic!("no built snippet in {}: run `cargo xtask test`", dist.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "js" || e == "wasm"))
        .collect();
    assert!(
        files.iter().any(|p| p.ends_with("growsumo.js")),
        "loader missing in {files:?}"
    );
    assert!(
        files.iter().any(|p| p.extension().is_some_and(|e| e == "wasm")),
        "wasm missing in {files:?}"
    );
    let total: usize = files.iter().map(|p| gzip_len(&std::fs::read(p).unwrap())).sum();
    assert!(
        total <= BUDGET_GZIP,
        "the snippet is {total} B gzip, over its {BUDGET_GZIP} B budget"
    );
}
