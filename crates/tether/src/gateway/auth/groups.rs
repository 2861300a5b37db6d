//! The groups (or roles) a host token gives its user: the claim named by
//! `gateway.host_auth.groups_claim`, an array of strings or one string of space-separated
//! names. They decide which servers with a `groups` list the user may see and use.

use std::sync::Arc;

use serde_json::Value;

/// Groups read from one token at most (a host's claim is not a place to store data).
const MAX_GROUPS: usize = 256;
/// Longer names are not groups of this deployment.
const MAX_GROUP_LEN: usize = 256;

/// A user's groups, from their current token. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserGroups(Arc<[String]>);

impl UserGroups {
    pub fn new(groups: impl IntoIterator<Item = String>) -> Self {
        Self(
            groups
                .into_iter()
                .filter(|g| !g.is_empty() && g.len() <= MAX_GROUP_LEN)
                .take(MAX_GROUPS)
                .collect(),
        )
    }

    /// The groups of a claim's value; anything but strings gives none.
    pub fn from_claim(value: Option<&Value>) -> Self {
        match value {
            Some(Value::Array(items)) => {
                Self::new(items.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            Some(Value::String(names)) => Self::new(names.split_whitespace().map(str::to_owned)),
            _ => Self::default(),
        }
    }

    pub fn contains(&self, group: &str) -> bool {
        self.0.iter().any(|g| g == group)
    }

    /// Whether a member of these groups may use a server open to `allowed` (empty: everyone).
    pub fn may_use(&self, allowed: &[String]) -> bool {
        allowed.is_empty() || allowed.iter().any(|g| self.contains(g))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_claim_is_an_array_or_a_space_separated_string() {
        let from = |v: Value| UserGroups::from_claim(Some(&v));
        assert!(from(json!(["eng", "ops"])).contains("ops"));
        assert!(from(json!("eng ops")).contains("eng"));
        assert!(!from(json!({"eng": true})).contains("eng"));
        assert!(!from(json!([1, 2])).contains("1"));
        assert_eq!(UserGroups::from_claim(None), UserGroups::default());
    }

    #[test]
    fn a_server_without_groups_is_for_everyone() {
        let eng = UserGroups::new(["eng".to_owned()]);
        assert!(eng.may_use(&[]));
        assert!(eng.may_use(&["fin".to_owned(), "eng".to_owned()]));
        assert!(!eng.may_use(&["fin".to_owned()]));
        assert!(!UserGroups::default().may_use(&["eng".to_owned()]));
    }
}
