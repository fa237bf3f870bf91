//! OpenAI chat request → Anthropic Messages request: request-level fields (max_tokens,
//! stop, sampling, tools, tool_choice, thinking) and the list of fields Anthropic cannot
//! carry. The conversation itself is mapped in `messages.rs`; knows nothing of headers
//! or answers.

use super::messages::encode_messages;
use super::{DEFAULT_MAX_TOKENS, MESSAGES_PATH, NAME};
use crate::translate::{EncodeError, Encoded, Target};
use serde_json::{json, Map, Value};

/// Request fields this encoder reads (and maps) itself.
const HANDLED: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "top_k",
    "user",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
];

/// Valid OpenAI fields Anthropic has no way to carry: dropped, or refused when strict.
const UNSUPPORTED: &[&str] = &[
    "n",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "response_format",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "functions",
    "function_call",
];

/// Whether `model` takes extended thinking (`thinking: {type: enabled}`): Claude 3.7 and
/// every Claude of generation 4 or later, in both naming schemes (`claude-3-7-sonnet-…`,
/// `claude-sonnet-4-…`, `claude-opus-4-1`, `claude-haiku-4-5`), with or without a
/// provider prefix (`us.anthropic.claude-…`).
pub fn supports_thinking(model: &str) -> bool {
    let Some(at) = model.find("claude-") else {
        return false;
    };
    let mut parts = model
        .get(at + "claude-".len()..)
        .unwrap_or_default()
        .split('-');
    let first = parts.next().unwrap_or_default();
    let second = parts.next().unwrap_or_default();
    match first.parse::<u32>() {
        // `claude-3-7-sonnet`, `claude-3-5-haiku`, `claude-3-opus`.
        Ok(major) => major >= 4 || (major == 3 && second == "7"),
        // `claude-sonnet-4`, `claude-opus-4-1`: the family name comes first.
        Err(_) => second.parse::<u32>().is_ok_and(|major| major >= 4),
    }
}

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;

/// The thinking budget for an OpenAI `reasoning_effort` (`None` for `"none"`).
fn thinking_budget(effort: &Value) -> Result<Option<u64>, EncodeError> {
    match effort.as_str() {
        Some("none") => Ok(None),
        Some("minimal" | "low") => Ok(Some(1024)),
        Some("medium") => Ok(Some(4096)),
        Some("high") => Ok(Some(16384)),
        _ => Err(EncodeError::new(
            "`reasoning_effort` must be one of none, minimal, low, medium, high",
            Some("reasoning_effort".to_owned()),
        )),
    }
}

/// Whether Anthropic would refuse thinking on this request: a `tool_choice` that forces
/// a tool, or a last assistant turn with tool calls (Anthropic then wants that turn's
/// signed thinking block back, which an OpenAI client never has).
fn thinking_refused_by(out: &Map<String, Value>) -> bool {
    let forced = out
        .get("tool_choice")
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "any" || t == "tool");
    let last_assistant_called_tools = out
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|turns| {
            turns
                .iter()
                .rev()
                .find(|t| t.get("role") == Some(&json!("assistant")))
        })
        .and_then(|turn| turn.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        });
    forced || last_assistant_called_tools
}

/// Fields left out of the upstream request.
struct Drops {
    strict: bool,
    dropped: Vec<String>,
}

impl Drops {
    /// A valid field Anthropic cannot carry: refused when strict, else noted.
    fn unsupported(&mut self, field: &str) -> Result<(), EncodeError> {
        if self.strict {
            return Err(EncodeError::unsupported(NAME, field));
        }
        self.dropped.push(field.to_owned());
        Ok(())
    }
}

/// A request field, `null` counting as absent.
fn field<'a>(request: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    request.get(key).filter(|v| !v.is_null())
}

/// A 400 about `param`.
pub(super) fn invalid(message: impl Into<String>, param: impl Into<String>) -> EncodeError {
    EncodeError::new(message, Some(param.into()))
}

