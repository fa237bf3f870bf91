//! Ollama `/api/chat` answers → OpenAI: one whole answer (`done: true`) becomes a
//! `chat.completion`, an NDJSON stream becomes `chat.completion.chunk` events. Owns the
//! mapping of `thinking`, tool calls (ids synthesised, arguments re-encoded as a JSON
//! string), `done_reason` and token counts.

use crate::translate::{
    completion_body, usage_value, ChunkWriter, DecodeError, LineBuffer, Reply, StreamDecode,
};
use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

/// One parsed `/api/chat` object (a whole answer, or one stream line).
struct Piece {
    content: String,
    thinking: String,
    /// `(name, arguments as a JSON string)`.
    calls: Vec<(String, String)>,
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

/// Reads one object; an `{"error": …}` object is the upstream's failure.
fn parse_piece(bytes: &[u8]) -> Result<Piece, DecodeError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| DecodeError::new(format!("Ollama sent something that is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(DecodeError::new(
            "Ollama sent a JSON value that is not an object",
        ));
    };
    if let Some(error) = fields.get("error").filter(|e| !e.is_null()) {
        let message = error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_owned);
        return Err(DecodeError::new(format!("Ollama error: {message}")));
    }
    let message = fields.get("message").unwrap_or(&Value::Null);
    let text = |key: &str| {
        message
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls.iter().map(tool_call).collect::<Result<_, _>>()?,
        Some(_) => return Err(DecodeError::new("Ollama `tool_calls` is not an array")),
    };
    let end = (fields.get("done") == Some(&Value::Bool(true))).then(|| End {
        done_reason: fields
            .get("done_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        prompt_tokens: count(&fields, "prompt_eval_count"),
        completion_tokens: count(&fields, "eval_count"),
    });
    Ok(Piece {
        content: text("content"),
        thinking: text("thinking"),
        calls,
        end,
    })
}

/// A token count; capped so that adding two can never overflow.
fn count(fields: &Map<String, Value>, key: &str) -> u64 {
    fields
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(u64::MAX / 2)
}

/// `{"function": {"name", "arguments": {…}}}` → `(name, arguments JSON string)`.
fn tool_call(call: &Value) -> Result<(String, String), DecodeError> {
    let function = call.get("function").unwrap_or(&Value::Null);
    let Some(name) = function.get("name").and_then(Value::as_str) else {
        return Err(DecodeError::new("Ollama tool call without a function name"));
    };
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok((name.to_owned(), arguments))
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
        Value::String(piece.content.clone())
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !piece.thinking.is_empty() {
        message.insert("reasoning_content".into(), piece.thinking.clone().into());
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

    fn write(&mut self, piece: &Piece, out: &mut BytesMut) {
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
