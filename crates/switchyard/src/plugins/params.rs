//! `params`: request parameter defaults (set when absent), overrides (always set),
//! drops and renames, per model (use `models:`), plus Open WebUI's reasoning-model
//! rewrite (`reasoning: true`): `max_tokens` becomes `max_completion_tokens` and the
//! `system` role becomes `developer`, as o1 / o3 / o4 / gpt-5 models expect.

use super::{BuildCtx, Exchange, Plugin, PluginFuture, Verdict};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use switchyard_config::ConfigError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    defaults: Map<String, Value>,
    #[serde(default)]
    overrides: Map<String, Value>,
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
    #[serde(default)]
    reasoning: bool,
}

struct Params(Arc<Settings>);

pub(super) fn build(ctx: &BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>> {
    let s: Settings = ctx.config()?;
    for key in ["model", "stream"] {
        if s.drop.iter().any(|d| d == key) {
            return Err(ctx.error("drop", format!("`{key}` cannot be dropped")));
        }
    }
    Ok(Arc::new(Params(Arc::new(s))))
}

fn apply(body: &mut Value, s: &Settings) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    for key in &s.drop {
        obj.remove(key);
    }
    for (from, to) in &s.rename {
        if let Some(v) = obj.remove(from) {
            obj.entry(to.clone()).or_insert(v);
        }
    }
    if s.reasoning {
        if let Some(v) = obj.remove("max_tokens") {
            obj.entry("max_completion_tokens").or_insert(v);
        }
        if let Some(messages) = obj.get_mut("messages").and_then(Value::as_array_mut) {
            for m in messages {
                if m["role"] == "system" {
                    m["role"] = Value::String("developer".to_owned());
                }
            }
        }
    }
    for (k, v) in &s.defaults {
        obj.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &s.overrides {
        obj.insert(k.clone(), v.clone());
    }
}

impl Plugin for Params {
    fn needs_request_body(&self) -> bool {
        true
    }

    fn modifies(&self) -> bool {
        true
    }

    fn pre_request<'a>(&'a self, _ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        let s = self.0.clone();
        Box::pin(std::future::ready(Ok(Verdict::patch(move |body| {
            apply(body, &s)
        }))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_overrides_drops_and_renames() {
        let s: Settings = serde_json::from_value(json!({
            "defaults": {"temperature": 0.2, "top_p": 1},
            "overrides": {"user": "gateway"},
            "drop": ["logit_bias"],
            "rename": {"max_output_tokens": "max_tokens"}
        }))
        .unwrap();
        let mut b = json!({"model": "m", "temperature": 0.9, "logit_bias": {}, "max_output_tokens": 5, "user": "x"});
        apply(&mut b, &s);
        assert_eq!(
            b,
            json!({"model": "m", "temperature": 0.9, "top_p": 1, "user": "gateway", "max_tokens": 5})
        );
    }

    #[test]
    fn reasoning_rewrite_matches_open_webui() {
        let s = Settings {
            reasoning: true,
            ..Settings::default()
        };
        let mut b = json!({"model": "o3", "max_tokens": 100, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]});
        apply(&mut b, &s);
        assert_eq!(b["max_completion_tokens"], 100);
        assert!(b.get("max_tokens").is_none());
        assert_eq!(b["messages"][0]["role"], "developer");
        assert_eq!(b["messages"][1]["role"], "user");
    }
}
