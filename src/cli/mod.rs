//! The command line: flags, sub-commands and their output. Each sub-command is a thin
//! shell over the library: it gathers input, calls the engine, and prints.

pub mod advise;
mod breakeven;
mod connect;
mod cost;
mod crd;
mod demo;
mod ops;
pub mod price_cache;
mod run;
mod sim;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use breakeven::BreakevenArgs;
pub use connect::RunPodArgs;
pub use cost::CostArgs;
pub use crd::CrdArgs;
pub use ops::{ApplyArgs, AuditArgs, ManifestArgs, PlanArgs};
pub use run::RunArgs;
pub use sim::SimArgs;
pub use workspace::{from_texts as manifests_from_texts, load as load_manifests};

/// runpod-operator: RunPod GPU workloads as Kubernetes objects.
#[derive(Debug, Parser)]
#[command(name = "runpod-operator", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `runpod_operator=debug`.
    /// Without it, `RUST_LOG` is read, then `warn`.
    #[arg(long, global = true, env = "RUNPOD_OPERATOR_LOG")]
    pub log: Option<String>,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,

    /// The sub-command.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log filter: `--log`, `RUNPOD_OPERATOR_LOG`, then the conventional `RUST_LOG`,
    /// then `warn`.
    pub fn log_filter(&self) -> String {
        self.log
            .clone()
            .or_else(|| {
                std::env::var("RUST_LOG")
                    .ok()
                    .filter(|v| !v.trim().is_empty())
            })
            .unwrap_or_else(|| "warn".to_string())
    }
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk through the product in one command against the built-in simulator.
    Demo,
    /// Run the Kubernetes controller (in a cluster, or against KUBECONFIG).
    Run(RunArgs),
    /// Show what would change on RunPod for these manifests (exit 0: nothing, 2: changes, 1: error).
    Plan(PlanArgs),
    /// Make RunPod match these manifests and wait until every object is Ready.
    Apply(ApplyArgs),
    /// Report field-level drift and the RunPod objects nobody declared.
    Audit(AuditArgs),
    /// Expected and worst-case cost of the manifests, with break-even advice.
    Cost(CostArgs),
    /// How busy each Serverless workload was (its hourly billing over the last days), what it
    /// cost, and what it would cost as flex, active + flex, or Pods, with the monthly saving.
    Advise(advise::AdviseArgs),
    /// Print the CustomResourceDefinitions as YAML, or write one file each with --out-dir.
    Crd(CrdArgs),
    /// Compare a GPU run as a Pod, as flex and as active Serverless workers: cost per day,
    /// per busy hour, and the busy hours a day at which each wins.
    Breakeven(BreakevenArgs),
    /// Run the RunPod simulator (REST v2, GraphQL `myself`, serverless health) on loopback and
    /// print the environment that points the CLI at it.
    Sim(SimArgs),
}

/// Log formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON for programs.
    Json,
    /// YAML for programs.
    Yaml,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag or its combination is wrong.
    #[error("{0}")]
    Usage(String),
    /// A price needed for the command is unknown.
    #[error(transparent)]
    Price(#[from] crate::engine::prices::PriceError),
    /// Writing output or files failed.
    #[error("failed to write {what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading input failed.
    #[error("cannot read {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Rendering output failed.
    #[error("failed to render output: {0}")]
    Render(String),
    /// Manifests are broken; every problem is listed.
    #[error("invalid manifests:\n{}", .0.join("\n"))]
    Manifests(Vec<String>),
    /// RunPod (or the simulator) failed.
    #[error(transparent)]
    RunPod(crate::runpod::Error),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Demo => demo::run(),
        Command::Run(args) => run::run(&args),
        Command::Plan(args) => ops::run_plan(&args),
        Command::Apply(args) => ops::run_apply(&args),
        Command::Audit(args) => ops::run_audit(&args),
        Command::Cost(args) => cost::run(&args),
        Command::Advise(args) => advise::run(&args),
        Command::Crd(args) => crd::run(&args),
        Command::Breakeven(args) => breakeven::run(&args),
        Command::Sim(args) => sim::run(&args),
    }
}

/// Renders a value as JSON or YAML.
fn render<T: serde::Serialize>(value: &T, format: OutputFormat) -> Result<String, CliError> {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| CliError::Render(e.to_string())),
        OutputFormat::Yaml => {
            serde_norway::to_string(value).map_err(|e| CliError::Render(e.to_string()))
        }
        OutputFormat::Table => Err(CliError::Render("a table has no generic rendering".into())),
    }
}
