//! runpod-operator: RunPod GPU workloads as Kubernetes objects.
//!
//! The library holds everything; `main.rs` only parses flags and calls [`cli::run`].
//! [`api`] is the Kubernetes API (CRD types), [`engine`] the pure rules (costs, prices),
//! [`cli`] the command line, [`runpod`] the RunPod client, [`sim`] the RunPod simulator, [`tls`] the one TLS set-up every
//! HTTP client shares.

pub mod api;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod reconcile;
pub mod runpod;
pub mod sim;
pub mod tls;
