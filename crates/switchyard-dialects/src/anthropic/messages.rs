//! OpenAI chat `messages` → Anthropic `system` + alternating `messages`: system and
//! developer messages hoisted, consecutive same-role turns merged, tool results as user
//! turns, images and PDFs as blocks, tool calls as `tool_use`. Request-level fields are
//! `encode.rs`'s.

use super::encode::invalid;
use crate::translate::{parse_data_url, text_of, EncodeError};
use serde_json::{json, Value};

/// One Anthropic turn being built: consecutive same-role messages are merged into it.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// The system prompt parts and the alternating `messages`.
pub(super) fn encode_messages(
    messages: &[Value],
) -> Result<(Vec<String>, Vec<Value>), EncodeError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).ok_or_else(|| {
            invalid(
                "every message needs a string `role`",
                format!("messages[{i}].role"),
            )
        })?;
        let content = message.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            "system" | "developer" => {
                let text = system_text(content, i)?;
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            "user" => ("user", user_blocks(content, i)?),
            "assistant" => ("assistant", assistant_blocks(message, i)?),
            // Tool results travel in a user turn.
            "tool" => ("user", vec![tool_result(message, i)?]),
            other => {
                return Err(invalid(
                    format!("message role `{other}` is not supported by the anthropic API"),
                    format!("messages[{i}].role"),
                ))
            }
        };
        if role == "assistant" && blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => turns.push(Turn { role, blocks }),
        }
    }
    let turns = turns
        .into_iter()
        .map(|t| json!({ "role": t.role, "content": content_value(t.blocks) }))
        .collect();
    Ok((system, turns))
}

/// A turn's content: a plain string when it is one text block, else the blocks.
fn content_value(blocks: Vec<Value>) -> Value {
    if blocks.len() == 1 {
        if let Some(Value::Object(block)) = blocks.first() {
            if block.len() == 2 && block.get("type").and_then(Value::as_str) == Some("text") {
                if let Some(text) = block.get("text") {
                    return text.clone();
                }
            }
        }
    }
    if blocks.is_empty() {
        return Value::String(String::new());
    }
    Value::Array(blocks)
}

fn text_block(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

/// A system or developer message's text (a string, or its text parts joined).
fn system_text(content: &Value, i: usize) -> Result<String, EncodeError> {
    match content {
        Value::String(_) | Value::Array(_) | Value::Null => Ok(text_of(content)),
        _ => Err(invalid(
            "`content` must be a string or an array of parts",
            format!("messages[{i}].content"),
        )),
    }
}

fn user_blocks(content: &Value, i: usize) -> Result<Vec<Value>, EncodeError> {
    let parts = match content {
        Value::Null => return Ok(Vec::new()),
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![text_block(s)]),
        Value::Array(parts) => parts,
        _ => {
            return Err(invalid(
                "`content` must be a string or an array of parts",
                format!("messages[{i}].content"),
            ))
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("a text part needs `text`", format!("{at}.text")))?;
                if !text.is_empty() {
                    blocks.push(text_block(text));
                }
            }
            Some("image_url") => {
                let image = part.get("image_url");
                let url = image
                    .and_then(|u| u.get("url"))
                    .or(image)
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(
                            "an image part needs `image_url.url`",
                            format!("{at}.image_url.url"),
                        )
                    })?;
                blocks.push(image_block(url, &at)?);
            }
            Some("file") => blocks.push(document_block(part, &at)?),
            other => {
                return Err(invalid(
                    format!(
                        "content part type `{}` is not supported by the anthropic API",
                        other.unwrap_or("(none)")
                    ),
                    format!("{at}.type"),
                ))
            }
        }
    }
    Ok(blocks)
}

/// An image part: a `data:` URL as base64, an http(s) URL by reference.
fn image_block(url: &str, at: &str) -> Result<Value, EncodeError> {
    if let Some((media_type, data)) = parse_data_url(url) {
        return Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(invalid(
        "an image URL must be an http(s) URL or a base64 data: URL",
        format!("{at}.image_url.url"),
    ))
}

/// A `file` part with inline data (`file.file_data`, a base64 `data:` URL, e.g. a PDF)
/// as a document block.
fn document_block(part: &Value, at: &str) -> Result<Value, EncodeError> {
    let (media_type, data) = part
        .get("file")
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str)
        .and_then(parse_data_url)
        .ok_or_else(|| {
            invalid(
                "a file part needs `file.file_data` as a base64 data: URL (file ids are not supported by the anthropic API)",
                format!("{at}.file.file_data"),
            )
        })?;
    Ok(json!({
        "type": "document",
        "source": { "type": "base64", "media_type": media_type, "data": data },
    }))
}

/// An assistant message: its text, then its tool calls as `tool_use` blocks.
fn assistant_blocks(message: &Value, i: usize) -> Result<Vec<Value>, EncodeError> {
    let mut blocks = Vec::new();
    match message.get("content").unwrap_or(&Value::Null) {
        Value::Null => {}
        Value::String(s) => {
            if !s.is_empty() {
                blocks.push(text_block(s));
            }
        }
        Value::Array(parts) => {
            for part in parts {
                let text = part
                    .get("text")
                    .or_else(|| part.get("refusal"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !text.is_empty() {
                    blocks.push(text_block(text));
                }
            }
        }
        _ => {
            return Err(invalid(
                "`content` must be a string or an array of parts",
                format!("messages[{i}].content"),
            ))
        }
    }
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(invalid(
                "`tool_calls` must be an array",
                format!("messages[{i}].tool_calls"),
            ))
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let at = format!("messages[{i}].tool_calls[{j}]");
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("a tool call needs an `id`", format!("{at}.id")))?;
        let function = call.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid(
                    "a tool call needs `function.name`",
                    format!("{at}.function.name"),
                )
            })?;
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let input = if arguments.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str::<Value>(arguments) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) | Err(_) => {
                    return Err(invalid(
                        "tool call arguments must be a JSON object",
                        format!("{at}.function.arguments"),
                    ))
                }
            }
        };
        blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
    }
    Ok(blocks)
}

/// A `tool` message as a `tool_result` block.
fn tool_result(message: &Value, i: usize) -> Result<Value, EncodeError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                "a tool message needs `tool_call_id`",
                format!("messages[{i}].tool_call_id"),
            )
        })?;
    let content = text_of(message.get("content").unwrap_or(&Value::Null));
    Ok(json!({ "type": "tool_result", "tool_use_id": id, "content": content }))
}
