//! Private registries, pure: the login read from a Secret (hostile shapes included), the
//! credential's name, and the plan's steps (create before use, make-before-break rotation,
//! delete with the workload). The end-to-end run is `tests/private_registry.rs`.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use common::money;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use runpod_operator::{
    api::GpuWorkloadSpec,
    engine::{
        desired::{Desired, DesiredError, References, desired},
        identity::Owner,
        plan::{Action, Context, Observed, Plan, plan, plan_delete},
        prices::PriceCatalogue,
        registry::{credential_name, image_host, login_from_secret, name_prefix, owned_by},
    },
    runpod::types::Pod,
};
use serde_json::json;

const PASSWORD: &str = "s3cret-token-9f8e7d";

fn owner() -> Owner {
    Owner {
        namespace: "ml".into(),
        name: "trainer".into(),
        uid: "0b7f3c2a-1111-2222-3333-444455556666".into(),
    }
}

fn config(value: serde_json::Value) -> BTreeMap<String, String> {
    BTreeMap::from([(".dockerconfigjson".to_string(), value.to_string())])
}

// ---- the login --------------------------------------------------------------------------------

#[test]
fn a_docker_config_secret_gives_the_login_for_the_images_host() {
    let data = config(json!({"auths": {
        "https://index.docker.io/v1/": {"username": "hub", "password": "hub-pass"},
        "ghcr.io": {"username": "bot", "password": PASSWORD},
    }}));
    let (server, user, password) =
        login_from_secret("login", &data, "ghcr.io/acme/trainer:1").unwrap();
    assert_eq!(
        (server.as_str(), user.as_str(), password.as_str()),
        ("ghcr.io", "bot", PASSWORD)
    );
    let (server, user, _) = login_from_secret("login", &data, "acme/trainer:1").unwrap();
    assert_eq!((server.as_str(), user.as_str()), ("docker.io", "hub"));
}

#[test]
fn the_auth_field_alone_is_enough() {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("bot:{PASSWORD}"));
    let data = config(json!({"auths": {"registry.example.com:5000": {"auth": auth}}}));
    let (_, user, password) =
        login_from_secret("login", &data, "registry.example.com:5000/x/y@sha256:abc").unwrap();
    assert_eq!((user.as_str(), password.as_str()), ("bot", PASSWORD));
}

#[test]
fn username_and_password_keys_work_too() {
    let data = BTreeMap::from([
        ("username".to_string(), "bot".to_string()),
        ("password".to_string(), PASSWORD.to_string()),
    ]);
    let (server, user, _) =
        login_from_secret("login", &data, "nvcr.io/nvidia/pytorch:24.01").unwrap();
    assert_eq!((server.as_str(), user.as_str()), ("nvcr.io", "bot"));
}

#[test]
fn image_hosts_are_read_as_docker_reads_them() {
    assert_eq!(image_host("pytorch/pytorch:2.3"), "docker.io");
    assert_eq!(image_host("ubuntu"), "docker.io");
    assert_eq!(image_host("localhost/x"), "localhost");
    assert_eq!(image_host("localhost:5000/x"), "localhost:5000");
    assert_eq!(image_host("GHCR.io/acme/x"), "ghcr.io");
}

#[test]
fn a_secret_without_a_login_is_an_error_naming_the_secret_and_the_fix_never_the_password() {
    let cases: Vec<(BTreeMap<String, String>, &str)> = vec![
        (
            BTreeMap::from([("token".into(), PASSWORD.into())]),
            "username and password",
        ),
        (
            BTreeMap::from([(
                ".dockerconfigjson".into(),
                format!("{{\"auths\": {{\"ghcr.io\": {{\"password\": \"{PASSWORD}\""),
            )]),
            "not a Docker config",
        ),
        (config(json!({"auths": []})), "no \"auths\" object"),
        (
            config(json!({"auths": {"quay.io": {"username": "bot", "password": PASSWORD}}})),
            "has no login for ghcr.io",
        ),
        (
            config(json!({"auths": {"ghcr.io": {"username": "bot"}}})),
            "neither username and password",
        ),
        (
            config(json!({"auths": {"ghcr.io": {"auth": "%%%not-base64"}}})),
            "neither username and password",
        ),
        (
            config(json!({"auths": {"ghcr.io": {"username": "", "password": ""}}})),
            "neither username and password",
        ),
        (
            BTreeMap::from([(".dockerconfigjson".into(), " ".repeat(2 << 20))]),
            "larger than",
        ),
    ];
    for (data, expected) in cases {
        let error = login_from_secret("ghcr-login", &data, "ghcr.io/acme/x:1").unwrap_err();
        assert!(error.contains("\"ghcr-login\""), "{error}");
        assert!(error.contains(expected), "{error} (wanted {expected:?})");
        assert!(
            !error.contains(PASSWORD),
            "the password is in the error: {error}"
        );
    }
}

