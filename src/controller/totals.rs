//! The account totals of every RunPodAccount, kept up to date from the watches: each
//! GpuWorkload and NetworkVolume event moves one object's share (see
//! [`crate::engine::totals`]), so a reconcile reads its account's worst case and credit
//! ranking without walking the other workloads.
//!
//! A watch that lists again (a restart, an expired resourceVersion) replaces its kind's
//! shares when the list completes: objects deleted while the watch was down leave the totals
//! then. A context not fed by watches (the tests that fill stores by hand) computes the same
//! figures from its stores on each read.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use kube::{ResourceExt, runtime::watcher};

use super::account_name;
use crate::{
    api::{GpuWorkload, NetworkVolume},
    engine::{
        identity::Owner,
        prices::PriceCatalogue,
        totals::{AccountTotals, Share},
    },
    reconcile::{volume_hourly, worst_case},
};

/// Which watch an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Workload,
    Volume,
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<String, AccountTotals>,
    /// The prices each account's shares are computed with (see [`Totals::reprice`]); an
    /// account not here uses the built-in snapshot.
    prices: HashMap<String, Arc<PriceCatalogue>>,
    builtin: Option<Arc<PriceCatalogue>>,
    /// Object key -> its kind and account.
    placed: HashMap<String, (Kind, String)>,
    /// The keys seen by a list in progress, per kind.
    relisting: HashMap<Kind, HashSet<String>>,
}

/// The totals of every account.
#[derive(Default)]
pub struct Totals {
    inner: Mutex<Inner>,
    fed: AtomicBool,
}

/// The key of a workload's share: the same key the credit ranking names it by.
pub fn workload_key(w: &GpuWorkload) -> String {
    Owner::of(w.namespace().as_deref(), &w.name_any(), w.uid().as_deref()).key()
}

fn volume_key(v: &NetworkVolume) -> String {
    format!(
        "NetworkVolume:{}/{}",
        v.namespace().unwrap_or_default(),
        v.name_any()
    )
}

/// A workload's share, or `None` when it no longer counts (being deleted).
pub fn workload_share(w: &GpuWorkload, prices: &PriceCatalogue) -> Option<Share> {
    if w.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let current = w
        .status
        .as_ref()
        .and_then(|s| s.cost_per_hour)
        .map(|c| c.amount())
        .unwrap_or_default();
    Some(Share {
        worst_per_hour: worst_case(w, prices),
        ranked: Some((w.spec.priority, current)),
    })
}

/// A network volume's share.
pub fn volume_share(v: &NetworkVolume, prices: &PriceCatalogue) -> Share {
    Share {
        worst_per_hour: volume_hourly(v, prices),
        ranked: None,
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn prices_of(&mut self, account: &str) -> Arc<PriceCatalogue> {
        match self.prices.get(account) {
            Some(prices) => prices.clone(),
            None => self
                .builtin
                .get_or_insert_with(|| Arc::new(PriceCatalogue::builtin()))
                .clone(),
        }
    }

    fn set(&mut self, kind: Kind, key: String, account: String, share: Option<Share>) {
        if let Some(seen) = self.relisting.get_mut(&kind) {
            seen.insert(key.clone());
        }
        if let Some((_, before)) = self.placed.get(&key)
            && (share.is_none() || *before != account)
        {
            let before = before.clone();
            self.forget(&key, &before);
        }
        if let Some(share) = share {
            self.accounts
                .entry(account.clone())
                .or_default()
                .set(&key, share);
            self.placed.insert(key, (kind, account));
        }
    }

    fn forget(&mut self, key: &str, account: &str) {
        if let Some(totals) = self.accounts.get_mut(account) {
            totals.remove(key);
            if totals.is_empty() {
                self.accounts.remove(account);
            }
        }
        self.placed.remove(key);
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, account)) = self.placed.get(key) {
            let account = account.clone();
            self.forget(key, &account);
        }
    }

    /// A list of `kind` completed: what it did not see is gone.
    fn relisted(&mut self, kind: Kind) {
        let Some(seen) = self.relisting.remove(&kind) else {
            return;
        };
        let gone: Vec<(String, String)> = self
            .placed
            .iter()
            .filter(|(key, (k, _))| *k == kind && !seen.contains(*key))
            .map(|(key, (_, account))| (key.clone(), account.clone()))
            .collect();
        for (key, account) in gone {
            self.forget(&key, &account);
        }
    }
}

impl Totals {
    /// Whether watches feed these totals (else the reconcile computes them from its stores).
    pub fn is_fed(&self) -> bool {
        self.fed.load(Ordering::SeqCst)
    }

