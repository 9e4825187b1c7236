//! The engine: the operator's rules as pure functions.
//!
//! Nothing here does I/O or reads a clock: prices, time and observations come in as
//! arguments and results go out as data, so every rule is tested without a network, a
//! cluster or RunPod.
//!
//! - [`prices`] and [`cost`]: what RunPod charges and what a workload costs.
//! - [`identity`]: deterministic names and the owner marker.
//! - [`desired`]: the spec and its references turned into what RunPod should run.
//! - [`plan`]: desired vs observed, policies and money -> ordered actions, drift, conditions.
//! - [`conditions`]: merging conditions so transition times move only on flips.
//! - [`model`]: what an action does to the observed state, for previews and property tests.
//! - [`status`]: the status a pass writes (conditions merged, `stoppedSince` tracked).

pub mod advice;
pub mod conditions;
pub mod cost;
pub mod desired;
pub mod identity;
pub mod index;
pub mod model;
pub mod plan;
pub mod prices;
pub mod registry;
pub mod status;
pub mod totals;
