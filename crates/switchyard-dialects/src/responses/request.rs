//! A Responses API request turned into an OpenAI chat request. Validates what the
//! translation reads (a malformed request is the client's 400, never sent upstream);
//! fields a chat upstream has no use for (`store`, `metadata`, `include`, `truncation`)
//! are dropped, features it cannot serve (hosted tools, `previous_response_id`) refused.

use crate::translate::EncodeError;
use bytes::Bytes;
use serde_json::{json, Map, Value};

/// An OpenAI chat request built from a Responses request.
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

/// Translates a Responses request body (`POST /v1/responses`) into an OpenAI chat
/// request. An invalid or unservable request (not JSON, no `model`, no `input`, a
/// hosted tool, `previous_response_id`…) is an [`EncodeError`] naming the field.
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
    for key in ["previous_response_id", "conversation", "prompt"] {
        if !matches!(req.get(key), None | Some(Value::Null)) {
            return Err(bad(
                format!(
                    "{key}: not supported when the upstream has no Responses API; \
                     send the whole conversation in input"
                ),
                key,
            ));
        }
    }
    if req.get("background") == Some(&Value::Bool(true)) {
        return Err(bad(
            "background: not supported when the upstream has no Responses API",
            "background",
        ));
    }
    let stream = match req.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream: must be a boolean", "stream")),
    };

    let mut messages = Vec::new();
    match req.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                messages.push(json!({ "role": "system", "content": text }));
            }
        }
        Some(_) => return Err(bad("instructions: must be a string", "instructions")),
    }
    match req.get("input") {
        Some(Value::String(text)) => messages.push(json!({ "role": "user", "content": text })),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                convert_item(i, item, &mut messages)?;
            }
        }
        _ => {
            return Err(bad(
                "input: a string or an array of input items is required",
                "input",
            ))
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.clone()));
    out.insert("messages".into(), Value::Array(messages));
    match req.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let n = v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                bad(
                    "max_output_tokens: must be a positive integer",
                    "max_output_tokens",
                )
            })?;
            out.insert("max_completion_tokens".into(), n.into());
        }
    }
    for (key, ok) in [
        ("temperature", Value::is_number as fn(&Value) -> bool),
        ("top_p", Value::is_number),
        ("user", Value::is_string),
        ("parallel_tool_calls", Value::is_boolean),
        ("service_tier", Value::is_string),
        ("prompt_cache_key", Value::is_string),
        ("safety_identifier", Value::is_string),
    ] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if ok(v) => {
                out.insert(key.into(), v.clone());
            }
            Some(_) => return Err(bad(format!("{key}: wrong type"), key)),
        }
    }
    if stream {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(tools) = req.get("tools").filter(|t| !t.is_null()) {
        let tools = convert_tools(tools)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = req.get("tool_choice").filter(|c| !c.is_null()) {
        out.insert("tool_choice".into(), convert_tool_choice(choice)?);
    }
    match req.get("text").and_then(|t| t.get("verbosity")) {
        None | Some(Value::Null) => {}
        Some(Value::String(verbosity)) => {
            out.insert("verbosity".into(), verbosity.clone().into());
        }
        Some(_) => return Err(bad("text.verbosity: must be a string", "text.verbosity")),
    }
    if let Some(format) = req.get("text").and_then(|t| t.get("format")) {
        if let Some(format) = convert_format(format)? {
            out.insert("response_format".into(), format);
        }
    }
    match req.get("reasoning").and_then(|r| r.get("effort")) {
        None | Some(Value::Null) => {}
        Some(Value::String(effort)) => {
            out.insert("reasoning_effort".into(), effort.clone().into());
        }
        Some(_) => {
            return Err(bad(
                "reasoning.effort: must be a string",
                "reasoning.effort",
            ))
        }
    }
    Ok(ChatRequest {
        body: Bytes::from(Value::Object(out).to_string()),
        model,
        stream,
    })
}

fn str_field<'a>(item: &'a Value, key: &str, param: &str) -> Result<&'a str, EncodeError> {
    item.get(key).and_then(Value::as_str).ok_or_else(|| {
        bad(
            format!("`{key}` must be a string"),
            format!("{param}.{key}"),
        )
    })
}

