//! The HTTP client that carries a lean session's requests to its origin: hyper's HTTP/1.1
//! connections with a pool of Tether's own ([`pool`]), not reqwest around hyper's pooled client.
//!
//! reqwest runs every request through layers Tether never uses here (a redirect policy, which
//! is "none"; a cookie service, with no store; a retry policy) and parses the request's URL
//! again in three of them: with the boxing around them, about 9 % of the gateway's CPU per
//! tool call (perf, DWARF call graphs, concurrency 16). What `post` needs from a client is a
//! pooled HTTP/1.1 connection per origin, a connect timeout, TLS and the default headers, so
//! those are set up here the way reqwest sets them up: rustls on aws-lc-rs with the platform's
//! certificate verifier, `TCP_NODELAY`, the same `User-Agent` and configured headers. Each
//! connection is driven by the request using it ([`conn`]), not by a task of its own.
//!
//! An origin that the environment sends through a proxy (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `NO_PROXY`, read as reqwest reads them) gets no client here: its requests stay on reqwest,
//! which speaks to the proxy.

mod body;
mod conn;
mod pool;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderMap, HeaderValue, USER_AGENT};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use tower_service::Service;

pub use body::PooledBody;
use conn::Conn;
use pool::{Origin, Pool};

/// The `User-Agent` of every upstream request, on either client.
pub(crate) const AGENT: &str = concat!("tether/", env!("CARGO_PKG_VERSION"));

/// Why no client could be set up (the platform's certificate store could not be read).
#[derive(Debug, thiserror::Error)]
#[error("the TLS configuration for upstream requests could not be set up")]
pub struct SetupFailed;

/// How many idle connections a request tries before it opens a new one: each was found
/// closed by the server before it took the request.
const MAX_STALE: usize = 3;

/// Why a request got no response. Displayed with fixed texts (no URL, no header).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the request's URL is not absolute")]
    NotAbsolute,
    #[error("the request's host is not a valid header value")]
    InvalidHost,
    #[error("could not connect")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the new connection closed before taking the request")]
    ClosedAtOnce,
    #[error("the HTTP exchange failed")]
    Exchange(#[source] hyper::Error),
}

impl SendError {
    /// Whether the failure came before the request could be written (the connection or its
    /// TLS handshake failed).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ClosedAtOnce)
    }
}

/// How one try of a request on one connection ended.
enum Attempt {
    Answered(Response<PooledBody>),
    /// The connection did not take the request (it had closed): it was never written.
    Unsent(Request<Full<Bytes>>),
    Failed(SendError),
}

/// One origin's connections and the headers every request to it carries. Cheap to clone.
#[derive(Clone)]
pub struct RequestClient {
    connector: HttpsConnector<HttpConnector>,
    pool: Arc<Pool>,
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

    /// A client for any origin, proxy settings of the environment not consulted (the bench's
    /// lean pass-through proxy uses it; sessions go through [`Self::for_origin`]).
    pub fn new(connect_timeout: Duration, headers: &HeaderMap) -> Result<Self, SetupFailed> {
        Self::build(connect_timeout, headers)
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
        let mut all = HeaderMap::with_capacity(headers.len() + 1);
        all.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        for (name, value) in headers {
            all.append(name, value.clone());
        }
        Ok(Self {
            connector,
            pool: Arc::default(),
            headers: Arc::new(all),
        })
    }

    /// Sends `request` (an absolute URI) after adding the default headers it does not set
    /// itself, on an idle connection to its origin or a new one.
    ///
    /// A request that an idle connection could not take (the server had closed it) goes out
    /// again on another; one that may have reached the server never does.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<PooledBody>, SendError> {
        let origin = Origin::of(request.uri()).ok_or(SendError::NotAbsolute)?;
        let connect_to = request.uri().clone();
        prepare(&mut request, &self.headers)?;
        for _ in 0..MAX_STALE {
            let Some(conn) = self.pool.checkout(&origin) else {
                break;
            };
            match self.attempt(conn, request, &origin).await {
                Attempt::Answered(response) => return Ok(response),
                Attempt::Unsent(back) => request = back,
                Attempt::Failed(e) => return Err(e),
            }
        }
        let conn = self.connect(connect_to).await?;
        match self.attempt(conn, request, &origin).await {
            Attempt::Answered(response) => Ok(response),
            Attempt::Unsent(_) => Err(SendError::ClosedAtOnce),
            Attempt::Failed(e) => Err(e),
        }
    }

    /// `request` on `conn`, driven until its response head.
    async fn attempt(
        &self,
        mut conn: Conn,
        request: Request<Full<Bytes>>,
        origin: &Origin,
    ) -> Attempt {
        if !conn.ready().await {
            return Attempt::Unsent(request);
        }
        let sent = conn.sender.try_send_request(request);
        match conn.carry(sent).await {
            Ok(response) => Attempt::Answered(
                response.map(|body| PooledBody::new(body, conn, origin.clone(), self.pool.clone())),
            ),
            Err(mut failed) => match failed.take_message() {
                Some(unsent) => Attempt::Unsent(unsent),
                None => Attempt::Failed(SendError::Exchange(failed.into_error())),
            },
        }
    }

    async fn connect(&self, uri: Uri) -> Result<Conn, SendError> {
        let io = self
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(SendError::Connect)?;
        let (sender, driver) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(SendError::Exchange)?;
        Ok(Conn::new(sender, driver))
    }
}

