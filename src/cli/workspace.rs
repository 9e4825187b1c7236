//! Manifests on disk -> a [`Workspace`]: files or folders of YAML/JSON, every broken object
//! reported with its file, object and field path. Secrets in the files feed `valueFrom`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use base64::Engine;
use serde_json::Value;

use super::CliError;
use crate::{
    api::{
        RunPodAccountSpec,
        validate::{
            Manifest, ManifestError, PARALLEL_BYTES, ordered, parse_manifests_into,
            parse_manifests_on,
        },
    },
    reconcile::Workspace,
};

/// The examples shipped in the binary, for `demo`.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "examples/account.yaml",
        include_str!("../../examples/account.yaml"),
    ),
    (
        "examples/image-matting-endpoint.yaml",
        include_str!("../../examples/image-matting-endpoint.yaml"),
    ),
    (
        "examples/training-pod.yaml",
        include_str!("../../examples/training-pod.yaml"),
    ),
    (
        "examples/weights-volume.yaml",
        include_str!("../../examples/weights-volume.yaml"),
    ),
];

fn files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), CliError> {
    let io = |source| CliError::Read {
        what: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                files(&entry, out)?;
            } else if entry
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                out.push(entry);
            }
        }
    } else if path.exists() {
        out.push(path.to_path_buf());
    } else {
        return Err(CliError::Usage(format!(
            "{}: no such file or folder",
            path.display()
        )));
    }
    Ok(())
}

/// Reads every manifest under the paths.
pub fn load(paths: &[PathBuf]) -> Result<Workspace, CliError> {
    if paths.is_empty() {
        return Err(CliError::Usage(
            "no manifests: pass -f with files or folders, e.g. -f examples/".to_string(),
        ));
    }
    let mut all = Vec::new();
    for path in paths {
        files(path, &mut all)?;
    }
    let mut texts = Vec::new();
    let mut errors = Vec::new();
    for file in all {
        let name = file.display().to_string();
        match read_text(&file) {
            Ok(Ok(text)) => texts.push((name, text)),
            Ok(Err(message)) => errors.push(format!("{name}: {message}")),
            Err(source) => return Err(CliError::Read { what: name, source }),
        }
    }
    if !errors.is_empty() {
        return Err(CliError::Manifests(errors));
    }
    from_texts(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())))
}

/// One file's text: no more than a manifest may hold (a hostile or mistaken path, a disk
/// image, cannot fill memory), and UTF-8. The inner error says what is wrong with the content.
fn read_text(file: &Path) -> std::io::Result<Result<String, String>> {
    use std::io::Read;
    let limit = crate::api::validate::MAX_MANIFEST_BYTES;
    let too_large = || {
        format!("more than the {limit} bytes a manifest file may hold: split it into several files")
    };
    let handle = std::fs::File::open(file)?;
    let size = handle.metadata()?.len();
    if size > limit as u64 {
        return Ok(Err(too_large()));
    }
    // `take` as well: a pipe or a file that grows while it is read has no honest size.
    let mut bytes = Vec::with_capacity(size as usize + 1);
    handle.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Ok(Err(too_large()));
    }
    Ok(String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (an invalid byte at offset {}): manifests are UTF-8 YAML or JSON; save the file as UTF-8",
            e.utf8_error().valid_up_to()
        )
    }))
}

