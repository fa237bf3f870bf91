//! CPU cost of the dialect translations (pure functions, no I/O), one criterion group
//! per dialect: request encoding, JSON answer decoding and stream translation, plus the
//! OpenAI pass-through baseline (`peek` + `rewrite_model`), and the response cache's
//! pure half (`cache/…`: assembling a streamed answer for storage, replaying a stored
//! one, keying a request).
//!
//! Stream benchmarks feed a golden upstream stream one event (SSE) or line (NDJSON) per
//! `push`, decoder construction and `finish` included, and report
//! `Throughput::Elements(events)`: divide the time by the event count for the cost per
//! chunk (`benches/README.md` does).
//!
//! Run: `cargo bench -p switchyard-dialects --bench translate -- --warm-up-time 1 --measurement-time 3`.

#![expect(
    clippy::expect_used,
    reason = "bench setup: a bad fixture should stop the run"
)]
#![expect(missing_docs, reason = "criterion macros generate undocumented items")]

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use switchyard_dialects::translate::{Reply, Settings, StreamDecode, Target};
use switchyard_dialects::{anthropic, gemini, messages, ollama, responses};

/// A realistic OpenAI chat request: system prompt, a few user/assistant turns including
/// one tool round trip, two tools, a stream with a usage chunk.
const CHAT_REQUEST: &str = r#"{
  "model": "smart",
  "stream": true,
  "stream_options": {"include_usage": true},
  "max_tokens": 1024,
  "temperature": 0.3,
  "messages": [
    {"role": "system", "content": "You are a concise travel assistant. Use the tools when the user asks about weather or local time, and answer in at most three sentences."},
    {"role": "user", "content": "I'm flying to Paris tomorrow. What should I pack?"},
    {"role": "assistant", "content": "Light layers and a compact umbrella are a safe bet for Paris this time of year. Want me to check the forecast?"},
    {"role": "user", "content": "Yes please, and tell me the local time there."},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}},
      {"id": "call_t1", "type": "function", "function": {"name": "get_time", "arguments": "{\"timezone\":\"Europe/Paris\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_w1", "content": "{\"temp_c\": 14, \"sky\": \"light rain\", \"wind_kmh\": 18}"},
    {"role": "tool", "tool_call_id": "call_t1", "content": "2026-12-01T11:08:00+01:00"},
    {"role": "assistant", "content": "It's 14°C with light rain in Paris and the local time is 11:08. Pack a waterproof jacket."},
    {"role": "user", "content": "Great. And what about Tokyo next week?"}
  ],
  "tools": [
    {"type": "function", "function": {
      "name": "get_weather",
      "description": "Current weather for a city",
      "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
      }, "required": ["city"]}
    }},
    {"type": "function", "function": {
      "name": "get_time",
      "description": "Current local time in an IANA time zone",
      "parameters": {"type": "object", "properties": {
        "timezone": {"type": "string", "description": "IANA zone, e.g. Europe/Paris"}
      }, "required": ["timezone"]}
    }}
  ],
  "tool_choice": "auto"
}"#;

/// The same conversation as an Anthropic Messages request (the `messages` ingress).
const MESSAGES_REQUEST: &str = r#"{
  "model": "claude-sonnet-4-5",
  "max_tokens": 1024,
  "stream": true,
  "temperature": 0.3,
  "system": "You are a concise travel assistant. Use the tools when the user asks about weather or local time, and answer in at most three sentences.",
  "messages": [
    {"role": "user", "content": "I'm flying to Paris tomorrow. What should I pack?"},
    {"role": "assistant", "content": "Light layers and a compact umbrella are a safe bet for Paris this time of year. Want me to check the forecast?"},
    {"role": "user", "content": "Yes please, and tell me the local time there."},
    {"role": "assistant", "content": [
      {"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}},
      {"type": "tool_use", "id": "toolu_t1", "name": "get_time", "input": {"timezone": "Europe/Paris"}}
    ]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_w1", "content": "{\"temp_c\": 14, \"sky\": \"light rain\", \"wind_kmh\": 18}"},
      {"type": "tool_result", "tool_use_id": "toolu_t1", "content": [{"type": "text", "text": "2026-12-01T11:08:00+01:00"}]}
    ]},
    {"role": "assistant", "content": "It's 14°C with light rain in Paris and the local time is 11:08. Pack a waterproof jacket."},
    {"role": "user", "content": "Great. And what about Tokyo next week?"}
  ],
  "tools": [
    {"name": "get_weather", "description": "Current weather for a city",
     "input_schema": {"type": "object", "properties": {
       "city": {"type": "string", "description": "City name, e.g. Paris"},
       "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
     }, "required": ["city"]}},
    {"name": "get_time", "description": "Current local time in an IANA time zone",
     "input_schema": {"type": "object", "properties": {
       "timezone": {"type": "string", "description": "IANA zone, e.g. Europe/Paris"}
     }, "required": ["timezone"]}}
  ],
  "tool_choice": {"type": "auto"}
}"#;

