//! `plan`, `apply` and `audit`: the engine against manifests on disk and a RunPod account.
//!
//! Exit codes follow `terraform plan -detailed-exitcode`: 0 nothing to do (or in sync),
//! 2 changes pending (or drift, with `audit --exit-code`), 1 an error or a refusal.

use std::{
    future::Future,
    io::{BufRead, IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Args;
use comfy_table::{Cell, Color, Table, presets::UTF8_FULL_CONDENSED};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{CliError, OutputFormat, connect::RunPodArgs, render, workspace};
use crate::{
    engine::{plan::Action, prices::PriceCatalogue},
    reconcile::{
        Item, Orphan, Workspace, apply_pass, execute_plan, executor::Outcome, inventory::Inventory,
        orphans, plan_workspace,
    },
};

/// Flags shared by `plan`, `apply` and `audit`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Manifest files or folders (YAML or JSON; Secrets in them feed `valueFrom`).
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Where RunPod is.
    #[command(flatten)]
    pub runpod: RunPodArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Flags of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Manifests and RunPod.
    #[command(flatten)]
    pub common: ManifestArgs,
}

/// Flags of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifests and RunPod.
    #[command(flatten)]
    pub common: ManifestArgs,
    /// Apply without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How long to wait for every object to be Ready, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Seconds between passes while waiting.
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
}

/// Flags of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Manifests and RunPod.
    #[command(flatten)]
    pub common: ManifestArgs,
    /// Exit with 2 when anything drifted or RunPod holds objects nobody declared.
    #[arg(long)]
    pub exit_code: bool,
}

fn colour() -> bool {
    std::io::stdout().is_terminal()
}

fn cell(text: impl Into<String>, color: Option<Color>) -> Cell {
    let cell = Cell::new(text.into());
    match color {
        Some(c) if colour() => cell.fg(c),
        _ => cell,
    }
}

fn usd(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

fn signed(d: Decimal) -> String {
    if d > Decimal::ZERO {
        format!("+{}", usd(d))
    } else {
        usd(d)
    }
}

fn refused(item: &Item) -> Option<String> {
    item.verdicts
        .iter()
        .find(|v| v.kind == crate::api::CONDITION_STALLED && v.status)
        .map(|v| v.message.clone())
}

fn item_json(item: &Item) -> Value {
    json!({
        "kind": item.kind,
        "name": item.key,
        "runpodId": item.runpod_id,
        "state": item.state,
        "ready": item.ready(),
        "refused": refused(item),
        "actions": item.actions.iter().map(Action::describe).collect::<Vec<_>>(),
        "drift": item.drift,
        "worstCasePerHour": item.worst_case_per_hour.map(|d| d.round_dp(4).to_string()),
        "expectedPerHour": item.expected_per_hour.map(|d| d.round_dp(4).to_string()),
        "deltaPerHour": item.delta_per_hour.round_dp(4).to_string(),
        "planHash": item.hash,
        "outcome": item.outcome.as_ref().map(Outcome::describe),
    })
}

/// Above this many objects, the tables leave out the objects with nothing to say (in sync,
/// Ready) and count them instead: ten thousand rows of "in sync" hide the few that matter,
/// and cost the CLI more memory than the plan itself.
const QUIET_ABOVE: usize = 200;

/// The plan as a table, with the details that matter under it.
pub fn plan_table(items: &[Item]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "Kind",
        "Name",
        "RunPod",
        "Plan",
        "Worst $/h",
        "Δ $/h",
    ]);
    let mut notes = Vec::new();
    let mut quiet = 0;
    for item in items {
        if items.len() > QUIET_ABOVE
            && item.actions.is_empty()
            && item.drift.is_empty()
            && refused(item).is_none()
        {
            quiet += 1;
            continue;
        }
        let plan = match (item.actions.first(), refused(item)) {
            (_, Some(_)) => cell("refused", Some(Color::Red)),
            (Some(Action::Wait { reason, .. }), None) => {
                cell(format!("wait: {reason}"), Some(Color::Yellow))
            }
            (Some(a), None) => cell(a.describe(), Some(Color::Yellow)),
            (None, None) => cell("in sync", Some(Color::Green)),
        };
        table.add_row(vec![
            Cell::new(item.kind),
            Cell::new(&item.key),
            Cell::new(item.runpod_id.as_deref().unwrap_or("-")),
            plan,
            Cell::new(item.worst_case_per_hour.map_or("-".to_string(), usd)),
            Cell::new(signed(item.delta_per_hour)),
        ]);
        if let Some(message) = refused(item) {
            notes.push(format!("  {}: {message}", item.key));
        }
        for action in item.actions.iter().skip(1) {
            notes.push(format!("  {}: then {}", item.key, action.describe()));
        }
        for d in &item.drift {
            notes.push(format!(
                "  {}: {} is {:?}, declared {:?}",
                item.key, d.field, d.observed, d.declared
            ));
        }
    }
    let writes = items
        .iter()
        .filter(|i| i.actions.iter().any(Action::writes))
        .count();
    let refusals = items.iter().filter(|i| refused(i).is_some()).count();
    let delta: Decimal = items.iter().map(|i| i.delta_per_hour).sum();
    let mut out = if quiet == items.len() {
        String::new()
    } else {
        format!("{table}\n")
    };
    if quiet > 0 {
        let more = if quiet == items.len() { "" } else { " more" };
        out.push_str(&format!(
            "{quiet}{more} object(s) in sync, not listed (-o json lists every one).\n"
        ));
    }
    if !notes.is_empty() {
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out.push_str(&format!(
        "Plan: {writes} object(s) to change, {refusals} refused. Cost: {} USD/h, {} USD per 30-day month (worst case).\n",
        signed(delta),
        signed(delta * Decimal::from(720))
    ));
    out
}

