//! The account-wide figures every workload's money rules read, kept up to date one object at
//! a time: the worst case of everything declared (for the account cap) and the credit
//! ranking (lowest priority first, for the credit policy). The controller updates it as its
//! watches see objects change, so a reconcile reads the totals in constant time instead of
//! summing 10,000 workloads. [`AccountTotals::from_scratch`] is the reference the tests hold
//! it to. Pure.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, HashMap},
};

use rust_decimal::Decimal;

use super::plan::credit_order;

/// One object's part of the account's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// The worst case per hour of what it declares.
    pub worst_per_hour: Decimal,
    /// A workload's `spec.priority` and what it costs per hour now (its status); `None` for a
    /// network volume, which the credit policy never stops.
    pub ranked: Option<(i32, Decimal)>,
}

/// The totals of one account.
#[derive(Clone, Debug, Default)]
pub struct AccountTotals {
    shares: HashMap<String, Share>,
    worst: Decimal,
    /// Workloads that cost something now, in the order the credit policy stops them: lowest
    /// priority, then the most expensive, then by key.
    ranking: BTreeSet<(i32, Reverse<Decimal>, String)>,
}

impl AccountTotals {
    /// Sets (adds or replaces) the share of the object `key`.
    pub fn set(&mut self, key: &str, share: Share) {
        if self.shares.get(key) == Some(&share) {
            return;
        }
        self.remove(key);
        self.worst += share.worst_per_hour;
        if let Some((priority, current)) = share.ranked
            && current > Decimal::ZERO
        {
            self.ranking
                .insert((priority, Reverse(current), key.to_string()));
        }
        self.shares.insert(key.to_string(), share);
    }

    /// Forgets the object `key`.
    pub fn remove(&mut self, key: &str) {
        let Some(old) = self.shares.remove(key) else {
            return;
        };
        self.worst -= old.worst_per_hour;
        if let Some((priority, current)) = old.ranked {
            self.ranking
                .remove(&(priority, Reverse(current), key.to_string()));
        }
    }

    /// The worst case per hour of every object of the account.
    pub fn worst_per_hour(&self) -> Decimal {
        self.worst
    }

    /// The worst case per hour of every object of the account but `key`: what the account cap
    /// leaves `key`, exact even when `key`'s own share is not recorded yet (or is one edit
    /// behind its reconcile).
    pub fn worst_per_hour_without(&self, key: &str) -> Decimal {
        self.worst
            - self
                .shares
                .get(key)
                .map_or(Decimal::ZERO, |s| s.worst_per_hour)
    }

    /// Whether the account holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.shares.contains_key(key)
    }

    /// How many objects the account holds.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether the account holds nothing.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// The workloads that cost something now, in the order the credit policy stops them:
    /// `(key, priority, cost per hour)`.
    pub fn ranking(&self) -> impl Iterator<Item = (&str, i32, Decimal)> {
        self.ranking
            .iter()
            .map(|(priority, Reverse(cost), key)| (key.as_str(), *priority, *cost))
    }

    /// The figures computed from nothing, the way a single pass over the account computes
    /// them: what the incremental totals must always equal.
    pub fn from_scratch<'a>(
        shares: impl IntoIterator<Item = (&'a str, &'a Share)>,
    ) -> (Decimal, Vec<(String, i32, Decimal)>) {
        let mut worst = Decimal::ZERO;
        let mut current = Vec::new();
        for (key, share) in shares {
            worst += share.worst_per_hour;
            if let Some((priority, cost)) = share.ranked {
                current.push((key.to_string(), priority, cost));
            }
        }
        (worst, credit_order(&current))
    }

    /// The figures, for comparing two totals: the worst case and the ranking.
    pub fn figures(&self) -> (Decimal, Vec<(String, i32, Decimal)>) {
        (
            self.worst,
            self.ranking()
                .map(|(key, priority, cost)| (key.to_string(), priority, cost))
                .collect(),
        )
    }
}
