//! An Anthropic Messages request turned into an OpenAI chat request. Validates what the
//! translation reads (a malformed request is the client's 400, never sent upstream);
//! fields OpenAI has no use for (`top_k`, `cache_control`, thinking history) are dropped.
//! The request is read as borrowed raw slices (tool schemas and stop sequences passed
//! through as their bytes) and the chat request written from typed structs.

use super::chat::{
    CallFunction, ChatMessage, Choice, Content, ImageUrl, Named, Out, Part, StreamOptions, Tool,
    ToolCall, ToolFunction,
};
use crate::raw::{self, Fields, Raw};
use crate::translate::EncodeError;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

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

/// An Anthropic message, content block or tool (the members read of each).
#[derive(Deserialize, Default)]
struct Obj<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    role: Raw<'a>,
    #[serde(borrow)]
    content: Raw<'a>,
    #[serde(borrow)]
    text: Raw<'a>,
    #[serde(borrow)]
    source: Raw<'a>,
    #[serde(borrow)]
    tool_use_id: Raw<'a>,
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    description: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "raw::keep_null")]
    input: Raw<'a>,
    #[serde(borrow)]
    input_schema: Raw<'a>,
}

/// An image `source`.
#[derive(Deserialize, Default)]
struct Source<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    media_type: Raw<'a>,
    #[serde(borrow)]
    data: Raw<'a>,
    #[serde(borrow)]
    url: Raw<'a>,
}

/// `metadata`, `tool_choice`, `thinking` (the members read of each).
#[derive(Deserialize, Default)]
struct Options<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    user_id: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    disable_parallel_tool_use: Raw<'a>,
    #[serde(borrow)]
    budget_tokens: Raw<'a>,
}

/// An element of an array as an object (a non-object reads with every member absent).
fn obj<'a, T: Deserialize<'a> + Default>(raw: &'a RawValue) -> T {
    raw::object(Some(raw)).unwrap_or_default()
}

/// The first byte of a raw value (`b'n'` when absent, as for `null`).
fn kind(raw: Raw<'_>) -> u8 {
    raw.and_then(|r| r.get().bytes().next()).unwrap_or(b'n')
}

/// Translates an Anthropic Messages request body into an OpenAI chat request. An
/// invalid request (not JSON, no `model`, no `messages`, `max_tokens` not a positive
/// integer, an unknown block…) is an [`EncodeError`] naming the field.
pub fn request_to_chat(body: &[u8]) -> Result<ChatRequest, EncodeError> {
    let not_json = |e: serde_json::Error| {
        EncodeError::new(format!("request body is not valid JSON: {e}"), None)
    };
    let is_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !is_object {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(not_json)?;
        return Err(EncodeError::new("request body must be a JSON object", None));
    }
    let req: Fields<'_> = serde_json::from_slice(body).map_err(not_json)?;
    let get = |key: &str| req.get(key).copied();
    let model = raw::as_str(get("model"))
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("model: a non-empty string is required", "model"))?;
    let max_tokens = raw::as_u64(Some(
        get("max_tokens").ok_or_else(|| bad("max_tokens: Field required", "max_tokens"))?,
    ))
    .filter(|n| *n > 0)
    .ok_or_else(|| bad("max_tokens: must be a positive integer", "max_tokens"))?;
    let stream = match kind(get("stream")) {
        b'n' => false,
        _ => {
            raw::as_bool(get("stream")).ok_or_else(|| bad("stream: must be a boolean", "stream"))?
        }
    };

    let mut messages = Vec::new();
    if let Some(system) = get("system") {
        let text = system_text(system)?;
        if !text.is_empty() {
            messages.push(ChatMessage::new("system", Content::Text(text)));
        }
    }
    let Some(input) = raw::array(get("messages")) else {
        return Err(bad("messages: an array is required", "messages"));
    };
    for (i, message) in input.into_iter().enumerate() {
        convert_message(i, message, &mut messages)?;
    }

    let mut out = Out {
        model: &model,
        messages,
        max_tokens,
        temperature: None,
        top_p: None,
        stop: stop_sequences(get("stop_sequences"))?,
        user: raw::object::<Options<'_>>(get("metadata")).and_then(|m| raw::as_str(m.user_id)),
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        tools: Vec::new(),
        tool_choice: None,
        parallel_tool_calls: None,
        reasoning_effort: reasoning_effort(raw::field(&req, "thinking"))?,
    };
    for (key, slot) in [
        ("temperature", &mut out.temperature),
        ("top_p", &mut out.top_p),
    ] {
        match kind(get(key)) {
            b'n' => {}
            _ if raw::is_number(get(key)) => *slot = get(key),
            _ => return Err(bad(format!("{key}: must be a number"), key)),
        }
    }
    if let Some(tools) = get("tools") {
        out.tools = convert_tools(tools)?;
    }
    if let Some(choice) = get("tool_choice") {
        convert_tool_choice(choice, &mut out)?;
    }
    let body = crate::raw::json_bytes(&out);
    Ok(ChatRequest {
        body,
        model: model.into_owned(),
        stream,
    })
}

