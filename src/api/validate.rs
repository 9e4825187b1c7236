//! Manifest checks without a cluster: the same verdict the API server gives, with the field
//! path and the fix in every message.
//!
//! A document goes through three checks, in the order the API server applies them: unknown
//! fields (kubectl's strict field validation), types (serde, with the path of the field that
//! failed), then the CRD's CEL rules, with schema defaults applied first. The CLI uses this to
//! refuse a bad manifest before anything reaches RunPod; the tests use it to run every CEL
//! rule against accepted and rejected objects. Pure: no I/O.

use std::{fmt, sync::LazyLock};

use kube::{
    CustomResourceExt, Resource,
    core::cel::{CompiledSchema, Validator, compile_schema},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{GpuWorkload, NetworkVolume, RunPodAccount};

/// One problem with one field of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Where it is, e.g. `spec.serverless.maxWorkers`; empty for the whole document.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a manifest file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML.
    #[error("{source_name}: document {index} is not valid YAML: {error}")]
    Yaml {
        /// The file (or other source) name.
        source_name: String,
        /// 1-based document number in the stream.
        index: usize,
        /// The parser's message.
        error: String,
    },
    /// One object broke one or more rules.
    #[error("{source_name}: {kind} {name:?} is invalid:\n{}", list(.errors))]
    Invalid {
        /// The file (or other source) name.
        source_name: String,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// Every problem found.
        errors: Vec<FieldError>,
    },
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One object read from a manifest.
#[derive(Clone, Debug)]
pub enum Manifest {
    /// A GpuWorkload.
    GpuWorkload(Box<GpuWorkload>),
    /// A NetworkVolume.
    NetworkVolume(Box<NetworkVolume>),
    /// A RunPodAccount.
    RunPodAccount(Box<RunPodAccount>),
    /// Any other Kubernetes object (a Secret the workloads read, say), kept as it is.
    Other(Value),
}

/// Reads every document of a YAML stream and checks the operator's kinds. Empty documents
/// are skipped. Every broken object is reported, not only the first.
pub fn parse_manifests(text: &str, source_name: &str) -> Result<Vec<Manifest>, Vec<ManifestError>> {
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value: Value = match serde::Deserialize::deserialize(document) {
            Ok(Value::Null) => continue,
            Ok(value) => value,
            Err(e) => {
                errors.push(ManifestError::Yaml {
                    source_name: source_name.to_string(),
                    index,
                    error: e.to_string(),
                });
                continue;
            }
        };
        match check_document(&value, None) {
            Ok(manifest) => manifests.push(manifest),
            Err(field_errors) => errors.push(ManifestError::Invalid {
                source_name: source_name.to_string(),
                kind: value["kind"].as_str().unwrap_or("object").to_string(),
                name: value["metadata"]["name"].as_str().unwrap_or("").to_string(),
                errors: field_errors,
            }),
        }
    }
    if errors.is_empty() {
        Ok(manifests)
    } else {
        Err(errors)
    }
}

/// Checks one object, as JSON, and returns it typed. `old` is the previous version for
/// transition rules (immutable and grow-only fields); `None` for a create.
pub fn check_document(value: &Value, old: Option<&Value>) -> Result<Manifest, Vec<FieldError>> {
    check_with(value, old, false)
}

fn check_with(
    value: &Value,
    old: Option<&Value>,
    all_cel: bool,
) -> Result<Manifest, Vec<FieldError>> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err(vec![FieldError {
            path: String::new(),
            message: "apiVersion and kind are required: every document needs both".to_string(),
        }]);
    }
    if api_version.split('/').next() != Some(super::API_GROUP) {
        return Ok(Manifest::Other(value.clone()));
    }
    match kind {
        "GpuWorkload" => {
            check::<GpuWorkload>(value, old, all_cel).map(|o| Manifest::GpuWorkload(Box::new(o)))
        }
        "NetworkVolume" => check::<NetworkVolume>(value, old, all_cel)
            .map(|o| Manifest::NetworkVolume(Box::new(o))),
        "RunPodAccount" => check::<RunPodAccount>(value, old, all_cel)
            .map(|o| Manifest::RunPodAccount(Box::new(o))),
        other => Err(vec![FieldError {
            path: "kind".to_string(),
            message: format!(
                "{api_version} has no kind {other:?}: use GpuWorkload, NetworkVolume or RunPodAccount"
            ),
        }]),
    }
}

/// One kind's schema: as published (with every CEL rule), compiled without the rules checked
/// natively here, and compiled whole (for [`check_document_all_cel`]).
struct Schema {
    published: Value,
    compiled: CompiledSchema,
    whole: LazyLock<CompiledSchema, Box<dyn FnOnce() -> CompiledSchema + Send>>,
}

/// The checks for one kind, with its schema compiled once per process.
trait Checked: CustomResourceExt + Resource<DynamicType = ()> + DeserializeOwned {
    fn schema() -> &'static Schema;
}

