//! OpenAI chat request → Ollama `/api/chat` request. Owns the field mapping (messages,
//! images, tool calls, `options`, `format`, `think`, `keep_alive`) and the decision,
//! per field, to carry, drop (listed in [`Encoded::dropped`]) or refuse (`strict`).

use super::{CHAT_PATH, DIALECT};
use crate::translate::{parse_data_url, text_of, EncodeError, Encoded, Target};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Builds the `/api/chat` request for an OpenAI chat request body. `stream` is always
/// written (Ollama streams when it is absent).
pub fn encode(body: &[u8], target: Target<'_>) -> Result<Encoded, EncodeError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| EncodeError::new(format!("request body is not valid JSON: {e}"), None))?;
    let Value::Object(mut request) = request else {
        return Err(EncodeError::new("request body must be a JSON object", None));
    };
    let mut enc = Encoder {
        strict: target.settings.strict,
        dropped: Vec::new(),
    };

    let stream = match request.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("`stream` must be a boolean", "stream")),
    };
    let include_usage = request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        == Some(&Value::Bool(true));

    let messages = match request.get("messages") {
        Some(Value::Array(messages)) => enc.messages(messages)?,
        _ => return Err(bad("`messages` must be an array", "messages")),
    };

    let mut out = Map::new();
    out.insert("model".into(), target.model.into());
    out.insert("messages".into(), Value::Array(messages));
    out.insert("stream".into(), stream.into());

    let mut options = Map::new();
    let mut has_tools = false;
    let mut tools_off = false;
    for (key, value) in &request {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "messages" | "stream" | "stream_options" => {}
            // Taken below, `max_completion_tokens` first.
            "max_tokens" | "max_completion_tokens" => {}
            "temperature" | "top_p" | "seed" | "presence_penalty" | "frequency_penalty" => {
                if !value.is_number() {
                    return Err(bad(format!("`{key}` must be a number"), key));
                }
                options.insert(key.clone(), value.clone());
            }
            "stop" => {
                let stop = match value {
                    Value::String(s) => vec![Value::String(s.clone())],
                    Value::Array(items) if items.iter().all(Value::is_string) => items.clone(),
                    _ => return Err(bad("`stop` must be a string or an array of strings", key)),
                };
                options.insert("stop".into(), Value::Array(stop));
            }
            "response_format" => {
                if let Some(format) = response_format(value)? {
                    out.insert("format".into(), format);
                }
            }
            "tools" => {
                if !value.is_array() {
                    return Err(bad("`tools` must be an array", key));
                }
                has_tools = true;
            }
            "tool_choice" => match value.as_str() {
                Some("auto") => {}
                // No tools offered is how Ollama is told not to call one.
                Some("none") => tools_off = true,
                _ => enc.unsupported(key)?,
            },
            "reasoning_effort" => match value.as_str() {
                Some("none") => {
                    out.insert("think".into(), false.into());
                }
                Some(_) => {
                    out.insert("think".into(), true.into());
                }
                None => return Err(bad("`reasoning_effort` must be a string", key)),
            },
            "n" if value.as_u64() == Some(1) => {}
            "logprobs" if value == &Value::Bool(false) => {}
            // Ollama may answer with several calls; it cannot promise one at most.
            "parallel_tool_calls" if value == &Value::Bool(true) => {}
            _ => enc.unsupported(key)?,
        }
    }

    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|key| {
            request
                .get(*key)
                .filter(|v| !v.is_null())
                .map(|v| (*key, v))
        });
    match max_tokens {
        Some((key, value)) => {
            let Some(n) = value.as_u64() else {
                return Err(bad(format!("`{key}` must be a non-negative integer"), key));
            };
            options.insert("num_predict".into(), n.into());
        }
        None => {
            if let Some(n) = target.settings.default_max_tokens {
                options.insert("num_predict".into(), n.into());
            }
        }
    }
    if let Some(num_ctx) = target.settings.num_ctx {
        options.insert("num_ctx".into(), num_ctx.into());
    }
    if !options.is_empty() {
        out.insert("options".into(), Value::Object(options));
    }
    // Moved out of the request (schemas and all), not copied.
    let tools = has_tools.then(|| request.remove("tools")).flatten();
    if let Some(tools) = tools.filter(|_| !tools_off) {
        out.insert("tools".into(), tools);
    }
    if let Some(keep_alive) = &target.settings.keep_alive {
        out.insert("keep_alive".into(), keep_alive_value(keep_alive));
    }

    Ok(Encoded {
        path: CHAT_PATH.to_owned(),
        body: crate::raw::json_bytes(&out),
        stream,
        include_usage,
        dropped: enc.dropped,
    })
}

