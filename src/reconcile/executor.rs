//! The executor: carries out one action of a plan through the client, records what RunPod
//! answered in the inventory, and reports the outcome so the next pass sees it.
//!
//! One write per workload per pass. A create tries the GPU types in order on capacity
//! errors (each refusal proves nothing was made). A create whose outcome is unknown marks the
//! inventory stale: the next pass looks before it creates again.

use super::inventory::{Inventory, MadeKind};
use crate::{
    engine::{identity::OWNER_ENV, plan::Action},
    runpod::{
        Error, ErrorClass,
        types::{CreateRegistry, PodAction},
    },
};

/// What happened to an action.
#[derive(Debug)]
pub enum Outcome {
    /// Done; the id of the object written.
    Done(String),
    /// RunPod refused or failed; nothing changed.
    Failed(crate::runpod::Error),
    /// The create may have happened; the inventory is stale until the next refresh.
    Unknown(crate::runpod::Error),
    /// Nothing to write.
    Nothing,
}

impl Outcome {
    /// One line for logs and the CLI.
    pub fn describe(&self) -> String {
        match self {
            Self::Done(id) => format!("done ({id})"),
            Self::Failed(e) => format!("failed: {e}"),
            Self::Unknown(e) => format!("outcome unknown: {e}"),
            Self::Nothing => "nothing to do".to_string(),
        }
    }
}

fn gone_is_done(result: Result<(), crate::runpod::Error>, id: &str) -> Outcome {
    match result {
        Ok(()) => Outcome::Done(id.to_string()),
        // Already gone is what was wanted.
        Err(e) if e.class() == ErrorClass::NotFound => Outcome::Done(id.to_string()),
        Err(e) => Outcome::Failed(e),
    }
}

/// What a create would make: the journal's key for its owner (the owner marker, else the
/// name), the kind, the route, and the id of a pod it replaces.
fn create_of(action: &Action) -> Option<(String, MadeKind, &'static str, Option<&str>)> {
    let route = route_of(action);
    match action {
        Action::CreatePod { request, .. } | Action::ReplacePod { request, .. } => {
            let owner = request.env.get(OWNER_ENV).unwrap_or(&request.name).clone();
            let replaces = match action {
                Action::ReplacePod { old_id, .. } => Some(old_id.as_str()),
                _ => None,
            };
            Some((owner, MadeKind::Pod, route, replaces))
        }
        Action::CreateEndpoint { request } => {
            let owner = request.env.get(OWNER_ENV).unwrap_or(&request.name).clone();
            Some((owner, MadeKind::Endpoint, route, None))
        }
        Action::CreateVolume { request } => {
            Some((request.name.clone(), MadeKind::Volume, route, None))
        }
        _ => None,
    }
}

/// Whether a create may be sent: not while this process's own earlier create for the same
/// owner is not proven gone by a direct read (a list that lags, or lost names and markers,
/// must never cause a duplicate).
async fn create_allowed(
    inventory: &Inventory,
    owner: &str,
    kind: MadeKind,
    route: &str,
    replaces: Option<&str>,
) -> Result<(), Outcome> {
    let held = |message: String| {
        Outcome::Failed(Error::Held {
            route: route.to_string(),
            message,
        })
    };
    let Some(made) = inventory.made_for(owner) else {
        return Ok(());
    };
    // A replace makes the second object on purpose; the old one goes once the new one runs.
    // So does a switch of side (the type changed): an object of the other kind is the old
    // side, never a duplicate of this one.
    if replaces == Some(made.id.as_str()) || made.kind != kind {
        return Ok(());
    }
    match inventory.confirm_gone(&made).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(held(format!(
            "{} made {} s ago for this owner still exists, though the plan did not find it (a list that lags, or its name or marker changed on RunPod); nothing new is made while it exists",
            made.id,
            made.at.elapsed().as_secs()
        ))),
        Err(e) => Err(held(format!(
            "{} was made for this owner and reading it failed ({e}); nothing is made until it is read",
            made.id
        ))),
    }
}

/// The route an action writes to, for messages.
fn route_of(action: &Action) -> &'static str {
    match action {
        Action::CreatePod { .. } | Action::ReplacePod { .. } => "POST /v2/pods",
        Action::CreateEndpoint { .. } => "POST /v2/serverless",
        Action::CreateVolume { .. } => "POST /v2/network-volumes",
        Action::CreateRegistry { .. } => "POST /v2/registries",
        Action::UpdatePod { .. } => "PATCH /v2/pods/{id}",
        Action::UpdateEndpoint { .. } => "PATCH /v2/serverless/{id}",
        Action::UpdateVolume { .. } => "PATCH /v2/network-volumes/{id}",
        Action::StartPod { .. } => "POST /v2/pods/{id}/start",
        Action::StopPod { .. } => "POST /v2/pods/{id}/stop",
        Action::DeletePod { .. } => "DELETE /v2/pods/{id}",
        Action::DeleteEndpoint { .. } => "DELETE /v2/serverless/{id}",
        Action::DeleteVolume { .. } => "DELETE /v2/network-volumes/{id}",
        Action::DeleteRegistry { .. } => "DELETE /v2/registries/{id}",
        Action::Wait { .. } => "",
    }
}

