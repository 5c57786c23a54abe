//! The merchant API's contract: its OpenAPI 3.1 document, fetched from the
//! running collector (`/api/v2/openapi.json`), and a check of an answer
//! against the operation it answers. `http::Api` runs the check on every
//! answer it receives, so each test that calls the API also proves the
//! document true: an undocumented route, status or field fails it.
//!
//! The check is stricter than the document: an object may hold only the
//! properties the document lists (`additionalProperties: false` is added
//! to every object schema), so a field served but not documented fails too.

use serde_json::{json, Value};

pub struct Contract {
    document: Value,
}

/// Every object schema with properties, recursively, made closed.
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), json!(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

impl Contract {
    pub fn new(document: Value) -> Contract {
        assert_eq!(document["openapi"], "3.1.0", "an OpenAPI 3.1 document");
        Contract { document }
    }

    /// The operation's response schema for `status`, and its name; the
    /// error schema for a path the document does not have.
    fn response_schema(&self, method: &str, path: &str, status: u16) -> (String, Value) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let paths = self.document["paths"].as_object().expect("paths");
        let template = paths.keys().find(|template| {
            let pattern: Vec<&str> = template.trim_matches('/').split('/').collect();
            pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
        });
        let error = json!({"$ref": "#/components/schemas/Error"});
        let Some(template) = template else {
            return (format!("{method} {path} (no such path): error"), error);
        };
        let operation = &paths[template][method.to_ascii_lowercase()];
        if operation.is_null() {
            assert!(
                status >= 400,
                "{method} {template} answered {status} but is not documented"
            );
            return (format!("{method} {template} (no such method): error"), error);
        }
        let responses = &operation["responses"];
        let code = status.to_string();
        let class = format!("{}XX", status / 100);
        let response = [code.as_str(), class.as_str()]
            .into_iter()
            .map(|c| &responses[c])
            .find(|r| !r.is_null())
            .unwrap_or_else(|| panic!("{method} {template}: status {status} is not documented"));
        let schema = response["content"]["application/json"]["schema"].clone();
        assert!(!schema.is_null(), "{method} {template} {status}: no JSON schema");
        (format!("{method} {template} {status}"), schema)
    }

    /// Panics, saying where, unless `body` is what the document promises
    /// for `method path` answering `status`.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) {
        let (operation, schema) = self.response_schema(method, path, status);
        // One standalone JSON Schema: the response schema with the
        // document's components as its `$defs`.
        let mut defs = self.document["components"]["schemas"].clone();
        close_objects(&mut defs);
        let mut schema = schema;
        close_objects(&mut schema);
        let text = serde_json::to_string(&json!({"$defs": defs, "allOf": [schema]}))
            .expect("JSON")
            .replace("#/components/schemas/", "#/$defs/");
        let standalone: Value = serde_json::from_str(&text).expect("JSON");
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        let url = "http://contract.invalid/answer.json";
        compiler
            .add_resource(url, standalone)
            .expect("the document is a resource");
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(url, &mut schemas)
            .unwrap_or_else(|e| panic!("{operation}: the document's schema does not compile: {e}"));
        if let Err(e) = schemas.validate(body, index) {
            panic!("{operation}: the answer breaks the OpenAPI document:\n{e:#}\nanswer: {body}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        let thing = json!({"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}});
        Contract::new(json!({
            "openapi": "3.1.0",
            "paths": {"/things/{key}": {"get": {"responses": {
                "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                "4XX": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }}}},
            "components": {"schemas": {
                "Thing": thing,
                "Error": {"type": "object", "required": ["field"], "properties": {"field": {"type": "string"}}}
            }}
        }))
    }

    #[test]
    fn a_documented_answer_passes() {
        contract().check("GET", "things/a", 200, &json!({"key": "a"}));
        contract().check("GET", "things/a", 404, &json!({"field": "key"}));
        contract().check("GET", "nowhere", 404, &json!({"field": "path"}));
    }

    #[test]
    #[should_panic(expected = "breaks the OpenAPI document")]
    fn an_undocumented_field_breaks_it() {
        contract().check("GET", "things/a", 200, &json!({"key": "a", "extra": 1}));
    }

    #[test]
    #[should_panic(expected = "breaks the OpenAPI document")]
    fn a_missing_field_breaks_it() {
        contract().check("GET", "things/a", 200, &json!({}));
    }

    #[test]
    #[should_panic(expected = "is not documented")]
    fn an_undocumented_status_breaks_it() {
        contract().check("GET", "things/a", 503, &json!({"field": "request"}));
    }
}
