//! Serverless workers and jobs on the virtual clock: the queue, the scaler, cold starts, idle
//! timeouts and throttling, following RunPod's documented rules (docs/runpod.md, Serverless):
//!
//! - `workers.min` workers are always on (active); `workers.max` caps the total.
//! - `QUEUE_DELAY`: a worker is added for each job that has waited `queueDelay` seconds and
//!   that no idle or starting worker will take.
//! - `REQUEST_COUNT`: the endpoint wants `ceil((inQueue + inProgress) / requestCount)` workers.
//! - A new worker initialises for the cold start, is billed from its start, and a flex worker
//!   stops `idleTimeout` seconds after its last job. With FlashBoot, a worker started after
//!   one has run before is revived from retained state, which is much faster.
//! - A worker that finds no free GPU is throttled (not billed) until one frees up.
//! - A container change is a new release: idle workers of an older version are replaced.
//!
//! Pure: the world calls [`step`] at every event instant and bills between them.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::{
    capacity::Capacity,
    clock::{Millis, millis_from_seconds},
};

/// How long a finished job's result can be read (`/run` results: 30 minutes).
pub const RESULT_RETENTION_MS: Millis = 30 * 60 * 1000;

/// Simulator settings for serverless timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Cold start of a new worker, ms.
    pub cold_start_ms: Millis,
    /// Cold start with FlashBoot, ms.
    pub flashboot_cold_start_ms: Millis,
    /// How long a job runs when its input does not say (`input.simulatedSeconds`), ms.
    pub job_ms: Millis,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            cold_start_ms: 20_000,
            flashboot_cold_start_ms: 2_000,
            job_ms: 3_000,
        }
    }
}

/// A worker's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Pulling and loading; ready at the instant.
    Initializing {
        /// When it is ready.
        ready_at: Millis,
    },
    /// Waiting for a job since the instant.
    Idle {
        /// Idle since.
        since: Millis,
    },
    /// Running a job until the instant.
    Running {
        /// The job.
        job: String,
        /// When the job finishes.
        done_at: Millis,
    },
    /// Wanted, but no GPU is free.
    Throttled,
}

/// One worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    /// Id.
    pub id: String,
    /// State.
    pub state: WorkerState,
    /// When it started (billing starts here).
    pub started_at: Millis,
    /// The endpoint version it runs.
    pub version: u64,
    /// An always-on worker (one of `workers.min`), billed at the active rate.
    pub active: bool,
    /// The GPU type and data centre it holds, once placed.
    pub placed: Option<(String, String)>,
}

impl Worker {
    /// Whether the worker bills (everything but throttled).
    pub fn billed(&self) -> bool {
        self.state != WorkerState::Throttled
    }

    /// RunPod's name for the state.
    pub fn status(&self) -> &'static str {
        match self.state {
            WorkerState::Initializing { .. } => "INITIALIZING",
            WorkerState::Idle { .. } => "IDLE",
            WorkerState::Running { .. } => "RUNNING",
            WorkerState::Throttled => "THROTTLED",
        }
    }
}

/// One job.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Id.
    pub id: String,
    /// When it was submitted.
    pub submitted: Millis,
    /// When a worker took it.
    pub started: Option<Millis>,
    /// When it finished.
    pub finished: Option<Millis>,
    /// How long it runs.
    pub duration: Millis,
    /// Its input, echoed back as output.
    pub input: Value,
}

impl Job {
    /// RunPod's job status.
    pub fn status(&self) -> &'static str {
        match (self.started, self.finished) {
            (_, Some(_)) => "COMPLETED",
            (Some(_), None) => "IN_PROGRESS",
            _ => "IN_QUEUE",
        }
    }

    /// The job as `/status` and `/runsync` render it.
    pub fn to_json(&self) -> Value {
        let mut out = json!({"id": self.id, "status": self.status()});
        if let Some(started) = self.started {
            out["delayTime"] = json!(started - self.submitted);
        }
        if let (Some(started), Some(finished)) = (self.started, self.finished) {
            out["executionTime"] = json!(finished - started);
            out["output"] = json!({"echo": self.input});
        }
        out
    }
}

