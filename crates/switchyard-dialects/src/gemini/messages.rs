//! OpenAI `messages` → Gemini `systemInstruction` and `contents`: roles, merging of
//! same-role turns, content parts (text, images, audio, files), assistant tool calls
//! and their thought signatures, tool results. Part of the `gemini` request encoder.

use super::request::Encoder;
use crate::translate::{parse_data_url, text_of, EncodeError};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Signature sent on a replayed `functionCall` whose client message carries none.
/// Gemini 3 refuses a function call in the history without a `thoughtSignature`; Google
/// documents this value for history that did not come from the model itself.
const STAND_IN_SIGNATURE: &str = "skip_thought_signature_validator";

impl Encoder {
    /// `messages` → (`systemInstruction` parts, `contents`).
    pub(super) fn messages(
        &mut self,
        messages: Option<&Value>,
    ) -> Result<(Vec<Value>, Vec<Value>), EncodeError> {
        let Some(messages) = messages.and_then(Value::as_array) else {
            return Err(EncodeError::new(
                "`messages` must be an array",
                Some("messages".to_owned()),
            ));
        };
        let mut system = Vec::new();
        let mut contents: Vec<Value> = Vec::new();
        // Tool call id → function name, from the assistant messages seen so far.
        let mut call_names: HashMap<String, String> = HashMap::new();
        for (i, message) in messages.iter().enumerate() {
            let at = format!("messages[{i}]");
            let role = message.get("role").and_then(Value::as_str).unwrap_or("");
            let content = message.get("content").unwrap_or(&Value::Null);
            let (gemini_role, parts) = match role {
                "system" | "developer" => {
                    let text = text_of(content);
                    if !text.is_empty() {
                        system.push(json!({ "text": text }));
                    }
                    continue;
                }
                "user" => ("user", self.user_parts(content, &at)?),
                "assistant" => (
                    "model",
                    assistant_parts(message, content, &at, &mut call_names)?,
                ),
                "tool" => {
                    let id = message
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let Some(name) = call_names.get(id) else {
                        return Err(EncodeError::new(
                            format!("tool message answers unknown tool call id `{id}`"),
                            Some(format!("{at}.tool_call_id")),
                        ));
                    };
                    ("user", vec![function_response(name, content)])
                }
                "function" => {
                    let name = message.get("name").and_then(Value::as_str).unwrap_or("");
                    ("user", vec![function_response(name, content)])
                }
                other => {
                    return Err(EncodeError::new(
                        format!("unknown message role `{other}`"),
                        Some(format!("{at}.role")),
                    ))
                }
            };
            if parts.is_empty() {
                continue;
            }
            push_content(&mut contents, gemini_role, parts);
        }
        Ok((system, contents))
    }

    /// A user message's content → parts.
    fn user_parts(&mut self, content: &Value, at: &str) -> Result<Vec<Value>, EncodeError> {
        let items = match content {
            Value::String(s) => return Ok(text_part(s).into_iter().collect()),
            Value::Array(items) => items,
            Value::Null => return Ok(Vec::new()),
            _ => {
                return Err(EncodeError::new(
                    "content must be a string or an array of parts",
                    Some(format!("{at}.content")),
                ))
            }
        };
        let mut parts = Vec::new();
        for (j, item) in items.iter().enumerate() {
            let here = format!("{at}.content[{j}]");
            match item.get("type").and_then(Value::as_str).unwrap_or("") {
                "text" => parts.extend(text_part(
                    item.get("text").and_then(Value::as_str).unwrap_or(""),
                )),
                "image_url" => {
                    let url = item
                        .get("image_url")
                        .and_then(|i| i.get("url").or(Some(i)))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    parts.push(image_part(url, &here)?);
                }
                "input_audio" => {
                    let audio = item.get("input_audio").unwrap_or(&Value::Null);
                    let data = audio.get("data").and_then(Value::as_str).unwrap_or("");
                    let format = audio.get("format").and_then(Value::as_str).unwrap_or("");
                    parts.push(json!({ "inlineData": {
                        "mimeType": format!("audio/{format}"), "data": data,
                    }}));
                }
                "file" => {
                    let data = item
                        .get("file")
                        .and_then(|f| f.get("file_data"))
                        .and_then(Value::as_str)
                        .and_then(parse_data_url);
                    match data {
                        Some((mime, data)) => parts.push(json!({
                            "inlineData": { "mimeType": mime, "data": data }
                        })),
                        None => self.drop_field(&here)?,
                    }
                }
                _ => self.drop_field(&here)?,
            }
        }
        Ok(parts)
    }
}