/// `request` as it goes on the wire: the default headers it does not set itself, `Host` from its
/// URI (without a default port) and the URI in origin form, as hyper's pooled client writes it.
fn prepare(request: &mut Request<Full<Bytes>>, defaults: &HeaderMap) -> Result<(), SendError> {
    let uri = request.uri();
    let host = uri.host().ok_or(SendError::NotAbsolute)?;
    let default_port = match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTPS => 443,
        _ => 80,
    };
    let host = match (uri.port_u16(), uri.authority()) {
        // The authority as it is, when it is exactly `host:port` (no user info): this runs on
        // every request, and `format!` was most of its cost.
        (Some(port), Some(authority)) if port != default_port => {
            if authority.as_str().contains('@') {
                HeaderValue::try_from(format!("{host}:{port}"))
            } else {
                HeaderValue::from_str(authority.as_str())
            }
        }
        _ => HeaderValue::try_from(host),
    }
    .map_err(|_| SendError::InvalidHost)?;
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    let set = request.headers_mut();
    set.entry(HOST).or_insert(host);
    for (name, value) in defaults.iter() {
        if !set.contains_key(name) {
            set.insert(name, value.clone());
        }
    }
    Ok(())
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
    fn host_is_the_authority_without_user_info_or_default_port() {
        for (target, host) in [
            ("http://127.0.0.1:8080/mcp", "127.0.0.1:8080"),
            ("http://mcp.example/mcp", "mcp.example"),
            ("http://mcp.example:80/mcp", "mcp.example"),
            ("https://mcp.example:443/mcp", "mcp.example"),
            ("https://mcp.example:80/mcp", "mcp.example:80"),
            (
                "http://user:secret@mcp.example:8080/mcp?a=1",
                "mcp.example:8080",
            ),
            ("http://user@mcp.example/mcp", "mcp.example"),
            ("http://[::1]:9000/mcp", "[::1]:9000"),
        ] {
            let mut request = Request::post(uri(target))
                .body(Full::new(Bytes::new()))
                .unwrap_or_else(|e| panic!("{target}: {e}"));
            if let Err(e) = prepare(&mut request, &HeaderMap::new()) {
                panic!("{target}: {e}");
            }
            assert_eq!(
                request.headers().get(HOST).map(HeaderValue::as_bytes),
                Some(host.as_bytes()),
                "{target}"
            );
            assert!(request.uri().authority().is_none(), "{target}: origin form");
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

    /// A loopback HTTP/1.1 server that answers every request with a small JSON body, counts its
    /// connections and keeps the head of each request it read.
    struct CountingServer {
        port: u16,
        connections: Arc<std::sync::atomic::AtomicUsize>,
        heads: tokio::sync::mpsc::UnboundedReceiver<String>,
        /// With `close_after`: a permit closes one answered connection.
        close: Arc<tokio::sync::Semaphore>,
        /// With `close_after`: one message per connection closed.
        closed: tokio::sync::mpsc::UnboundedReceiver<()>,
    }

    const ANSWER: &str = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";

    impl CountingServer {
        /// `close_after`: the server closes each connection after its first answer when the
        /// test says so ([`Self::close_one`]), without saying so itself, as a server whose
        /// keep-alive ran out.
        async fn start(close_after: bool) -> Self {
            use std::sync::atomic::Ordering;
            use tokio::io::{AsyncReadExt, AsyncWriteExt};

            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("address").port();
            let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (heads_tx, heads) = tokio::sync::mpsc::unbounded_channel();
            let counted = connections.clone();
            let close = Arc::new(tokio::sync::Semaphore::new(0));
            let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
            let permits = close.clone();
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let heads_tx = heads_tx.clone();
                    let (permits, closed_tx) = (permits.clone(), closed_tx.clone());
                    tokio::spawn(async move {
                        let mut buffer = Vec::new();
                        let mut chunk = [0u8; 4096];
                        for _ in 0..100 {
                            let Some(end) = find(&buffer, b"\r\n\r\n") else {
                                match socket.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                                }
                                continue;
                            };
                            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                            let length = head
                                .lines()
                                .find_map(|line| {
                                    let (name, value) = line.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            while buffer.len() < end + 4 + length {
                                match socket.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                                }
                            }
                            buffer.drain(..end + 4 + length);
                            let _ = heads_tx.send(head);
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                                ANSWER.len()
                            );
                            if socket.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                            if close_after {
                                if let Ok(permit) = permits.acquire().await {
                                    permit.forget();
                                }
                                drop(socket);
                                let _ = closed_tx.send(());
                                return;
                            }
                        }
                    });
                }
            });
            Self {
                port,
                connections,
                heads,
                close,
                closed,
            }
        }

        /// Has the server close one answered connection, and waits until it has.
        async fn close_one(&mut self) {
            self.close.add_permits(1);
            tokio::time::timeout(Duration::from_secs(10), self.closed.recv())
                .await
                .expect("the server closed a connection")
                .expect("the server runs");
        }

        fn connections(&self) -> usize {
            self.connections.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}/mcp?tenant=a", self.port)
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    fn post(url: &str) -> Request<Full<Bytes>> {
        Request::post(url)
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request")
    }

    /// Sends a request and reads its body to the end.
    async fn exchange(client: &RequestClient, url: &str) -> Bytes {
        use http_body_util::BodyExt;
        let response = tokio::time::timeout(Duration::from_secs(10), client.send(post(url)))
            .await
            .expect("no hang")
            .expect("a response");
        assert_eq!(response.status(), http::StatusCode::OK);
        response
            .into_body()
            .collect()
            .await
            .expect("the body")
            .to_bytes()
    }

    fn origin_of(url: &str) -> Origin {
        Origin::of(&uri(url)).expect("an absolute URL")
    }

    #[tokio::test]
    async fn requests_go_out_in_origin_form_with_host_and_share_one_connection() {
        let mut server = CountingServer::start(false).await;
        let client =
            RequestClient::build(Duration::from_secs(5), &HeaderMap::new()).expect("client");
        for _ in 0..3 {
            assert_eq!(exchange(&client, &server.url()).await, ANSWER.as_bytes());
            assert_eq!(client.pool.idle(&origin_of(&server.url())), 1);
        }
        assert_eq!(server.connections(), 1, "one connection, reused");
        let head = server.heads.recv().await.expect("a request");
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("POST /mcp?tenant=a HTTP/1.1"));
        let host = format!("host: 127.0.0.1:{}", server.port);
        assert!(lines.any(|line| line.eq_ignore_ascii_case(&host)), "{head}");
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced() {
        let mut server = CountingServer::start(true).await;
        let client =
            RequestClient::build(Duration::from_secs(5), &HeaderMap::new()).expect("client");
        let origin = origin_of(&server.url());
        for round in 1..=3 {
            assert_eq!(exchange(&client, &server.url()).await, ANSWER.as_bytes());
            assert_eq!(server.connections(), round);
            // The connection is back in the pool when the server closes it: the next request
            // finds it closed and must go out again on a new one.
            assert_eq!(client.pool.idle(&origin), 1);
            server.close_one().await;
        }
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_takes_its_connection_along() {
        let server = CountingServer::start(false).await;
        let client =
            RequestClient::build(Duration::from_secs(5), &HeaderMap::new()).expect("client");
        let response = client.send(post(&server.url())).await.expect("a response");
        drop(response);
        assert_eq!(client.pool.idle(&origin_of(&server.url())), 0);
        assert_eq!(exchange(&client, &server.url()).await, ANSWER.as_bytes());
        assert_eq!(server.connections(), 2);
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let server = CountingServer::start(false).await;
        let client =
            RequestClient::build(Duration::from_secs(5), &HeaderMap::new()).expect("client");
        exchange(&client, &server.url()).await;
        let origin = origin_of(&server.url());
        assert_eq!(client.pool.idle(&origin), 1);
        tokio::time::pause();
        tokio::time::advance(pool::IDLE_TIMEOUT - Duration::from_secs(1)).await;
        client.pool.expire();
        assert_eq!(client.pool.idle(&origin), 1, "not yet");
        tokio::time::advance(Duration::from_secs(1)).await;
        client.pool.expire();
        assert_eq!(client.pool.idle(&origin), 0);
        tokio::time::resume();
        exchange(&client, &server.url()).await;
        assert_eq!(server.connections(), 2);
    }
}
