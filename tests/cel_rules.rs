//! Every validation rule of the CRDs, run without a cluster against an object it accepts and
//! one it rejects. Each rejection must name the field and say how to fix it.

use runpod_operator::api::validate::{
    FieldError, Manifest, check_document, check_document_all_cel,
};
use serde_json::{Value, json};

const POD: &str = r#"
apiVersion: runpod-operator.dev/v1alpha1
kind: GpuWorkload
metadata: {name: trainer, namespace: ml}
spec:
  type: Pod
  image: ghcr.io/acme/trainer:1
  gpu: {types: ["NVIDIA A100-SXM4-80GB"], count: 1}
  volume: {sizeGb: 50}
  spendingCap: {usdPerHour: "3"}
"#;

const ENDPOINT: &str = r#"
apiVersion: runpod-operator.dev/v1alpha1
kind: GpuWorkload
metadata: {name: matting, namespace: ml}
spec:
  type: Serverless
  image: ghcr.io/acme/matting:1
  gpu: {types: ["NVIDIA A100-SXM4-80GB"]}
  serverless: {maxWorkers: 3}
  spendingCap: {usdPerHour: "9"}
"#;

const VOLUME: &str = r#"
apiVersion: runpod-operator.dev/v1alpha1
kind: NetworkVolume
metadata: {name: weights, namespace: ml}
spec: {sizeGb: 100, dataCenter: EU-RO-1}
"#;

const ACCOUNT: &str = r#"
apiVersion: runpod-operator.dev/v1alpha1
kind: RunPodAccount
metadata: {name: default}
spec:
  apiKeySecretRef: {namespace: runpod-operator, name: runpod-api-key}
"#;

fn doc(yaml: &str) -> Value {
    serde_norway::from_str(yaml).expect("fixture is YAML")
}

/// The object with the field at a dotted path (e.g. `spec.gpu.count`) set; `Null` removes it.
fn with(mut value: Value, path: &str, new: Value) -> Value {
    let (parents, last) = path.rsplit_once('.').unwrap_or(("", path));
    let mut target = &mut value;
    for key in parents.split('.').filter(|k| !k.is_empty()) {
        target = target
            .as_object_mut()
            .expect("path runs through objects")
            .entry(key)
            .or_insert_with(|| json!({}));
    }
    let object = target.as_object_mut().expect("parent is an object");
    if new.is_null() {
        object.remove(last);
    } else {
        object.insert(last.to_string(), new);
    }
    value
}

/// The errors of a document, the same whether the pattern rules run natively (as the CLI
/// runs them) or all in the CEL interpreter (as the API server does): every test of this file
/// checks both.
fn errors(value: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let sorted = |mut e: Vec<FieldError>| {
        e.sort_by(|a, b| (&a.path, &a.message).cmp(&(&b.path, &b.message)));
        e
    };
    let native = sorted(check_document(value, old).err().unwrap_or_default());
    let cel = sorted(check_document_all_cel(value, old).err().unwrap_or_default());
    assert_eq!(native, cel, "native checks and CEL disagree");
    native
}

#[track_caller]
fn accepted(value: &Value) {
    let found = errors(value, None);
    assert!(found.is_empty(), "expected no errors, got {found:#?}");
}

#[track_caller]
fn accepted_update(value: &Value, old: &Value) {
    let found = errors(value, Some(old));
    assert!(found.is_empty(), "expected no errors, got {found:#?}");
}

/// Rejected, with an error at `path` whose message contains `says`.
#[track_caller]
fn rejected(value: &Value, path: &str, says: &str) {
    rejected_update(value, None, path, says);
}

#[track_caller]
fn rejected_update(value: &Value, old: Option<&Value>, path: &str, says: &str) {
    let found = errors(value, old);
    assert!(
        found
            .iter()
            .any(|e| e.path == path && e.message.contains(says)),
        "expected an error at {path:?} saying {says:?}, got {found:#?}"
    );
}

// ---- the fixtures themselves -------------------------------------------------------------

