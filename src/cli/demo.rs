//! `runpod-operator demo`: the product in one command, against the built-in simulator.
//!
//! Applies the shipped examples, fires the seed's burst (30 parallel requests at the
//! image-matting endpoint: flex workers cold-start, and the bill counts the cold starts),
//! moves the virtual clock through a day, shows the spend and the projected month, then edits
//! the endpoint behind the operator's back and shows `audit` catching it and `apply` fixing it.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{
    CliError,
    connect::client,
    ops::{apply_until_ready, audit_text, status_table},
    workspace,
};
use crate::{
    engine::prices::PriceCatalogue,
    reconcile::{Workspace, inventory::Inventory, orphans, plan_workspace},
    runpod::types::{BillingQuery, Health},
    sim::{self, SimConfig, SimHandle},
    tls,
};

const BALANCE: i64 = 1000;
const COLD_START_SECONDS: u64 = 20;
const JOB_SECONDS: u64 = 3;

struct Demo {
    sim: SimHandle,
    inventory: Inventory,
    http: reqwest::Client,
    ws: Workspace,
    started: Instant,
    prices: PriceCatalogue,
}

fn step(title: &str) {
    println!("\n== {title}");
}

impl Demo {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, CliError> {
        let reply = self
            .http
            .request(method, format!("{}{path}", self.sim.api_url))
            .bearer_auth(&self.sim.api_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| CliError::Usage(format!("the simulator did not answer: {e}")))?;
        let text = reply.text().await.unwrap_or_default();
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn advance(&self, seconds: u64) -> Result<(), CliError> {
        self.admin(
            reqwest::Method::POST,
            "/_sim/clock",
            json!({"advanceSeconds": seconds}),
        )
        .await
        .map(|_| ())
    }

    async fn apply(&self) -> Result<(), CliError> {
        let (items, failures) = apply_until_ready(
            &self.ws,
            &self.inventory,
            &self.prices,
            Duration::from_secs(60),
            // The virtual clock stands still unless moved: let pods boot between passes.
            || async {
                let _ = self.advance(30).await;
            },
            None,
            None,
        )
        .await?;
        print!("{}", status_table(&items));
        if let Some(failure) = failures.first() {
            return Err(CliError::Usage(failure.clone()));
        }
        Ok(())
    }

    async fn health(&self, endpoint: &str) -> Result<Health, CliError> {
        self.inventory
            .client()
            .endpoint_health(endpoint)
            .await
            .map_err(CliError::RunPod)
    }

    /// What an endpoint has billed so far, USD.
    async fn billed(&self, endpoint: &str) -> Result<f64, CliError> {
        let billing = self
            .inventory
            .client()
            .billing(crate::runpod::BillingKind::Serverless, &only(endpoint))
            .await
            .map_err(CliError::RunPod)?;
        Ok(billing.metadata.totals.total_amount)
    }

    /// `audit -f examples/` against what RunPod holds now.
    async fn audit(&self, prices: &PriceCatalogue) -> Result<(), CliError> {
        self.inventory.refresh().await.map_err(CliError::RunPod)?;
        let snapshot = self.inventory.snapshot();
        let items = plan_workspace(
            &self.ws,
            &snapshot,
            prices,
            k8s_openapi::jiff::Timestamp::now(),
        );
        println!("runpod-operator audit -f examples/");
        print!(
            "{}",
            audit_text(&items, &orphans(&self.ws, &snapshot, prices))
        );
        Ok(())
    }

