//! The loopback redirect target of an interactive `tether connect` (like `gh auth login`):
//! listens on 127.0.0.1, takes the first request to the redirect path, answers with a short
//! page and hands back `code`, `state` and `iss`.
//!
//! Deliberately tiny and strict: one request line read within bounds, nothing else served.

use std::time::Duration;

use tether_oauth::Secret;
use tether_oauth::headless::AuthorizationResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// The most a browser's request head may take before it is refused.
const MAX_HEAD: usize = 16 * 1024;
/// Connections that are not the redirect (favicon, probes) tolerated before giving up.
const MAX_STRAY_REQUESTS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("cannot listen for the authorization redirect: {0}")]
    Bind(std::io::Error),
    #[error("the redirect URI must be http on 127.0.0.1, [::1] or localhost to be received here")]
    NotLoopback,
    #[error("no authorization redirect arrived within {0:?}")]
    TimedOut(Duration),
    #[error("the authorization server refused: {0}")]
    Denied(String),
    #[error("too many unrelated requests on the redirect port")]
    TooManyStrays,
}

pub struct CallbackListener {
    listener: TcpListener,
    redirect_uri: Url,
}

impl CallbackListener {
    /// Binds the port of `redirect_uri`, or a free port when it is `None`
    /// (the URI is then `http://127.0.0.1:<port>/callback`).
    pub async fn bind(redirect_uri: Option<&str>) -> Result<Self, CallbackError> {
        let (listener, redirect_uri) = match redirect_uri {
            None => {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(CallbackError::Bind)?;
                let port = listener.local_addr().map_err(CallbackError::Bind)?.port();
                let uri = Url::parse(&format!("http://127.0.0.1:{port}/callback"))
                    .map_err(|_| CallbackError::NotLoopback)?;
                (listener, uri)
            }
            Some(given) => {
                let uri = Url::parse(given).map_err(|_| CallbackError::NotLoopback)?;
                let host = uri.host_str().unwrap_or_default();
                let loopback = matches!(host, "127.0.0.1" | "[::1]" | "localhost");
                if uri.scheme() != "http" || !loopback {
                    return Err(CallbackError::NotLoopback);
                }
                let port = uri.port_or_known_default().unwrap_or(80);
                let bind_host = if host == "[::1]" {
                    "[::1]"
                } else {
                    "127.0.0.1"
                };
                let listener = TcpListener::bind(format!("{bind_host}:{port}"))
                    .await
                    .map_err(CallbackError::Bind)?;
                (listener, uri)
            }
        };
        Ok(Self {
            listener,
            redirect_uri,
        })
    }

    pub fn redirect_uri(&self) -> &str {
        self.redirect_uri.as_str()
    }

    /// Waits for the redirect, at most `patience`.
    pub async fn wait(self, patience: Duration) -> Result<AuthorizationResponse, CallbackError> {
        tokio::time::timeout(patience, self.accept_redirect())
            .await
            .map_err(|_| CallbackError::TimedOut(patience))?
    }

    async fn accept_redirect(self) -> Result<AuthorizationResponse, CallbackError> {
        for _ in 0..MAX_STRAY_REQUESTS {
            let Ok((mut stream, _)) = self.listener.accept().await else {
                continue;
            };
            let Some(target) = read_request_target(&mut stream).await else {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                continue;
            };
            let Ok(url) = self.redirect_uri.join(&target) else {
                continue;
            };
            if url.path() != self.redirect_uri.path() {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                continue;
            }
            let param = |name: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            let outcome = if let Some(error) = param("error") {
                Err(CallbackError::Denied(tether_core::redact::redact(&error)))
            } else if let (Some(code), Some(state)) = (param("code"), param("state")) {
                Ok(AuthorizationResponse {
                    code: Secret::new(code),
                    state,
                    issuer: param("iss"),
                })
            } else {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                continue;
            };
            let body = if outcome.is_ok() {
                "Tether is authorized. You can close this window."
            } else {
                "Authorization was refused. You can close this window."
            };
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            return outcome;
        }
        Err(CallbackError::TooManyStrays)
    }
}

/// The request target of a `GET <target> HTTP/1.x` head, read within [`MAX_HEAD`].
async fn read_request_target(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(version)) if version.starts_with("HTTP/1.") => {
            Some(target.to_owned())
        }
        _ => None,
    }
}
