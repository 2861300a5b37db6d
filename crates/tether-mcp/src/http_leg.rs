//! The HTTP client that carries a lean session's requests to its origin: hyper's pooled client
//! itself, not reqwest around it.
//!
//! reqwest runs every request through layers Tether never uses here (a redirect policy, which
//! is "none"; a cookie service, with no store; a retry policy) and parses the request's URL
//! again in three of them: with the boxing around them, about 9 % of the gateway's CPU per
//! tool call (perf, DWARF call graphs, concurrency 16). What `post` needs from a client is a
//! pooled HTTP/1.1 connection per origin, a connect timeout, TLS and the default headers, so
//! those are set up here the way reqwest sets them up: rustls on aws-lc-rs with the platform's
//! certificate verifier, `TCP_NODELAY`, the same `User-Agent` and configured headers.
//!
//! An origin that the environment sends through a proxy (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `NO_PROXY`, read as reqwest reads them) gets no client here: its requests stay on reqwest,
//! which speaks to the proxy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, USER_AGENT};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioExecutor;

/// The `User-Agent` of every upstream request, on either client.
pub(crate) const AGENT: &str = concat!("tether/", env!("CARGO_PKG_VERSION"));

/// Why no client could be set up (the platform's certificate store could not be read).
#[derive(Debug, thiserror::Error)]
#[error("the TLS configuration for upstream requests could not be set up")]
pub(crate) struct SetupFailed;

/// One origin's pooled client and the headers every request to it carries. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RequestClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    headers: Arc<HeaderMap>,
}

impl fmt::Debug for RequestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Configured headers may hold credentials: their names only.
        f.debug_struct("RequestClient")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RequestClient {
    /// A client for `origin` (`scheme://host:port`), or `None` when the environment proxies
    /// that origin.
    pub(crate) fn for_origin(
        origin: &Uri,
        connect_timeout: Duration,
        headers: &HeaderMap,
    ) -> Result<Option<Self>, SetupFailed> {
        if proxied(&Matcher::from_system(), origin) {
            return Ok(None);
        }
        Self::build(connect_timeout, headers).map(Some)
    }

    fn build(connect_timeout: Duration, headers: &HeaderMap) -> Result<Self, SetupFailed> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|_| SetupFailed)?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| SetupFailed)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let mut all = HeaderMap::with_capacity(headers.len() + 1);
        all.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        for (name, value) in headers {
            all.append(name, value.clone());
        }
        Ok(Self {
            client,
            headers: Arc::new(all),
        })
    }

    /// Sends `request` after adding the default headers it does not set itself.
    pub(crate) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let set = request.headers_mut();
        for (name, value) in self.headers.iter() {
            if !set.contains_key(name) {
                set.insert(name, value.clone());
            }
        }
        self.client.request(request).await
    }
}

/// Whether `matcher` sends requests to `origin` through a proxy.
fn proxied(matcher: &Matcher, origin: &Uri) -> bool {
    matcher.intercept(origin).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        match text.parse() {
            Ok(uri) => uri,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn an_origin_the_environment_proxies_keeps_reqwest() {
        let matcher = Matcher::builder()
            .http("http://proxy.example:3128")
            .no("127.0.0.1")
            .build();
        assert!(proxied(&matcher, &uri("http://mcp.example:8080")));
        assert!(!proxied(&matcher, &uri("http://127.0.0.1:8080")));
        assert!(!proxied(&matcher, &uri("https://mcp.example")));
        assert!(!proxied(
            &Matcher::builder().build(),
            &uri("http://mcp.example")
        ));
    }

    #[test]
    fn configured_headers_follow_the_user_agent_and_stay_out_of_debug() {
        let mut configured = HeaderMap::new();
        configured.insert("x-api-key", HeaderValue::from_static("secret-value"));
        let client = match RequestClient::build(Duration::from_secs(1), &configured) {
            Ok(client) => client,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            client.headers.get(USER_AGENT),
            Some(&HeaderValue::from_static(AGENT))
        );
        assert_eq!(
            client.headers.get("x-api-key"),
            Some(&HeaderValue::from_static("secret-value"))
        );
        let shown = format!("{client:?}");
        assert!(
            shown.contains("x-api-key") && !shown.contains("secret-value"),
            "{shown}"
        );
    }

    /// A self-signed certificate for `localhost` and 127.0.0.1 (a test key, trusted nowhere).
    const SELF_SIGNED: &str = "-----BEGIN CERTIFICATE-----
MIIBnDCCAUGgAwIBAgIUUlx04u5JVv6H+YBic7vCUQ7X8UIwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNTEyMDM0MloYDzIxMjYxMTEx
MTIwMzQyWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATXBhYnM5TYWZGnmIjB6bxFUH7JBIIbtUZDk29owc1mk0o0h4wo5yIm
B7CgiS/Dvl+wK/Z7Hf+5vsQto+oPUJANo28wbTAdBgNVHQ4EFgQUNJPda2Z+M5DF
dTIERPGPMQU/VaIwHwYDVR0jBBgwFoAUNJPda2Z+M5DFdTIERPGPMQU/VaIwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSQAwRgIhAOVUrLGYAkxEDYvjATsUjXNEvIKWegbxb3a/fwKO82ZIAiEA
llDAo1tQuJAyghkjjHxh4ObNjgD5hwe7tl4s6z7BXRk=
-----END CERTIFICATE-----
";
    const SELF_SIGNED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgR547KyIpHwYD3wgl
8acPXxbwAb7TGT9JglTxlN2xV2ihRANCAATXBhYnM5TYWZGnmIjB6bxFUH7JBIIb
tUZDk29owc1mk0o0h4wo5yImB7CgiS/Dvl+wK/Z7Hf+5vsQto+oPUJAN
-----END PRIVATE KEY-----
";

    /// TLS is spoken on an `https` URL and the certificate is verified: a server whose
    /// certificate no root vouches for gets the client's alert and no request, and the failure
    /// is one of connecting.
    #[tokio::test]
    async fn an_untrusted_certificate_is_refused_before_any_request() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let certs = CertificateDer::pem_slice_iter(SELF_SIGNED.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the test certificate");
        let key = PrivateKeyDer::from_pem_slice(SELF_SIGNED_KEY.as_bytes()).expect("its key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let accepted = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            acceptor.accept(tcp).await.map(drop)
        });

        let client =
            RequestClient::build(Duration::from_secs(5), &HeaderMap::new()).expect("client");
        let request = Request::post(format!("https://localhost:{port}/mcp"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        let error = tokio::time::timeout(Duration::from_secs(10), client.send(request))
            .await
            .expect("no hang")
            .expect_err("an untrusted certificate");
        assert!(error.is_connect(), "{error:?}");
        assert!(matches!(
            crate::error::from_transport(&error, true),
            tether_core::ConnectError::Transport {
                kind: tether_core::TransportFailure::Network,
                ..
            }
        ));

        let handshake = tokio::time::timeout(Duration::from_secs(10), accepted)
            .await
            .expect("the server finished")
            .expect("the server task");
        let refusal = handshake.expect_err("the client refused the handshake");
        let alert = refusal
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(
            matches!(alert, Some(rustls::Error::AlertReceived(_))),
            "{refusal:?}"
        );
    }
}
