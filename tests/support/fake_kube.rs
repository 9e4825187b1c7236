//! A stateful fake Kubernetes API server on loopback, for tests that run the operator's real
//! wiring (`run_until`, the watches, readiness, the Lease) with kube's real `Client`.
//!
//! It keeps objects by resource, namespace and name with one resourceVersion counter, and
//! answers what the operator and kube-runtime send: list, watch (from a resourceVersion, with
//! bookmarks), get, create, replace (refused with 409 on a stale resourceVersion), delete
//! (finalizers hold an object with a `deletionTimestamp` until the last one goes), JSON merge
//! patches, JSON patches (`test` included, as kube-runtime's finalizer helper uses), and
//! server-side apply (the status subresource replaced whole, as for a single field manager).
//! `metadata.generation` moves when the spec does. Every request is counted by method and path.
//!
//! What it does not do: schema validation, admission, label or field selectors, garbage
//! collection, and strategic merge beyond a JSON merge.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Resources with a status subresource: a write to the object keeps the stored status.
const WITH_STATUS: [&str; 3] = ["gpuworkloads", "networkvolumes", "runpodaccounts"];

/// One stored change, for watches.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    resource: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Store {
    rv: u64,
    uid: u64,
    /// (resource, namespace, name) -> object. `resource` is `group/version/plural`.
    objects: BTreeMap<(String, String, String), Value>,
    history: Vec<Change>,
    /// Requests by `METHOD path`.
    requests: BTreeMap<String, u64>,
    /// Faults to inject: (method, path suffix) -> remaining count of 500s.
    faults: Vec<(String, String, u32)>,
}

/// The fake server.
#[derive(Clone)]
pub struct FakeKube {
    store: Arc<Mutex<Store>>,
    changed: Arc<watch::Sender<u64>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": reason, "message": message, "code": code.as_u16()})
        .to_string(),
    )
        .into_response()
}

fn ok(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A parsed path: `/api/v1/...` or `/apis/{group}/{version}/...`.
#[derive(Debug)]
struct Target {
    resource: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group_version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (format!("/{version}"), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_string()), None),
        [plural, name, sub] => (*plural, Some((*name).to_string()), Some((*sub).to_string())),
        _ => return None,
    };
    Some(Target {
        resource: format!("{group_version}/{plural}"),
        plural: plural.to_string(),
        namespace,
        name,
        subresource,
    })
}