macro_rules! checked {
    ($kind:ty) => {
        impl Checked for $kind {
            fn schema() -> &'static Schema {
                static SCHEMA: LazyLock<Schema> = LazyLock::new(|| openapi_schema::<$kind>());
                &SCHEMA
            }
        }
    };
}
checked!(GpuWorkload);
checked!(NetworkVolume);
checked!(RunPodAccount);

fn openapi_schema<K: CustomResourceExt>() -> Schema {
    let crd = K::crd();
    let published = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("a derived schema serializes"))
        .expect("a derived CRD has an openAPIV3Schema");
    let mut reduced = published.clone();
    native::strip(&mut reduced);
    let whole = published.clone();
    Schema {
        compiled: compile_schema(&reduced),
        published,
        whole: LazyLock::new(Box::new(move || compile_schema(&whole))),
    }
}

/// [`check_document`] with every CEL rule run by the CEL interpreter, none natively: the
/// reference the tests hold the native checks to.
pub fn check_document_all_cel(
    value: &Value,
    old: Option<&Value>,
) -> Result<Manifest, Vec<FieldError>> {
    check_with(value, old, true)
}

fn check<K: Checked>(
    value: &Value,
    old: Option<&Value>,
    all_cel: bool,
) -> Result<K, Vec<FieldError>> {
    let schema_set = K::schema();
    let schema = &schema_set.published;
    let compiled = if all_cel {
        &*schema_set.whole
    } else {
        &schema_set.compiled
    };
    let expected = K::api_version(&());
    if value["apiVersion"].as_str() != Some(expected.as_ref()) {
        return Err(vec![FieldError {
            path: "apiVersion".to_string(),
            message: format!(
                "{} is served as {expected}: set apiVersion to it",
                K::kind(&())
            ),
        }]);
    }
    if value["metadata"]["name"].as_str().is_none_or(str::is_empty) {
        return Err(vec![FieldError {
            path: "metadata.name".to_string(),
            message: "every object needs a name: set metadata.name".to_string(),
        }]);
    }

    let mut errors = Vec::new();
    unknown_fields(schema, value, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }

    let typed: K = serde_path_to_error::deserialize(value).map_err(|e| {
        vec![FieldError {
            path: e.path().to_string().trim_start_matches('.').to_string(),
            message: e.inner().to_string(),
        }]
    })?;

    if let Err(rule_errors) = Validator::new().validate_compiled(compiled, value, old) {
        errors.extend(rule_errors.as_slice().iter().map(|e| FieldError {
            path: e.field_path.clone(),
            message: e.message.clone(),
        }));
    }
    if !all_cel {
        native::check(schema, value, "", &mut errors);
    }
    if errors.is_empty() {
        Ok(typed)
    } else {
        Err(errors)
    }
}