    fn elapsed(&self) -> String {
        format!("{:.1} s", self.started.elapsed().as_secs_f64())
    }
}

fn only(id: &str) -> BillingQuery {
    BillingQuery {
        id: Some(id.to_string()),
        ..BillingQuery::default()
    }
}

fn usd(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

pub(super) fn run() -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(|source| CliError::Io {
        what: "the async runtime".into(),
        source,
    })?;
    runtime.block_on(demo())
}

async fn demo() -> Result<ExitCode, CliError> {
    let started = Instant::now();
    step("1. A RunPod simulator, in this process (virtual clock, $1000 of credit)");
    let handle = sim::start(SimConfig {
        balance: Decimal::from(BALANCE),
        ..SimConfig::default()
    })
    .await
    .map_err(|e| CliError::Usage(e.to_string()))?;
    println!(
        "REST v2 at {}, GraphQL at {}",
        handle.api_url, handle.graphql_url
    );

    let mut ws = workspace::from_texts(workspace::EXAMPLES.iter().copied())?;
    // The examples read two Secrets; the demo stands in for them.
    for (namespace, name, key) in [
        ("research", "wandb", "apiKey"),
        ("inference", "huggingface", "token"),
    ] {
        ws.secrets.entry(namespace.into()).or_default().insert(
            name.into(),
            [(key.to_string(), "demo-placeholder".to_string())].into(),
        );
    }
    // The demo's RunPod is its own in-process simulator: pace at the simulator's quota, not at
    // the example account's (realistic) 60 requests a minute.
    let mut budget = ws.account.clone();
    budget.requests_per_minute = Some(SimConfig::default().requests_per_minute);
    let client = client(
        &handle.api_url,
        &handle.graphql_url,
        &handle.serverless_url,
        handle.api_key.clone(),
        &budget,
    )?;
    let (prices, _) = crate::reconcile::live_prices(&client)
        .await
        .map_err(CliError::RunPod)?;
    let mut demo = Demo {
        prices,
        inventory: Inventory::new(client, Duration::ZERO),
        http: tls::http_client_builder()
            .build()
            .map_err(|e| CliError::Usage(e.to_string()))?,
        sim: handle,
        ws,
        started,
    };
    demo.admin(
        reqwest::Method::POST,
        "/_sim/serverless",
        json!({"coldStartSeconds": COLD_START_SECONDS, "jobSeconds": JOB_SECONDS}),
    )
    .await?;

    step("2. runpod-operator apply -f examples/");
    demo.apply().await?;

    step("3. The seed's scenario: 30 parallel requests at the image-matting endpoint");
    let snapshot = demo.inventory.snapshot();
    let matting = snapshot
        .endpoints
        .iter()
        .find(|e| e.name.contains("image-matting"))
        .map(|e| e.id.clone())
        .ok_or_else(|| CliError::Usage("the image-matting endpoint was not created".into()))?;
    let before = demo.billed(&matting).await?;
    let run_url = format!("{}/v2/{matting}/run", demo.sim.serverless_url);
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..30 {
        let (http, url, key) = (demo.http.clone(), run_url.clone(), demo.sim.api_key.clone());
        jobs.spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"input": {"image": format!("photo-{i:02}.jpg")}}))
                .send()
                .await
        });
    }
    let mut accepted = 0;
    while let Some(result) = jobs.join_next().await {
        if matches!(result, Ok(Ok(ref r)) if r.status().is_success()) {
            accepted += 1;
        }
    }
    println!(
        "{accepted} jobs queued. Flex workers scale from zero; RunPod adds one per job waiting 4 s:"
    );
    let mut t = 0;
    for (wait, what) in [
        (0, "queued"),
        (4, "queue delay passed: workers cold-start"),
        (COLD_START_SECONDS, "workers ready, jobs running"),
        (JOB_SECONDS, "jobs done, workers idle"),
        (5, "idle timeout passed: workers stopped"),
    ] {
        demo.advance(wait).await?;
        t += wait;
        let h = demo.health(&matting).await?;
        println!(
            "  t={t:>2} s  queued {:>2}  running jobs {:>2}  done {:>2} | workers: starting {:>2} running {:>2} idle {:>2}   ({what})",
            h.jobs.in_queue,
            h.jobs.in_progress,
            h.jobs.completed,
            h.workers.initializing,
            h.workers.running,
            h.workers.idle
        );
    }
    let after = demo.billed(&matting).await?;
    let prices = demo.prices.clone();
    let flex = prices
        .pool_of("NVIDIA A100-SXM4-80GB")
        .map(|p| p.flex_per_second)
        .unwrap_or_default();
    let cold = flex * Decimal::from(30 * COLD_START_SECONDS);
    println!(
        "The burst cost {:.4} USD: 30 workers x 28 billed seconds (4 s after the jobs arrived, {COLD_START_SECONDS} s cold start + {JOB_SECONDS} s work + 5 s idle). Cold starts alone: {} USD.",
        after - before,
        usd(cold)
    );

    step("4. A day later (virtual clock +24 h)");
    demo.advance(24 * 3600).await?;
    let account = demo
        .inventory
        .client()
        .account()
        .await
        .map_err(CliError::RunPod)?;
    let spent =
        Decimal::from(BALANCE) - Decimal::try_from(account.client_balance).unwrap_or_default();
    let hourly = Decimal::try_from(account.current_spend_per_hr).unwrap_or_default();
    println!(
        "Spent so far: {} USD. Spending now: {} USD/h -> projected 30-day month {} USD. Balance: {} USD.",
        usd(spent),
        usd(hourly),
        usd(hourly * Decimal::from(720)),
        usd(Decimal::try_from(account.client_balance).unwrap_or_default())
    );

    step("5. Someone edits the endpoint in the RunPod console (max workers 30 -> 2)");
    demo.admin(
        reqwest::Method::PATCH,
        &format!("/_sim/console/v2/serverless/{matting}"),
        json!({"workers": {"max": 2}}),
    )
    .await?;
    demo.audit(&prices).await?;
    println!("runpod-operator apply -f examples/ --yes");
    demo.apply().await?;
    demo.audit(&prices).await?;

    step(
        "6. Two busy days at the image-matting endpoint, then runpod-operator advise -f examples/",
    );
    // Every hour, two jobs of 50 minutes each (`POST /_sim/traffic` plays them on the
    // virtual clock in one request).
    demo.admin(
        reqwest::Method::POST,
        "/_sim/traffic",
        json!({"endpointId": matting, "hours": 48, "jobsPerHour": 2, "jobSeconds": 3000}),
    )
    .await?;
    let bill = demo
        .inventory
        .client()
        .billing(
            crate::runpod::BillingKind::Serverless,
            &BillingQuery {
                bucket_size: Some("hour".into()),
                id: Some(matting.clone()),
                last_n: Some(2 * 24 + 1),
                ..BillingQuery::default()
            },
        )
        .await
        .map_err(CliError::RunPod)?;
    let window = bill.window();
    let workload = demo
        .ws
        .workloads
        .iter()
        .find(|w| w.metadata.name.as_deref() == Some("image-matting"));
    if let (Some((start, end)), Some(w)) = (window, workload) {
        let key = format!(
            "{}/image-matting",
            w.metadata.namespace.as_deref().unwrap_or("default")
        );
        let active = demo
            .inventory
            .snapshot()
            .endpoint(&matting)
            .and_then(|e| e.workers.min)
            .unwrap_or(0);
        let report = super::advise::report(
            w,
            key,
            matting.clone(),
            active,
            &bill.records,
            start,
            end,
            &prices,
        )
        .map_err(CliError::Usage)?;
        print!("{}", super::advise::table(&[report]));
    }

    step(
        "7. image-matting declared `workerClass: Auto`, maxWorkers 10 (a 2-day window, a 5% margin, 4000 USD a month), then runpod-operator apply",
    );
    // `Auto` acts on the measured window, as in the controller: the two busy days above.
    if let Some(w) = demo
        .ws
        .workloads
        .iter_mut()
        .find(|w| w.metadata.name.as_deref() == Some("image-matting"))
    {
        if let Some(settings) = w.spec.serverless.as_mut() {
            settings.worker_class = crate::api::WorkerClass::Auto;
            settings.active_workers = 0;
            // The balance has fallen in two busy days, and with it RunPod's worker quota.
            settings.max_workers = 10;
        }
        w.spec.measurement = Some(crate::api::MeasurementSpec {
            window_days: Some(2),
            switch_margin_percent: Some(5),
        });
        if let Some(cap) = w.spec.spending_cap.usd_per_month.as_mut() {
            *cap = serde_json::from_value(json!("4000"))
                .map_err(|e| CliError::Usage(e.to_string()))?;
        }
    }
    demo.ws.auto = super::advise::measure_auto(&demo.ws, &demo.inventory, &demo.prices).await;
    let active_now = |demo: &Demo| {
        demo.inventory
            .snapshot()
            .endpoint(&matting)
            .and_then(|e| e.workers.min)
            .unwrap_or(0)
    };
    let before = active_now(&demo);
    demo.apply().await?;
    demo.inventory.refresh().await.map_err(CliError::RunPod)?;
    println!(
        "Auto: active workers {before} -> {} on endpoint {matting} (always on at the active rate, within maxWorkers and every cap)",
        active_now(&demo)
    );

    println!("\nDemo finished in {}.", demo.elapsed());
    Ok(ExitCode::SUCCESS)
}
