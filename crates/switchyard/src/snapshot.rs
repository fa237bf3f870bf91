//! `Snapshot`: everything built from one `Config` — upstreams with their clients and
//! headers, route balancers, the catalogue, client keys, the plugin chain — behind one
//! `ArcSwap` (`Live`). A request loads it once and sees one config generation from
//! start to end. The HTTP clients ([`Clients`], with their connection pools) and the
//! open-stream counter are passed in rather than owned, so a reload (`reload`) builds a
//! new snapshot beside the old one and keeps them; [`Snapshot::carry_over`] then takes
//! over the state of upstreams and plugins whose settings did not change (health, fetched
//! lists, limiter counts).

use crate::auth::Keys;
use crate::cache::ResponseCache;
use crate::catalog::Catalog;
use crate::client::Clients;
use crate::export::Exporter;
use crate::metrics::Metrics;
use crate::plugins::Chain;
use crate::relay::StreamLimit;
use crate::state::Shared;
use crate::upstream::balance::Balancer;
use crate::upstream::budget::RetryBudget;
use crate::upstream::{Candidate, Upstream, Upstreams};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Weak};
use switchyard_config::{Config, ConfigError, ConfigErrors, Route, Strategy};
use switchyard_dialects::Dialect;
use tokio::time::Instant;

/// The swappable current snapshot.
pub type Live = ArcSwap<Snapshot>;

/// An explicit route with its rotation.
#[derive(Debug)]
pub struct BalancedRoute {
    /// As configured.
    pub route: Route,
    /// Rotation over its targets.
    pub balancer: Balancer,
}

/// Everything derived from one config.
#[derive(Debug)]
pub struct Snapshot {
    /// The config it was built from.
    pub config: Config,
    /// Upstreams, config order, with the routing policy and the stream limit.
    pub upstreams: Upstreams,
    /// Explicit routes by model name.
    pub routes: HashMap<String, BalancedRoute>,
    /// Model catalogue.
    pub catalog: Catalog,
    /// Client keys.
    pub keys: Keys,
    /// The plugin chain.
    pub chain: Chain,
    /// Where request records are exported (`export:`); the exporter outlives snapshots,
    /// so whoever builds one hands it the process's handle. `None` when export is off.
    pub exporter: Option<Exporter>,
    /// Which config generation this is: 1 at start, one more per successful reload.
    pub generation: u64,
    /// The shared state store (`state.backend: redis`); `None`: state is per process.
    pub state: Option<Arc<Shared>>,
    /// The response cache (`cache:`); `None` when off.
    pub cache: Option<Arc<ResponseCache>>,
}

impl Snapshot {
    /// Builds a snapshot: the plugin chain (whose settings the config crate cannot
    /// check) and everything else; every problem is reported with its YAML path, and
    /// with no value that came from the environment ([`Config::redactor`]).
    pub fn build(
        config: Config,
        clients: &Clients,
        open_streams: Arc<AtomicU32>,
    ) -> Result<Self, ConfigErrors> {
        let redactor = config.redactor.clone();
        Self::build_unredacted(config, clients, open_streams).map_err(|e| redactor.errors(e))
    }

