//! The HTTP client every OAuth request goes through, handed to rmcp as its `OAuthHttpClient`.
//!
//! rmcp's own filtered client (`MetadataAddressResolver`) is private to rmcp and can only be
//! used as a whole, so Tether supplies its own: the same idea (filter the addresses names resolve
//! to) plus Tether's stricter URL policy on every request and redirect hop, bounded bodies,
//! redirects and times, and a record of how the last request ended so that rmcp's string errors
//! can be sorted into transient and permanent failures.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use oauth2::{HttpRequest, HttpResponse};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rmcp::transport::auth::{
    OAuthHttpClient, OAuthHttpClientError, OAuthHttpClientFuture, OAuthHttpRedirectPolicy,
    OAuthHttpRequest,
};
use tether_core::redact::redact;
use tracing::{debug, warn};
use url::Url;

use crate::ssrf::{NetworkPolicy, SsrfReason};

/// Largest OAuth response body read (metadata, registration and token responses are small).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Redirects followed for requests that allow them (rmcp follows discovery redirects itself,
/// one request per hop, each of which comes through here).
pub const MAX_REDIRECTS: usize = 5;

/// Called with the method and URL (without query) of every request actually sent.
pub type RequestObserver = Arc<dyn Fn(&str, &Url) + Send + Sync>;

/// Why a request through [`GuardedHttpClient`] failed. Inspected by [`crate::classify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpFailure {
    #[error("{0}")]
    Refused(SsrfReason),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("response body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// How the last request of one operation ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub failure: Option<HttpFailure>,
    pub status: Option<u16>,
}

/// reqwest clients shared by all operations: one allowing loopback addresses (for loopback MCP
/// servers), one not. The address policy must live in the resolver because reqwest resolves
/// names after our URL check, and a public name may resolve to an internal address.
#[derive(Clone)]
pub struct HttpClients {
    loopback: reqwest::Client,
    public: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    observer: Option<RequestObserver>,
}

impl fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClients")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl HttpClients {
    pub fn new(
        policy: NetworkPolicy,
        timeout: Duration,
        observer: Option<RequestObserver>,
    ) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let build = |resource_is_loopback| {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would resolve the target itself, past the resolver's filter.
                .no_proxy()
                .dns_resolver(Arc::new(FilteringResolver {
                    policy: policy.clone(),
                    resource_is_loopback,
                }))
                .build()
        };
        Ok(Self {
            loopback: build(true)?,
            public: build(false)?,
            policy,
            observer,
        })
    }

    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    /// A client for one operation on behalf of the MCP server at `resource`.
    pub fn for_resource(&self, resource: &Url) -> GuardedHttpClient {
        let loopback = crate::ssrf::is_loopback_url(resource);
        GuardedHttpClient {
            client: if loopback {
                self.loopback.clone()
            } else {
                self.public.clone()
            },
            resource: resource.clone(),
            resource_indicator: None,
            policy: self.policy.clone(),
            observer: self.observer.clone(),
            outcome: Arc::new(Mutex::new(Outcome::default())),
        }
    }
}

struct FilteringResolver {
    policy: Arc<NetworkPolicy>,
    resource_is_loopback: bool,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let resource_is_loopback = self.resource_is_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.exempts_host(&host) {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| {
                    policy
                        .check_address(addr.ip(), resource_is_loopback)
                        .is_ok()
                })
                .collect();
            if allowed.is_empty() {
                warn!(host, "no resolved address of an OAuth host is allowed");
                return Err(
                    Box::new(HttpFailure::Refused(SsrfReason::ResolvesInternally(host)))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// One operation's view of the network: checks, sends, records.
#[derive(Clone)]
pub struct GuardedHttpClient {
    client: reqwest::Client,
    resource: Url,
    /// The RFC 8707 `resource` as the resource's metadata published it (see
    /// [`GuardedHttpClient::with_resource_indicator`]).
    resource_indicator: Option<String>,
    policy: Arc<NetworkPolicy>,
    observer: Option<RequestObserver>,
    outcome: Arc<Mutex<Outcome>>,
}

impl fmt::Debug for GuardedHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedHttpClient")
            .field("resource", &self.resource.as_str())
            .finish_non_exhaustive()
    }
}

fn without_query(url: &Url) -> Url {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown
}

impl GuardedHttpClient {
    /// Token requests carry `resource` exactly as published. rmcp sends the URL it was built
    /// with, and a URL parser turns a pathless identifier (`https://mcp.example.com`) into
    /// `https://mcp.example.com/`, which a strict authorization server refuses (RFC 8707
    /// compares strings). Only that normalised spelling is put back; any other value stays.
    pub fn with_resource_indicator(mut self, published: impl Into<String>) -> Self {
        self.resource_indicator = Some(published.into());
        self
    }

