//! `routes:` entries: strategy, targets (each must name an upstream; weight defaults to
//! the upstream's), fallbacks, and the check that no model is routed twice. Fallback
//! names are not resolved here; the daemon looks them up at request time.

use super::typed;
use crate::error::{join, ConfigError};
use crate::raw;
use crate::resolved::*;
use serde_yaml::Value;
use std::collections::HashSet;

/// Every route that resolves against `upstreams`, in config order.
pub(super) fn routes(
    values: Vec<Value>,
    upstreams: &[Upstream],
    errors: &mut Vec<ConfigError>,
) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut route_names = HashSet::new();
    for (i, value) in values.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        let Ok(spec) = typed::<raw::RouteSpec>(value, &path).map_err(|e| errors.push(e)) else {
            continue;
        };
        if !route_names.insert(spec.model.clone()) {
            errors.push(ConfigError::new(
                join(&path, "model"),
                format!("route `{}` is defined twice", spec.model),
            ));
        }
        if let Some(r) = route(spec, &path, upstreams, errors) {
            routes.push(r);
        }
    }
    routes
}

fn route(
    s: raw::RouteSpec,
    path: &str,
    upstreams: &[Upstream],
    errors: &mut Vec<ConfigError>,
) -> Option<Route> {
    let before = errors.len();
    let strategy = match s.strategy.as_deref() {
        None | Some("round_robin") => Strategy::RoundRobin,
        Some("weighted") => Strategy::Weighted,
        Some(other) => {
            errors.push(ConfigError::new(
                join(path, "strategy"),
                format!("unknown strategy `{other}` (expected round_robin or weighted)"),
            ));
            Strategy::RoundRobin
        }
    };
    if s.targets.is_empty() {
        errors.push(ConfigError::new(
            join(path, "targets"),
            "a route needs at least one target",
        ));
    }
    let mut targets = Vec::new();
    for (i, t) in s.targets.into_iter().enumerate() {
        let at = join(path, &format!("targets[{i}]"));
        let Some(index) = upstreams.iter().position(|u| *u.name == t.upstream) else {
            errors.push(ConfigError::new(
                join(&at, "upstream"),
                format!("no upstream is named `{}`", t.upstream),
            ));
            continue;
        };
        let weight = t.weight.unwrap_or(upstreams[index].weight);
        if weight == 0 {
            errors.push(ConfigError::new(join(&at, "weight"), "must be at least 1"));
        }
        targets.push(RouteTarget {
            upstream: index,
            model: t.model.unwrap_or_else(|| s.model.clone()),
            weight,
        });
    }
    for (i, f) in s.fallbacks.iter().enumerate() {
        if *f == s.model {
            errors.push(ConfigError::new(
                join(path, &format!("fallbacks[{i}]")),
                "a route cannot fall back to itself",
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Route {
        model: s.model,
        targets,
        strategy,
        fallbacks: s.fallbacks,
        retry_on_timeout: s.retry_on_timeout,
    })
}