#[test]
fn the_fixtures_are_valid() {
    for fixture in [POD, ENDPOINT, VOLUME, ACCOUNT] {
        accepted(&doc(fixture));
    }
    assert!(matches!(
        check_document(&doc(POD), None),
        Ok(Manifest::GpuWorkload(_))
    ));
    assert!(matches!(
        check_document(&doc(VOLUME), None),
        Ok(Manifest::NetworkVolume(_))
    ));
    assert!(matches!(
        check_document(&doc(ACCOUNT), None),
        Ok(Manifest::RunPodAccount(_))
    ));
}

// ---- GpuWorkload: which settings go with which type ---------------------------------------

#[test]
fn serverless_settings_are_refused_on_a_pod() {
    let pod = with(doc(POD), "spec.serverless", json!({"maxWorkers": 1}));
    rejected(
        &pod,
        "spec",
        "spec.serverless applies only to type Serverless or Auto",
    );
}

#[test]
fn serverless_and_auto_need_serverless_settings() {
    let endpoint = with(doc(ENDPOINT), "spec.serverless", Value::Null);
    rejected(&endpoint, "spec", "spec.serverless is required");
    let auto = with(
        with(doc(POD), "spec.type", json!("Auto")),
        "spec.volume",
        Value::Null,
    );
    rejected(&auto, "spec", "spec.serverless is required");
    accepted(&with(auto, "spec.serverless", json!({"maxWorkers": 2})));
}

#[test]
fn a_pod_volume_is_refused_on_an_endpoint_and_on_auto() {
    let endpoint = with(doc(ENDPOINT), "spec.volume", json!({"sizeGb": 20}));
    rejected(
        &endpoint,
        "spec",
        "spec.volume (a pod volume) applies only to type Pod",
    );
    // Auto may move to Serverless, where a pod volume cannot follow.
    let auto = with(endpoint, "spec.type", json!("Auto"));
    rejected(
        &auto,
        "spec",
        "it cannot follow an Auto workload to Serverless",
    );
    accepted(&with(doc(POD), "spec.volume", json!({"sizeGb": 20})));
}

#[test]
fn the_measurement_window_and_margin_are_bounded() {
    for (field, bad, good) in [
        ("windowDays", 8, 3),
        ("windowDays", 0, 7),
        ("switchMarginPercent", 91, 0),
    ] {
        let measurement = json!({ field: bad });
        rejected(
            &with(doc(ENDPOINT), "spec.measurement", measurement),
            &format!("spec.measurement.{field}"),
            &format!("spec.measurement.{field} must be between"),
        );
        accepted(&with(
            doc(ENDPOINT),
            "spec.measurement",
            json!({ field: good }),
        ));
    }
}

#[test]
fn a_desired_state_is_refused_on_an_endpoint() {
    let endpoint = with(doc(ENDPOINT), "spec.state", json!("Stopped"));
    rejected(
        &endpoint,
        "spec",
        "spec.state applies only to type Pod or Auto",
    );
    accepted(&with(doc(POD), "spec.state", json!("Stopped")));
}

#[test]
fn a_stopped_volume_policy_is_refused_on_an_endpoint() {
    let policy = json!({"action": "Alert", "afterHours": 24});
    rejected(
        &with(doc(ENDPOINT), "spec.stoppedVolumePolicy", policy.clone()),
        "spec",
        "spec.stoppedVolumePolicy applies only to type Pod or Auto",
    );
    accepted(&with(doc(POD), "spec.stoppedVolumePolicy", policy));
}

#[test]
fn a_cloud_choice_is_refused_on_an_endpoint() {
    rejected(
        &with(doc(ENDPOINT), "spec.gpu.cloud", json!("Community")),
        "spec",
        "spec.gpu.cloud applies only to type Pod or Auto",
    );
    accepted(&with(doc(POD), "spec.gpu.cloud", json!("Community")));
}

#[test]
fn a_pod_has_at_most_one_mount() {
    let both = with(
        doc(POD),
        "spec.networkVolumes",
        json!([{"name": "weights"}]),
    );
    rejected(&both, "spec", "a RunPod pod has at most one mount");
    let two = with(
        with(doc(POD), "spec.volume", Value::Null),
        "spec.networkVolumes",
        json!([{"name": "a"}, {"name": "b"}]),
    );
    rejected(&two, "spec", "a RunPod pod has at most one mount");
    let one = with(
        with(doc(POD), "spec.volume", Value::Null),
        "spec.networkVolumes",
        json!([{"name": "weights", "mountPath": "/models"}]),
    );
    accepted(&one);
}

