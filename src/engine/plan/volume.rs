//! Network volumes: create, grow, report what cannot change, and delete only when nothing
//! uses the volume.

use rust_decimal::Decimal;

use super::{Action, Money, Observed, drift::drift, usd};
use crate::{
    api::{
        CONDITION_DRIFTED, CONDITION_READY, CONDITION_RECONCILING, CONDITION_SPEND_CAP_EXCEEDED,
        CONDITION_STALLED, DriftEntry, ManagementPolicy, NetworkVolumeSpec, VolumeTier,
    },
    engine::{
        conditions::Verdict,
        identity::Owner,
        prices::{HOURS_PER_MONTH, PriceCatalogue},
    },
    runpod::types::{CreateNetworkVolume, NetworkVolume as RunPodVolume, UpdateNetworkVolume},
};

/// The plan of one NetworkVolume: the actions, the tracked id, drift and conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumePlan {
    /// What to do.
    pub actions: Vec<Action>,
    /// The RunPod id.
    pub runpod_id: Option<String>,
    /// Where RunPod differs.
    pub drift: Vec<DriftEntry>,
    /// Conditions.
    pub verdicts: Vec<Verdict>,
    /// USD per month.
    pub cost_per_month: Decimal,
    /// Other volumes with this volume's name (a create repeated by a crash or a lagging list,
    /// or one made in the console): reported, never deleted (they may hold data).
    pub extras: Vec<String>,
}

