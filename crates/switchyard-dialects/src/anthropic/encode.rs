//! OpenAI chat request → Anthropic Messages request: request-level fields (max_tokens,
//! stop, sampling, tools, tool_choice, thinking) and the list of fields Anthropic cannot
//! carry. The conversation itself is mapped in `messages.rs`; knows nothing of headers
//! or answers. The request is read as borrowed raw slices (tool schemas passed through
//! as their bytes) and the output written from typed structs, serialised once.

use super::messages::{encode_messages, Block, Turn};
use super::{DEFAULT_MAX_TOKENS, MESSAGES_PATH, NAME};
use crate::raw::{self, field, Fields, Raw};
use crate::translate::{EncodeError, Encoded, Target};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

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
fn thinking_budget(effort: Raw<'_>) -> Result<Option<u64>, EncodeError> {
    match raw::as_str(effort).as_deref() {
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

/// The Messages request written upstream.
#[derive(Serialize)]
struct Out<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    max_tokens: u64,
}

/// `metadata`.
#[derive(Serialize)]
struct Metadata<'a> {
    user_id: Cow<'a, str>,
}

/// `thinking`.
#[derive(Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u64,
}

/// An Anthropic tool.
#[derive(Serialize)]
struct Tool<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    input_schema: Schema<'a>,
}

/// A tool's `input_schema`: the client's JSON Schema as its bytes, or an empty object
/// schema.
#[derive(Serialize)]
#[serde(untagged)]
enum Schema<'a> {
    Given(&'a RawValue),
    Empty(EmptySchema),
}

/// `{"type":"object","properties":{}}`.
#[derive(Serialize)]
struct EmptySchema {
    #[serde(rename = "type")]
    kind: &'static str,
    properties: EmptyObject,
}

/// `{}`.
#[derive(Serialize)]
struct EmptyObject {}

/// Anthropic's `tool_choice`.
#[derive(Serialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

/// An OpenAI tool.
#[derive(Deserialize, Default)]
struct ToolIn<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    function: Raw<'a>,
}

/// An OpenAI tool's `function`.
#[derive(Deserialize)]
struct FunctionIn<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    description: Raw<'a>,
    #[serde(borrow)]
    parameters: Raw<'a>,
}

/// An object's `type` member.
#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
}

/// `stream_options`.
#[derive(Deserialize)]
struct StreamOptions<'a> {
    #[serde(borrow)]
    include_usage: Raw<'a>,
}

/// `tool_choice: {function: {name}}`.
#[derive(Deserialize)]
struct NamedChoice<'a> {
    #[serde(borrow)]
    function: Raw<'a>,
}

/// `function: {name}`.
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
}