/// Reports keys the schema does not know, as `kubectl apply --validate=strict` would.
/// `apiVersion`, `kind` and `metadata` are left to the API server's own schema.
fn unknown_fields(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
                return;
            }
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                // The CRD schema leaves the object's type and metadata to the API server.
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match properties.get(key) {
                    Some(child_schema) => unknown_fields(child_schema, child, &child_path, errors),
                    None => {
                        let mut known: Vec<&str> = properties.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        errors.push(FieldError {
                            path: child_path,
                            message: format!(
                                "unknown field; the fields here are: {}",
                                known.join(", ")
                            ),
                        });
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// The CRDs' pattern rules (`self.matches('...')`), checked in Rust: the CEL interpreter
/// compiles a rule's regular expression on every call, which cost a third of the CPU of
/// reading a thousand manifests. The rules stay in the published CRD, so the API server
/// checks them too; the tests run every accept/reject case through both.
mod native {
    use serde_json::Value;

    use super::FieldError;

    /// A pattern the CRDs use, checked natively.
    type Pattern = fn(&str) -> bool;

    fn digits(s: &str, min: usize, max: usize) -> bool {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    }

    /// `^[0-9]{1,7}([.][0-9]{1,6})?$`
    fn usd(s: &str) -> bool {
        match s.split_once('.') {
            None => digits(s, 1, 7),
            Some((whole, fraction)) => digits(whole, 1, 7) && digits(fraction, 1, 6),
        }
    }

    /// `^[0-9]{1,5}/(http|tcp)$`
    fn port(s: &str) -> bool {
        s.split_once('/').is_some_and(|(number, protocol)| {
            digits(number, 1, 5) && matches!(protocol, "http" | "tcp")
        })
    }

    /// `^[A-Za-z_][A-Za-z0-9_]*$`
    fn env_name(s: &str) -> bool {
        let mut bytes = s.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    /// `^[0-9]{1,3}[.][0-9]{1,3}$`
    fn cuda(s: &str) -> bool {
        s.split_once('.')
            .is_some_and(|(major, minor)| digits(major, 1, 3) && digits(minor, 1, 3))
    }

    const PATTERNS: [(&str, Pattern); 4] = [
        ("^[0-9]{1,7}([.][0-9]{1,6})?$", usd),
        ("^[0-9]{1,5}/(http|tcp)$", port),
        ("^[A-Za-z_][A-Za-z0-9_]*$", env_name),
        ("^[0-9]{1,3}[.][0-9]{1,3}$", cuda),
    ];

    /// How a rule applies its pattern.
    enum Shape {
        /// `self.matches('p')`: the string itself.
        One(Pattern),
        /// `self.all(x, x.matches('p'))`: every string of a list.
        All(Pattern),
    }

    fn pattern(regex: &str) -> Option<Pattern> {
        PATTERNS.iter().find(|(r, _)| *r == regex).map(|(_, p)| *p)
    }

    /// The native form of a rule, if it has one.
    fn shape(rule: &str) -> Option<Shape> {
        let rule = rule.trim();
        if let Some(regex) = rule
            .strip_prefix("self.matches('")
            .and_then(|r| r.strip_suffix("')"))
        {
            return pattern(regex).map(Shape::One);
        }
        let inner = rule.strip_prefix("self.all(")?.strip_suffix(')')?;
        let (var, body) = inner.split_once(", ")?;
        let regex = body
            .strip_prefix(&format!("{var}.matches('"))?
            .strip_suffix("')")?;
        pattern(regex).map(Shape::All)
    }

    fn rules(schema: &Value) -> impl Iterator<Item = &Value> {
        schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    }

    /// Removes the rules checked natively from a schema (to compile the rest).
    pub(super) fn strip(schema: &mut Value) {
        let Some(map) = schema.as_object_mut() else {
            return;
        };
        if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
            rules.retain(|r| r["rule"].as_str().and_then(shape).is_none());
            if rules.is_empty() {
                map.remove("x-kubernetes-validations");
            }
        }
        if let Some(Value::Object(properties)) = map.get_mut("properties") {
            properties.values_mut().for_each(strip);
        }
        if let Some(items) = map.get_mut("items") {
            strip(items);
        }
    }

    /// Checks the native rules of `schema` on `value`, as the CEL rules would, with the same
    /// paths and messages.
    pub(super) fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        for rule in rules(schema) {
            let Some(shape) = rule["rule"].as_str().and_then(shape) else {
                continue;
            };
            let ok = match (shape, value) {
                (Shape::One(p), Value::String(s)) => p(s),
                (Shape::All(p), Value::Array(items)) => {
                    items.iter().all(|i| i.as_str().is_some_and(p))
                }
                // A wrong type was reported by the type check already.
                _ => true,
            };
            if !ok {
                errors.push(FieldError {
                    path: path.to_string(),
                    message: rule["message"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        match value {
            Value::Object(map) => {
                let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                    return;
                };
                for (key, child) in map {
                    if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                    {
                        continue;
                    }
                    if let Some(child_schema) = properties.get(key) {
                        let child_path = if path.is_empty() {
                            key.clone()
                        } else {
                            format!("{path}.{key}")
                        };
                        check(child_schema, child, &child_path, errors);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        check(item_schema, item, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            _ => {}
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_pattern_rule_of_the_crds_is_checked_natively() {
            use kube::CustomResourceExt;
            let mut found = 0;
            for crd in [
                crate::api::GpuWorkload::crd(),
                crate::api::NetworkVolume::crd(),
                crate::api::RunPodAccount::crd(),
            ] {
                let text = serde_json::to_string(&crd).unwrap();
                let value: Value = serde_json::from_str(&text).unwrap();
                let mut stack = vec![&value];
                while let Some(v) = stack.pop() {
                    match v {
                        Value::Object(map) => {
                            if let Some(rule) = map.get("rule").and_then(Value::as_str)
                                && rule.contains("matches(")
                            {
                                assert!(shape(rule).is_some(), "no native check for {rule}");
                                found += 1;
                            }
                            stack.extend(map.values());
                        }
                        Value::Array(items) => stack.extend(items),
                        _ => {}
                    }
                }
            }
            assert!(found >= 5, "found {found} pattern rules");
        }

        #[test]
        fn the_patterns_hold_at_their_edges() {
            assert!(usd("1234567.123456") && usd("0") && usd("1.5"));
            assert!(!usd("12345678") && !usd("1.1234567") && !usd("1.") && !usd(".5"));
            assert!(!usd("-1") && !usd("1e3") && !usd("") && !usd("١"));
            assert!(port("8888/http") && port("22/tcp") && port("65535/tcp"));
            assert!(!port("123456/tcp") && !port("22/udp") && !port("/tcp") && !port("22/tcp/"));
            assert!(env_name("_A1") && env_name("a") && !env_name("1A") && !env_name(""));
            assert!(!env_name("A-B") && !env_name("É"));
            assert!(cuda("12.4") && cuda("123.456") && !cuda("12") && !cuda("1.2.3"));
            assert!(!cuda("1234.1") && !cuda("v12.4") && !cuda("12.4\n"));
        }
    }
}
