//! The money rules: the workload and account caps, the one-hour credit rule, the credit
//! policy's runway, and which workloads the credit policy stops.

use rust_decimal::Decimal;

use super::{Context, RESTART_MARGIN_HOURS, usd};
use crate::{
    api::{CONDITION_INSUFFICIENT_CREDIT, CONDITION_SPEND_CAP_EXCEEDED, CreditAction},
    engine::{cost::WorkloadCost, prices::HOURS_PER_MONTH},
};

/// Spending that is approved but not yet in RunPod's figures: the earlier spending actions of
/// the same pass (the CLI), or writes sent and not yet seen by a refresh (the controller).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// What it adds per hour at worst (weighed by the one-hour credit rule).
    pub worst_per_hour: Decimal,
    /// What it adds per hour as expected (weighed by the credit policy's runway).
    pub expected_per_hour: Decimal,
    /// Who took it (`namespace/name`), named in a refusal.
    pub by: Vec<String>,
}

impl Pending {
    /// Adds one approved action.
    pub fn add(&mut self, key: &str, worst_per_hour: Decimal, expected_per_hour: Decimal) {
        self.worst_per_hour += worst_per_hour;
        self.expected_per_hour += expected_per_hour;
        self.by.push(key.to_string());
    }

    fn names(&self) -> String {
        self.by.join(", ")
    }
}

/// The account's money as one workload's plan sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    /// The account cap, USD per hour (default 80, RunPod's spend limit).
    pub account_cap_per_hour: Decimal,
    /// The worst-case hourly cost of every other workload of the account.
    pub others_worst_case_per_hour: Decimal,
    /// The balance, if known.
    pub balance: Option<Decimal>,
    /// What the account spends per hour now, if known.
    pub spend_per_hour: Option<Decimal>,
    /// Hours of spend the balance should cover.
    pub minimum_runway_hours: u32,
    /// Set when the account's credit policy stops this workload, with the reason.
    pub forced_down: Option<String>,
    /// What the credit policy does when the runway is short.
    pub credit_action: CreditAction,
    /// Spending approved before this workload's and not yet billed.
    pub pending: Pending,
    /// The sum of `maxWorkers` over every endpoint of the account as RunPod lists them,
    /// declared or not (RunPod's worker quota counts them all); `None` when not known.
    pub account_workers_max: Option<u64>,
}

/// RunPod's serverless worker quota at a balance: the most `maxWorkers` all endpoints of the
/// account may add up to (flex and active alike). 5 by default; 10, 20, 30, 40, 50 and 60 from
/// a balance of $100, $200, $300, $500, $700 and $900; more only through RunPod's support.
pub fn worker_quota(balance: Decimal) -> u32 {
    QUOTA_STEPS
        .iter()
        .rev()
        .find(|(at, _)| balance >= Decimal::from(*at))
        .map_or(5, |(_, quota)| *quota)
}

/// (balance in USD, workers) steps of [`worker_quota`], lowest first.
const QUOTA_STEPS: [(u32, u32); 6] = [
    (100, 10),
    (200, 20),
    (300, 30),
    (500, 40),
    (700, 50),
    (900, 60),
];

/// The worker quota rule for an endpoint that would have `max` workers and has `own_now`
/// (0 for a create): refused when the account's endpoints would add up past the quota at the
/// current balance. Nothing is decided when the balance or the account's endpoints are not
/// known (RunPod still enforces its quota).
pub(super) fn check_worker_quota(ctx: &Context<'_>, max: u32, own_now: u32) -> Option<Refusal> {
    let (Some(balance), Some(total)) = (ctx.money.balance, ctx.money.account_workers_max) else {
        return None;
    };
    let others = total.saturating_sub(u64::from(own_now));
    let wanted = others + u64::from(max);
    let quota = worker_quota(balance);
    if wanted <= u64::from(quota) {
        return None;
    }
    let room = u64::from(quota).saturating_sub(others);
    let raise = QUOTA_STEPS
        .iter()
        .find(|(_, q)| u64::from(*q) >= wanted)
        .map_or_else(
            || " (more than 60 needs RunPod's support)".to_string(),
            |(at, q)| format!(", or bring the balance to ${at} ({q} workers)"),
        );
    Some(Refusal {
        reason: "WorkerQuota",
        condition: CONDITION_INSUFFICIENT_CREDIT,
        message: format!(
            "maxWorkers {max} and the account's other endpoints' {others} make {wanted} workers, past RunPod's worker quota of {quota} at a balance of {} USD: lower spec.serverless.maxWorkers to {room}{raise}",
            balance.round_dp(2)
        ),
    })
}

