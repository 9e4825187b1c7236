//! The engine: the operator's rules as pure functions.
//!
//! Nothing here does I/O or reads a clock: prices, time and observations come in as
//! arguments and results go out as data, so every rule is tested without a network, a
//! cluster or RunPod. For now it holds the money model: [`prices`] (what RunPod charges)
//! and [`cost`] (what a workload costs, and when Pods beat Serverless).

pub mod cost;
pub mod prices;
