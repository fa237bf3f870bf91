//! Who is calling. With `keys:` configured, every data-plane request must carry one of
//! them as `Authorization: Bearer …` (else 401); without, callers are anonymous and
//! told apart (for per-key limits) by a keyed hash of whatever bearer token they sent.
//! Key values never leave this module except as that hash ([`Caller`] carries it).

use crate::caller::Caller;
use crate::error::GatewayError;
use http::{header, HeaderMap};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use switchyard_config::ClientKey;

/// Configured client keys, by value. Its `Debug` shows key names only.
#[derive(Default)]
pub struct Keys {
    by_value: HashMap<String, Arc<ClientKey>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.by_value.values().map(|k| &*k.name).collect();
        names.sort_unstable();
        f.debug_struct("Keys").field("names", &names).finish()
    }
}

impl Keys {
    /// Indexes the configured keys.
    pub fn new(keys: &[ClientKey]) -> Self {
        Self {
            by_value: keys
                .iter()
                .map(|k| (k.key.expose().to_owned(), Arc::new(k.clone())))
                .collect(),
        }
    }

    /// Identifies the caller, or refuses a missing / unknown key when keys are on.
    pub fn authenticate(&self, headers: &HeaderMap, ip: IpAddr) -> Result<Caller, GatewayError> {
        let token = bearer(headers);
        let token_hash = token.map(hash_token);
        if self.by_value.is_empty() {
            return Ok(Caller {
                key: None,
                token_hash,
                ip,
            });
        }
        let key = token
            .and_then(|t| self.by_value.get(t))
            .ok_or(GatewayError::Unauthorized)?;
        Ok(Caller {
            key: Some(key.clone()),
            token_hash,
            ip,
        })
    }

    /// Whether keys are required.
    pub fn enabled(&self) -> bool {
        !self.by_value.is_empty()
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn hash_token(token: &str) -> u64 {
    static STATE: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut h = STATE.get_or_init(Default::default).build_hasher();
    h.write(token.as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use switchyard_config::Secret;

    fn key(name: &str, value: &str) -> ClientKey {
        ClientKey {
            name: name.into(),
            key: Secret::new(value),
            user: Some("u@example.com".into()),
            groups: Arc::from(vec!["eng".to_owned()]),
        }
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn without_keys_callers_are_anonymous_but_distinguishable() {
        let keys = Keys::new(&[]);
        // Tokens with letters a hex hash never holds, so "not contained" cannot pass or
        // fail by chance.
        let a = keys.authenticate(&headers("Bearer sk-zzz"), IP).unwrap();
        let b = keys.authenticate(&headers("Bearer sk-yyy"), IP).unwrap();
        assert_ne!(a.limit_key(), b.limit_key());
        assert!(!a.limit_key().contains("zzz"));
        let none = keys.authenticate(&HeaderMap::new(), IP).unwrap();
        assert_eq!(none.limit_key(), "anonymous");
    }

    #[test]
    fn with_keys_a_known_key_is_required() {
        let keys = Keys::new(&[key("alice", "sk-alice-123")]);
        let c = keys
            .authenticate(&headers("Bearer sk-alice-123"), IP)
            .unwrap();
        assert_eq!(c.key_name(), Some("alice"));
        assert!(keys.authenticate(&headers("Bearer nope"), IP).is_err());
        assert!(keys.authenticate(&HeaderMap::new(), IP).is_err());
    }

    #[test]
    fn debug_shows_key_names_not_key_values() {
        let keys = Keys::new(&[key("alice", "sk-alice-123")]);
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("alice") && !shown.contains("sk-alice-123"),
            "{shown}"
        );
    }
}
