//! Manifest checks without a cluster: the same verdict the API server gives, with the field
//! path and the fix in every message.
//!
//! A document goes through three checks, in the order the API server applies them: unknown
//! fields (kubectl's strict field validation), types (serde, with the path of the field that
//! failed), then the CRD's CEL rules, with schema defaults applied first. Every rule but the
//! transition rules is checked in Rust (see `native`), the CEL interpreter kept for the rest
//! and as the reference: [`check_document_all_cel`] runs them all through CEL, and the tests
//! compare the two on every case. The CLI uses this to refuse a bad manifest before anything
//! reaches RunPod; the tests use it to run every CEL rule against accepted and rejected
//! objects. Pure: no I/O.

mod defaults;
mod native;
pub mod ordered;
mod path;
mod structure;

use std::{fmt, sync::LazyLock};

use kube::{
    CustomResourceExt, Resource,
    core::cel::{CompiledSchema, Validator, compile_schema},
};
use path::Path;
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
    /// The text is not YAML, or breaks one of the reader's budgets.
    #[error("{source_name}: not valid YAML: {error}")]
    Yaml {
        /// The file (or other source) name.
        source_name: String,
        /// The reader's message, with the line and column.
        error: String,
    },
    /// The text is larger than a manifest file may be.
    #[error(
        "{source_name}: {size} bytes, more than the {limit} bytes a manifest file may hold: split it into several files"
    )]
    TooLarge {
        /// The file (or other source) name.
        source_name: String,
        /// Its size in bytes.
        size: usize,
        /// [`MAX_MANIFEST_BYTES`].
        limit: usize,
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

/// The largest manifest file read: 16 MiB holds 10,000 workloads several times over, and
/// bounds what a hostile file can make the reader allocate.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// The reader's budgets. A manifest is untrusted text: deep nesting, alias bombs, millions of
/// tiny nodes and duplicate keys are refused with a message instead of exhausting memory or
/// silently keeping the last of two values (kubectl refuses duplicate keys too).
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_documents: 100_000,
            max_nodes: 2_000_000,
            max_events: 4_000_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_total_scalar_bytes: MAX_MANIFEST_BYTES,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    }
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

/// A stream cut into its documents at the `---` lines (a document marker cannot appear inside a
/// scalar at the start of a line), each with the number of its first line (0-based), lazily:
/// a file of nothing but markers costs no list of millions of pieces. A stream with directives
/// (`%YAML`) is read whole: a directive belongs to the document after it.
fn documents(text: &str) -> impl Iterator<Item = (u64, &str)> {
    let directives = text.lines().any(|l| l.starts_with('%'));
    let (mut start, mut start_line, mut line, mut at) = (0usize, 0u64, 0u64, 0usize);
    let mut lines = text.split_inclusive('\n');
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        for raw in lines.by_ref() {
            let content = raw.trim_end_matches(['\n', '\r']);
            let marker =
                content == "---" || content.starts_with("--- ") || content.starts_with("---\t");
            let begins = at;
            at += raw.len();
            line += 1;
            if marker && !directives && begins > start {
                let piece = (start_line, &text[start..begins]);
                start = begins;
                start_line = line - 1;
                return Some(piece);
            }
        }
        done = true;
        Some((start_line, &text[start..]))
    })
}

/// Problems reported per file, at most: past them the file is not worth reading further, and
/// a file of a million broken documents must not make a million messages.
const MAX_ERRORS_PER_FILE: usize = 50;

/// The reader's message in a user's words (its advice is for programmers), with the line
/// counted from the start of the file.
fn yaml_message(e: &serde_saphyr::Error, first_line: u64) -> String {
    let mut raw = e.to_string();
    if first_line > 0
        && let Some(at) = e.location()
    {
        let (line, column) = (at.line(), at.column());
        let local = format!("line {line}, column {column}");
        if raw.contains(&local) {
            raw = raw.replace(
                &local,
                &format!("line {}, column {column}", line + first_line),
            );
        } else {
            raw.push_str(&format!(
                " (in the document that starts at line {})",
                first_line + 1
            ));
        }
    }
    let raw = raw.replace(
        ", set DuplicateKeyPolicy in Options if acceptable",
        " (a key may appear once per mapping, as kubectl requires: keep one)",
    );
    match raw.strip_prefix("budget breached: ") {
        Some(rest) => format!(
            "more anchors, aliases, nodes or nesting than a manifest may hold ({rest}): write the objects out plainly, or split the file"
        ),
        None => raw,
    }
}