/// What RunPod runs, as a table.
pub fn status_table(items: &[Item]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "Kind",
        "Name",
        "RunPod",
        "State",
        "Worst $/h",
        "Ready",
    ]);
    let mut quiet = 0;
    for item in items {
        if items.len() > QUIET_ABOVE && item.ready() {
            quiet += 1;
            continue;
        }
        let ready = if item.ready() {
            cell("True", Some(Color::Green))
        } else {
            cell(
                format!(
                    "False: {}",
                    item.reason().map(|r| r.message.as_str()).unwrap_or("")
                ),
                Some(Color::Red),
            )
        };
        table.add_row(vec![
            Cell::new(item.kind),
            Cell::new(&item.key),
            Cell::new(item.runpod_id.as_deref().unwrap_or("-")),
            Cell::new(item.state.as_deref().unwrap_or("-")),
            Cell::new(item.worst_case_per_hour.map_or("-".to_string(), usd)),
            ready,
        ]);
    }
    match quiet {
        0 => format!("{table}\n"),
        _ if quiet == items.len() => {
            format!("{quiet} object(s) Ready, not listed (-o json lists every one).\n")
        }
        _ => format!(
            "{table}\n{quiet} more object(s) Ready, not listed (-o json lists every one).\n"
        ),
    }
}

/// One thread: a pass is one conversation with RunPod at a time, and on one thread the
/// allocator reuses what the lists of a big account freed instead of growing an arena per
/// worker thread.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            what: "the async runtime".into(),
            source,
        })
}

fn now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

pub(super) fn run_plan(args: &PlanArgs) -> Result<ExitCode, CliError> {
    let mut ws = workspace::load(&args.common.paths)?;
    workspace::require_secrets(&ws)?;
    runtime()?.block_on(async {
        let conn = super::connect::connect(&args.common.runpod, &ws.account).await?;
        conn.read_registries_for(&ws);
        let prices = conn.prices().await;
        conn.inventory.refresh().await.map_err(CliError::RunPod)?;
        warn_identity_gap(&conn.inventory);
        // `Auto` acts on the measured use, as the controller does (one billing read per
        // Auto workload that runs as an endpoint).
        ws.auto = super::advise::measure_auto(&ws, &conn.inventory, &prices).await;
        let items = plan_workspace(&ws, &conn.inventory.snapshot(), &prices, now());
        print_items(&items, args.common.output, plan_table)?;
        Ok(plan_exit(&items))
    })
}

/// RunPod's lists lack ids or names: what is shown is planned on them, and `apply` would hold
/// every write but the money-saving ones. Said on stderr, so `-o json` stays clean.
pub(super) fn warn_identity_gap(inventory: &Inventory) {
    if let Some(gap) = inventory.identity_gap() {
        eprintln!("warning: {gap}");
    }
}

fn print_items(
    items: &[Item],
    format: OutputFormat,
    table: fn(&[Item]) -> String,
) -> Result<(), CliError> {
    let text = match format {
        OutputFormat::Table => table(items),
        f => render(&items.iter().map(item_json).collect::<Vec<_>>(), f)?,
    };
    print!("{text}");
    Ok(())
}

