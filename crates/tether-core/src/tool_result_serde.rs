//! [`ToolResult`]'s JSON form, read and written member by member.
//!
//! The derived form needed `#[serde(flatten)]` for the members the core does not interpret,
//! and a flattened struct is read by buffering the whole object into serde's private
//! `Content` tree first (a large text result is copied once more) and written through a
//! second serializer. Every tool call passes through both, so they are spelled out here.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ToolResult;
use crate::json_text;

const CONTENT: &str = "content";
const STRUCTURED_CONTENT: &str = "structuredContent";
const IS_ERROR: &str = "isError";

/// A member's value in [`ToolResult`]'s JSON form.
enum MemberValue<'a> {
    Values(&'a [Value]),
    Value(&'a Value),
    True,
}

impl Serialize for MemberValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Values(values) => values.serialize(serializer),
            Self::Value(value) => value.serialize(serializer),
            Self::True => serializer.serialize_bool(true),
        }
    }
}

impl ToolResult {
    /// The members of the JSON form, in order: `content`, `structuredContent` when set,
    /// `isError` when true, then the others. One list for both writers.
    fn members(&self) -> impl Iterator<Item = (&str, MemberValue<'_>)> {
        let named = [
            Some((CONTENT, MemberValue::Values(&self.content))),
            self.structured_content
                .as_ref()
                .map(|structured| (STRUCTURED_CONTENT, MemberValue::Value(structured))),
            self.is_error.then_some((IS_ERROR, MemberValue::True)),
        ];
        // A named member's value is the field's: a duplicate key would be ambiguous.
        let others = self
            .extra
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), CONTENT | STRUCTURED_CONTENT | IS_ERROR))
            .map(|(key, value)| (key.as_str(), MemberValue::Value(value)));
        named.into_iter().flatten().chain(others)
    }

    /// Appends the JSON form, byte for byte what `serde_json` writes for it, with
    /// [`json_text`](crate::json_text)'s faster string escaper: a large text result is written
    /// on every call that returns one.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (key, value)) in self.members().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_text::write_str(out, key);
            out.push(b':');
            match value {
                MemberValue::Values(values) => json_text::write_array(out, values),
                MemberValue::Value(value) => json_text::write_value(out, value),
                MemberValue::True => out.extend_from_slice(b"true"),
            }
        }
        out.push(b'}');
    }
}

impl Serialize for ToolResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.members().count()))?;
        for (key, value) in self.members() {
            map.serialize_entry(key, &value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ToolResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ResultVisitor)
    }
}

/// A member's name: one of the named fields, or another member kept in `extra`.
enum Key {
    Content,
    StructuredContent,
    IsError,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    CONTENT => Key::Content,
                    STRUCTURED_CONTENT => Key::StructuredContent,
                    IS_ERROR => Key::IsError,
                    other => Key::Other(other.to_owned()),
                })
            }

            fn visit_string<E: de::Error>(self, key: String) -> Result<Key, E> {
                Ok(match key.as_str() {
                    CONTENT => Key::Content,
                    STRUCTURED_CONTENT => Key::StructuredContent,
                    IS_ERROR => Key::IsError,
                    _ => Key::Other(key),
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct ResultVisitor;

impl<'de> Visitor<'de> for ResultVisitor {
    type Value = ToolResult;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tool result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ToolResult, A::Error> {
        let mut result = ToolResult::default();
        let (mut content, mut structured, mut is_error) = (false, false, false);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Content => {
                    once(&mut content, CONTENT)?;
                    result.content = map.next_value()?;
                }
                Key::StructuredContent => {
                    once(&mut structured, STRUCTURED_CONTENT)?;
                    result.structured_content = map.next_value()?;
                }
                Key::IsError => {
                    once(&mut is_error, IS_ERROR)?;
                    result.is_error = map.next_value()?;
                }
                Key::Other(key) => {
                    let value: Value = map.next_value()?;
                    result.extra.insert(key, value);
                }
            }
        }
        Ok(result)
    }
}

/// Refuses a named member given twice (as the derived form did).
fn once<E: de::Error>(seen: &mut bool, name: &'static str) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::duplicate_field(name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z\"\\\\\n\u{1}é]{0,12}".prop_map(Value::from),
        ];
        scalar.prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::vec(("[a-z]{1,4}", inner), 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn result() -> impl Strategy<Value = ToolResult> {
        let key = prop::sample::select(vec![
            "content".to_owned(),
            "structuredContent".to_owned(),
            "isError".to_owned(),
            "_meta".to_owned(),
            "resultType".to_owned(),
            "x\"y".to_owned(),
        ]);
        (
            prop::collection::vec(value(), 0..3),
            prop::option::of(value()),
            any::<bool>(),
            prop::collection::vec((key, value()), 0..4),
        )
            .prop_map(
                |(content, structured_content, is_error, extra)| ToolResult {
                    content,
                    structured_content,
                    is_error,
                    extra: extra.into_iter().collect::<Map<_, _>>(),
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_fast_writer_writes_what_serde_json_writes(result in result()) {
            let theirs = serde_json::to_vec(&result).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut ours = Vec::new();
            result.write_json(&mut ours);
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }

    #[test]
    fn named_members_come_first_and_are_not_repeated_from_extra() {
        let result = ToolResult {
            content: vec![json!({"text": "a\nb"})],
            structured_content: Some(json!({"n": 1})),
            is_error: true,
            extra: Map::from_iter([
                ("_meta".to_owned(), json!({})),
                ("isError".to_owned(), json!(false)),
            ]),
        };
        let mut written = Vec::new();
        result.write_json(&mut written);
        assert_eq!(
            String::from_utf8_lossy(&written),
            r#"{"content":[{"text":"a\nb"}],"structuredContent":{"n":1},"isError":true,"_meta":{}}"#
        );
    }
}
