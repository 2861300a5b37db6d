//! Binding a flow to the browser that opened it: `/oauth/begin/{state}` sets a cookie holding a
//! random secret and the flow keeps only its SHA-256; the callback is accepted only with that
//! cookie. A leaked `state` or authorization URL is then useless in another browser.
//!
//! One cookie per flow (named after a digest of its `state`), so a user may authorize two
//! servers in two tabs at once. `SameSite=Lax`: the callback is a top-level navigation from the
//! authorization server, which Lax cookies accompany.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const COOKIE_PREFIX: &str = "tether_flow_";
/// The cookie outlives no flow (flows live 10 minutes).
const COOKIE_MAX_AGE_SECS: u64 = 600;

/// A fresh random secret, URL-safe (256 bits).
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of `secret`, hex: what stores keep instead of the secret.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cookie of the flow whose `state` this is.
pub fn cookie_name(state: &str) -> String {
    let digest = digest(state);
    format!("{COOKIE_PREFIX}{}", &digest[..16])
}

/// The value of cookie `name` in the request, if it has one.
pub fn presented(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// Whether the request carries the cookie of the browser the flow is bound to.
pub fn is_bound_browser(headers: &HeaderMap, state: &str, binding: Option<&str>) -> bool {
    let Some(binding) = binding else {
        return false;
    };
    presented(headers, &cookie_name(state)).is_some_and(|secret| digest(&secret) == binding)
}

/// `Set-Cookie` for a flow's browser secret.
pub fn set_cookie(state: &str, secret: &str, secure: bool) -> Option<HeaderValue> {
    cookie(&cookie_name(state), secret, COOKIE_MAX_AGE_SECS, secure)
}

/// `Set-Cookie` that removes a flow's cookie once the flow is over.
pub fn clear_cookie(state: &str, secure: bool) -> Option<HeaderValue> {
    cookie(&cookie_name(state), "", 0, secure)
}

fn cookie(name: &str, value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/oauth; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(value).expect("a header value"),
        );
        headers
    }

    #[test]
    fn only_the_bound_browser_matches() {
        let secret = new_secret();
        let binding = digest(&secret);
        let name = cookie_name("st");
        let bound = with_cookie(&format!("other=1; {name}={secret}"));
        assert!(is_bound_browser(&bound, "st", Some(&binding)));
        assert!(!is_bound_browser(&bound, "another-state", Some(&binding)));
        assert!(!is_bound_browser(&bound, "st", None), "an unbound flow");
        let stranger = with_cookie(&format!("{name}={}", new_secret()));
        assert!(!is_bound_browser(&stranger, "st", Some(&binding)));
        assert!(!is_bound_browser(&HeaderMap::new(), "st", Some(&binding)));
        assert_ne!(new_secret(), new_secret());
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_https() {
        let cookie = set_cookie("st", "s3cret", true).expect("a cookie");
        let text = cookie.to_str().expect("ascii");
        for part in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/oauth",
            "Max-Age=600",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        let plain = set_cookie("st", "s3cret", false).expect("a cookie");
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
        let cleared = clear_cookie("st", false).expect("a cookie");
        assert!(cleared.to_str().expect("ascii").contains("Max-Age=0"));
    }
}