/// Texts at least this long are read on several threads (below it, starting them costs more
/// than it saves).
pub const PARALLEL_BYTES: usize = 64 << 10;

/// Reads every document of a YAML stream and checks the operator's kinds. Empty documents
/// are skipped. Every broken object is reported, not only the first; a YAML error stops the
/// file (what follows it cannot be located reliably). A long text is read on every core, with
/// the same result as one thread's.
pub fn parse_manifests(text: &str, source_name: &str) -> Result<Vec<Manifest>, Vec<ManifestError>> {
    let threads = if text.len() >= PARALLEL_BYTES {
        ordered::threads()
    } else {
        1
    };
    parse_manifests_on(text, source_name, threads)
}

/// One document read and checked: its objects, or why it could not be read.
type Read = Result<Vec<Result<Manifest, ManifestError>>, ManifestError>;

/// [`parse_manifests`] on up to `threads` threads.
pub fn parse_manifests_on(
    text: &str,
    source_name: &str,
    threads: usize,
) -> Result<Vec<Manifest>, Vec<ManifestError>> {
    let mut manifests = Vec::new();
    parse_manifests_into(text, source_name, threads, |m| manifests.push(m))?;
    Ok(manifests)
}

/// [`parse_manifests_on`], handing each object to `sink` as soon as it is read, in order (a
/// caller that keeps the objects its own way never holds two copies of them). When the file
/// has problems, the objects handed over are the valid ones before and among them.
pub fn parse_manifests_into(
    text: &str,
    source_name: &str,
    threads: usize,
    mut sink: impl FnMut(Manifest),
) -> Result<(), Vec<ManifestError>> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(vec![ManifestError::TooLarge {
            source_name: source_name.to_string(),
            size: text.len(),
            limit: MAX_MANIFEST_BYTES,
        }]);
    }
    // Editors on Windows save a byte-order mark; it is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut errors = Vec::new();
    // One document at a time per thread: each is checked and dropped before the next is
    // read, so a file of 10,000 workloads never holds 10,000 untyped trees at once.
    let read = |(first_line, piece): (u64, &str)| -> (u64, Read) {
        let values: Vec<Value> =
            match serde_saphyr::from_multiple_with_options(piece, yaml_options()) {
                Ok(values) => values,
                Err(e) => {
                    return (
                        first_line,
                        Err(ManifestError::Yaml {
                            source_name: source_name.to_string(),
                            error: yaml_message(&e, first_line),
                        }),
                    );
                }
            };
        let objects = values
            .into_iter()
            .filter(|value| !value.is_null())
            .map(|value| {
                let kind = value["kind"].as_str().unwrap_or("object").to_string();
                let name = value["metadata"]["name"].as_str().unwrap_or("").to_string();
                check_with(value, None, false).map_err(|field_errors| ManifestError::Invalid {
                    source_name: source_name.to_string(),
                    kind,
                    name,
                    errors: field_errors,
                })
            })
            .collect();
        (first_line, Ok(objects))
    };
    ordered::in_order(documents(text), threads, read, |(first_line, result)| {
        let objects = match result {
            Ok(objects) => objects,
            Err(yaml) => {
                errors.push(yaml);
                // What follows a syntax error cannot be located reliably.
                return false;
            }
        };
        if errors.len() >= MAX_ERRORS_PER_FILE {
            errors.push(ManifestError::Yaml {
                source_name: source_name.to_string(),
                error: format!(
                    "reading stopped after {MAX_ERRORS_PER_FILE} problems (the line {} document and later ones are not checked): fix these first",
                    first_line + 1
                ),
            });
            return false;
        }
        for object in objects {
            match object {
                Ok(manifest) => sink(manifest),
                Err(error) => errors.push(error),
            }
        }
        true
    });
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks one object, as JSON, and returns it typed. `old` is the previous version for
/// transition rules (immutable and grow-only fields); `None` for a create.
pub fn check_document(value: &Value, old: Option<&Value>) -> Result<Manifest, Vec<FieldError>> {
    check_with(value.clone(), old, false)
}

