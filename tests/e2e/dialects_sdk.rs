//! The official OpenAI Python SDK against models served in other wire formats: mock
//! upstreams speaking Anthropic SSE, Gemini SSE and Ollama NDJSON (built here from each
//! API's documented shapes) behind the real binary; `tests/python/dialects_check.py`
//! checks plain chat, streams through the SDK's iterator with `include_usage`, two
//! parallel tool calls streamed and answered, errors as the SDK's typed exceptions, and
//! a failover from an Anthropic upstream to an Ollama one.

use crate::support::*;
use serde_json::{json, Value};

/// Whether the last message carries tool results (the second turn of a tool call).
fn answering_tools(body: &Value, result_role: &str) -> bool {
    body["messages"]
        .as_array()
        .or(body["contents"].as_array())
        .and_then(|m| m.last())
        .is_some_and(|m| m.to_string().contains(result_role))
}

fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

pub fn anthropic(seen: &Seen) -> NativeReply {
    let body = seen.json();
    let model = body["model"].as_str().unwrap_or_default();
    let error = |status, kind: &str, message: &str| {
        NativeReply::json(
            status,
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        )
    };
    match model {
        "claude-auth" => return error(401, "authentication_error", "invalid x-api-key"),
        "claude-bad" => {
            return error(
                400,
                "invalid_request_error",
                "messages: text content blocks must be non-empty",
            )
        }
        "claude-busy" => {
            return error(429, "rate_limit_error", "rate limited").header("retry-after", "1")
        }
        "claude-down" => return error(529, "overloaded_error", "Overloaded"),
        _ => {}
    }
    let tools = body.get("tools").is_some() && !answering_tools(&body, "tool_result");
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}});
    if body["stream"] != true {
        let content = if tools {
            json!([{"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
                   {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {"tz": "Europe/Paris"}}])
        } else {
            json!([{"type": "text", "text": "Hello from anthropic"}])
        };
        return NativeReply::json(
            200,
            &json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": if tools { "tool_use" } else { "end_turn" }, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 5}}),
        );
    }
    let mut events = vec![("message_start", start), ("ping", json!({"type": "ping"}))];
    if tools {
        for (i, (id, name, args)) in [
            ("toolu_a", "get_weather", r#"{"city": "Paris"}"#),
            ("toolu_b", "get_time", r#"{"tz": "Europe/Paris"}"#),
        ]
        .into_iter()
        .enumerate()
        {
            events.push(("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            let (a, b) = args.split_at(5);
            for part in ["", a, b] {
                events.push(("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": part}})));
            }
            events.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": i}),
            ));
        }
    } else {
        events.push(("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        for part in ["Hello ", "from ", "anthropic"] {
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}})));
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
    }
    let stop = if tools { "tool_use" } else { "end_turn" };
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 5}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    NativeReply::lines(200, "text/event-stream", &sse(&events))
}

fn gemini(seen: &Seen) -> NativeReply {
    let body = seen.json();
    let tools = body.get("tools").is_some() && !answering_tools(&body, "functionResponse");
    let usage = json!({"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13});
    let parts = if tools {
        json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}, {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}}])
    } else {
        json!([{"text": "Hello from gemini"}])
    };
    if !seen.uri.contains(":streamGenerateContent") {
        return NativeReply::json(
            200,
            &json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}], "usageMetadata": usage}),
        );
    }
    let mut out = String::new();
    if !tools {
        for piece in ["Hello ", "from "] {
            out.push_str(&format!("data: {}\r\n\r\n", json!({"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}]})));
        }
        out.push_str(&format!("data: {}\r\n\r\n", json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "gemini"}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": usage})));
    } else {
        out.push_str(&format!("data: {}\r\n\r\n", json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}], "usageMetadata": usage})));
    }
    NativeReply::lines(200, "text/event-stream", &out)
}

fn ollama(seen: &Seen) -> NativeReply {
    if seen.uri == "/api/tags" {
        return NativeReply::json(
            200,
            &json!({"models": [{"name": "llama3.2", "model": "llama3.2"}]}),
        );
    }
    let body = seen.json();
    let tools = body.get("tools").is_some() && !answering_tools(&body, "\"tool\"");
    let message = if tools {
        json!({"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "get_time", "arguments": {"tz": "Europe/Paris"}}}]})
    } else {
        json!({"role": "assistant", "content": "Hello from ollama"})
    };
    let last = json!({"model": "llama3.2", "message": message, "done": true, "done_reason": "stop", "prompt_eval_count": 7, "eval_count": 3});
    if body["stream"] != true {
        return NativeReply::json(200, &last);
    }
    let mut lines = String::new();
    if !tools {
        for piece in ["Hello ", "from "] {
            lines.push_str(&format!("{}\n", json!({"model": "llama3.2", "message": {"role": "assistant", "content": piece}, "done": false})));
        }
        let end = json!({"model": "llama3.2", "message": {"role": "assistant", "content": "ollama"}, "done": true, "done_reason": "stop", "prompt_eval_count": 7, "eval_count": 3});
        lines.push_str(&format!("{end}\n"));
    } else {
        lines.push_str(&format!(
            "{}\n",
            json!({"model": "llama3.2", "message": message, "done": false})
        ));
        lines.push_str(&format!("{}\n", json!({"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop", "prompt_eval_count": 7, "eval_count": 3})));
    }
    NativeReply::lines(200, "application/x-ndjson", &lines)
}

#[tokio::test]
async fn openai_python_sdk_uses_anthropic_gemini_and_ollama_models_like_openai_ones() {
    let claude = NativeUpstream::start(anthropic).await;
    let gem = NativeUpstream::start(gemini).await;
    let llama = NativeUpstream::start(ollama).await;
    let yaml = format!(
        "routing: {{failures_before_cooldown: 100}}
upstreams:
  - {{name: claude, dialect: anthropic, base_url: '{}', auth: {{type: bearer, key: sk-ant-x}}, models: [claude-sonnet-4, claude-auth, claude-bad, claude-busy, claude-down]}}
  - {{name: gem, dialect: gemini, base_url: '{}/v1beta', auth: {{type: bearer, key: AIza-x}}, models: [gemini-2.0-flash]}}
  - {{name: llama, dialect: ollama, base_url: '{}'}}
routes:
  - {{model: smart, targets: [{{upstream: claude, model: claude-down}}], fallbacks: [llama3.2]}}
",
        claude.url(),
        gem.url(),
        llama.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let cases = json!({
        "chat": ["claude-sonnet-4", "gemini-2.0-flash", "llama3.2"],
        "tools": ["claude-sonnet-4", "gemini-2.0-flash", "llama3.2"],
        "auth_error": "claude-auth",
        "bad_request": "claude-bad",
        "rate_limited": "claude-busy",
        "failover": "smart",
    });
    let (passed, report) = run_python(
        "dialects_check.py",
        &[
            ("SWITCHYARD_BASE_URL", gw.base.clone()),
            ("SWITCHYARD_DIALECT_CASES", cases.to_string()),
        ],
    )
    .await;
    assert!(passed, "{report}\n--- gateway logs ---\n{}", gw.logs());
    eprintln!("{report}");
    // The tool results of the second turn reached each upstream in its own shape.
    let turn2 = |reqs: Vec<Seen>, needle: &str| {
        reqs.iter()
            .any(|s| String::from_utf8_lossy(&s.body).contains(needle))
    };
    assert!(turn2(claude.requests(), "\"tool_result\""));
    assert!(turn2(gem.requests(), "\"functionResponse\""));
    assert!(turn2(llama.requests(), "\"role\":\"tool\""));
}