/// Plans a NetworkVolume: create it, grow it; report what cannot change (data centre, tier,
/// a smaller size). The account cap counts its hourly cost with the rest of the account.
pub fn plan_volume(
    owner: &Owner,
    spec: &NetworkVolumeSpec,
    volumes: &[RunPodVolume],
    known_id: Option<&str>,
    adopt_id: Option<&str>,
    money: &Money,
    prices: &PriceCatalogue,
) -> VolumePlan {
    let name = owner.runpod_name();
    let cost_per_month =
        crate::engine::cost::network_volume_per_month(spec.size_gb, &prices.storage);
    let per_hour = cost_per_month / Decimal::from(HOURS_PER_MONTH);
    let tier = if spec.tier == VolumeTier::HighPerformance {
        "HIGH_PERFORMANCE"
    } else {
        "STANDARD"
    };
    let legacy = owner.legacy_runpod_name();
    let found = find_volume(owner, volumes, known_id, adopt_id);
    let extras: Vec<&RunPodVolume> = volumes
        .iter()
        .filter(|v| v.name == name || legacy.as_deref() == Some(v.name.as_str()))
        .filter(|v| found.is_none_or(|f| f.id != v.id))
        .collect();
    let mut plan = VolumePlan {
        actions: Vec::new(),
        runpod_id: found.map(|v| v.id.clone()),
        drift: Vec::new(),
        verdicts: Vec::new(),
        cost_per_month,
        extras: extras.iter().map(|v| v.id.clone()).collect(),
    };
    if !extras.is_empty() {
        plan.drift.push(drift(
            "networkVolume",
            format!("one volume named {name}"),
            format!("{} more: {}", extras.len(), plan.extras.join(", ")),
        ));
    }
    let manage = spec.management_policy == ManagementPolicy::Manage;
    let mut stalled: Option<(&'static str, String)> = None;
    match found {
        None if spec.management_policy == ManagementPolicy::Paused => {}
        None => {
            plan.drift.push(drift("networkVolume", "exists", "missing"));
            let account = money.others_worst_case_per_hour + per_hour;
            if account > money.account_cap_per_hour {
                let message = format!(
                    "worst case {} USD/h for the account exceeds the account cap {} USD/h",
                    usd(account),
                    usd(money.account_cap_per_hour)
                );
                plan.verdicts.push(Verdict::yes(
                    CONDITION_SPEND_CAP_EXCEEDED,
                    "AccountCapExceeded",
                    message.clone(),
                ));
                stalled = Some(("AccountCapExceeded", message));
            } else if manage {
                plan.actions.push(Action::CreateVolume {
                    request: CreateNetworkVolume {
                        name: name.clone(),
                        size: spec.size_gb,
                        data_center: spec.data_center.clone(),
                        volume_type: Some(tier.to_string()),
                    },
                });
            }
        }
        Some(v) => {
            if v.size != spec.size_gb {
                plan.drift.push(drift("spec.sizeGb", spec.size_gb, v.size));
            }
            if v.data_center != spec.data_center {
                plan.drift
                    .push(drift("spec.dataCenter", &spec.data_center, &v.data_center));
                stalled = Some((
                    "Immutable",
                    format!(
                        "the volume is in {}, not {}: a volume cannot move; create a new NetworkVolume instead",
                        v.data_center, spec.data_center
                    ),
                ));
            }
            if !v.volume_type.is_empty() && v.volume_type != tier {
                plan.drift.push(drift("spec.tier", tier, &v.volume_type));
                stalled = Some((
                    "Immutable",
                    format!(
                        "the volume's tier is {}, and a tier cannot change",
                        v.volume_type
                    ),
                ));
            }
            if v.size > spec.size_gb {
                stalled = Some((
                    "CannotShrink",
                    format!(
                        "the volume has {} GB and cannot shrink to {} GB",
                        v.size, spec.size_gb
                    ),
                ));
            }
            // A volume under the name an older version gave takes today's name (in place).
            let rename = (legacy.as_deref() == Some(v.name.as_str())).then(|| name.clone());
            let grow = (v.size < spec.size_gb).then_some(spec.size_gb);
            if (rename.is_some() || grow.is_some()) && manage {
                plan.actions.push(Action::UpdateVolume {
                    id: v.id.clone(),
                    request: UpdateNetworkVolume {
                        name: rename,
                        size: grow,
                    },
                });
            }
        }
    }
    let drifted = !plan.drift.is_empty();
    match (&stalled, plan.actions.first()) {
        (Some((reason, message)), _) => {
            plan.verdicts
                .push(Verdict::no(CONDITION_READY, reason, message.clone()));
            plan.verdicts
                .push(Verdict::yes(CONDITION_STALLED, reason, message.clone()));
            plan.verdicts
                .push(Verdict::no(CONDITION_RECONCILING, reason, ""));
        }
        (None, Some(action)) => {
            plan.verdicts.push(Verdict::no(
                CONDITION_READY,
                "Progressing",
                action.describe(),
            ));
            plan.verdicts
                .push(Verdict::no(CONDITION_STALLED, "Progressing", ""));
            plan.verdicts.push(Verdict::yes(
                CONDITION_RECONCILING,
                "Progressing",
                action.describe(),
            ));
        }
        (None, None) => {
            plan.verdicts.push(Verdict::yes(
                CONDITION_READY,
                "InSync",
                "RunPod matches the spec",
            ));
            plan.verdicts
                .push(Verdict::no(CONDITION_STALLED, "InSync", ""));
            plan.verdicts
                .push(Verdict::no(CONDITION_RECONCILING, "InSync", ""));
        }
    }
    plan.verdicts.push(if !extras.is_empty() {
        Verdict::yes(
            CONDITION_DRIFTED,
            "DuplicateVolumes",
            format!(
                "RunPod holds {} more network volume(s) named {name} ({}), billed like this one; the operator uses {} and deletes none of the others, which may hold data: check them and delete them in the RunPod console",
                extras.len(),
                plan.extras.join(", "),
                plan.runpod_id.as_deref().unwrap_or("none yet")
            ),
        )
    } else if drifted {
        Verdict::yes(
            CONDITION_DRIFTED,
            "FieldsDiffer",
            "RunPod differs from the spec (see status)",
        )
    } else {
        Verdict::no(CONDITION_DRIFTED, "InSync", "")
    });
    plan
}

/// The RunPod volume a NetworkVolume is: the adopted or recorded id, else the first volume
/// with its name, else the first with the name an older version gave it. The workloads that
/// mount it and the audit use the same rule, so all three agree on which one it is.
pub fn find_volume<'a>(
    owner: &Owner,
    volumes: &'a [RunPodVolume],
    known_id: Option<&str>,
    adopt_id: Option<&str>,
) -> Option<&'a RunPodVolume> {
    let name = owner.runpod_name();
    volumes
        .iter()
        .find(|v| adopt_id == Some(v.id.as_str()) || known_id == Some(v.id.as_str()))
        .or_else(|| volumes.iter().find(|v| v.name == name))
        .or_else(|| {
            let legacy = owner.legacy_runpod_name()?;
            volumes.iter().find(|v| v.name == legacy)
        })
}

/// What deleting a NetworkVolume does: nothing with `Orphan`; with `Delete`, the volume goes,
/// but never while a pod or endpoint still uses it (the error names them).
pub fn plan_volume_delete(
    owner: &Owner,
    known_id: Option<&str>,
    volumes: &[RunPodVolume],
    observed: Observed<'_>,
    orphan: bool,
) -> Result<Vec<Action>, String> {
    if orphan {
        return Ok(Vec::new());
    }
    let Some(volume) = find_volume(owner, volumes, known_id, None) else {
        return Ok(Vec::new());
    };
    let mut users: Vec<String> = observed
        .pods
        .iter()
        .filter(|p| {
            p.mounts
                .network
                .as_ref()
                .is_some_and(|l| l.iter().any(|m| m.volume_id == volume.id))
        })
        .map(|p| format!("pod {} ({})", p.id, p.name))
        .collect();
    users.extend(
        observed
            .endpoints
            .iter()
            .filter(|e| e.network_volumes.contains(&volume.id))
            .map(|e| format!("endpoint {} ({})", e.id, e.name)),
    );
    if !users.is_empty() {
        return Err(format!("the volume is still used by {}", users.join(", ")));
    }
    Ok(vec![Action::DeleteVolume {
        id: volume.id.clone(),
        reason: "the NetworkVolume was deleted".to_string(),
    }])
}
