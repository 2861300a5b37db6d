//! Operator-given headers (`tether connect --header`) and Tether's `User-Agent` on every HTTP
//! request, whichever client sends it (rmcp's `initialize`, the lean session's own requests).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use tether_core::{ConnectError, Connector};
use tether_mcp::{McpConfigError, McpConnector};
use tokio_util::sync::CancellationToken;

use support::server::{mcp_router, serve};
use support::tools::PagedTools;
use support::{http, request};

#[tokio::test]
async fn static_headers_reach_every_request_and_stay_out_of_debug() {
    let missing = Arc::new(AtomicUsize::new(0));
    let counted = missing.clone();
    let ct = CancellationToken::new();
    let router = mcp_router(PagedTools, &ct).layer(middleware::from_fn(
        move |request: Request<Body>, next: Next| {
            let counted = counted.clone();
            async move {
                let headers = request.headers();
                let ok = headers.get("x-api-key").is_some_and(|v| v == "key-123")
                    && headers
                        .get("user-agent")
                        .is_some_and(|v| v == concat!("tether/", env!("CARGO_PKG_VERSION")));
                if ok {
                    next.run(request).await
                } else {
                    counted.fetch_add(1, Ordering::SeqCst);
                    StatusCode::FORBIDDEN.into_response()
                }
            }
        },
    ));
    let server = serve(router, ct).await;

    let without = McpConnector::default()
        .connect(request(http(&server.url)))
        .await;
    assert!(
        matches!(without, Err(ConnectError::NeedsAuthorization { .. })),
        "{without:?}"
    );
    let refused_before = missing.load(Ordering::SeqCst);

    let connector = McpConnector::default()
        .with_headers([("X-Api-Key", "key-123")])
        .expect("valid header");
    assert!(!format!("{connector:?}").contains("key-123"));
    let session = connector
        .connect(request(http(&server.url)))
        .await
        .expect("connects with the header");
    assert_eq!(session.list_tools().await.expect("lists").len(), 5);
    assert_eq!(
        missing.load(Ordering::SeqCst),
        refused_before,
        "no request went without it"
    );
    session.close().await;
}

#[test]
fn malformed_headers_are_refused() {
    for (name, value) in [("bad name", "v"), ("X-Ok", "line\nbreak"), ("", "v")] {
        let err = McpConnector::default()
            .with_headers([(name, value)])
            .expect_err("refused");
        assert!(matches!(err, McpConfigError::BadHeader(_)));
    }
}
