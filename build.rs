//! Finds out whether `helm` can run here (from `HELM` or the PATH). The chart tests need it and
//! it cannot be embedded: without it they are compiled as ignored, so `cargo test` prints them
//! in its summary ("N ignored") with the reason, instead of passing without running.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=HELM");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rustc-check-cfg=cfg(helm_missing)");
    let helm = std::env::var("HELM").unwrap_or_else(|_| "helm".to_string());
    let works = Command::new(&helm)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        println!("cargo:rustc-cfg=helm_missing");
        println!(
            "cargo:warning=no helm ({helm}): the chart tests are ignored; set HELM or put helm on the PATH (.ci/run installs it)"
        );
    }
}
