//! Small helpers shared by test crates that need neither the fake API server nor the
//! simulator's harness (those are in `support`). Each crate uses some of them.
#![allow(dead_code)]

use runpod_operator::{
    api::CreditAction,
    engine::plan::{Money, Pending},
};
use rust_decimal::Decimal;

/// A small deterministic generator (xorshift64*), so a seed replays a run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An account with room: RunPod's default cap of 80 USD/h, a balance of 500, nothing spent
/// or pending, the credit policy only alerting, the worker quota left to RunPod.
pub fn money() -> Money {
    Money {
        account_cap_per_hour: Decimal::from(80),
        others_worst_case_per_hour: Decimal::ZERO,
        balance: Some(Decimal::from(500)),
        spend_per_hour: Some(Decimal::ZERO),
        minimum_runway_hours: 24,
        forced_down: None,
        credit_action: CreditAction::Alert,
        pending: Pending::default(),
        account_workers_max: None,
    }
}
