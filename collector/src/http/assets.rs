//! Static files compiled into the binary: the snippet (loader + wasm) and the
//! demo merchant site. See `build.rs` for how they get here.

/// The shipped snippet, when it was built before the collector.
pub struct Snippet {
    /// `growsumo.js`: served at `/v1/`, revalidated on every use (ETag), since
    /// its URL never changes.
    pub loader: &'static [u8],
    pub loader_etag: &'static str,
    /// `growsumo-<content hash>.wasm`: cached forever, its name changes with it.
    pub wasm_name: &'static str,
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// A demo page by file name, with its content type.
pub fn demo_file(name: &str) -> Option<(&'static str, &'static [u8])> {
    let (_, bytes) = DEMO.iter().find(|(file, _)| *file == name)?;
    let content_type = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "application/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    Some((content_type, bytes))
}
