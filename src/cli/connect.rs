//! Where RunPod is: flags and environment (the names `runpod-operator sim` prints), or an
//! embedded simulator with `--sim`.

use std::time::{Duration, SystemTime};

use clap::Args;
use secrecy::SecretString;

use super::{CliError, price_cache::PriceCache};
use crate::{
    api::{DEFAULT_API_URL, DEFAULT_GRAPHQL_URL, DEFAULT_SERVERLESS_URL, RunPodAccountSpec},
    engine::prices::PriceCatalogue,
    reconcile::inventory::Inventory,
    runpod::{Client, ClientConfig},
    sim::{self, SimConfig, SimHandle},
};

/// Flags that say where RunPod is.
#[derive(Clone, Debug, Args)]
pub struct RunPodArgs {
    /// The RunPod API key.
    #[arg(long, env = "RUNPOD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// RunPod's REST v2 base URL.
    #[arg(long, env = "RUNPOD_API_URL", default_value = DEFAULT_API_URL)]
    pub api_url: String,
    /// RunPod's GraphQL URL.
    #[arg(long, env = "RUNPOD_GRAPHQL_URL", default_value = DEFAULT_GRAPHQL_URL)]
    pub graphql_url: String,
    /// RunPod's serverless host.
    #[arg(long, env = "RUNPOD_SERVERLESS_URL", default_value = DEFAULT_SERVERLESS_URL)]
    pub serverless_url: String,
    /// Use a fresh built-in simulator (with $1000 of credit) instead of RunPod.
    #[arg(long)]
    pub sim: bool,
    /// The most RunPod requests per minute, overriding the RunPodAccount's
    /// `requestsPerMinute` (unset: RunPod's announced quota), e.g. for an account with a raised quota or a local
    /// simulator.
    #[arg(long, env = "RUNPOD_REQUESTS_PER_MINUTE")]
    pub requests_per_minute: Option<u32>,
    /// Read RunPod's price catalogue now, even when the copy kept from an earlier command
    /// (for the RunPodAccount's `priceRefreshIntervalSeconds`) is still fresh.
    #[arg(long)]
    pub refresh_prices: bool,
}

/// A connection: the inventory (and the embedded simulator, kept alive while it is used).
pub struct Connection {
    /// The account inventory.
    pub inventory: Inventory,
    /// The embedded simulator with `--sim`, held so it lives as long as the connection.
    pub _sim: Option<SimHandle>,
    /// Where the catalogue is kept between commands, and for which API URL (none with `--sim`:
    /// each embedded simulator is new).
    prices_kept: Option<(PriceCache, String)>,
    /// How long a kept catalogue is used.
    price_max_age: Duration,
    /// `--refresh-prices`.
    refresh_prices: bool,
}

impl Connection {
    /// Lists the account's registry credentials too when a workload of `ws` uses a private
    /// registry (an account without one pays no fourth list).
    pub fn read_registries_for(&self, ws: &crate::reconcile::Workspace) {
        if ws
            .workloads
            .iter()
            .any(|w| w.spec.registry_credentials.is_some())
        {
            self.inventory.want_registries();
        }
    }

    /// The prices to plan with: RunPod's catalogue over the built-in snapshot. The catalogue
    /// is read at most once per `priceRefreshIntervalSeconds` across commands (see
    /// [`super::price_cache`]). When it cannot be read, the last one kept, else the snapshot,
    /// with a warning on stderr.
    pub async fn prices(&self) -> PriceCatalogue {
        let now = SystemTime::now();
        if !self.refresh_prices
            && let Some((cache, url)) = &self.prices_kept
            && let Some(kept) = cache.fresh(url, now, self.price_max_age)
        {
            let mut prices = PriceCatalogue::builtin();
            prices.apply_live(kept.gpus);
            return prices;
        }
        match self.inventory.client().catalog_gpus().await {
            Ok(gpus) => {
                let live = crate::reconcile::priced(&gpus);
                if let Some((cache, url)) = &self.prices_kept
                    && let Err(e) = cache.write(url, &live, now)
                {
                    tracing::debug!(path = %cache.path().display(), error = %e, "the price catalogue could not be kept");
                }
                let mut prices = PriceCatalogue::builtin();
                prices.apply_live(live);
                prices
            }
            Err(e) => {
                let mut prices = PriceCatalogue::builtin();
                match self
                    .prices_kept
                    .as_ref()
                    .and_then(|(c, url)| c.read(url, now))
                {
                    Some(kept) => {
                        let age = now.duration_since(kept.fetched_at).unwrap_or_default();
                        eprintln!(
                            "warning: RunPod's price catalogue could not be read ({e}); using the copy read {} minutes ago",
                            age.as_secs() / 60
                        );
                        prices.apply_live(kept.gpus);
                    }
                    None => eprintln!(
                        "warning: RunPod's price catalogue could not be read ({e}); using the built-in price snapshot"
                    ),
                }
                prices
            }
        }
    }
}

/// A client for one account at these URLs.
pub fn client(
    api_url: &str,
    graphql_url: &str,
    serverless_url: &str,
    key: String,
    account: &RunPodAccountSpec,
) -> Result<Client, CliError> {
    Client::new(ClientConfig {
        api_url: api_url.to_string(),
        graphql_url: graphql_url.to_string(),
        serverless_url: serverless_url.to_string(),
        requests_per_minute: account
            .requests_per_minute
            .unwrap_or(crate::runpod::DEFAULT_REQUESTS_PER_MINUTE),
        follow_runpod: account.requests_per_minute.is_none(),
        ..ClientConfig::new(SecretString::from(key))
    })
    .map_err(|e| CliError::Usage(e.to_string()))
}

/// Connects as the flags say.
pub async fn connect(
    args: &RunPodArgs,
    account: &RunPodAccountSpec,
) -> Result<Connection, CliError> {
    let mut account = account.clone();
    if let Some(rpm) = args.requests_per_minute {
        account.requests_per_minute = Some(rpm.max(1));
    }
    let account = &account;
    if args.sim {
        let handle = sim::start(SimConfig {
            balance: rust_decimal::Decimal::from(1000),
            speed: 1.0,
            ..SimConfig::default()
        })
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
        let client = client(
            &handle.api_url,
            &handle.graphql_url,
            &handle.serverless_url,
            handle.api_key.clone(),
            account,
        )?;
        return Ok(Connection {
            inventory: Inventory::new(client, Duration::ZERO),
            _sim: Some(handle),
            prices_kept: None,
            price_max_age: Duration::ZERO,
            refresh_prices: true,
        });
    }
    let key = args.api_key.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
        CliError::Usage(
            "no RunPod API key: pass --api-key or export RUNPOD_API_KEY (or try the built-in simulator with --sim)"
                .to_string(),
        )
    })?;
    let prices_kept = super::price_cache::default_dir().map(|dir| {
        (
            PriceCache::new(&dir, &args.api_url, &key),
            args.api_url.clone(),
        )
    });
    let client = client(
        &args.api_url,
        &args.graphql_url,
        &args.serverless_url,
        key,
        account,
    )?;
    Ok(Connection {
        inventory: Inventory::new(client, Duration::ZERO),
        _sim: None,
        prices_kept,
        price_max_age: Duration::from_secs(account.price_refresh_interval_seconds.into()),
        refresh_prices: args.refresh_prices,
    })
}
