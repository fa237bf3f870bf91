//! An Anthropic Messages request turned into an OpenAI chat request. Validates what the
//! translation reads (a malformed request is the client's 400, never sent upstream);
//! fields OpenAI has no use for (`top_k`, `cache_control`, thinking history) are dropped.

use crate::translate::EncodeError;
use bytes::Bytes;
use serde_json::{json, Map, Value};

/// An OpenAI chat request built from an Anthropic Messages request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The OpenAI chat JSON body.
    pub body: Bytes,
    /// The `model` the client asked for.
    pub model: String,
    /// Whether the client asked for a stream (the body then asks for a usage chunk).
    pub stream: bool,
}

fn bad(message: impl Into<String>, param: impl Into<String>) -> EncodeError {
    EncodeError::new(message, Some(param.into()))
}

/// Translates an Anthropic Messages request body into an OpenAI chat request. An
/// invalid request (not JSON, no `model`, no `messages`, `max_tokens` not a positive
/// integer, an unknown block…) is an [`EncodeError`] naming the field.
pub fn request_to_chat(body: &[u8]) -> Result<ChatRequest, EncodeError> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| EncodeError::new(format!("request body is not valid JSON: {e}"), None))?;
    let Value::Object(req) = parsed else {
        return Err(EncodeError::new("request body must be a JSON object", None));
    };
    let model = match req.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(bad("model: a non-empty string is required", "model")),
    };
    let max_tokens = req
        .get("max_tokens")
        .ok_or_else(|| bad("max_tokens: Field required", "max_tokens"))?
        .as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad("max_tokens: must be a positive integer", "max_tokens"))?;
    let stream = match req.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream: must be a boolean", "stream")),
    };

    let mut messages = Vec::new();
    if let Some(system) = req.get("system") {
        let text = system_text(system)?;
        if !text.is_empty() {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }
    let Some(Value::Array(input)) = req.get("messages") else {
        return Err(bad("messages: an array is required", "messages"));
    };
    for (i, message) in input.iter().enumerate() {
        convert_message(i, message, &mut messages)?;
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.clone()));
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), max_tokens.into());
    for key in ["temperature", "top_p"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(key.into(), v.clone());
            }
            Some(_) => return Err(bad(format!("{key}: must be a number"), key)),
        }
    }
    if let Some(stop) = stop_sequences(req.get("stop_sequences"))? {
        out.insert("stop".into(), stop);
    }
    if let Some(user) = req
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }
    if stream {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(tools) = req.get("tools") {
        let tools = convert_tools(tools)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = req.get("tool_choice") {
        convert_tool_choice(choice, &mut out)?;
    }
    if let Some(effort) = reasoning_effort(req.get("thinking"))? {
        out.insert("reasoning_effort".into(), effort.into());
    }
    Ok(ChatRequest {
        body: crate::raw::json_bytes(&out),
        model,
        stream,
    })
}

/// `system` as one string: a string, or its text blocks joined with a newline.
fn system_text(system: &Value) -> Result<String, EncodeError> {
    match system {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let text = block
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|_| block.get("type").and_then(Value::as_str) == Some("text"))
                    .ok_or_else(|| {
                        bad(
                            "system: only text blocks are supported",
                            format!("system[{j}]"),
                        )
                    })?;
                texts.push(text);
            }
            Ok(texts.join("\n"))
        }
        _ => Err(bad(
            "system: must be a string or an array of text blocks",
            "system",
        )),
    }
}

fn convert_message(i: usize, message: &Value, out: &mut Vec<Value>) -> Result<(), EncodeError> {
    let Some(role @ ("user" | "assistant")) = message.get("role").and_then(Value::as_str) else {
        return Err(bad(
            "role: must be `user` or `assistant`",
            format!("messages[{i}].role"),
        ));
    };
    match message.get("content") {
        Some(Value::String(text)) => {
            out.push(json!({ "role": role, "content": text }));
            Ok(())
        }
        Some(Value::Array(blocks)) if role == "user" => user_blocks(i, blocks, out),
        Some(Value::Array(blocks)) => assistant_blocks(i, blocks, out),
        _ => Err(bad(
            "content: must be a string or an array of content blocks",
            format!("messages[{i}].content"),
        )),
    }
}

fn block_type(block: &Value) -> &str {
    block.get("type").and_then(Value::as_str).unwrap_or("")
}

fn text_field<'a>(block: &'a Value, param: &str) -> Result<&'a str, EncodeError> {
    block.get("text").and_then(Value::as_str).ok_or_else(|| {
        bad(
            "text block: `text` must be a string",
            format!("{param}.text"),
        )
    })
}

/// A user turn: each `tool_result` becomes a `tool` message, placed before one user
/// message with the remaining text and images (images of tool results included:
/// OpenAI's tool messages carry text only).
fn user_blocks(i: usize, blocks: &[Value], out: &mut Vec<Value>) -> Result<(), EncodeError> {
    let mut tool_messages = Vec::new();
    let mut tool_images = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match block_type(block) {
            "text" => parts.push(json!({ "type": "text", "text": text_field(block, &param)? })),
            "image" => parts.push(image_part(block, &param)?),
            "tool_result" => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        bad(
                            "tool_result: `tool_use_id` is required",
                            format!("{param}.tool_use_id"),
                        )
                    })?;
                let content = tool_result_content(block.get("content"), &param, &mut tool_images)?;
                tool_messages
                    .push(json!({ "role": "tool", "tool_call_id": id, "content": content }));
            }
            other => return Err(unsupported_block(other, &param)),
        }
    }
    let had_tools = !tool_messages.is_empty();
    out.append(&mut tool_messages);
    tool_images.append(&mut parts);
    let parts = tool_images;
    let content = match parts.as_slice() {
        [] if had_tools => return Ok(()),
        [] => Value::String(String::new()),
        [only] if block_type(only) == "text" => only.get("text").cloned().unwrap_or_default(),
        _ => Value::Array(parts),
    };
    out.push(json!({ "role": "user", "content": content }));
    Ok(())
}