/// `system` as one string: a string, or its text blocks joined with a newline.
fn system_text(system: &RawValue) -> Result<Cow<'_, str>, EncodeError> {
    match kind(Some(system)) {
        b'n' => Ok(Cow::Borrowed("")),
        b'"' => Ok(raw::text(Some(system))),
        b'[' => {
            let blocks = raw::array(Some(system)).unwrap_or_default();
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.into_iter().enumerate() {
                let block: Obj<'_> = obj(block);
                let text = raw::as_str(block.text)
                    .filter(|_| raw::as_str(block.kind).as_deref() == Some("text"))
                    .ok_or_else(|| {
                        bad(
                            "system: only text blocks are supported",
                            format!("system[{j}]"),
                        )
                    })?;
                texts.push(text);
            }
            Ok(Cow::Owned(texts.join("\n")))
        }
        _ => Err(bad(
            "system: must be a string or an array of text blocks",
            "system",
        )),
    }
}

fn convert_message<'a>(
    i: usize,
    message: &'a RawValue,
    out: &mut Vec<ChatMessage<'a>>,
) -> Result<(), EncodeError> {
    let message: Obj<'a> = obj(message);
    let role = match raw::as_str(message.role).as_deref() {
        Some("user") => "user",
        Some("assistant") => "assistant",
        _ => {
            return Err(bad(
                "role: must be `user` or `assistant`",
                format!("messages[{i}].role"),
            ))
        }
    };
    match kind(message.content) {
        b'"' => {
            out.push(ChatMessage::new(
                role,
                Content::Text(raw::text(message.content)),
            ));
            Ok(())
        }
        b'[' => {
            let blocks = raw::array(message.content).unwrap_or_default();
            if role == "user" {
                user_blocks(i, blocks, out)
            } else {
                assistant_blocks(i, blocks, out)
            }
        }
        _ => Err(bad(
            "content: must be a string or an array of content blocks",
            format!("messages[{i}].content"),
        )),
    }
}

fn text_field<'a>(
    block: &Obj<'a>,
    param: &dyn Fn() -> String,
) -> Result<Cow<'a, str>, EncodeError> {
    raw::as_str(block.text).ok_or_else(|| {
        bad(
            "text block: `text` must be a string",
            format!("{}.text", param()),
        )
    })
}

