//! Borrowing helpers for the stream translators: reading upstream JSON into small
//! structs whose fields are raw JSON slices of the input ([`RawValue`]), read lazily with
//! the same leniency as `serde_json::Value` accessors (a field of the wrong type reads
//! as absent), and feeding SSE bytes to a translator without copying a push that is
//! already whole events.

use crate::sse::{single_data, EventAligner, EventTooLarge};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A field kept as its raw JSON text (absent or `null` → `None`).
pub(crate) type Raw<'a> = Option<&'a RawValue>;

/// For `#[serde(default, deserialize_with = "raw::keep_null")]`: a member present with
/// `null` reads as `Some("null")` rather than `None`, as `Value::get` sees it.
pub(crate) fn keep_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Raw<'de>, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

/// The field as a string (borrowed unless it has escapes); `None` unless a string.
pub(crate) fn as_str<'a>(raw: Raw<'a>) -> Option<Cow<'a, str>> {
    let text = raw?.get();
    if !text.starts_with('"') {
        return None;
    }
    // A raw string is valid JSON: without a backslash, what is between its quotes is
    // the string itself. (`Cow<str>`'s own `Deserialize` would always copy.)
    if let Some(inner) = text.get(1..text.len().saturating_sub(1)) {
        if text.len() >= 2 && text.ends_with('"') && !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// The field as a string, empty unless a string.
pub(crate) fn text(raw: Raw<'_>) -> Cow<'_, str> {
    as_str(raw).unwrap_or_default()
}

/// The field as an unsigned integer, like `Value::as_u64`.
pub(crate) fn as_u64(raw: Raw<'_>) -> Option<u64> {
    let text = raw?.get();
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    serde_json::from_str::<u64>(text).ok()
}

/// The field as a boolean.
pub(crate) fn as_bool(raw: Raw<'_>) -> Option<bool> {
    match raw?.get() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Whether the field is a JSON object.
pub(crate) fn is_object(raw: Raw<'_>) -> bool {
    raw.is_some_and(|r| r.get().starts_with('{'))
}

/// The field read as `T` when it is a JSON object (`T`'s fields all optional raw
/// slices, so any object fits); `None` otherwise.
pub(crate) fn object<'a, T: Deserialize<'a>>(raw: Raw<'a>) -> Option<T> {
    let raw = raw?;
    if !raw.get().starts_with('{') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The elements of an array field (`None` unless an array).
pub(crate) fn array<'a>(raw: Raw<'a>) -> Option<Vec<&'a RawValue>> {
    let raw = raw?;
    if !raw.get().starts_with('[') {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The field re-serialised as `Value::to_string` writes it (compact, keys sorted).
pub(crate) fn canonical(raw: &RawValue) -> String {
    serde_json::from_str::<serde_json::Value>(raw.get())
        .map(|v| json_string(&v))
        .unwrap_or_else(|_| raw.get().to_owned())
}

/// Parses a whole JSON text as the object `T`: `Ok(None)` when it is valid JSON but not
/// an object.
pub(crate) fn parse_object<'a, T: Deserialize<'a>>(
    text: &'a str,
) -> Result<Option<T>, serde_json::Error> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map(Some)
    } else {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| None)
    }
}

/// Feeds one pushed chunk through `aligner` and calls `each` with the data of every
/// event it completes, in order, until `each` fails (the inner result). A push that is
/// whole events (the usual case, nothing held back) is read in place, without copying
/// it. The outer `Err`: the aligner's limit was passed.
pub(crate) fn for_each_data<E>(
    aligner: &mut EventAligner,
    chunk: &[u8],
    mut each: impl FnMut(&str) -> Result<(), E>,
) -> Result<Result<(), E>, EventTooLarge> {
    if aligner.pending() == 0 && !aligner.overflowed() && ends_events(chunk) {
        return Ok(each_event(chunk, &mut each));
    }
    match aligner.push(Bytes::copy_from_slice(chunk))? {
        Some(events) => Ok(each_event(&events, &mut each)),
        None => Ok(Ok(())),
    }
}

fn ends_events(buf: &[u8]) -> bool {
    buf.ends_with(b"\n\n") || buf.ends_with(b"\r\r") || buf.ends_with(b"\n\r\n")
}

/// Calls `each` with the data of every event in `buf` (which ends at an event end).
fn each_event<E>(buf: &[u8], each: &mut impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
    // Same cuts as `sse::split_events`: an event ends with a line end that starts a line.
    let mut start = 0;
    let mut at_line_start = true;
    let mut i = 0;
    while i < buf.len() {
        if !at_line_start {
            // Jump to the next line end.
            match memchr::memchr2(b'\n', b'\r', &buf[i..]) {
                Some(off) => i += off,
                None => break,
            }
        }
        let b = buf[i];
        if b == b'\r' || b == b'\n' {
            let len = if b == b'\r' && buf.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            if at_line_start && i > start {
                if let Some(data) = single_data(&buf[start..i + len]) {
                    each(&data)?;
                }
                start = i + len;
            }
            at_line_start = true;
            i += len;
        } else {
            at_line_start = false;
            i += 1;
        }
    }
    if start < buf.len() {
        if let Some(data) = single_data(&buf[start..]) {
            each(&data)?;
        }
    }
    Ok(())
}

/// `value` as compact JSON bytes (what `Value::to_string` writes, without going through
/// `fmt`).
pub(crate) fn json_bytes(value: &impl serde::Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// `value` as compact JSON text (what `Value::to_string` writes, without going through
/// `fmt`).
pub(crate) fn json_string(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Appends `text` as a JSON string, escaped as `serde_json` escapes it (`"`, `\\` and
/// control characters; nothing else), without an intermediate allocation.
pub(crate) fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped is ASCII, so `i` is a character boundary.
        out.push_str(text.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(text.get(start..).unwrap_or_default());
    out.push('"');
}

/// A member read in the same pass as its parent when it is a JSON object (`Obj(Some)`),
/// and skipped when it is anything else (`Obj(None)`), as `Value::get` on a non-object
/// would see nothing: the nested levels of an event are then scanned once, not once
/// per level.
pub(crate) struct Obj<T>(pub(crate) Option<T>);

/// [`Obj`] for an array: its elements read as `T` (use `Obj<…>` elements to skip
/// non-objects); `None` when not an array.
pub(crate) struct Arr<T>(pub(crate) Option<Vec<T>>);

/// Accepts any JSON value; `visit_map`/`visit_seq` decide what is kept.
struct Lenient<F>(F);

macro_rules! skip_scalars {
    ($out:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
    };
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de>
    for Lenient<std::marker::PhantomData<Obj<T>>>
{
    type Value = Obj<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Obj<T>, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Obj(None))
    }

    skip_scalars!(Obj(None));
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Lenient(std::marker::PhantomData::<Obj<T>>))
    }
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de>
    for Lenient<std::marker::PhantomData<Arr<T>>>
{
    type Value = Arr<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Arr<T>, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Arr(None))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Arr<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<T>()? {
            items.push(item);
        }
        Ok(Arr(Some(items)))
    }

    skip_scalars!(Arr(None));
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Lenient(std::marker::PhantomData::<Arr<T>>))
    }
}

