//! OpenAI chat `messages` → Anthropic `system` + alternating `messages`: system and
//! developer messages hoisted, consecutive same-role turns merged, tool results as user
//! turns, images and PDFs as blocks, tool calls as `tool_use`. Request-level fields are
//! `encode.rs`'s. Reads the messages as borrowed raw slices and builds typed output
//! blocks (no `Value` tree).

use super::encode::invalid;
use crate::raw::{self, Raw};
use crate::translate::EncodeError;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// One Anthropic turn: consecutive same-role messages are merged into it.
pub(super) struct Turn<'a> {
    pub(super) role: &'static str,
    pub(super) blocks: Vec<Block<'a>>,
}

impl Serialize for Turn<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Turn", 2)?;
        s.serialize_field("role", self.role)?;
        // A plain string when the turn is one text block.
        match self.blocks.as_slice() {
            [] => s.serialize_field("content", "")?,
            [Block::Text { text }] => s.serialize_field("content", text)?,
            blocks => s.serialize_field("content", blocks)?,
        }
        s.end()
    }
}

/// An Anthropic content block.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: Source<'a>,
    },
    Document {
        source: Source<'a>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        content: Cow<'a, str>,
    },
}

/// An image's or document's source.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source<'a> {
    Base64 {
        media_type: Cow<'a, str>,
        data: Cow<'a, str>,
    },
    Url {
        url: Cow<'a, str>,
    },
}

/// The members of an OpenAI message this encoder reads.
#[derive(Deserialize, Default)]
struct Message<'a> {
    #[serde(borrow)]
    role: Raw<'a>,
    #[serde(borrow)]
    content: Raw<'a>,
    #[serde(borrow)]
    tool_calls: Raw<'a>,
    #[serde(borrow)]
    tool_call_id: Raw<'a>,
}

/// A content part (`type`, `text`, `refusal`, `image_url`, `file`).
#[derive(Deserialize, Default)]
struct Part<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    text: Raw<'a>,
    #[serde(borrow)]
    refusal: Raw<'a>,
    #[serde(borrow)]
    image_url: Raw<'a>,
    #[serde(borrow)]
    file: Raw<'a>,
}

/// `image_url.url`.
#[derive(Deserialize)]
struct Url<'a> {
    #[serde(borrow)]
    url: Raw<'a>,
}

/// `file.file_data`.
#[derive(Deserialize)]
struct File<'a> {
    #[serde(borrow)]
    file_data: Raw<'a>,
}

/// An assistant tool call.
#[derive(Deserialize, Default)]
struct Call<'a> {
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    function: Raw<'a>,
}

/// A tool call's `function`.
#[derive(Deserialize, Default)]
struct Function<'a> {
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    arguments: Raw<'a>,
}

/// The system prompt parts and the alternating `messages`.
pub(super) fn encode_messages<'a>(
    messages: &[&'a RawValue],
) -> Result<(Vec<Cow<'a, str>>, Vec<Turn<'a>>), EncodeError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'a>> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let message: Message<'a> = raw::object(Some(message)).unwrap_or_default();
        let role = raw::as_str(message.role).ok_or_else(|| {
            invalid(
                "every message needs a string `role`",
                format!("messages[{i}].role"),
            )
        })?;
        let (role, blocks) = match role.as_ref() {
            "system" | "developer" => {
                let text = system_text(message.content, i)?;
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            "user" => ("user", user_blocks(message.content, i)?),
            "assistant" => ("assistant", assistant_blocks(&message, i)?),
            // Tool results travel in a user turn.
            "tool" => ("user", vec![tool_result(&message, i)?]),
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
    Ok((system, turns))
}

/// The first byte of a raw value (`b'n'` when absent, as for `null`).
fn kind(raw: Raw<'_>) -> u8 {
    raw.and_then(|r| r.get().bytes().next()).unwrap_or(b'n')
}

fn content_error(i: usize) -> EncodeError {
    invalid(
        "`content` must be a string or an array of parts",
        format!("messages[{i}].content"),
    )
}

/// A system or developer message's text (a string, or its text parts joined).
fn system_text(content: Raw<'_>, i: usize) -> Result<Cow<'_, str>, EncodeError> {
    match kind(content) {
        b'"' | b'[' | b'n' => Ok(raw::text_of(content)),
        _ => Err(content_error(i)),
    }
}

fn user_blocks(content: Raw<'_>, i: usize) -> Result<Vec<Block<'_>>, EncodeError> {
    let parts = match kind(content) {
        b'n' => return Ok(Vec::new()),
        b'"' => {
            let text = raw::text(content);
            if text.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![Block::Text { text }]);
        }
        b'[' => raw::array(content).unwrap_or_default(),
        _ => return Err(content_error(i)),
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        let part: Part<'_> = raw::object(Some(part)).unwrap_or_default();
        let kind = raw::as_str(part.kind);
        match kind.as_deref() {
            Some("text") => {
                let text = raw::as_str(part.text)
                    .ok_or_else(|| invalid("a text part needs `text`", format!("{}.text", at())))?;
                if !text.is_empty() {
                    blocks.push(Block::Text { text });
                }
            }
            Some("image_url") => {
                let url = raw::object::<Url<'_>>(part.image_url)
                    .and_then(|u| u.url)
                    .or(part.image_url);
                let url = raw::as_str(url).ok_or_else(|| {
                    invalid(
                        "an image part needs `image_url.url`",
                        format!("{}.image_url.url", at()),
                    )
                })?;
                blocks.push(image_block(url, &at())?);
            }
            Some("file") => blocks.push(document_block(part.file, &at())?),
            other => {
                return Err(invalid(
                    format!(
                        "content part type `{}` is not supported by the anthropic API",
                        other.unwrap_or("(none)")
                    ),
                    format!("{}.type", at()),
                ))
            }
        }
    }
    Ok(blocks)
}

/// An image part: a `data:` URL as base64, an http(s) URL by reference.
fn image_block<'a>(url: Cow<'a, str>, at: &str) -> Result<Block<'a>, EncodeError> {
    if let Some((media_type, data)) = raw::data_url(&url) {
        return Ok(Block::Image {
            source: Source::Base64 { media_type, data },
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Block::Image {
            source: Source::Url { url },
        });
    }
    Err(invalid(
        "an image URL must be an http(s) URL or a base64 data: URL",
        format!("{at}.image_url.url"),
    ))
}

/// A `file` part with inline data (`file.file_data`, a base64 `data:` URL, e.g. a PDF)
/// as a document block.
fn document_block<'a>(file: Raw<'a>, at: &str) -> Result<Block<'a>, EncodeError> {
    let (media_type, data) = raw::object::<File<'a>>(file)
        .and_then(|f| raw::as_str(f.file_data))
        .and_then(|url| raw::data_url(&url))
        .ok_or_else(|| {
            invalid(
                "a file part needs `file.file_data` as a base64 data: URL (file ids are not supported by the anthropic API)",
                format!("{at}.file.file_data"),
            )
        })?;
    Ok(Block::Document {
        source: Source::Base64 { media_type, data },
    })
}