/// A user turn: each `tool_result` becomes a `tool` message, placed before one user
/// message with the remaining text and images (images of tool results included:
/// OpenAI's tool messages carry text only).
fn user_blocks<'a>(
    i: usize,
    blocks: Vec<&'a RawValue>,
    out: &mut Vec<ChatMessage<'a>>,
) -> Result<(), EncodeError> {
    let mut tool_messages = Vec::new();
    let mut tool_images = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let param = || format!("messages[{i}].content[{j}]");
        let block: Obj<'a> = obj(block);
        let block_type = raw::as_str(block.kind);
        match block_type.as_deref().unwrap_or("") {
            "text" => parts.push(Part::Text {
                text: text_field(&block, &param)?,
            }),
            "image" => parts.push(image_part(block.source, &param)?),
            "tool_result" => {
                let id = raw::as_str(block.tool_use_id).ok_or_else(|| {
                    bad(
                        "tool_result: `tool_use_id` is required",
                        format!("{}.tool_use_id", param()),
                    )
                })?;
                let content = tool_result_content(block.content, &param, &mut tool_images)?;
                tool_messages.push(ChatMessage {
                    role: "tool",
                    tool_call_id: Some(id),
                    content: Some(Content::Text(content)),
                    tool_calls: Vec::new(),
                });
            }
            other => return Err(unsupported_block(other, &param())),
        }
    }
    let had_tools = !tool_messages.is_empty();
    out.append(&mut tool_messages);
    tool_images.append(&mut parts);
    let mut parts = tool_images;
    let content = match parts.as_mut_slice() {
        [] if had_tools => return Ok(()),
        [] => Content::Text(Cow::Borrowed("")),
        [Part::Text { text }] => Content::Text(std::mem::take(text)),
        _ => Content::Parts(parts),
    };
    out.push(ChatMessage::new("user", content));
    Ok(())
}

fn tool_result_content<'a>(
    content: Raw<'a>,
    param: &dyn Fn() -> String,
    images: &mut Vec<Part<'a>>,
) -> Result<Cow<'a, str>, EncodeError> {
    match kind(content) {
        b'n' => Ok(Cow::Borrowed("")),
        b'"' => Ok(raw::text(content)),
        b'[' => {
            let mut text = String::new();
            for (k, block) in raw::array(content)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let param = || format!("{}.content[{k}]", param());
                let block: Obj<'a> = obj(block);
                let block_type = raw::as_str(block.kind);
                match block_type.as_deref().unwrap_or("") {
                    "text" => text.push_str(&text_field(&block, &param)?),
                    "image" => images.push(image_part(block.source, &param)?),
                    other => return Err(unsupported_block(other, &param())),
                }
            }
            Ok(Cow::Owned(text))
        }
        _ => Err(bad(
            "tool_result: `content` must be a string or an array of blocks",
            format!("{}.content", param()),
        )),
    }
}

fn assistant_blocks<'a>(
    i: usize,
    blocks: Vec<&'a RawValue>,
    out: &mut Vec<ChatMessage<'a>>,
) -> Result<(), EncodeError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let param = || format!("messages[{i}].content[{j}]");
        let block: Obj<'a> = obj(block);
        let block_type = raw::as_str(block.kind);
        match block_type.as_deref().unwrap_or("") {
            "text" => text.push_str(&text_field(&block, &param)?),
            "tool_use" => {
                let (Some(id), Some(name)) = (raw::as_str(block.id), raw::as_str(block.name))
                else {
                    return Err(bad("tool_use: `id` and `name` are required", param()));
                };
                let arguments = match block.input {
                    Some(input) => raw::canonical(input),
                    None => "{}".to_owned(),
                };
                calls.push(ToolCall {
                    id,
                    kind: "function",
                    function: CallFunction { name, arguments },
                });
            }
            // Earlier reasoning is not sent back to an OpenAI upstream.
            "thinking" | "redacted_thinking" => {}
            other => return Err(unsupported_block(other, &param())),
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(Content::Text(Cow::Owned(text)))
    };
    out.push(ChatMessage {
        role: "assistant",
        tool_call_id: None,
        content,
        tool_calls: calls,
    });
    Ok(())
}

fn unsupported_block(kind: &str, param: &str) -> EncodeError {
    bad(
        format!("content block type `{kind}` is not supported here"),
        format!("{param}.type"),
    )
}

