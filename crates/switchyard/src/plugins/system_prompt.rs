//! `system_prompt`: injects, prepends, appends or replaces the system message of chat
//! requests (use `models:` to choose which). `inject` adds one only when the request
//! has none.

use super::{BuildCtx, Exchange, Plugin, PluginFuture, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use switchyard_config::ConfigError;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Inject,
    Prepend,
    Append,
    Replace,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    content: String,
    #[serde(default = "default_mode")]
    mode: Mode,
}

fn default_mode() -> Mode {
    Mode::Inject
}

struct SystemPrompt {
    content: Arc<str>,
    mode: Mode,
}

pub(super) fn build(ctx: &BuildCtx<'_>) -> Result<Arc<dyn Plugin>, Vec<ConfigError>> {
    let s: Settings = ctx.config()?;
    Ok(Arc::new(SystemPrompt {
        content: Arc::from(s.content),
        mode: s.mode,
    }))
}

fn is_system(m: &Value) -> bool {
    m["role"] == "system" || m["role"] == "developer"
}

/// Applies the prompt to a request body in place.
fn apply(body: &mut Value, content: &str, mode: Mode) {
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    let first_system = messages.iter().position(is_system);
    match (mode, first_system) {
        (Mode::Replace, _) => {
            messages.retain(|m| !is_system(m));
            messages.insert(0, json!({"role": "system", "content": content}));
        }
        (_, None) => messages.insert(0, json!({"role": "system", "content": content})),
        (Mode::Inject, Some(_)) => {}
        (Mode::Prepend | Mode::Append, Some(i)) => {
            let existing = match &messages[i]["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            };
            messages[i]["content"] = Value::String(if mode == Mode::Prepend {
                format!("{content}\n\n{existing}")
            } else {
                format!("{existing}\n\n{content}")
            });
        }
    }
}

impl Plugin for SystemPrompt {
    fn needs_request_body(&self) -> bool {
        true
    }

    fn modifies(&self) -> bool {
        true
    }

    fn pre_request<'a>(&'a self, ex: Exchange<'a>) -> PluginFuture<'a, Verdict> {
        let verdict = if ex.body.is_some_and(|b| b.get("messages").is_some()) {
            let (content, mode) = (self.content.clone(), self.mode);
            Verdict::patch(move |body| apply(body, &content, mode))
        } else {
            Verdict::pass()
        };
        Box::pin(std::future::ready(Ok(verdict)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: Value, mode: Mode) -> Value {
        let mut b = body;
        apply(&mut b, "Be brief.", mode);
        b
    }

    #[test]
    fn inject_adds_only_when_missing() {
        let b = run(
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            Mode::Inject,
        );
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        let b = run(
            json!({"messages": [{"role": "system", "content": "Mine"}]}),
            Mode::Inject,
        );
        assert_eq!(b["messages"][0]["content"], "Mine");
    }

    #[test]
    fn prepend_append_and_replace() {
        let base = json!({"messages": [{"role": "system", "content": "Mine"}, {"role": "user", "content": "hi"}]});
        assert_eq!(
            run(base.clone(), Mode::Prepend)["messages"][0]["content"],
            "Be brief.\n\nMine"
        );
        assert_eq!(
            run(base.clone(), Mode::Append)["messages"][0]["content"],
            "Mine\n\nBe brief."
        );
        let r = run(base, Mode::Replace);
        assert_eq!(r["messages"][0]["content"], "Be brief.");
        assert_eq!(r["messages"].as_array().unwrap().len(), 2);
    }
}
