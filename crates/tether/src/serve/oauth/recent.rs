//! [`Recent`]: what this replica answered lately, so that a repeated request (a browser reload, a
//! host retrying) gets the same answer instead of "link not valid". Bounded in time and count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Recent<V> {
    entries: Mutex<HashMap<String, (V, Instant)>>,
    ttl: Duration,
    max: usize,
}

impl<V: Clone> Recent<V> {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max,
        }
    }

    pub fn insert(&self, key: String, value: V) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        if entries.len() >= self.max {
            // Under a flood, forgetting some answers only costs those users a "link expired".
            entries.clear();
        }
        entries.insert(key, (value, Instant::now()));
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(value, _)| value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_map_stays_bounded() {
        let recent = Recent::new(Duration::from_millis(30), 3);
        recent.insert("a".into(), 1);
        assert_eq!(recent.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(recent.get("a"), None, "expired");
        for (i, key) in ["b", "c", "d", "e"].into_iter().enumerate() {
            recent.insert(key.into(), i);
        }
        let kept = ["b", "c", "d", "e"]
            .iter()
            .filter(|k| recent.get(k).is_some())
            .count();
        assert!(kept <= 3, "at most max entries: {kept}");
        assert_eq!(recent.get("e"), Some(3), "the newest is kept");
    }
}
