//! Manifests as an attacker or a careless user writes them: every hostile shape found so far,
//! then random bytes and random mutations of the examples. The reader must never panic,
//! never allocate more than 256 MiB (a counting allocator measures the peak of each read), and
//! every refusal must name the file, and the object and field where there is one.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

mod common;
use proptest::prelude::*;
use runpod_operator::cli::{CliError, load_manifests, manifests_from_texts};

/// Counts live bytes and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement at a time: the counters are process-wide.
static MEASURE: Mutex<()> = Mutex::new(());

const LIMIT: usize = 256 << 20;

/// Runs `read` and returns its result with the bytes it allocated at its peak.
fn measured<T>(read: impl FnOnce() -> T) -> (T, usize) {
    let _one = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = read();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Reads one text as file `name`: Ok(number of workloads) or the refusal's lines.
fn read(name: &str, text: &str) -> Result<usize, Vec<String>> {
    let (result, peak) = measured(|| manifests_from_texts([(name, text)]));
    assert!(
        peak < LIMIT,
        "{name}: reading {} bytes allocated {peak} bytes at its peak",
        text.len()
    );
    match result {
        Ok(ws) => Ok(ws.workloads.len() + ws.volumes.len()),
        Err(CliError::Manifests(lines)) => {
            for line in &lines {
                assert!(
                    line.starts_with(&format!("{name}: ")),
                    "a refusal that does not name the file: {line}"
                );
            }
            Err(lines)
        }
        Err(other) => panic!("{name}: not a manifest error: {other}"),
    }
}

fn refused(name: &str, text: &str, expected: &[&str]) {
    let lines = read(name, text).expect_err(name).join("\n");
    for part in expected {
        assert!(
            lines.contains(part),
            "{name}: {part:?} missing from:\n{lines}"
        );
    }
}

#[test]
fn hostile_shapes_are_refused_with_the_place_and_the_fix() {
    let pod = example("training-pod.yaml");
    // Indentation by tab: the old reader allocated 1.6 GB and aborted.
    refused(
        "tab.yaml",
        &pod.replace("  type: Pod", "\ttype: Pod"),
        &["not valid YAML", "line 14"],
    );
    // The same error in the third document of a stream is counted from the top of the file.
    let configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
    refused(
        "stream.yaml",
        &format!(
            "{configmap}---\n{configmap}---\n{}",
            pod.replace("  type: Pod", "\ttype: Pod")
        ),
        &["not valid YAML", "line 22"],
    );
    // An undefined alias: a panic inside the old reader.
    refused(
        "alias.yaml",
        &pod.replace("  type: Pod", "  type: *nope"),
        &["unknown anchor", "line 14"],
    );
    // JSON with trailing garbage.
    refused(
        "garbage.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}} garbage ]]]"#,
        &["not valid YAML", "column"],
    );
    // A duplicate key: last-one-wins would silently drop a value.
    refused(
        "dupkey.yaml",
        &pod.replace("  state: Running", "  state: Running\n  state: Stopped"),
        &["duplicate mapping key: state", "keep one"],
    );
    // Nesting 10,000 deep.
    refused(
        "deep.yaml",
        &format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000)),
        &["not valid YAML"],
    );
    // A billion laughs.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..20u8 {
        let (prev, this) = ((b'a' + i) as char, (b'b' + i) as char);
        bomb.push_str(&format!(
            "{this}: &{this} [{}]\n",
            vec![format!("*{prev}"); 10].join(", ")
        ));
    }
    refused("bomb.yaml", &bomb, &["aliases"]);
    // Names the API server refuses.
    refused(
        "name.yaml",
        &pod.replace("name: llama-finetune", "name: \"Llama Finetune/x\""),
        &[
            "GpuWorkload \"Llama Finetune/x\"",
            "metadata.name",
            "lower-case",
        ],
    );
    refused(
        "longname.yaml",
        &pod.replace(
            "name: llama-finetune",
            &format!("name: {}", "é".repeat(300)),
        ),
        &["metadata.name", "253"],
    );
    refused(
        "namespace.yaml",
        &pod.replace("namespace: research", "namespace: Research"),
        &["metadata.namespace"],
    );
    // Sizes beyond the schema's limits, each named by its field.
    let sizes: [(&str, String, &str); 6] = [
        (
            "image.yaml",
            pod.replace(
                "ghcr.io/acme/trainer:2.3.0",
                &format!("ghcr.io/{}:1", "a".repeat(600)),
            ),
            "spec.image: too long: at most 512",
        ),
        (
            "args.yaml",
            pod.replace(
                "args: \"torchrun",
                &format!("args: \"{} torchrun", "x".repeat(5_000)),
            ),
            "spec.args: too long",
        ),
        (
            "env.yaml",
            pod.replace(
                "  env:\n",
                &format!(
                    "  env:\n{}",
                    (0..101)
                        .map(|i| format!("    - name: V{i}\n      value: x\n"))
                        .collect::<String>()
                ),
            ),
            "spec.env: too many items: at most 100",
        ),
        (
            "gputypes.yaml",
            pod.replace(
                "types: [\"NVIDIA A100-SXM4-80GB\"]",
                &format!("types: [{}]", ["\"NVIDIA A40\""; 11].join(", ")),
            ),
            "spec.gpu.types: too many items",
        ),
        (
            "ports.yaml",
            pod.replace(
                "ports: [\"8888/http\", \"22/tcp\"]",
                &format!(
                    "ports: [{}]",
                    (0..21)
                        .map(|i| format!("\"{}/tcp\"", 1000 + i))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            "spec.ports: too many items: at most 20",
        ),
        (
            "envvalue.yaml",
            pod.replace(
                "      value: llama-finetune",
                &format!("      value: {}", "v".repeat(50 << 20 >> 4)),
            ),
            "spec.env[0].value: too long",
        ),
    ];
    for (name, text, expected) in &sizes {
        refused(name, text, &[expected, "GpuWorkload \"llama-finetune\""]);
    }
}

#[test]
fn a_million_empty_or_broken_documents_cost_little() {
    // A million document markers.
    let markers = "---\n".repeat(1 << 20);
    assert_eq!(read("markers.yaml", &markers), Ok(0));
    // A million `{}` documents: each is an object without apiVersion and kind.
    let broken = "{}\n---\n".repeat(1 << 20);
    let lines = read("broken.yaml", &broken).expect_err("broken");
    assert_eq!(lines.len(), 51, "{}", lines.last().unwrap());
    assert!(
        lines[50].contains("reading stopped after 50 problems"),
        "{}",
        lines[50]
    );
}

#[test]
fn a_byte_order_mark_and_windows_line_ends_read_as_plain_yaml() {
    let configmap =
        "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: x\r\ndata:\r\n  a: b\r\n";
    assert_eq!(read("bom.yaml", &format!("\u{feff}{configmap}")), Ok(0));
    let volume = example("weights-volume.yaml").replace('\n', "\r\n");
    assert_eq!(read("volume.yaml", &format!("\u{feff}{volume}")), Ok(2));
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn files_that_are_not_text_too_large_or_declared_twice_are_refused() {
    let dir = temp_dir("files");
    let binary = dir.join("binary.yaml");
    std::fs::write(&binary, (0..=255u8).cycle().take(4096).collect::<Vec<_>>()).unwrap();
    let err = load_manifests(std::slice::from_ref(&binary))
        .expect_err("binary")
        .to_string();
    assert!(err.contains("binary.yaml: not UTF-8 text"), "{err}");
    assert!(!err.contains("write"), "{err}");

    let large = dir.join("large.yaml");
    std::fs::write(&large, "# padding\n".repeat(2 << 20)).unwrap();
    let (result, peak) = measured(|| load_manifests(std::slice::from_ref(&large)));
    let err = result.expect_err("large").to_string();
    assert!(err.contains("large.yaml: more than the"), "{err}");
    assert!(peak < 32 << 20, "a refused large file cost {peak} bytes");

    let pod = example("training-pod.yaml");
    let a = dir.join("a.yaml");
    let b = dir.join("b.yaml");
    std::fs::write(&a, &pod).unwrap();
    std::fs::write(&b, pod.replace("2.3.0", "2.4.0")).unwrap();
    let err = load_manifests(&[a.clone(), b.clone()])
        .expect_err("twice")
        .to_string();
    assert!(
        err.contains("b.yaml: GpuWorkload research/llama-finetune is also declared in")
            && err.contains("a.yaml"),
        "{err}"
    );
    let err = manifests_from_texts([("one.yaml", format!("{pod}\n---\n{pod}").as_str())])
        .expect_err("twice in one file")
        .to_string();
    assert!(
        err.contains(
            "one.yaml: GpuWorkload research/llama-finetune is declared twice in this file"
        ),
        "{err}"
    );
    // The same name in two namespaces is two objects.
    let other = pod.replace("namespace: research", "namespace: other");
    assert!(manifests_from_texts([("a.yaml", pod.as_str()), ("b.yaml", other.as_str())]).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A mutation of a valid manifest: the kinds of damage editors, merges and truncation do.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, String),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        (
            any::<usize>(),
            prop_oneof![
                Just("\t".to_string()),
                Just("*a".to_string()),
                Just("&a ".to_string()),
                Just("\n---\n".to_string()),
                Just("{[".to_string()),
                Just(": ".to_string()),
                Just("\u{feff}".to_string()),
                Just("!!binary ".to_string()),
                Just("<<: *a\n".to_string()),
                "\\PC{0,12}",
            ]
        )
            .prop_map(|(i, s)| Damage::Insert(i, s)),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| Damage::Delete(i, n)),
        (any::<usize>(), 0usize..400).prop_map(|(i, n)| Damage::Duplicate(i, n)),
    ]
}

