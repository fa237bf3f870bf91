//! OpenAI `messages` → Gemini `systemInstruction` and `contents`: roles, merging of
//! same-role turns, content parts (text, images, audio, files), assistant tool calls
//! and their thought signatures, tool results. Part of the `gemini` request encoder;
//! reads the messages as borrowed raw slices and builds typed parts.

use super::request::Encoder;
use crate::raw::{self, Raw};
use crate::translate::EncodeError;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Signature sent on a replayed `functionCall` whose client message carries none.
/// Gemini 3 refuses a function call in the history without a `thoughtSignature`; Google
/// documents this value for history that did not come from the model itself.
const STAND_IN_SIGNATURE: &str = "skip_thought_signature_validator";

/// A Gemini `Content`.
#[derive(Serialize)]
pub(super) struct Content<'a> {
    role: &'static str,
    parts: Vec<Part<'a>>,
}

/// A Gemini `Part`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Part<'a> {
    Text {
        text: Cow<'a, str>,
    },
    InlineData {
        #[serde(rename = "inlineData")]
        inline_data: Blob<'a>,
    },
    FileData {
        #[serde(rename = "fileData")]
        file_data: FileData<'a>,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<Cow<'a, str>>,
    },
    FunctionResponse {
        #[serde(rename = "functionResponse")]
        function_response: FunctionResponse<'a>,
    },
}

/// `inlineData`.
#[derive(Serialize)]
pub(super) struct Blob<'a> {
    #[serde(rename = "mimeType")]
    mime_type: Cow<'a, str>,
    data: Cow<'a, str>,
}

/// `fileData`.
#[derive(Serialize)]
pub(super) struct FileData<'a> {
    #[serde(rename = "mimeType")]
    mime_type: &'static str,
    #[serde(rename = "fileUri")]
    file_uri: Cow<'a, str>,
}

/// `functionCall`.
#[derive(Serialize)]
pub(super) struct FunctionCall<'a> {
    name: Cow<'a, str>,
    args: Box<RawValue>,
}

/// `functionResponse`.
#[derive(Serialize)]
pub(super) struct FunctionResponse<'a> {
    name: Cow<'a, str>,
    response: Response<'a>,
}

/// A tool result: a JSON object as is, anything else wrapped.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Response<'a> {
    Object(Box<RawValue>),
    Wrapped { content: Cow<'a, str> },
}

/// The members of an OpenAI message, content part or tool call read here.
#[derive(Deserialize, Default)]
struct Obj<'a> {
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    role: Raw<'a>,
    #[serde(borrow)]
    content: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    tool_call_id: Raw<'a>,
    #[serde(borrow)]
    tool_calls: Raw<'a>,
    #[serde(borrow)]
    text: Raw<'a>,
    #[serde(borrow)]
    image_url: Raw<'a>,
    #[serde(borrow)]
    input_audio: Raw<'a>,
    #[serde(borrow)]
    file: Raw<'a>,
    #[serde(borrow)]
    id: Raw<'a>,
    #[serde(borrow)]
    function: Raw<'a>,
    #[serde(borrow)]
    extra_content: Raw<'a>,
}

/// Nested members: `image_url.url`, `input_audio.{data,format}`, `file.file_data`,
/// `function.{name,arguments}`, `extra_content.google.thought_signature`.
#[derive(Deserialize, Default)]
struct Inner<'a> {
    #[serde(borrow)]
    url: Raw<'a>,
    #[serde(borrow)]
    data: Raw<'a>,
    #[serde(borrow)]
    format: Raw<'a>,
    #[serde(borrow)]
    file_data: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    arguments: Raw<'a>,
    #[serde(borrow)]
    google: Raw<'a>,
    #[serde(borrow)]
    thought_signature: Raw<'a>,
}

