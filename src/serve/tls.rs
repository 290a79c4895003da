//! Optional TLS for `bess serve` (rustls), from PEM files named in `[serve]`.

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

/// A TLS acceptor for the certificate chain and key in these PEM files.
pub fn acceptor(certificate: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let mode = std::fs::metadata(key)
        .with_context(|| format!("cannot read the TLS key {}", key.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the TLS key {} is readable by group or others (mode {:o}); run chmod 600 {}",
            key.display(),
            mode & 0o777,
            key.display()
        );
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect())
        .with_context(|| format!("{}: not a PEM certificate chain", certificate.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", certificate.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{}: not a PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not match")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