    /// How the most recent request ended.
    pub fn outcome(&self) -> Outcome {
        self.outcome
            .lock()
            .map(|outcome| outcome.clone())
            .unwrap_or_default()
    }

    /// The URL policy alone, for URLs checked before they are stored or handed out.
    pub fn check(&self, url: &Url) -> Result<(), SsrfReason> {
        self.policy.check_url(url, &self.resource)
    }

    fn record(&self, outcome: Outcome) {
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = outcome;
        }
    }

    fn fail(&self, failure: HttpFailure) -> OAuthHttpClientError {
        self.record(Outcome {
            failure: Some(failure.clone()),
            status: None,
        });
        Box::new(failure)
    }

    async fn send(&self, request: OAuthHttpRequest) -> Result<HttpResponse, OAuthHttpClientError> {
        self.send_request(request.request, request.redirect_policy)
            .await
    }

    /// A request of Tether's own (not one rmcp built), through the same checks: the address
    /// policy on every hop, redirects by `redirect_policy`, the outcome recorded.
    pub(crate) async fn send_request(
        &self,
        mut request: HttpRequest,
        redirect_policy: OAuthHttpRedirectPolicy,
    ) -> Result<HttpResponse, OAuthHttpClientError> {
        if let Some(published) = &self.resource_indicator {
            restore_resource_indicator(&mut request, published);
        }
        let mut hops = 0;
        loop {
            let url = Url::parse(&request.uri().to_string())
                .map_err(|e| self.fail(HttpFailure::Invalid(e.to_string())))?;
            if let Err(reason) = self.check(&url) {
                warn!(url = %without_query(&url), %reason, "refused OAuth request");
                return Err(self.fail(HttpFailure::Refused(reason)));
            }
            let response = self.send_once(&url, clone_request(&request)).await?;
            let status = response.status();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let follow =
                redirect_policy == OAuthHttpRedirectPolicy::Follow && status.is_redirection();
            let (Some(location), true) = (location, follow) else {
                self.record(Outcome {
                    failure: None,
                    status: Some(status.as_u16()),
                });
                return Ok(response);
            };
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(self.fail(HttpFailure::Refused(SsrfReason::TooManyRedirects(
                    MAX_REDIRECTS,
                ))));
            }
            let next = url
                .join(&location)
                .map_err(|e| self.fail(HttpFailure::Invalid(e.to_string())))?;
            // 307/308 repeat the request; the others turn it into a GET without body.
            let keep_method = matches!(status.as_u16(), 307 | 308);
            let mut builder = oauth2::http::Request::builder().uri(next.as_str());
            if keep_method {
                builder = builder.method(request.method().clone());
                for (name, value) in request.headers() {
                    builder = builder.header(name, value);
                }
            } else {
                builder = builder.method(oauth2::http::Method::GET);
            }
            let body = if keep_method {
                request.body().clone()
            } else {
                Vec::new()
            };
            request = builder
                .body(body)
                .map_err(|e| self.fail(HttpFailure::Invalid(e.to_string())))?;
        }
    }

    async fn send_once(
        &self,
        url: &Url,
        request: HttpRequest,
    ) -> Result<HttpResponse, OAuthHttpClientError> {
        let method = request.method().as_str().to_owned();
        let request = reqwest::Request::try_from(request)
            .map_err(|e| self.fail(HttpFailure::Invalid(redact(&e.to_string()))))?;
        if let Some(observer) = &self.observer {
            observer(&method, &without_query(url));
        }
        debug!(%method, url = %without_query(url), "OAuth request");
        let response = self.client.execute(request).await.map_err(|e| {
            // The resolver's refusal arrives wrapped in a connect error.
            if let Some(failure) = find_failure(&e) {
                return self.fail(failure);
            }
            self.fail(HttpFailure::Transport(redact(&error_chain(&e))))
        })?;
        let mut builder = oauth2::http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| self.fail(HttpFailure::Transport(redact(&error_chain(&e)))))?;
            if chunk.len() > MAX_BODY_BYTES.saturating_sub(body.len()) {
                return Err(self.fail(HttpFailure::BodyTooLarge));
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|e| self.fail(HttpFailure::Invalid(e.to_string())))
    }
}