fn tool_result_content(
    content: Option<&Value>,
    param: &str,
    images: &mut Vec<Value>,
) -> Result<String, EncodeError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut text = String::new();
            for (k, block) in blocks.iter().enumerate() {
                let param = format!("{param}.content[{k}]");
                match block_type(block) {
                    "text" => text.push_str(text_field(block, &param)?),
                    "image" => images.push(image_part(block, &param)?),
                    other => return Err(unsupported_block(other, &param)),
                }
            }
            Ok(text)
        }
        Some(_) => Err(bad(
            "tool_result: `content` must be a string or an array of blocks",
            format!("{param}.content"),
        )),
    }
}

fn assistant_blocks(i: usize, blocks: &[Value], out: &mut Vec<Value>) -> Result<(), EncodeError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match block_type(block) {
            "text" => text.push_str(text_field(block, &param)?),
            "tool_use" => {
                let id = block.get("id").and_then(Value::as_str);
                let name = block.get("name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(bad("tool_use: `id` and `name` are required", param));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": crate::raw::json_string(&input) },
                }));
            }
            // Earlier reasoning is not sent back to an OpenAI upstream.
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(other, &param)),
        }
    }
    let mut message = json!({ "role": "assistant" });
    message["content"] = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    out.push(message);
    Ok(())
}

fn unsupported_block(kind: &str, param: &str) -> EncodeError {
    bad(
        format!("content block type `{kind}` is not supported here"),
        format!("{param}.type"),
    )
}

/// An `image` block as an OpenAI `image_url` part (base64 → a `data:` URL).
fn image_part(block: &Value, param: &str) -> Result<Value, EncodeError> {
    let source = block.get("source");
    let field = |key: &str| source.and_then(|s| s.get(key)).and_then(Value::as_str);
    let url = match field("type") {
        Some("base64") => match (field("media_type"), field("data")) {
            (Some(media), Some(data)) => format!("data:{media};base64,{data}"),
            _ => {
                return Err(bad(
                    "image: a base64 source needs `media_type` and `data`",
                    format!("{param}.source"),
                ))
            }
        },
        Some("url") => field("url")
            .ok_or_else(|| {
                bad(
                    "image: a url source needs `url`",
                    format!("{param}.source.url"),
                )
            })?
            .to_owned(),
        _ => {
            return Err(bad(
                "image: `source.type` must be `base64` or `url`",
                format!("{param}.source.type"),
            ))
        }
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

fn stop_sequences(value: Option<&Value>) -> Result<Option<Value>, EncodeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok((!items.is_empty()).then(|| Value::Array(items.clone())))
        }
        Some(_) => Err(bad(
            "stop_sequences: must be an array of strings",
            "stop_sequences",
        )),
    }
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, EncodeError> {
    let Value::Array(tools) = tools else {
        return Err(bad("tools: must be an array", "tools"));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if let Some(kind) = tool.get("type").and_then(Value::as_str) {
            if kind != "custom" {
                return Err(bad(
                    format!("tool type `{kind}` (an Anthropic server tool) is not supported here"),
                    format!("tools[{i}].type"),
                ));
            }
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("tool: `name` is required", format!("tools[{i}].name")))?;
        let schema = tool
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| {
                bad(
                    "tool: `input_schema` must be an object",
                    format!("tools[{i}].input_schema"),
                )
            })?;
        let mut function = json!({ "name": name, "parameters": schema });
        if let Some(description) = tool.get("description").and_then(Value::as_str) {
            function["description"] = description.into();
        }
        out.push(json!({ "type": "function", "function": function }));
    }
    Ok(out)
}

fn convert_tool_choice(choice: &Value, out: &mut Map<String, Value>) -> Result<(), EncodeError> {
    let converted = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                bad(
                    "tool_choice: type `tool` needs a `name`",
                    "tool_choice.name",
                )
            })?;
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => {
            return Err(bad(
                "tool_choice: `type` must be auto, any, tool or none",
                "tool_choice.type",
            ))
        }
    };
    out.insert("tool_choice".into(), converted);
    if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
        out.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

/// `thinking: {type: enabled, budget_tokens}` as OpenAI's `reasoning_effort`.
fn reasoning_effort(thinking: Option<&Value>) -> Result<Option<&'static str>, EncodeError> {
    let Some(thinking) = thinking.filter(|t| !t.is_null()) else {
        return Ok(None);
    };
    match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    bad(
                        "thinking: `budget_tokens` must be a positive integer",
                        "thinking.budget_tokens",
                    )
                })?;
            Ok(Some(match budget {
                0..=2048 => "low",
                2049..=8192 => "medium",
                _ => "high",
            }))
        }
        // `disabled`, `adaptive`: the upstream's default.
        Some(_) => Ok(None),
        None => Err(bad("thinking: `type` is required", "thinking.type")),
    }
}
