//! Who is calling, and what they may do. With `keys:` configured, every data-plane
//! request must carry one of them as `Authorization: Bearer …` (else 401); without,
//! callers are anonymous and told apart (for per-key limits) by a keyed hash of
//! whatever bearer token they sent. Keys are indexed by their SHA-256 (plain ones are
//! hashed when the snapshot is built, `sha256:` ones are configured that way): the
//! presented token is hashed once, looked up, and compared in constant time. Key values
//! never leave this module except as that hash ([`Caller`] carries it). Per-key model
//! access, budgets and usage live in [`account`].

pub mod account;

use crate::caller::Caller;
use crate::error::GatewayError;
use crate::state::Shared;
use account::{Account, KeyUsage};
use http::{header, HeaderMap};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;
use switchyard_config::{ClientKey, Config, ConfigError, KeyValue, Price};

/// Configured client keys, by the SHA-256 of their value, with the prices spend is
/// computed from. Its `Debug` shows key names only.
#[derive(Default)]
pub struct Keys {
    by_digest: HashMap<[u8; 32], Arc<Account>>,
    /// Config order.
    accounts: Vec<Arc<Account>>,
    prices: Vec<Price>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.accounts.iter().map(|a| &*a.key.name).collect();
        f.debug_struct("Keys").field("names", &names).finish()
    }
}

/// An authenticated request: who calls, and their key's account when keys are on.
#[derive(Debug)]
pub struct Authenticated<'a> {
    /// The caller, for plugins and limits.
    pub caller: Caller,
    /// The key's account (access, budget, usage); `None` without keys.
    pub account: Option<&'a Arc<Account>>,
}

/// `sha256:<hex>` of a key value, as `keys[].key` accepts it.
pub fn hash_key(value: &str) -> String {
    let digest = sha256(value.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    out
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Equality without an early exit, so the time taken says nothing about where two
/// digests differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Keys {
    /// Indexes the configured keys; a plain key and a `sha256:` one with the same value
    /// are refused (`keys[i].key`).
    pub fn new(
        keys: &[ClientKey],
        prices: &[Price],
        shared: Option<&Arc<Shared>>,
    ) -> Result<Self, ConfigError> {
        let mut by_digest = HashMap::with_capacity(keys.len());
        let mut accounts = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let digest = match &k.key {
                KeyValue::Plain(secret) => sha256(secret.expose().as_bytes()),
                KeyValue::Sha256(digest) => *digest,
            };
            let account = Arc::new(Account::new(k.clone(), shared.cloned()));
            if by_digest.insert(digest, account.clone()).is_some() {
                return Err(ConfigError {
                    path: format!("keys[{i}].key"),
                    message: "the same key value is configured twice".to_owned(),
                });
            }
            accounts.push(account);
        }
        Ok(Self {
            by_digest,
            accounts,
            prices: prices.to_vec(),
        })
    }

    /// Identifies the caller, or refuses a missing / unknown key when keys are on.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        ip: IpAddr,
    ) -> Result<Authenticated<'_>, GatewayError> {
        let token = bearer(headers);
        // One SHA-256 per request: the key lookup's digest, and the limits' identity.
        let digest = token.map(|t| sha256(t.as_bytes()));
        let token_hash = digest.as_ref().map(token_hash);
        if self.by_digest.is_empty() {
            return Ok(Authenticated {
                caller: Caller {
                    key: None,
                    token_hash,
                    ip,
                },
                account: None,
            });
        }
        let digest = digest.ok_or(GatewayError::Unauthorized)?;
        let (stored, account) = self
            .by_digest
            .get_key_value(&digest)
            .ok_or(GatewayError::Unauthorized)?;
        if !constant_time_eq(stored, &digest) {
            return Err(GatewayError::Unauthorized);
        }
        Ok(Authenticated {
            caller: Caller {
                key: Some(account.key.clone()),
                token_hash,
                ip,
            },
            account: Some(account),
        })
    }

    /// Whether keys are required.
    pub fn enabled(&self) -> bool {
        !self.by_digest.is_empty()
    }

    /// The price of `model` served by `upstream`: the first `prices:` entry matching.
    pub fn price(&self, upstream: &str, model: &str) -> Option<&Price> {
        self.prices.iter().find(|p| p.applies(upstream, model))
    }

    /// Every key's usage (config order): totals since the process started and, for
    /// keys with a budget, the current window against its limits.
    pub async fn usage_report(&self) -> Vec<KeyUsage> {
        let now = SystemTime::now();
        let mut report = Vec::with_capacity(self.accounts.len());
        for account in &self.accounts {
            report.push(account.report_shared(now).await);
        }
        report
    }
}