fn query(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// RFC 7386.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let object = target.as_object_mut().expect("an object");
            for (k, v) in fields {
                if v.is_null() {
                    object.remove(k);
                } else {
                    merge(object.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// RFC 6902, the operations kube sends: add, remove, replace, test. A `test` of a missing path
/// against `null` passes, as the API server's implementation does.
fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("a JSON patch is an array")? {
        let path = op["path"].as_str().ok_or("path")?;
        let tokens: Vec<String> = path.split('/').skip(1).map(unescape).collect();
        let (last, parents) = tokens.split_last().ok_or("empty path")?;
        let mut parent = &mut *doc;
        for t in parents {
            parent = match parent {
                Value::Object(o) => o.get_mut(t).ok_or(format!("no {path}"))?,
                Value::Array(a) => {
                    let i: usize = t.parse().map_err(|_| format!("bad index in {path}"))?;
                    a.get_mut(i).ok_or(format!("no {path}"))?
                }
                _ => return Err(format!("no {path}")),
            };
        }
        let current = match parent {
            Value::Object(o) => o.get(last).cloned(),
            Value::Array(a) => last.parse::<usize>().ok().and_then(|i| a.get(i).cloned()),
            _ => None,
        };
        match op["op"].as_str().unwrap_or_default() {
            "test" => {
                if current.unwrap_or(Value::Null) != op["value"] {
                    return Err(format!("test failed at {path}"));
                }
            }
            "add" | "replace" => {
                let value = op["value"].clone();
                match parent {
                    Value::Object(o) => {
                        o.insert(last.clone(), value);
                    }
                    Value::Array(a) if last == "-" => a.push(value),
                    Value::Array(a) => {
                        let i: usize = last.parse().map_err(|_| format!("bad index {path}"))?;
                        if i > a.len() {
                            return Err(format!("index out of range {path}"));
                        }
                        if op["op"] == "replace" && i < a.len() {
                            a[i] = value;
                        } else {
                            a.insert(i, value);
                        }
                    }
                    _ => return Err(format!("no parent for {path}")),
                }
            }
            "remove" => match parent {
                Value::Object(o) => {
                    o.remove(last).ok_or(format!("no {path}"))?;
                }
                Value::Array(a) => {
                    let i: usize = last.parse().map_err(|_| format!("bad index {path}"))?;
                    if i >= a.len() {
                        return Err(format!("no {path}"));
                    }
                    a.remove(i);
                }
                _ => return Err(format!("no {path}")),
            },
            other => return Err(format!("unsupported op {other}")),
        }
    }
    Ok(())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap()
        .to_string()
}

impl Store {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, resource: &str, namespace: &str, kind: &'static str, object: Value) {
        let rv = self.rv;
        self.history.push(Change {
            rv,
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            kind,
            object,
        });
    }

    /// Stores `object` as the new state of an existing key: a new resourceVersion, a new
    /// generation when the spec moved, and removal once deleting with no finalizer left.
    fn update(&mut self, key: &(String, String, String), mut object: Value) -> Value {
        let old = self.objects.get(key).cloned().unwrap_or(Value::Null);
        if old["spec"] != object["spec"] {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object["metadata"]["generation"] = json!(generation);
        }
        let rv = self.bump();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let deleting = object["metadata"]["deletionTimestamp"].is_string();
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if deleting && !finalizers {
            self.objects.remove(key);
            self.record(&key.0, &key.1, "DELETED", object.clone());
        } else {
            self.objects.insert(key.clone(), object.clone());
            self.record(&key.0, &key.1, "MODIFIED", object.clone());
        }
        object
    }
}

impl FakeKube {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, _) = watch::channel(0);
        let fake = Self {
            store: Arc::default(),
            changed: Arc::new(tx),
            addr,
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube `Client` for it.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// Writes a kubeconfig for it into `dir` and returns the path.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user:\n    token: fake\ncontexts:\n- name: fake\n  context:\n    \
             cluster: fake\n    user: fake\ncurrent-context: fake\n",
            self.url()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Requests so far whose `METHOD path` starts with `prefix`.
    pub fn requests(&self, prefix: &str) -> u64 {
        let store = self.store.lock().unwrap();
        store
            .requests
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// The next `count` requests `METHOD` to a path ending in `suffix` answer 500.
    pub fn fail(&self, method: &str, suffix: &str, count: u32) {
        self.store
            .lock()
            .unwrap()
            .faults
            .push((method.to_string(), suffix.to_string(), count));
    }

    /// A stored object, by `group/version/plural` (core: `/v1/plural`), namespace and name.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.store
            .lock()
            .unwrap()
            .objects
            .get(&(
                resource.to_string(),
                namespace.to_string(),
                name.to_string(),
            ))
            .cloned()
    }

    /// Every stored object of a resource.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        self.store
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((r, _, _), _)| r == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn notify(&self) {
        let rv = self.store.lock().unwrap().rv;
        self.changed.send_replace(rv);
    }
}

async fn handle(State(fake): State<FakeKube>, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = uri.path().to_string();
    let bytes = axum::body::to_bytes(request.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let q = query(&uri);
    {
        let mut store = fake.store.lock().unwrap();
        *store
            .requests
            .entry(format!("{method} {path}"))
            .or_default() += 1;
        let fault = store
            .faults
            .iter_mut()
            .find(|(m, suffix, n)| *n > 0 && *m == method.as_str() && path.ends_with(suffix));
        if let Some(fault) = fault {
            fault.2 -= 1;
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "injected",
            );
        }
    }
    let Some(target) = parse(&path) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such path");
    };
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let response = match (&method, &target.name) {
        (&Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return watch_stream(fake, target, q);
        }
        (&Method::GET, None) => list(&fake, &target),
        (&Method::GET, Some(name)) => get(&fake, &target, name),
        (&Method::POST, None) => create(&fake, &target, body),
        (&Method::PUT, Some(name)) => replace(&fake, &target, name, body),
        (&Method::PATCH, Some(name)) => patch(&fake, &target, name, &content_type, &body),
        (&Method::DELETE, Some(name)) => delete(&fake, &target, name),
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "no"),
    };
    fake.notify();
    response
}

