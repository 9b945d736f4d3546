//! Configuration: compiled-in defaults, then a TOML file, then `SKINGATE_*` environment variables.
//!
//! `config.default.toml` beside this crate is both the defaults and the operator's reference: every key is
//! documented there, and this struct must match it (a test checks that the defaults parse).

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The documented defaults, embedded so the binary runs with no file at all.
pub const DEFAULTS: &str = include_str!("../config.default.toml");

/// Environment variable prefix of every key.
pub const ENV_PREFIX: &str = "SKINGATE_";

/// A currency row supplied by configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyConfig {
    /// Lowercase code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Decimals shown.
    pub scale: u32,
    /// Units per 1 USD, as a decimal string (never a float).
    pub rate: String,
}

/// The gateway's configuration. See `config.default.toml` for each key's meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bind address.
    pub listen: SocketAddr,
    /// Database URL.
    pub database_url: String,
    /// Public base URL; empty = derived from `listen`.
    pub public_url: String,
    /// Largest accepted body.
    pub body_limit_bytes: usize,
    /// Deadline for a request's headers (and a kept-alive connection's idle time), in ms.
    pub http_header_timeout_ms: u64,
    /// Deadline for a request's body from when its reader starts reading it, in ms.
    pub http_body_timeout_ms: u64,
    /// How long a stopping server lets open connections finish before closing them, in ms.
    pub http_shutdown_grace_ms: u64,
    /// Maintenance switch.
    #[serde(deserialize_with = "skingate_types::lenient::bool")]
    pub maintenance: bool,
    /// Create and print a demo project.
    #[serde(deserialize_with = "skingate_types::lenient::bool")]
    pub demo_project: bool,
    /// Project cache lifetime.
    pub project_cache_ttl_ms: u64,
    /// Refresh period of rates and the run-time maintenance flag.
    pub refresh_interval_ms: u64,
    /// Read pool size.
    pub db_readers: u32,
    /// Proxies trusted for `X-Forwarded-For`.
    pub trusted_proxies: Vec<IpNet>,
    /// Currencies to upsert at start.
    pub currencies: Vec<CurrencyConfig>,
    /// Let webhooks reach private/loopback addresses (development only).
    #[serde(deserialize_with = "skingate_types::lenient::bool")]
    pub webhook_allow_private: bool,
    /// Private networks webhooks may reach anyway.
    pub webhook_allowed_networks: Vec<IpNet>,
    /// Timeout of one webhook attempt.
    pub webhook_timeout_ms: u64,
    /// Concurrent deliveries per node.
    pub webhook_concurrency: usize,
    /// Dispatcher poll period.
    pub webhook_poll_interval_ms: u64,
    /// Retry delays.
    pub webhook_retry_delays_secs: Vec<u64>,
    /// Retry jitter.
    pub webhook_jitter_percent: u8,
    /// Disable an endpoint failing this long.
    pub webhook_disable_after_secs: u64,
    /// Old secret's signing grace after rotation.
    pub secret_rotation_grace_secs: i64,
    /// Payment page requests that call Steam, per deposit and minute.
    pub pay_steam_requests_per_min: u32,
    /// Per-connection WebSocket queue.
    pub ws_queue_len: usize,
    /// WebSocket ping period.
    pub ws_ping_interval_secs: u64,
    /// WebSocket idle timeout.
    pub ws_idle_timeout_secs: u64,
    /// Hub poll period for other processes' events.
    pub events_poll_interval_ms: u64,
    /// Seed of the simulated Steam world.
    pub sim_seed: u64,
    /// Serve the simulator's operator routes (`/admin/sim/...`, `/admin/clock/advance`); off in production.
    #[serde(deserialize_with = "skingate_types::lenient::bool")]
    pub sim_admin: bool,
    /// Units seeded into an empty market stock at start.
    pub market_seed_units: u32,
    /// Market markup over the catalogue reference price, in basis points.
    pub market_markup_bps: u32,
    /// Purchase watcher poll period.
    pub market_poll_interval_ms: u64,
    /// Least time between two purchase-watcher rounds when buys wake it: a burst of buys is sent in a few
    /// large rounds (a few transactions) instead of one small round per buy batch, each taking the writer.
    pub market_watch_coalesce_ms: u64,
    /// Most buys group-committed in one transaction.
    pub market_batch_max: usize,
    /// How often the deposit trade watcher observes open offers and held deposits, in ms.
    pub trade_poll_interval_ms: u64,
    /// Delay before a changed Steam observation is confirmed by a second one, in ms.
    pub trade_confirm_delay_ms: u64,
}

impl Config {
    /// The address rules every webhook and callback URL meets, in one place so what is refused when a URL
    /// is stored (CLI, API) is exactly what the dispatcher would refuse when it sends.
    pub fn address_policy(&self) -> crate::webhook::AddressPolicy {
        crate::webhook::AddressPolicy {
            allow_private: self.webhook_allow_private,
            allowed: self.webhook_allowed_networks.clone(),
        }
    }