/// Builds the Messages request for an OpenAI chat request body; `path` is
/// [`MESSAGES_PATH`]. Fields Anthropic cannot carry are listed in `dropped`, or refused
/// with [`EncodeError::unsupported`] when the upstream is `strict`.
pub fn encode(body: &[u8], target: Target<'_>) -> Result<Encoded, EncodeError> {
    let mut request: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| EncodeError::new(format!("request body is not a JSON object: {e}"), None))?;
    let mut drops = Drops {
        strict: target.settings.strict,
        dropped: Vec::new(),
    };
    check_other_fields(&request, &mut drops)?;

    let mut out = Map::new();
    out.insert("model".into(), target.model.into());
    let messages = field(&request, "messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` must be an array", "messages"))?;
    let (system, turns) = encode_messages(messages)?;
    if !system.is_empty() {
        out.insert("system".into(), system.join("\n\n").into());
    }
    out.insert("messages".into(), Value::Array(turns));

    let asked_max = max_tokens_of(&request)?;
    let mut max_tokens = match asked_max {
        Some(n) => n,
        None => target
            .settings
            .default_max_tokens
            .unwrap_or(DEFAULT_MAX_TOKENS),
    };
    if let Some(stop) = field(&request, "stop") {
        let sequences = stop_sequences(stop)?;
        if !sequences.is_empty() {
            out.insert("stop_sequences".into(), sequences.into());
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = field(&request, key) {
            if !v.is_number() {
                return Err(invalid(format!("`{key}` must be a number"), key));
            }
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(v) = field(&request, "top_k") {
        if v.as_u64().is_none() {
            return Err(invalid("`top_k` must be a non-negative integer", "top_k"));
        }
        out.insert("top_k".into(), v.clone());
    }
    if let Some(user) = field(&request, "user") {
        let user = user
            .as_str()
            .ok_or_else(|| invalid("`user` must be a string", "user"))?;
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    let stream = field(&request, "stream") == Some(&Value::Bool(true));
    if stream {
        out.insert("stream".into(), true.into());
    }
    let include_usage = stream
        && field(&request, "stream_options")
            .and_then(|o| o.get("include_usage"))
            .is_some_and(|v| v == &Value::Bool(true));

    // Taken out of the request so that their schemas move into the output uncopied.
    if let Some(tools) = request.remove("tools").filter(|v| !v.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(invalid("`tools` must be an array", "tools"));
        };
        let tools = encode_tools(tools, &mut drops)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
            if let Some(choice) = encode_tool_choice(&request)? {
                out.insert("tool_choice".into(), choice);
            }
        }
    }

    if let Some(effort) = field(&request, "reasoning_effort") {
        // A client's own `max_tokens` is a cap: the budget fits under it (Anthropic
        // wants at least 1024 and less than `max_tokens`), or thinking is left out.
        let budget = thinking_budget(effort)?.and_then(|budget| match asked_max {
            None => Some(budget),
            Some(cap) if cap > MIN_THINKING_BUDGET => Some(budget.min(cap - 1)),
            Some(_) => {
                drops.dropped.push("reasoning_effort".to_owned());
                None
            }
        });
        if let Some(budget) = budget {
            if !supports_thinking(target.model) {
                drops.unsupported("reasoning_effort")?;
            } else if thinking_refused_by(&out) {
                // Valid for this model, but Anthropic would answer 400: left out and
                // noted, never refused, even when strict.
                drops.dropped.push("reasoning_effort".to_owned());
            } else {
                out.insert(
                    "thinking".into(),
                    json!({ "type": "enabled", "budget_tokens": budget }),
                );
                // The budget counts inside a defaulted `max_tokens`: room for the
                // answer is kept on top of it.
                if max_tokens <= budget {
                    max_tokens = max_tokens.saturating_add(budget);
                }
                // Thinking refuses a set temperature and top_k.
                for key in ["temperature", "top_k"] {
                    if out.remove(key).is_some() {
                        drops.unsupported(key)?;
                    }
                }
            }
        }
    }
    out.insert("max_tokens".into(), max_tokens.into());

    Ok(Encoded {
        path: MESSAGES_PATH.to_owned(),
        body: crate::raw::json_bytes(&out),
        stream,
        include_usage,
        dropped: drops.dropped,
    })
}

/// Refuses or notes every field outside [`HANDLED`]: [`UNSUPPORTED`] ones unless their
/// value is harmless (`n: 1`, `logprobs: false`, a zero penalty…), unknown ones are
/// noted only.
fn check_other_fields(request: &Map<String, Value>, drops: &mut Drops) -> Result<(), EncodeError> {
    for (key, value) in request {
        if value.is_null() || HANDLED.contains(&key.as_str()) {
            continue;
        }
        let harmless = match key.as_str() {
            "n" => value.as_u64() == Some(1),
            "logprobs" => value == &Value::Bool(false),
            "presence_penalty" | "frequency_penalty" => value.as_f64() == Some(0.0),
            "logit_bias" => value.as_object().is_some_and(Map::is_empty),
            "response_format" => value.get("type").and_then(Value::as_str) == Some("text"),
            "modalities" => value
                .as_array()
                .is_some_and(|m| m.iter().all(|x| x.as_str() == Some("text"))),
            _ => false,
        };
        if harmless {
            continue;
        }
        if UNSUPPORTED.contains(&key.as_str()) {
            drops.unsupported(key)?;
        } else {
            // Not something Anthropic is known to lack (`store`, `metadata`, a vendor
            // extension): left out, never refused.
            drops.dropped.push(key.clone());
        }
    }
    Ok(())
}

/// `max_completion_tokens`, else `max_tokens`.
fn max_tokens_of(request: &Map<String, Value>) -> Result<Option<u64>, EncodeError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = field(request, key) {
            let n = v
                .as_u64()
                .ok_or_else(|| invalid(format!("`{key}` must be a positive integer"), key))?;
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// `stop` (a string or an array of strings) as `stop_sequences`.
fn stop_sequences(stop: &Value) -> Result<Vec<Value>, EncodeError> {
    let bad = || invalid("`stop` must be a string or an array of strings", "stop");
    match stop {
        Value::String(s) => Ok(vec![s.as_str().into()]),
        Value::Array(items) => items
            .iter()
            .map(|s| s.as_str().map(Value::from).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// OpenAI function tools as Anthropic tools (`name`, `description`, `input_schema`).
fn encode_tools(tools: Vec<Value>, drops: &mut Drops) -> Result<Vec<Value>, EncodeError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, mut tool) in tools.into_iter().enumerate() {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        if kind != "function" {
            drops.unsupported(&format!("tools[{i}]"))?;
            continue;
        }
        let function = tool
            .get_mut("function")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| {
                invalid(
                    "a tool needs a `function` object",
                    format!("tools[{i}].function"),
                )
            })?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid(
                    "a function needs a `name`",
                    format!("tools[{i}].function.name"),
                )
            })?;
        let mut encoded = Map::new();
        encoded.insert("name".into(), name.into());
        if let Some(description) = function.get("description").and_then(Value::as_str) {
            encoded.insert("description".into(), description.into());
        }
        let schema = match function.remove("parameters") {
            None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
            Some(p @ Value::Object(_)) => p,
            Some(_) => {
                return Err(invalid(
                    "`parameters` must be a JSON Schema object",
                    format!("tools[{i}].function.parameters"),
                ))
            }
        };
        encoded.insert("input_schema".into(), schema);
        out.push(Value::Object(encoded));
    }
    Ok(out)
}

/// `tool_choice` and `parallel_tool_calls` as Anthropic's `tool_choice`.
fn encode_tool_choice(request: &Map<String, Value>) -> Result<Option<Value>, EncodeError> {
    let bad = || {
        invalid(
            "`tool_choice` must be auto, none, required or {type: function, function: {name}}",
            "tool_choice",
        )
    };
    let mut choice = match field(request, "tool_choice") {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "none" => json!({ "type": "none" }),
            "required" => json!({ "type": "any" }),
            _ => return Err(bad()),
        }),
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            Some(json!({ "type": "tool", "name": name }))
        }
        Some(_) => return Err(bad()),
    };
    let parallel = match field(request, "parallel_tool_calls") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid(
                "`parallel_tool_calls` must be a boolean",
                "parallel_tool_calls",
            ))
        }
    };
    if !parallel {
        let c = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if let Some(obj) = c.as_object_mut() {
            if obj.get("type").and_then(Value::as_str) != Some("none") {
                obj.insert("disable_parallel_tool_use".into(), true.into());
            }
        }
    }
    Ok(choice)
}