proptest! {
    /// Any bytes in any key: an answer or an error, never a panic.
    #[test]
    fn any_secret_content_is_read_without_a_panic(
        text in ".{0,300}",
        key in prop::sample::select(vec![".dockerconfigjson", ".dockercfg", "username", "password"]),
        image in "[a-zA-Z0-9./:@_-]{0,60}",
    ) {
        let data = BTreeMap::from([(key.to_string(), text)]);
        let _ = login_from_secret("s", &data, &image);
    }
}

// ---- the name ---------------------------------------------------------------------------------

#[test]
fn the_credential_name_follows_the_login_and_does_not_show_it() {
    let o = owner();
    let a = credential_name(&o, "ghcr.io", "bot", PASSWORD);
    assert_eq!(a, credential_name(&o, "ghcr.io", "bot", PASSWORD), "stable");
    assert_ne!(
        a,
        credential_name(&o, "ghcr.io", "bot", "another"),
        "a new password, a new name"
    );
    assert_ne!(a, credential_name(&o, "quay.io", "bot", PASSWORD));
    let other = Owner {
        uid: "ffff".into(),
        ..owner()
    };
    assert_ne!(
        a,
        credential_name(&other, "ghcr.io", "bot", PASSWORD),
        "salted by the owner"
    );
    assert!(!a.contains(PASSWORD) && !a.contains("bot"));
    let prefix = name_prefix(&o);
    assert!(owned_by(&prefix, &a));
    // A workload whose name extends this one's prefix does not own it, nor the reverse.
    let lookalike = Owner {
        name: format!("trainer-{}-reg-0123456789", &o.uid[..8]),
        ..owner()
    };
    let theirs = credential_name(&lookalike, "ghcr.io", "bot", PASSWORD);
    assert!(theirs.starts_with(&prefix));
    assert!(!owned_by(&prefix, &theirs));
}

// ---- the plan ---------------------------------------------------------------------------------

const SPEC: &str = r#"
type: Pod
image: ghcr.io/acme/trainer:1
registryCredentials: {name: ghcr-login}
gpu: {types: ["NVIDIA RTX A5000"], count: 1}
spendingCap: {usdPerHour: "3"}
"#;

fn spec(yaml: &str) -> GpuWorkloadSpec {
    serde_norway::from_str(yaml).unwrap()
}

fn refs(password: &str) -> References {
    References {
        secrets: BTreeMap::from([(
            "ghcr-login".to_string(),
            config(json!({"auths": {"ghcr.io": {"username": "bot", "password": password}}})),
        )]),
        ..References::default()
    }
}

struct Account {
    prices: PriceCatalogue,
    owner: Owner,
    pods: Vec<Pod>,
    registries: BTreeMap<String, String>,
}

impl Account {
    fn new() -> Self {
        Self {
            prices: PriceCatalogue::builtin(),
            owner: owner(),
            pods: Vec::new(),
            registries: BTreeMap::new(),
        }
    }

    fn plan(&self, spec: &GpuWorkloadSpec, refs: &References, listed: bool) -> Plan {
        let desired: Desired = desired(&self.owner, spec, refs, &self.prices).unwrap();
        let ctx = Context {
            owner: &self.owner,
            spec,
            approved_hash: None,
            adopt_id: None,
            known_id: None,
            prices: &self.prices,
            money: money(),
            stopped_volume_policy: None,
            stopped_since: None,
            now: Timestamp::from_second(1_767_225_600).unwrap(),
        };
        let observed = Observed {
            registries: listed.then_some(&self.registries),
            ..Observed::scan(&self.pods, &[])
        };
        plan(&desired, observed, &ctx)
    }

    /// What RunPod does with one action, for the steps these tests take.
    fn apply(&mut self, action: &Action) {
        match action {
            Action::CreateRegistry { name, .. } => {
                let id = format!("reg{}", self.registries.len() + 1);
                self.registries.insert(name.clone(), id);
            }
            Action::DeleteRegistry { id, .. } => self.registries.retain(|_, v| v != id),
            other => {
                let mut next = self.pods.len() as u64;
                runpod_operator::engine::model::apply(
                    other,
                    &mut self.pods,
                    &mut Vec::new(),
                    &mut next,
                );
            }
        }
    }

    fn first_write(&self, spec: &GpuWorkloadSpec, refs: &References) -> Option<Action> {
        self.plan(spec, refs, true)
            .actions
            .into_iter()
            .find(Action::writes)
    }
}

#[test]
fn the_credential_is_created_before_the_pod_and_the_pod_carries_it() {
    let mut account = Account::new();
    let spec = spec(SPEC);
    let refs = refs(PASSWORD);
    let plan = account.plan(&spec, &refs, true);
    assert!(
        matches!(plan.actions.as_slice(), [Action::CreateRegistry { .. }]),
        "{:?}",
        plan.actions
    );
    assert!(
        plan.spend.is_none(),
        "no spending is asked for before the credential exists"
    );
    account.apply(&plan.actions[0]);
    let Some(Action::CreatePod { request, .. }) = account.first_write(&spec, &refs) else {
        panic!("then the pod");
    };
    assert_eq!(request.registry.as_deref(), Some("reg1"));
}

