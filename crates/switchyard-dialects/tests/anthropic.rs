//! Golden tests for the `anthropic` dialect: every fixture under
//! `tests/golden/anthropic/` is translated and compared, as parsed JSON, with its
//! `*.out.json`. `UPDATE_FIXTURES=1` rewrites the expected files instead.

// Helpers unwrap freely: a broken fixture should fail the test loudly.
#[cfg(test)]
mod golden {
    use bytes::BytesMut;
    use serde_json::{json, Value};
    use std::fs;
    use std::path::{Path, PathBuf};
    use switchyard_dialects::anthropic::{self, StreamDecoder};
    use switchyard_dialects::sse::data_payloads;
    use switchyard_dialects::translate::{Reply, Settings, StreamDecode, Target};

    fn golden() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/anthropic")
    }

    /// The files of `dir` whose name ends with `suffix`, sorted.
    fn inputs(dir: &str, suffix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(golden().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no {suffix} fixtures in {dir}");
        files
    }

    /// The expected-output path for an input: `x.in.json`/`x.json`/`x.sse` → `x.out.json`.
    fn out_path(input: &Path) -> PathBuf {
        let name = input.file_name().unwrap().to_string_lossy();
        let stem = name
            .strip_suffix(".in.json")
            .or_else(|| name.strip_suffix(".json"))
            .or_else(|| name.strip_suffix(".sse"))
            .unwrap();
        input.with_file_name(format!("{stem}.out.json"))
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_slice(&fs::read(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Compares `actual` with the expected file (or rewrites it under `UPDATE_FIXTURES`).
    fn check(expected: &Path, actual: &Value) {
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
            fs::write(expected, text).unwrap();
            return;
        }
        let want = read_json(expected);
        assert_eq!(
            actual,
            &want,
            "{} differs:\n{}",
            expected.display(),
            serde_json::to_string_pretty(actual).unwrap()
        );
    }

    fn reply(include_usage: bool) -> Reply {
        Reply {
            id: "chatcmpl-golden".into(),
            model: "claude-golden".into(),
            created: 1_700_000_000,
            include_usage,
        }
    }

    /// The chunks written and the error that ended the stream, feeding `pieces` in order.
    fn run_stream(pieces: &[&[u8]]) -> (Vec<Value>, Option<String>) {
        let mut decoder = StreamDecoder::new(reply(true));
        let mut out = BytesMut::new();
        let mut error = None;
        for piece in pieces {
            if let Err(e) = decoder.push(piece, &mut out) {
                error = Some(e.message);
                break;
            }
        }
        if error.is_none() {
            error = decoder.finish(&mut out).err().map(|e| e.message);
        }
        let chunks = data_payloads(&out)
            .iter()
            .map(|p| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.clone())))
            .collect();
        (chunks, error)
    }

    fn stream_value((chunks, error): (Vec<Value>, Option<String>)) -> Value {
        json!({ "chunks": chunks, "error": error })
    }

    #[test]
    fn requests_encode_as_the_golden_files_say() {
        for input in inputs("requests", ".in.json") {
            let case = read_json(&input);
            let settings = Settings {
                default_max_tokens: case["settings"]["default_max_tokens"].as_u64(),
                strict: case["settings"]["strict"].as_bool().unwrap_or(false),
                ..Settings::default()
            };
            let target = Target {
                model: case["model"].as_str().unwrap(),
                settings: &settings,
            };
            let body = serde_json::to_vec(&case["body"]).unwrap();
            let actual = match anthropic::encode(&body, target) {
                Ok(e) => json!({
                    "path": e.path,
                    "stream": e.stream,
                    "include_usage": e.include_usage,
                    "dropped": e.dropped,
                    "body": serde_json::from_slice::<Value>(&e.body).unwrap(),
                }),
                Err(e) => json!({ "error": { "message": e.message, "param": e.param } }),
            };
            check(&out_path(&input), &actual);
        }
    }

    #[test]
    fn responses_decode_as_the_golden_files_say() {
        for input in inputs("responses", ".json") {
            if input.to_string_lossy().ends_with(".out.json") {
                continue;
            }
            let body = fs::read(&input).unwrap();
            let decoded = anthropic::decode(&body, &reply(false)).unwrap();
            let actual: Value = serde_json::from_slice(&decoded).unwrap();
            check(&out_path(&input), &actual);
        }
    }

    #[test]
    fn streams_translate_as_the_golden_files_say() {
        for input in inputs("streams", ".sse") {
            let bytes = fs::read(&input).unwrap();
            check(&out_path(&input), &stream_value(run_stream(&[&bytes])));
        }
    }

    #[test]
    fn streams_split_at_any_byte_translate_like_the_whole() {
        for input in inputs("streams", ".sse") {
            let bytes = fs::read(&input).unwrap();
            let whole = run_stream(&[&bytes]);
            for cut in 0..=bytes.len() {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(
                    run_stream(&[a, b]),
                    whole,
                    "{} cut at {cut}",
                    input.display()
                );
            }
            let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(
                run_stream(&bytewise),
                whole,
                "{} byte by byte",
                input.display()
            );
        }
    }

    #[test]
    fn a_stream_cut_anywhere_before_its_end_fails_and_writes_only_whole_chunks() {
        for input in inputs("streams", ".sse") {
            let bytes = fs::read(&input).unwrap();
            let (whole, whole_error) = run_stream(&[&bytes]);
            for cut in 0..bytes.len() {
                let (chunks, error) = run_stream(&[&bytes[..cut]]);
                // Every chunk written is one the whole stream writes too, in order.
                assert_eq!(
                    chunks[..],
                    whole[..chunks.len()],
                    "{} cut at {cut}",
                    input.display()
                );
                if error.is_none() {
                    // Only possible once the end marker was read in full.
                    assert_eq!(chunks, whole, "{} cut at {cut}", input.display());
                    assert!(whole_error.is_none());
                } else {
                    assert!(
                        !chunks.contains(&json!("[DONE]")),
                        "{} cut at {cut}",
                        input.display()
                    );
                }
            }
        }
    }

    #[test]
    fn error_answers_map_as_the_golden_file_says() {
        let input = golden().join("errors.json");
        let cases = read_json(&input);
        let actual: Vec<Value> = cases
            .as_array()
            .unwrap()
            .iter()
            .map(|case| {
                let status = u16::try_from(case["status"].as_u64().unwrap()).unwrap();
                let mapped =
                    anthropic::map_error(status, case["body"].as_str().unwrap().as_bytes());
                json!({
                    "upstream_status": status,
                    "status": mapped.status,
                    "retryable": mapped.retryable,
                    "body": serde_json::from_slice::<Value>(&mapped.body).unwrap(),
                })
            })
            .collect();
        check(&out_path(&input), &Value::Array(actual));
    }

    #[test]
    fn the_model_list_gives_its_ids() {
        let input = golden().join("models.json");
        let ids = anthropic::parse_models(&fs::read(&input).unwrap()).unwrap();
        check(&out_path(&input), &json!(ids));
    }

    /// A small deterministic generator for the mutation tests.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(self.0 >> 33).unwrap() % n.max(1)
        }
    }

    /// `bytes` with a few bytes overwritten, deleted or duplicated.
    fn mutate(bytes: &[u8], rng: &mut Lcg) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for _ in 0..1 + rng.below(4) {
            if out.is_empty() {
                break;
            }
            let at = rng.below(out.len());
            match rng.below(3) {
                0 => out[at] = b"{}[]\":,\n\r\xff\xc3a0 "[rng.below(14)],
                1 => {
                    out.remove(at);
                }
                _ => {
                    let end = (at + rng.below(40)).min(out.len());
                    let copy = out[at..end].to_vec();
                    out.splice(at..at, copy);
                }
            }
        }
        out
    }

    #[test]
    fn mangled_upstream_and_client_bytes_never_panic() {
        let mut rng = Lcg(0x5eed);
        let settings = Settings::default();
        let target = Target {
            model: "claude-sonnet-4-20250514",
            settings: &settings,
        };
        let mut sources: Vec<(&str, Vec<u8>)> = Vec::new();
        for input in inputs("streams", ".sse") {
            sources.push(("stream", fs::read(input).unwrap()));
        }
        for input in inputs("responses", ".json") {
            sources.push(("response", fs::read(input).unwrap()));
        }
        for input in inputs("requests", ".in.json") {
            let body = serde_json::to_vec(&read_json(&input)["body"]).unwrap();
            sources.push(("request", body));
        }
        for (kind, bytes) in &sources {
            for _ in 0..200 {
                let mangled = mutate(bytes, &mut rng);
                match *kind {
                    "stream" => {
                        let cut = rng.below(mangled.len());
                        let (a, b) = mangled.split_at(cut);
                        let (chunks, error) = run_stream(&[a, b]);
                        // Whatever was written is whole chunks; success ends in [DONE].
                        for chunk in &chunks {
                            assert!(
                                chunk == &json!("[DONE]")
                                    || chunk["object"] == "chat.completion.chunk"
                            );
                        }
                        if error.is_none() {
                            assert_eq!(chunks.last(), Some(&json!("[DONE]")));
                        }
                    }
                    "response" => {
                        if let Ok(body) = anthropic::decode(&mangled, &reply(false)) {
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            assert_eq!(v["object"], "chat.completion");
                        }
                        let mapped = anthropic::map_error(529, &mangled);
                        assert_eq!(mapped.status, 503);
                        let v: Value = serde_json::from_slice(&mapped.body).unwrap();
                        assert!(v["error"]["message"].is_string());
                        if let Ok(ids) = anthropic::parse_models(&mangled) {
                            assert!(ids.len() < mangled.len());
                        }
                    }
                    _ => {
                        if let Ok(e) = anthropic::encode(&mangled, target) {
                            let v: Value = serde_json::from_slice(&e.body).unwrap();
                            assert!(v["max_tokens"].as_u64().is_some());
                            assert!(v["messages"].is_array());
                        }
                    }
                }
            }
        }
    }
}