/// An object member name, borrowed from the input unless it has escapes; looked up by
/// `&str`.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(transparent)]
pub(crate) struct Key<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

impl std::borrow::Borrow<str> for Key<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A request body's top-level members as raw slices, in name order and the last of a
/// duplicated name kept (as `serde_json::Map` has them).
pub(crate) type Fields<'a> = std::collections::BTreeMap<Key<'a>, &'a RawValue>;

/// A member of `fields`, `null` counting as absent.
pub(crate) fn field<'a>(fields: &Fields<'a>, key: &str) -> Raw<'a> {
    fields.get(key).copied().filter(|v| v.get() != "null")
}

/// Whether the field is a JSON number.
pub(crate) fn is_number(raw: Raw<'_>) -> bool {
    raw.is_some_and(|r| {
        r.get()
            .starts_with(|c: char| c == '-' || c.is_ascii_digit())
    })
}

/// The field as a float, like `Value::as_f64` (`None` unless a number).
pub(crate) fn as_f64(raw: Raw<'_>) -> Option<f64> {
    if !is_number(raw) {
        return None;
    }
    serde_json::from_str::<f64>(raw?.get()).ok()
}

/// Whether the field is an empty JSON object.
pub(crate) fn is_empty_object(raw: Raw<'_>) -> bool {
    raw.and_then(|r| r.get().strip_prefix('{'))
        .is_some_and(|rest| rest.trim_start().starts_with('}'))
}

/// The member `text` of an object.
#[derive(Deserialize)]
struct TextMember<'a> {
    #[serde(borrow)]
    text: Raw<'a>,
}

/// A message `content` as plain text, like `translate::text_of`: a string as is, an
/// array's parts' `text` strings joined, anything else empty.
pub(crate) fn text_of(content: Raw<'_>) -> Cow<'_, str> {
    if let Some(text) = as_str(content) {
        return text;
    }
    let Some(parts) = array(content) else {
        return Cow::Borrowed("");
    };
    let mut out = String::new();
    for part in parts {
        if let Some(TextMember { text }) = object(Some(part)) {
            if let Some(text) = as_str(text) {
                out.push_str(&text);
            }
        }
    }
    Cow::Owned(out)
}

/// A `data:` URL (see `translate::parse_data_url`) split into its media type and base64
/// payload, borrowed from the input when the URL is.
pub(crate) fn data_url<'a>(url: &Cow<'a, str>) -> Option<(Cow<'a, str>, Cow<'a, str>)> {
    match url {
        Cow::Borrowed(s) => {
            crate::translate::parse_data_url(s).map(|(m, d)| (Cow::Borrowed(m), Cow::Borrowed(d)))
        }
        Cow::Owned(s) => crate::translate::parse_data_url(s)
            .map(|(m, d)| (Cow::Owned(m.to_owned()), Cow::Owned(d.to_owned()))),
    }
}