/// An error about `param`.
fn bad(message: impl Into<String>, param: impl Into<String>) -> EncodeError {
    EncodeError::new(message, Some(param.into()))
}

/// `keep_alive` as Ollama parses it: a number of seconds (`-1`: forever) must be a
/// JSON number — a string goes through Go's duration parser, which wants a unit.
fn keep_alive_value(keep_alive: &str) -> Value {
    let trimmed = keep_alive.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return n.into();
    }
    match trimmed
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Some(n) => Value::Number(n),
        None => Value::String(trimmed.to_owned()),
    }
}

/// `response_format` → Ollama `format`: `"json"`, a JSON schema, or nothing (`text`).
fn response_format(value: &Value) -> Result<Option<Value>, EncodeError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Value::String("json".into()))),
        Some("json_schema") => match value.get("json_schema").and_then(|s| s.get("schema")) {
            Some(schema @ Value::Object(_)) => Ok(Some(schema.clone())),
            _ => Err(bad(
                "`response_format.json_schema.schema` must be a JSON schema object",
                "response_format.json_schema.schema",
            )),
        },
        _ => Err(bad(
            "`response_format.type` must be `text`, `json_object` or `json_schema`",
            "response_format.type",
        )),
    }
}

/// Per-request state: what was dropped, and how.
struct Encoder {
    strict: bool,
    dropped: Vec<String>,
}

impl Encoder {
    /// A valid OpenAI field Ollama cannot carry: dropped, or refused under `strict`.
    fn unsupported(&mut self, field: &str) -> Result<(), EncodeError> {
        if self.strict {
            return Err(EncodeError::unsupported(DIALECT, field));
        }
        self.dropped.push(field.to_owned());
        Ok(())
    }