#[test]
fn an_endpoint_may_attach_one_volume_per_data_centre_without_mount_paths() {
    let volumes = json!([{"name": "weights-eu"}, {"name": "weights-us"}]);
    accepted(&with(doc(ENDPOINT), "spec.networkVolumes", volumes));
    let with_path = json!([{"name": "weights", "mountPath": "/models"}]);
    rejected(
        &with(doc(ENDPOINT), "spec.networkVolumes", with_path),
        "spec",
        "Serverless workers mount network volumes at /runpod-volume",
    );
}

// ---- GpuWorkload: container, GPUs, disks ---------------------------------------------------

#[test]
fn the_image_must_not_be_empty() {
    rejected(
        &with(doc(POD), "spec.image", json!("")),
        "spec.image",
        "spec.image is empty",
    );
}

#[test]
fn ports_are_port_slash_http_or_tcp() {
    accepted(&with(
        doc(POD),
        "spec.ports",
        json!(["8888/http", "22/tcp"]),
    ));
    rejected(
        &with(doc(POD), "spec.ports", json!(["8888"])),
        "spec.ports",
        "look like 8888/http",
    );
    rejected(
        &with(doc(POD), "spec.ports", json!(["22/udp"])),
        "spec.ports",
        "look like 8888/http",
    );
}

#[test]
fn an_env_entry_has_exactly_one_of_value_and_value_from() {
    let from = json!({"secretKeyRef": {"name": "s", "key": "k"}});
    accepted(&with(
        doc(POD),
        "spec.env",
        json!([{"name": "A", "value": "1"}, {"name": "B", "valueFrom": from}]),
    ));
    rejected(
        &with(
            doc(POD),
            "spec.env",
            json!([{"name": "A", "value": "1", "valueFrom": from}]),
        ),
        "spec.env[0]",
        "exactly one of value or valueFrom",
    );
    rejected(
        &with(doc(POD), "spec.env", json!([{"name": "A"}])),
        "spec.env[0]",
        "exactly one of value or valueFrom",
    );
}

#[test]
fn env_names_are_shell_variable_names() {
    rejected(
        &with(
            doc(POD),
            "spec.env",
            json!([{"name": "1BAD-NAME", "value": "x"}]),
        ),
        "spec.env[0].name",
        "must be a shell variable name",
    );
}

#[test]
fn at_least_one_gpu_type_is_listed() {
    rejected(
        &with(doc(POD), "spec.gpu.types", json!([])),
        "spec.gpu.types",
        "at least one GPU type id",
    );
}

#[test]
fn gpu_count_is_at_least_one() {
    rejected(
        &with(doc(POD), "spec.gpu.count", json!(0)),
        "spec.gpu.count",
        "at least 1",
    );
    accepted(&with(doc(POD), "spec.gpu.count", json!(8)));
}

#[test]
fn gpu_type_and_count_may_change_in_place() {
    let old = doc(POD);
    let new = with(
        with(old.clone(), "spec.gpu.count", json!(2)),
        "spec.gpu.types",
        json!(["NVIDIA H200"]),
    );
    accepted_update(&new, &old);
}

#[test]
fn cuda_is_either_an_allowed_list_or_a_minimum() {
    accepted(&with(
        doc(POD),
        "spec.gpu.allowedCudaVersions",
        json!(["12.4", "12.8"]),
    ));
    accepted(&with(doc(POD), "spec.gpu.minCudaVersion", json!("12.4")));
    let both = with(
        with(doc(POD), "spec.gpu.allowedCudaVersions", json!(["12.4"])),
        "spec.gpu.minCudaVersion",
        json!("12.4"),
    );
    rejected(
        &both,
        "spec.gpu",
        "either spec.gpu.allowedCudaVersions or spec.gpu.minCudaVersion",
    );
    accepted(&with(doc(POD), "spec.gpu.minCudaVersion", json!("12.11")));
    rejected(
        &with(doc(POD), "spec.gpu.allowedCudaVersions", json!(["12"])),
        "spec.gpu.allowedCudaVersions",
        "CUDA versions written major.minor",
    );
    rejected(
        &with(doc(POD), "spec.gpu.minCudaVersion", json!("v12.4")),
        "spec.gpu.minCudaVersion",
        "CUDA version written major.minor",
    );
}

