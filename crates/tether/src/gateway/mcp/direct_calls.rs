//! Calls answered on the direct path that are still running, so that the agent's
//! `notifications/cancelled` (a POST of its own, which rmcp would look up among its own
//! requests and not find) reaches them: the call is dropped, and with it the upstream request,
//! which the upstream session cancels in turn.

use std::sync::{Arc, Mutex, PoisonError};
use tether_core::FastMap;

use rmcp::model::RequestId;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A session id and a request id (`7` and `"7"` are different ids).
type Key = (String, RequestId);

#[derive(Debug, Default)]
pub struct DirectCalls {
    running: Mutex<FastMap<Key, CancellationToken>>,
}

/// Removes the call's entry when it ends.
pub(crate) struct Running {
    entry: Option<(Arc<DirectCalls>, Key)>,
    pub(crate) cancelled: CancellationToken,
}

impl Running {
    /// A call outside any session (2026-07-28): no cancel notification can name it, its agent
    /// cancels by closing the request, which drops the call.
    pub(crate) fn detached() -> Self {
        Self {
            entry: None,
            cancelled: CancellationToken::new(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some((calls, key)) = &self.entry {
            calls.lock().remove(key);
        }
    }
}

impl DirectCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<Key, CancellationToken>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn begin(self: &Arc<Self>, session: &str, id: &RequestId) -> Running {
        let key = (session.to_owned(), id.clone());
        let cancelled = CancellationToken::new();
        self.lock().insert(key.clone(), cancelled.clone());
        Running {
            entry: Some((self.clone(), key)),
            cancelled,
        }
    }

    /// Cancels the session's running direct call `id`, if there is one.
    pub(crate) fn cancel(&self, session: &str, id: &Value) -> bool {
        // An id that is neither an integer nor a string names no call.
        let Ok(id) = RequestId::deserialize(id) else {
            return false;
        };
        let key = (session.to_owned(), id);
        match self.lock().get(&key) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// The `requestId` of a `notifications/cancelled` body; `None` for anything else. Looked at
/// only when the body names the method, so calls do not pay for a second parse.
pub(crate) fn cancelled_request(body: &[u8]) -> Option<Value> {
    const METHOD: &[u8] = b"notifications/cancelled";
    if !body.windows(METHOD.len()).any(|w| w == METHOD) {
        return None;
    }
    let message: Value = serde_json::from_slice(body).ok()?;
    if message.get("method")?.as_str()? != "notifications/cancelled" || message.get("id").is_some()
    {
        return None;
    }
    message.get("params")?.get("requestId").cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_reaches_only_the_call_of_that_session_and_id() {
        let calls = Arc::new(DirectCalls::default());
        let running = calls.begin("s1", &RequestId::Number(7));
        assert!(!calls.cancel("s2", &serde_json::json!(7)));
        assert!(!calls.cancel("s1", &serde_json::json!("7")));
        for not_an_id in [
            serde_json::json!(7.5),
            serde_json::json!({"id": 7}),
            Value::Null,
        ] {
            assert!(!calls.cancel("s1", &not_an_id), "{not_an_id}");
        }
        assert!(!running.cancelled.is_cancelled());
        assert!(calls.cancel("s1", &serde_json::json!(7)));
        assert!(running.cancelled.is_cancelled());
        drop(running);
        assert!(
            !calls.cancel("s1", &serde_json::json!(7)),
            "forgotten when it ends"
        );
    }

    #[test]
    fn only_cancel_notifications_are_read() {
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#;
        assert_eq!(cancelled_request(cancel), Some(serde_json::json!(3)));
        for other in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notifications/cancelled"}}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#,
            br#"not json notifications/cancelled"#,
        ] {
            assert_eq!(cancelled_request(other), None);
        }
    }
}