/// Why spending more is refused, with the figures.
pub(super) struct Refusal {
    pub(super) reason: &'static str,
    pub(super) condition: &'static str,
    pub(super) message: String,
}

/// The money rules for an action that raises this workload's cost to `cost`. `restart` is a
/// start of a stopped pod or a scale-up of an endpoint at zero workers, which needs the
/// restart margin under the credit policy.
pub(super) fn check_money(
    ctx: &Context<'_>,
    cost: &WorkloadCost,
    restart: bool,
) -> Option<Refusal> {
    if let Some(refusal) = check_caps(ctx, cost) {
        return Some(refusal);
    }
    check_credit(ctx, cost, restart)
}

/// The workload's caps and the account cap, against `cost`.
pub(super) fn check_caps(ctx: &Context<'_>, cost: &WorkloadCost) -> Option<Refusal> {
    let cap = ctx.spec.spending_cap.usd_per_hour.amount();
    if cost.worst_case_per_hour > cap {
        return Some(Refusal {
            reason: "SpendCapExceeded",
            condition: CONDITION_SPEND_CAP_EXCEEDED,
            message: format!(
                "worst case {} USD/h exceeds the workload cap {} USD/h (spec.spendingCap.usdPerHour)",
                usd(cost.worst_case_per_hour),
                usd(cap)
            ),
        });
    }
    if let Some(month_cap) = ctx.spec.spending_cap.usd_per_month {
        let month = cost.expected_per_hour * Decimal::from(HOURS_PER_MONTH);
        if month > month_cap.amount() {
            return Some(Refusal {
                reason: "SpendCapExceeded",
                condition: CONDITION_SPEND_CAP_EXCEEDED,
                message: format!(
                    "projected month {} USD exceeds the workload cap {} USD (spec.spendingCap.usdPerMonth)",
                    usd(month),
                    usd(month_cap.amount())
                ),
            });
        }
    }
    let pending = &ctx.money.pending;
    let taken = if pending.by.is_empty() {
        String::new()
    } else {
        format!("; approved before it: {}", pending.names())
    };
    let account = ctx.money.others_worst_case_per_hour + cost.worst_case_per_hour;
    if account > ctx.money.account_cap_per_hour {
        return Some(Refusal {
            reason: "AccountCapExceeded",
            condition: CONDITION_SPEND_CAP_EXCEEDED,
            message: format!(
                "worst case {} USD/h for the account (this workload {} USD/h) exceeds the account cap {} USD/h{taken}",
                usd(account),
                usd(cost.worst_case_per_hour),
                usd(ctx.money.account_cap_per_hour)
            ),
        });
    }
    None
}

