//! Ollama `/api/chat` answers → OpenAI: one whole answer (`done: true`) becomes a
//! `chat.completion`, an NDJSON stream becomes `chat.completion.chunk` events. Owns the
//! mapping of `thinking`, tool calls (ids synthesised, arguments re-encoded as a JSON
//! string), `done_reason` and token counts.

use crate::raw::{self, Raw};
use crate::translate::{
    completion_body, usage_value, ChunkWriter, DecodeError, LineBuffer, Reply, StreamDecode,
};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// One parsed `/api/chat` object (a whole answer, or one stream line); text borrowed
/// from the input where it has no escapes.
struct Piece<'a> {
    content: Cow<'a, str>,
    thinking: Cow<'a, str>,
    /// `(name, arguments as a JSON string)`.
    calls: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// `Some` on the `done: true` object.
    end: Option<End>,
}

/// What the final object says.
struct End {
    done_reason: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl End {
    fn finish_reason(&self, made_calls: bool) -> &'static str {
        match self.done_reason.as_deref() {
            Some("length") => "length",
            _ if made_calls => "tool_calls",
            _ => "stop",
        }
    }

    fn usage(&self) -> Value {
        usage_value(self.prompt_tokens, self.completion_tokens, None, None)
    }
}

/// An `/api/chat` object, members unread.
#[derive(Deserialize)]
struct RawPiece<'a> {
    #[serde(borrow)]
    error: Raw<'a>,
    #[serde(borrow)]
    message: Raw<'a>,
    #[serde(borrow)]
    done: Raw<'a>,
    #[serde(borrow)]
    done_reason: Raw<'a>,
    #[serde(borrow)]
    prompt_eval_count: Raw<'a>,
    #[serde(borrow)]
    eval_count: Raw<'a>,
}

/// Its `message`.
#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow)]
    content: Raw<'a>,
    #[serde(borrow)]
    thinking: Raw<'a>,
    #[serde(borrow)]
    tool_calls: Raw<'a>,
}

/// A tool call (`{"function": …}`) or its `function` (`{"name", "arguments"}`).
#[derive(Deserialize)]
struct RawCall<'a> {
    #[serde(borrow)]
    function: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    arguments: Raw<'a>,
}

/// Reads one object; an `{"error": …}` object is the upstream's failure.
fn parse_piece(bytes: &[u8]) -> Result<Piece<'_>, DecodeError> {
    let not_json = |e: &dyn std::fmt::Display| {
        DecodeError::new(format!("Ollama sent something that is not JSON: {e}"))
    };
    let text = std::str::from_utf8(bytes).map_err(|e| not_json(&e))?;
    let Some(fields) = raw::parse_object::<RawPiece<'_>>(text).map_err(|e| not_json(&e))? else {
        return Err(DecodeError::new(
            "Ollama sent a JSON value that is not an object",
        ));
    };
    if let Some(error) = fields.error {
        let message =
            raw::as_str(Some(error)).map_or_else(|| raw::canonical(error), Cow::into_owned);
        return Err(DecodeError::new(format!("Ollama error: {message}")));
    }
    let message = raw::object::<RawMessage<'_>>(fields.message);
    let calls = match message.as_ref().and_then(|m| m.tool_calls) {
        None => Vec::new(),
        Some(calls) => match raw::array(Some(calls)) {
            Some(calls) => calls.into_iter().map(tool_call).collect::<Result<_, _>>()?,
            None => return Err(DecodeError::new("Ollama `tool_calls` is not an array")),
        },
    };
    let end = (raw::as_bool(fields.done) == Some(true)).then(|| End {
        done_reason: raw::as_str(fields.done_reason).map(Cow::into_owned),
        prompt_tokens: count(fields.prompt_eval_count),
        completion_tokens: count(fields.eval_count),
    });
    let (content, thinking) = match &message {
        Some(m) => (raw::text(m.content), raw::text(m.thinking)),
        None => Default::default(),
    };
    Ok(Piece {
        content,
        thinking,
        calls,
        end,
    })
}

/// A token count; capped so that adding two can never overflow.
fn count(field: Raw<'_>) -> u64 {
    raw::as_u64(field).unwrap_or(0).min(u64::MAX / 2)
}

/// `{"function": {"name", "arguments": {…}}}` → `(name, arguments JSON string)`.
fn tool_call(call: &RawValue) -> Result<(Cow<'_, str>, Cow<'_, str>), DecodeError> {
    let function =
        raw::object::<RawCall<'_>>(Some(call)).and_then(|c| raw::object::<RawCall<'_>>(c.function));
    let Some((name, arguments)) = function.and_then(|f| Some((raw::as_str(f.name)?, f.arguments)))
    else {
        return Err(DecodeError::new("Ollama tool call without a function name"));
    };
    let arguments = match arguments {
        None => Cow::Borrowed("{}"),
        Some(args) => match raw::as_str(Some(args)) {
            Some(s) => s,
            None => Cow::Owned(raw::canonical(args)),
        },
    };
    Ok((name, arguments))
}

