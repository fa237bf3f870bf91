//! OpenAI chat request → Gemini `GenerateContentRequest` (the [`encode`] half of the
//! `gemini` dialect). Owns the mapping of messages, parts, sampling parameters, tools and
//! tool choice, and the list of fields Gemini cannot carry. Does not own the path's base
//! URL or the API key header (the daemon's).

use super::path_segment;
use crate::translate::{EncodeError, Encoded, Target};
use serde_json::{json, Map, Value};

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

/// Builds the Gemini request for an OpenAI chat request body.
///
/// The path is `/models/{model}:generateContent`, or
/// `/models/{model}:streamGenerateContent?alt=sse` for a stream; a model written
/// `models/x` is sent as `x`. Fields Gemini cannot carry are listed in
/// [`Encoded::dropped`], or refused when `settings.strict`.
pub fn encode(body: &[u8], target: Target<'_>) -> Result<Encoded, EncodeError> {
    let mut request: Value = serde_json::from_slice(body)
        .map_err(|e| EncodeError::new(format!("request body is not valid JSON: {e}"), None))?;
    let Some(request) = request.as_object_mut() else {
        return Err(EncodeError::new("request body must be a JSON object", None));
    };
    let mut enc = Encoder {
        strict: target.settings.strict,
        dropped: Vec::new(),
    };
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = stream
        && request
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);

    let mut out = Map::new();
    let (system, contents) = enc.messages(request.get("messages"))?;
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let config = enc.generation_config(request, stream)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    // Taken out of the request so that their schemas move into the output uncopied.
    if let Some(tools) = enc.tools(request.remove("tools"))? {
        out.insert("tools".into(), tools);
    }
    if let Some(choice) = tool_config(request.get("tool_choice"))? {
        out.insert("toolConfig".into(), choice);
    }
    if request.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        enc.drop_field("parallel_tool_calls")?;
    }
    for (key, value) in request {
        if !value.is_null() && !HANDLED.contains(&key.as_str()) {
            enc.drop_field(key)?;
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
    fn generation_config(
        &mut self,
        request: &Map<String, Value>,
        stream: bool,
    ) -> Result<Map<String, Value>, EncodeError> {
        let mut config = Map::new();
        let mut copy = |from: &str, to: &str| {
            if let Some(v) = request.get(from).filter(|v| !v.is_null()) {
                config.insert(to.to_owned(), v.clone());
            }
        };
        copy("temperature", "temperature");
        copy("top_p", "topP");
        copy("top_k", "topK");
        copy("seed", "seed");
        copy("presence_penalty", "presencePenalty");
        copy("frequency_penalty", "frequencyPenalty");
        if let Some(max) = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| request.get(*k).filter(|v| !v.is_null()))
        {
            config.insert("maxOutputTokens".into(), max.clone());
        }
        match request.get("stop") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                config.insert("stopSequences".into(), json!([s]));
            }
            Some(Value::Array(list)) => {
                config.insert("stopSequences".into(), Value::Array(list.clone()));
            }
            Some(_) => {
                return Err(EncodeError::new(
                    "`stop` must be a string or an array of strings",
                    Some("stop".to_owned()),
                ))
            }
        }
        match request.get("n").and_then(Value::as_u64) {
            None | Some(1) => {}
            // The stream translator writes choice 0 only.
            Some(_) if stream => self.drop_field("n")?,
            Some(n) => {
                config.insert("candidateCount".into(), n.into());
            }
        }
        if let Some(format) = request.get("response_format").filter(|v| !v.is_null()) {
            match format.get("type").and_then(Value::as_str) {
                Some("text") => {}
                Some("json_object") => {
                    config.insert("responseMimeType".into(), "application/json".into());
                }
                Some("json_schema") => {
                    config.insert("responseMimeType".into(), "application/json".into());
                    if let Some(schema) = format.get("json_schema").and_then(|s| s.get("schema")) {
                        config.insert("responseJsonSchema".into(), schema.clone());
                    }
                }
                _ => {
                    return Err(EncodeError::new(
                        "`response_format.type` must be `text`, `json_object` or `json_schema`",
                        Some("response_format".to_owned()),
                    ))
                }
            }
        }
        if let Some(effort) = request.get("reasoning_effort").filter(|v| !v.is_null()) {
            let budget =
                match effort.as_str() {
                    Some("none" | "minimal") => 0,
                    Some("low") => 1024,
                    Some("medium") => 8192,
                    Some("high") => 24576,
                    _ => return Err(EncodeError::new(
                        "`reasoning_effort` must be `none`, `minimal`, `low`, `medium` or `high`",
                        Some("reasoning_effort".to_owned()),
                    )),
                };
            config.insert(
                "thinkingConfig".into(),
                json!({ "thinkingBudget": budget, "includeThoughts": budget > 0 }),
            );
        }
        Ok(config)
    }

    /// `tools` → `[{functionDeclarations: […]}]`; non-function tools are dropped.
    fn tools(&mut self, tools: Option<Value>) -> Result<Option<Value>, EncodeError> {
        let Some(tools) = tools.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let Value::Array(tools) = tools else {
            return Err(EncodeError::new(
                "`tools` must be an array",
                Some("tools".to_owned()),
            ));
        };
        let mut declarations = Vec::new();
        for (i, mut tool) in tools.into_iter().enumerate() {
            let is_function = tool["type"] == "function";
            let function = tool.get_mut("function").filter(|_| is_function);
            let Some(function) = function else {
                self.drop_field(&format!("tools[{i}]"))?;
                continue;
            };
            let Some(name) = function.get("name").and_then(Value::as_str) else {
                return Err(EncodeError::new(
                    "a function tool needs a `name`",
                    Some(format!("tools[{i}].function.name")),
                ));
            };
            let mut decl = Map::new();
            decl.insert("name".into(), name.into());
            if let Some(v) = function.get("description").filter(|v| !v.is_null()) {
                decl.insert("description".into(), v.clone());
            }
            // Plain JSON Schema, as OpenAI clients write it (`additionalProperties`,
            // `$ref`…), which the OpenAPI-subset `parameters` field refuses.
            if let Some(v) = function
                .as_object_mut()
                .and_then(|f| f.remove("parameters"))
                .filter(|v| !v.is_null())
            {
                decl.insert("parametersJsonSchema".into(), v);
            }
            declarations.push(Value::Object(decl));
        }
        if declarations.is_empty() {
            return Ok(None);
        }
        Ok(Some(json!([{ "functionDeclarations": declarations }])))
    }
}

/// `tool_choice` → `toolConfig.functionCallingConfig`.
fn tool_config(choice: Option<&Value>) -> Result<Option<Value>, EncodeError> {
    let config = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "mode": "AUTO" }),
            "none" => json!({ "mode": "NONE" }),
            "required" => json!({ "mode": "ANY" }),
            _ => return Err(bad_tool_choice()),
        },
        Some(named) => {
            let name = named
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad_tool_choice)?;
            json!({ "mode": "ANY", "allowedFunctionNames": [name] })
        }
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}

fn bad_tool_choice() -> EncodeError {
    EncodeError::new(
        "`tool_choice` must be `auto`, `none`, `required` or {\"type\":\"function\",\"function\":{\"name\":…}}",
        Some("tool_choice".to_owned()),
    )
}
