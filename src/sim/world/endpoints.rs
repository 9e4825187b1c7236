//! Serverless endpoints: create, update, delete, their scaling settings and jobs.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{
    Billed, Container, DATA_CENTERS, DEFAULT_CONTAINER_DISK_GB, Millis, Outcome, PlaceList,
    Refusal, World, gpu_count, pods::unknown_data_center, strings, whole, whole32,
};

use crate::sim::{
    clock::millis_from_seconds,
    serverless::{Job, Runtime, Scaling},
};

/// An endpoint's workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workers {
    /// Always-on workers.
    pub min: u32,
    /// Cap.
    pub max: u32,
    /// Idle timeout, seconds.
    pub idle_timeout: u32,
}

/// A serverless endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Id: 14 lowercase alphanumerics.
    pub id: String,
    /// Name.
    pub name: String,
    /// `QUEUE` or `LOAD_BALANCER`.
    pub endpoint_type: String,
    /// Container settings.
    pub container: Container,
    /// The `gpu` object as sent (pools, count, CUDA).
    pub gpu: Value,
    /// Workers.
    pub workers: Workers,
    /// The `scaling` object as sent.
    pub scaling: Value,
    /// Data centres.
    pub data_centers: Vec<String>,
    /// Network volume ids.
    pub network_volumes: Vec<String>,
    /// Execution timeout, ms (0 = none).
    pub timeout: u64,
    /// FlashBoot mode.
    pub flashboot: String,
    /// When it was created.
    pub created_at: Millis,
    /// Release version: bumped by container changes.
    pub version: u64,
    /// Workers and jobs.
    pub runtime: Runtime,
}

impl Workers {
    /// Marks an idle timeout the request did not set.
    pub const UNSET_IDLE: u32 = 0;
    /// RunPod's default idle timeout (v2 create default).
    pub const DEFAULT_IDLE: u32 = 10;

    pub(super) fn idle_timeout_was_set(&self) -> bool {
        self.idle_timeout != Self::UNSET_IDLE
    }

    /// The idle timeout in force.
    pub fn idle_timeout_or_default(&self) -> u32 {
        if self.idle_timeout_was_set() {
            self.idle_timeout
        } else {
            Self::DEFAULT_IDLE
        }
    }
}

impl World {
    /// The scaling settings of an endpoint, for the serverless step.
    pub fn endpoint_scaling(&self, endpoint: &Endpoint) -> Scaling {
        let places = self.places(endpoint);
        let scaler = &endpoint.scaling;
        let flashboot = endpoint.flashboot != "OFF";
        Scaling {
            min: endpoint.workers.min,
            max: endpoint.workers.max,
            idle_timeout_ms: u64::from(endpoint.workers.idle_timeout_or_default()) * 1000,
            queue_delay_ms: (scaler["type"] == "QUEUE_DELAY").then(|| {
                let delay = scaler["queueDelay"].as_f64().unwrap_or(4.0);
                millis_from_seconds(delay).unwrap_or(4000)
            }),
            request_count: (scaler["type"] == "REQUEST_COUNT")
                .then(|| whole32(scaler, "requestCount", 1).unwrap_or(1)),
            version: endpoint.version,
            gpus: gpu_count(&endpoint.gpu),
            places,
            cold_start_ms: self.timing.cold_start_ms.max(1),
            // FlashBoot revives a worker from retained state: only once one has run before.
            revival_ms: flashboot.then_some(self.timing.flashboot_cold_start_ms.max(1)),
        }
    }

