//! Stream goldens and the SDK accumulator's rules (a submodule of `tests/responses.rs`).

use super::*;

/// One Responses SSE event: its `event:` name and parsed `data:`.
type Event = (String, Value);

/// Parses Responses SSE text; every event must have an `event:` line and one JSON
/// `data:` line whose `type` is the event name.
fn parse_sse(text: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                assert!(data.is_none(), "two data lines in {block:?}");
                data = Some(json_of(v.as_bytes()));
            } else {
                panic!("unexpected line {line:?}");
            }
        }
        let (name, data) = (name.unwrap(), data.unwrap());
        assert_eq!(
            data["type"],
            json!(name),
            "event name and type differ: {block}"
        );
        events.push((name, data));
    }
    events
}

/// What `ResponseStreamState.accumulate_event` / `handle_event` of the OpenAI Python
/// SDK rely on, and what its event models require: `response.created` first;
/// `sequence_number` 0, 1, …; an item's `output_index` is the number of items added
/// before it; content events refer to an added item of the right type (a message
/// with the content part, a function call); every item is done before the final
/// event; the final event (`response.completed`, `.incomplete` or `.failed`) is last
/// and its output is the done items, in order. Returns the final response.
fn check_sdk_rules(events: &[Event], context: &str) -> Value {
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("response.created"),
        "{context}"
    );
    // (type, id, text or arguments, content parts, done item)
    let mut items: Vec<(String, String, String, usize, Option<Value>)> = Vec::new();
    let mut final_response = None;
    for (at, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], json!(at), "{context}: {name}");
        assert!(
            final_response.is_none(),
            "{context}: {name} after the final event"
        );
        let item_at = |data: &Value| {
            let index = data["output_index"].as_u64().unwrap() as usize;
            assert!(index < items.len(), "{context}: {name} before its item");
            index
        };
        match name.as_str() {
            "response.created" | "response.in_progress" => {
                assert_eq!(data["response"]["status"], "in_progress", "{context}");
                check_response_object(&data["response"], context);
            }
            "response.output_item.added" => {
                assert_eq!(data["output_index"], json!(items.len()), "{context}");
                let item = &data["item"];
                let kind = item["type"].as_str().unwrap().to_owned();
                match kind.as_str() {
                    "message" => assert_eq!(item["content"], json!([]), "{context}"),
                    "function_call" => {
                        assert_eq!(item["arguments"], "", "{context}");
                        assert!(item["call_id"].is_string() && item["name"].is_string());
                    }
                    "reasoning" => assert_eq!(item["summary"], json!([]), "{context}"),
                    other => panic!("{context}: item {other}"),
                }
                items.push((
                    kind,
                    item["id"].as_str().unwrap().to_owned(),
                    String::new(),
                    0,
                    None,
                ));
            }
            "response.content_part.added" => {
                let i = item_at(data);
                assert_eq!(items[i].0, "message", "{context}");
                assert_eq!(data["content_index"], json!(items[i].3), "{context}");
                let part = data["part"]["type"].as_str().unwrap();
                assert!(part == "output_text" || part == "refusal", "{context}");
                items[i].3 += 1;
            }
            "response.output_text.delta" | "response.output_text.done" => {
                let i = item_at(data);
                assert_eq!(items[i].0, "message", "{context}");
                assert_eq!(data["item_id"], json!(items[i].1), "{context}");
                assert!(data["content_index"].as_u64().unwrap() < items[i].3 as u64);
                assert!(data["logprobs"].is_array(), "{context}");
                if name.ends_with("delta") {
                    items[i].2.push_str(data["delta"].as_str().unwrap());
                } else {
                    assert_eq!(data["text"], json!(items[i].2), "{context}");
                }
            }
            "response.refusal.delta" | "response.refusal.done" => {
                let i = item_at(data);
                assert_eq!(items[i].0, "message", "{context}");
                assert_eq!(data["item_id"], json!(items[i].1), "{context}");
                if name.ends_with("delta") {
                    items[i].2.push_str(data["delta"].as_str().unwrap());
                } else {
                    assert_eq!(data["refusal"], json!(items[i].2), "{context}");
                }
            }
            "response.content_part.done" => {
                let i = item_at(data);
                let part = &data["part"];
                let text = if part["type"] == "refusal" {
                    &part["refusal"]
                } else {
                    &part["text"]
                };
                assert_eq!(text, &json!(items[i].2), "{context}");
            }
            "response.function_call_arguments.delta" | "response.function_call_arguments.done" => {
                let i = item_at(data);
                assert_eq!(items[i].0, "function_call", "{context}");
                assert_eq!(data["item_id"], json!(items[i].1), "{context}");
                if name.ends_with("delta") {
                    items[i].2.push_str(data["delta"].as_str().unwrap());
                } else {
                    assert_eq!(data["arguments"], json!(items[i].2), "{context}");
                }
            }
            "response.reasoning_summary_part.added" | "response.reasoning_summary_part.done" => {
                let i = item_at(data);
                assert_eq!(items[i].0, "reasoning", "{context}");
                assert_eq!(data["part"]["type"], "summary_text", "{context}");
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_summary_text.done" => {
                let i = item_at(data);
                assert_eq!(items[i].0, "reasoning", "{context}");
                if name.ends_with("delta") {
                    items[i].2.push_str(data["delta"].as_str().unwrap());
                } else {
                    assert_eq!(data["text"], json!(items[i].2), "{context}");
                }
            }
            "response.output_item.done" => {
                let i = item_at(data);
                assert!(items[i].4.is_none(), "{context}: item {i} done twice");
                let item = &data["item"];
                assert_eq!(item["id"], json!(items[i].1), "{context}");
                match items[i].0.as_str() {
                    "message" => {
                        let part = &item["content"][0];
                        let text = if part["type"] == "refusal" {
                            &part["refusal"]
                        } else {
                            &part["text"]
                        };
                        assert_eq!(text, &json!(items[i].2), "{context}");
                    }
                    "function_call" => {
                        assert_eq!(item["arguments"], json!(items[i].2), "{context}");
                        serde_json::from_str::<Value>(&items[i].2)
                            .unwrap_or_else(|e| panic!("{context}: arguments: {e}"));
                    }
                    _ => assert_eq!(item["summary"][0]["text"], json!(items[i].2)),
                }
                items[i].4 = Some(item.clone());
            }
            "response.completed" | "response.incomplete" => {
                let r = &data["response"];
                check_response_object(r, context);
                assert_eq!(
                    json!(name),
                    json!(format!("response.{}", r["status"].as_str().unwrap()))
                );
                let done: Vec<Value> = items
                    .iter()
                    .map(|i| {
                        i.4.clone()
                            .unwrap_or_else(|| panic!("{context}: open item"))
                    })
                    .collect();
                assert_eq!(r["output"], json!(done), "{context}");
                final_response = Some(r.clone());
            }
            "response.failed" => {
                let r = &data["response"];
                check_response_object(r, context);
                assert_eq!(r["status"], "failed", "{context}");
                assert!(r["error"]["code"].is_string() && r["error"]["message"].is_string());
                final_response = Some(r.clone());
            }
            other => panic!("{context}: unknown event {other}"),
        }
    }
    final_response.unwrap_or_else(|| panic!("{context}: no final event"))
}

