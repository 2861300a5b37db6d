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

const CONTENT: &str = "content";
const STRUCTURED_CONTENT: &str = "structuredContent";
const IS_ERROR: &str = "isError";

impl Serialize for ToolResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let named = 1 + usize::from(self.structured_content.is_some()) + usize::from(self.is_error);
        let mut map = serializer.serialize_map(Some(named + self.extra.len()))?;
        map.serialize_entry(CONTENT, &self.content)?;
        if let Some(structured) = &self.structured_content {
            map.serialize_entry(STRUCTURED_CONTENT, structured)?;
        }
        if self.is_error {
            map.serialize_entry(IS_ERROR, &true)?;
        }
        for (key, value) in &self.extra {
            // A named member's value is the field's: a duplicate key would be ambiguous.
            if !matches!(key.as_str(), CONTENT | STRUCTURED_CONTENT | IS_ERROR) {
                map.serialize_entry(key, value)?;
            }
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