/// Reads manifests from named texts.
pub fn from_texts<'a>(
    texts: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Workspace, CliError> {
    let mut ws = Workspace {
        account: default_account(),
        workloads: Vec::new(),
        volumes: Vec::new(),
        secrets: BTreeMap::new(),
        auto: Default::default(),
    };
    let mut errors = Vec::new();
    // (kind, namespace, name) -> the file that declared it first.
    let mut declared: BTreeMap<(String, String, String), &str> = BTreeMap::new();
    // Many files are read on every core (each file on one thread); one long file is read on
    // every core by the reader itself. The results are taken in the files' order.
    let texts: Vec<(&str, &str)> = texts.into_iter().collect();
    let total: usize = texts.iter().map(|(_, t)| t.len()).sum();
    // One file's objects into the workspace; what is wrong with them goes to `problems`.
    let mut add = |name: &'a str, manifest: Manifest, problems: &mut Vec<String>| {
        if let Some(error) = declared_twice(&mut declared, &manifest, name) {
            problems.push(error);
            return;
        }
        match manifest {
            Manifest::GpuWorkload(mut w) => {
                w.metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_string());
                ws.workloads.push(*w);
            }
            Manifest::NetworkVolume(mut v) => {
                v.metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_string());
                ws.volumes.push(*v);
            }
            Manifest::RunPodAccount(a) => ws.account = a.spec,
            Manifest::Other(value) if value["kind"] == "Secret" => {
                if let Err(e) = add_secret(&mut ws, &value) {
                    problems.push(format!(
                        "{name}: Secret {:?}: {e}",
                        value["metadata"]["name"]
                    ));
                }
            }
            Manifest::Other(_) => {}
        }
    };
    // A file that cannot be read reports only why; one that can, what is wrong with its
    // objects (declared twice, a Secret that cannot be read).
    let mut settle = |read: Result<(), Vec<ManifestError>>, problems: Vec<String>| match read {
        Err(found) => errors.extend(found.into_iter().map(|e| e.to_string())),
        Ok(()) => errors.extend(problems),
    };
    if texts.len() > 1 && total >= PARALLEL_BYTES {
        // Many files: each on one thread, the results taken in the files' order.
        ordered::in_order(
            texts.iter().copied(),
            ordered::threads(),
            |(name, text)| (name, parse_manifests_on(text, name, 1)),
            |(name, read)| {
                let mut problems = Vec::new();
                let read = read.map(|manifests| {
                    for manifest in manifests {
                        add(name, manifest, &mut problems);
                    }
                });
                settle(read, problems);
                true
            },
        );
    } else {
        // One file at a time, a long one on every core; each object goes into the workspace as
        // it is read, so 10,000 workloads are never held twice.
        for (name, text) in texts {
            let threads = if text.len() >= PARALLEL_BYTES {
                ordered::threads()
            } else {
                1
            };
            let mut problems = Vec::new();
            let read = parse_manifests_into(text, name, threads, |manifest| {
                add(name, manifest, &mut problems);
            });
            settle(read, problems);
        }
    }
    if errors.is_empty() {
        Ok(ws)
    } else {
        Err(CliError::Manifests(errors))
    }
}

/// The same object in two documents (two files, or twice in one) would have the later one
/// silently replace the earlier, or both fight over one RunPod object; refuse it, naming both.
fn declared_twice<'a>(
    declared: &mut BTreeMap<(String, String, String), &'a str>,
    manifest: &Manifest,
    file: &'a str,
) -> Option<String> {
    let (kind, metadata) = match manifest {
        Manifest::GpuWorkload(w) => ("GpuWorkload", &w.metadata),
        Manifest::NetworkVolume(v) => ("NetworkVolume", &v.metadata),
        Manifest::RunPodAccount(a) => ("RunPodAccount", &a.metadata),
        Manifest::Other(value) if value["kind"] == "Secret" => {
            let namespace = value["metadata"]["namespace"].as_str().unwrap_or("default");
            let name = value["metadata"]["name"].as_str()?;
            return remember(declared, ("Secret", namespace, name), file);
        }
        Manifest::Other(_) => return None,
    };
    // The operator's RunPodAccount is cluster-scoped.
    let namespace = match manifest {
        Manifest::RunPodAccount(_) => "",
        _ => metadata.namespace.as_deref().unwrap_or("default"),
    };
    remember(
        declared,
        (
            kind,
            namespace,
            metadata.name.as_deref().unwrap_or_default(),
        ),
        file,
    )
}

