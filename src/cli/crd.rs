//! `runpod-operator crd`: the CRDs as YAML, printed or written one file each.

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::Args;

use super::CliError;
use crate::api;

/// Flags of `crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one file per CRD into this folder (e.g. `crds/`) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub(super) fn run(args: &CrdArgs) -> Result<ExitCode, CliError> {
    let render_err = |e: serde_norway::Error| CliError::Render(e.to_string());
    match &args.out_dir {
        None => {
            let yaml = api::crds_yaml().map_err(render_err)?;
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .map_err(|source| CliError::Io {
                    what: "standard output".into(),
                    source,
                })?;
        }
        Some(dir) => {
            let io = |what: String| move |source| CliError::Io { what, source };
            std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
            for crd in api::crds() {
                let path = dir.join(api::crd_file_name(&crd));
                let yaml = serde_norway::to_string(&crd).map_err(render_err)?;
                std::fs::write(&path, yaml).map_err(io(path.display().to_string()))?;
                tracing::info!(path = %path.display(), "wrote CRD");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
