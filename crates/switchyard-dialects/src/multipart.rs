//! `multipart/form-data` bodies, read only as far as the gateway needs: where a named
//! field's content sits (the `model` of an audio transcription, the file of a plugin
//! upload), so it can be read or replaced in place and the rest forwarded byte for
//! byte. Uses `memchr`'s substring search; no copy of the body.

use memchr::memmem;
use std::ops::Range;

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<&str> {
    let mut parts = content_type.split(';').map(str::trim);
    let kind = parts.next()?;
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
}

/// Why a field could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// A part does not end with the boundary.
    Unterminated,
    /// No part is named so.
    Missing,
}

/// Byte range of the content of field `name` in a multipart `body` cut by `boundary`.
pub fn field(body: &[u8], boundary: &str, name: &str) -> Result<Range<usize>, FieldError> {
    let delimiter = format!("--{boundary}");
    let closing = format!("\r\n{delimiter}");
    let wanted = format!("name=\"{name}\"");
    let mut at = 0;
    while let Some(found) = memmem::find(&body[at..], delimiter.as_bytes()) {
        let head_start = at + found + delimiter.len();
        let Some(head_len) = memmem::find(&body[head_start..], b"\r\n\r\n") else {
            break;
        };
        let content_start = head_start + head_len + 4;
        let head = &body[head_start..head_start + head_len];
        let content_len = memmem::find(&body[content_start..], closing.as_bytes())
            .ok_or(FieldError::Unterminated)?;
        let is_it = head.split(|&b| b == b'\n').any(|line| {
            let line = String::from_utf8_lossy(line).to_ascii_lowercase();
            line.starts_with("content-disposition:")
                && line
                    .split(';')
                    .any(|p| p.trim() == wanted.to_ascii_lowercase())
        });
        if is_it {
            return Ok(content_start..content_start + content_len);
        }
        at = content_start + content_len;
    }
    Err(FieldError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--\r\n";

    #[test]
    fn finds_a_field_after_a_file() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ"), Some("XyZ"));
        assert_eq!(
            boundary("Multipart/Form-Data; boundary=\"XyZ\""),
            Some("XyZ")
        );
        assert_eq!(boundary("application/json"), None);
        let model = field(BODY, "XyZ", "model").unwrap();
        assert_eq!(&BODY[model], b"whisper-1");
        let file = field(BODY, "XyZ", "file").unwrap();
        assert_eq!(&BODY[file], b"RIFF");
        assert_eq!(field(BODY, "XyZ", "modelx"), Err(FieldError::Missing));
        let cut = memmem::find(BODY, b"RIFF").unwrap() + 4;
        assert_eq!(
            field(&BODY[..cut], "XyZ", "file"),
            Err(FieldError::Unterminated)
        );
    }
}