fn plan_exit(items: &[Item]) -> ExitCode {
    if items.iter().any(|i| refused(i).is_some()) {
        ExitCode::from(1)
    } else if items.iter().any(|i| i.actions.iter().any(Action::writes)) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Passes until every object is Ready (or only refusals remain), calling `between` between
/// passes. `first` is a plan already made against the inventory as it stands (the one shown
/// before asking): the first pass runs it instead of reading RunPod and planning again.
/// Returns the last pass's items and the failures seen.
pub async fn apply_until_ready<F, Fut>(
    ws: &Workspace,
    inventory: &Inventory,
    prices: &PriceCatalogue,
    timeout: Duration,
    mut between: F,
    progress: Option<&indicatif::ProgressBar>,
    mut first: Option<Vec<Item>>,
) -> Result<(Vec<Item>, Vec<String>), CliError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    let mut failures = Vec::new();
    loop {
        let report = match first.take() {
            Some(items) => execute_plan(items, inventory).await,
            None => apply_pass(ws, inventory, prices, now())
                .await
                .map_err(CliError::RunPod)?,
        };
        for item in &report.items {
            if let Some(Outcome::Failed(e)) = &item.outcome {
                failures.push(format!("{}: {e}", item.key));
            }
        }
        let ready = report.items.iter().filter(|i| i.ready()).count();
        if let Some(bar) = progress {
            bar.set_length(report.items.len() as u64);
            bar.set_position(ready as u64);
            bar.set_message(format!("{} write(s) this pass", report.writes));
        }
        let settled = report
            .items
            .iter()
            .all(|i| i.ready() || refused(i).is_some());
        if (report.writes == 0 && settled) || !failures.is_empty() {
            return Ok((report.items, failures));
        }
        if started.elapsed() > timeout {
            failures.push(format!(
                "not every object was Ready within {} s",
                timeout.as_secs()
            ));
            return Ok((report.items, failures));
        }
        between().await;
    }
}

fn confirm() -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "refusing to apply without --yes: standard input is not a terminal to confirm on"
                .to_string(),
        ));
    }
    print!("Apply these changes? Only 'yes' goes ahead: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|source| CliError::Io {
            what: "standard input".into(),
            source,
        })?;
    Ok(answer.trim() == "yes")
}