/// Whether Anthropic would refuse thinking on this request: a `tool_choice` that forces
/// a tool, or a last assistant turn with tool calls (Anthropic then wants that turn's
/// signed thinking block back, which an OpenAI client never has).
fn thinking_refused_by(out: &Out<'_>) -> bool {
    let forced = out
        .tool_choice
        .as_ref()
        .is_some_and(|c| c.kind == "any" || c.kind == "tool");
    let last_assistant_called_tools = out
        .messages
        .iter()
        .rev()
        .find(|t| t.role == "assistant")
        .is_some_and(|turn| {
            turn.blocks
                .iter()
                .any(|b| matches!(b, Block::ToolUse { .. }))
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

/// A 400 about `param`.
pub(super) fn invalid(message: impl Into<String>, param: impl Into<String>) -> EncodeError {
    EncodeError::new(message, Some(param.into()))
}

/// Builds the Messages request for an OpenAI chat request body; `path` is
/// [`MESSAGES_PATH`]. Fields Anthropic cannot carry are listed in `dropped`, or refused
/// with [`EncodeError::unsupported`] when the upstream is `strict`.
pub fn encode(body: &[u8], target: Target<'_>) -> Result<Encoded, EncodeError> {
    let request: Fields<'_> = serde_json::from_slice(body)
        .map_err(|e| EncodeError::new(format!("request body is not a JSON object: {e}"), None))?;
    let mut drops = Drops {
        strict: target.settings.strict,
        dropped: Vec::new(),
    };
    check_other_fields(&request, &mut drops)?;

    let messages = raw::array(field(&request, "messages"))
        .ok_or_else(|| invalid("`messages` must be an array", "messages"))?;
    let (system, turns) = encode_messages(&messages)?;
    let mut out = Out {
        model: target.model,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages: turns,
        stop_sequences: None,
        temperature: None,
        top_p: None,
        top_k: None,
        metadata: None,
        stream: false,
        tools: Vec::new(),
        tool_choice: None,
        thinking: None,
        max_tokens: 0,
    };

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
            out.stop_sequences = Some(sequences);
        }
    }
    for (key, slot) in [
        ("temperature", &mut out.temperature),
        ("top_p", &mut out.top_p),
    ] {
        if let Some(v) = field(&request, key) {
            if !raw::is_number(Some(v)) {
                return Err(invalid(format!("`{key}` must be a number"), key));
            }
            *slot = Some(v);
        }
    }
    if let Some(v) = field(&request, "top_k") {
        if raw::as_u64(Some(v)).is_none() {
            return Err(invalid("`top_k` must be a non-negative integer", "top_k"));
        }
        out.top_k = Some(v);
    }
    if let Some(user) = field(&request, "user") {
        let user_id =
            raw::as_str(Some(user)).ok_or_else(|| invalid("`user` must be a string", "user"))?;
        out.metadata = Some(Metadata { user_id });
    }
    let stream = raw::as_bool(field(&request, "stream")) == Some(true);
    out.stream = stream;
    let include_usage = stream
        && raw::object::<StreamOptions<'_>>(field(&request, "stream_options"))
            .is_some_and(|o| raw::as_bool(o.include_usage) == Some(true));

    if let Some(tools) = field(&request, "tools") {
        let tools =
            raw::array(Some(tools)).ok_or_else(|| invalid("`tools` must be an array", "tools"))?;
        out.tools = encode_tools(tools, &mut drops)?;
        if !out.tools.is_empty() {
            out.tool_choice = encode_tool_choice(&request)?;
        }
    }

    if let Some(effort) = field(&request, "reasoning_effort") {
        // A client's own `max_tokens` is a cap: the budget fits under it (Anthropic
        // wants at least 1024 and less than `max_tokens`), or thinking is left out.
        let budget = thinking_budget(Some(effort))?.and_then(|budget| match asked_max {
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
                out.thinking = Some(Thinking {
                    kind: "enabled",
                    budget_tokens: budget,
                });
                // The budget counts inside a defaulted `max_tokens`: room for the
                // answer is kept on top of it.
                if max_tokens <= budget {
                    max_tokens = max_tokens.saturating_add(budget);
                }
                // Thinking refuses a set temperature and top_k.
                if out.temperature.take().is_some() {
                    drops.unsupported("temperature")?;
                }
                if out.top_k.take().is_some() {
                    drops.unsupported("top_k")?;
                }
            }
        }
    }
    out.max_tokens = max_tokens;

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
fn check_other_fields(request: &Fields<'_>, drops: &mut Drops) -> Result<(), EncodeError> {
    for (key, value) in request {
        let key: &str = &key.0;
        let value = Some(*value);
        if value.is_some_and(|v| v.get() == "null") || HANDLED.contains(&key) {
            continue;
        }
        let harmless = match key {
            "n" => raw::as_u64(value) == Some(1),
            "logprobs" => raw::as_bool(value) == Some(false),
            "presence_penalty" | "frequency_penalty" => raw::as_f64(value) == Some(0.0),
            "logit_bias" => raw::is_empty_object(value),
            "response_format" => raw::object::<Typed<'_>>(value)
                .and_then(|t| raw::as_str(t.kind))
                .is_some_and(|t| t == "text"),
            "modalities" => raw::array(value).is_some_and(|m| {
                m.iter()
                    .all(|x| raw::as_str(Some(x)).is_some_and(|x| x == "text"))
            }),
            _ => false,
        };
        if harmless {
            continue;
        }
        if UNSUPPORTED.contains(&key) {
            drops.unsupported(key)?;
        } else {
            // Not something Anthropic is known to lack (`store`, `metadata`, a vendor
            // extension): left out, never refused.
            drops.dropped.push(key.to_owned());
        }
    }
    Ok(())
}

/// `max_completion_tokens`, else `max_tokens`.
fn max_tokens_of(request: &Fields<'_>) -> Result<Option<u64>, EncodeError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = field(request, key) {
            let n = raw::as_u64(Some(v))
                .ok_or_else(|| invalid(format!("`{key}` must be a positive integer"), key))?;
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// `stop` (a string or an array of strings) as `stop_sequences`.
fn stop_sequences(stop: &RawValue) -> Result<Vec<Cow<'_, str>>, EncodeError> {
    let bad = || invalid("`stop` must be a string or an array of strings", "stop");
    if let Some(s) = raw::as_str(Some(stop)) {
        return Ok(vec![s]);
    }
    raw::array(Some(stop))
        .ok_or_else(bad)?
        .into_iter()
        .map(|s| raw::as_str(Some(s)).ok_or_else(bad))
        .collect()
}

/// OpenAI function tools as Anthropic tools (`name`, `description`, `input_schema`).
fn encode_tools<'a>(
    tools: Vec<&'a RawValue>,
    drops: &mut Drops,
) -> Result<Vec<Tool<'a>>, EncodeError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let tool: ToolIn<'a> = raw::object(Some(tool)).unwrap_or_default();
        let kind = raw::as_str(tool.kind);
        if kind.as_deref().unwrap_or("function") != "function" {
            drops.unsupported(&format!("tools[{i}]"))?;
            continue;
        }
        let function: FunctionIn<'a> = raw::object(tool.function).ok_or_else(|| {
            invalid(
                "a tool needs a `function` object",
                format!("tools[{i}].function"),
            )
        })?;
        let name = raw::as_str(function.name).ok_or_else(|| {
            invalid(
                "a function needs a `name`",
                format!("tools[{i}].function.name"),
            )
        })?;
        let input_schema = match function.parameters {
            None => Schema::Empty(EmptySchema {
                kind: "object",
                properties: EmptyObject {},
            }),
            Some(p) if p.get().starts_with('{') => Schema::Given(p),
            Some(_) => {
                return Err(invalid(
                    "`parameters` must be a JSON Schema object",
                    format!("tools[{i}].function.parameters"),
                ))
            }
        };
        out.push(Tool {
            name,
            description: raw::as_str(function.description),
            input_schema,
        });
    }
    Ok(out)
}

