//! The executor: carries out one action of a plan through the client, records what RunPod
//! answered in the inventory, and reports the outcome so the next pass sees it.
//!
//! One write per workload per pass. A create tries the GPU types in order on capacity
//! errors (each refusal proves nothing was made). A create whose outcome is unknown marks the
//! inventory stale: the next pass looks before it creates again.

use super::inventory::Inventory;
use crate::{
    engine::plan::Action,
    runpod::{
        ErrorClass,
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

/// Runs one action.
pub async fn execute(action: &Action, inventory: &Inventory) -> Outcome {
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