fn apply(text: &str, damage: &[Damage]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for d in damage {
        let at = |i: usize| {
            if bytes.is_empty() {
                0
            } else {
                i % (bytes.len() + 1)
            }
        };
        match d {
            Damage::Truncate(i) => bytes.truncate(at(*i)),
            Damage::Flip(i, b) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] = *b;
                }
            }
            Damage::Insert(i, s) => {
                let i = at(*i);
                bytes.splice(i..i, s.bytes());
            }
            Damage::Delete(i, n) => {
                let i = at(*i);
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Damage::Duplicate(i, n) => {
                let i = at(*i);
                let end = (i + n).min(bytes.len());
                let copy = bytes[i..end].to_vec();
                bytes.splice(end..end, copy);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() })]

    /// Damaged examples: read or refused, never a panic, never a runaway allocation, every
    /// refusal naming the file (`read` checks both).
    #[test]
    fn damaged_examples_never_panic(
        which in 0usize..4,
        damage in proptest::collection::vec(damage(), 1..6),
    ) {
        let names = [
            "account.yaml",
            "image-matting-endpoint.yaml",
            "training-pod.yaml",
            "weights-volume.yaml",
        ];
        let text = apply(&example(names[which]), &damage);
        if let Err(lines) = read("damaged.yaml", &text) {
            for line in lines {
                // An object refusal lists fields; a file refusal says where in the file.
                prop_assert!(
                    line.contains(" is invalid:\n  - ")
                        || line.contains("line ")
                        || line.contains("declared twice")
                        || line.contains("Secret"),
                    "a refusal that names no place: {line}"
                );
            }
        }
    }

    /// Random bytes, as text.
    #[test]
    fn random_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = read("random.yaml", &text);
    }
}

