//! Anthropic-format ingress through the real binary: `POST /v1/messages` from the
//! official Anthropic Python SDK (`tests/python/messages_check.py`) served by an OpenAI
//! upstream (translated both ways) and by an Anthropic one, with a gateway key sent as
//! `x-api-key`; plus what an OpenAI upstream receives, and errors in Anthropic's shape.

use crate::dialects_sdk::anthropic;
use crate::support::*;
use serde_json::{json, Value};

/// An OpenAI-format upstream: "Hello from openai", or two parallel tool calls when
/// tools are offered and no tool result came back yet; JSON or SSE as asked.
pub fn openai(seen: &Seen) -> NativeReply {
    let body = seen.json();
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let tools = body.get("tools").is_some() && last["role"] != "tool";
    let usage = json!({"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15});
    let calls = json!([
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{\"tz\": \"Europe/Paris\"}"}}]);
    if body["stream"] != true {
        let message = if tools {
            json!({"role": "assistant", "content": null, "tool_calls": calls})
        } else {
            json!({"role": "assistant", "content": "Hello from openai"})
        };
        return NativeReply::json(
            200,
            &json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": message, "finish_reason": if tools { "tool_calls" } else { "stop" }}], "usage": usage}),
        );
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut out = chunk(json!({"role": "assistant", "content": ""}), None);
    if tools {
        for (i, (id, name, args)) in [
            ("call_a", "get_weather", "{\"city\": \"Paris\"}"),
            ("call_b", "get_time", "{\"tz\": \"Europe/Paris\"}"),
        ]
        .into_iter()
        .enumerate()
        {
            out += &chunk(
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
            );
            let (a, b) = args.split_at(4);
            for part in [a, b] {
                out += &chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                    None,
                );
            }
        }
        out += &chunk(json!({}), Some("tool_calls"));
    } else {
        for part in ["Hello ", "from ", "openai"] {
            out += &chunk(json!({"content": part}), None);
        }
        out += &chunk(json!({}), Some("stop"));
    }
    if body["stream_options"]["include_usage"] == true {
        out += &format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [], "usage": usage})
        );
    }
    out += "data: [DONE]\n\n";
    NativeReply::lines(200, "text/event-stream", &out)
}

fn yaml(gpt: &str, claude: &str) -> String {
    format!(
        "keys:\n  - {{name: team, key: sk-gw-team}}\nupstreams:\n  - {{name: gpt, base_url: '{gpt}/v1', models: [gpt-4o]}}\n  - {{name: claude, dialect: anthropic, base_url: '{claude}', auth: {{type: bearer, key: sk-ant-up}}, models: [claude-sonnet-4]}}\n"
    )
}