/// When a key has a `usd` budget: the models of static lists and routes (as
/// `upstream/model`) that no `prices:` entry covers — they count $0 toward it. Fetched
/// lists are not known when the config is checked.
pub fn unpriced_models(config: &Config) -> Vec<String> {
    if !config
        .keys
        .iter()
        .any(|k| k.budget.is_some_and(|b| b.usd.is_some()))
    {
        return Vec::new();
    }
    let priced = |up: &str, model: &str| config.prices.iter().any(|p| p.applies(up, model));
    let mut missing: Vec<String> = Vec::new();
    let mut note = |up: &str, model: &str| {
        let id = format!("{up}/{model}");
        if !priced(up, model) && !missing.contains(&id) {
            missing.push(id);
        }
    };
    for up in &config.upstreams {
        for model in up.models.iter().flatten().filter(|m| up.keeps(m)) {
            note(&up.name, model);
        }
    }
    for route in &config.routes {
        for t in &route.targets {
            note(&config.upstreams[t.upstream].name, &t.model);
        }
    }
    missing
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A bearer token's identity for limits: the first 64 bits of its SHA-256 — the same in
/// every replica, so limits kept in Redis agree on who is calling.
fn token_hash(digest: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use switchyard_config::Secret;

    fn key(name: &str, value: &str) -> ClientKey {
        ClientKey {
            name: name.into(),
            key: KeyValue::Plain(Secret::new(value)),
            user: Some("u@example.com".into()),
            groups: Arc::from(vec!["eng".to_owned()]),
            models: None,
            budget: None,
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
        let keys = Keys::new(&[], &[], None).unwrap();
        // Tokens with letters a hex hash never holds, so "not contained" cannot pass or
        // fail by chance.
        let a = keys
            .authenticate(&headers("Bearer sk-zzz"), IP)
            .unwrap()
            .caller;
        let b = keys
            .authenticate(&headers("Bearer sk-yyy"), IP)
            .unwrap()
            .caller;
        assert_ne!(a.limit_key(), b.limit_key());
        assert!(!a.limit_key().contains("zzz"));
        let none = keys.authenticate(&HeaderMap::new(), IP).unwrap().caller;
        assert_eq!(none.limit_key(), "anonymous");
    }

    #[test]
    fn with_keys_a_known_key_is_required() {
        let keys = Keys::new(&[key("alice", "sk-alice-123")], &[], None).unwrap();
        let c = keys
            .authenticate(&headers("Bearer sk-alice-123"), IP)
            .unwrap()
            .caller;
        assert_eq!(c.key_name(), Some("alice"));
        assert!(keys.authenticate(&headers("Bearer nope"), IP).is_err());
        assert!(keys.authenticate(&HeaderMap::new(), IP).is_err());
    }

    #[test]
    fn debug_shows_key_names_not_key_values() {
        let keys = Keys::new(&[key("alice", "sk-alice-123")], &[], None).unwrap();
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("alice") && !shown.contains("sk-alice-123"),
            "{shown}"
        );
    }

    #[test]
    fn a_hashed_key_authenticates_the_value_it_was_hashed_from() {
        let hashed = hash_key("sk-hashed-value-1");
        assert!(hashed.starts_with("sha256:") && hashed.len() == 7 + 64);
        let Some(Ok(digest)) = KeyValue::parse_sha256(&hashed) else {
            panic!("hash-key output must parse back: {hashed}")
        };
        let mut k = key("bob", "unused-unused");
        k.key = KeyValue::Sha256(digest);
        let keys = Keys::new(&[k, key("alice", "sk-alice-123")], &[], None).unwrap();
        let c = keys
            .authenticate(&headers("Bearer sk-hashed-value-1"), IP)
            .unwrap();
        assert_eq!(c.caller.key_name(), Some("bob"));
        assert!(keys
            .authenticate(&headers(&format!("Bearer {hashed}")), IP)
            .is_err());
        let plain = keys
            .authenticate(&headers("Bearer sk-alice-123"), IP)
            .unwrap();
        assert_eq!(plain.caller.key_name(), Some("alice"));
    }

    #[test]
    fn a_plain_key_and_its_hash_together_are_refused() {
        let Some(Ok(digest)) = KeyValue::parse_sha256(&hash_key("sk-same-value")) else {
            panic!("parse")
        };
        let mut hashed = key("b", "x");
        hashed.key = KeyValue::Sha256(digest);
        let e = Keys::new(&[key("a", "sk-same-value"), hashed], &[], None).unwrap_err();
        assert_eq!(e.path, "keys[1].key");
    }

    #[test]
    fn sha256_matches_the_known_answer() {
        assert_eq!(
            hash_key("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn models_without_a_price_are_named_only_when_a_key_has_a_usd_budget() {
        let base = "upstreams:\n  - {name: u, base_url: 'http://u', models: [a, b]}\nroutes:\n  - {model: fast, targets: [{upstream: u, model: c}]}\nprices:\n  - {model: a, input: 1, output: 1}\n";
        let parse =
            |keys: &str| switchyard_config::parse(&format!("{base}{keys}"), &|_| None).unwrap();
        let none = parse("keys:\n  - {name: k, key: sk-12345678, budget: {tokens: 5}}\n");
        assert!(unpriced_models(&none).is_empty());
        let usd = parse("keys:\n  - {name: k, key: sk-12345678, budget: {usd: 5}}\n");
        assert_eq!(unpriced_models(&usd), ["u/b", "u/c"]);
    }
}
