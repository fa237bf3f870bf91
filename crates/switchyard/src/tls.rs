//! HTTPS for the data plane: builds a rustls acceptor from `server.tls` (PEM certificate
//! chain and key, HTTP/2 and HTTP/1.1 by ALPN). Problems name their YAML path, so
//! `switchyard check` reports them like any other config error.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use switchyard_config::{ConfigError, ConfigErrors, ServerTls};
use tokio_rustls::TlsAcceptor;

/// Reads the certificate and key and builds the acceptor.
pub fn acceptor(tls: &ServerTls) -> Result<TlsAcceptor, ConfigErrors> {
    let fail = |field: &str, message: String| {
        ConfigErrors(vec![ConfigError {
            path: format!("server.tls.{field}"),
            message,
        }])
    };
    let read = |field: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| fail(field, format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read("cert_file", &tls.cert_file)?;
    let key_pem = read("key_file", &tls.key_file)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("cert_file", format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(fail("cert_file", "no certificate found".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| fail("key_file", format!("not a PEM private key: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail("cert_file", format!("TLS setup failed: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| fail("key_file", format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