    fn build_unredacted(
        config: Config,
        clients: &Clients,
        open_streams: Arc<AtomicU32>,
    ) -> Result<Self, ConfigErrors> {
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for (i, up) in config.upstreams.iter().enumerate() {
            let path = format!("upstreams[{i}]");
            let client = match up.dialect {
                Dialect::Mock => None,
                _ => Some(clients.h1().map_err(|e| {
                    ConfigErrors(vec![ConfigError {
                        path: path.clone(),
                        message: e.to_string(),
                    }])
                })?),
            };
            upstreams.push(
                Upstream::build(up.clone(), client, &path).map_err(|e| ConfigErrors(vec![e]))?,
            );
        }
        if let Some(redis) = &config.state.redis {
            Shared::check(redis).map_err(|(field, message)| {
                ConfigErrors(vec![ConfigError {
                    path: format!("state.{field}"),
                    message,
                }])
            })?;
        }
        let state = config.state.redis.as_ref().map(Shared::for_config);
        let chain = Chain::build(&config.plugins, clients, state.as_ref()).map_err(ConfigErrors)?;
        let keys = Keys::new(&config.keys, &config.prices, state.as_ref())
            .map_err(|e| ConfigErrors(vec![e]))?;
        let unpriced = crate::auth::unpriced_models(&config);
        if !unpriced.is_empty() {
            tracing::warn!(models = %unpriced.join(", "), "a key has a `usd` budget, but these models have no price in `prices:`; they count $0");
        }
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let weights: Vec<u32> = match r.strategy {
                    Strategy::RoundRobin => r.targets.iter().map(|_| 1).collect(),
                    Strategy::Weighted => r.targets.iter().map(|t| t.weight).collect(),
                };
                let balanced = BalancedRoute {
                    route: r.clone(),
                    balancer: Balancer::new(&weights),
                };
                (r.model.clone(), balanced)
            })
            .collect();
        Ok(Self {
            catalog: Catalog::new(&config),
            keys,
            chain,
            upstreams: Upstreams {
                list: upstreams,
                routing: config.routing.clone(),
                streams: StreamLimit::new(open_streams, config.server.max_concurrent_streams),
                budget: RetryBudget::new(config.routing.retry_budget),
            },
            routes,
            exporter: None,
            generation: 1,
            cache: config
                .cache
                .as_ref()
                .map(|c| ResponseCache::for_config(c, state.as_ref())),
            config,
            state,
        })
    }

    /// Takes over the state `old` kept for each upstream whose name and settings are
    /// unchanged — its passive health (cool-downs included) and its fetched model list —
    /// so a reload neither forgets an outage nor refetches every list; and each plugin
    /// whose name, id and settings are unchanged, with its state (limiter counts).
    /// Returns the names of the upstreams kept.
    pub fn carry_over(&mut self, old: &Snapshot) -> Vec<Arc<str>> {
        let mut pairs = Vec::new();
        let mut kept = Vec::new();
        for (i, up) in self.upstreams.list.iter_mut().enumerate() {
            let same = old
                .upstreams
                .list
                .iter()
                .position(|o| o.name == up.name && o.config == up.config);
            if let Some(j) = same {
                up.health = old.upstreams.list[j].health.clone();
                pairs.push((i, j));
                kept.push(up.name.clone());
            }
        }
        self.catalog.adopt(&old.catalog, &pairs);
        // A plugin's state lives where `state:` says: kept only when that is unchanged.
        if self.config.state == old.config.state {
            self.chain.adopt(&old.chain);
        }
        kept
    }

    /// Targets for a model, in the order to try them: the route's (or the catalogue's)
    /// pick first, the other targets next, then each fallback model's targets.
    pub fn plan(&self, model: &str) -> Option<Vec<Candidate>> {
        self.plan_with(model, true)
    }

    /// The upstreams [`Snapshot::plan`] could send `model` to, fallbacks included,
    /// without moving any rotation (deciding how to serve a request, not sending it).
    pub fn serving(&self, model: &str) -> Option<Vec<usize>> {
        self.plan_with(model, false)
            .map(|plan| plan.into_iter().map(|c| c.upstream).collect())
    }

    fn plan_with(&self, model: &str, rotate: bool) -> Option<Vec<Candidate>> {
        let mut plan = Vec::new();
        let route = self.routes.get(model);
        if !self.targets_for(model, &mut plan, rotate) {
            return None;
        }
        if let Some(balanced) = route {
            for fallback in &balanced.route.fallbacks {
                self.targets_for(fallback, &mut plan, rotate);
            }
        }
        Some(plan)
    }

    /// Whether a request for `model` may fail over after a timeout: its route's
    /// `retry_on_timeout`, else `routing.retry_on_timeout`.
    pub fn retry_on_timeout(&self, model: &str) -> bool {
        self.routes
            .get(model)
            .and_then(|r| r.route.retry_on_timeout)
            .unwrap_or(self.config.routing.retry_on_timeout)
    }

    /// Appends the targets serving `model` (no fallbacks); false if none does.
    fn targets_for(&self, model: &str, plan: &mut Vec<Candidate>, rotate: bool) -> bool {
        let mut push = |upstream: usize, model: &str| {
            if !plan
                .iter()
                .any(|a| a.upstream == upstream && a.model == model)
            {
                plan.push(Candidate {
                    upstream,
                    model: model.to_owned(),
                });
            }
        };
        if let Some(balanced) = self.routes.get(model) {
            for i in balanced.balancer.order_if(rotate) {
                let t = &balanced.route.targets[i];
                push(t.upstream, &t.model);
            }
            return true;
        }
        let index = self.catalog.index();
        if let Some(served) = index.models.get(model) {
            for i in served.balancer.order_if(rotate) {
                push(served.upstreams[i], model);
            }
            return true;
        }
        if let Some((prefix, rest)) = model.split_once('/') {
            if let Some(u) = self.upstreams.list.iter().position(|u| &*u.name == prefix) {
                if index.per_upstream[u].iter().any(|m| m == rest) {
                    push(u, rest);
                    return true;
                }
            }
        }
        false
    }

    /// Sets the gauges that describe this snapshot's state, for a scrape.
    pub fn observe(&self, m: &Metrics) {
        // In-process state is always there.
        m.state_up
            .set(self.state.as_ref().map_or(1, |s| i64::from(s.is_up())));
        let now = Instant::now();
        for up in &self.upstreams.list {
            m.upstream_cooldown
                .with_label_values(&[&up.name])
                .set(i64::from(!up.health.connections.is_available(now)));
            for (model, cooling) in up.health.targets(now) {
                m.target_cooldown
                    .with_label_values(&[&*up.name, model.as_str()])
                    .set(i64::from(cooling));
            }
        }
        m.streams_in_flight
            .set(i64::from(self.upstreams.streams.open()));
        m.catalog_models
            .set(i64::try_from(self.catalog.index().listing.len()).unwrap_or(i64::MAX));
        for (name, age) in self.catalog.list_ages() {
            if let Some(age) = age {
                m.catalog_list_age
                    .with_label_values(&[name])
                    .set(age.as_secs_f64());
            }
        }
    }
}

