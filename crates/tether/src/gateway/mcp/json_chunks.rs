//! A JSON value written out as the chunks of a response body, its long strings moved into the
//! body as they are rather than copied into one buffer: a resource's base64 blob or text is
//! then held once between the upstream's answer and the agent's, not once in the parsed answer
//! and again in the serialized one.
//!
//! The bytes are exactly `serde_json::to_vec`'s: a string is moved only when it needs no
//! escaping (no `"`, `\` or control character), otherwise it is written as serde_json writes it.

use axum::body::Bytes;
use serde_json::Value;

/// Strings of at least this many bytes are moved into the body instead of copied.
const MOVE_AT: usize = 16 * 1024;

#[derive(Debug, Default)]
pub(crate) struct JsonChunks {
    done: Vec<Bytes>,
    current: Vec<u8>,
    len: usize,
}

impl JsonChunks {
    /// Appends JSON text written by the caller (punctuation, an envelope's fixed members).
    pub(crate) fn text(&mut self, text: &[u8]) {
        self.current.extend_from_slice(text);
    }

    /// Appends `value`, consuming it.
    pub(crate) fn value(&mut self, value: Value) {
        match value {
            Value::String(string) if string.len() >= MOVE_AT && !needs_escape(&string) => {
                self.current.push(b'"');
                self.flush();
                self.len += string.len();
                self.done.push(Bytes::from(string));
                self.current.push(b'"');
            }
            Value::Array(items) => {
                self.current.push(b'[');
                for (i, item) in items.into_iter().enumerate() {
                    if i > 0 {
                        self.current.push(b',');
                    }
                    self.value(item);
                }
                self.current.push(b']');
            }
            Value::Object(members) => {
                self.current.push(b'{');
                for (i, (key, member)) in members.into_iter().enumerate() {
                    if i > 0 {
                        self.current.push(b',');
                    }
                    self.scalar(&Value::String(key));
                    self.current.push(b':');
                    self.value(member);
                }
                self.current.push(b'}');
            }
            scalar => self.scalar(&scalar),
        }
    }

    fn scalar(&mut self, value: &Value) {
        // Writing a `Value` into a `Vec` cannot fail (no I/O, string keys only).
        if serde_json::to_writer(&mut self.current, value).is_err() {
            self.current.extend_from_slice(b"null");
        }
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.len += self.current.len();
            self.done
                .push(Bytes::from(std::mem::take(&mut self.current)));
        }
    }

    /// The chunks, and their total length.
    pub(crate) fn finish(mut self) -> (Vec<Bytes>, usize) {
        self.flush();
        (self.done, self.len)
    }
}

/// Whether serde_json would escape a character of `text`.
fn needs_escape(text: &str) -> bool {
    text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn written(value: &Value) -> (Vec<u8>, usize) {
        let mut chunks = JsonChunks::default();
        chunks.value(value.clone());
        let (done, len) = chunks.finish();
        let count = done.len();
        let bytes = done.concat();
        assert_eq!(bytes.len(), len, "the length counted is the length written");
        (bytes, count)
    }

    #[test]
    fn the_bytes_are_serde_jsons() {
        let long = "A".repeat(MOVE_AT * 2);
        let long_escaped = format!("{}\"\n\\{}", "b".repeat(MOVE_AT), "é");
        for value in [
            json!(null),
            json!({"contents": [{"uri": "tether://x/blob://1", "blob": long, "mimeType": "a/b"}]}),
            json!({"contents": [{"uri": "u", "text": long_escaped}], "_meta": {"k": [1, 2.5, true]}}),
            json!(["short \"quoted\"", {"": {}}, [], "\u{1}"]),
        ] {
            let (bytes, _) = written(&value);
            assert_eq!(
                bytes,
                serde_json::to_vec(&value).expect("serializes"),
                "{value}"
            );
        }
    }

    #[test]
    fn a_long_string_is_its_own_chunk() {
        let blob = "Q".repeat(MOVE_AT);
        let (_, count) = written(&json!({"blob": blob, "after": 1}));
        assert_eq!(count, 3, "before, the string, after");
        let (_, count) = written(&json!({"blob": "short"}));
        assert_eq!(count, 1);
    }
}