fn convert_item(i: usize, item: &Value, out: &mut Vec<Value>) -> Result<(), EncodeError> {
    let param = format!("input[{i}]");
    let kind = match item.get("type").and_then(Value::as_str) {
        Some(kind) => kind,
        None if item.get("role").is_some() => "message",
        None => {
            return Err(bad(
                "input item: `type` is required",
                format!("{param}.type"),
            ))
        }
    };
    match kind {
        "message" => convert_message(item, &param, out),
        "function_call" => {
            let call_id = str_field(item, "call_id", &param)?;
            let name = str_field(item, "name", &param)?;
            let arguments = str_field(item, "arguments", &param)?;
            let call = json!({
                "id": call_id,
                "type": "function",
                "function": { "name": name, "arguments": arguments },
            });
            // Calls right after an assistant turn belong to it.
            if let Some(last) = out.last_mut().filter(|m| m["role"] == "assistant") {
                match last.get_mut("tool_calls") {
                    Some(Value::Array(calls)) => calls.push(call),
                    _ => last["tool_calls"] = json!([call]),
                }
            } else {
                out.push(json!({ "role": "assistant", "content": null, "tool_calls": [call] }));
            }
            Ok(())
        }
        "function_call_output" => {
            let call_id = str_field(item, "call_id", &param)?;
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for (j, part) in parts.iter().enumerate() {
                        match part.get("type").and_then(Value::as_str) {
                            Some("input_text" | "output_text") => text.push_str(str_field(
                                part,
                                "text",
                                &format!("{param}.output[{j}]"),
                            )?),
                            _ => {
                                return Err(bad(
                                    "function_call_output: only text output is supported here",
                                    format!("{param}.output[{j}].type"),
                                ))
                            }
                        }
                    }
                    text
                }
                _ => {
                    return Err(bad(
                        "function_call_output: `output` must be a string",
                        format!("{param}.output"),
                    ))
                }
            };
            out.push(json!({ "role": "tool", "tool_call_id": call_id, "content": output }));
            Ok(())
        }
        // Earlier reasoning is not sent back to a chat upstream.
        "reasoning" => Ok(()),
        other => Err(bad(
            format!(
                "input item type `{other}` is not supported when the upstream has no Responses API"
            ),
            format!("{param}.type"),
        )),
    }
}

fn convert_message(item: &Value, param: &str, out: &mut Vec<Value>) -> Result<(), EncodeError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some(role @ ("user" | "assistant" | "system")) => role,
        Some("developer") => "system",
        _ => {
            return Err(bad(
                "role: must be user, assistant, system or developer",
                format!("{param}.role"),
            ))
        }
    };
    let content = match item.get("content") {
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(Value::Array(parts)) => {
            let mut converted = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                converted.push(convert_part(part, &format!("{param}.content[{j}]"))?);
            }
            let all_text = converted.iter().all(|p| p["type"] == "text");
            if all_text && (role != "user" || converted.len() == 1) {
                let text: Vec<&str> = converted
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect();
                Value::String(text.concat())
            } else if role == "user" {
                Value::Array(converted)
            } else {
                return Err(bad(
                    "content: only text parts are supported in this role",
                    format!("{param}.content"),
                ));
            }
        }
        _ => {
            return Err(bad(
                "content: must be a string or an array of content parts",
                format!("{param}.content"),
            ))
        }
    };
    out.push(json!({ "role": role, "content": content }));
    Ok(())
}

fn convert_part(part: &Value, param: &str) -> Result<Value, EncodeError> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text") => {
            Ok(json!({ "type": "text", "text": str_field(part, "text", param)? }))
        }
        Some("refusal") => {
            Ok(json!({ "type": "text", "text": str_field(part, "refusal", param)? }))
        }
        Some("input_image") => {
            let url = part
                .get("image_url")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(
                        "input_image: only `image_url` is supported here (no file_id)",
                        format!("{param}.image_url"),
                    )
                })?;
            let mut image = json!({ "url": url });
            if let Some(detail) = part.get("detail").and_then(Value::as_str) {
                image["detail"] = detail.into();
            }
            Ok(json!({ "type": "image_url", "image_url": image }))
        }
        Some(other) => Err(bad(
            format!("content part type `{other}` is not supported here"),
            format!("{param}.type"),
        )),
        None => Err(bad(
            "content part: `type` is required",
            format!("{param}.type"),
        )),
    }
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>, EncodeError> {
    let Value::Array(tools) = tools else {
        return Err(bad("tools: must be an array", "tools"));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(kind) => {
                return Err(bad(
                    format!(
                        "tool type `{kind}` is not supported when the upstream has no \
                         Responses API (only `function` tools are)"
                    ),
                    format!("tools[{i}].type"),
                ))
            }
            None => return Err(bad("tool: `type` is required", format!("tools[{i}].type"))),
        }
        let name = str_field(tool, "name", &format!("tools[{i}]"))?;
        let mut function = json!({ "name": name });
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                function[key] = v.clone();
            }
        }
        out.push(json!({ "type": "function", "function": function }));
    }
    Ok(out)
}

fn convert_tool_choice(choice: &Value) -> Result<Value, EncodeError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(_) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = str_field(choice, "name", "tool_choice")?;
            Ok(json!({ "type": "function", "function": { "name": name } }))
        }
        _ => Err(bad(
            "tool_choice: must be auto, none, required or {type: function, name}",
            "tool_choice",
        )),
    }
}

fn convert_format(format: &Value) -> Result<Option<Value>, EncodeError> {
    match format.get("type").and_then(Value::as_str) {
        None if format.is_null() => Ok(None),
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({ "type": "json_object" }))),
        Some("json_schema") => {
            let name = str_field(format, "name", "text.format")?;
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    bad(
                        "json_schema: `schema` must be an object",
                        "text.format.schema",
                    )
                })?;
            let mut spec = json!({ "name": name, "schema": schema });
            for key in ["description", "strict"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    spec[key] = v.clone();
                }
            }
            Ok(Some(json!({ "type": "json_schema", "json_schema": spec })))
        }
        _ => Err(bad(
            "text.format: `type` must be text, json_object or json_schema",
            "text.format.type",
        )),
    }
}