/// An endpoint's scaling settings, as the step needs them.
#[derive(Clone, Debug, PartialEq)]
pub struct Scaling {
    /// `workers.min`.
    pub min: u32,
    /// `workers.max`.
    pub max: u32,
    /// Idle timeout, ms.
    pub idle_timeout_ms: Millis,
    /// `QUEUE_DELAY` seconds (ms here), if that scaler.
    pub queue_delay_ms: Option<Millis>,
    /// `REQUEST_COUNT` jobs per worker, if that scaler.
    pub request_count: Option<u32>,
    /// Current version.
    pub version: u64,
    /// GPUs per worker.
    pub gpus: u32,
    /// Where a worker may be placed: (GPU type, data centre) in preference order.
    pub places: std::sync::Arc<[(String, String)]>,
    /// Cold start of a worker with nothing retained, ms.
    pub cold_start_ms: Millis,
    /// With FlashBoot, the start of a revived worker (one started before), ms.
    pub revival_ms: Option<Millis>,
}

/// The live state of one endpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Runtime {
    /// Workers.
    pub workers: Vec<Worker>,
    /// Queued job ids, oldest first.
    pub queue: VecDeque<String>,
    /// Every job by id.
    pub jobs: BTreeMap<String, Job>,
    /// Jobs completed.
    pub completed: u64,
    /// A worker has been ready before, so FlashBoot has state to revive from.
    pub warmed: bool,
    next_worker: u64,
}

impl Runtime {
    fn count(&self, pick: impl Fn(&Worker) -> bool) -> usize {
        self.workers.iter().filter(|w| pick(w)).count()
    }

    /// How long a new worker takes to start: a FlashBoot revival once the endpoint has run a
    /// worker before, otherwise a full cold start.
    fn start_ms(&self, scaling: &Scaling) -> Millis {
        match scaling.revival_ms {
            Some(revival) if self.warmed => revival,
            _ => scaling.cold_start_ms,
        }
    }

    /// Nothing to do until something arrives: no worker, no job (queued, running or with a
    /// result still kept). A step of an idle runtime with no always-on worker changes nothing.
    pub fn is_idle(&self) -> bool {
        self.workers.is_empty() && self.queue.is_empty() && self.jobs.is_empty()
    }

    /// Jobs waiting for a worker.
    pub fn in_queue(&self) -> usize {
        self.queue.len()
    }

    /// Jobs running.
    pub fn in_progress(&self) -> usize {
        self.count(|w| matches!(w.state, WorkerState::Running { .. }))
    }

    /// Workers by RunPod status.
    pub fn workers_in(&self, status: &str) -> usize {
        self.count(|w| w.status() == status)
    }

    /// The next instant something happens by itself, given the settings.
    pub fn next_event(&self, scaling: &Scaling, now: Millis) -> Option<Millis> {
        let mut next: Option<Millis> = None;
        let mut consider = |t: Millis| {
            if t > now {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for worker in &self.workers {
            match &worker.state {
                WorkerState::Initializing { ready_at } => consider(*ready_at),
                WorkerState::Running { done_at, .. } => consider(*done_at),
                WorkerState::Idle { since } if !worker.active => {
                    consider(since + scaling.idle_timeout_ms)
                }
                _ => {}
            }
        }
        if let (Some(delay), Some(oldest)) = (scaling.queue_delay_ms, self.queue.front()) {
            consider(self.jobs[oldest].submitted + delay);
        }
        next
    }

    /// Queues a job.
    pub fn submit(&mut self, id: String, input: Value, now: Millis, timing: &Timing) {
        let duration = input["simulatedSeconds"]
            .as_f64()
            .and_then(millis_from_seconds)
            .unwrap_or(timing.job_ms);
        self.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                submitted: now,
                started: None,
                finished: None,
                duration,
                input,
            },
        );
        self.queue.push_back(id);
    }

    fn spawn(
        &mut self,
        endpoint_id: &str,
        scaling: &Scaling,
        active: bool,
        now: Millis,
        capacity: &mut Capacity,
    ) {
        let placed = scaling
            .places
            .iter()
            .find(|(gpu, dc)| capacity.take_gpus(gpu, dc, "SECURE", scaling.gpus))
            .cloned();
        let state = match placed {
            Some(_) => WorkerState::Initializing {
                ready_at: now + self.start_ms(scaling),
            },
            None => WorkerState::Throttled,
        };
        self.next_worker += 1;
        self.workers.push(Worker {
            id: format!("{endpoint_id}-{}", self.next_worker),
            state,
            started_at: now,
            version: scaling.version,
            active,
            placed,
        });
    }

    fn stop(&mut self, index: usize, gpus: u32, capacity: &mut Capacity) {
        let worker = self.workers.remove(index);
        if let Some((gpu, dc)) = worker.placed {
            capacity.release_gpus(&gpu, &dc, "SECURE", gpus);
        }
    }