/// Feeds `pieces` then finishes; the output and whether it failed.
fn run_stream<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> (BytesMut, bool) {
    let mut encoder = StreamEncoder::new(MODEL, RESPONSE_ID);
    let mut out = BytesMut::new();
    let mut failed = false;
    for piece in pieces {
        if encoder.push(piece, &mut out).is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        failed = encoder.finish(&mut out).is_err();
    }
    (out, failed)
}

fn stream_fixtures() -> Vec<(String, Vec<u8>)> {
    cases("stream", ".openai.sse")
        .into_iter()
        .map(|(name, path)| (name, std::fs::read(path).unwrap()))
        .collect()
}

#[test]
fn stream_goldens_translate_to_the_expected_responses_events() {
    for (name, input) in stream_fixtures() {
        let (out, failed) = run_stream([input.as_slice()]);
        assert_eq!(
            failed,
            name.starts_with("fail_"),
            "{name}: failed = {failed}"
        );
        let text = std::str::from_utf8(&out).unwrap();
        let events = parse_sse(text);
        let last = check_sdk_rules(&events, &name);
        assert_eq!(last["status"] == "failed", failed, "{name}");
        let expected_path = golden("stream").join(format!("{name}.responses.sse"));
        if updating() {
            std::fs::write(&expected_path, text).unwrap();
            continue;
        }
        let expected = parse_sse(&std::fs::read_to_string(&expected_path).unwrap());
        assert_eq!(events, expected, "{name}; actual:\n{text}");
    }
}

#[test]
fn every_split_point_gives_the_unsplit_output() {
    for (name, input) in stream_fixtures() {
        let (whole, whole_failed) = run_stream([input.as_slice()]);
        for cut in 0..=input.len() {
            let (head, tail) = input.split_at(cut);
            let (out, failed) = run_stream([head, tail]);
            assert_eq!(failed, whole_failed, "{name} cut at {cut}");
            assert_eq!(out, whole, "{name} cut at {cut}");
        }
        let (bytewise, failed) = run_stream(input.chunks(1));
        assert_eq!(failed, whole_failed, "{name} byte by byte");
        assert_eq!(bytewise, whole, "{name} byte by byte");
    }
}

#[test]
fn the_usage_chunk_after_the_finish_reason_is_in_the_final_response() {
    let input = std::fs::read(golden("stream").join("usage_after_finish.openai.sse")).unwrap();
    let (out, failed) = run_stream([input.as_slice()]);
    assert!(!failed);
    let events = parse_sse(std::str::from_utf8(&out).unwrap());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(
        data["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(data["response"]["usage"]["input_tokens"], 12);
    assert_eq!(data["response"]["usage"]["output_tokens"], 4);
    assert_eq!(data["response"]["usage"]["total_tokens"], 16);
}

#[test]
fn a_streamed_answer_ends_with_the_object_the_json_answer_gives() {
    // The final response of a text stream has the same output as the JSON answer of
    // the same text.
    let input = std::fs::read(golden("stream").join("text.openai.sse")).unwrap();
    let (out, _) = run_stream([input.as_slice()]);
    let events = parse_sse(std::str::from_utf8(&out).unwrap());
    let streamed = &events.last().unwrap().1["response"];
    let text = streamed["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    let chat = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": streamed["created_at"],
        "model": "gpt-4o",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 },
    });
    let answer =
        json_of(&chat_to_response(chat.to_string().as_bytes(), MODEL, RESPONSE_ID).unwrap());
    assert_eq!(answer["output"], streamed["output"]);
}

