//! The manifests in `examples/` are what users copy: each one parses into the Rust types,
//! passes every CRD rule, and fits under its own spending cap at the built-in prices.

use std::path::Path;

use runpod_operator::{
    api::validate::{Manifest, ManifestError, parse_manifests},
    engine::{
        cost::{Usage, network_volume_per_month, workload_cost},
        prices::PriceCatalogue,
    },
};

fn examples() -> Vec<(String, Vec<Manifest>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let manifests = parse_manifests(&text, &name).unwrap_or_else(|errors| {
                panic!(
                    "{name} is invalid:\n{}",
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            });
            (name, manifests)
        })
        .collect()
}

#[test]
fn every_example_parses_and_passes_the_crd_rules() {
    let all = examples();
    let names: Vec<_> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "account.yaml",
            "image-matting-endpoint.yaml",
            "training-pod.yaml",
            "weights-volume.yaml"
        ]
    );
    let count =
        |pick: fn(&Manifest) -> bool| all.iter().flat_map(|(_, m)| m).filter(|m| pick(m)).count();
    assert_eq!(count(|m| matches!(m, Manifest::GpuWorkload(_))), 3);
    assert_eq!(count(|m| matches!(m, Manifest::NetworkVolume(_))), 1);
    assert_eq!(count(|m| matches!(m, Manifest::RunPodAccount(_))), 1);
}

#[test]
fn every_example_workload_fits_under_its_own_cap() {
    let prices = PriceCatalogue::builtin();
    for (file, manifests) in examples() {
        for manifest in manifests {
            let Manifest::GpuWorkload(workload) = manifest else {
                continue;
            };
            let cost = workload_cost(&workload.spec, &prices, Usage::default()).unwrap();
            let cap = workload.spec.spending_cap.usd_per_hour.amount();
            assert!(
                cost.worst_case_per_hour <= cap,
                "{file}: worst case {} USD/h is over the cap {cap}",
                cost.worst_case_per_hour
            );
        }
    }
}

#[test]
fn the_seed_endpoint_is_the_image_matting_flex_a100_endpoint_with_30_workers() {
    let (_, manifests) = examples()
        .into_iter()
        .find(|(n, _)| n == "image-matting-endpoint.yaml")
        .unwrap();
    let Manifest::GpuWorkload(seed) = &manifests[0] else {
        panic!("a GpuWorkload")
    };
    let serverless = seed.spec.serverless.as_ref().unwrap();
    assert_eq!(serverless.max_workers, 30);
    assert_eq!(serverless.active_workers, 0);
    assert_eq!(seed.spec.gpu.types[0], "NVIDIA A100-SXM4-80GB");
    assert!(seed.spec.image.contains("birefnet"));
    // Flex: nothing is always on, so the expected floor is zero; the worst case is
    // 30 x $2.736 plus 30 x 20 GB of container disk.
    let cost = workload_cost(&seed.spec, &PriceCatalogue::builtin(), Usage::default()).unwrap();
    assert_eq!(cost.expected_per_hour.to_string(), "0");
    assert_eq!(cost.worst_case_per_hour.round_dp(4).to_string(), "82.1633");
}

#[test]
fn the_weights_volume_costs_seven_dollars_a_month() {
    let (_, manifests) = examples()
        .into_iter()
        .find(|(n, _)| n == "weights-volume.yaml")
        .unwrap();
    let Manifest::NetworkVolume(volume) = &manifests[0] else {
        panic!("a NetworkVolume first")
    };
    let monthly = network_volume_per_month(volume.spec.size_gb, &PriceCatalogue::builtin().storage);
    assert_eq!(monthly.to_string(), "7.00");
}

#[test]
fn a_broken_file_gives_one_error_and_a_byte_order_mark_is_not_one() {
    let config_map =
        "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: c\r\ndata:\r\n  a: b\r\n";
    // Saved by a Windows editor: a byte-order mark and CRLF line ends.
    let parsed = parse_manifests(&format!("\u{feff}{config_map}"), "bom.yaml")
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(parsed.len(), 1);
    // A tab used for indentation, JSON with trailing garbage, binary bytes: one syntax error
    // each, at once (the reader used to repeat the same error without end).
    for (name, text) in [
        (
            "tab.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: c\n".to_string(),
        ),
        (
            "garbage.json",
            "{\"apiVersion\": \"v1\"} }}} trailing".to_string(),
        ),
        (
            "binary.yaml",
            String::from_utf8_lossy(&[0x00, 0xff, 0x1b, b':', b'\n', 0x07]).into_owned(),
        ),
    ] {
        let errors = parse_manifests(&text, name).expect_err(name);
        let yaml = errors
            .iter()
            .filter(|e| matches!(e, ManifestError::Yaml { .. }))
            .count();
        assert_eq!(yaml, 1, "{name}: {errors:?}");
        assert!(errors.len() <= 2, "{name}: {errors:?}");
        assert!(errors.iter().all(|e| e.to_string().contains(name)));
    }
}
