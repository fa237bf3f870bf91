//! A LiteLLM proxy `config.yaml` → native fragment. `model_list` entries become
//! upstreams (one per distinct provider base URL and key, with the models it serves
//! listed) and routes (one per `model_name`, every deployment of it a target);
//! `router_settings` / `litellm_settings` give `routing:` and fallbacks;
//! `general_settings.master_key` becomes a client key. Only OpenAI-compatible providers
//! can be served; other deployments, and every setting without an equivalent, are
//! warnings at their path.

use super::{key_text, map, required_str, scalar, unique_name, Fragment, Out};
use crate::error::{join, ConfigError, ConfigErrors};
use serde_yaml::{Mapping, Value};

/// An OpenAI-compatible provider LiteLLM names by prefix.
struct Provider {
    prefix: &'static str,
    /// Its default base URL (`None`: `api_base` is required).
    base: Option<&'static str>,
    /// The variable LiteLLM reads the key from when `api_key` is not given (used only
    /// with the default base URL).
    key_env: Option<&'static str>,
}

const fn provider(
    prefix: &'static str,
    base: Option<&'static str>,
    key_env: Option<&'static str>,
) -> Provider {
    Provider {
        prefix,
        base,
        key_env,
    }
}

const OPENAI: &str = "https://api.openai.com/v1";

const PROVIDERS: &[Provider] = &[
    provider("openai", Some(OPENAI), Some("OPENAI_API_KEY")),
    provider(
        "text-completion-openai",
        Some(OPENAI),
        Some("OPENAI_API_KEY"),
    ),
    provider("custom_openai", None, None),
    provider("openai_like", None, None),
    provider("hosted_vllm", None, None),
    provider("lm_studio", Some("http://localhost:1234/v1"), None),
    provider("ollama", Some("http://localhost:11434"), None),
    provider("ollama_chat", Some("http://localhost:11434"), None),
    provider(
        "groq",
        Some("https://api.groq.com/openai/v1"),
        Some("GROQ_API_KEY"),
    ),
    provider(
        "mistral",
        Some("https://api.mistral.ai/v1"),
        Some("MISTRAL_API_KEY"),
    ),
    provider(
        "deepseek",
        Some("https://api.deepseek.com/v1"),
        Some("DEEPSEEK_API_KEY"),
    ),
    provider("xai", Some("https://api.x.ai/v1"), Some("XAI_API_KEY")),
    provider(
        "together_ai",
        Some("https://api.together.xyz/v1"),
        Some("TOGETHERAI_API_KEY"),
    ),
    provider(
        "fireworks_ai",
        Some("https://api.fireworks.ai/inference/v1"),
        Some("FIREWORKS_AI_API_KEY"),
    ),
    provider(
        "openrouter",
        Some("https://openrouter.ai/api/v1"),
        Some("OPENROUTER_API_KEY"),
    ),
    provider(
        "perplexity",
        Some("https://api.perplexity.ai"),
        Some("PERPLEXITYAI_API_KEY"),
    ),
];

/// One `model_list` entry that can be served.
struct Deployment {
    model_name: String,
    provider: String,
    model: String,
    base_url: String,
    key: Option<Value>,
    organization: Option<String>,
    weight: Option<u64>,
}

