//! The official RunPod REST v2 spec (`openapi-v2.json`, as RunPod publishes it), compiled
//! into JSON Schema validators: one per request body and one per documented response.
//!
//! The simulator refuses a request body the spec refuses (422 with `errors[]`), and checks
//! every response it sends against the spec, recording any mismatch so tests can fail on it.
//! No I/O: the spec is embedded in the binary.

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use jsonschema::{Draft, Validator, error::ValidationErrorKind};
use serde_json::{Value, json};

/// The spec as shipped by RunPod.
pub const OPENAPI_V2: &str = include_str!("openapi-v2.json");

/// Validators for every operation of the spec.
pub struct Spec {
    requests: HashMap<(String, String), Validator>,
    /// The query parameters of each operation, with a validator of their schema.
    queries: HashMap<(String, String), Vec<QueryParam>>,
    responses: HashMap<(String, String, String), Validator>,
    /// Documented statuses without a body (204 and the like).
    bodiless: HashSet<(String, String, String)>,
}

/// One query parameter of an operation.
struct QueryParam {
    name: String,
    /// The JSON type a value of the query string is read as (`integer`, `boolean`, `array`
    /// of comma-separated strings, else `string`).
    kind: String,
    validator: Validator,
}

/// The compiled spec, built once per process.
pub fn spec() -> &'static Spec {
    static SPEC: LazyLock<Spec> = LazyLock::new(|| Spec::compile(OPENAPI_V2));
    &SPEC
}

impl Spec {
    fn compile(text: &str) -> Self {
        let document: Value = serde_json::from_str(text).expect("the embedded spec is JSON");
        let components = document["components"].clone();
        // Each schema is checked as `{"$ref": <schema pointer>}` inside a document that carries
        // the spec's components, so `#/components/...` references resolve as in the spec.
        let validator = |schema: &Value| -> Validator {
            let mut root = json!({ "$schema": "https://json-schema.org/draft/2020-12/schema" });
            root["components"] = components.clone();
            if let Some(map) = schema.as_object() {
                for (k, v) in map {
                    root[k] = v.clone();
                }
            }
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .expect("every schema of the spec compiles")
        };
        let resolve = |value: &Value| -> Value {
            // Shared responses (`#/components/responses/X`) are references one level up.
            match value.get("$ref").and_then(Value::as_str) {
                Some(pointer) => document
                    .pointer(pointer.trim_start_matches('#'))
                    .cloned()
                    .unwrap_or(Value::Null),
                None => value.clone(),
            }
        };

        let mut requests = HashMap::new();
        let mut queries: HashMap<(String, String), Vec<QueryParam>> = HashMap::new();
        let mut responses = HashMap::new();
        let mut bodiless = HashSet::new();
        for (path, item) in document["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let method = method.to_uppercase();
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let parameter = resolve(parameter);
                    if parameter["in"] != "query" {
                        continue;
                    }
                    let schema = &parameter["schema"];
                    let kind = resolve(schema)["type"]
                        .as_str()
                        .unwrap_or("string")
                        .to_string();
                    queries
                        .entry((method.clone(), path.clone()))
                        .or_default()
                        .push(QueryParam {
                            name: parameter["name"].as_str().unwrap_or_default().to_string(),
                            kind,
                            validator: validator(schema),
                        });
                }
                if let Some(schema) =
                    operation.pointer("/requestBody/content/application~1json/schema")
                {
                    requests.insert((method.clone(), path.clone()), validator(schema));
                }
                for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                    let response = resolve(response);
                    let content = &response["content"];
                    let schema = content
                        .pointer("/application~1json/schema")
                        .or_else(|| content.pointer("/application~1problem+json/schema"));
                    let key = (method.clone(), path.clone(), status.clone());
                    match schema {
                        Some(schema) => {
                            responses.insert(key, validator(schema));
                        }
                        None => {
                            bodiless.insert(key);
                        }
                    }
                }
            }
        }
        Self {
            requests,
            queries,
            responses,
            bodiless,
        }
    }

    /// Why a request body breaks the spec, as RunPod words it (`$.field: problem`); empty when
    /// it conforms or the operation takes no body.
    pub fn request_errors(&self, method: &str, path_template: &str, body: &Value) -> Vec<String> {
        match self
            .requests
            .get(&(method.to_string(), path_template.to_string()))
        {
            Some(validator) => describe(validator, body),
            None => Vec::new(),
        }
    }

    /// Why a query string breaks the operation's parameters (`$.query.name: problem`); empty
    /// when it conforms. Parameters the spec does not name are ignored, as RunPod does.
    pub fn query_errors(&self, method: &str, path_template: &str, query: &str) -> Vec<String> {
        let Some(params) = self
            .queries
            .get(&(method.to_string(), path_template.to_string()))
        else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for (name, raw) in query_pairs(query) {
            let Some(param) = params.iter().find(|p| p.name == name) else {
                continue;
            };
            let value = match param.kind.as_str() {
                "integer" => match raw.parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => {
                        errors.push(format!("$.query.{name}: {raw:?} is not an integer"));
                        continue;
                    }
                },
                "boolean" => match raw.as_str() {
                    "true" => json!(true),
                    "false" => json!(false),
                    _ => {
                        errors.push(format!("$.query.{name}: {raw:?} is not true or false"));
                        continue;
                    }
                },
                "array" => json!(raw.split(',').collect::<Vec<_>>()),
                _ => json!(raw),
            };
            errors.extend(
                describe(&param.validator, &value)
                    .into_iter()
                    .map(|e| format!("$.query.{name}{}", e.trim_start_matches('$'))),
            );
        }
        errors
    }

    /// Whether the operation documents a request body.
    pub fn takes_body(&self, method: &str, path_template: &str) -> bool {
        self.requests
            .contains_key(&(method.to_string(), path_template.to_string()))
    }

    /// Why a response breaks the spec; checked against the documented status, else `default`.
    /// A status the operation does not document at all is itself a violation.
    pub fn response_errors(
        &self,
        method: &str,
        path_template: &str,
        status: u16,
        body: &Value,
    ) -> Vec<String> {
        let key = |s: &str| (method.to_string(), path_template.to_string(), s.to_string());
        if self.bodiless.contains(&key(&status.to_string())) {
            return if body.is_null() {
                Vec::new()
            } else {
                vec![format!(
                    "{method} {path_template} documents no body for status {status}"
                )]
            };
        }
        match self
            .responses
            .get(&key(&status.to_string()))
            .or_else(|| self.responses.get(&key("default")))
        {
            Some(validator) => describe(validator, body),
            None if body.is_null() => Vec::new(),
            None => vec![format!(
                "{method} {path_template} documents no body for status {status}"
            )],
        }
    }

    /// How many operations carry a request schema and how many responses are documented.
    pub fn counts(&self) -> (usize, usize) {
        (self.requests.len(), self.responses.len())
    }
}

