//! Status: what a workload's `status` should say after a pass, from the plan, the previous
//! status and the time. Pure. Conditions merge so `lastTransitionTime` moves only on flips;
//! `stoppedSince` starts when the pod is first seen stopped and clears when it runs again.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use rust_decimal::Decimal;

use super::{
    conditions::{Verdict, merge},
    plan::Action,
    prices::HOURS_PER_MONTH,
};
use crate::api::{DriftEntry, GpuWorkloadStatus, PlanSummary, Usd};

/// What a pass learned about one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation<'a> {
    /// The RunPod id.
    pub runpod_id: Option<&'a str>,
    /// RunPod's state, e.g. `RUNNING`.
    pub state: Option<&'a str>,
    /// What it costs per hour now.
    pub current_per_hour: Decimal,
    /// The worst case of the declared configuration.
    pub worst_case_per_hour: Option<Decimal>,
    /// Drift.
    pub drift: &'a [DriftEntry],
    /// Conditions.
    pub verdicts: &'a [Verdict],
    /// The plan's actions and hash.
    pub actions: &'a [Action],
    /// The plan's hash.
    pub hash: &'a str,
    /// The plan's hourly cost change.
    pub delta_per_hour: Decimal,
}

fn money(d: Decimal) -> Option<Usd> {
    Some(Usd(d.max(Decimal::ZERO).round_dp(4)))
}

/// The new status.
pub fn workload_status(
    previous: Option<&GpuWorkloadStatus>,
    seen: &Observation<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> GpuWorkloadStatus {
    let conditions = merge(
        previous
            .map(|p| p.conditions.as_slice())
            .unwrap_or_default(),
        seen.verdicts,
        generation,
        now,
    );
    let stopped = seen.state == Some("EXITED");
    let stopped_since = match (stopped, previous.and_then(|p| p.stopped_since.clone())) {
        (true, Some(since)) => Some(since),
        (true, None) => Some(Time(now)),
        (false, _) => None,
    };
    GpuWorkloadStatus {
        observed_generation: generation,
        conditions,
        runpod_id: seen.runpod_id.map(String::from),
        state: seen.state.map(String::from),
        gpu: None,
        cost_per_hour: money(seen.current_per_hour),
        worst_case_cost_per_hour: seen.worst_case_per_hour.and_then(money),
        projected_monthly_cost: money(seen.current_per_hour * Decimal::from(HOURS_PER_MONTH)),
        drift_count: Some(u32::try_from(seen.drift.len()).unwrap_or(u32::MAX)),
        drift: seen.drift.to_vec(),
        last_plan: Some(PlanSummary {
            hash: seen.hash.to_string(),
            actions: seen.actions.iter().map(Action::describe).collect(),
            cost_delta_per_hour: seen.delta_per_hour.round_dp(4).to_string(),
        }),
        stopped_since,
        utilisation: None,
        recommendation: None,
        runs_as: previous.and_then(|p| p.runs_as),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CONDITION_READY;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + s).unwrap()
    }

    fn seen<'a>(state: &'a str, verdicts: &'a [Verdict]) -> Observation<'a> {
        Observation {
            runpod_id: Some("pod1"),
            state: Some(state),
            current_per_hour: Decimal::new(189, 2),
            worst_case_per_hour: Some(Decimal::new(191, 2)),
            drift: &[],
            verdicts,
            actions: &[],
            hash: "abc",
            delta_per_hour: Decimal::ZERO,
        }
    }

    #[test]
    fn stopped_since_starts_at_the_first_stop_and_clears_on_start() {
        let ready = [Verdict::yes(CONDITION_READY, "InSync", "")];
        let first = workload_status(None, &seen("EXITED", &ready), Some(1), at(0));
        assert_eq!(first.stopped_since, Some(Time(at(0))));
        let later = workload_status(Some(&first), &seen("EXITED", &ready), Some(1), at(3600));
        assert_eq!(
            later.stopped_since,
            Some(Time(at(0))),
            "still counted from the first stop"
        );
        let running = workload_status(Some(&later), &seen("RUNNING", &ready), Some(1), at(7200));
        assert_eq!(running.stopped_since, None);
    }

    #[test]
    fn money_is_written_as_decimal_strings_and_the_month_projected() {
        let status = workload_status(None, &seen("RUNNING", &[]), Some(4), at(0));
        assert_eq!(status.cost_per_hour.unwrap().to_string(), "1.89");
        assert_eq!(
            status.projected_monthly_cost.unwrap().to_string(),
            "1360.80"
        );
        assert_eq!(status.worst_case_cost_per_hour.unwrap().to_string(), "1.91");
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(status.last_plan.unwrap().hash, "abc");
    }
}