pub(super) fn convert(doc: &Mapping, out: &mut Out) -> Result<Fragment, ConfigErrors> {
    let mut errors = Vec::new();
    let mut fragment = Fragment::default();
    let deployments = match doc.get("model_list") {
        Some(Value::Sequence(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, v)| deployment(v, &format!("model_list[{i}]"), out, &mut errors))
            .collect(),
        _ => {
            errors.push(ConfigError::new("model_list", "expected a list"));
            Vec::new()
        }
    };
    build(&deployments, &mut fragment);
    for section in ["router_settings", "litellm_settings"] {
        if let Some(v) = doc.get(section) {
            settings(v, section, out, &mut fragment);
        }
    }
    if let Some(v) = doc.get("general_settings") {
        general(v, out, &mut fragment);
    }
    for (key, _) in doc {
        let key = key_text(key);
        if ![
            "model_list",
            "router_settings",
            "litellm_settings",
            "general_settings",
        ]
        .contains(&key.as_str())
        {
            out.warn(&key, "not supported by Switchyard; ignored");
        }
    }
    if errors.is_empty() {
        Ok(fragment)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn deployment(
    value: &Value,
    path: &str,
    out: &mut Out,
    errors: &mut Vec<ConfigError>,
) -> Option<Deployment> {
    let Value::Mapping(entry) = value else {
        errors.push(ConfigError::new(path, "expected a mapping"));
        return None;
    };
    let model_name = required_str(entry, "model_name", path, errors)?.to_owned();
    let params_path = join(path, "litellm_params");
    let Some(Value::Mapping(params)) = entry.get("litellm_params") else {
        errors.push(ConfigError::new(params_path, "expected a mapping"));
        return None;
    };
    for (key, _) in entry {
        let key = key_text(key);
        if key != "model_name" && key != "litellm_params" {
            out.warn(
                &join(path, &key),
                "not supported by Switchyard; ignored (model metadata is not served)",
            );
        }
    }
    let written = required_str(params, "model", &params_path, errors)?;
    let (provider, model) = match written.split_once('/') {
        Some((p, m)) => (p.to_owned(), m.to_owned()),
        None => ("openai".to_owned(), written.to_owned()),
    };
    let Some(known) = PROVIDERS.iter().find(|p| p.prefix == provider) else {
        out.warn(
            &join(&params_path, "model"),
            format!(
                "provider `{provider}` is not OpenAI-compatible and Switchyard only speaks the OpenAI API; deployment `{model_name}` skipped"
            ),
        );
        return None;
    };
    let given_base = params
        .get("api_base")
        .or_else(|| params.get("base_url"))
        .and_then(scalar)
        .map(|b| super::env_text(&b));
    let default_key = match &given_base {
        None => known.key_env,
        Some(_) => None,
    };
    let base = given_base.or_else(|| known.base.map(str::to_owned));
    let Some(base) = base else {
        errors.push(ConfigError::new(
            join(&params_path, "api_base"),
            format!("provider `{provider}` has no default URL; `api_base` is required"),
        ));
        return None;
    };
    let mut base_url = base.trim_end_matches('/').to_owned();
    if provider.starts_with("ollama") && !base_url.ends_with("/v1") {
        base_url.push_str("/v1");
    }
    // Without `api_key`, LiteLLM reads the provider's variable for its own API.
    let key = match params.get("api_key").and_then(scalar) {
        Some(k) => {
            let env_name = known.key_env.map_or_else(
                || {
                    format!(
                        "{}_API_KEY",
                        provider.to_ascii_uppercase().replace('-', "_")
                    )
                },
                str::to_owned,
            );
            Some(out.secret(&k, &join(&params_path, "api_key"), &env_name))
        }
        None => default_key.map(|var| Value::from(format!("${{{var}}}"))),
    };
    let weight = params.get("weight").and_then(Value::as_u64);
    for (key, _) in params {
        let key = key_text(key);
        let at = join(&params_path, &key);
        match key.as_str() {
            "model" | "api_base" | "base_url" | "api_key" | "weight" | "organization" => {}
            "rpm" | "tpm" => out.warn(
                &at,
                "per-deployment rate limits are not enforced (Switchyard's rate_limiter / token_limiter plugins limit per key and model)",
            ),
            _ => out.warn(&at, "not supported by Switchyard; ignored"),
        }
    }
    Some(Deployment {
        model_name,
        provider,
        model,
        base_url,
        key,
        organization: params.get("organization").and_then(scalar),
        weight,
    })
}

/// Upstreams (one per distinct base URL, key and organization) and one route per
/// `model_name`, in the order they first appear.
fn build(deployments: &[Deployment], fragment: &mut Fragment) {
    struct Up {
        name: String,
        base_url: String,
        key: Option<Value>,
        organization: Option<String>,
        provider: String,
        models: Vec<String>,
    }
    let mut ups: Vec<Up> = Vec::new();
    /// A route target: the upstream's index, the model there, its weight.
    type Target = (usize, String, Option<u64>);
    let mut routes: Vec<(String, Vec<Target>)> = Vec::new();
    for d in deployments {
        let at = match ups.iter().position(|u| {
            u.base_url == d.base_url && u.key == d.key && u.organization == d.organization
        }) {
            Some(at) => at,
            None => {
                let taken: Vec<String> = ups.iter().map(|u| u.name.clone()).collect();
                ups.push(Up {
                    name: unique_name(&d.provider, &taken),
                    base_url: d.base_url.clone(),
                    key: d.key.clone(),
                    organization: d.organization.clone(),
                    provider: d.provider.clone(),
                    models: Vec::new(),
                });
                ups.len() - 1
            }
        };
        if !ups[at].models.contains(&d.model) {
            ups[at].models.push(d.model.clone());
        }
        let target = (at, d.model.clone(), d.weight);
        match routes.iter_mut().find(|(name, _)| *name == d.model_name) {
            Some((_, targets)) => targets.push(target),
            None => routes.push((d.model_name.clone(), vec![target])),
        }
    }
    for u in &ups {
        let mut entry = vec![
            ("name", Value::from(u.name.as_str())),
            ("base_url", Value::from(u.base_url.as_str())),
        ];
        entry.push((
            "auth",
            match &u.key {
                Some(k) => map([("type", "bearer".into()), ("key", k.clone())]),
                None => map([("type", "none".into())]),
            },
        ));
        if let Some(org) = &u.organization {
            entry.push((
                "headers",
                map([("OpenAI-Organization", Value::from(super::env_text(org)))]),
            ));
        }
        if u.provider.starts_with("ollama") {
            entry.push(("first_byte_timeout", "10m".into()));
        }
        let models = u.models.iter().map(|m| Value::from(m.as_str())).collect();
        entry.push(("models", Value::Sequence(models)));
        fragment.upstreams.push(map(entry));
    }
    for (model, targets) in routes {
        let weighted = targets.iter().any(|(_, _, w)| w.is_some());
        let targets = targets
            .into_iter()
            .map(|(at, m, w)| {
                let mut t = vec![
                    ("upstream", Value::from(ups[at].name.as_str())),
                    ("model", Value::from(m)),
                ];
                if weighted {
                    t.push(("weight", Value::from(w.unwrap_or(1))));
                }
                map(t)
            })
            .collect();
        let mut route = vec![("model", Value::from(model)), ("targets", targets)];
        if weighted {
            route.push(("strategy", "weighted".into()));
        }
        fragment.routes.push(map(route));
    }
}

/// `router_settings` and `litellm_settings`: retries, timeouts, cool-down, fallbacks.
fn settings(value: &Value, section: &str, out: &mut Out, fragment: &mut Fragment) {
    let Value::Mapping(settings) = value else {
        out.warn(section, "expected a mapping; ignored");
        return;
    };
    for (key, v) in settings {
        let key = key_text(key);
        let at = join(section, &key);
        let number = v.as_u64();
        match (key.as_str(), number) {
            ("routing_strategy", _) => match v.as_str() {
                Some("simple-shuffle") => {}
                other => out.warn(
                    &at,
                    format!(
                        "`{}` is not available: Switchyard balances round-robin, or by `weight` (as simple-shuffle does)",
                        other.unwrap_or("?")
                    ),
                ),
            },
            ("num_retries", Some(n)) => {
                fragment
                    .routing
                    .insert("max_attempts".into(), Value::from(n + 1));
            }
            ("timeout" | "request_timeout", Some(n)) => {
                fragment
                    .routing
                    .insert("request_timeout".into(), Value::from(format!("{n}s")));
            }
            ("cooldown_time", Some(n)) => {
                fragment
                    .routing
                    .insert("cooldown".into(), Value::from(format!("{n}s")));
            }
            ("allowed_fails", Some(n)) => {
                fragment
                    .routing
                    .insert("failures_before_cooldown".into(), Value::from(n + 1));
            }
            ("fallbacks", _) => fallbacks(v, &at, out, fragment),
            _ => out.warn(&at, "not supported by Switchyard; ignored"),
        }
    }
}

/// `fallbacks: [{model: [other, …]}]` → the route's `fallbacks`.
fn fallbacks(value: &Value, path: &str, out: &mut Out, fragment: &mut Fragment) {
    let Value::Sequence(list) = value else {
        out.warn(path, "expected a list of {model: [fallbacks]}; ignored");
        return;
    };
    for (i, item) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Value::Mapping(entry) = item else {
            out.warn(&at, "expected {model: [fallbacks]}; ignored");
            continue;
        };
        for (model, to) in entry {
            let model = key_text(model);
            let to: Vec<Value> = match to {
                Value::Sequence(s) => s.iter().filter(|v| v.is_string()).cloned().collect(),
                Value::String(s) => vec![Value::from(s.as_str())],
                _ => Vec::new(),
            };
            let route = fragment.routes.iter_mut().find_map(|r| match r {
                Value::Mapping(m) if m.get("model").and_then(Value::as_str) == Some(&model) => {
                    Some(m)
                }
                _ => None,
            });
            match route {
                Some(route) => {
                    route.insert("fallbacks".into(), Value::Sequence(to));
                }
                None => out.warn(
                    &join(&at, &model),
                    format!("no `model_name` `{model}` in model_list to fall back from; ignored"),
                ),
            }
        }
    }
}

/// `general_settings`: the master key becomes a client key; the rest is reported.
fn general(value: &Value, out: &mut Out, fragment: &mut Fragment) {
    let Value::Mapping(settings) = value else {
        out.warn("general_settings", "expected a mapping; ignored");
        return;
    };
    for (key, v) in settings {
        let key = key_text(key);
        let at = join("general_settings", &key);
        match (key.as_str(), scalar(v)) {
            ("master_key", Some(k)) => {
                let key = out.secret(&k, &at, "LITELLM_MASTER_KEY");
                fragment
                    .keys
                    .push(map([("name", "litellm-master-key".into()), ("key", key)]));
            }
            _ => out.warn(&at, "not supported by Switchyard; ignored"),
        }
    }
}
