//! Request records → newline-delimited JSON bodies. Two shapes: JSON lines (one object
//! per line: the JSONL file and ClickHouse `FORMAT JSONEachRow`) and the Elasticsearch
//! `_bulk` shape (an `index` action line before each record). Every body ends with a
//! newline, as `_bulk` requires. Pure: no I/O.

use crate::record::RequestRecord;
use std::sync::Arc;

/// The shape of a batch's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    /// One JSON object per line.
    Lines,
    /// `_bulk`: this action line (newline included), then the record, per record.
    Bulk(Vec<u8>),
}

impl Encoding {
    /// `_bulk` with `{"index":{"_index":…}}`, or `{"index":{}}` when the URL names the
    /// index.
    pub fn bulk(index: Option<&str>) -> Self {
        let action = match index {
            Some(index) => serde_json::json!({"index": {"_index": index}}),
            None => serde_json::json!({"index": {}}),
        };
        let mut line = action.to_string().into_bytes();
        line.push(b'\n');
        Self::Bulk(line)
    }

    /// Appends the body of `batch` to `out`; returns how many records it holds.
    pub fn encode(&self, batch: &[Arc<RequestRecord>], out: &mut Vec<u8>) -> usize {
        let mut written = 0;
        for record in batch {
            let start = out.len();
            if let Self::Bulk(action) = self {
                out.extend_from_slice(action);
            }
            match serde_json::to_writer(&mut *out, &**record) {
                Ok(()) => {
                    out.push(b'\n');
                    written += 1;
                }
                Err(e) => {
                    // Not reachable with the record's field types; never half a line.
                    tracing::debug!(error = %e, "export: a record could not be encoded");
                    out.truncate(start);
                }
            }
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, status: u16) -> Arc<RequestRecord> {
        Arc::new(RequestRecord {
            timestamp: crate::record::Timestamp(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_070_071_042),
            ),
            request_id: crate::record::RequestId(http::HeaderValue::from_str(id).unwrap()),
            method: http::Method::POST,
            path: "/v1/chat/completions".to_owned(),
            endpoint: "chat",
            key: Some("team-a".to_owned()),
            model: Some("gpt-4o".to_owned()),
            served_model: Some("gpt-4o-2024".into()),
            upstream: Some("openai".into()),
            attempts: 1,
            status,
            latency_ms: 12.5,
            ttfb_ms: Some(3.25),
            input_tokens: Some(7),
            output_tokens: Some(11),
            bytes_out: 420,
            stream: true,
            ..RequestRecord::default()
        })
    }

    const LINE_A: &str = r#"{"timestamp":"2026-11-30T20:21:11.042Z","request_id":"a","method":"POST","path":"/v1/chat/completions","endpoint":"chat","key":"team-a","model":"gpt-4o","served_model":"gpt-4o-2024","upstream":"openai","attempts":1,"status":200,"error_code":null,"latency_ms":12.5,"ttfb_ms":3.25,"input_tokens":7,"output_tokens":11,"bytes_out":420,"stream":true,"stream_error":null}"#;

    #[test]
    fn json_lines_are_one_object_per_line_with_the_access_log_fields() {
        let mut out = Vec::new();
        let n = Encoding::Lines.encode(&[record("a", 200), record("b", 502)], &mut out);
        assert_eq!(n, 2);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], LINE_A);
        assert_eq!(
            lines[1],
            LINE_A
                .replace(r#""request_id":"a""#, r#""request_id":"b""#)
                .replace(r#""status":200"#, r#""status":502"#)
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn bulk_puts_an_index_action_before_every_record() {
        let mut out = Vec::new();
        Encoding::bulk(Some("switchyard-requests")).encode(&[record("a", 200)], &mut out);
        let expected = format!("{{\"index\":{{\"_index\":\"switchyard-requests\"}}}}\n{LINE_A}\n");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn bulk_without_an_index_leaves_it_to_the_url() {
        let mut out = Vec::new();
        Encoding::bulk(None).encode(&[record("a", 200), record("a", 200)], &mut out);
        let expected = format!("{{\"index\":{{}}}}\n{LINE_A}\n{{\"index\":{{}}}}\n{LINE_A}\n");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn an_index_name_is_json_escaped() {
        let Encoding::Bulk(action) = Encoding::bulk(Some("a\"b")) else {
            panic!("bulk expected");
        };
        assert_eq!(action, b"{\"index\":{\"_index\":\"a\\\"b\"}}\n");
    }

    #[test]
    fn text_with_line_breaks_stays_on_one_line() {
        let mut r = (*record("a", 200)).clone();
        r.model = Some("x\ny".to_owned());
        let mut out = Vec::new();
        Encoding::Lines.encode(&[Arc::new(r)], &mut out);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
    }
}