macro_rules! golden {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/", $path))
    };
}

fn reply() -> Reply {
    Reply {
        id: "chatcmpl-0123456789abcdef01234567".to_owned(),
        model: "upstream-model".to_owned(),
        created: 1_764_583_680,
        include_usage: true,
    }
}

/// An SSE stream cut into its events, each with its lines and the blank line that ends
/// it (`\n` or `\r\n` line ends).
fn sse_events(text: &str) -> Vec<&[u8]> {
    let mut events = Vec::new();
    let mut start = 0;
    let mut at = 0;
    let mut has_data = false;
    for line in text.split_inclusive('\n') {
        at += line.len();
        if line.trim().is_empty() {
            if has_data {
                events.push(&text.as_bytes()[start..at]);
            }
            start = at;
            has_data = false;
        } else {
            has_data = true;
        }
    }
    if has_data {
        events.push(&text.as_bytes()[start..]);
    }
    events
}

/// An NDJSON stream cut into its non-blank lines (`\n` kept with each).
fn ndjson_lines(text: &str) -> Vec<&[u8]> {
    text.split_inclusive('\n')
        .filter(|line| !line.trim().is_empty())
        .map(str::as_bytes)
        .collect()
}

/// Decodes a whole stream, one `push` per event, checking it ends properly.
fn run_decoder(mut decoder: impl StreamDecode, events: &[&[u8]], out: &mut BytesMut) {
    for event in events {
        decoder.push(event, out).expect("golden stream decodes");
    }
    decoder.finish(out).expect("golden stream ends properly");
}

fn bench_stream<D: StreamDecode>(
    c: &mut Criterion,
    group_name: &str,
    name: &str,
    events: &[&[u8]],
    new: impl Fn(Reply) -> D,
) {
    eprintln!(
        "{group_name}/{name}: {} upstream events per stream",
        events.len()
    );
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(events.len() as u64));
    let reply = reply();
    // Sanity check outside the timing loop.
    run_decoder(new(reply.clone()), events, &mut BytesMut::new());
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(8192);
            run_decoder(new(reply.clone()), black_box(events), &mut out);
            black_box(out)
        });
    });
    group.finish();
}

/// Decoder construction alone (the per-stream fixed cost inside the stream benches).
fn bench_new<D>(c: &mut Criterion, group_name: &str, new: impl Fn(Reply) -> D) {
    let reply = reply();
    let mut group = c.benchmark_group(group_name);
    group.bench_function("stream_decoder_new", |b| {
        b.iter(|| black_box(new(black_box(&reply).clone())))
    });
    group.finish();
}

fn baseline(c: &mut Criterion) {
    let body = CHAT_REQUEST.as_bytes();
    let mut group = c.benchmark_group("openai");
    group.bench_function("passthrough_peek_rewrite", |b| {
        b.iter(|| {
            let peek = switchyard_dialects::peek(black_box(body)).expect("request peeks");
            black_box(switchyard_dialects::rewrite_model(&peek, "gpt-4o-mini"))
        });
    });
    group.finish();
}