/// Keeps the catalogue of one snapshot fresh until the snapshot is dropped. With
/// `force_first` false (after a reload) the first round only fetches the lists not
/// carried over; the ones carried over are refetched on the usual schedule.
pub fn spawn_catalog_refresh(snap: &Arc<Snapshot>, force_first: bool) {
    let weak: Weak<Snapshot> = Arc::downgrade(snap);
    let ttl = snap.catalog.ttl();
    tokio::spawn(async move {
        let mut force = force_first;
        loop {
            let Some(snap) = weak.upgrade() else { return };
            snap.catalog.refresh(&snap.upstreams.list, force).await;
            force = true;
            drop(snap);
            // Refresh a little before entries expire so readers rarely wait.
            tokio::time::sleep(ttl.mul_f64(0.9).max(std::time::Duration::from_millis(100))).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(yaml: &str) -> Snapshot {
        let config = switchyard_config::parse(yaml, &|_| None).unwrap();
        Snapshot::build(config, &Clients::default(), Arc::default()).unwrap()
    }

    #[test]
    fn an_unusable_redis_setting_fails_the_build_at_its_path_without_the_password() {
        let build = |state: &str| {
            let yaml = format!("upstreams: [{{name: u, base_url: 'http://u', models: [m]}}]\nstate: {{backend: redis, {state}}}\n");
            let config = switchyard_config::parse(&yaml, &|_| None).unwrap();
            Snapshot::build(config, &Clients::default(), Arc::default())
                .err()
                .map(|e| e.0)
                .unwrap_or_default()
        };
        let e = build("url: 'redis://user:hunter2@127.0.0.1:6379/x'");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "state.url");
        assert!(!e[0].message.contains("hunter2"), "{}", e[0].message);
        let e = build("url: 'rediss://127.0.0.1:6380/0', ca_file: /nonexistent/ca.pem");
        assert_eq!(e[0].path, "state.ca_file");
        assert!(build("url: 'redis://127.0.0.1:6379/0'").is_empty());
    }

    fn plan(s: &Snapshot, model: &str) -> Vec<(String, String)> {
        s.plan(model)
            .unwrap()
            .into_iter()
            .map(|c| (s.upstreams.list[c.upstream].name.to_string(), c.model))
            .collect()
    }

    const UPSTREAMS: &str = "upstreams:\n  - {name: a, base_url: 'http://a', models: [shared, only-a]}\n  - {name: b, base_url: 'http://b', models: [shared]}\n";

    #[test]
    fn a_shared_model_rotates_first_target_and_keeps_the_other_for_failover() {
        let s = snapshot(UPSTREAMS);
        let first = plan(&s, "shared");
        let second = plan(&s, "shared");
        assert_eq!(first.len(), 2);
        assert_ne!(first[0], second[0]);
        assert_eq!(first[0], second[1]);
    }

    #[test]
    fn upstream_prefixed_ids_pin_one_upstream() {
        let s = snapshot(UPSTREAMS);
        assert_eq!(plan(&s, "b/shared"), vec![("b".into(), "shared".into())]);
        assert!(s.plan("b/only-a").is_none());
        assert!(s.plan("nope").is_none());
    }

    #[test]
    fn routes_win_over_catalogue_ids_and_fallbacks_come_last_without_repeats() {
        let s = snapshot(&format!(
            "{UPSTREAMS}routes:\n  - {{model: shared, targets: [{{upstream: b, model: only-a}}]}}\n  - {{model: main, targets: [{{upstream: b, model: shared}}], fallbacks: [only-a, b/shared]}}\n"
        ));
        // The route named like a catalogue id wins.
        assert_eq!(plan(&s, "shared"), vec![("b".into(), "only-a".into())]);
        // Fallbacks follow the targets; `b/shared` repeats the first target and is skipped.
        assert_eq!(
            plan(&s, "main"),
            vec![("b".into(), "shared".into()), ("a".into(), "only-a".into())]
        );
    }

    #[test]
    fn unknown_fallbacks_are_skipped() {
        let s = snapshot(&format!(
            "{UPSTREAMS}routes:\n  - {{model: x, targets: [{{upstream: a, model: only-a}}], fallbacks: [ghost]}}\n"
        ));
        assert_eq!(plan(&s, "x"), vec![("a".into(), "only-a".into())]);
    }
}