    fn messages(&mut self, messages: &[Value]) -> Result<Vec<Value>, EncodeError> {
        // Tool call id → function name, from the assistant turns read so far: a tool
        // result names its function (`tool_name`).
        let mut call_names: HashMap<String, String> = HashMap::new();
        let mut out = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let at = format!("messages[{i}]");
            let Value::Object(message) = message else {
                return Err(bad(format!("`{at}` must be an object"), at));
            };
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            let mut m = Map::new();
            let content = message.get("content").unwrap_or(&Value::Null);
            match role {
                "system" | "developer" | "user" => {
                    let role = if role == "user" { "user" } else { "system" };
                    m.insert("role".into(), role.into());
                    let (text, images) = self.content(content, &at)?;
                    m.insert("content".into(), text.into());
                    if !images.is_empty() {
                        m.insert("images".into(), images.into());
                    }
                }
                "assistant" => {
                    m.insert("role".into(), "assistant".into());
                    let (text, _no_images_in_answers) = self.content(content, &at)?;
                    m.insert("content".into(), text.into());
                    if let Some(thinking) = message
                        .get("reasoning_content")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        m.insert("thinking".into(), thinking.into());
                    }
                    if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
                        let calls = tool_calls(calls, &at, &mut call_names)?;
                        if !calls.is_empty() {
                            m.insert("tool_calls".into(), calls.into());
                        }
                    }
                }
                "tool" | "function" => {
                    m.insert("role".into(), "tool".into());
                    m.insert("content".into(), text_of(content).into());
                    let name = if role == "function" {
                        message.get("name").and_then(Value::as_str)
                    } else {
                        message
                            .get("tool_call_id")
                            .and_then(Value::as_str)
                            .and_then(|id| call_names.get(id))
                            .map(String::as_str)
                    };
                    if let Some(name) = name {
                        m.insert("tool_name".into(), name.into());
                    }
                }
                _ => {
                    return Err(bad(
                        format!("`{at}.role` must be system, developer, user, assistant or tool"),
                        format!("{at}.role"),
                    ))
                }
            }
            out.push(Value::Object(m));
        }
        Ok(out)
    }

    /// A message's content as Ollama's text plus its `images` (base64 of `data:` URLs).
    fn content(&mut self, content: &Value, at: &str) -> Result<(String, Vec<Value>), EncodeError> {
        let parts = match content {
            Value::Null => return Ok((String::new(), Vec::new())),
            Value::String(s) => return Ok((s.clone(), Vec::new())),
            Value::Array(parts) => parts,
            _ => {
                return Err(bad(
                    format!("`{at}.content` must be a string or an array of parts"),
                    format!("{at}.content"),
                ))
            }
        };
        let mut images = Vec::new();
        for (j, part) in parts.iter().enumerate() {
            let part_at = format!("{at}.content[{j}]");
            match part.get("type").and_then(Value::as_str) {
                Some("text") => {}
                Some("image_url") => {
                    let url = part
                        .get("image_url")
                        .and_then(|u| u.get("url").or(Some(u)))
                        .and_then(Value::as_str);
                    match url.and_then(parse_data_url) {
                        Some((_media, data)) => images.push(Value::String(data.to_owned())),
                        // Ollama takes image bytes only; a link is not fetched here.
                        None => self.unsupported(&format!("{part_at}.image_url"))?,
                    }
                }
                _ => self.unsupported(&part_at)?,
            }
        }
        Ok((text_of(content), images))
    }
}

/// Assistant `tool_calls` → Ollama's, arguments parsed from their JSON string; records
/// each call's name under its id.
fn tool_calls(
    calls: &Value,
    at: &str,
    call_names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, EncodeError> {
    let Value::Array(calls) = calls else {
        return Err(bad(
            format!("`{at}.tool_calls` must be an array"),
            format!("{at}.tool_calls"),
        ));
    };
    let mut out = Vec::with_capacity(calls.len());
    for (j, call) in calls.iter().enumerate() {
        let call_at = format!("{at}.tool_calls[{j}]");
        let function = call.get("function").unwrap_or(&Value::Null);
        let Some(name) = function.get("name").and_then(Value::as_str) else {
            return Err(bad(
                format!("`{call_at}.function.name` must be a string"),
                format!("{call_at}.function.name"),
            ));
        };
        let arguments = match function.get("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(object @ Value::Object(_)) => object,
                Ok(_) => {
                    return Err(bad(
                        format!("`{call_at}.function.arguments` must encode a JSON object"),
                        format!("{call_at}.function.arguments"),
                    ))
                }
                Err(e) => {
                    return Err(bad(
                        format!("`{call_at}.function.arguments` is not valid JSON: {e}"),
                        format!("{call_at}.function.arguments"),
                    ))
                }
            },
            Some(_) => {
                return Err(bad(
                    format!("`{call_at}.function.arguments` must be a JSON string"),
                    format!("{call_at}.function.arguments"),
                ))
            }
        };
        if let Some(id) = call.get("id").and_then(Value::as_str) {
            call_names.insert(id.to_owned(), name.to_owned());
        }
        let mut f = Map::new();
        f.insert("name".into(), name.into());
        f.insert("arguments".into(), arguments);
        let mut c = Map::new();
        c.insert("function".into(), Value::Object(f));
        out.push(Value::Object(c));
    }
    Ok(out)
}
