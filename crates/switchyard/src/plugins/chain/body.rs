//! [`BodyCell`]: a JSON body (request or response) that plugins may read or change,
//! parsed only when one needs it and re-serialised only when one changed it.

use bytes::Bytes;
use serde_json::Value;

/// A JSON body that is parsed only when a plugin needs it and re-serialised only when
/// a plugin changed it.
#[derive(Debug, Default)]
pub struct BodyCell {
    raw: Bytes,
    json: Option<Value>,
    parsed: bool,
    /// A plugin changed the body.
    pub dirty: bool,
}

impl BodyCell {
    /// Wraps raw JSON bytes (not parsed yet).
    pub fn new(raw: Bytes) -> Self {
        Self {
            raw,
            ..Self::default()
        }
    }

    /// Wraps an already parsed value.
    pub fn parsed(json: Value) -> Self {
        Self {
            json: Some(json),
            parsed: true,
            ..Self::default()
        }
    }

    pub(super) fn parse(&mut self) {
        if !self.parsed {
            self.parsed = true;
            self.json = serde_json::from_slice(&self.raw).ok();
        }
    }

    /// The parsed JSON (if it was parsed and is JSON).
    pub fn json(&self) -> Option<&Value> {
        self.json.as_ref()
    }

    /// The parsed JSON, parsing now if needed.
    pub fn json_now(&mut self) -> Option<&Value> {
        self.parse();
        self.json.as_ref()
    }

    /// Applies a change (parsing first if needed); a body that is not JSON is left as is.
    pub fn apply(&mut self, patch: crate::plugins::Patch) {
        self.parse();
        if let Some(v) = self.json.as_mut() {
            patch(v);
            self.dirty = true;
        }
    }

    /// The bytes to send on: the original unless a plugin changed the body.
    pub fn to_bytes(&self) -> Bytes {
        match (self.dirty, &self.json) {
            (true, Some(v)) => Bytes::from(v.to_string()),
            _ => self.raw.clone(),
        }
    }
}