fn bench_anthropic(c: &mut Criterion) {
    let body = CHAT_REQUEST.as_bytes();
    let settings = Settings::default();
    let target = Target {
        model: "claude-sonnet-4-20250514",
        settings: &settings,
    };
    anthropic::encode(body, target).expect("request encodes");
    let answer = golden!("anthropic/responses/tool_use.json").as_bytes();
    let reply = reply();
    anthropic::decode(answer, &reply).expect("answer decodes");

    let mut group = c.benchmark_group("anthropic");
    group.bench_function("encode_request", |b| {
        b.iter(|| black_box(anthropic::encode(black_box(body), target)))
    });
    group.bench_function("decode_answer", |b| {
        b.iter(|| black_box(anthropic::decode(black_box(answer), &reply)))
    });
    group.finish();

    let events = sse_events(golden!("anthropic/streams/sdk_tool_use_response.sse"));
    bench_new(c, "anthropic", anthropic::StreamDecoder::new);
    bench_stream(
        c,
        "anthropic",
        "stream_tool_use",
        &events,
        anthropic::StreamDecoder::new,
    );
}

fn bench_gemini(c: &mut Criterion) {
    let body = CHAT_REQUEST.as_bytes();
    let settings = Settings::default();
    let target = Target {
        model: "gemini-2.5-flash",
        settings: &settings,
    };
    gemini::encode(body, target).expect("request encodes");
    let answer = golden!("gemini/decode/function_calls.response.json").as_bytes();
    let reply = reply();
    gemini::decode(answer, &reply).expect("answer decodes");

    let mut group = c.benchmark_group("gemini");
    group.bench_function("encode_request", |b| {
        b.iter(|| black_box(gemini::encode(black_box(body), target)))
    });
    group.bench_function("decode_answer", |b| {
        b.iter(|| black_box(gemini::decode(black_box(answer), &reply)))
    });
    group.finish();

    let events = sse_events(golden!("gemini/stream/parallel_calls.sse"));
    bench_new(c, "gemini", gemini::StreamDecoder::new);
    bench_stream(
        c,
        "gemini",
        "stream_parallel_calls",
        &events,
        gemini::StreamDecoder::new,
    );
    let events = sse_events(golden!("gemini/stream/text_utf8.sse"));
    bench_stream(
        c,
        "gemini",
        "stream_text",
        &events,
        gemini::StreamDecoder::new,
    );
}

fn bench_ollama(c: &mut Criterion) {
    let body = CHAT_REQUEST.as_bytes();
    let settings = Settings {
        num_ctx: Some(8192),
        keep_alive: Some("5m".to_owned()),
        ..Settings::default()
    };
    let target = Target {
        model: "qwen3:8b",
        settings: &settings,
    };
    ollama::encode(body, target).expect("request encodes");
    let answer = golden!("ollama/decode/tools.upstream.json").as_bytes();
    let reply = reply();
    ollama::decode(answer, &reply).expect("answer decodes");

    let mut group = c.benchmark_group("ollama");
    group.bench_function("encode_request", |b| {
        b.iter(|| black_box(ollama::encode(black_box(body), target)))
    });
    group.bench_function("decode_answer", |b| {
        b.iter(|| black_box(ollama::decode(black_box(answer), &reply)))
    });
    group.finish();

    let lines = ndjson_lines(golden!("ollama/stream/two_tools.ndjson"));
    bench_new(c, "ollama", ollama::StreamDecoder::new);
    bench_stream(
        c,
        "ollama",
        "stream_two_tools",
        &lines,
        ollama::StreamDecoder::new,
    );
    let lines = ndjson_lines(golden!("ollama/stream/text.ndjson"));
    bench_stream(
        c,
        "ollama",
        "stream_text",
        &lines,
        ollama::StreamDecoder::new,
    );
}

fn bench_messages(c: &mut Criterion) {
    let request = MESSAGES_REQUEST.as_bytes();
    messages::request_to_chat(request).expect("request translates");
    let answer = golden!("messages/answer/text_and_tool.openai.json").as_bytes();
    messages::chat_to_message(answer, "claude-sonnet-4-5").expect("answer translates");

    let mut group = c.benchmark_group("messages");
    group.bench_function("request_to_chat", |b| {
        b.iter(|| black_box(messages::request_to_chat(black_box(request))))
    });
    group.bench_function("chat_to_message", |b| {
        b.iter(|| {
            black_box(messages::chat_to_message(
                black_box(answer),
                "claude-sonnet-4-5",
            ))
        })
    });

    let events = sse_events(golden!("messages/stream/text_then_two_tools.openai.sse"));
    let run = |events: &[&[u8]], out: &mut BytesMut| {
        let mut encoder = messages::StreamEncoder::new("claude-sonnet-4-5", "msg_0123456789abcdef");
        for event in events {
            encoder.push(event, out).expect("golden stream encodes");
        }
        encoder.finish(out).expect("golden stream ends properly");
    };
    run(&events, &mut BytesMut::new());
    eprintln!(
        "messages/stream_text_then_two_tools: {} OpenAI chunks per stream",
        events.len()
    );
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("stream_text_then_two_tools", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(8192);
            run(black_box(&events), &mut out);
            black_box(out)
        });
    });
    group.finish();
}