/// Rewrites a form body's `resource` from its URL-normalised spelling back to `published`.
fn restore_resource_indicator(request: &mut HttpRequest, published: &str) {
    let is_form = request
        .headers()
        .get(oauth2::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let Ok(normalised) = Url::parse(published) else {
        return;
    };
    if !is_form || normalised.as_str() == published {
        return;
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(request.body())
        .into_owned()
        .collect();
    if !pairs
        .iter()
        .any(|(key, value)| key == "resource" && value == normalised.as_str())
    {
        return;
    }
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in &pairs {
        let value = if key == "resource" && value == normalised.as_str() {
            published
        } else {
            value
        };
        body.append_pair(key, value);
    }
    *request.body_mut() = body.finish().into_bytes();
    // The length changed; the client computes it again from the body.
    request
        .headers_mut()
        .remove(oauth2::http::header::CONTENT_LENGTH);
}

fn clone_request(request: &HttpRequest) -> HttpRequest {
    let mut builder = oauth2::http::Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    builder
        .body(request.body().clone())
        .unwrap_or_else(|_| oauth2::http::Request::new(request.body().clone()))
}

fn find_failure(error: &(dyn std::error::Error + 'static)) -> Option<HttpFailure> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(failure) = e.downcast_ref::<HttpFailure>() {
            return Some(failure.clone());
        }
        current = e.source();
    }
    None
}

/// The error and its causes on one line ("error sending request: connection refused").
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}

pub(crate) fn find_http_failure(error: &(dyn std::error::Error + 'static)) -> Option<HttpFailure> {
    find_failure(error)
}

impl OAuthHttpClient for GuardedHttpClient {
    fn execute(&self, request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        Box::pin(self.send(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_request(body: &str) -> HttpRequest {
        oauth2::http::Request::builder()
            .method(oauth2::http::Method::POST)
            .uri("http://127.0.0.1:1/token")
            .header(
                oauth2::http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.as_bytes().to_vec())
            .expect("request")
    }

    fn resource_of(request: &HttpRequest) -> Vec<String> {
        url::form_urlencoded::parse(request.body())
            .filter(|(k, _)| k == "resource")
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    #[test]
    fn the_published_resource_replaces_only_its_normalised_spelling() {
        let mut normalised =
            token_request("grant_type=refresh_token&resource=https%3A%2F%2Fmcp.example.com%2F");
        restore_resource_indicator(&mut normalised, "https://mcp.example.com");
        assert_eq!(resource_of(&normalised), ["https://mcp.example.com"]);
        assert!(
            url::form_urlencoded::parse(normalised.body())
                .any(|(k, v)| k == "grant_type" && v == "refresh_token")
        );

        let mut other = token_request("resource=https%3A%2F%2Fother.example.com%2F");
        restore_resource_indicator(&mut other, "https://mcp.example.com");
        assert_eq!(resource_of(&other), ["https://other.example.com/"]);

        let mut with_path = token_request("resource=https%3A%2F%2Fmcp.example.com%2Fmcp");
        restore_resource_indicator(&mut with_path, "https://mcp.example.com/mcp");
        assert_eq!(resource_of(&with_path), ["https://mcp.example.com/mcp"]);
    }
}