/// The balance, the one-hour rule and the credit policy's runway, against `cost`.
fn check_credit(ctx: &Context<'_>, cost: &WorkloadCost, restart: bool) -> Option<Refusal> {
    let pending = &ctx.money.pending;
    let taken = if pending.by.is_empty() {
        String::new()
    } else {
        format!("; approved before it: {}", pending.names())
    };
    let (Some(balance), Some(spend)) = (ctx.money.balance, ctx.money.spend_per_hour) else {
        return Some(Refusal {
            reason: "BalanceUnknown",
            condition: CONDITION_INSUFFICIENT_CREDIT,
            message: "the account balance is not known yet; nothing is started until it is"
                .to_string(),
        });
    };
    let added = cost.worst_case_per_hour;
    let hour = spend + pending.worst_per_hour + added;
    if balance < hour {
        let approved = if pending.by.is_empty() {
            String::new()
        } else {
            format!(
                " + {} USD/h approved before it for {}",
                usd(pending.worst_per_hour),
                pending.names()
            )
        };
        return Some(Refusal {
            reason: "InsufficientCredit",
            condition: CONDITION_INSUFFICIENT_CREDIT,
            message: format!(
                "balance {} USD is below one hour of spend ({} USD/h now{approved} + {} USD/h new)",
                usd(balance),
                usd(spend),
                usd(added)
            ),
        });
    }
    // What the credit policy would stop is not started: the same rule, seen from the start.
    if ctx.money.credit_action == CreditAction::StopLowestPriority {
        let margin = if restart { RESTART_MARGIN_HOURS } else { 0 };
        let hours = ctx.money.minimum_runway_hours + margin;
        let rate = spend + pending.expected_per_hour + cost.expected_per_hour;
        if !rate.is_zero() && balance < rate * Decimal::from(hours) {
            let why = if restart {
                format!(
                    "the minimum runway of {} hours plus {RESTART_MARGIN_HOURS} hour, so that what the credit policy stopped is not started again before the balance has room",
                    ctx.money.minimum_runway_hours
                )
            } else {
                format!(
                    "the minimum runway of {} hours: the credit policy would stop it",
                    ctx.money.minimum_runway_hours
                )
            };
            return Some(Refusal {
                reason: "RunwayTooShort",
                condition: CONDITION_INSUFFICIENT_CREDIT,
                message: format!(
                    "balance {} USD would last {} hours at {} USD/h with it, under {why}{taken}",
                    usd(balance),
                    balance.checked_div(rate).unwrap_or_default().round_dp(1),
                    usd(rate)
                ),
            });
        }
    }
    None
}

/// The workloads the credit policy stops, lowest priority first, until the runway is back:
/// `(key, priority, cost per hour)` in, keys out. Then, highest priority first, a chosen one
/// that still fits with the restart margin (the minimum runway plus
/// [`RESTART_MARGIN_HOURS`]) keeps running: the planner would start it again on the next
/// pass, and the policy must never stop what the planner starts. Pure, for the account's
/// reconcile.
pub fn credit_victims(
    balance: Decimal,
    spend_per_hour: Decimal,
    minimum_runway_hours: u32,
    workloads: &[(String, i32, Decimal)],
) -> Vec<String> {
    let sorted = credit_order(workloads);
    credit_victims_ranked(
        balance,
        spend_per_hour,
        minimum_runway_hours,
        sorted.iter().map(|(k, p, c)| (k.as_str(), *p, *c)),
    )
}

/// The workloads that cost something now, in the order the credit policy stops them: lowest
/// priority first, then the most expensive, then by key.
pub fn credit_order(workloads: &[(String, i32, Decimal)]) -> Vec<(String, i32, Decimal)> {
    let mut sorted: Vec<_> = workloads
        .iter()
        .filter(|(_, _, c)| *c > Decimal::ZERO)
        .cloned()
        .collect();
    sorted.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    sorted
}

/// [`credit_victims`] over workloads already in [`credit_order`] (the controller keeps the
/// ranking as workloads change): reads only as far down the ranking as the runway needs.
pub fn credit_victims_ranked<'a>(
    balance: Decimal,
    spend_per_hour: Decimal,
    minimum_runway_hours: u32,
    ranked: impl IntoIterator<Item = (&'a str, i32, Decimal)>,
) -> Vec<String> {
    let hours = Decimal::from(minimum_runway_hours);
    let mut spend = spend_per_hour;
    let mut victims: Vec<(&str, Decimal)> = Vec::new();
    for (key, _, cost) in ranked {
        // A runway too long to compute is long enough.
        if spend.is_zero() || balance.checked_div(spend).is_none_or(|h| h >= hours) {
            break;
        }
        victims.push((key, cost));
        spend -= cost;
    }
    let with_margin = Decimal::from(minimum_runway_hours + RESTART_MARGIN_HOURS);
    let mut kept = Vec::new();
    for (key, cost) in victims.iter().rev() {
        if balance >= (spend + *cost) * with_margin {
            spend += *cost;
            kept.push(*key);
        }
    }
    victims
        .into_iter()
        .filter(|(key, _)| !kept.contains(key))
        .map(|(key, _)| key.to_string())
        .collect()
}