/// Runs one action.
pub async fn execute(action: &Action, inventory: &Inventory) -> Outcome {
    // Lists without the names or markers identity needs cannot prove what exists, nor what
    // an object holds (a blanked env would read as drift): every write but the ones that save
    // money waits.
    if action.writes()
        && !action.saves_money()
        && let Some(gap) = inventory.identity_gap()
    {
        return Outcome::Failed(Error::Held {
            route: route_of(action).to_string(),
            message: gap,
        });
    }
    let create = create_of(action);
    if let Some((owner, kind, route, replaces)) = &create
        && let Err(outcome) = create_allowed(inventory, owner, *kind, route, *replaces).await
    {
        return outcome;
    }
    let outcome = run(action, inventory).await;
    match (&outcome, &create) {
        (Outcome::Done(id), Some((owner, kind, ..))) => inventory.remember_made(owner, *kind, id),
        (Outcome::Done(id), None)
            if matches!(
                action,
                Action::DeletePod { .. }
                    | Action::DeleteEndpoint { .. }
                    | Action::DeleteVolume { .. }
            ) =>
        {
            inventory.forget_made(id);
        }
        // An answer that could not be read says nothing about what RunPod holds now.
        (Outcome::Failed(Error::Decode { .. }), _) => inventory.mark_stale(),
        _ => {}
    }
    outcome
}

async fn run(action: &Action, inventory: &Inventory) -> Outcome {
    let client = if action.saves_money() {
        inventory.client().saving()
    } else {
        inventory.client().clone()
    };
    let unknown = |e: crate::runpod::Error| {
        inventory.mark_stale();
        Outcome::Unknown(e)
    };
    match action {
        Action::CreatePod {
            request,
            candidates,
        }
        | Action::ReplacePod {
            request,
            candidates,
            ..
        } => {
            let mut last = None;
            for gpu in candidates {
                let mut attempt = request.clone();
                attempt.gpu.id = gpu.clone();
                match client.create_pod(&attempt).await {
                    Ok(pod) => {
                        let id = pod.id.clone();
                        inventory.put_pod(pod);
                        return Outcome::Done(id);
                    }
                    Err(e) if e.class() == ErrorClass::Capacity => last = Some(e),
                    Err(e) if e.class() == ErrorClass::OutcomeUnknown => return unknown(e),
                    Err(e) => return Outcome::Failed(e),
                }
            }
            match last {
                Some(e) => Outcome::Failed(e),
                None => Outcome::Nothing,
            }
        }
        Action::CreateEndpoint { request } => match client.create_endpoint(request).await {
            Ok(endpoint) => {
                let id = endpoint.id.clone();
                inventory.put_endpoint(endpoint);
                Outcome::Done(id)
            }
            Err(e) if e.class() == ErrorClass::OutcomeUnknown => unknown(e),
            Err(e) => Outcome::Failed(e),
        },
        Action::CreateVolume { request } => match client.create_network_volume(request).await {
            Ok(volume) => {
                let id = volume.id.clone();
                inventory.put_volume(volume);
                Outcome::Done(id)
            }
            Err(e) if e.class() == ErrorClass::OutcomeUnknown => unknown(e),
            Err(e) => Outcome::Failed(e),
        },
        Action::UpdatePod { id, request, .. } => match client.update_pod(id, request).await {
            Ok(pod) => {
                inventory.put_pod(pod);
                Outcome::Done(id.clone())
            }
            Err(e) => Outcome::Failed(e),
        },
        Action::UpdateEndpoint { id, request, .. } => {
            match client.update_endpoint(id, request).await {
                Ok(endpoint) => {
                    inventory.put_endpoint(endpoint);
                    Outcome::Done(id.clone())
                }
                Err(e) => Outcome::Failed(e),
            }
        }
        Action::UpdateVolume { id, request } => {
            match client.update_network_volume(id, request).await {
                Ok(volume) => {
                    inventory.put_volume(volume);
                    Outcome::Done(id.clone())
                }
                Err(e) => Outcome::Failed(e),
            }
        }
        Action::StartPod { id } | Action::StopPod { id, .. } => {
            let verb = if matches!(action, Action::StartPod { .. }) {
                PodAction::Start
            } else {
                PodAction::Stop
            };
            match client.pod_action(id, verb).await {
                Ok(Some(pod)) => {
                    inventory.put_pod(pod);
                    Outcome::Done(id.clone())
                }
                Ok(None) => Outcome::Done(id.clone()),
                Err(e) => Outcome::Failed(e),
            }
        }
        Action::DeletePod { id, .. } => {
            let outcome = gone_is_done(client.delete_pod(id).await, id);
            if matches!(outcome, Outcome::Done(_)) {
                inventory.remove_pod(id);
            }
            outcome
        }
        Action::DeleteEndpoint { id, .. } => {
            let outcome = gone_is_done(client.delete_endpoint(id).await, id);
            if matches!(outcome, Outcome::Done(_)) {
                inventory.remove_endpoint(id);
            }
            outcome
        }
        Action::DeleteVolume { id, .. } => {
            let outcome = gone_is_done(client.delete_network_volume(id).await, id);
            if matches!(outcome, Outcome::Done(_)) {
                inventory.remove_volume(id);
            }
            outcome
        }
        Action::CreateRegistry {
            name,
            username,
            password,
            ..
        } => {
            let request = CreateRegistry {
                name: name.clone(),
                username: username.clone(),
                password: password.expose().to_string(),
            };
            match client.create_registry(&request).await {
                Ok(registry) => {
                    let id = registry.id.clone();
                    inventory.put_registry(registry);
                    Outcome::Done(id)
                }
                // Names are unique at RunPod: a retry of a create that did happen is refused,
                // never doubled. Either way, read the list again before going on.
                Err(e) if e.class() == ErrorClass::OutcomeUnknown => unknown(e),
                Err(e) => {
                    inventory.mark_stale();
                    Outcome::Failed(e)
                }
            }
        }
        Action::DeleteRegistry { id, .. } => {
            let outcome = gone_is_done(client.delete_registry(id).await, id);
            if matches!(outcome, Outcome::Done(_)) {
                inventory.remove_registry(id);
            }
            outcome
        }
        Action::Wait { .. } => Outcome::Nothing,
    }
}
