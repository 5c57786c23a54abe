//! The certificates the collector trusts when it is a TLS client (of
//! PostgreSQL with `sslmode=verify-full`, of webhook endpoints): Mozilla's
//! roots (webpki-roots, the same on every machine), plus those in a PEM
//! file the operator names (a private CA).

use anyhow::{Context, Result};
use rustls::pki_types::{pem::PemObject, CertificateDer};

/// Mozilla's roots, and every certificate in the PEM file `extra`.
pub fn roots(extra: Option<&str>) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra {
        for cert in CertificateDer::pem_file_iter(path).with_context(|| format!("reading {path}"))? {
            roots.add(cert.with_context(|| format!("reading {path}"))?)?;
        }
    }
    Ok(roots)
}
