//! The RunPod simulator: a real HTTP server on loopback that behaves like RunPod.
//!
//! Work in progress: the spec layer is here; the server lands in the next steps.

pub mod spec;
