use std::time::Duration;

use tether_core::{Change, ConnectionState, CoreConfig, ListKind};

use crate::support::*;

/// A reload or catalog change: an unchanged server keeps its session, a changed one is closed
/// and connects anew with its new settings, a removed one is gone, an added one is callable.
#[tokio::test(start_paused = true)]
async fn replacing_the_servers_closes_only_what_changed_and_adds_the_new() {
    let h = harness(
        CoreConfig::default(),
        vec![
            http_server("keep", "https://keep.example/mcp"),
            http_server("move", "https://old.example/mcp"),
            http_server("drop", "https://drop.example/mcp"),
        ],
    );
    h.tokens.valid_for_everyone();
    let u = user("u");
    let presence = h.manager.agent_present(&u);
    let mut changes = h.manager.changes();
    for name in ["keep", "move", "drop"] {
        assert!(h.manager.reconnect_server(&u, &server(name)).await);
    }
    assert_eq!(h.connector.open_sessions(), 3);

    let replaced = h
        .manager
        .replace_servers(vec![
            http_server("keep", "https://keep.example/mcp"),
            http_server("move", "https://new.example/mcp"),
            http_server("add", "https://add.example/mcp"),
        ])
        .await
        .expect("valid servers");
    assert_eq!(replaced.added, [server("add")]);
    assert_eq!(replaced.changed, [server("move")]);
    assert_eq!(replaced.removed, [server("drop")]);
    assert_eq!(
        h.connector.open_sessions(),
        1,
        "the changed and the removed server's sessions were closed"
    );
    let names: Vec<_> = h.manager.servers().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["keep", "move", "add"], "in the new order");
    assert_eq!(
        h.manager.state(&u, &server("move")).await,
        ConnectionState::Disconnected
    );
    assert!(
        h.manager
            .list_tools(&u)
            .await
            .iter()
            .all(|t| t.server != server("drop")),
        "the removed server's tools are not listed"
    );
    let connects = h.connector.calls().len();

    // The changed server connects again on its next call, to its new address.
    let r = h
        .manager
        .call_tool(&u, &server("move"), "search", None)
        .await
        .expect("known");
    assert!(!r.is_error, "{}", r.text());
    let r = h
        .manager
        .call_tool(&u, &server("add"), "search", None)
        .await
        .expect("known");
    assert!(!r.is_error, "{}", r.text());
    assert_eq!(h.connector.calls().len(), connects + 2);
    let r = h
        .manager
        .call_tool(&u, &server("keep"), "search", None)
        .await
        .expect("known");
    assert!(!r.is_error, "{}", r.text());
    assert_eq!(
        h.connector.calls().len(),
        connects + 2,
        "the unchanged server kept its session"
    );
    assert!(
        h.manager
            .call_tool(&u, &server("drop"), "search", None)
            .await
            .is_err(),
        "the removed server is unknown"
    );

    // The user's open agent session hears that its tools changed, once per touched server.
    let mut heard = Vec::new();
    while let Ok(change) = changes.try_recv() {
        if change.change == Change::List(ListKind::Tools) {
            heard.push(change.server.to_string());
        }
    }
    heard.sort();
    assert_eq!(heard, ["add", "drop", "move"]);
    drop(presence);

    // A list that names a server twice is refused and changes nothing.
    assert!(
        h.manager
            .replace_servers(vec![
                http_server("a", "https://a.example/mcp"),
                http_server("a", "https://b.example/mcp"),
            ])
            .await
            .is_err()
    );
    assert_eq!(h.manager.servers().count(), 3);
}

/// A user removing a server: the manager forgets that user's pair (session closed, no tools
/// listed, not even as stubs, none counted in the status), tells the user's agent, and leaves
/// other users' pairs alone; the server connects again on the user's next call.
#[tokio::test(start_paused = true)]
async fn forgetting_a_pair_closes_its_session_and_drops_its_tools() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://s.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    let (u, v) = (user("u"), user("v"));
    for who in [&u, &v] {
        assert!(h.manager.reconnect_server(who, &server("s")).await);
    }
    assert!(!h.manager.list_tools(&u).await.is_empty());
    let presence = h.manager.agent_present(&u);
    let mut changes = h.manager.changes();

    h.manager.forget(&u, &server("s")).await.expect("forgotten");
    assert_eq!(
        h.connector.open_sessions(),
        1,
        "only u's session was closed"
    );
    assert!(
        h.manager.list_tools(&u).await.is_empty(),
        "no tools, not even stubs from the cached list"
    );
    let states = h.manager.server_states(&u).await;
    assert_eq!(states[0].state, ConnectionState::Disconnected);
    assert_eq!(states[0].tools, 0);
    assert!(!h.manager.list_tools(&v).await.is_empty(), "v keeps s");
    let mut heard = Vec::new();
    while let Ok(change) = changes.try_recv() {
        heard.push((change.user.to_string(), change.change));
    }
    assert_eq!(heard, [("u".to_owned(), Change::List(ListKind::Tools))]);
    drop(presence);

    let r = h
        .manager
        .call_tool(&u, &server("s"), "search", None)
        .await
        .expect("known");
    assert!(!r.is_error, "{}", r.text());
    assert_eq!(h.connector.open_sessions(), 2, "connected again on demand");
}

/// A pair forgotten while a connection attempt for it is under way: the attempt's session is
/// closed when it arrives, not put back as the pair's, and its tool list is neither listed nor
/// cached.
#[tokio::test(start_paused = true)]
async fn a_pair_forgotten_while_connecting_stays_forgotten() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://s.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    h.connector.set_latency(Duration::from_secs(2));
    let u = user("u");
    let attempt = tokio::spawn({
        let (manager, u) = (h.manager.clone(), u.clone());
        async move { manager.reconnect_server(&u, &server("s")).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!h.connector.calls().is_empty(), "the attempt is connecting");

    h.manager.forget(&u, &server("s")).await.expect("forgotten");
    let connected = attempt.await.expect("the attempt ends");
    assert!(!connected, "the forgotten pair was not connected");
    assert_eq!(h.connector.open_sessions(), 0, "its session was closed");
    assert!(
        h.manager.list_tools(&u).await.is_empty(),
        "no tools, no stubs"
    );
    assert_eq!(
        h.manager.state(&u, &server("s")).await,
        ConnectionState::Disconnected
    );

    // The next attempt connects as usual.
    assert!(h.manager.reconnect_server(&u, &server("s")).await);
    assert_eq!(h.connector.open_sessions(), 1);
}
