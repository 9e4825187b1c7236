//! Free GPUs per (GPU type, data centre, cloud), shared by pods and serverless workers.

use std::collections::HashMap;

/// Free GPUs per (GPU type, data centre, cloud) when nothing else is set: plenty.
pub const DEFAULT_FREE_GPUS: u32 = 1000;

/// Where GPUs are free.
#[derive(Clone, Debug, Default)]
pub struct Capacity {
    free: HashMap<(String, String, String), u32>,
}

impl Capacity {
    /// Free GPUs of a type in a data centre on a cloud.
    pub fn free(&self, gpu: &str, dc: &str, cloud: &str) -> u32 {
        *self
            .free
            .get(&(gpu.to_string(), dc.to_string(), cloud.to_string()))
            .unwrap_or(&DEFAULT_FREE_GPUS)
    }

    /// Sets the free GPUs of a type in a data centre on a cloud.
    pub fn set(&mut self, gpu: &str, dc: &str, cloud: &str, free: u32) {
        self.free
            .insert((gpu.to_string(), dc.to_string(), cloud.to_string()), free);
    }

    /// Takes `count` GPUs if that many are free.
    pub fn take_gpus(&mut self, gpu: &str, dc: &str, cloud: &str, count: u32) -> bool {
        let free = self.free(gpu, dc, cloud);
        if free < count {
            return false;
        }
        self.set(gpu, dc, cloud, free - count);
        true
    }

    /// Gives GPUs back.
    pub fn release_gpus(&mut self, gpu: &str, dc: &str, cloud: &str, count: u32) {
        let free = self.free(gpu, dc, cloud);
        self.set(gpu, dc, cloud, free + count);
    }
}