    /// Says watches feed these totals from now on.
    pub fn feed(&self) {
        self.fed.store(true, Ordering::SeqCst);
    }

    fn event<K>(
        &self,
        kind: Kind,
        event: &watcher::Event<K>,
        key: impl Fn(&K) -> String,
        account: impl Fn(&K) -> String,
        share: impl Fn(&K, &PriceCatalogue) -> Option<Share>,
    ) {
        let mut inner = lock(&self.inner);
        match event {
            watcher::Event::Init => {
                inner.relisting.insert(kind, HashSet::new());
            }
            watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                let account = account(obj);
                let prices = inner.prices_of(&account);
                let share = share(obj, &prices);
                inner.set(kind, key(obj), account, share);
            }
            watcher::Event::Delete(obj) => inner.remove(&key(obj)),
            watcher::Event::InitDone => inner.relisted(kind),
        }
    }

    /// A GpuWorkload watch event.
    pub fn workload_event(&self, event: &watcher::Event<GpuWorkload>) {
        self.event(
            Kind::Workload,
            event,
            workload_key,
            |w| account_name(w.spec.account_ref.as_ref()),
            workload_share,
        );
    }

    /// A NetworkVolume watch event.
    pub fn volume_event(&self, event: &watcher::Event<NetworkVolume>) {
        self.event(
            Kind::Volume,
            event,
            volume_key,
            |v| account_name(v.spec.account_ref.as_ref()),
            |v, prices| Some(volume_share(v, prices)),
        );
    }

    /// The prices an account's shares are computed with.
    pub fn prices_of(&self, account: &str) -> Arc<PriceCatalogue> {
        lock(&self.inner).prices_of(account)
    }

    /// New prices for an account: every share of its objects is computed again with them,
    /// once (not per reconcile). `objects` reads the stores; it is called under the totals'
    /// lock, so an event that lands meanwhile is applied after it, with the new prices.
    pub fn reprice(
        &self,
        account: &str,
        prices: Arc<PriceCatalogue>,
        objects: impl FnOnce() -> (Vec<Arc<GpuWorkload>>, Vec<Arc<NetworkVolume>>),
    ) {
        let mut inner = lock(&self.inner);
        if inner
            .prices
            .get(account)
            .is_some_and(|p| Arc::ptr_eq(p, &prices))
        {
            return;
        }
        inner.prices.insert(account.to_string(), prices.clone());
        if !self.is_fed() {
            return;
        }
        // Only the shares already placed in this account move: which objects count is the
        // watches' business (a relist in progress decides what is gone).
        let (workloads, volumes) = objects();
        let shares = workloads
            .iter()
            .filter(|w| account_name(w.spec.account_ref.as_ref()) == account)
            .filter_map(|w| Some((workload_key(w), workload_share(w, &prices)?)))
            .chain(
                volumes
                    .iter()
                    .filter(|v| account_name(v.spec.account_ref.as_ref()) == account)
                    .map(|v| (volume_key(v), volume_share(v, &prices))),
            );
        let mut moved = Vec::new();
        for (key, share) in shares {
            if inner.placed.get(&key).is_some_and(|(_, a)| a == account) {
                moved.push((key, share));
            }
        }
        if let Some(totals) = inner.accounts.get_mut(account) {
            for (key, share) in moved {
                totals.set(&key, share);
            }
        }
    }

    /// Reads one account's totals (empty when it has no object).
    pub fn read<R>(&self, account: &str, f: impl FnOnce(&AccountTotals) -> R) -> R {
        let inner = lock(&self.inner);
        match inner.accounts.get(account) {
            Some(totals) => f(totals),
            None => f(&AccountTotals::default()),
        }
    }

    /// The totals of one account computed from whole stores (a context no watch feeds).
    pub fn from_stores(
        account: &str,
        workloads: &[std::sync::Arc<GpuWorkload>],
        volumes: &[std::sync::Arc<NetworkVolume>],
        prices: &PriceCatalogue,
    ) -> AccountTotals {
        let mut totals = AccountTotals::default();
        for w in workloads
            .iter()
            .filter(|w| account_name(w.spec.account_ref.as_ref()) == account)
        {
            if let Some(share) = workload_share(w, prices) {
                totals.set(&workload_key(w), share);
            }
        }
        for v in volumes
            .iter()
            .filter(|v| account_name(v.spec.account_ref.as_ref()) == account)
        {
            totals.set(&volume_key(v), volume_share(v, prices));
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GpuWorkloadStatus, Usd};

    fn workload(name: &str, account: Option<&str>, priority: i32, cost: &str) -> GpuWorkload {
        let mut w: GpuWorkload = serde_json::from_value(serde_json::json!({
            "apiVersion": "runpod-operator.dev/v1alpha1",
            "kind": "GpuWorkload",
            "metadata": {"name": name, "namespace": "ml", "uid": format!("uid-{name}")},
            "spec": {
                "type": "Pod",
                "image": "img",
                "gpu": {"types": ["NVIDIA A100-SXM4-80GB"], "count": 1},
                "spendingCap": {"usdPerHour": "5"},
                "priority": priority,
                "accountRef": account.map(|a| serde_json::json!({"name": a})),
            }
        }))
        .expect("a valid workload");
        w.status = Some(GpuWorkloadStatus {
            cost_per_hour: Some(Usd(cost.parse().unwrap())),
            ..Default::default()
        });
        w
    }

    fn figures(totals: &Totals, account: &str) -> (rust_decimal::Decimal, Vec<String>) {
        totals.read(account, |t| {
            (
                t.worst_per_hour(),
                t.ranking().map(|(k, _, _)| k.to_string()).collect(),
            )
        })
    }

    #[test]
    fn a_relist_drops_what_it_did_not_see_and_a_move_changes_account() {
        let totals = Totals::default();
        let a = workload("a", None, 1, "1");
        let b = workload("b", None, 0, "2");
        totals.workload_event(&watcher::Event::Apply(a.clone()));
        totals.workload_event(&watcher::Event::Apply(b.clone()));
        let (worst, ranking) = figures(&totals, "default");
        assert!(worst > rust_decimal::Decimal::ZERO);
        assert_eq!(ranking, vec!["ml/b", "ml/a"]);

        // b is deleted while the watch is down: the list after it does not hold b.
        totals.workload_event(&watcher::Event::Init);
        totals.workload_event(&watcher::Event::InitApply(a.clone()));
        totals.workload_event(&watcher::Event::InitDone);
        assert_eq!(figures(&totals, "default").1, vec!["ml/a"]);

        // a moves to another account.
        let moved = workload("a", Some("other"), 1, "1");
        totals.workload_event(&watcher::Event::Apply(moved));
        assert_eq!(figures(&totals, "default").0, rust_decimal::Decimal::ZERO);
        assert_eq!(figures(&totals, "other").1, vec!["ml/a"]);

        // Deleting (a deletionTimestamp) stops it counting.
        let mut deleting = workload("a", Some("other"), 1, "1");
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        totals.workload_event(&watcher::Event::Apply(deleting));
        assert_eq!(figures(&totals, "other").0, rust_decimal::Decimal::ZERO);
    }

    #[test]
    fn new_prices_move_every_share_of_the_account_once_and_equal_a_fresh_count() {
        let totals = Totals::default();
        totals.feed();
        let a = Arc::new(workload("a", None, 1, "1"));
        let b = Arc::new(workload("b", None, 0, "2"));
        let c = Arc::new(workload("c", Some("other"), 0, "2"));
        for w in [&a, &b, &c] {
            totals.workload_event(&watcher::Event::Apply((**w).clone()));
        }
        let before = figures(&totals, "default").0;
        let other_before = figures(&totals, "other").0;

        // The A100 rises from 1.89 to 3.00 USD/h.
        let mut dearer = PriceCatalogue::builtin();
        dearer.apply_live([crate::engine::prices::LiveGpuPrice {
            gpu_type: "NVIDIA A100-SXM4-80GB".into(),
            pool: None,
            secure_per_hour: Some(rust_decimal::Decimal::new(300, 2)),
            community_per_hour: None,
            serverless_per_hour: None,
        }]);
        let dearer = Arc::new(dearer);
        let stores = || (vec![a.clone(), b.clone(), c.clone()], Vec::new());
        totals.reprice("default", dearer.clone(), stores);
        let after = figures(&totals, "default").0;
        assert!(after > before, "{after} <= {before}");
        // The same figure a count from scratch gives with the new prices.
        let fresh =
            Totals::from_stores("default", &[a.clone(), b.clone(), c.clone()], &[], &dearer);
        assert_eq!(after, fresh.worst_per_hour());
        // Another account keeps its prices.
        assert_eq!(figures(&totals, "other").0, other_before);
        // An event after the change is counted with the new prices too.
        let d = workload("d", None, 0, "0");
        totals.workload_event(&watcher::Event::Apply(d.clone()));
        let fresh = Totals::from_stores(
            "default",
            &[a.clone(), b.clone(), Arc::new(d)],
            &[],
            &dearer,
        );
        assert_eq!(figures(&totals, "default").0, fresh.worst_per_hour());
        assert!(Arc::ptr_eq(&totals.prices_of("default"), &dearer));
    }
}
