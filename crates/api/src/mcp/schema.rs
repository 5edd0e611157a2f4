//! Tool schemas every client can read. schemars writes legal JSON Schema that many clients
//! still refuse or misread: nullable fields as `type: [T, "null"]`, any-value fields as `true`
//! or `{}`, and Rust-specific formats (`uint32`, `int64`, `double`) that validators report as
//! unknown. Clients that map tool schemas onto a single-`type` dialect (the OpenAPI subset of
//! Gemini function declarations) reject such tools; the MCP Inspector's `--strict` lists them.
//! [`portable`] rewrites a schema into the same contract in the portable spelling.

use serde_json::{Map, Value, json};

/// The formats JSON Schema 2020-12 defines; any other is dropped (bounds such as `minimum: 0`
/// that schemars writes beside `uint32` keep the constraint).
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Keywords that annotate a schema without constraining it.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

/// Any JSON value, spelled with one `type` per branch.
fn any_value() -> Value {
    json!({ "anyOf": [
        { "type": "object" },
        { "type": "array" },
        { "type": "string" },
        { "type": "number" },
        { "type": "boolean" },
        { "type": "null" },
    ] })
}

/// Rewrites `schema` (a whole tool schema or any subschema) in place: type arrays become
/// `anyOf` branches of one type each, schemas without a constraint say "any value" explicitly,
/// non-standard formats go. What the schema accepts does not change.
pub fn portable(schema: &mut Value) {
    match schema {
        Value::Bool(true) => *schema = any_value(),
        Value::Object(map) => {
            portable_object(map);
            if !map.keys().any(|k| !ANNOTATIONS.contains(&k.as_str())) {
                let annotations = std::mem::take(map);
                *schema = any_value();
                if let Value::Object(any) = schema {
                    any.extend(annotations);
                }
            }
        }
        _ => {}
    }
}

fn portable_object(map: &mut Map<String, Value>) {
    if map
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
    {
        map.remove("format");
    }
    // Subschemas first, so that a split below copies rewritten ones.
    for key in ["properties", "patternProperties", "$defs", "definitions"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            children.values_mut().for_each(portable);
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            children.iter_mut().for_each(portable);
        }
    }
    for key in ["items", "not", "if", "then", "else", "contains"] {
        if let Some(child) = map.get_mut(key) {
            portable(child);
        }
    }
    // `additionalProperties: true` is the portable way to allow extra keys: leave it.
    if let Some(child @ Value::Object(_)) = map.get_mut("additionalProperties") {
        portable(child);
    }
    if let Some(Value::Array(types)) = map.get("type").cloned() {
        split_type_array(map, &types);
    }
}

/// `{type: [T, "null"], …}` → `{anyOf: [{type: T, …}, {type: "null"}]}`, annotations kept
/// outside the branches and every other keyword with the non-null types it constrains.
fn split_type_array(map: &mut Map<String, Value>, types: &[Value]) {
    map.remove("type");
    let mut outer = Map::new();
    let mut constraints = Map::new();
    for (k, v) in std::mem::take(map) {
        if ANNOTATIONS.contains(&k.as_str()) {
            outer.insert(k, v);
        } else {
            constraints.insert(k, v);
        }
    }
    let branches: Vec<Value> = types
        .iter()
        .map(|t| {
            let mut branch = Map::new();
            branch.insert("type".into(), t.clone());
            if t != "null" {
                branch.extend(constraints.clone());
            }
            Value::Object(branch)
        })
        .collect();
    outer.insert("anyOf".into(), Value::Array(branches));
    *map = outer;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(mut v: Value) -> Value {
        portable(&mut v);
        v
    }

    #[test]
    fn nullable_types_become_single_type_branches() {
        let v = rewritten(json!({
            "description": "when it ended",
            "type": ["string", "null"],
            "format": "date-time",
        }));
        assert_eq!(
            v,
            json!({
                "description": "when it ended",
                "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}],
            })
        );
    }

    #[test]
    fn rust_formats_go_and_their_bounds_stay() {
        let v = rewritten(json!({"type": "integer", "format": "uint32", "minimum": 0}));
        assert_eq!(v, json!({"type": "integer", "minimum": 0}));
        let v = rewritten(json!({"type": ["integer", "null"], "format": "uint64", "minimum": 0}));
        assert_eq!(
            v,
            json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]})
        );
    }

    #[test]
    fn unconstrained_schemas_say_any_value() {
        let v = rewritten(json!({
            "type": "object",
            "properties": {
                "arguments": true,
                "details": {"description": "facts"},
                "items": {"type": "array", "items": {}},
            },
            "additionalProperties": true,
        }));
        let props = &v["properties"];
        assert_eq!(props["arguments"], any_value());
        assert_eq!(props["details"]["description"], "facts");
        assert_eq!(props["details"]["anyOf"], any_value()["anyOf"]);
        assert_eq!(props["items"]["items"], any_value());
        assert_eq!(v["additionalProperties"], true);
    }

    #[test]
    fn definitions_and_combinators_are_rewritten_too() {
        let v = rewritten(json!({
            "$defs": {"Progress": {"type": "object", "properties": {
                "total": {"type": ["integer", "null"], "format": "uint32"},
            }}},
            "anyOf": [{"$ref": "#/$defs/Progress"}, {"type": "null"}],
        }));
        assert_eq!(
            v["$defs"]["Progress"]["properties"]["total"],
            json!({"anyOf": [{"type": "integer"}, {"type": "null"}]})
        );
        assert_eq!(v["anyOf"][0], json!({"$ref": "#/$defs/Progress"}));
    }
}