#[test]
fn container_disk_is_between_1_and_4096_gb() {
    accepted(&with(doc(POD), "spec.containerDiskGb", json!(1)));
    accepted(&with(doc(POD), "spec.containerDiskGb", json!(4096)));
    rejected(
        &with(doc(POD), "spec.containerDiskGb", json!(0)),
        "spec.containerDiskGb",
        "between 1 and 4096",
    );
    rejected(
        &with(doc(POD), "spec.containerDiskGb", json!(4097)),
        "spec.containerDiskGb",
        "between 1 and 4096",
    );
}

#[test]
fn a_pod_volume_is_10_to_4096_gb_at_an_absolute_path() {
    accepted(&with(
        doc(POD),
        "spec.volume",
        json!({"sizeGb": 10, "mountPath": "/data"}),
    ));
    rejected(
        &with(doc(POD), "spec.volume.sizeGb", json!(9)),
        "spec.volume.sizeGb",
        "between 10 and 4096",
    );
    rejected(
        &with(doc(POD), "spec.volume.mountPath", json!("data")),
        "spec.volume.mountPath",
        "absolute path",
    );
}

#[test]
fn a_network_volume_mount_names_a_volume_and_an_absolute_path() {
    let pod = with(doc(POD), "spec.volume", Value::Null);
    rejected(
        &with(pod.clone(), "spec.networkVolumes", json!([{"name": ""}])),
        "spec.networkVolumes[0].name",
        "name a NetworkVolume",
    );
    rejected(
        &with(
            pod,
            "spec.networkVolumes",
            json!([{"name": "w", "mountPath": "models"}]),
        ),
        "spec.networkVolumes[0].mountPath",
        "absolute path",
    );
}

// ---- GpuWorkload: serverless ---------------------------------------------------------------

#[test]
fn max_workers_is_at_least_active_workers() {
    let active = json!({"workerClass": "Active", "activeWorkers": 3, "maxWorkers": 2});
    rejected(
        &with(doc(ENDPOINT), "spec.serverless", active),
        "spec.serverless",
        "maxWorkers must be at least spec.serverless.activeWorkers",
    );
}

#[test]
fn flex_workers_have_no_active_workers_and_active_has_some() {
    rejected(
        &with(
            doc(ENDPOINT),
            "spec.serverless",
            json!({"activeWorkers": 1, "maxWorkers": 3}),
        ),
        "spec.serverless",
        "Flex workers scale to zero",
    );
    rejected(
        &with(
            doc(ENDPOINT),
            "spec.serverless",
            json!({"workerClass": "Active", "maxWorkers": 3}),
        ),
        "spec.serverless",
        "workerClass Active needs spec.serverless.activeWorkers of at least 1",
    );
    accepted(&with(
        doc(ENDPOINT),
        "spec.serverless",
        json!({"workerClass": "Active", "activeWorkers": 1, "maxWorkers": 3}),
    ));
    // Auto: the operator chooses the active workers; a count in the spec is refused.
    rejected(
        &with(
            doc(ENDPOINT),
            "spec.serverless",
            json!({"workerClass": "Auto", "activeWorkers": 1, "maxWorkers": 3}),
        ),
        "spec.serverless",
        "with workerClass Auto the operator chooses the active workers",
    );
    accepted(&with(
        doc(ENDPOINT),
        "spec.serverless",
        json!({"workerClass": "Auto", "maxWorkers": 3}),
    ));
}

#[test]
fn max_workers_zero_is_a_legal_scale_to_nothing() {
    accepted(&with(doc(ENDPOINT), "spec.serverless.maxWorkers", json!(0)));
}