fn remember<'a>(
    declared: &mut BTreeMap<(String, String, String), &'a str>,
    (kind, namespace, name): (&str, &str, &str),
    file: &'a str,
) -> Option<String> {
    let key = (kind.to_string(), namespace.to_string(), name.to_string());
    let object = if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    };
    match declared.get(&key) {
        Some(first) if *first == file => Some(format!(
            "{file}: {object} is declared twice in this file: keep one (the two would replace each other on RunPod)"
        )),
        Some(first) => Some(format!(
            "{file}: {object} is also declared in {first}: keep one of the two (they would replace each other on RunPod)"
        )),
        None => {
            declared.insert(key, file);
            None
        }
    }
}

/// Checks that every Secret key the workloads read is in the manifests. Without a cluster
/// nothing else can supply one, so a missing Secret is an error now, naming each one and how
/// to add it, not a wait that can never end (the controller waits: there, a Secret can appear).
pub fn require_secrets(ws: &Workspace) -> Result<(), CliError> {
    // (namespace, Secret) -> (key, who reads it) for each read that finds nothing.
    let mut missing: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for w in &ws.workloads {
        let namespace = w.metadata.namespace.as_deref().unwrap_or("default");
        let name = w.metadata.name.as_deref().unwrap_or_default();
        for (i, var) in w.spec.env.iter().enumerate() {
            let Some(from) = &var.value_from else {
                continue;
            };
            let key = &from.secret_key_ref;
            let found = ws
                .secrets
                .get(namespace)
                .and_then(|s| s.get(&key.name))
                .is_some_and(|data| data.contains_key(&key.key));
            if !found {
                missing
                    .entry((namespace.to_string(), key.name.clone()))
                    .or_default()
                    .push((
                        key.key.clone(),
                        format!("GpuWorkload {namespace}/{name} (spec.env[{i}])"),
                    ));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut text = format!(
        "{} Secret(s) the manifests read are not in them, and without a cluster nothing else can supply them:",
        missing.len()
    );
    for ((namespace, name), uses) in &missing {
        let present = ws
            .secrets
            .get(namespace)
            .is_some_and(|s| s.contains_key(name));
        let state = if present {
            "has no such key"
        } else {
            "is missing"
        };
        let reads: Vec<String> = uses
            .iter()
            .map(|(key, by)| format!("key {key:?} for {by}"))
            .collect();
        text.push_str(&format!(
            "\n  - Secret {namespace}/{name} {state}: {}",
            reads.join("; ")
        ));
    }
    text.push_str("\nAdd each as a `kind: Secret` manifest in a file passed with -f (or in the folder), e.g.:");
    for ((namespace, name), uses) in &missing {
        let key = uses.first().map_or("key", |(key, _)| key.as_str());
        text.push_str(&format!(
            "\n  kubectl create secret generic {name} -n {namespace} --from-literal={key}=<value> --dry-run=client -o yaml > secret-{name}.yaml"
        ));
    }
    Err(CliError::Usage(text))
}

fn default_account() -> RunPodAccountSpec {
    serde_json::from_value(serde_json::json!({
        "apiKeySecretRef": {"namespace": "runpod-operator", "name": "runpod-api-key"}
    }))
    .expect("the default account is valid")
}

fn add_secret(ws: &mut Workspace, value: &Value) -> Result<(), String> {
    let namespace = value["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = value["metadata"]["name"]
        .as_str()
        .ok_or("metadata.name is missing")?
        .to_string();
    let mut data = BTreeMap::new();
    for (key, encoded) in value["data"].as_object().into_iter().flatten() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .map_err(|e| format!("data.{key} is not base64: {e}"))?;
        data.insert(key.clone(), String::from_utf8_lossy(&bytes).into_owned());
    }
    for (key, plain) in value["stringData"].as_object().into_iter().flatten() {
        data.insert(key.clone(), plain.as_str().unwrap_or_default().to_string());
    }
    ws.secrets.entry(namespace).or_default().insert(name, data);
    Ok(())
}
