//! Text put into the gateway's own HTML pages (the operator's status page, the pages a browser
//! sees at the end of an OAuth flow): one escape for element content and quoted attribute
//! values, so that no page escapes differently (public for the binary's OAuth pages).

/// HTML-escapes `text` for element content and (single- or double-) quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_and_both_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }
}
