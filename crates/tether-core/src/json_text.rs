//! JSON text written as `serde_json` writes it (compact, the same escapes), with a faster
//! string escaper, for the answers the gateway writes on every call.
//!
//! `serde_json` looks up every byte of a string in its escape table, one at a time: writing a
//! 64 KiB text result was 29 % of the gateway's CPU in the 64 KiB benchmark. Here a string is
//! scanned eight bytes at a time for the bytes JSON must escape (`"`, `\`, below 0x20) and the
//! runs between them are copied whole. Numbers are written by `serde_json` itself. A property
//! test holds the output to `serde_json::to_vec`, byte for byte.

use serde_json::{Map, Value};

/// Appends `value` as compact JSON text.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            // Infallible for a `Vec`; the number's text is serde_json's own.
            let _ = serde_json::to_writer(&mut *out, number);
        }
        Value::String(text) => write_str(out, text),
        Value::Array(items) => write_array(out, items),
        Value::Object(members) => write_object(out, members),
    }
}

/// Appends `items` as a JSON array.
pub fn write_array(out: &mut Vec<u8>, items: &[Value]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, item);
    }
    out.push(b']');
}

/// Appends `members` as a JSON object, in the map's order.
pub fn write_object(out: &mut Vec<u8>, members: &Map<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_member(out, key, value);
    }
    out.push(b'}');
}

/// Appends `"key":value` (the caller writes the braces and commas).
pub fn write_member(out: &mut Vec<u8>, key: &str, value: &Value) {
    write_str(out, key);
    out.push(b':');
    write_value(out, value);
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Appends `text` as a JSON string, escaped as `serde_json` escapes it.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut at = 0;
    while at < bytes.len() {
        // Eight bytes at a time while none of them needs an escape.
        if let Some(block) = bytes.get(at..at + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(block);
            let found = needs_escape(u64::from_le_bytes(word));
            if found == 0 {
                at += 8;
                continue;
            }
            // The lowest flagged byte is exact (a borrow only runs upwards from it).
            at += (found.trailing_zeros() / 8) as usize;
        } else if !escaped(bytes[at]) {
            at += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..at]);
        write_escape(out, bytes[at]);
        at += 1;
        start = at;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The high bit of each byte of `word` that is `"`, `\` or below 0x20 (and possibly of bytes
/// above such a byte: only the lowest flag is exact).
fn needs_escape(word: u64) -> u64 {
    let below_space = word.wrapping_sub(LOW_BITS * 0x20) & !word;
    let quote = word ^ (LOW_BITS * u64::from(b'"'));
    let backslash = word ^ (LOW_BITS * u64::from(b'\\'));
    let is_quote = quote.wrapping_sub(LOW_BITS) & !quote;
    let is_backslash = backslash.wrapping_sub(LOW_BITS) & !backslash;
    (below_space | is_quote | is_backslash) & HIGH_BITS
}

fn escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn write_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
            return;
        }
    };
    out.push(b'\\');
    out.push(short);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn written(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, value);
        out
    }

    /// Strings heavy in what JSON escapes, around the eight-byte blocks' edges, and beyond
    /// ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}", "\u{1f}", " ", "!",
                "#", "[", "]", "\u{7f}", "é", "€", "😀", "/", "abcdefgh",
            ]),
            0..40,
        )
        .prop_map(|pieces| pieces.concat())
    }

    fn value() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            text().prop_map(Value::from),
        ];
        scalar.prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::vec((text(), inner), 0..5)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        #[test]
        fn writes_what_serde_json_writes(value in value()) {
            let theirs = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ours = written(&value);
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }

    #[test]
    fn every_byte_below_0x80_is_escaped_as_serde_json_escapes_it() {
        for byte in 0u8..0x80 {
            for at in 0..10 {
                let text = format!("{}{}{}", "x".repeat(at), char::from(byte), "y".repeat(9));
                let value = Value::from(text);
                let theirs = serde_json::to_vec(&value).expect("serializes");
                assert_eq!(written(&value), theirs, "byte {byte:#x} at {at}");
            }
        }
    }
}
