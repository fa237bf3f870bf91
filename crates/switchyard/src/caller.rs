//! [`Caller`]: who is calling, as `auth` established it — the gateway key used, or a
//! keyed hash of the presented token, and the peer address. Plugins and limits key on
//! it; it never holds a key value.

use std::net::IpAddr;
use std::sync::Arc;
use switchyard_config::ClientKey;

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The gateway key used, when keys are configured.
    pub key: Option<Arc<ClientKey>>,
    /// Keyed hash of the presented bearer token (stable within the process).
    pub token_hash: Option<u64>,
    /// Peer address.
    pub ip: IpAddr,
}

impl Caller {
    /// The key name, if the caller used a gateway key.
    pub fn key_name(&self) -> Option<&str> {
        self.key.as_ref().map(|k| &*k.name)
    }

    /// A stable identity for per-key limits: the key name, else the token hash, else
    /// `anonymous`.
    pub fn limit_key(&self) -> String {
        match (&self.key, self.token_hash) {
            (Some(k), _) => format!("key:{}", k.name),
            (None, Some(h)) => format!("token:{h:016x}"),
            (None, None) => "anonymous".to_owned(),
        }
    }
}
