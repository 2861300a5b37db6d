//! `Mcp-Param-*` headers on the 2026-07-28 wire (SEP-2243). A server may annotate a tool's
//! argument with `x-mcp-header: "Name"`; every call that carries that argument must then repeat
//! its value in the header `Mcp-Param-Name`, so that proxies can route on it, and the
//! TypeScript SDK's and rmcp's servers refuse a call without it (`-32020`, header mismatch).
//!
//! The annotations are read from the server's tool list and checked against the rules the
//! revision sets (a non-empty HTTP token, case-insensitively unique, on a string, integer or
//! boolean property reached from the root through `properties` alone). A tool whose
//! annotations break a rule is left out of the list, as rmcp's and the TypeScript SDK's
//! clients leave it out: its calls could not be sent correctly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::modern::encode_header_value;

const ANNOTATION: &str = "x-mcp-header";
const PREFIX: &str = "mcp-param-";

/// One tool's annotated arguments: the property path from the arguments' root, and the header
/// that repeats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamHeaders {
    declared: Vec<(Vec<String>, HeaderName)>,
}

impl ParamHeaders {
    /// The annotations of a tool's input schema: `Ok(None)` when it has none, `Err` naming the
    /// first rule an annotation breaks.
    pub(crate) fn of_schema(schema: &Map<String, Value>) -> Result<Option<Self>, String> {
        if schema.contains_key(ANNOTATION) {
            return Err("x-mcp-header annotates the schema's root".to_owned());
        }
        if off_chain(schema, true) {
            return Err(
                "x-mcp-header outside a chain of `properties` from the schema's root".to_owned(),
            );
        }
        let mut declared = Vec::new();
        let mut seen = HashSet::new();
        collect(
            schema.get("properties"),
            &mut Vec::new(),
            &mut |path, property| {
                let Some(annotation) = property.get(ANNOTATION) else {
                    return Ok(());
                };
                let at = path.join(".");
                let name = annotation
                    .as_str()
                    .filter(|n| !n.is_empty() && n.chars().all(is_tchar))
                    .ok_or_else(|| format!("`{at}`: x-mcp-header is not a non-empty HTTP token"))?;
                if !seen.insert(name.to_ascii_lowercase()) {
                    return Err(format!("`{at}`: x-mcp-header `{name}` is declared twice"));
                }
                match property.get("type").and_then(Value::as_str) {
                    Some("string" | "integer" | "boolean") => {}
                    other => {
                        return Err(format!(
                            "`{at}`: x-mcp-header on a property of type {other:?}, not a string, \
                         integer or boolean"
                        ));
                    }
                }
                let header = HeaderName::from_bytes(format!("{PREFIX}{name}").as_bytes())
                    .map_err(|_| format!("`{at}`: x-mcp-header `{name}` makes no header name"))?;
                declared.push((path.to_vec(), header));
                Ok(())
            },
        )?;
        Ok((!declared.is_empty()).then_some(Self { declared }))
    }

    /// The headers of one call with `arguments`: one per annotated argument the call carries
    /// as a string, number or boolean (absent and `null` ones have none).
    pub(crate) fn headers(&self, arguments: Option<&Value>) -> Vec<(HeaderName, HeaderValue)> {
        let Some(arguments) = arguments else {
            return Vec::new();
        };
        self.declared
            .iter()
            .filter_map(|(path, header)| {
                let value = path
                    .iter()
                    .try_fold(arguments, |value, key| value.get(key))?;
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Bool(flag) => flag.to_string(),
                    Value::Number(number) => number.to_string(),
                    _ => return None,
                };
                let value = HeaderValue::from_str(&encode_header_value(&text)).ok()?;
                Some((header.clone(), value))
            })
            .collect()
    }
}

/// Walks the properties reached from the root through `properties` alone.
fn collect<'a>(
    properties: Option<&'a Value>,
    path: &mut Vec<String>,
    visit: &mut impl FnMut(&[String], &'a Map<String, Value>) -> Result<(), String>,
) -> Result<(), String> {
    let Some(Value::Object(properties)) = properties else {
        return Ok(());
    };
    for (name, property) in properties {
        let Value::Object(property) = property else {
            continue;
        };
        path.push(name.clone());
        visit(path, property)?;
        collect(property.get("properties"), path, visit)?;
        path.pop();
    }
    Ok(())
}

/// Whether `schema` holds an annotation off the `properties` chain (`on_chain`: `schema` is the
/// root or a property reached through `properties` alone).
fn off_chain(schema: &Map<String, Value>, on_chain: bool) -> bool {
    schema.iter().any(|(key, value)| match key.as_str() {
        ANNOTATION => !on_chain,
        "properties" => value
            .as_object()
            .is_some_and(|map| map.values().any(|schema| off_chain_value(schema, on_chain))),
        // Instance data and property names, not schemas.
        "default" | "const" | "enum" | "examples" | "dependentRequired" | "required" => false,
        _ => off_chain_value(value, false),
    })
}

fn off_chain_value(value: &Value, on_chain: bool) -> bool {
    match value {
        Value::Object(schema) => off_chain(schema, on_chain),
        Value::Array(items) => items.iter().any(|item| off_chain_value(item, false)),
        _ => false,
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The annotated tools of one session, from its last tool list.
#[derive(Debug, Default)]
pub(crate) struct ToolParamHeaders {
    by_tool: RwLock<HashMap<String, Arc<ParamHeaders>>>,
}

impl ToolParamHeaders {
    pub(crate) fn replace(&self, by_tool: HashMap<String, Arc<ParamHeaders>>) {
        *self.by_tool.write().unwrap_or_else(PoisonError::into_inner) = by_tool;
    }

    pub(crate) fn of(&self, tool: &str) -> Option<Arc<ParamHeaders>> {
        self.by_tool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tool)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn annotated_arguments_are_repeated_in_headers() {
        let declared = ParamHeaders::of_schema(&schema(json!({
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "text": {"type": "string"},
                "options": {"type": "object", "properties": {
                    "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"},
                    "limit": {"type": "integer", "x-mcp-header": "Limit"}
                }}
            }
        })))
        .expect("valid")
        .expect("annotated");
        let mut headers = declared.headers(Some(&json!({
            "region": "eu west ",
            "text": "hi",
            "options": {"dry": true, "limit": null}
        })));
        headers.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or_default()))
            .collect();
        assert_eq!(
            headers,
            [
                ("mcp-param-dry-run", "true"),
                ("mcp-param-region", "=?base64?ZXUgd2VzdCA=?="),
            ],
            "a null or absent argument has no header; a trailing space needs Base64"
        );
        assert!(declared.headers(None).is_empty());
    }

    #[test]
    fn a_schema_without_annotations_has_none() {
        let plain = schema(json!({"type": "object", "properties": {"a": {"type": "number"}}}));
        assert_eq!(ParamHeaders::of_schema(&plain), Ok(None));
    }

    #[test]
    fn annotations_that_break_a_rule_make_the_tool_invalid() {
        for broken in [
            json!({"x-mcp-header": "Root", "properties": {}}),
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "object", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "A B"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": 7}}}),
            json!({"properties": {
                "a": {"type": "string", "x-mcp-header": "Same"},
                "b": {"type": "string", "x-mcp-header": "same"}
            }}),
            json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}}),
            json!({"properties": {"a": {"anyOf": [{"type": "string", "x-mcp-header": "A"}]}}}),
            json!({"$defs": {"d": {"type": "string", "x-mcp-header": "A"}}}),
        ] {
            assert!(
                ParamHeaders::of_schema(&schema(broken.clone())).is_err(),
                "{broken}"
            );
        }
    }
}