/// The errors of an instance. Under JSON Schema 2020-12 a failing subschema evaluates none
/// of its properties, so one bad value also makes every sibling "unevaluated"; those echoes
/// are dropped unless nothing else is wrong, when they name truly unknown properties.
fn describe(validator: &Validator, instance: &Value) -> Vec<String> {
    let (unevaluated, real): (Vec<_>, Vec<_>) = validator
        .iter_errors(instance)
        .partition(|e| matches!(e.kind(), ValidationErrorKind::UnevaluatedProperties { .. }));
    let chosen = if real.is_empty() { unevaluated } else { real };
    let mut seen = std::collections::BTreeSet::new();
    chosen
        .iter()
        .map(|e| {
            let path = e.instance_path().to_string();
            let at = if path.is_empty() {
                "$".to_string()
            } else {
                format!("${}", path.replace('/', "."))
            };
            match e.kind() {
                ValidationErrorKind::UnevaluatedProperties { unexpected }
                | ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let names: Vec<_> = unexpected.iter().map(|n| format!("'{n}'")).collect();
                    format!(
                        "{at}: additional properties {} not allowed",
                        names.join(", ")
                    )
                }
                _ => format!("{at}: {e}"),
            }
        })
        // The same failure reached through several branches of an allOf reads once.
        .filter(|line| seen.insert(line.clone()))
        .collect()
}

/// The `name=value` pairs of a query string, percent-decoded (`+` is a space).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_spec_compiles() {
        let (requests, responses) = spec().counts();
        assert_eq!(requests, 14, "every request body of the spec");
        assert!(responses >= 100, "{responses} response schemas");
    }

    #[test]
    fn an_unknown_property_is_refused_and_named() {
        let body = json!({"name": "x", "image": "i", "bogus": 1});
        let errors = spec().request_errors("POST", "/v2/pods", &body);
        assert_eq!(errors, ["$: additional properties 'bogus' not allowed"]);
    }

    #[test]
    fn a_bad_value_is_refused_with_its_path() {
        let body = json!({"name": "v", "size": 5, "dataCenter": "EU-RO-1"});
        let errors = spec().request_errors("POST", "/v2/network-volumes", &body);
        assert_eq!(errors, ["$.size: 5 is less than the minimum of 10"]);
    }

    #[test]
    fn problem_bodies_conform_and_wrong_shapes_do_not() {
        let problem = json!({"title": "Not Found", "status": 404, "detail": "pod not found"});
        assert!(
            spec()
                .response_errors("GET", "/v2/pods/{id}", 404, &problem)
                .is_empty()
        );
        assert!(
            !spec()
                .response_errors("GET", "/v2/pods/{id}", 404, &json!({"error": "x"}))
                .is_empty()
        );
    }

    #[test]
    fn query_pairs_are_percent_decoded_and_never_panic() {
        assert_eq!(
            query_pairs("startTime=2026-01-01T00%3A00%3A00Z&a=b+c&flag"),
            vec![
                ("startTime".to_string(), "2026-01-01T00:00:00Z".to_string()),
                ("a".to_string(), "b c".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        // Broken escapes stay as they are; a lone `%` at the end too.
        assert_eq!(
            query_pairs("x=%zz%4"),
            vec![("x".to_string(), "%zz%4".to_string())]
        );
        assert_eq!(query_pairs("x=%"), vec![("x".to_string(), "%".to_string())]);
        assert_eq!(
            query_pairs("x=%C3%A9"),
            vec![("x".to_string(), "é".to_string())]
        );
    }
}