    /// Everything that happens at `now`: jobs finish, workers become ready, queued jobs are
    /// taken, idle flex workers time out, stale idle workers are replaced, throttled workers
    /// retry, and the scaler adds workers.
    pub fn step(
        &mut self,
        endpoint_id: &str,
        scaling: &Scaling,
        now: Millis,
        capacity: &mut Capacity,
    ) {
        // RunPod keeps a `/run` result for 30 minutes after it finishes.
        self.jobs.retain(|_, job| {
            job.finished
                .is_none_or(|done| done + RESULT_RETENTION_MS > now)
        });
        for worker in &mut self.workers {
            match worker.state.clone() {
                WorkerState::Running { job, done_at } if done_at <= now => {
                    if let Some(job) = self.jobs.get_mut(&job) {
                        job.finished = Some(done_at);
                    }
                    self.completed += 1;
                    worker.state = WorkerState::Idle { since: done_at };
                }
                WorkerState::Initializing { ready_at } if ready_at <= now => {
                    worker.state = WorkerState::Idle { since: ready_at };
                    self.warmed = true;
                }
                _ => {}
            }
        }
        // Idle flex workers past their timeout stop; idle workers of an old release go too.
        let mut i = 0;
        while i < self.workers.len() {
            let w = &self.workers[i];
            let expired = matches!(w.state, WorkerState::Idle { since } if !w.active && since + scaling.idle_timeout_ms <= now);
            let stale = matches!(w.state, WorkerState::Idle { .. }) && w.version < scaling.version;
            let surplus_active = w.active && self.count(|x| x.active) > scaling.min as usize;
            let over_max = self.workers.len() > scaling.max as usize
                && !matches!(w.state, WorkerState::Running { .. });
            if expired
                || stale
                || (surplus_active && !matches!(w.state, WorkerState::Running { .. }))
                || over_max
            {
                self.stop(i, scaling.gpus, capacity);
            } else {
                i += 1;
            }
        }
        // Throttled workers retry for a GPU.
        let start = self.start_ms(scaling);
        for worker in self
            .workers
            .iter_mut()
            .filter(|w| w.state == WorkerState::Throttled)
        {
            if let Some(place) = scaling
                .places
                .iter()
                .find(|(gpu, dc)| capacity.take_gpus(gpu, dc, "SECURE", scaling.gpus))
            {
                worker.placed = Some(place.clone());
                worker.state = WorkerState::Initializing {
                    ready_at: now + start,
                };
                worker.started_at = now;
            }
        }
        // Idle workers take queued jobs, oldest first.
        for worker in &mut self.workers {
            if !matches!(worker.state, WorkerState::Idle { .. }) {
                continue;
            }
            let Some(job_id) = self.queue.pop_front() else {
                break;
            };
            let job = self.jobs.get_mut(&job_id).expect("queued jobs exist");
            job.started = Some(now);
            worker.state = WorkerState::Running {
                job: job_id,
                done_at: now + job.duration,
            };
        }
        // Always-on workers.
        while self.count(|w| w.active) < scaling.min as usize
            && self.workers.len() < scaling.max.max(scaling.min) as usize
        {
            self.spawn(endpoint_id, scaling, true, now, capacity);
        }
        // The scaler.
        let starting = self.count(|w| {
            matches!(
                w.state,
                WorkerState::Initializing { .. } | WorkerState::Throttled
            )
        });
        let wanted_more = match (scaling.request_count, scaling.queue_delay_ms) {
            (Some(per_worker), _) => {
                let load = self.in_queue() + self.in_progress();
                let desired = load
                    .div_ceil(per_worker.max(1) as usize)
                    .max(scaling.min as usize);
                desired.saturating_sub(self.workers.len())
            }
            (None, Some(delay)) => {
                let overdue = self
                    .queue
                    .iter()
                    .filter(|id| self.jobs[*id].submitted + delay <= now)
                    .count();
                overdue.saturating_sub(starting)
            }
            (None, None) => 0,
        };
        let room = (scaling.max as usize).saturating_sub(self.workers.len());
        for _ in 0..wanted_more.min(room) {
            self.spawn(endpoint_id, scaling, false, now, capacity);
        }
    }

    /// Stops every worker (endpoint deleted or scaled to nothing) and gives their GPUs back.
    pub fn stop_all(&mut self, gpus: u32, capacity: &mut Capacity) {
        while !self.workers.is_empty() {
            self.stop(0, gpus, capacity);
        }
    }
}
