//! `runpod-operator breakeven`: Pod vs flex vs active for one GPU type.

use std::process::ExitCode;

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use rust_decimal::Decimal;

use super::{CliError, OutputFormat, render};
use crate::engine::{
    cost::{BreakEven, BreakEvenReport, FlexOverhead, breakeven_report},
    prices::PriceCatalogue,
};

/// Flags of `breakeven`.
#[derive(Debug, Args)]
pub struct BreakevenArgs {
    /// The GPU type id, exactly as RunPod names it.
    #[arg(long, default_value = "NVIDIA A100-SXM4-80GB")]
    pub gpu: String,
    /// Pod price, USD per GPU per hour (default: the built-in Secure Cloud price).
    #[arg(long, value_name = "USD")]
    pub pod_price: Option<Decimal>,
    /// Flex worker price, USD per GPU per second (default: the built-in pool price).
    #[arg(long, value_name = "USD")]
    pub flex_price: Option<Decimal>,
    /// Active worker price, USD per GPU per second (default: the built-in pool price).
    #[arg(long, value_name = "USD")]
    pub active_price: Option<Decimal>,
    /// Billed cold-start seconds each time a flex worker scales up.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub cold_start_seconds: u32,
    /// Billed idle seconds after each burst of work (the endpoint's idle timeout).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub idle_timeout_seconds: u32,
    /// Scale-ups per busy hour, for the cold-start and idle-tail overhead.
    #[arg(long, default_value = "1", value_name = "N")]
    pub scale_ups_per_busy_hour: Decimal,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub(super) fn run(args: &BreakevenArgs) -> Result<ExitCode, CliError> {
    let report = report(args, &PriceCatalogue::builtin())?;
    let text = match args.output {
        OutputFormat::Table => table(&report),
        format => render(&report, format)?,
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The report for the flags, with prices from the flags or else the catalogue.
pub fn report(args: &BreakevenArgs, prices: &PriceCatalogue) -> Result<BreakEvenReport, CliError> {
    for (flag, value) in [
        ("--pod-price", args.pod_price),
        ("--flex-price", args.flex_price),
        ("--active-price", args.active_price),
        (
            "--scale-ups-per-busy-hour",
            Some(args.scale_ups_per_busy_hour),
        ),
    ] {
        if value.is_some_and(|v| v.is_sign_negative()) {
            return Err(CliError::Usage(format!("{flag} must not be negative")));
        }
    }
    let pod = match args.pod_price {
        Some(price) => price,
        None => prices.pod_per_hour(&args.gpu, false)?,
    };
    let (flex, active) = match (args.flex_price, args.active_price) {
        (Some(flex), active) => (
            flex,
            active.or_else(|| prices.pool_of(&args.gpu).ok()?.active_per_second),
        ),
        (None, active) => {
            let pool = prices.pool_of(&args.gpu)?;
            (pool.flex_per_second, active.or(pool.active_per_second))
        }
    };
    let overhead = FlexOverhead {
        cold_start_seconds: args.cold_start_seconds,
        idle_timeout_seconds: args.idle_timeout_seconds,
        scale_ups_per_busy_hour: args.scale_ups_per_busy_hour,
    };
    Ok(breakeven_report(&args.gpu, pod, flex, active, overhead))
}

/// Dollars for people: at least two decimals, no trailing zeros past them.
fn usd(amount: Decimal) -> String {
    let normal = amount.normalize();
    if normal.scale() < 2 {
        format!("${amount:.2}")
    } else {
        format!("${normal}")
    }
}

fn verdict(what: &str, always_on: &str, flex: &str, b: BreakEven) -> String {
    if b.within_a_day() {
        format!(
            "{what}: {} busy hours/day. Below it {flex} is cheaper; above it {always_on}.",
            b.rounded()
        )
    } else {
        format!("{what}: never within a day. {flex} is cheaper even when busy 24 hours a day.")
    }
}

/// The report as a table and two sentences.
pub fn table(report: &BreakEvenReport) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(["Model", "Rate", "24 h", "Busy hour"]);
    for option in &report.options {
        table.add_row([
            option.model.clone(),
            option.rate.clone(),
            usd(option.per_24h),
            usd(option.per_busy_hour),
        ]);
    }
    let mut out = format!("{}\n{table}\n", report.gpu);
    out.push_str(&verdict(
        "Break-even Pod vs flex",
        "the Pod",
        "flex",
        report.pod_vs_flex,
    ));
    out.push('\n');
    match report.active_vs_flex {
        Some(b) => out.push_str(&verdict(
            "Break-even active vs flex",
            "active workers",
            "flex",
            b,
        )),
        None => out.push_str("Break-even active vs flex: no active price is known for this GPU."),
    }
    out.push('\n');
    out
}
