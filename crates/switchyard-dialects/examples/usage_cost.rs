//! What counting tokens for every request costs in CPU, per operation (ns/op).
//!
//! Compared: the request peek with and without the `stream_options` field it now
//! reads; asking a stream for usage (`ask_for_usage`, an insertion into a ~1 KiB
//! body) next to the model rewrite it composes with; the relay's scan of each SSE
//! event (`scan_events`: a substring search on chunks without usage — with OpenAI's
//! `"usage":null` and without — and a parse of the usage-only chunk); reading usage
//! from the end of a complete JSON body (`read_body_end`), small and 64 KiB.
//!
//! Each line: the fastest batch of 100 calls (ns/op), then the median batch.
//!
//! `cargo run --release -p switchyard-dialects --example usage_cost [iterations]`

#![expect(
    clippy::disallowed_types,
    reason = "a wall-clock micro-benchmark outside any runtime: std::time::Instant is right here"
)]
#![expect(clippy::print_stdout, reason = "the example prints its report")]
#![expect(clippy::unwrap_used, reason = "fixed inputs; a failure must be loud")]

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::hint::black_box;
use std::time::Instant;
use switchyard_dialects::usage::{ask_for_usage, read_body_end, scan_events};
use switchyard_dialects::{peek, rewrite_model};

/// The peek as it was before `stream_options`: `model` and `stream` only.
#[derive(Deserialize)]
struct OldPeekFields<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
}

fn request() -> String {
    let system =
        "You are a helpful assistant. Answer briefly and cite sources when you can. ".repeat(5);
    let user = "Summarise the following text in three bullet points, keeping names intact: the quick brown fox jumps over the lazy dog. ".repeat(4);
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
        "stream": true,
        "user": "user-1234",
    });
    body.to_string()
}

/// Runs `f` in batches of 100 and reports the fastest batch (ns/op) and the median:
/// on a shared machine the fastest batch is the one nothing else interrupted, which is
/// the CPU cost asked about.
fn time(name: &str, iterations: u32, mut f: impl FnMut()) -> f64 {
    const BATCH: u32 = 100;
    for _ in 0..iterations / 10 {
        f();
    }
    let mut per_op: Vec<f64> = (0..(iterations / BATCH).max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..BATCH {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(BATCH)
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    let (best, median) = (per_op[0], per_op[per_op.len() / 2]);
    println!("{name:<58} {best:>9.1} ns/op  (median {median:.1})");
    best
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().unwrap());
    let body = request();
    let with_options = body.replacen('{', r#"{"stream_options":{"include_usage":false},"#, 1);
    println!(
        "request: {} bytes; {iterations} iterations each\n",
        body.len()
    );
    let raw = body.as_bytes();

    println!("-- request (stream path, once per request) --");
    time("peek before (model, stream)", iterations, || {
        let f: OldPeekFields<'_> = serde_json::from_slice(black_box(raw)).unwrap();
        black_box((f.model, f.stream));
    });
    let peek_ns = time(
        "peek now (model, stream, stream_options absent)",
        iterations,
        || {
            black_box(peek(black_box(raw)).unwrap());
        },
    );
    time("peek now (stream_options present)", iterations, || {
        black_box(peek(black_box(with_options.as_bytes())).unwrap());
    });
    let p = peek(raw).unwrap();
    let ask_ns = time("ask_for_usage (insert after `{`)", iterations, || {
        black_box(ask_for_usage(black_box(&p)).unwrap());
    });
    let po = peek(with_options.as_bytes()).unwrap();
    time(
        "ask_for_usage (re-serialise stream_options)",
        iterations,
        || {
            black_box(ask_for_usage(black_box(&po)).unwrap());
        },
    );
    let asked = ask_for_usage(&p).unwrap();
    time("  its moved peek (UsageAsked::peek)", iterations, || {
        black_box(asked.peek());
    });
    time("  vs. a second peek of the new body", iterations, || {
        black_box(peek(black_box(asked.body())).unwrap());
    });
    time("rewrite_model (for reference)", iterations, || {
        black_box(rewrite_model(black_box(&p), "gpt-4o-mini-2024-07-18"));
    });

    println!("\n-- stream (once per SSE event; the usage chunk once per stream) --");
    let plain = Bytes::from_static(b"data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" brown\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    let usage_null = Bytes::from_static(b"data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" brown\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n");
    let usage_chunk = Bytes::from_static(b"data: {\"id\":\"chatcmpl-AbC123\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[],\"usage\":{\"prompt_tokens\":150,\"completion_tokens\":87,\"total_tokens\":237,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\ndata: [DONE]\n\n");
    let event_ns = time(
        "scan_events, content chunk (no usage key)",
        iterations,
        || {
            black_box(scan_events(black_box(&plain), true));
        },
    );
    let null_ns = time(
        "scan_events, content chunk with \"usage\":null",
        iterations,
        || {
            black_box(scan_events(black_box(&usage_null), true));
        },
    );
    let chunk_ns = time(
        "scan_events, usage chunk + [DONE] (parse, strip)",
        iterations,
        || {
            black_box(scan_events(black_box(&usage_chunk), true));
        },
    );

    println!("\n-- complete JSON body (once per response) --");
    let chat = format!(
        r#"{{"id":"chatcmpl-AbC123","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}","refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":150,"completion_tokens":87,"total_tokens":237,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"service_tier":"default","system_fingerprint":"fp_0ba0d124f1"}}"#,
        "word ".repeat(150)
    );
    let big = chat.replace(&"word ".repeat(150), &"word ".repeat(13_000));
    let small_ns = time(
        &format!("read_body_end, {} B chat.completion", chat.len()),
        iterations,
        || {
            black_box(read_body_end(black_box(chat.as_bytes())).unwrap());
        },
    );
    time(
        &format!("read_body_end, {} B chat.completion", big.len()),
        iterations,
        || {
            black_box(read_body_end(black_box(big.as_bytes())).unwrap());
        },
    );
    time(
        &format!("  vs. a full serde_json::Value parse, {} B", chat.len()),
        iterations / 4,
        || {
            black_box(
                serde_json::from_slice::<serde_json::Value>(black_box(chat.as_bytes())).unwrap(),
            );
        },
    );

    let events = 100.0;
    println!(
        "\nadded per streamed request ({events} events, OpenAI's \"usage\":null in each): \
         ask {ask_ns:.0} + events {:.0} + usage chunk {chunk_ns:.0} = {:.0} ns \
         (without \"usage\":null in events: {:.0} ns); peek itself: {peek_ns:.0} ns",
        events * null_ns,
        ask_ns + events * null_ns + chunk_ns,
        ask_ns + events * event_ns + chunk_ns,
    );
    println!("added per complete JSON response: {small_ns:.0} ns");
}
