//! Extra network volumes with a declared volume's name: made by a create repeated after a
//! crash or a lagging list, or by hand in the console. The plan and the audit must both see
//! them (they bill), and neither may delete one (it may hold data). A volume under the name an
//! older version gave is found and renamed, never lost or made again.

mod common;

use common::money;
use runpod_operator::{
    api::{CONDITION_DRIFTED, NetworkVolumeSpec},
    cli::manifests_from_texts,
    engine::{
        identity::Owner,
        plan::{Action, VolumePlan, plan_volume},
        prices::PriceCatalogue,
    },
    reconcile::{Workspace, inventory::Snapshot, orphans},
    runpod::types::NetworkVolume,
};
use rust_decimal::Decimal;

const VOLUME: &str = r#"
apiVersion: runpod-operator.dev/v1alpha1
kind: NetworkVolume
metadata: {name: weights, namespace: ml}
spec: {sizeGb: 100, dataCenter: EU-RO-1}
"#;

fn workspace() -> Workspace {
    manifests_from_texts([("weights.yaml", VOLUME)]).unwrap()
}

fn owner() -> Owner {
    Owner::of(Some("ml"), "weights", None)
}

fn spec() -> NetworkVolumeSpec {
    workspace().volumes[0].spec.clone()
}

fn volume(id: &str, name: &str, size: u32) -> NetworkVolume {
    NetworkVolume {
        id: id.to_string(),
        name: name.to_string(),
        size,
        data_center: "EU-RO-1".to_string(),
        volume_type: "STANDARD".to_string(),
    }
}

fn snapshot(volumes: Vec<NetworkVolume>) -> Snapshot {
    Snapshot::new(Vec::new(), Vec::new(), volumes, None)
}

/// The plan of the declared volume against these RunPod volumes, with its recorded id if any.
fn plan(volumes: &[NetworkVolume], known_id: Option<&str>) -> VolumePlan {
    plan_volume(
        &owner(),
        &spec(),
        volumes,
        known_id,
        None,
        &money(),
        &PriceCatalogue::builtin(),
    )
}

#[test]
fn extras_with_the_volume_name_are_reported_and_never_deleted() {
    let name = owner().runpod_name();
    let volumes = vec![
        volume("vol-first", &name, 100),
        volume("vol-second", &name, 100),
        volume("vol-third", &name, 10),
    ];
    let plan = plan(&volumes, None);
    assert_eq!(plan.runpod_id.as_deref(), Some("vol-first"));
    assert_eq!(plan.extras, ["vol-second", "vol-third"]);
    assert!(
        plan.actions.is_empty(),
        "nothing is written: {:?}",
        plan.actions
    );
    let drifted = plan
        .verdicts
        .iter()
        .find(|v| v.kind == CONDITION_DRIFTED)
        .unwrap();
    assert!(drifted.status);
    assert_eq!(drifted.reason, "DuplicateVolumes");
    assert!(
        drifted.message.contains("vol-second, vol-third")
            && drifted.message.contains("uses vol-first"),
        "{}",
        drifted.message
    );
    assert!(plan.drift.iter().any(|d| d.field == "networkVolume"));

    // The audit lists the extras (not the one in use) as objects nobody declared.
    let found = orphans(&workspace(), &snapshot(volumes), &PriceCatalogue::builtin());
    let ids: Vec<&str> = found.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["vol-second", "vol-third"]);
    assert!(
        found
            .iter()
            .all(|o| o.kind == "NetworkVolume" && o.cost_per_hour > Decimal::ZERO)
    );
}

#[test]
fn the_recorded_id_wins_over_the_first_by_name() {
    let name = owner().runpod_name();
    let volumes = vec![volume("vol-a", &name, 100), volume("vol-b", &name, 100)];
    let plan = plan(&volumes, Some("vol-b"));
    assert_eq!(plan.runpod_id.as_deref(), Some("vol-b"));
    assert_eq!(plan.extras, ["vol-a"]);
}

#[test]
fn a_volume_under_the_legacy_name_is_renamed_not_made_again() {
    let legacy = owner().legacy_runpod_name().unwrap();
    let volumes = vec![volume("vol-old", &legacy, 50)];
    let plan = plan(&volumes, None);
    assert_eq!(plan.runpod_id.as_deref(), Some("vol-old"));
    assert!(plan.extras.is_empty());
    match plan.actions.as_slice() {
        [Action::UpdateVolume { id, request }] => {
            assert_eq!(id, "vol-old");
            assert_eq!(
                request.name.as_deref(),
                Some(owner().runpod_name().as_str())
            );
            assert_eq!(request.size, Some(100), "and grown in the same write");
        }
        other => panic!("{other:?}"),
    }
    assert!(orphans(&workspace(), &snapshot(volumes), &PriceCatalogue::builtin()).is_empty());
}

#[test]
fn one_volume_is_not_an_extra() {
    let volumes = vec![volume("vol-a", &owner().runpod_name(), 100)];
    let plan = plan(&volumes, None);
    assert!(plan.extras.is_empty() && plan.actions.is_empty() && plan.drift.is_empty());
    assert!(orphans(&workspace(), &snapshot(volumes), &PriceCatalogue::builtin()).is_empty());
}