fn key(target: &Target, name: &str) -> (String, String, String) {
    (
        target.resource.clone(),
        target.namespace.clone().unwrap_or_default(),
        name.to_string(),
    )
}

fn list(fake: &FakeKube, target: &Target) -> Response {
    let store = fake.store.lock().unwrap();
    let items: Vec<&Value> = store
        .objects
        .iter()
        .filter(|((r, ns, _), _)| {
            *r == target.resource && target.namespace.as_ref().is_none_or(|t| t == ns)
        })
        .map(|(_, v)| v)
        .collect();
    ok(
        StatusCode::OK,
        &json!({"kind": "List", "apiVersion": "v1",
                "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
    )
}

fn get(fake: &FakeKube, target: &Target, name: &str) -> Response {
    let store = fake.store.lock().unwrap();
    match store.objects.get(&key(target, name)) {
        Some(object) => ok(StatusCode::OK, object),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{} {name:?} not found", target.plural),
        ),
    }
}

fn create(fake: &FakeKube, target: &Target, mut object: Value) -> Response {
    let mut store = fake.store.lock().unwrap();
    let name = match object["metadata"]["name"].as_str() {
        Some(name) => name.to_string(),
        None => match object["metadata"]["generateName"].as_str() {
            Some(prefix) => format!("{prefix}{}", store.uid + 1),
            None => return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "name required"),
        },
    };
    let k = key(target, &name);
    if store.objects.contains_key(&k) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{} {name:?} already exists", target.plural),
        );
    }
    store.uid += 1;
    // Distinct first eight characters: the operator names RunPod objects by them.
    let mixed = (store.uid as u32).wrapping_mul(2_654_435_761);
    let uid = format!("{mixed:08x}-0000-4000-8000-{:012}", store.uid);
    let rv = store.bump();
    let metadata = &mut object["metadata"];
    metadata["name"] = json!(name);
    if let Some(ns) = &target.namespace {
        metadata["namespace"] = json!(ns);
    }
    metadata["uid"] = json!(uid);
    metadata["resourceVersion"] = json!(rv.to_string());
    metadata["generation"] = json!(1);
    metadata["creationTimestamp"] = json!(now());
    if WITH_STATUS.contains(&target.plural.as_str()) {
        object.as_object_mut().unwrap().remove("status");
    }
    string_data(&mut object);
    store.objects.insert(k.clone(), object.clone());
    store.record(&k.0, &k.1, "ADDED", object.clone());
    ok(StatusCode::CREATED, &object)
}

fn replace(fake: &FakeKube, target: &Target, name: &str, mut object: Value) -> Response {
    let mut store = fake.store.lock().unwrap();
    let k = key(target, name);
    let Some(old) = store.objects.get(&k).cloned() else {
        return status(StatusCode::NOT_FOUND, "NotFound", "not found");
    };
    let sent = object["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if !sent.is_empty() && sent != old["metadata"]["resourceVersion"].as_str().unwrap_or("") {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        );
    }
    for field in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
    ] {
        object["metadata"][field] = old["metadata"][field].clone();
    }
    if WITH_STATUS.contains(&target.plural.as_str()) {
        object["status"] = old["status"].clone();
    }
    strip_nulls(&mut object);
    string_data(&mut object);
    let written = store.update(&k, object);
    ok(StatusCode::OK, &written)
}

