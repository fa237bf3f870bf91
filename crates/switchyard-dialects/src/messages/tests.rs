use super::*;

#[test]
fn statuses_map_to_anthropic_error_types() {
    let cases = [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (500, "api_error"),
        (502, "api_error"),
        (422, "api_error"),
    ];
    for (status, kind) in cases {
        assert_eq!(error_type_for(status), kind, "status {status}");
    }
}

#[test]
fn cached_tokens_are_taken_out_of_input_tokens() {
    let openai = json!({
        "prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
        "prompt_tokens_details": { "cached_tokens": 60 },
    });
    let usage = Value::Object(usage_of(Some(&openai)));
    assert_eq!(
        usage,
        json!({ "input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 60 })
    );
}

#[test]
fn missing_usage_reports_zero_tokens() {
    assert_eq!(
        Value::Object(usage_of(None)),
        json!({ "input_tokens": 0, "output_tokens": 0 })
    );
}

#[test]
fn plain_text_error_bodies_are_kept_and_huge_ones_replaced() {
    assert_eq!(
        openai_error_message(b"  Bad Gateway\n").as_deref(),
        Some("Bad Gateway")
    );
    assert_eq!(openai_error_message(&[b'x'; 2000]), None);
    assert_eq!(openai_error_message(b"{\"error\":{}}"), None);
    assert_eq!(
        openai_error_message(b"{\"detail\":\"Not Found\"}").as_deref(),
        Some("Not Found")
    );
}