#[test]
fn nothing_is_created_or_deleted_while_the_credentials_are_not_listed() {
    let account = Account::new();
    let plan = account.plan(&spec(SPEC), &refs(PASSWORD), false);
    assert!(
        !plan.actions.iter().any(Action::writes),
        "{:?}",
        plan.actions
    );
}

#[test]
fn a_rotated_secret_is_make_before_break_and_leaves_one_credential() {
    let mut account = Account::new();
    let spec = spec(SPEC);
    let (old, new) = (refs(PASSWORD), refs("rotated-token"));
    while let Some(action) = account.first_write(&spec, &old) {
        account.apply(&action);
    }
    let first = account.registries.clone();
    assert_eq!(first.len(), 1);

    let steps: Vec<Action> = std::iter::from_fn(|| {
        let action = account.first_write(&spec, &new)?;
        account.apply(&action);
        Some(action)
    })
    .take(10)
    .collect();
    assert!(
        matches!(steps[0], Action::CreateRegistry { .. }),
        "{steps:?}"
    );
    assert!(
        matches!(&steps[1], Action::UpdatePod { request, resets: true, .. } if request.registry == Some(Some("reg2".into()))),
        "{steps:?}"
    );
    assert!(
        matches!(&steps[2], Action::DeleteRegistry { id, .. } if id == "reg1"),
        "{steps:?}"
    );
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(
        account.registries.values().collect::<Vec<_>>(),
        vec!["reg2"]
    );
}

#[test]
fn removing_registry_credentials_detaches_the_pod_then_deletes_the_credential() {
    let mut account = Account::new();
    let private = spec(SPEC);
    let refs = refs(PASSWORD);
    while let Some(action) = account.first_write(&private, &refs) {
        account.apply(&action);
    }
    let public = spec(&SPEC.replace("registryCredentials: {name: ghcr-login}\n", ""));
    let detach = account.first_write(&public, &refs).unwrap();
    assert!(
        matches!(&detach, Action::UpdatePod { request, .. } if request.registry == Some(None)),
        "{detach:?}"
    );
    account.apply(&detach);
    let delete = account.first_write(&public, &refs).unwrap();
    assert!(
        matches!(delete, Action::DeleteRegistry { .. }),
        "{delete:?}"
    );
    account.apply(&delete);
    assert!(account.first_write(&public, &refs).is_none());
}

#[test]
fn a_credential_the_workload_did_not_make_is_left_on_its_pod() {
    // A public-image spec, and a pod whose credential someone set in RunPod's console.
    let mut account = Account::new();
    let public = spec(&SPEC.replace("registryCredentials: {name: ghcr-login}\n", ""));
    let refs = References::default();
    while let Some(action) = account.first_write(&public, &refs) {
        account.apply(&action);
    }
    account
        .registries
        .insert("team-ghcr".into(), "console1".into());
    account.pods[0].registry = Some("console1".into());
    let plan = account.plan(&public, &refs, true);
    assert!(
        !plan.actions.iter().any(Action::writes),
        "{:?}",
        plan.actions
    );
}

#[test]
fn deleting_the_workload_deletes_the_pod_first_then_its_credentials_only() {
    let mut account = Account::new();
    let spec = spec(SPEC);
    let refs = refs(PASSWORD);
    while let Some(action) = account.first_write(&spec, &refs) {
        account.apply(&action);
    }
    account
        .registries
        .insert("someone-elses".into(), "reg9".into());
    let observed = Observed {
        registries: Some(&account.registries),
        ..Observed::scan(&account.pods, &[])
    };
    let steps = plan_delete(&account.owner, None, observed, false);
    assert!(
        matches!(steps.as_slice(), [Action::DeletePod { .. }, Action::DeleteRegistry { id, .. }] if id == "reg1"),
        "{steps:?}"
    );
}

#[test]
fn a_missing_secret_stalls_the_workload_with_its_name_and_the_fix() {
    let error = desired(
        &owner(),
        &spec(SPEC),
        &References::default(),
        &PriceCatalogue::builtin(),
    )
    .unwrap_err();
    let DesiredError::Invalid(errors) = error else {
        panic!("Invalid, not waiting: {error:?}");
    };
    assert_eq!(errors[0].path, "spec.registryCredentials.name");
    assert!(
        errors[0].message.contains("\"ghcr-login\"")
            && errors[0]
                .message
                .contains("kubectl create secret docker-registry")
    );
}

#[test]
fn the_password_is_in_no_plan_output() {
    let account = Account::new();
    let plan = account.plan(&spec(SPEC), &refs(PASSWORD), true);
    let json = serde_json::to_string(&plan.actions).unwrap();
    let debug = format!("{plan:?}");
    let words: Vec<String> = plan.actions.iter().map(Action::describe).collect();
    assert!(
        json.contains("CreateRegistry") || json.contains("createRegistry"),
        "{json}"
    );
    for text in [json, debug, words.join("\n")] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
}