#[test]
fn idle_timeout_is_1_to_3600_seconds() {
    accepted(&with(
        doc(ENDPOINT),
        "spec.serverless.idleTimeoutSeconds",
        json!(1),
    ));
    accepted(&with(
        doc(ENDPOINT),
        "spec.serverless.idleTimeoutSeconds",
        json!(3600),
    ));
    for bad in [0, 3601] {
        rejected(
            &with(
                doc(ENDPOINT),
                "spec.serverless.idleTimeoutSeconds",
                json!(bad),
            ),
            "spec.serverless.idleTimeoutSeconds",
            "between 1 and 3600",
        );
    }
}

#[test]
fn idle_timeout_is_refused_with_request_count_scaling() {
    let endpoint = with(
        doc(ENDPOINT),
        "spec.serverless",
        json!({"maxWorkers": 3, "idleTimeoutSeconds": 30, "scaler": {"type": "RequestCount", "value": 2}}),
    );
    rejected(
        &endpoint,
        "spec.serverless",
        "RunPod refuses spec.serverless.idleTimeoutSeconds with scaler type RequestCount",
    );
    accepted(&with(
        endpoint,
        "spec.serverless.idleTimeoutSeconds",
        Value::Null,
    ));
}

#[test]
fn scaler_value_is_at_least_one() {
    rejected(
        &with(
            doc(ENDPOINT),
            "spec.serverless.scaler",
            json!({"type": "QueueDelay", "value": 0}),
        ),
        "spec.serverless.scaler.value",
        "at least 1",
    );
}

#[test]
fn execution_timeout_is_5_seconds_to_7_days() {
    accepted(&with(
        doc(ENDPOINT),
        "spec.serverless.executionTimeoutSeconds",
        json!(604800),
    ));
    for bad in [4, 604801] {
        rejected(
            &with(
                doc(ENDPOINT),
                "spec.serverless.executionTimeoutSeconds",
                json!(bad),
            ),
            "spec.serverless.executionTimeoutSeconds",
            "between 5 and 604800",
        );
    }
}

// ---- GpuWorkload: money and policies -------------------------------------------------------

#[test]
fn money_is_a_decimal_string() {
    for bad in ["1.5.0", "-3", "3.", "1e3", "3.1234567"] {
        rejected(
            &with(doc(POD), "spec.spendingCap.usdPerHour", json!(bad)),
            "spec.spendingCap.usdPerHour",
            "US dollars written as a decimal string",
        );
    }
    accepted(&with(
        doc(POD),
        "spec.spendingCap.usdPerMonth",
        json!("1500.50"),
    ));
}

#[test]
fn an_unquoted_amount_is_refused_with_its_path() {
    rejected(
        &with(doc(POD), "spec.spendingCap.usdPerHour", json!(2.5)),
        "spec.spendingCap.usdPerHour",
        "quoted decimal string",
    );
}

#[test]
fn a_spending_cap_is_required() {
    rejected(
        &with(doc(POD), "spec.spendingCap", Value::Null),
        "spec",
        "missing field `spendingCap`",
    );
}

#[test]
fn stopped_volume_policy_waits_at_least_an_hour() {
    rejected(
        &with(
            doc(POD),
            "spec.stoppedVolumePolicy",
            json!({"action": "Delete", "afterHours": 0}),
        ),
        "spec.stoppedVolumePolicy.afterHours",
        "at least 1",
    );
}

// ---- NetworkVolume --------------------------------------------------------------------------

#[test]
fn a_network_volume_is_10_to_4096_gb() {
    accepted(&with(doc(VOLUME), "spec.sizeGb", json!(10)));
    accepted(&with(doc(VOLUME), "spec.sizeGb", json!(4096)));
    for bad in [9, 4097] {
        rejected(
            &with(doc(VOLUME), "spec.sizeGb", json!(bad)),
            "spec.sizeGb",
            "between 10 and 4096",
        );
    }
}

#[test]
fn a_network_volume_only_grows() {
    let old = doc(VOLUME);
    accepted_update(&with(old.clone(), "spec.sizeGb", json!(200)), &old);
    rejected_update(
        &with(old.clone(), "spec.sizeGb", json!(50)),
        Some(&old),
        "spec.sizeGb",
        "can only grow",
    );
}

