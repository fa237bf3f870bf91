//! OpenAI chat request → Gemini `GenerateContentRequest` (the [`encode`] half of the
//! `gemini` dialect). Owns the mapping of messages, parts, sampling parameters, tools and
//! tool choice, and the list of fields Gemini cannot carry. Does not own the path's base
//! URL or the API key header (the daemon's). The request is read as borrowed raw slices
//! (schemas and sampling values passed through as their bytes) and the output written
//! from typed structs, serialised once.

use super::messages::{Content, Part};
use super::path_segment;
use crate::raw::{self, field, Fields, Raw};
use crate::translate::{EncodeError, Encoded, Target};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The dialect's name in error messages.
const DIALECT: &str = "gemini";

/// Request fields read (or deliberately ignored because they are the gateway's) here;
/// every other non-null field is dropped and reported.
const HANDLED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "reasoning_effort",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
];

/// The Gemini request written upstream.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Out<'a> {
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<System<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<Config<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[Declarations<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
}

/// `systemInstruction`.
#[derive(Serialize)]
struct System<'a> {
    parts: Vec<Part<'a>>,
}

/// `generationConfig`.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Config<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Stop<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<Thinking>,
}

impl Config<'_> {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.top_k.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_none()
            && self.candidate_count.is_none()
            && self.response_mime_type.is_none()
            && self.response_json_schema.is_none()
            && self.thinking_config.is_none()
    }
}

/// `stopSequences`: one string made a list, or the client's list as is.
#[derive(Serialize)]
#[serde(untagged)]
enum Stop<'a> {
    One([&'a RawValue; 1]),
    List(&'a RawValue),
}

/// `thinkingConfig`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Thinking {
    thinking_budget: u32,
    include_thoughts: bool,
}

/// `{functionDeclarations: […]}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Declarations<'a> {
    function_declarations: Vec<Declaration<'a>>,
}

/// A function declaration.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Declaration<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Raw<'a>,
}

/// `toolConfig`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: CallingConfig<'a>,
}

/// `functionCallingConfig`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<[Cow<'a, str>; 1]>,
}

/// The members of the request's nested objects read here (`stream_options`,
/// `response_format`, `json_schema`, a tool, its `function`, `tool_choice`).
#[derive(Deserialize, Default)]
struct Obj<'a> {
    #[serde(borrow)]
    include_usage: Raw<'a>,
    #[serde(borrow, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow)]
    json_schema: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "raw::keep_null")]
    schema: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "raw::keep_null")]
    function: Raw<'a>,
    #[serde(borrow)]
    name: Raw<'a>,
    #[serde(borrow)]
    description: Raw<'a>,
    #[serde(borrow)]
    parameters: Raw<'a>,
}

fn obj(raw: Raw<'_>) -> Obj<'_> {
    raw::object(raw).unwrap_or_default()
}

/// Builds the Gemini request for an OpenAI chat request body.
///
/// The path is `/models/{model}:generateContent`, or
/// `/models/{model}:streamGenerateContent?alt=sse` for a stream; a model written
/// `models/x` is sent as `x`. Fields Gemini cannot carry are listed in
/// [`Encoded::dropped`], or refused when `settings.strict`.
pub fn encode(body: &[u8], target: Target<'_>) -> Result<Encoded, EncodeError> {
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
    let request: Fields<'_> = serde_json::from_slice(body).map_err(not_json)?;
    let get = |key: &str| request.get(key).copied();
    let mut enc = Encoder {
        strict: target.settings.strict,
        dropped: Vec::new(),
    };
    let stream = raw::as_bool(get("stream")) == Some(true);
    let include_usage =
        stream && raw::as_bool(obj(get("stream_options")).include_usage) == Some(true);

    let (system, contents) = enc.messages(get("messages"))?;
    let config = enc.generation_config(&request, stream)?;
    let mut out = Out {
        contents,
        system_instruction: (!system.is_empty()).then_some(System { parts: system }),
        generation_config: (!config.is_empty()).then_some(config),
        tools: None,
        tool_config: None,
    };
    out.tools = enc.tools(field(&request, "tools"))?;
    out.tool_config = tool_config(field(&request, "tool_choice"))?;
    if raw::as_bool(get("parallel_tool_calls")) == Some(false) {
        enc.drop_field("parallel_tool_calls")?;
    }
    for (key, value) in &request {
        if value.get() != "null" && !HANDLED.contains(&key.0.as_ref()) {
            enc.drop_field(&key.0)?;
        }
    }

    let model = target.model.strip_prefix("models/").unwrap_or(target.model);
    let model = path_segment(model);
    let path = if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    };
    Ok(Encoded {
        path,
        body: crate::raw::json_bytes(&out),
        stream,
        include_usage,
        dropped: enc.dropped,
    })
}

/// The state of one encoding: the mode, and the fields dropped so far.
pub(super) struct Encoder {
    strict: bool,
    dropped: Vec<String>,
}

impl Encoder {
    /// Notes a field Gemini cannot carry, or refuses it in strict mode.
    pub(super) fn drop_field(&mut self, field: &str) -> Result<(), EncodeError> {
        if self.strict {
            return Err(EncodeError::unsupported(DIALECT, field));
        }
        self.dropped.push(field.to_owned());
        Ok(())
    }

