//! One RunPod client and inventory per RunPodAccount, shared by every reconciler. Built from
//! the account's spec (URLs, request budget, resync) and its API-key Secret; rebuilt when the
//! spec changes, or after RunPod refuses the key.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use secrecy::SecretString;

use super::Error;
use crate::{
    api::RunPodAccount,
    reconcile::inventory::Inventory,
    runpod::{self, ClientConfig},
};

/// What one account's reconcilers share.
pub struct Runtime {
    /// The inventory (and through it the client and its budget).
    pub inventory: Inventory,
    /// The account's prices: RunPod's catalogue, read on the account's interval.
    pub prices: super::prices::Prices,
    /// The measured use of the account's endpoints.
    pub usage: super::usage::Usage,
    fingerprint: String,
}

/// The runtimes of every account.
#[derive(Default)]
pub struct Runtimes {
    map: Mutex<HashMap<String, Arc<Runtime>>>,
}

/// What the runtime is built from: where and how RunPod is reached, the key's Secret, the
/// request budget and the resync. Other fields (caps, policies) are read per reconcile, so
/// editing them keeps the inventory, its write journal and its spending ledger.
fn fingerprint(account: &RunPodAccount) -> String {
    let spec = &account.spec;
    serde_json::to_string(&(
        &spec.api_url,
        &spec.graphql_url,
        &spec.serverless_url,
        &spec.api_key_secret_ref,
        spec.requests_per_minute,
        spec.resync_interval_seconds,
    ))
    .unwrap_or_default()
}

/// Reads the API key from the Secret the account names.
pub async fn read_api_key(client: &Client, account: &RunPodAccount) -> Result<SecretString, Error> {
    let reference = &account.spec.api_key_secret_ref;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &reference.namespace);
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::Kube {
            action: format!("read Secret {}/{}", reference.namespace, reference.name),
            source,
        })?;
    let secret = secret.ok_or_else(|| {
        Error::ApiKey(format!(
            "Secret {}/{} does not exist: create it with the key {:?}",
            reference.namespace, reference.name, reference.key
        ))
    })?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&reference.key).cloned())
        })
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::ApiKey(format!(
                "Secret {}/{} has no key {:?}",
                reference.namespace, reference.name, reference.key
            ))
        })?;
    Ok(SecretString::from(value))
}

impl Runtimes {
    /// The runtime of an account, built on first use or after its spec changed.
    pub async fn get(
        &self,
        client: &Client,
        account: &RunPodAccount,
    ) -> Result<Arc<Runtime>, Error> {
        let name = account.name_any();
        let print = fingerprint(account);
        if let Some(runtime) = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .filter(|r| r.fingerprint == print)
        {
            return Ok(runtime.clone());
        }
        let key = read_api_key(client, account).await?;
        let spec = &account.spec;
        let runpod = runpod::Client::new(ClientConfig {
            api_url: spec.api_url.clone(),
            graphql_url: spec.graphql_url.clone(),
            serverless_url: spec.serverless_url.clone(),
            requests_per_minute: spec
                .requests_per_minute
                .unwrap_or(runpod::DEFAULT_REQUESTS_PER_MINUTE),
            follow_runpod: spec.requests_per_minute.is_none(),
            ..ClientConfig::new(key)
        })
        .map_err(|e| Error::ApiKey(e.to_string()))?;
        let runtime = Arc::new(Runtime {
            inventory: Inventory::new(
                runpod,
                Duration::from_secs(u64::from(spec.resync_interval_seconds)),
            ),
            prices: super::prices::Prices::new(std::sync::Arc::new(
                crate::engine::prices::PriceCatalogue::builtin(),
            )),
            usage: super::usage::Usage::default(),
            fingerprint: print,
        });
        // Two reconciles may build at once (every workload of an account at start-up): the
        // first one stored wins and the other uses it. Two inventories of one account would
        // each miss the other's writes, and a create recorded in one would be made again
        // through the other.
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map
            .get(&name)
            .filter(|r| r.fingerprint == runtime.fingerprint)
        {
            Some(first) => Ok(first.clone()),
            None => {
                map.insert(name, runtime.clone());
                Ok(runtime)
            }
        }
    }

    /// Drops an account's runtime, so the next use reads the key again (after a 401).
    pub fn invalidate(&self, name: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Every runtime, for metrics.
    pub fn all(&self) -> Vec<(String, Arc<Runtime>)> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