/// Appends parts to the last content when it has the same role (Gemini wants turns to
/// alternate, and the answers to parallel calls in one content).
fn push_content(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if let Some(last) = contents.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            if let Some(existing) = last.get_mut("parts").and_then(Value::as_array_mut) {
                existing.extend(parts);
                return;
            }
        }
    }
    contents.push(json!({ "role": role, "parts": parts }));
}

fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

/// An `image_url` → `inlineData` (data URL) or `fileData` (http/https URL).
fn image_part(url: &str, at: &str) -> Result<Value, EncodeError> {
    if let Some((mime, data)) = parse_data_url(url) {
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({ "fileData": { "mimeType": mime_of(url), "fileUri": url } }));
    }
    Err(EncodeError::new(
        "an image must be a base64 `data:` URL or an http(s) URL",
        Some(format!("{at}.image_url.url")),
    ))
}

/// The image media type guessed from a URL's extension; `image/jpeg` when unknown.
fn mime_of(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => "image/jpeg",
    }
}

/// An assistant message → `text` and `functionCall` parts; remembers each call's name.
fn assistant_parts(
    message: &Value,
    content: &Value,
    at: &str,
    call_names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, EncodeError> {
    let mut parts: Vec<Value> = text_part(&text_of(content)).into_iter().collect();
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(parts),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(EncodeError::new(
                "`tool_calls` must be an array",
                Some(format!("{at}.tool_calls")),
            ))
        }
    };
    for (k, call) in calls.iter().enumerate() {
        let here = format!("{at}.tool_calls[{k}]");
        let function = call.get("function").unwrap_or(&Value::Null);
        let Some(name) = function.get("name").and_then(Value::as_str) else {
            return Err(EncodeError::new(
                "a tool call needs a function name",
                Some(format!("{here}.function.name")),
            ));
        };
        let arguments = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        let args = if arguments.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str::<Value>(arguments) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(EncodeError::new(
                        "tool call arguments must be a JSON object",
                        Some(format!("{here}.function.arguments")),
                    ))
                }
            }
        };
        if let Some(id) = call.get("id").and_then(Value::as_str) {
            call_names.insert(id.to_owned(), name.to_owned());
        }
        let mut part = Map::new();
        part.insert("functionCall".into(), json!({ "name": name, "args": args }));
        let signature = call
            .pointer("/extra_content/google/thought_signature")
            .and_then(Value::as_str);
        // Only the first call of a turn needs a signature (Gemini signs that one).
        match (signature, k == 0) {
            (Some(sig), _) => {
                part.insert("thoughtSignature".into(), sig.into());
            }
            (None, true) => {
                part.insert("thoughtSignature".into(), STAND_IN_SIGNATURE.into());
            }
            (None, false) => {}
        }
        parts.push(Value::Object(part));
    }
    Ok(parts)
}

/// A tool result → `functionResponse`: a JSON object content as is, anything else
/// wrapped as `{"content": text}`.
fn function_response(name: &str, content: &Value) -> Value {
    let text = text_of(content);
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    json!({ "functionResponse": { "name": name, "response": response } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_mime_is_guessed_from_the_extension_before_the_query() {
        assert_eq!(mime_of("https://x/a.PNG?v=1"), "image/png");
        assert_eq!(mime_of("https://x/a.webp#f"), "image/webp");
        assert_eq!(mime_of("https://x/photo"), "image/jpeg");
    }

    #[test]
    fn a_non_object_tool_result_is_wrapped() {
        let part = function_response("f", &json!("[1,2]"));
        assert_eq!(
            part["functionResponse"]["response"],
            json!({"content": "[1,2]"})
        );
        let part = function_response("f", &json!("{\"ok\":true}"));
        assert_eq!(part["functionResponse"]["response"], json!({"ok": true}));
    }
}