#[test]
fn after_an_error_the_encoder_writes_nothing_more() {
    let input = std::fs::read(golden("stream").join("fail_error_mid_stream.openai.sse")).unwrap();
    let mut encoder = StreamEncoder::new(MODEL, RESPONSE_ID);
    let mut out = BytesMut::new();
    let err = encoder.push(&input, &mut out).unwrap_err();
    assert_eq!(err.message, "the upstream connection broke mid-stream");
    let events = parse_sse(std::str::from_utf8(&out).unwrap());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(
        data["response"]["error"]["message"],
        "the upstream connection broke mid-stream"
    );
    let written = out.len();
    assert!(encoder.push(b"data: [DONE]\n\n", &mut out).is_err());
    assert!(encoder.finish(&mut out).is_err());
    assert_eq!(out.len(), written);
}

#[test]
fn an_empty_stream_fails_with_a_whole_event_sequence() {
    let (out, failed) = run_stream([&b""[..]]);
    assert!(failed);
    let events = parse_sse(std::str::from_utf8(&out).unwrap());
    let last = check_sdk_rules(&events, "empty");
    assert_eq!(last["status"], "failed");
}

#[test]
fn bytes_after_done_are_ignored() {
    let input = std::fs::read(golden("stream").join("text.openai.sse")).unwrap();
    let (whole, _) = run_stream([input.as_slice()]);
    let (with_tail, failed) = run_stream([input.as_slice(), b"data: {\"oops\"\n\n"]);
    assert!(!failed);
    assert_eq!(whole, with_tail);
}

/// Corrupted upstream bytes never panic, and the stream still ends with one final
/// event (`response.completed`, `.incomplete` or `.failed`).
#[test]
fn corrupted_streams_still_end_cleanly() {
    for (name, input) in stream_fixtures() {
        for at in 0..input.len() {
            // One corruption per position, cycling through the kinds (keeps it quick).
            let replacement = [b'\n', b'\r', b'x', b'"'][at % 4];
            let mut corrupted = input.clone();
            corrupted[at] = replacement;
            let (out, _) = run_stream([corrupted.as_slice()]);
            let events = parse_sse(std::str::from_utf8(&out).unwrap());
            let context = format!("{name}: byte {at} set to {replacement}");
            let finals = events
                .iter()
                .filter(|(n, _)| {
                    matches!(
                        n.as_str(),
                        "response.completed" | "response.incomplete" | "response.failed"
                    )
                })
                .count();
            assert_eq!(finals, 1, "{context}");
            let last = events.last().map(|e| e.0.as_str());
            assert!(
                matches!(
                    last,
                    Some("response.completed" | "response.incomplete" | "response.failed")
                ),
                "{context}: ends with {last:?}"
            );
        }
    }
}

/// Event names, runs of the same name collapsed.
fn structure(events: &[Event]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, _) in events {
        if out.last() != Some(name) {
            out.push(name.clone());
        }
    }
    out
}

/// The built-in mock's Responses stream (the shapes the SDKs are tested against in
/// the e2e suite) and a translated chat stream of the same text have the same events,
/// and their final responses the same fields.
#[test]
fn a_text_stream_has_the_structure_of_the_mock_responses_stream() {
    let text = "Hello there, friend";
    let body = json!({ "model": MODEL, "input": text, "stream": true });
    let (streamed, pieces) =
        switchyard_dialects::mock::responses_reply(body.to_string().as_bytes(), MODEL, "x", 1);
    assert!(streamed);
    let mock_text: String = pieces
        .iter()
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect();
    let mock = parse_sse(&mock_text);

    let mut chat = String::new();
    for piece in ["", "Hello ", "there, ", "friend"] {
        let chunk = json!({ "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{ "index": 0, "delta": { "content": piece }, "finish_reason": null }] });
        chat += &format!("data: {chunk}\n\n");
    }
    let last = json!({ "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] });
    chat += &format!("data: {last}\n\ndata: [DONE]\n\n");
    let (out, failed) = run_stream([chat.as_bytes()]);
    assert!(!failed);
    let ours = parse_sse(std::str::from_utf8(&out).unwrap());
    check_sdk_rules(&ours, "vs mock");
    assert_eq!(structure(&ours), structure(&mock));
    let keys = |e: &Event| {
        let mut k: Vec<String> = e.1["response"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(ours.last().unwrap()), keys(mock.last().unwrap()));
    assert_eq!(
        ours.last().unwrap().1["response"]["output"][0]["content"][0]["text"],
        json!(text)
    );
}