/// `call_<id suffix>_<n>`: unique within the answer, stable for a given reply id.
fn call_id(reply: &Reply, n: usize) -> String {
    let suffix = reply.id.strip_prefix("chatcmpl-").unwrap_or(&reply.id);
    format!("call_{suffix}_{n}")
}

/// One `/api/chat` answer (`"stream": false`, `done: true`) → a `chat.completion`.
pub fn decode(body: &[u8], reply: &Reply) -> Result<Bytes, DecodeError> {
    let piece = parse_piece(body)?;
    let Some(end) = &piece.end else {
        return Err(DecodeError::new(
            "Ollama answer is incomplete (no `done: true`)",
        ));
    };
    let made_calls = !piece.calls.is_empty();
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if piece.content.is_empty() && made_calls {
        Value::Null
    } else {
        Value::String(piece.content.to_string())
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !piece.thinking.is_empty() {
        message.insert(
            "reasoning_content".into(),
            piece.thinking.to_string().into(),
        );
    }
    if made_calls {
        let calls: Vec<Value> = piece
            .calls
            .iter()
            .enumerate()
            .map(|(n, (name, arguments))| {
                json!({
                    "id": call_id(reply, n),
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                })
            })
            .collect();
        message.insert("tool_calls".into(), calls.into());
    }
    Ok(completion_body(
        reply,
        Value::Object(message),
        end.finish_reason(made_calls),
        Some(end.usage()),
    ))
}

/// The longest line a stream may hold unfinished (one line is one token, or one whole
/// tool call): 4 MiB.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Translates an Ollama NDJSON chat stream into OpenAI SSE chunks, fed in arbitrary
/// pieces. Each line is one JSON object; the last has `done: true`.
#[derive(Debug)]
pub struct StreamDecoder {
    lines: LineBuffer,
    /// Bytes held after the last line end (what `lines` keeps).
    pending: usize,
    state: StreamState,
}

#[derive(Debug)]
struct StreamState {
    reply: Reply,
    writer: ChunkWriter,
    /// The role chunk was sent.
    started: bool,
    /// Tool calls announced so far (the next one's index).
    calls: usize,
    /// The `done: true` line was read and `[DONE]` written.
    done: bool,
}

impl StreamDecoder {
    /// A decoder for the answer identified by `reply`.
    pub fn new(reply: Reply) -> Self {
        Self {
            lines: LineBuffer::default(),
            pending: 0,
            state: StreamState {
                writer: ChunkWriter::new(&reply),
                reply,
                started: false,
                calls: 0,
                done: false,
            },
        }
    }
}

impl StreamState {
    fn line(&mut self, line: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        if self.done || line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let piece = parse_piece(line)?;
        self.write(&piece, out);
        Ok(())
    }

    fn write(&mut self, piece: &Piece<'_>, out: &mut BytesMut) {
        if !self.started {
            self.writer.role(out);
            self.started = true;
        }
        if !piece.thinking.is_empty() {
            self.writer.reasoning(out, &piece.thinking);
        }
        if !piece.content.is_empty() {
            self.writer.content(out, &piece.content);
        }
        // A streamed call arrives whole: its start, then all its arguments at once.
        for (name, arguments) in &piece.calls {
            let index = self.calls;
            self.writer
                .tool_call_start(out, index, &call_id(&self.reply, index), name);
            self.writer.tool_call_arguments(out, index, arguments);
            self.calls += 1;
        }
        if let Some(end) = &piece.end {
            self.writer.finish(out, end.finish_reason(self.calls > 0));
            if self.reply.include_usage {
                self.writer.usage(out, &end.usage());
            }
            ChunkWriter::done(out);
            self.done = true;
        }
    }
}

impl StreamDecode for StreamDecoder {
    fn push(&mut self, chunk: &[u8], out: &mut BytesMut) -> Result<(), DecodeError> {
        self.pending = match memchr::memrchr(b'\n', chunk) {
            Some(at) => chunk.len().saturating_sub(at + 1),
            None => self.pending.saturating_add(chunk.len()),
        };
        if self.pending > MAX_LINE_BYTES {
            return Err(DecodeError::new(format!(
                "Ollama stream sent a line longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        let state = &mut self.state;
        self.lines.push(chunk, |line| state.line(line, out))
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), DecodeError> {
        let rest = self.lines.take_rest();
        if !self.state.done && !rest.iter().all(u8::is_ascii_whitespace) {
            // A last line without its newline counts only if it is the whole final
            // object; anything else was cut off.
            match parse_piece(&rest) {
                Ok(piece) if piece.end.is_some() => self.state.write(&piece, out),
                // An `{"error": …}` object: the upstream's own word.
                Err(e) if serde_json::from_slice::<Value>(&rest).is_ok() => return Err(e),
                Ok(_) | Err(_) => {
                    return Err(DecodeError::new(
                        "Ollama stream was cut off in the middle of a line",
                    ))
                }
            }
        }
        if self.state.done {
            Ok(())
        } else {
            Err(DecodeError::new(
                "Ollama stream ended before its final `done` line",
            ))
        }
    }
}