    /// `generationConfig` from the sampling and output parameters.
    fn generation_config<'a>(
        &mut self,
        request: &Fields<'a>,
        stream: bool,
    ) -> Result<Config<'a>, EncodeError> {
        let get = |key: &str| field(request, key);
        let mut config = Config {
            temperature: get("temperature"),
            top_p: get("top_p"),
            top_k: get("top_k"),
            seed: get("seed"),
            presence_penalty: get("presence_penalty"),
            frequency_penalty: get("frequency_penalty"),
            max_output_tokens: get("max_completion_tokens").or_else(|| get("max_tokens")),
            ..Config::default()
        };
        if let Some(stop) = get("stop") {
            config.stop_sequences = Some(match stop.get().as_bytes().first() {
                Some(b'"') => Stop::One([stop]),
                Some(b'[') => Stop::List(stop),
                _ => {
                    return Err(EncodeError::new(
                        "`stop` must be a string or an array of strings",
                        Some("stop".to_owned()),
                    ))
                }
            });
        }
        match raw::as_u64(get("n")) {
            None | Some(1) => {}
            // The stream translator writes choice 0 only.
            Some(_) if stream => self.drop_field("n")?,
            Some(n) => config.candidate_count = Some(n),
        }
        if let Some(format) = get("response_format") {
            let format = obj(Some(format));
            match raw::as_str(format.kind).as_deref() {
                Some("text") => {}
                Some("json_object") => config.response_mime_type = Some("application/json"),
                Some("json_schema") => {
                    config.response_mime_type = Some("application/json");
                    config.response_json_schema = obj(format.json_schema).schema;
                }
                _ => {
                    return Err(EncodeError::new(
                        "`response_format.type` must be `text`, `json_object` or `json_schema`",
                        Some("response_format".to_owned()),
                    ))
                }
            }
        }
        if let Some(effort) = get("reasoning_effort") {
            let budget =
                match raw::as_str(Some(effort)).as_deref() {
                    Some("none" | "minimal") => 0,
                    Some("low") => 1024,
                    Some("medium") => 8192,
                    Some("high") => 24576,
                    _ => return Err(EncodeError::new(
                        "`reasoning_effort` must be `none`, `minimal`, `low`, `medium` or `high`",
                        Some("reasoning_effort".to_owned()),
                    )),
                };
            config.thinking_config = Some(Thinking {
                thinking_budget: budget,
                include_thoughts: budget > 0,
            });
        }
        Ok(config)
    }

    /// `tools` → `[{functionDeclarations: […]}]`; non-function tools are dropped.
    fn tools<'a>(&mut self, tools: Raw<'a>) -> Result<Option<[Declarations<'a>; 1]>, EncodeError> {
        let Some(tools) = tools else {
            return Ok(None);
        };
        let Some(tools) = raw::array(Some(tools)) else {
            return Err(EncodeError::new(
                "`tools` must be an array",
                Some("tools".to_owned()),
            ));
        };
        let mut declarations = Vec::new();
        for (i, tool) in tools.into_iter().enumerate() {
            let tool = obj(Some(tool));
            let is_function = raw::as_str(tool.kind).is_some_and(|k| k == "function");
            let Some(function) = tool.function.filter(|_| is_function) else {
                self.drop_field(&format!("tools[{i}]"))?;
                continue;
            };
            let function = obj(Some(function));
            let Some(name) = raw::as_str(function.name) else {
                return Err(EncodeError::new(
                    "a function tool needs a `name`",
                    Some(format!("tools[{i}].function.name")),
                ));
            };
            // Plain JSON Schema, as OpenAI clients write it (`additionalProperties`,
            // `$ref`…), which the OpenAPI-subset `parameters` field refuses.
            declarations.push(Declaration {
                name,
                description: function.description,
                parameters_json_schema: function.parameters,
            });
        }
        if declarations.is_empty() {
            return Ok(None);
        }
        Ok(Some([Declarations {
            function_declarations: declarations,
        }]))
    }
}

/// `tool_choice` → `toolConfig.functionCallingConfig`.
fn tool_config(choice: Raw<'_>) -> Result<Option<ToolConfig<'_>>, EncodeError> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    let config = if choice.get().starts_with('"') {
        let mode = match raw::text(Some(choice)).as_ref() {
            "auto" => "AUTO",
            "none" => "NONE",
            "required" => "ANY",
            _ => return Err(bad_tool_choice()),
        };
        CallingConfig {
            mode,
            allowed_function_names: None,
        }
    } else {
        let name = raw::as_str(obj(obj(Some(choice)).function).name).ok_or_else(bad_tool_choice)?;
        CallingConfig {
            mode: "ANY",
            allowed_function_names: Some([name]),
        }
    };
    Ok(Some(ToolConfig {
        function_calling_config: config,
    }))
}

fn bad_tool_choice() -> EncodeError {
    EncodeError::new(
        "`tool_choice` must be `auto`, `none`, `required` or {\"type\":\"function\",\"function\":{\"name\":…}}",
        Some("tool_choice".to_owned()),
    )
}
