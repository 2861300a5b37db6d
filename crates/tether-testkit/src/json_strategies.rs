//! proptest strategies for the JSON that outside parties send (JSON-RPC bodies, OAuth metadata,
//! token responses): values of any shape, members that are absent, plausible or anything, and
//! bodies that are cut short or not JSON at all.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, nested a few levels.
pub fn any_json() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    scalar.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z_/]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object member: absent, one of the `good` values (most often), or anything.
pub fn member(good: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        4 => prop::sample::select(good).prop_map(Some),
        1 => any_json().prop_map(Some),
    ]
}

/// The object of the present members.
pub fn object(members: Vec<(&str, Option<Value>)>) -> Value {
    let mut object = Map::new();
    for (key, value) in members {
        if let Some(value) = value {
            object.insert(key.to_owned(), value);
        }
    }
    Value::Object(object)
}

/// `message` as a body: whole (most often), in a batch, cut short, or random bytes.
pub fn body_of<S: Strategy<Value = Value>>(message: fn() -> S) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        5 => message().prop_map(|m| m.to_string().into_bytes()),
        2 => prop::collection::vec(message(), 0..4)
            .prop_map(|batch| Value::from(batch).to_string().into_bytes()),
        1 => (message(), any::<prop::sample::Index>()).prop_map(|(m, cut)| {
            let text = m.to_string().into_bytes();
            let at = cut.index(text.len().max(1));
            text[..at].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}
