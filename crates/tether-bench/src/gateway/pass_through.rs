//! The floor of any HTTP gateway on this machine: a reverse proxy that forwards each request
//! to the upstream and streams the answer back, and does nothing else (no authentication, no
//! JSON, no MCP sessions of its own). hyper's HTTP/1.1 server and pooled client, as lean as a
//! proxy on this stack gets; the calls part runs it beside Tether so that Tether's figures can
//! be read against what the extra hop costs by itself.
//!
//! It runs as its own process (`bench pass-through --upstream URL`, hidden), like the gateway,
//! so that its CPU time is its own. It prints `{"url": …, "pid": …}` once it listens and stops
//! when its stdin closes.
//!
//! `--lean` forwards on Tether's own upstream client instead (`tether_mcp::RequestClient`:
//! each connection driven by the request using it, no connection task), reading the request's
//! body before it forwards it. hyper's pooled client hands the end of an event stream to the
//! server a wake-up after its last event, so the server writes them apart and the bench's
//! client, which stops reading at the answer, drops a connection with a body still in flight:
//! the default proxy opens a new downstream connection for about every other call. The lean
//! one does not, and is the floor that Tether's own technique sets.

use std::convert::Infallible;
use std::path::Path;

use anyhow::{Context, ensure};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tether_mcp::RequestClient;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::Command;

use super::procs::{Ready, ReadyChild};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The upstream's MCP URL (`http://127.0.0.1:PORT/mcp`); requests keep their own path.
    #[arg(long)]
    upstream: String,
    /// Forward on Tether's own upstream client (connections driven by their requests).
    #[arg(long)]
    lean: bool,
}

type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// How requests reach the upstream.
#[derive(Clone)]
enum Forwarder {
    Pooled(Client<HttpConnector, Incoming>),
    Lean(RequestClient),
}

/// The proxy process: serves until stdin closes.
pub async fn serve(args: Args) -> anyhow::Result<()> {
    let upstream: Uri = args.upstream.parse().context("--upstream is not a URI")?;
    let authority = upstream
        .authority()
        .cloned()
        .context("--upstream has no authority")?;
    ensure!(
        upstream.scheme() == Some(&Scheme::HTTP),
        "--upstream must be http://"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let client = if args.lean {
        Forwarder::Lean(
            RequestClient::new(std::time::Duration::from_secs(10), &http::HeaderMap::new())
                .context("the lean client")?,
        )
    } else {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Forwarder::Pooled(Client::builder(TokioExecutor::new()).build(connector))
    };
    let ready = Ready {
        url: format!("http://{}{}", listener.local_addr()?, upstream.path()),
        pid: std::process::id(),
    };
    println!("{}", serde_json::to_string(&ready)?);
    let accept = async {
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let client = client.clone();
            let authority = authority.clone();
            tokio::spawn(async move {
                let service =
                    service_fn(move |request| forward(client.clone(), authority.clone(), request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
        #[expect(unreachable_code, reason = "the loop only ends with an error")]
        anyhow::Ok(())
    };
    let stdin_closed = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    tokio::select! {
        result = accept => result,
        () = stdin_closed => Ok(()),
    }
}

/// The request as it came, to the upstream's authority; the answer as it comes.
async fn forward(
    client: Forwarder,
    authority: Authority,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let mut uri = parts.uri.into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority.clone());
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    parts.uri = match Uri::from_parts(uri) {
        Ok(uri) => uri,
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    if let Ok(host) = authority.as_str().parse() {
        parts.headers.insert(header::HOST, host);
    }
    match client {
        Forwarder::Pooled(client) => match client.request(Request::from_parts(parts, body)).await {
            Ok(response) => Ok(response.map(BodyExt::boxed_unsync)),
            Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
        },
        Forwarder::Lean(client) => {
            let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
                return Ok(status(StatusCode::BAD_REQUEST));
            };
            match client
                .send(Request::from_parts(parts, Full::new(body)))
                .await
            {
                Ok(response) => Ok(response.map(BodyExt::boxed_unsync)),
                Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
            }
        }
    }
}

fn status(code: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response
}

/// The proxy as a child process of the benchmark (this same executable). Killed on drop.
#[derive(Debug)]
pub struct PassThrough {
    /// The upstream's MCP path, at the proxy.
    pub url: String,
    pub pid: u32,
    process: ReadyChild,
}

impl PassThrough {
    /// `lean`: forwarding on Tether's own upstream client (see the module's text).
    pub async fn start(bench: &Path, upstream_url: &str, lean: bool) -> anyhow::Result<Self> {
        let mut command = Command::new(bench);
        command.args(["pass-through", "--upstream", upstream_url]);
        if lean {
            command.arg("--lean");
        }
        let (process, ready) = ReadyChild::spawn(command, "the pass-through proxy").await?;
        Ok(Self {
            url: ready.url,
            pid: ready.pid,
            process,
        })
    }

    /// Closes its stdin (it stops); kills it if it lingers.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}