fn inner(raw: Raw<'_>) -> Inner<'_> {
    raw::object(raw).unwrap_or_default()
}

/// The first byte of a raw value (`b'n'` when absent, as for `null`).
fn kind(raw: Raw<'_>) -> u8 {
    raw.and_then(|r| r.get().bytes().next()).unwrap_or(b'n')
}

impl Encoder {
    /// `messages` → (`systemInstruction` parts, `contents`).
    pub(super) fn messages<'a>(
        &mut self,
        messages: Raw<'a>,
    ) -> Result<(Vec<Part<'a>>, Vec<Content<'a>>), EncodeError> {
        let Some(messages) = raw::array(messages) else {
            return Err(EncodeError::new(
                "`messages` must be an array",
                Some("messages".to_owned()),
            ));
        };
        let mut system = Vec::new();
        let mut contents: Vec<Content<'a>> = Vec::new();
        // Tool call id → function name, from the assistant messages seen so far (the
        // latest wins).
        let mut call_names: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
        for (i, message) in messages.into_iter().enumerate() {
            let at = || format!("messages[{i}]");
            let message: Obj<'a> = raw::object(Some(message)).unwrap_or_default();
            let role = raw::text(message.role);
            let content = message.content;
            let (gemini_role, parts) = match role.as_ref() {
                "system" | "developer" => {
                    let text = raw::text_of(content);
                    if !text.is_empty() {
                        system.push(Part::Text { text });
                    }
                    continue;
                }
                "user" => ("user", self.user_parts(content, &at)?),
                "assistant" => (
                    "model",
                    assistant_parts(&message, content, &at, &mut call_names)?,
                ),
                "tool" => {
                    let id = raw::text(message.tool_call_id);
                    let Some((_, name)) = call_names.iter().rev().find(|(k, _)| *k == id) else {
                        return Err(EncodeError::new(
                            format!("tool message answers unknown tool call id `{id}`"),
                            Some(format!("{}.tool_call_id", at())),
                        ));
                    };
                    ("user", vec![function_response(name.clone(), content)])
                }
                "function" => {
                    let name = raw::text(message.name);
                    ("user", vec![function_response(name, content)])
                }
                other => {
                    return Err(EncodeError::new(
                        format!("unknown message role `{other}`"),
                        Some(format!("{}.role", at())),
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
    fn user_parts<'a>(
        &mut self,
        content: Raw<'a>,
        at: &dyn Fn() -> String,
    ) -> Result<Vec<Part<'a>>, EncodeError> {
        let items = match kind(content) {
            b'"' => return Ok(text_part(raw::text(content)).into_iter().collect()),
            b'[' => raw::array(content).unwrap_or_default(),
            b'n' => return Ok(Vec::new()),
            _ => {
                return Err(EncodeError::new(
                    "content must be a string or an array of parts",
                    Some(format!("{}.content", at())),
                ))
            }
        };
        let mut parts = Vec::new();
        for (j, item) in items.into_iter().enumerate() {
            let here = || format!("{}.content[{j}]", at());
            let item: Obj<'a> = raw::object(Some(item)).unwrap_or_default();
            match raw::text(item.kind).as_ref() {
                "text" => parts.extend(text_part(raw::text(item.text))),
                "image_url" => {
                    let url = raw::object::<Inner<'a>>(item.image_url)
                        .and_then(|i| i.url)
                        .or(item.image_url);
                    parts.push(image_part(raw::text(url), &here())?);
                }
                "input_audio" => {
                    let audio = inner(item.input_audio);
                    let format = raw::text(audio.format);
                    parts.push(Part::InlineData {
                        inline_data: Blob {
                            mime_type: Cow::Owned(format!("audio/{format}")),
                            data: raw::text(audio.data),
                        },
                    });
                }
                "file" => {
                    let data =
                        raw::as_str(inner(item.file).file_data).and_then(|url| raw::data_url(&url));
                    match data {
                        Some((mime_type, data)) => parts.push(Part::InlineData {
                            inline_data: Blob { mime_type, data },
                        }),
                        None => self.drop_field(&here())?,
                    }
                }
                _ => self.drop_field(&here())?,
            }
        }
        Ok(parts)
    }
}

/// Appends parts to the last content when it has the same role (Gemini wants turns to
/// alternate, and the answers to parallel calls in one content).
fn push_content<'a>(contents: &mut Vec<Content<'a>>, role: &'static str, parts: Vec<Part<'a>>) {
    if let Some(last) = contents.last_mut() {
        if last.role == role {
            last.parts.extend(parts);
            return;
        }
    }
    contents.push(Content { role, parts });
}

fn text_part(text: Cow<'_, str>) -> Option<Part<'_>> {
    (!text.is_empty()).then_some(Part::Text { text })
}

/// An `image_url` → `inlineData` (data URL) or `fileData` (http/https URL).
fn image_part<'a>(url: Cow<'a, str>, at: &str) -> Result<Part<'a>, EncodeError> {
    if let Some((mime_type, data)) = raw::data_url(&url) {
        return Ok(Part::InlineData {
            inline_data: Blob { mime_type, data },
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Part::FileData {
            file_data: FileData {
                mime_type: mime_of(&url),
                file_uri: url,
            },
        });
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

/// A JSON object text as its raw bytes (`None` when not a JSON object).
fn json_object(text: &str) -> Option<Box<RawValue>> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<Box<RawValue>>(text).ok()
}

/// An assistant message → `text` and `functionCall` parts; remembers each call's name.
fn assistant_parts<'a>(
    message: &Obj<'a>,
    content: Raw<'a>,
    at: &dyn Fn() -> String,
    call_names: &mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
) -> Result<Vec<Part<'a>>, EncodeError> {
    let mut parts: Vec<Part<'a>> = text_part(raw::text_of(content)).into_iter().collect();
    let calls = match kind(message.tool_calls) {
        b'n' => return Ok(parts),
        b'[' => raw::array(message.tool_calls).unwrap_or_default(),
        _ => {
            return Err(EncodeError::new(
                "`tool_calls` must be an array",
                Some(format!("{}.tool_calls", at())),
            ))
        }
    };
    for (k, call) in calls.into_iter().enumerate() {
        let here = || format!("{}.tool_calls[{k}]", at());
        let call: Obj<'a> = raw::object(Some(call)).unwrap_or_default();
        let function = inner(call.function);
        let Some(name) = raw::as_str(function.name) else {
            return Err(EncodeError::new(
                "a tool call needs a function name",
                Some(format!("{}.function.name", here())),
            ));
        };
        let arguments = raw::text(function.arguments);
        let args = if arguments.trim().is_empty() {
            RawValue::from_string("{}".to_owned()).ok()
        } else {
            json_object(&arguments)
        };
        let Some(args) = args else {
            return Err(EncodeError::new(
                "tool call arguments must be a JSON object",
                Some(format!("{}.function.arguments", here())),
            ));
        };
        if let Some(id) = raw::as_str(call.id) {
            call_names.push((id, name.clone()));
        }
        let signature = raw::as_str(inner(inner(call.extra_content).google).thought_signature);
        // Only the first call of a turn needs a signature (Gemini signs that one).
        let thought_signature = match (signature, k == 0) {
            (Some(sig), _) => Some(sig),
            (None, true) => Some(Cow::Borrowed(STAND_IN_SIGNATURE)),
            (None, false) => None,
        };
        parts.push(Part::FunctionCall {
            function_call: FunctionCall { name, args },
            thought_signature,
        });
    }
    Ok(parts)
}

/// A tool result → `functionResponse`: a JSON object content as is, anything else
/// wrapped as `{"content": text}`.
fn function_response<'a>(name: Cow<'a, str>, content: Raw<'a>) -> Part<'a> {
    let text = raw::text_of(content);
    let response = match json_object(&text) {
        Some(object) => Response::Object(object),
        None => Response::Wrapped { content: text },
    };
    Part::FunctionResponse {
        function_response: FunctionResponse { name, response },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn image_mime_is_guessed_from_the_extension_before_the_query() {
        assert_eq!(mime_of("https://x/a.PNG?v=1"), "image/png");
        assert_eq!(mime_of("https://x/a.webp#f"), "image/webp");
        assert_eq!(mime_of("https://x/photo"), "image/jpeg");
    }

    fn response_of(content: &str) -> Value {
        let raw = serde_json::value::to_raw_value(content).unwrap();
        let part = serde_json::to_value(function_response("f".into(), Some(&raw))).unwrap();
        part["functionResponse"]["response"].clone()
    }

    #[test]
    fn a_non_object_tool_result_is_wrapped() {
        assert_eq!(response_of("[1,2]"), json!({"content": "[1,2]"}));
        assert_eq!(response_of("{\"ok\":true}"), json!({"ok": true}));
    }
}