/// An `image` block as an OpenAI `image_url` part (base64 → a `data:` URL).
fn image_part<'a>(source: Raw<'a>, param: &dyn Fn() -> String) -> Result<Part<'a>, EncodeError> {
    let source: Source<'a> = raw::object(source).unwrap_or_default();
    let url = match raw::as_str(source.kind).as_deref() {
        Some("base64") => match (raw::as_str(source.media_type), raw::as_str(source.data)) {
            (Some(media), Some(data)) => Cow::Owned(format!("data:{media};base64,{data}")),
            _ => {
                return Err(bad(
                    "image: a base64 source needs `media_type` and `data`",
                    format!("{}.source", param()),
                ))
            }
        },
        Some("url") => raw::as_str(source.url).ok_or_else(|| {
            bad(
                "image: a url source needs `url`",
                format!("{}.source.url", param()),
            )
        })?,
        _ => {
            return Err(bad(
                "image: `source.type` must be `base64` or `url`",
                format!("{}.source.type", param()),
            ))
        }
    };
    Ok(Part::ImageUrl {
        image_url: ImageUrl { url },
    })
}

/// `stop_sequences` (an array of strings, passed through as its bytes) as `stop`.
fn stop_sequences(value: Raw<'_>) -> Result<Raw<'_>, EncodeError> {
    let error = || {
        bad(
            "stop_sequences: must be an array of strings",
            "stop_sequences",
        )
    };
    match kind(value) {
        b'n' => Ok(None),
        b'[' => {
            let items = raw::array(value).ok_or_else(error)?;
            if !items.iter().all(|s| s.get().starts_with('"')) {
                return Err(error());
            }
            Ok(value.filter(|_| !items.is_empty()))
        }
        _ => Err(error()),
    }
}

fn convert_tools(tools: &RawValue) -> Result<Vec<Tool<'_>>, EncodeError> {
    let tools = raw::array(Some(tools)).ok_or_else(|| bad("tools: must be an array", "tools"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let tool: Obj<'_> = obj(tool);
        if let Some(kind) = raw::as_str(tool.kind) {
            if kind != "custom" {
                return Err(bad(
                    format!("tool type `{kind}` (an Anthropic server tool) is not supported here"),
                    format!("tools[{i}].type"),
                ));
            }
        }
        let name = raw::as_str(tool.name)
            .ok_or_else(|| bad("tool: `name` is required", format!("tools[{i}].name")))?;
        let parameters = tool
            .input_schema
            .filter(|s| s.get().starts_with('{'))
            .ok_or_else(|| {
                bad(
                    "tool: `input_schema` must be an object",
                    format!("tools[{i}].input_schema"),
                )
            })?;
        out.push(Tool {
            kind: "function",
            function: ToolFunction {
                name,
                description: raw::as_str(tool.description),
                parameters,
            },
        });
    }
    Ok(out)
}

fn convert_tool_choice<'a>(choice: &'a RawValue, out: &mut Out<'a>) -> Result<(), EncodeError> {
    let choice: Options<'a> = raw::object(Some(choice)).unwrap_or_default();
    let converted = match raw::as_str(choice.kind).as_deref() {
        Some("auto") => Choice::Mode("auto"),
        Some("any") => Choice::Mode("required"),
        Some("none") => Choice::Mode("none"),
        Some("tool") => {
            let name = raw::as_str(choice.name).ok_or_else(|| {
                bad(
                    "tool_choice: type `tool` needs a `name`",
                    "tool_choice.name",
                )
            })?;
            Choice::Function {
                kind: "function",
                function: Named { name },
            }
        }
        _ => {
            return Err(bad(
                "tool_choice: `type` must be auto, any, tool or none",
                "tool_choice.type",
            ))
        }
    };
    out.tool_choice = Some(converted);
    if raw::as_bool(choice.disable_parallel_tool_use) == Some(true) {
        out.parallel_tool_calls = Some(false);
    }
    Ok(())
}

/// `thinking: {type: enabled, budget_tokens}` as OpenAI's `reasoning_effort`.
fn reasoning_effort(thinking: Raw<'_>) -> Result<Option<&'static str>, EncodeError> {
    let Some(thinking) = thinking else {
        return Ok(None);
    };
    let thinking: Options<'_> = raw::object(Some(thinking)).unwrap_or_default();
    match raw::as_str(thinking.kind).as_deref() {
        Some("enabled") => {
            let budget = raw::as_u64(thinking.budget_tokens).ok_or_else(|| {
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
