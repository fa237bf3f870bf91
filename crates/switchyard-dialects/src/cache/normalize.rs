//! Cache keys: the canonical bytes of a request ([`normalize`]) and whether it asked
//! for a repeatable answer ([`deterministic`]). Hashing the bytes is the caller's job.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Number, Value};

/// Top-level request members that do not change the answer's content: how it is
/// delivered (`stream`, `stream_options`), who asked (`user`, `metadata`), whether
/// OpenAI keeps it (`store`) and which capacity served it (`service_tier`).
const IGNORED: &[&str] = &[
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
];

/// Floats with an integer value below this magnitude are exactly an integer (2^53).
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// The canonical form of a JSON request body, for an exact-match cache key: object
/// keys sorted by their bytes at every level (sorted here, whatever order
/// `serde_json`'s map keeps), no whitespace, strings escaped as `serde_json` writes
/// them, and the top-level members [`IGNORED`] (`stream`, `stream_options`, `user`,
/// `metadata`, `store`, `service_tier`) left out. Everything else is kept.
///
/// Numbers are written as `serde_json` writes them, except that a float with an
/// integer value (below 2^53) is written as that integer: `0`, `0.0` and `-0.0` all
/// give `0`, `1e2` gives `100`. A body that is valid JSON but not an object is
/// canonicalised as it is (nothing removed). `Err` when the body is not JSON.
pub fn normalize(body: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    let mut out = String::with_capacity(body.len());
    match &value {
        Value::Object(map) => write_object(&mut out, map, IGNORED),
        other => write_value(&mut out, other),
    }
    Ok(out.into_bytes())
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => crate::raw::push_json_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, &[]),
    }
}

/// `map` with its keys sorted, leaving out the keys in `skip`.
fn write_object(out: &mut String, map: &serde_json::Map<String, Value>, skip: &[&str]) {
    let mut members: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .collect();
    members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::raw::push_json_str(out, key);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        if f.fract() == 0.0 && f.abs() < EXACT_INTEGER {
            // Exact: an integer-valued float below 2^53 converts without rounding.
            let int = f as i64;
            out.push_str(&int.to_string());
            return;
        }
    }
    out.push_str(&n.to_string());
}

/// The two request members that make an answer repeatable, borrowed.
#[derive(Deserialize)]
struct Determinism<'a> {
    /// Absent and `null` both read as `None`.
    #[serde(borrow, default)]
    temperature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    seed: Option<&'a RawValue>,
}

/// Whether a request asks for a deterministic-enough answer, one worth caching:
/// `temperature` is 0 (`0`, `0.0`, `-0`, `0e0`…), or a non-null `seed` is given. Reads
/// those two members only (no tree is built); `false` for a body that is not a JSON
/// object.
pub fn deterministic(body: &[u8]) -> bool {
    // A struct also deserialises from an array: only an object counts.
    let Some(fields) = std::str::from_utf8(body).ok().and_then(|text| {
        crate::raw::parse_object::<Determinism<'_>>(text)
            .ok()
            .flatten()
    }) else {
        return false;
    };
    let zero_temperature = fields
        .temperature
        .and_then(|raw| serde_json::from_str::<f64>(raw.get()).ok())
        .is_some_and(|t| t == 0.0);
    zero_temperature || fields.seed.is_some()
}
