//! Private registries: the login a workload's image needs, read from a Kubernetes Secret, and
//! the RunPod registry credential that carries it.
//!
//! RunPod keeps a credential write-only (`POST /v2/registries` takes a user name and password;
//! reads give back only the id and the name), so the operator cannot compare what RunPod holds
//! with the Secret. Instead the credential's name carries a digest of the login: a Secret that
//! changes asks for a credential of another name. The switch is make-before-break: create the
//! new credential, point the pod or endpoint at it, then delete the old one (RunPod refuses to
//! delete a credential in use). The password goes into no name, log line, status or Event:
//! [`Sensitive`] prints as `[REDACTED]` and is skipped when a plan is serialized.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::identity::Owner;

/// The largest Secret value read as a Docker config (Kubernetes caps a Secret at 1 MiB).
pub const MAX_DOCKER_CONFIG_BYTES: usize = 1 << 20;

/// Hex digits of the login digest in a credential's name: 40 bits.
const DIGEST_HEX: usize = 10;

/// A string that must not be shown: `Debug` prints `[REDACTED]`, and it has no `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// The registry credential a workload needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredRegistry {
    /// RunPod's name for it: the owner's prefix and a digest of the login.
    pub name: String,
    /// The registry host the login is for, e.g. `ghcr.io` or `docker.io`.
    pub server: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: Sensitive,
}

/// The registry host of an image reference, as Docker reads it: the first path component when
/// it looks like a host (has a `.` or a `:`, or is `localhost`), else Docker Hub.
pub fn image_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            normalise_host(first)
        }
        _ => "docker.io".to_string(),
    }
}

/// A Docker config `auths` key as a host: no scheme, no path, Docker Hub's aliases as one.
fn normalise_host(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// The prefix of every registry credential `owner` makes.
pub fn name_prefix(owner: &Owner) -> String {
    format!("{}-reg-", owner.runpod_name())
}

/// Whether a RunPod credential name is one `owner` made: its prefix, then exactly the digest.
pub fn owned_by(owner_prefix: &str, name: &str) -> bool {
    name.strip_prefix(owner_prefix)
        .is_some_and(|rest| rest.len() == DIGEST_HEX && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The credential's name: `<owner's RunPod name>-reg-<digest>`, where the digest is the first
/// 40 bits of a SHA-256 over the owner's UID, the host, the user name and the password. It
/// changes when any of them does (so a rotated Secret makes a new credential) and, salted with
/// the UID and cut to 40 bits, does not let the password be checked against a word list with
/// any confidence.
pub fn credential_name(owner: &Owner, server: &str, username: &str, password: &str) -> String {
    let mut input = Vec::new();
    for part in [
        "runpod-operator/registry/v1",
        &owner.uid,
        server,
        username,
        password,
    ] {
        input.extend_from_slice(part.as_bytes());
        input.push(0);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    format!("{}{}", name_prefix(owner), &hex[..DIGEST_HEX])
}

/// Why a Secret gives no login, in words that name the Secret and the fix.
fn no_login(secret: &str, why: impl std::fmt::Display) -> String {
    format!("Secret {secret:?} {why}")
}

/// The login for `image` from a Secret's data: a `kubernetes.io/dockerconfigjson` Secret (key
/// `.dockerconfigjson`, or the older `.dockercfg`), whose entry for the image's host is used,
/// or a Secret with `username` and `password` keys. The Secret is untrusted input: any shape is
/// an error naming the key, never a panic, and the password is never part of an error.
pub fn login_from_secret(
    secret: &str,
    data: &BTreeMap<String, String>,
    image: &str,
) -> Result<(String, String, String), String> {
    let server = image_host(image);
    let config = data
        .get(".dockerconfigjson")
        .map(|v| (".dockerconfigjson", v, true))
        .or_else(|| data.get(".dockercfg").map(|v| (".dockercfg", v, false)));
    let (username, password) = if let Some((key, text, modern)) = config {
        docker_config_login(secret, key, text, modern, &server)?
    } else {
        match (data.get("username"), data.get("password")) {
            (Some(u), Some(p)) => (u.clone(), p.clone()),
            _ => {
                return Err(no_login(
                    secret,
                    "has no registry login: give it a .dockerconfigjson key (kubectl create secret docker-registry) or the keys username and password",
                ));
            }
        }
    };
    if username.is_empty() || password.is_empty() {
        return Err(no_login(
            secret,
            format!("has an empty user name or password for {server}"),
        ));
    }
    if username.len() > 1024 || password.len() > 64 * 1024 {
        return Err(no_login(
            secret,
            format!("has a user name or password for {server} too long to be a registry login"),
        ));
    }
    Ok((server, username, password))
}

fn docker_config_login(
    secret: &str,
    key: &str,
    text: &str,
    modern: bool,
    server: &str,
) -> Result<(String, String), String> {
    if text.len() > MAX_DOCKER_CONFIG_BYTES {
        return Err(no_login(
            secret,
            format!("key {key} is larger than {MAX_DOCKER_CONFIG_BYTES} bytes"),
        ));
    }
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        no_login(
            secret,
            format!(
                "key {key} is not a Docker config (JSON): line {} column {}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let auths = if modern {
        json.get("auths")
    } else {
        Some(&json)
    };
    let Some(auths) = auths.and_then(serde_json::Value::as_object) else {
        return Err(no_login(
            secret,
            format!("key {key} has no \"auths\" object"),
        ));
    };
    let entry = auths
        .iter()
        .find(|(host, _)| normalise_host(host) == server)
        .map(|(_, entry)| entry);
    let Some(entry) = entry else {
        let hosts: Vec<String> = auths.keys().map(|h| normalise_host(h)).collect();
        return Err(no_login(
            secret,
            format!(
                "key {key} has no login for {server}, the image's registry (it has: {}): add one, or fix spec.image",
                if hosts.is_empty() {
                    "none".to_string()
                } else {
                    hosts.join(", ")
                }
            ),
        ));
    };
    let text_of = |field: &str| {
        entry
            .get(field)
            .and_then(serde_json::Value::as_str)
            .filter(|v| !v.is_empty())
    };
    if let (Some(u), Some(p)) = (text_of("username"), text_of("password")) {
        return Ok((u.to_string(), p.to_string()));
    }
    let decoded = text_of("auth")
        .and_then(|auth| base64::engine::general_purpose::STANDARD.decode(auth).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|pair| pair.split_once(':')) {
        Some((u, p)) => Ok((u.to_string(), p.to_string())),
        None => Err(no_login(
            secret,
            format!(
                "key {key}: the entry for {server} has neither username and password nor an auth of base64 \"user:password\""
            ),
        )),
    }
}

/// The credential a workload needs, from its Secret's data.
pub fn desired_registry(
    owner: &Owner,
    secret: &str,
    data: &BTreeMap<String, String>,
    image: &str,
) -> Result<DesiredRegistry, String> {
    let (server, username, password) = login_from_secret(secret, data, image)?;
    Ok(DesiredRegistry {
        name: credential_name(owner, &server, &username, &password),
        server,
        username,
        password: Sensitive::new(password),
    })
}