pub(super) fn run_apply(args: &ApplyArgs) -> Result<ExitCode, CliError> {
    let mut ws = workspace::load(&args.common.paths)?;
    workspace::require_secrets(&ws)?;
    runtime()?.block_on(async {
        let conn = super::connect::connect(&args.common.runpod, &ws.account).await?;
        conn.read_registries_for(&ws);
        let prices = conn.prices().await;
        conn.inventory.refresh().await.map_err(CliError::RunPod)?;
        warn_identity_gap(&conn.inventory);
        // `Auto` acts on the measured use, as the controller does (one billing read per
        // Auto workload that runs as an endpoint).
        ws.auto = super::advise::measure_auto(&ws, &conn.inventory, &prices).await;
        let items = plan_workspace(&ws, &conn.inventory.snapshot(), &prices, now());
        let table = args.common.output == OutputFormat::Table;
        let count = items.len();
        if table {
            print!("{}", plan_table(&items));
        }
        let pending = items.iter().any(|i| i.actions.iter().any(Action::writes));
        let asked = pending && !args.yes;
        if asked && !confirm()? {
            println!("Nothing applied.");
            return Ok(ExitCode::from(1));
        }
        // The plan just shown is the first pass, unless a person took time to confirm it:
        // then RunPod is read again.
        let first = (!asked).then_some(items);
        let bar = table.then(|| {
            let bar = indicatif::ProgressBar::new(count as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} ready  {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let interval = Duration::from_secs(args.interval);
        let (items, failures) = apply_until_ready(
            &ws,
            &conn.inventory,
            &prices,
            Duration::from_secs(args.timeout),
            || tokio::time::sleep(interval),
            bar.as_ref(),
            first,
        )
        .await?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        print_items(&items, args.common.output, status_table)?;
        for failure in &failures {
            eprintln!("error: {failure}");
        }
        let all_ready = items.iter().all(Item::ready);
        Ok(if all_ready && failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Drift and orphans as tables.
pub fn audit_text(items: &[Item], orphans: &[Orphan]) -> String {
    let mut out = String::new();
    let drifted: Vec<_> = items.iter().filter(|i| !i.drift.is_empty()).collect();
    if drifted.is_empty() {
        out.push_str("No drift: RunPod matches every declared object.\n");
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header([
            "Kind",
            "Name",
            "Field",
            "Declared",
            "On RunPod",
        ]);
        for item in drifted {
            for d in &item.drift {
                table.add_row(vec![
                    Cell::new(item.kind),
                    Cell::new(&item.key),
                    cell(&d.field, Some(Color::Yellow)),
                    Cell::new(&d.declared),
                    Cell::new(&d.observed),
                ]);
            }
        }
        out.push_str(&format!("Drift:\n{table}\n"));
    }
    if orphans.is_empty() {
        out.push_str("No undeclared RunPod objects.\n");
    } else {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_header(["Kind", "RunPod id", "Name", "$/h"]);
        for o in orphans {
            table.add_row(vec![
                Cell::new(o.kind),
                Cell::new(&o.id),
                Cell::new(&o.name),
                cell(usd(o.cost_per_hour), Some(Color::Red)),
            ]);
        }
        let total: Decimal = orphans.iter().map(|o| o.cost_per_hour).sum();
        out.push_str(&format!(
            "RunPod objects nobody declared ({} USD/h):\n{table}\n",
            usd(total)
        ));
    }
    out
}

pub(super) fn run_audit(args: &AuditArgs) -> Result<ExitCode, CliError> {
    let ws = workspace::load(&args.common.paths)?;
    workspace::require_secrets(&ws)?;
    runtime()?.block_on(async {
        let conn = super::connect::connect(&args.common.runpod, &ws.account).await?;
        conn.read_registries_for(&ws);
        let prices = conn.prices().await;
        conn.inventory.refresh().await.map_err(CliError::RunPod)?;
        warn_identity_gap(&conn.inventory);
        let snapshot = conn.inventory.snapshot();
        let items = plan_workspace(&ws, &snapshot, &prices, now());
        let found = orphans(&ws, &snapshot, &prices);
        match args.common.output {
            OutputFormat::Table => print!("{}", audit_text(&items, &found)),
            f => {
                let drift: Vec<Value> = items
                    .iter()
                    .filter(|i| !i.drift.is_empty())
                    .map(|i| json!({"kind": i.kind, "name": i.key, "drift": i.drift}))
                    .collect();
                print!("{}", render(&json!({"drift": drift, "orphans": found}), f)?);
            }
        }
        let dirty = items.iter().any(|i| !i.drift.is_empty()) || !found.is_empty();
        Ok(if args.exit_code && dirty {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::conditions::Verdict;

    fn item(i: usize, ready: bool, action: Option<Action>) -> Item {
        Item {
            kind: "GpuWorkload",
            key: format!("ml/w-{i}"),
            actions: action.into_iter().collect(),
            drift: Vec::new(),
            verdicts: vec![if ready {
                Verdict::yes(crate::api::CONDITION_READY, "Ready", "")
            } else {
                Verdict::no(crate::api::CONDITION_READY, "Waiting", "booting")
            }],
            runpod_id: Some(format!("pod{i}")),
            state: Some("RUNNING".to_string()),
            worst_case_per_hour: Some(Decimal::ONE),
            expected_per_hour: Some(Decimal::ONE),
            current_per_hour: Decimal::ONE,
            delta_per_hour: Decimal::ZERO,
            hash: String::new(),
            outcome: None,
            spend: None,
        }
    }

    #[test]
    fn big_tables_list_what_matters_and_count_the_rest() {
        let wait = Action::Wait {
            reason: "booting".to_string(),
            after: Duration::from_secs(5),
        };
        let mut items: Vec<Item> = (0..QUIET_ABOVE).map(|i| item(i, true, None)).collect();
        items.push(item(9999, false, Some(wait)));
        let plan = plan_table(&items);
        assert!(plan.contains("ml/w-9999"), "{plan}");
        assert!(!plan.contains("ml/w-0 "), "{plan}");
        assert!(
            plan.contains(&format!("{QUIET_ABOVE} more object(s) in sync")),
            "{plan}"
        );
        let status = status_table(&items);
        assert!(
            status.contains("ml/w-9999") && !status.contains("ml/w-1 "),
            "{status}"
        );
        assert!(status.contains(&format!("{QUIET_ABOVE} more object(s) Ready")));

        // A small account is listed whole.
        let small = plan_table(&items[QUIET_ABOVE - 3..]);
        assert!(
            small.contains("ml/w-197") && !small.contains("not listed"),
            "{small}"
        );
    }
}
