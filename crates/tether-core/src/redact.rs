//! Defence in depth for texts that reach users, models and logs: whatever a lower layer put in
//! an error message, credential-shaped parts are replaced before it leaves the core.

const SECRET_KEYS: [&str; 8] = [
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code_verifier",
    "code",
    "password",
    "token",
];

const REDACTED: &str = "[redacted]";

/// Replaces `Bearer <x>`, `<secret key>=<x>` / `"<secret key>": "<x>"` values and JWT-shaped
/// words (`eyJ…`). Meant for short error texts, not bulk data.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let words = text.split_inclusive(char::is_whitespace).peekable();
    let mut redact_next = false;
    for word in words {
        let (body, space) = split_trailing_space(word);
        if redact_next && !body.is_empty() {
            out.push_str(REDACTED);
            out.push_str(space);
            redact_next = false;
            continue;
        }
        if body.eq_ignore_ascii_case("bearer") || body.eq_ignore_ascii_case("basic") {
            redact_next = true;
            out.push_str(word);
            continue;
        }
        out.push_str(&redact_word(body));
        out.push_str(space);
    }
    out
}

fn split_trailing_space(word: &str) -> (&str, &str) {
    let trimmed = word.trim_end_matches(char::is_whitespace);
    (trimmed, &word[trimmed.len()..])
}

fn redact_word(word: &str) -> String {
    if looks_like_jwt(word) {
        return REDACTED.to_owned();
    }
    let mut result = word.to_owned();
    for key in SECRET_KEYS {
        result = redact_assignments(&result, key);
    }
    result
}

fn looks_like_jwt(word: &str) -> bool {
    let w = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    w.starts_with("eyJ") && w.len() > 20 && w.matches('.').count() >= 2
}

/// `key=value`, `key:value`, `"key":"value"` → the value replaced, up to `&`, `,`, `"`, `;`, `}`.
fn redact_assignments(text: &str, key: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(key) {
        let start = pos + found;
        let before_ok = start == 0 || !is_key_char(lower.as_bytes()[start - 1]);
        let mut cursor = start + key.len();
        let bytes = text.as_bytes();
        let after_ok = cursor >= bytes.len() || !is_key_char(bytes[cursor]);
        out.push_str(&text[pos..cursor]);
        pos = cursor;
        if !(before_ok && after_ok) {
            continue;
        }
        // Skip the quote, separator and opening quote: `"`, `=` or `:`, spaces, `"`.
        if cursor < bytes.len() && bytes[cursor] == b'"' {
            cursor += 1;
        }
        if cursor >= bytes.len() || !(bytes[cursor] == b'=' || bytes[cursor] == b':') {
            continue;
        }
        cursor += 1;
        while cursor < bytes.len() && (bytes[cursor] == b' ' || bytes[cursor] == b'"') {
            cursor += 1;
        }
        let value_end = text[cursor..]
            .find(['&', ',', '"', ';', '}', ' '])
            .map_or(text.len(), |i| cursor + i);
        if value_end > cursor {
            out.push_str(&text[pos..cursor]);
            out.push_str(REDACTED);
            pos = value_end;
        }
    }
    out.push_str(&text[pos..]);
    out
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_replaced_and_the_rest_is_kept() {
        let cases = [
            (
                "upstream said 401 for Bearer abc.def",
                "upstream said 401 for Bearer [redacted]",
            ),
            (
                "POST /token grant_type=refresh_token&refresh_token=r1-secret&client_id=app",
                "POST /token grant_type=refresh_token&refresh_token=[redacted]&client_id=app",
            ),
            (
                r#"body {"access_token":"a-secret","token_type":"Bearer"}"#,
                r#"body {"access_token":"[redacted]","token_type":"Bearer"}"#,
            ),
            (
                "callback ?code=xyz&state=s1",
                "callback ?code=[redacted]&state=s1",
            ),
            (
                "got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.sig back",
                "got [redacted] back",
            ),
            (
                "connection refused (os error 111)",
                "connection refused (os error 111)",
            ),
            ("unicode – fine: ✓ code", "unicode – fine: ✓ code"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }

    #[test]
    fn keys_inside_longer_words_are_left_alone() {
        assert_eq!(redact("encode=1 barcode=2"), "encode=1 barcode=2");
        assert_eq!(redact("token_type=Bearer"), "token_type=Bearer");
    }
}