#[tokio::test]
async fn anthropic_python_sdk_is_served_by_openai_and_anthropic_upstreams() {
    let gpt = NativeUpstream::start(openai).await;
    let claude = NativeUpstream::start(anthropic).await;
    let gw = TestGateway::start(&yaml(&gpt.url(), &claude.url())).await;
    let cases = json!({"key": "sk-gw-team", "models": ["gpt-4o", "claude-sonnet-4"], "unknown": "no-such-model"});
    let (passed, report) = run_python(
        "messages_check.py",
        &[
            ("SWITCHYARD_BASE_URL", gw.base.clone()),
            ("SWITCHYARD_MESSAGES_CASES", cases.to_string()),
        ],
    )
    .await;
    assert!(passed, "{report}\n--- gateway logs ---\n{}", gw.logs());
    eprintln!("{report}");
    // The gateway key never went upstream; the Anthropic upstream got its own key.
    for seen in gpt.requests().iter().chain(claude.requests().iter()) {
        assert!(
            !format!("{:?}", seen.headers).contains("sk-gw-team"),
            "{:?}",
            seen.headers
        );
    }
    assert_eq!(claude.requests()[0].headers["x-api-key"], "sk-ant-up");
    let logs = gw.settled_logs().await;
    assert!(
        !logs.contains("sk-gw-team") && !logs.contains("sk-ant-up"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_messages_request_reaches_an_openai_upstream_as_chat() {
    let gpt = NativeUpstream::start(openai).await;
    let claude = NativeUpstream::start(anthropic).await;
    let gw = TestGateway::start(&yaml(&gpt.url(), &claude.url())).await;
    let http = gw.http();
    let answer = http
        .call(
            "POST",
            "/v1/messages",
            &[("x-api-key", "sk-gw-team"), ("anthropic-version", "2023-06-01")],
            json!({"model": "gpt-4o", "max_tokens": 64, "system": "Be brief.", "stop_sequences": ["END"],
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}).to_string(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let v = answer.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["content"][0]["text"], "Hello from openai");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 4);
    let sent = gpt.requests()[0].json();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(sent["stop"], json!(["END"]));

    // Errors come back in Anthropic's shape, whatever raised them.
    let unknown = http
        .call("POST", "/v1/messages", &[("x-api-key", "sk-gw-team")], json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).to_string())
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["type"], "error");
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");
    let no_key = http
        .call("POST", "/v1/messages", &[], json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).to_string())
        .await;
    assert_eq!(no_key.status, 401);
    assert_eq!(no_key.json()["error"]["type"], "authentication_error");
    let invalid = http
        .call(
            "POST",
            "/v1/messages",
            &[("x-api-key", "sk-gw-team")],
            json!({"model": "gpt-4o", "messages": "x"}).to_string(),
        )
        .await;
    assert_eq!(invalid.status, 400, "{}", invalid.text());
    assert_eq!(invalid.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn count_tokens_is_answered_by_an_anthropic_upstream_and_refused_clearly_otherwise() {
    let gpt = NativeUpstream::start(openai).await;
    let claude = NativeUpstream::start(|seen| {
        if seen.uri == "/v1/messages/count_tokens" {
            return NativeReply::json(200, &json!({"input_tokens": 14}));
        }
        anthropic(seen)
    })
    .await;
    let gw = TestGateway::start(&yaml(&gpt.url(), &claude.url())).await;
    let body = json!({"model": "claude-sonnet-4", "messages": [{"role": "user", "content": "Hello, world"}]});
    let counted = gw
        .http()
        .call(
            "POST",
            "/v1/messages/count_tokens",
            &[("x-api-key", "sk-gw-team")],
            body.to_string(),
        )
        .await;
    assert_eq!(counted.status, 200, "{}", counted.text());
    assert_eq!(counted.json(), json!({"input_tokens": 14}));
    let seen = claude
        .requests()
        .into_iter()
        .find(|s| s.uri == "/v1/messages/count_tokens")
        .unwrap();
    assert_eq!(seen.headers["x-api-key"], "sk-ant-up");
    assert_eq!(seen.json(), body, "sent as it came");
    let refused = gw
        .http()
        .call(
            "POST",
            "/v1/messages/count_tokens",
            &[("x-api-key", "sk-gw-team")],
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}).to_string(),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["type"], "error");
    assert_eq!(refused.json()["error"]["type"], "invalid_request_error");
    assert!(gpt.requests().is_empty());
}

#[tokio::test]
async fn a_messages_request_to_anthropic_upstreams_passes_through_untouched_and_is_counted() {
    let gpt = NativeUpstream::start(openai).await;
    let claude = NativeUpstream::start(anthropic).await;
    let gw = TestGateway::start(&yaml(&gpt.url(), &claude.url())).await;
    // `top_k` and `cache_control` are dropped by the translation: kept here.
    let body = json!({"model": "claude-sonnet-4", "max_tokens": 64, "top_k": 5, "stream": true,
                      "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                      "messages": [{"role": "user", "content": "hi"}]});
    let answer = gw
        .http()
        .call(
            "POST",
            "/v1/messages",
            &[("x-api-key", "sk-gw-team")],
            body.to_string(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text = answer.text();
    assert!(
        text.contains("event: message_start") && text.contains("event: message_stop"),
        "{text}"
    );
    let seen = &claude.requests()[0];
    assert_eq!(seen.uri, "/v1/messages");
    assert_eq!(seen.json(), body, "sent byte for byte (same JSON)");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-up");
    // Usage read from the Anthropic events: 12 in (message_start), 5 out (message_delta).
    gw.scrape_until(&[
        r#"switchyard_input_tokens_total{model="claude-sonnet-4",upstream="claude"} 12"#,
        r#"switchyard_output_tokens_total{model="claude-sonnet-4",upstream="claude"} 5"#,
    ])
    .await;
}