fn check_with(
    value: Value,
    old: Option<&Value>,
    all_cel: bool,
) -> Result<Manifest, Vec<FieldError>> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    if api_version.is_empty() || kind.is_empty() {
        return Err(vec![FieldError {
            path: String::new(),
            message: "apiVersion and kind are required: every document needs both".to_string(),
        }]);
    }
    if api_version.split('/').next() != Some(super::API_GROUP) {
        return Ok(Manifest::Other(value));
    }
    match kind.as_str() {
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

/// One kind's schema: as published (with every CEL rule), its CEL rules where they sit
/// (without the rules checked natively here), and compiled whole (for
/// [`check_document_all_cel`]).
struct Schema {
    published: Value,
    rules: Option<RuleTree>,
    defaults: Option<defaults::Defaults>,
    whole: LazyLock<CompiledSchema, Box<dyn FnOnce() -> CompiledSchema + Send>>,
}

/// The rules of a schema by where they sit. Each rule the [`native`] module knows is checked
/// in Rust; the others (the transition rules) are compiled per node, the node alone with its
/// children left out, so checking it converts its own value to CEL once. (Checking the whole
/// compiled schema converts the value again at every node, rules or not.) Subtrees without a
/// rule are left out.
struct RuleTree {
    native: Vec<native::Check>,
    cel: Option<CompiledSchema>,
    /// Every CEL rule here compares with the old object: nothing to check on a create.
    transition_only: bool,
    properties: Vec<(String, RuleTree)>,
    items: Option<Box<RuleTree>>,
    additional: Option<Box<RuleTree>>,
}

/// The schema node alone, with only these rules.
fn alone(schema: &Value, rules: Vec<Value>) -> CompiledSchema {
    let mut node = schema.clone();
    if let Some(map) = node.as_object_mut() {
        for child in ["properties", "items", "additionalProperties"] {
            map.remove(child);
        }
        map.insert("x-kubernetes-validations".to_string(), Value::Array(rules));
    }
    compile_schema(&node)
}

impl RuleTree {
    fn of(schema: &Value) -> Option<Self> {
        let rules: Vec<&Value> = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let mut native = Vec::new();
        let mut cel = Vec::new();
        for rule in rules {
            match native::Check::of(rule, || alone(schema, vec![rule.clone()])) {
                Some(check) => native.push(check),
                None => cel.push(rule.clone()),
            }
        }
        let transition_only = cel
            .iter()
            .all(|r| r["rule"].as_str().is_some_and(|t| t.contains("oldSelf")));
        let cel = (!cel.is_empty()).then(|| alone(schema, cel));
        let properties: Vec<(String, RuleTree)> = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(name, child)| Self::of(child).map(|tree| (name.clone(), tree)))
            .collect();
        let items = schema.get("items").and_then(Self::of).map(Box::new);
        let additional = schema
            .get("additionalProperties")
            .filter(|a| a.is_object())
            .and_then(Self::of)
            .map(Box::new);
        let empty = native.is_empty()
            && cel.is_none()
            && properties.is_empty()
            && items.is_none()
            && additional.is_none();
        (!empty).then_some(Self {
            native,
            cel,
            transition_only,
            properties,
            items,
            additional,
        })
    }

    /// Runs the rules on a value whose defaults are applied, as the API server's walk does.
    fn check(
        &self,
        validator: &Validator,
        value: &Value,
        old: Option<&Value>,
        path: Path<'_>,
        errors: &mut Vec<FieldError>,
    ) {
        let run = |compiled: &CompiledSchema, errors: &mut Vec<FieldError>| {
            if let Err(found) = validator.validate_compiled(compiled, value, old) {
                errors.extend(found.as_slice().iter().map(|e| FieldError {
                    path: match (path.is_root(), e.field_path.is_empty()) {
                        (_, true) => path.to_string(),
                        (true, false) => e.field_path.clone(),
                        (false, false) => format!("{path}.{}", e.field_path),
                    },
                    message: e.message.clone(),
                }));
            }
        };
        for check in &self.native {
            match check.holds(value) {
                Some(true) => {}
                Some(false) => errors.push(FieldError {
                    path: path.to_string(),
                    message: check.message.clone(),
                }),
                // Not decided natively (a field missing, an odd type): CEL decides.
                None => run(&check.fallback, errors),
            }
        }
        if let Some(cel) = &self.cel
            && (old.is_some() || !self.transition_only)
        {
            run(cel, errors);
        }
        if let Some(map) = value.as_object() {
            for (name, child) in &self.properties {
                if let Some(v) = map.get(name) {
                    let old = old.and_then(|o| o.get(name));
                    child.check(validator, v, old, path.key(name), errors);
                }
            }
            if let Some(additional) = &self.additional {
                for (key, v) in map {
                    if self.properties.iter().any(|(name, _)| name == key) {
                        continue;
                    }
                    let old = old.and_then(|o| o.get(key));
                    additional.check(validator, v, old, path.key(key), errors);
                }
            }
        }
        if let (Some(items), Some(list)) = (&self.items, value.as_array()) {
            for (i, item) in list.iter().enumerate() {
                let old = old.and_then(Value::as_array).and_then(|a| a.get(i));
                items.check(validator, item, old, path.index(i), errors);
            }
        }
    }
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
    let whole = published.clone();
    Schema {
        rules: RuleTree::of(&published),
        defaults: defaults::Defaults::of(&published),
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
    check_with(value.clone(), old, true)
}

fn check<K: Checked>(
    mut owned: Value,
    old: Option<&Value>,
    all_cel: bool,
) -> Result<K, Vec<FieldError>> {
    let value = &owned;
    let schema_set = K::schema();
    let schema = &schema_set.published;
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
    structure::metadata(value, &mut errors);
    unknown_fields(schema, value, Path::Root, &mut errors);
    structure::limits(schema, value, Path::Root, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }

    // Typed straight from the tree; only a failure is read again with the path tracked, for
    // the message (tracking it on every read cost more than the read).
    let typed: K = match K::deserialize(value) {
        Ok(typed) => typed,
        Err(_) => {
            return Err(vec![
                serde_path_to_error::deserialize::<_, K>(value)
                    .err()
                    .map_or_else(
                        || FieldError {
                            path: String::new(),
                            message: "the object could not be read".to_string(),
                        },
                        |e| FieldError {
                            path: e.path().to_string().trim_start_matches('.').to_string(),
                            message: e.inner().to_string(),
                        },
                    ),
            ]);
        }
    };

    // One validator per thread: building one registers every CEL function, which cost more
    // than all the rules of a manifest together.
    thread_local! {
        static VALIDATOR: Validator = Validator::new();
    }
    if all_cel {
        let whole = &*schema_set.whole;
        if let Err(rule_errors) = VALIDATOR.with(|v| v.validate_compiled(whole, &owned, old)) {
            errors.extend(rule_errors.as_slice().iter().map(|e| FieldError {
                path: e.field_path.clone(),
                message: e.message.clone(),
            }));
        }
    } else {
        // Defaults first, as the API server applies them before the rules (in place: the
        // typed object is read already).
        let defaults = schema_set.defaults.as_ref();
        let defaulted_old = old.map(|o| {
            let mut o = o.clone();
            if let Some(d) = defaults {
                d.apply(&mut o);
            }
            o
        });
        if let Some(d) = defaults {
            d.apply(&mut owned);
        }
        if let Some(rules) = &schema_set.rules {
            VALIDATOR.with(|v| {
                rules.check(v, &owned, defaulted_old.as_ref(), Path::Root, &mut errors);
            });
        }
    }
    if errors.is_empty() {
        Ok(typed)
    } else {
        Err(errors)
    }
}

/// Reports keys the schema does not know, as `kubectl apply --validate=strict` would.
/// `apiVersion`, `kind` and `metadata` are left to the API server's own schema.
fn unknown_fields(schema: &Value, value: &Value, path: Path<'_>, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
                return;
            }
            for (key, child) in map {
                // The CRD schema leaves the object's type and metadata to the API server.
                if path.is_root() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match properties.get(key) {
                    Some(child_schema) => {
                        unknown_fields(child_schema, child, path.key(key), errors)
                    }
                    None => {
                        let mut known: Vec<&str> = properties.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        errors.push(FieldError {
                            path: path.key(key).to_string(),
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
                    unknown_fields(item_schema, item, path.index(i), errors);
                }
            }
        }
        _ => {}
    }
}