#[test]
fn a_network_volume_stays_in_its_data_centre() {
    let old = doc(VOLUME);
    rejected_update(
        &with(old.clone(), "spec.dataCenter", json!("US-TX-3")),
        Some(&old),
        "spec.dataCenter",
        "spec.dataCenter is immutable",
    );
    rejected(
        &with(doc(VOLUME), "spec.dataCenter", json!("")),
        "spec.dataCenter",
        "spec.dataCenter is empty",
    );
}

#[test]
fn a_network_volume_keeps_its_tier() {
    let old = doc(VOLUME);
    rejected_update(
        &with(old.clone(), "spec.tier", json!("HighPerformance")),
        Some(&old),
        "spec.tier",
        "spec.tier is immutable",
    );
    // The default tier is Standard, so writing it out is no change.
    accepted_update(&with(old.clone(), "spec.tier", json!("Standard")), &old);
}

// ---- RunPodAccount ---------------------------------------------------------------------------

#[test]
fn account_urls_are_http_urls() {
    for field in ["apiUrl", "graphqlUrl", "serverlessUrl"] {
        let path = format!("spec.{field}");
        accepted(&with(doc(ACCOUNT), &path, json!("http://127.0.0.1:8787")));
        rejected(
            &with(doc(ACCOUNT), &path, json!("api.runpod.io")),
            &path,
            "must be an http(s) URL",
        );
    }
}

#[test]
fn account_resync_is_10_seconds_to_a_day() {
    rejected(
        &with(doc(ACCOUNT), "spec.resyncIntervalSeconds", json!(5)),
        "spec.resyncIntervalSeconds",
        "between 10 and 86400",
    );
}

#[test]
fn account_request_budget_is_at_least_one() {
    rejected(
        &with(doc(ACCOUNT), "spec.requestsPerMinute", json!(0)),
        "spec.requestsPerMinute",
        "at least 1",
    );
}

#[test]
fn account_runway_is_at_least_an_hour() {
    rejected(
        &with(
            doc(ACCOUNT),
            "spec.creditPolicy",
            json!({"minimumRunwayHours": 0}),
        ),
        "spec.creditPolicy.minimumRunwayHours",
        "at least 1",
    );
}

#[test]
fn account_cap_defaults_to_runpods_80_per_hour() {
    let Ok(Manifest::RunPodAccount(account)) = check_document(&doc(ACCOUNT), None) else {
        panic!("the account fixture is valid");
    };
    assert_eq!(account.spec.spending_cap_usd_per_hour.to_string(), "80");
    assert_eq!(account.spec.api_url, "https://api.runpod.io");
}

// ---- what every kind gets ----------------------------------------------------------------

#[test]
fn an_unknown_field_is_named_with_the_fields_that_exist() {
    rejected(
        &with(doc(POD), "spec.gpu.typs", json!(["x"])),
        "spec.gpu.typs",
        "the fields here are: allowedCudaVersions, cloud, count",
    );
    rejected(
        &with(doc(ENDPOINT), "spec.serverless.minWorkers", json!(1)),
        "spec.serverless.minWorkers",
        "unknown field",
    );
}

#[test]
fn a_wrong_type_is_named_by_its_path() {
    rejected(
        &with(doc(POD), "spec.gpu.count", json!("two")),
        "spec.gpu.count",
        "invalid type",
    );
    rejected(
        &with(doc(POD), "spec.type", json!("VM")),
        "spec.type",
        "unknown variant `VM`",
    );
}

#[test]
fn the_served_version_and_a_name_are_required() {
    rejected(
        &with(doc(POD), "apiVersion", json!("runpod-operator.dev/v1")),
        "apiVersion",
        "runpod-operator.dev/v1alpha1",
    );
    rejected(
        &with(doc(POD), "metadata.name", Value::Null),
        "metadata.name",
        "set metadata.name",
    );
    rejected(
        &with(doc(POD), "kind", json!("GpuPod")),
        "kind",
        "use GpuWorkload, NetworkVolume or RunPodAccount",
    );
}

#[test]
fn other_kinds_pass_through_untouched() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    assert!(matches!(check_document(&secret, None), Ok(Manifest::Other(v)) if v == secret));
}