/// An assistant message: its text, then its tool calls as `tool_use` blocks.
fn assistant_blocks<'a>(message: &Message<'a>, i: usize) -> Result<Vec<Block<'a>>, EncodeError> {
    let mut blocks = Vec::new();
    match kind(message.content) {
        b'n' => {}
        b'"' => {
            let text = raw::text(message.content);
            if !text.is_empty() {
                blocks.push(Block::Text { text });
            }
        }
        b'[' => {
            for part in raw::array(message.content).unwrap_or_default() {
                let part: Part<'a> = raw::object(Some(part)).unwrap_or_default();
                let text = raw::as_str(part.text.or(part.refusal)).unwrap_or_default();
                if !text.is_empty() {
                    blocks.push(Block::Text { text });
                }
            }
        }
        _ => return Err(content_error(i)),
    }
    let calls = match kind(message.tool_calls) {
        b'n' => return Ok(blocks),
        b'[' => raw::array(message.tool_calls).unwrap_or_default(),
        _ => {
            return Err(invalid(
                "`tool_calls` must be an array",
                format!("messages[{i}].tool_calls"),
            ))
        }
    };
    for (j, call) in calls.into_iter().enumerate() {
        let at = || format!("messages[{i}].tool_calls[{j}]");
        let call: Call<'a> = raw::object(Some(call)).unwrap_or_default();
        let id = raw::as_str(call.id)
            .ok_or_else(|| invalid("a tool call needs an `id`", format!("{}.id", at())))?;
        let function: Function<'a> = raw::object(call.function).unwrap_or_default();
        let name = raw::as_str(function.name).ok_or_else(|| {
            invalid(
                "a tool call needs `function.name`",
                format!("{}.function.name", at()),
            )
        })?;
        let arguments = raw::text(function.arguments);
        let bad = || {
            invalid(
                "tool call arguments must be a JSON object",
                format!("{}.function.arguments", at()),
            )
        };
        let arguments = arguments.trim();
        let input = if arguments.is_empty() {
            RawValue::from_string("{}".to_owned())
                .ok()
                .ok_or_else(bad)?
        } else if arguments.starts_with('{') {
            serde_json::from_str::<Box<RawValue>>(arguments)
                .ok()
                .ok_or_else(bad)?
        } else {
            return Err(bad());
        };
        blocks.push(Block::ToolUse { id, name, input });
    }
    Ok(blocks)
}

/// A `tool` message as a `tool_result` block.
fn tool_result<'a>(message: &Message<'a>, i: usize) -> Result<Block<'a>, EncodeError> {
    let tool_use_id = raw::as_str(message.tool_call_id).ok_or_else(|| {
        invalid(
            "a tool message needs `tool_call_id`",
            format!("messages[{i}].tool_call_id"),
        )
    })?;
    Ok(Block::ToolResult {
        tool_use_id,
        content: raw::text_of(message.content),
    })
}
