//! [`Destination`]: where an upstream request goes — scheme, host and port (the
//! connection pool's key), the trust its TLS uses, the proxy it goes through, and the
//! path — parsed once when a config is loaded, never per request.

use super::proxy::ProxyHop;
use http::{HeaderValue, Uri};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;

/// Why a URL or a CA file cannot make a [`Destination`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not an `http://` or `https://` URL with a valid host.
    #[error("{0}")]
    Url(&'static str),
    /// The host is not a valid DNS name or IP address.
    #[error("`{0}` is not a valid host name")]
    Host(String),
    /// The CA file holds no usable certificate.
    #[error("{0}")]
    Certificate(String),
    /// rustls refused the configuration.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The proxy's credentials cannot be sent in a header.
    #[error("the proxy credentials are not a valid header value")]
    ProxyCredentials,
}

/// Where requests go: scheme, host and port (the pool key), plus the path.
#[derive(Clone)]
pub struct Destination {
    pub(super) key: ConnKey,
    /// A connector with extra trusted roots (`ca_file`), instead of the default.
    pub(super) tls: Option<TlsConnector>,
    /// The HTTP proxy connections go through (`None`: direct).
    pub(super) proxy: Option<ProxyHop>,
    pub(super) server_name: ServerName<'static>,
    pub(super) host_header: HeaderValue,
    pub(super) path: String,
    /// Longest a connection used for it waits in the pool ([`super::idle::IDLE_FOR`]
    /// unless [`Destination::keeping_idle`] says otherwise).
    pub(super) idle_for: Duration,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("key", &self.key)
            .field("path", &"…")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ConnKey {
    pub(super) tls: bool,
    pub(super) host: Arc<str>,
    pub(super) port: u16,
    /// 0 for the bundled roots, else an id of the extra roots (connections verified
    /// against different trust are never shared).
    pub(super) trust: u64,
    /// 0 for direct, else [`ProxyHop::pool_id`] (tunnelled, proxied and direct
    /// connections never mix).
    pub(super) proxy: u64,
}

impl Destination {
    /// The request target sent on the wire: path and query (which may hold a key, so
    /// `Debug` leaves it out).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The same destination (host, TLS, proxy, pool) with another request target.
    pub fn with_path(&self, path: String) -> Self {
        let mut d = self.clone();
        d.path = path;
        d
    }

    /// Connections used for this target idle in the pool at most `idle_for` (less when
    /// the upstream's `Keep-Alive: timeout` says so).
    pub fn keeping_idle(mut self, idle_for: Duration) -> Self {
        self.idle_for = idle_for;
        self
    }

    /// Connects through the HTTP proxy at `host:port`, sending `authorization` (a
    /// `Basic …` value) as `Proxy-Authorization` when given.
    pub fn via_proxy(
        mut self,
        host: &str,
        port: u16,
        authorization: Option<&str>,
    ) -> Result<Self, DestinationError> {
        let authorization = match authorization {
            Some(a) => {
                let mut v = HeaderValue::from_str(a)
                    .map_err(|_discarded| DestinationError::ProxyCredentials)?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let hop = ProxyHop {
            host: Arc::from(host),
            port,
            authorization,
        };
        self.key.proxy = hop.pool_id();
        self.proxy = Some(hop);
        Ok(self)
    }

    /// Verifies this target against `roots` and the CA certificates in `pem`, when
    /// that is not the client's default (both root sets, nothing extra).
    pub fn trusting(mut self, roots: Roots, pem: Option<&[u8]>) -> Result<Self, DestinationError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        use std::hash::{Hash, Hasher};
        if roots == Roots::Both && pem.is_none() {
            return Ok(self);
        }
        let mut store = root_store(roots);
        if let Some(pem) = pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    DestinationError::Certificate(format!("not a PEM certificate: {e}"))
                })?;
                store.add(cert).map_err(|e| {
                    DestinationError::Certificate(format!("certificate rejected: {e}"))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(DestinationError::Certificate(
                    "no certificate found".to_owned(),
                ));
            }
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (roots, pem).hash(&mut h);
        self.key.trust = h.finish() | 1;
        self.tls = Some(connector(store)?);
        Ok(self)
    }

    /// From a full `http://` or `https://` URL (query included).
    pub fn from_uri(uri: &Uri) -> Result<Self, DestinationError> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(DestinationError::Url(
                    "the URL must start with http:// or https://",
                ))
            }
        };
        let host = uri
            .host()
            .ok_or(DestinationError::Url("the URL has no host"))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare.to_owned())
            .map_err(|_discarded| DestinationError::Host(host.to_owned()))?;
        let host_header = match uri.port_u16() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(Self {
            key: ConnKey {
                tls,
                host: Arc::from(bare),
                port,
                trust: 0,
                proxy: 0,
            },
            tls: None,
            proxy: None,
            server_name,
            host_header: HeaderValue::from_str(&host_header)
                .map_err(|_discarded| DestinationError::Host(host.to_owned()))?,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            idle_for: super::idle::IDLE_FOR,
        })
    }
}

/// Root certificates to verify upstreams against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Roots {
    /// The Mozilla roots built into the binary.
    Bundled,
    /// The system's store; `SSL_CERT_FILE` / `SSL_CERT_DIR` replace it when set.
    System,
    /// Both (the client's default).
    Both,
}

/// The client's default roots: bundled and system.
pub(super) fn default_roots() -> rustls::RootCertStore {
    root_store(Roots::Both)
}

fn root_store(roots: Roots) -> rustls::RootCertStore {
    let mut store = rustls::RootCertStore::empty();
    if roots != Roots::System {
        store.roots = webpki_roots::TLS_SERVER_ROOTS.to_vec();
    }
    if roots != Roots::Bundled {
        // Certificates the store cannot use are skipped, as other TLS clients do.
        let (added, ignored) = store.add_parsable_certificates(system_certs().iter().cloned());
        tracing::debug!(added, ignored, "system root certificates");
    }
    store
}

/// The system's root certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` first), read once.
fn system_certs() -> &'static [rustls::pki_types::CertificateDer<'static>] {
    static CERTS: std::sync::OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> =
        std::sync::OnceLock::new();
    CERTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "could not read a system root certificate source");
        }
        found.certs
    })
}

pub(super) fn connector(roots: rustls::RootCertStore) -> Result<TlsConnector, DestinationError> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DestinationError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}
