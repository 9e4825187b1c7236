//! Registry credentials in a plan: create the one the login needs before anything uses it,
//! point the pod or endpoint at it, and delete the workload's older ones once nothing uses
//! them (make-before-break: RunPod refuses to delete a credential in use).

use std::collections::BTreeMap;

use super::{Action, Draft, drift::drift};
use crate::engine::{
    identity::Owner,
    registry::{self, DesiredRegistry},
};

/// The workload's own credentials in the account's list (name -> id), by name.
fn own<'a>(
    list: &'a BTreeMap<String, String>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a String)> {
    list.range::<str, _>((
        std::ops::Bound::Included(prefix),
        std::ops::Bound::Unbounded,
    ))
    .take_while(move |(name, _)| name.starts_with(prefix))
    .filter(move |(name, _)| registry::owned_by(prefix, name))
}

/// Adds the credential steps to a workload's plan, after its pod or endpoint was planned.
pub(super) fn plan_registry(
    want: Option<&DesiredRegistry>,
    listed: Option<&BTreeMap<String, String>>,
    owner: &Owner,
    draft: &mut Draft,
) {
    let Some(list) = listed else {
        if want.is_some() {
            // Not listed yet: neither create nor use nor delete anything.
            draft.actions.retain(|a| !creates(a));
            draft.spend = None;
            draft.waiting =
                Some("waiting for the account's registry credentials to be read".into());
        }
        return;
    };
    let prefix = registry::name_prefix(owner);
    let id = match want {
        None => None,
        Some(want) => match list.get(&want.name) {
            Some(id) => Some(id.clone()),
            None => {
                // Make it first; nothing may be created without it.
                if draft.actions.iter().any(creates) {
                    draft.actions.retain(|a| !creates(a));
                    draft.spend = None;
                }
                draft.actions.insert(
                    0,
                    Action::CreateRegistry {
                        name: want.name.clone(),
                        server: want.server.clone(),
                        username: want.username.clone(),
                        password: want.password.clone(),
                    },
                );
                draft.waiting = Some(format!(
                    "creating registry credential {} for {}",
                    want.name, want.server
                ));
                return;
            }
        },
    };

    // Creates carry the credential; the tracked object switches to it.
    for action in &mut draft.actions {
        match action {
            Action::CreatePod { request, .. } | Action::ReplacePod { request, .. } => {
                request.registry.clone_from(&id);
            }
            Action::CreateEndpoint { request } => request.registry.clone_from(&id),
            _ => {}
        }
    }
    // Without `spec.registryCredentials`, only a credential of this workload is taken off its
    // object: one set in RunPod's console (an adopted pod) stays, as the spec says nothing.
    let mine = |current: &Option<String>| {
        current
            .as_ref()
            .is_some_and(|c| own(list, &prefix).any(|(_, id)| id == c))
    };
    if let (Some(object), Some((pod, current))) =
        (draft.runpod_id.clone(), draft.object_registry.clone())
        && current != id
        && (want.is_some() || mine(&current))
    {
        let declared = want.map_or("none".to_string(), |w| w.name.clone());
        draft.drift.push(drift(
            "spec.registryCredentials",
            declared,
            current.unwrap_or_else(|| "none".to_string()),
        ));
        switch(draft, object, pod, id.clone());
    }

    // Older credentials of this workload that nothing uses any more.
    let in_use = draft.object_registry.clone().and_then(|(_, r)| r);
    for (name, old) in own(list, &prefix) {
        if Some(name) == want.map(|w| &w.name) || in_use.as_ref() == Some(old) {
            continue;
        }
        draft.actions.push(Action::DeleteRegistry {
            id: old.clone(),
            name: name.clone(),
            reason: if want.is_some() {
                "replaced by a credential for the current Secret".to_string()
            } else {
                "spec.registryCredentials was removed".to_string()
            },
        });
    }
}

/// Whether an action makes a new pod or endpoint (which must wait for the credential).
fn creates(action: &Action) -> bool {
    matches!(
        action,
        Action::CreatePod { .. } | Action::CreateEndpoint { .. } | Action::ReplacePod { .. }
    )
}

/// Points the tracked object at credential `id` (`None`: no credential), in the update the
/// plan already has for it or in a new one. On a pod it resets the container, as RunPod does.
fn switch(draft: &mut Draft, object: String, is_pod: bool, id: Option<String>) {
    for action in &mut draft.actions {
        match action {
            Action::UpdatePod {
                id: target,
                request,
                resets,
            } if *target == object => {
                request.registry = Some(id);
                *resets = true;
                return;
            }
            Action::UpdateEndpoint {
                id: target,
                request,
                saving,
            } if *target == object => {
                request.registry = Some(id);
                *saving = false;
                return;
            }
            _ => {}
        }
    }
    if is_pod {
        draft.actions.push(Action::UpdatePod {
            id: object,
            request: crate::runpod::types::UpdatePod {
                registry: Some(id),
                ..Default::default()
            },
            resets: true,
        });
    } else {
        draft.actions.push(Action::UpdateEndpoint {
            id: object,
            request: crate::runpod::types::UpdateEndpoint {
                registry: Some(id),
                ..Default::default()
            },
            saving: false,
        });
    }
}

/// After a workload's pod or endpoint is gone: delete every credential it made. While one of
/// its objects remains, nothing (RunPod refuses to delete a credential in use).
pub fn plan_registry_delete(
    owner: &Owner,
    listed: Option<&BTreeMap<String, String>>,
    objects_left: bool,
) -> Vec<Action> {
    let (Some(list), false) = (listed, objects_left) else {
        return Vec::new();
    };
    let prefix = registry::name_prefix(owner);
    own(list, &prefix)
        .map(|(name, id)| Action::DeleteRegistry {
            id: id.clone(),
            name: name.clone(),
            reason: "the GpuWorkload was deleted".to_string(),
        })
        .collect()
}