    /// Where an endpoint's workers may be placed: (GPU type, data centre) in preference order.
    pub(super) fn places(&self, endpoint: &Endpoint) -> PlaceList {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        };
        let pools = strings(&endpoint.gpu["pools"]);
        let excluded = strings(&endpoint.gpu["excludedTypes"]);
        let key = format!(
            "{}|{}|{}",
            pools.join(","),
            excluded.join(","),
            endpoint.data_centers.join(",")
        );
        let mut cache = self.places.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(places) = cache.get(&key) {
            return places.clone();
        }
        let dcs: Vec<String> = if endpoint.data_centers.is_empty() {
            DATA_CENTERS.iter().map(|d| d.to_string()).collect()
        } else {
            endpoint.data_centers.clone()
        };
        let mut places = Vec::new();
        for pool in &pools {
            for gpu in self.prices.pool_members(pool) {
                if excluded.contains(&gpu.id) {
                    continue;
                }
                for dc in &dcs {
                    places.push((gpu.id.clone(), dc.clone()));
                }
            }
        }
        let places: PlaceList = places.into();
        cache.insert(key, places.clone());
        places
    }

    /// Runs the serverless step of the account's live endpoints at `at` (an endpoint with no
    /// worker, no job and no always-on worker has nothing to step), then reads their meters.
    pub(super) fn step_endpoints(&mut self, key: &str, at: Millis) {
        let ids: Vec<String> = self
            .live
            .range((key.to_string(), String::new())..)
            .take_while(|(k, _)| k == key)
            .map(|(_, id)| id.clone())
            .collect();
        for id in ids {
            let Some(endpoint) = self.accounts.get(key).and_then(|a| a.endpoints.get(&id)) else {
                self.live.remove(&(key.to_string(), id));
                continue;
            };
            let scaling = self.endpoint_scaling(endpoint);
            let account = self.accounts.get_mut(key).expect("the key exists");
            let endpoint = account.endpoints.get_mut(&id).expect("listed");
            endpoint.runtime.step(&id, &scaling, at, &mut self.capacity);
            self.touch_endpoint(key, &id);
        }
    }

    /// Runs the serverless step of every endpoint now, after something outside the clock
    /// changed (capacity set by the admin route, say).
    pub fn step_all(&mut self) {
        let keys: Vec<String> = self.accounts.keys().cloned().collect();
        for key in keys {
            self.step_endpoints(&key, self.now);
        }
    }

    /// After an endpoint changed: its meter read again, and whether the clock must step it.
    pub(super) fn touch_endpoint(&mut self, key: &str, id: &str) {
        self.remeter(key, Billed::Serverless, id);
        let live = self
            .accounts
            .get(key)
            .and_then(|a| a.endpoints.get(id))
            .is_some_and(|e| e.workers.min > 0 || !e.runtime.is_idle());
        let entry = (key.to_string(), id.to_string());
        if live {
            self.live.insert(entry);
        } else {
            self.live.remove(&entry);
        }
    }

    /// The next instant one of the live endpoints has something to do by itself.
    pub(super) fn next_endpoint_event(&self, now: Millis) -> Option<Millis> {
        self.live
            .iter()
            .filter_map(|(key, id)| {
                let endpoint = self.accounts.get(key)?.endpoints.get(id)?;
                endpoint
                    .runtime
                    .next_event(&self.endpoint_scaling(endpoint), now)
            })
            .min()
    }

    /// Queues a job on an endpoint (`POST /v2/{id}/run`); returns the job id.
    pub fn submit_job(&mut self, key: &str, endpoint_id: &str, input: Value) -> Outcome<String> {
        let job_id = format!("{}-{}", self.ids.id(8), self.ids.id(4));
        let now = self.now;
        let timing = self.timing;
        let endpoint = self
            .account_mut(key)?
            .endpoints
            .get_mut(endpoint_id)
            .ok_or_else(|| Refusal::not_found("endpoint"))?;
        endpoint.runtime.submit(job_id.clone(), input, now, &timing);
        self.touch_endpoint(key, endpoint_id);
        self.step_endpoints(key, now);
        Ok(job_id)
    }

    /// A job of an endpoint.
    pub fn job(&self, key: &str, endpoint_id: &str, job_id: &str) -> Option<&Job> {
        self.accounts
            .get(key)?
            .endpoints
            .get(endpoint_id)?
            .runtime
            .jobs
            .get(job_id)
    }

    pub(super) fn check_endpoint_rules(
        &self,
        key: &str,
        endpoint: &Endpoint,
        others_max: u64,
        max_before: Option<u32>,
    ) -> Outcome<()> {
        if endpoint.endpoint_type == "QUEUE"
            && endpoint.scaling["type"] == "REQUEST_COUNT"
            && endpoint.workers.idle_timeout_was_set()
        {
            let mut refusal = Refusal::new(422, "Request validation failed.");
            refusal
                .errors
                .push("$.workers.idleTimeout: not allowed with REQUEST_COUNT scaling".to_string());
            return Err(refusal);
        }
        if endpoint.workers.min > endpoint.workers.max {
            return Err(Refusal::new(400, "workers.min must not exceed workers.max"));
        }
        for pool in endpoint.gpu["pools"].as_array().into_iter().flatten() {
            let pool = pool.as_str().unwrap_or_default();
            let known = self.prices.pool_members(pool).next().is_some();
            if !known {
                return Err(Refusal::new(400, format!("unknown GPU pool {pool:?}")));
            }
        }
        for volume in &endpoint.network_volumes {
            if !self.accounts[key].volumes.contains_key(volume) {
                return Err(Refusal::new(
                    400,
                    format!("network volume {volume} not found"),
                ));
            }
        }
        let gpu = &endpoint.gpu;
        let allowed = gpu["allowedCudaVersions"].as_array().map_or(0, Vec::len);
        if allowed > 0 && !gpu["minCudaVersion"].is_null() {
            return Err(Refusal::new(
                400,
                "gpu.allowedCudaVersions and gpu.minCudaVersion are mutually exclusive",
            ));
        }
        let pools = strings(&gpu["pools"]);
        for excluded in strings(&gpu["excludedTypes"]) {
            let in_pools = pools
                .iter()
                .any(|pool| self.prices.pool_members(pool).any(|g| g.id == excluded));
            if !in_pools {
                return Err(Refusal::new(
                    400,
                    format!("gpu.excludedTypes: {excluded:?} is in none of the pools {pools:?}"),
                ));
            }
        }
        if let Some(unknown) = unknown_data_center(endpoint.data_centers.iter().map(String::as_str))
        {
            return Err(Refusal::new(
                400,
                format!("dataCenterIds: {unknown:?} is not a RunPod data centre"),
            ));
        }
        // Summed in 64 bits: no quota is passed by a sum that wraps. Checked on a create and on
        // an update that raises the maximum: the quota follows the balance, so an account may
        // find itself past it with nothing written, and an update that takes no more of it
        // (a new image, a lower maximum) is not held by it (inferred: RunPod's docs say only
        // that the sum cannot exceed the quota).
        let quota = self.accounts[key].worker_quota();
        let total = others_max + u64::from(endpoint.workers.max);
        let grows = max_before.is_none_or(|before| endpoint.workers.max > before);
        if grows && total > u64::from(quota) {
            return Err(Refusal::new(
                400,
                format!(
                    "max workers across endpoints would be {total}, above the account's quota of {quota} at this balance"
                ),
            ));
        }
        Ok(())
    }

    /// `POST /v2/serverless`.
    pub fn create_endpoint(&mut self, key: &str, body: &Value) -> Outcome<String> {
        let result = self.create_endpoint_unmetered(key, body);
        if let Ok(id) = &result {
            self.touch_endpoint(key, id);
        }
        result
    }

    /// [`World::create_endpoint`] before the meters are read again.
    fn create_endpoint_unmetered(&mut self, key: &str, body: &Value) -> Outcome<String> {
        self.account_mut(key)?;
        if body.get("cpu").is_some() {
            return Err(Refusal::new(
                400,
                "CPU endpoints are not simulated: send gpu",
            ));
        }
        if body.get("gpu").is_none() {
            return Err(Refusal::new(400, "exactly one of gpu or cpu must be set"));
        }
        for field in ["disk", "gpu.count", "scaling.requestCount"] {
            whole32(body, field, 0)?;
        }
        let mut container = Container {
            disk: DEFAULT_CONTAINER_DISK_GB,
            ..Container::default()
        };
        container.apply(body);
        self.check_registry(key, container.registry.as_deref())?;
        let mut endpoint = Endpoint {
            id: String::new(),
            name: body["name"].as_str().unwrap_or_default().to_string(),
            endpoint_type: body["type"].as_str().unwrap_or("QUEUE").to_string(),
            container,
            gpu: body["gpu"].clone(),
            workers: Workers {
                min: whole32(body, "workers.min", 0)?,
                max: whole32(body, "workers.max", 3)?,
                idle_timeout: whole32(body, "workers.idleTimeout", Workers::UNSET_IDLE)?,
            },
            scaling: body["scaling"].clone(),
            data_centers: strings(&body["dataCenterIds"]),
            network_volumes: strings(&body["networkVolumes"]),
            // Observed: 0 when omitted, despite the documented 300000 (docs/runpod.md, Serverless).
            timeout: whole(body, "timeout", 0, u64::from(u32::MAX))?,
            flashboot: body["flashboot"].as_str().unwrap_or("OFF").to_string(),
            created_at: self.now,
            version: 1,
            runtime: Runtime::default(),
        };
        if endpoint.gpu.get("count").is_none() {
            endpoint.gpu["count"] = json!(1);
        }
        let others: u64 = self.accounts[key]
            .endpoints
            .values()
            .map(|e| u64::from(e.workers.max))
            .sum();
        self.check_endpoint_rules(key, &endpoint, others, None)?;
        self.check_money(key, self.endpoint_floor_per_hour(&endpoint))?;
        endpoint.id = self.ids.id(14);
        let id = endpoint.id.clone();
        self.accounts
            .get_mut(key)
            .expect("checked")
            .endpoints
            .insert(id.clone(), endpoint);
        self.touch_endpoint(key, &id);
        self.step_endpoints(key, self.now);
        Ok(id)
    }

    /// `PATCH /v2/serverless/{id}`: scaling and workers apply at once; a container change
    /// makes a new release (version + 1).
    pub fn update_endpoint(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
        let result = self.update_endpoint_unmetered(key, id, body);
        self.touch_endpoint(key, id);
        result
    }

    /// [`World::update_endpoint`] before the meters are read again.
    fn update_endpoint_unmetered(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
        let account = self
            .accounts
            .get(key)
            .ok_or_else(|| Refusal::new(403, "access denied"))?;
        let current = account
            .endpoints
            .get(id)
            .ok_or_else(|| Refusal::not_found("endpoint"))?;
        let mut next = current.clone();
        if body.get("cpu").is_some() {
            return Err(Refusal::new(
                400,
                "computeType cannot change: this endpoint runs on GPUs",
            ));
        }
        for field in ["disk", "gpu.count", "scaling.requestCount"] {
            whole32(body, field, 0)?;
        }
        let container_changed = next.container.apply(body);
        if let Some(name) = body["name"].as_str() {
            next.name = name.to_string();
        }
        if let Some(gpu) = body.get("gpu").and_then(Value::as_object) {
            for (k, v) in gpu {
                next.gpu[k] = v.clone();
            }
        }
        if body.get("workers").is_some() {
            next.workers.min = whole32(body, "workers.min", next.workers.min)?;
            next.workers.max = whole32(body, "workers.max", next.workers.max)?;
            next.workers.idle_timeout =
                whole32(body, "workers.idleTimeout", next.workers.idle_timeout)?;
        }
        if let Some(scaling) = body.get("scaling") {
            next.scaling = scaling.clone();
        }
        if body.get("dataCenterIds").is_some() {
            next.data_centers = strings(&body["dataCenterIds"]);
        }
        if body.get("networkVolumes").is_some() {
            next.network_volumes = strings(&body["networkVolumes"]);
        }
        next.timeout = whole(body, "timeout", next.timeout, u64::from(u32::MAX))?;
        if let Some(v) = body["flashboot"].as_str() {
            next.flashboot = v.to_string();
        }
        let others: u64 = account
            .endpoints
            .values()
            .filter(|e| e.id != id)
            .map(|e| u64::from(e.workers.max))
            .sum();
        self.check_endpoint_rules(key, &next, others, Some(current.workers.max))?;
        let added = self.endpoint_floor_per_hour(&next) - self.endpoint_floor_per_hour(current);
        if added > Decimal::ZERO {
            self.check_money(key, added)?;
        }
        if container_changed || body.get("gpu").is_some() || body.get("networkVolumes").is_some() {
            next.version += 1;
        }
        self.account_mut(key)?
            .endpoints
            .insert(id.to_string(), next);
        self.touch_endpoint(key, id);
        self.step_endpoints(key, self.now);
        Ok(())
    }

    /// `DELETE /v2/serverless/{id}`: workers stop, queued jobs are cancelled.
    pub fn delete_endpoint(&mut self, key: &str, id: &str) -> Outcome<()> {
        let result = self.delete_endpoint_unmetered(key, id);
        self.touch_endpoint(key, id);
        result
    }

    /// [`World::delete_endpoint`] before the meters are read again.
    fn delete_endpoint_unmetered(&mut self, key: &str, id: &str) -> Outcome<()> {
        let mut endpoint = self
            .account_mut(key)?
            .endpoints
            .remove(id)
            .ok_or_else(|| Refusal::not_found("endpoint"))?;
        let gpus = gpu_count(&endpoint.gpu);
        endpoint.runtime.stop_all(gpus, &mut self.capacity);
        Ok(())
    }
}
