//! Static files compiled into the binary: the snippet (stage 1, stage 2 and
//! the wasm) and the demo merchant site. See `build.rs` for how they get here.

/// The shipped snippet, when it was built before the collector.
pub struct Snippet {
    /// `growsumo.js`, stage 1: served at `/v1/` on every page view, under a
    /// URL that never changes (see `http::loader` for its caching).
    pub loader: Encoded,
    pub loader_etag: &'static str,
    /// Stage 2 (`growsumo-<hash>.js`) and the wasm
    /// (`growsumo-<hash>.wasm`), each `(name, content type, file)`: cached
    /// forever, their names change with their content.
    pub immutable: &'static [(&'static str, &'static str, Encoded)],
}

/// One shipped file, precompressed at build time (`cargo xtask build`).
pub struct Encoded {
    pub identity: &'static [u8],
    pub gzip: &'static [u8],
    pub brotli: &'static [u8],
}

impl Encoded {
    /// The smallest variant the client accepts, with its `Content-Encoding`
    /// (None: identity). `accept` is the request's `Accept-Encoding`; a coding
    /// listed with `q=0` is refused.
    pub fn pick(&self, accept: &str) -> (&'static [u8], Option<&'static str>) {
        let accepts = |coding: &str| {
            accept.split(',').any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let name = parts.next().unwrap_or("");
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .or_else(|| p.strip_prefix("Q="))
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q == 0.0)
                });
                name.eq_ignore_ascii_case(coding) && !refused
            })
        };
        if accepts("br") {
            (self.brotli, Some("br"))
        } else if accepts("gzip") {
            (self.gzip, Some("gzip"))
        } else {
            (self.identity, None)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Encoded;

    const FILE: Encoded = Encoded {
        identity: b"plain",
        gzip: b"gz",
        brotli: b"br",
    };

    #[test]
    fn picks_the_smallest_accepted_coding() {
        assert_eq!(FILE.pick("gzip, deflate, br, zstd"), (&b"br"[..], Some("br")));
        assert_eq!(FILE.pick("gzip"), (&b"gz"[..], Some("gzip")));
        assert_eq!(FILE.pick("br;q=0, GZIP;q=0.5"), (&b"gz"[..], Some("gzip")));
        assert_eq!(FILE.pick("br;Q=0, gzip"), (&b"gz"[..], Some("gzip")));
        assert_eq!(FILE.pick(""), (&b"plain"[..], None));
        assert_eq!(FILE.pick("identity"), (&b"plain"[..], None));
    }
}