/// A Secret's `stringData` becomes base64 `data`, as the API server does.
fn string_data(object: &mut Value) {
    use base64::Engine;
    let Some(strings) = object
        .as_object_mut()
        .and_then(|o| o.remove("stringData"))
        .and_then(|v| v.as_object().cloned())
    else {
        return;
    };
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        object["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Drops `null` metadata fields copied from an old object that did not have them.
fn strip_nulls(object: &mut Value) {
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.retain(|_, v| !v.is_null());
    }
    if let Some(o) = object.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
}

fn patch(
    fake: &FakeKube,
    target: &Target,
    name: &str,
    content_type: &str,
    body: &Value,
) -> Response {
    let mut store = fake.store.lock().unwrap();
    let k = key(target, name);
    let on_status = target.subresource.as_deref() == Some("status");
    let apply = content_type.starts_with("application/apply-patch");
    let Some(old) = store.objects.get(&k).cloned() else {
        if apply && !on_status {
            drop(store);
            return create(fake, target, body.clone());
        }
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{} {name:?} not found", target.plural),
        );
    };
    let mut object = old.clone();
    if apply && on_status {
        // One field manager writes the whole status: applying it replaces it.
        object["status"] = body["status"].clone();
    } else if content_type.starts_with("application/json-patch") {
        if let Err(e) = json_patch(&mut object, body) {
            return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e);
        }
    } else {
        merge(&mut object, body);
    }
    if on_status {
        // The status subresource changes the status only.
        let new_status = object["status"].clone();
        object = old.clone();
        object["status"] = new_status;
    } else if WITH_STATUS.contains(&target.plural.as_str()) {
        object["status"] = old["status"].clone();
    }
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "name",
        "namespace",
    ] {
        object["metadata"][field] = old["metadata"][field].clone();
    }
    strip_nulls(&mut object);
    if object == old {
        // Nothing changed: no new resourceVersion, no watch event (as the API server does).
        return ok(StatusCode::OK, &old);
    }
    let written = store.update(&k, object);
    ok(StatusCode::OK, &written)
}

fn delete(fake: &FakeKube, target: &Target, name: &str) -> Response {
    let mut store = fake.store.lock().unwrap();
    let k = key(target, name);
    let Some(mut object) = store.objects.get(&k).cloned() else {
        return status(StatusCode::NOT_FOUND, "NotFound", "not found");
    };
    if object["metadata"]["deletionTimestamp"].is_null() {
        object["metadata"]["deletionTimestamp"] = json!(now());
    }
    let written = store.update(&k, object);
    ok(StatusCode::OK, &written)
}

fn watch_stream(fake: FakeKube, target: Target, q: BTreeMap<String, String>) -> Response {
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(290u64)
        .min(30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let rx = fake.changed.subscribe();
    struct Cursor {
        fake: FakeKube,
        target: Target,
        rv: u64,
        rx: watch::Receiver<u64>,
        last_bookmark: tokio::time::Instant,
    }
    let cursor = Cursor {
        fake,
        target,
        rv: from,
        rx,
        last_bookmark: tokio::time::Instant::now(),
    };
    let stream = futures::stream::unfold(Some(cursor), move |cursor| async move {
        let mut c = cursor?;
        loop {
            let (events, head) = {
                let store = c.fake.store.lock().unwrap();
                let start = store.history.partition_point(|ch| ch.rv <= c.rv);
                let events: Vec<Change> = store.history[start..]
                    .iter()
                    .filter(|ch| {
                        ch.resource == c.target.resource
                            && c.target
                                .namespace
                                .as_ref()
                                .is_none_or(|ns| *ns == ch.namespace)
                    })
                    .cloned()
                    .collect();
                (events, store.rv)
            };
            if !events.is_empty() {
                let mut out = String::new();
                for ev in &events {
                    out.push_str(&json!({"type": ev.kind, "object": ev.object}).to_string());
                    out.push('\n');
                }
                c.rv = head.max(c.rv);
                return Some((Ok::<_, Infallible>(Bytes::from(out)), Some(c)));
            }
            if bookmarks && c.last_bookmark.elapsed() >= Duration::from_secs(1) && head > c.rv {
                c.rv = head;
                c.last_bookmark = tokio::time::Instant::now();
                let kind = c.target.plural.clone();
                let line = json!({"type": "BOOKMARK", "object": {
                    "kind": kind, "apiVersion": "v1",
                    "metadata": {"resourceVersion": head.to_string()}}})
                .to_string()
                    + "\n";
                return Some((Ok(Bytes::from(line)), Some(c)));
            }
            tokio::select! {
                _ = c.rx.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}