    /// Loads defaults, then `file` if it exists, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut fig = Figment::from(Toml::string(DEFAULTS));
        let default_file = Path::new("skingate.toml");
        match file {
            Some(path) => fig = fig.merge(Toml::file_exact(path)),
            None if default_file.exists() => fig = fig.merge(Toml::file_exact(default_file)),
            None => {}
        }
        // Variables of the CLI itself, not configuration keys: `SKINGATE_CONFIG` names this file, and
        // `skingate listen` takes its credentials from `SKINGATE_CLIENT_ID` / `SKINGATE_CLIENT_SECRET`.
        let cli_only = ["CONFIG", "CLIENT_ID", "CLIENT_SECRET"];
        fig = fig.merge(Env::prefixed(ENV_PREFIX).ignore(&cli_only).lowercase(true));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.validate().map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(cfg)
    }

    /// The compiled-in defaults alone (tests start from these).
    pub fn defaults() -> Self {
        Figment::from(Toml::string(DEFAULTS)).extract().expect("config.default.toml parses")
    }

    /// Overrides applied by code (tests), as figment values.
    pub fn with(self, key: &str, value: impl Serialize) -> Result<Self, Box<figment::Error>> {
        Figment::from(Serialized::defaults(self)).merge(Serialized::default(key, value)).extract().map_err(Box::new)
    }

    /// Cross-field rules figment cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.body_limit_bytes < 1024 {
            return Err("body_limit_bytes must be at least 1024".into());
        }
        if self.http_header_timeout_ms < 100 || self.http_body_timeout_ms < 100 {
            return Err("http_header_timeout_ms and http_body_timeout_ms must be at least 100".into());
        }
        if self.db_readers == 0 || self.db_readers > 64 {
            return Err("db_readers must be 1..=64".into());
        }
        if self.refresh_interval_ms < 10 {
            return Err("refresh_interval_ms must be at least 10".into());
        }
        if !self.public_url.is_empty() && !self.public_url.starts_with("http") {
            return Err("public_url must start with http:// or https://".into());
        }
        if !(100..=60_000).contains(&self.webhook_timeout_ms) {
            return Err("webhook_timeout_ms must be 100..=60000".into());
        }
        if self.webhook_concurrency == 0 || self.ws_queue_len == 0 || self.webhook_jitter_percent > 50 {
            return Err("webhook_concurrency and ws_queue_len must be positive, webhook_jitter_percent <= 50".into());
        }
        if self.market_batch_max == 0 || self.market_poll_interval_ms == 0 {
            return Err("market_batch_max and market_poll_interval_ms must be positive".into());
        }
        if [self.webhook_poll_interval_ms, self.events_poll_interval_ms, self.trade_poll_interval_ms].contains(&0)
            || self.ws_ping_interval_secs == 0
        {
            // 0 would spin a loop (or, for the ping interval, fail every WebSocket connection).
            return Err(
                "webhook_poll_interval_ms, events_poll_interval_ms, trade_poll_interval_ms and ws_ping_interval_secs \
                 must be positive"
                    .into(),
            );
        }
        if self.ws_idle_timeout_secs <= self.ws_ping_interval_secs {
            return Err("ws_idle_timeout_secs must exceed ws_ping_interval_secs".into());
        }
        if self.pay_steam_requests_per_min == 0 {
            // 0 would not mean "off": it would let a payer see one inventory a minute.
            return Err("pay_steam_requests_per_min must be positive".into());
        }
        Ok(())
    }

    /// The webhook retry policy these settings describe.
    pub fn retry_policy(&self) -> skingate_core::events::RetryPolicy {
        skingate_core::events::RetryPolicy {
            delays_secs: self.webhook_retry_delays_secs.clone(),
            jitter_percent: self.webhook_jitter_percent,
            throttled_floor_secs: skingate_core::events::RetryPolicy::default().throttled_floor_secs,
            disable_after_secs: self.webhook_disable_after_secs,
        }
    }

    /// The base URL to print and to build links with.
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_validate() {
        let cfg = Config::defaults();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.body_limit_bytes, 1 << 20);
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.base_url(), "http://127.0.0.1:8080");
    }

    /// An interval of 0 would spin a loop or, for the WebSocket ping, fail every connection: refused.
    #[test]
    fn zero_intervals_are_refused() {
        let zero: [fn(&mut Config); 4] = [
            |c| c.ws_ping_interval_secs = 0,
            |c| c.events_poll_interval_ms = 0,
            |c| c.webhook_poll_interval_ms = 0,
            |c| c.trade_poll_interval_ms = 0,
        ];
        for set in zero {
            let mut cfg = Config::defaults();
            set(&mut cfg);
            assert!(cfg.validate().unwrap_err().contains("must be positive"));
        }
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail fixes the closure's error type")]
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gate.toml", "listen = \"127.0.0.1:7000\"\nbody_limit_bytes = 4096")?;
            jail.set_env("SKINGATE_LISTEN", "127.0.0.1:9000");
            jail.set_env("SKINGATE_DATABASE_URL", "sqlite:///tmp/x/gate.db");
            jail.set_env("SKINGATE_WEBHOOK_ALLOW_PRIVATE", "1");
            let cfg = Config::load(Some(Path::new("gate.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen.to_string(), "127.0.0.1:9000");
            assert_eq!(cfg.database_url, "sqlite:///tmp/x/gate.db");
            assert_eq!(cfg.body_limit_bytes, 4096);
            assert!(cfg.webhook_allow_private);
            Ok(())
        });
    }

    /// The CLI's own variables do not make the configuration fail (`skingate listen` documents them), and
    /// list keys take the bracketed form README shows.
    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail fixes the closure's error type")]
    fn cli_variables_are_not_keys_and_lists_are_bracketed() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SKINGATE_CLIENT_ID", "1");
            jail.set_env("SKINGATE_CLIENT_SECRET", "s");
            jail.set_env("SKINGATE_TRUSTED_PROXIES", "[10.0.0.0/8, 127.0.0.1/32]");
            jail.set_env("SKINGATE_WEBHOOK_RETRY_DELAYS_SECS", "[5, 60, 600]");
            let cfg = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(cfg.trusted_proxies.len(), 2);
            assert_eq!(cfg.webhook_retry_delays_secs, [5, 60, 600]);
            Ok(())
        });
    }
}
