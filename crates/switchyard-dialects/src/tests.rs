use super::*;

#[test]
fn peek_reads_model_and_stream_without_touching_the_rest() {
    let body = br#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o","stream":true,"x":{"y":[1,2]}}"#;
    let p = peek(body).unwrap();
    assert_eq!(p.model, "gpt-4o");
    assert!(p.stream);
    assert_eq!(&body[p.model_span.clone()], br#""gpt-4o""#);
}

#[test]
fn peek_treats_absent_or_null_stream_as_false() {
    assert!(!peek(br#"{"model":"m"}"#).unwrap().stream);
    assert!(!peek(br#"{"model":"m","stream":null}"#).unwrap().stream);
}

#[test]
fn peek_rejects_missing_or_non_string_model() {
    assert_eq!(
        peek(br#"{"messages":[]}"#).unwrap_err(),
        PeekError::MissingModel
    );
    assert_eq!(
        peek(br#"{"model":3}"#).unwrap_err(),
        PeekError::MissingModel
    );
    assert_eq!(
        peek(br#"{"model":""}"#).unwrap_err(),
        PeekError::MissingModel
    );
}

#[test]
fn peek_rejects_malformed_json_and_non_boolean_stream() {
    assert!(matches!(
        peek(b"{\"model\":").unwrap_err(),
        PeekError::Malformed(_)
    ));
    assert!(matches!(peek(b"[1]").unwrap_err(), PeekError::Malformed(_)));
    assert_eq!(
        peek(br#"{"model":"m","stream":"yes"}"#).unwrap_err(),
        PeekError::BadStream
    );
}

#[test]
fn rewrite_model_keeps_every_other_byte() {
    let body = br#"{ "model" : "fast",  "messages":[{"role":"user","content":"\u00e9"}] }"#;
    let p = peek(body).unwrap();
    let out = rewrite_model(&p, "llama-3.1-8b-instant");
    assert_eq!(
        &out[..],
        br#"{ "model" : "llama-3.1-8b-instant",  "messages":[{"role":"user","content":"\u00e9"}] }"#
    );
}

#[test]
fn rewrite_model_escapes_the_new_name() {
    let p = peek(br#"{"model":"a"}"#).unwrap();
    assert_eq!(&rewrite_model(&p, "we\"ird")[..], br#"{"model":"we\"ird"}"#);
}

#[test]
fn peek_unescapes_the_model_name() {
    let p = peek(br#"{"model":"org\/m"}"#).unwrap();
    assert_eq!(p.model, "org/m");
}

#[test]
fn error_body_is_openai_shaped() {
    let v: serde_json::Value = serde_json::from_slice(&error_body(
        "nope",
        "invalid_request_error",
        None,
        Some("x"),
    ))
    .unwrap();
    assert_eq!(v["error"]["message"], "nope");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["param"].is_null());
    assert_eq!(v["error"]["code"], "x");
}

#[test]
fn dialect_names_round_trip() {
    for name in Dialect::NAMES {
        assert_eq!(name.parse::<Dialect>().unwrap().name(), *name);
    }
    assert!("anthropicx".parse::<Dialect>().is_err());
}