/// A long file is read on several threads: the verdict must be the one a single thread gives,
/// word for word and in order: every broken object, the stop at a YAML error, the stop after
/// 50 problems.
#[test]
fn several_threads_read_a_file_exactly_as_one_does() {
    use runpod_operator::api::validate::{Manifest, ManifestError, parse_manifests_on};
    let workload = |i: usize, broken: bool| {
        format!(
            "apiVersion: runpod-operator.dev/v1alpha1\nkind: GpuWorkload\nmetadata: {{name: w-{i}, namespace: ml}}\n\
             spec:\n  type: Pod\n  image: img\n  gpu: {{types: [\"NVIDIA A100-SXM4-80GB\"]}}\n  spendingCap: {{usdPerHour: \"{}\"}}\n",
            if broken { "lots" } else { "2" }
        )
    };
    let verdict = |r: Result<Vec<Manifest>, Vec<ManifestError>>| match r {
        Ok(m) => Ok(m
            .iter()
            .map(|m| match m {
                Manifest::GpuWorkload(w) => w.metadata.name.clone().unwrap_or_default(),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()),
        Err(e) => Err(e.iter().map(ToString::to_string).collect::<Vec<_>>()),
    };
    let mut rng = common::Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..6 {
        // 2,000 documents (well past the size read in parallel), some broken, maybe a YAML
        // error somewhere.
        let yaml_error_at = (case % 2 == 1).then(|| rng.below(2_000) as usize);
        let docs: Vec<String> = (0..2_000)
            .map(|i| {
                if Some(i) == yaml_error_at {
                    "kind: [unclosed\n".to_string()
                } else {
                    workload(i, rng.below(100) < case as u64 * 2)
                }
            })
            .collect();
        let text = docs.join("---\n");
        let one = verdict(parse_manifests_on(&text, "f.yaml", 1));
        for threads in [2, 3, 8] {
            assert_eq!(
                verdict(parse_manifests_on(&text, "f.yaml", threads)),
                one,
                "case {case}, {threads} threads"
            );
        }
        if case == 0 {
            assert_eq!(one.as_ref().map(Vec::len), Ok(2_000));
        }
    }
}