/// `tool_choice` and `parallel_tool_calls` as Anthropic's `tool_choice`.
fn encode_tool_choice<'a>(request: &Fields<'a>) -> Result<Option<ToolChoice<'a>>, EncodeError> {
    let bad = || {
        invalid(
            "`tool_choice` must be auto, none, required or {type: function, function: {name}}",
            "tool_choice",
        )
    };
    let simple = |kind| ToolChoice {
        kind,
        name: None,
        disable_parallel_tool_use: None,
    };
    let choice = field(request, "tool_choice");
    let mut choice = match choice {
        None => None,
        Some(c) if c.get().starts_with('"') => {
            Some(match raw::as_str(Some(c)).ok_or_else(bad)?.as_ref() {
                "auto" => simple("auto"),
                "none" => simple("none"),
                "required" => simple("any"),
                _ => return Err(bad()),
            })
        }
        Some(c) if c.get().starts_with('{') => {
            let name = raw::object::<NamedChoice<'a>>(Some(c))
                .and_then(|o| raw::object::<Named<'a>>(o.function))
                .and_then(|f| raw::as_str(f.name))
                .ok_or_else(bad)?;
            Some(ToolChoice {
                kind: "tool",
                name: Some(name),
                disable_parallel_tool_use: None,
            })
        }
        Some(_) => return Err(bad()),
    };
    let parallel = match field(request, "parallel_tool_calls") {
        None => true,
        Some(v) => raw::as_bool(Some(v)).ok_or_else(|| {
            invalid(
                "`parallel_tool_calls` must be a boolean",
                "parallel_tool_calls",
            )
        })?,
    };
    if !parallel {
        let c = choice.get_or_insert_with(|| simple("auto"));
        if c.kind != "none" {
            c.disable_parallel_tool_use = Some(true);
        }
    }
    Ok(choice)
}