/// The Responses API served through chat: a request with function calls and their
/// outputs, a text-and-tool answer, and a text-then-two-tools chat stream.
fn bench_responses(c: &mut Criterion) {
    let request = golden!("responses/request/function_calls.responses.json").as_bytes();
    responses::request_to_chat(request).expect("request translates");
    let answer = golden!("responses/answer/text_and_tool.openai.json").as_bytes();
    responses::chat_to_response(answer, "gpt-4o", "resp_0123456789abcdef")
        .expect("answer translates");

    let mut group = c.benchmark_group("responses");
    group.bench_function("request_to_chat", |b| {
        b.iter(|| black_box(responses::request_to_chat(black_box(request))))
    });
    group.bench_function("chat_to_response", |b| {
        b.iter(|| {
            black_box(responses::chat_to_response(
                black_box(answer),
                "gpt-4o",
                "resp_0123456789abcdef",
            ))
        })
    });

    let events = sse_events(golden!("responses/stream/text_then_two_tools.openai.sse"));
    let run = |events: &[&[u8]], out: &mut BytesMut| {
        let mut encoder = responses::StreamEncoder::new("gpt-4o", "resp_0123456789abcdef");
        for event in events {
            encoder.push(event, out).expect("golden stream encodes");
        }
        encoder.finish(out).expect("golden stream ends properly");
    };
    run(&events, &mut BytesMut::new());
    eprintln!(
        "responses/stream_text_then_two_tools: {} OpenAI chunks per stream",
        events.len()
    );
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("stream_text_then_two_tools", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(8192);
            run(black_box(&events), &mut out);
            black_box(out)
        });
    });
    group.finish();
}

/// The response cache: a 12-event OpenAI stream (text, two tool calls with arguments
/// in pieces, a usage chunk, `[DONE]`) fed one event per `feed` and assembled into a
/// `chat.completion` (the cost on a miss); that answer replayed as a stream with usage
/// (the cost of a hit); and the cache key of `CHAT_REQUEST`.
fn bench_cache(c: &mut Criterion) {
    use switchyard_dialects::cache;
    let stream = golden!("responses/stream/text_then_two_tools.openai.sse");
    let events = sse_events(stream);
    let assemble = |events: &[&[u8]]| {
        let mut a = cache::StreamAssembler::new();
        for event in events {
            a.feed(event);
        }
        a.finish()
    };
    let completion = assemble(&events).expect("golden stream assembles");
    let replayed = cache::replay_stream(&completion, true).expect("assembled answer replays");
    eprintln!(
        "cache: {} events assembled into {} bytes, replayed as {} events; request {} bytes",
        events.len(),
        completion.len(),
        replayed.len(),
        CHAT_REQUEST.len()
    );
    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("assemble_12_chunks", |b| {
        b.iter(|| black_box(assemble(black_box(&events))))
    });
    group.throughput(Throughput::Elements(replayed.len() as u64));
    group.bench_function("replay", |b| {
        b.iter(|| black_box(cache::replay_stream(black_box(&completion), true)))
    });
    group.throughput(Throughput::Bytes(CHAT_REQUEST.len() as u64));
    group.bench_function("normalize_request", |b| {
        b.iter(|| black_box(cache::normalize(black_box(CHAT_REQUEST.as_bytes()))))
    });
    group.bench_function("deterministic", |b| {
        b.iter(|| black_box(cache::deterministic(black_box(CHAT_REQUEST.as_bytes()))))
    });
    group.finish();
}

criterion_group!(
    benches,
    baseline,
    bench_anthropic,
    bench_gemini,
    bench_ollama,
    bench_messages,
    bench_responses,
    bench_cache
);
criterion_main!(benches);
