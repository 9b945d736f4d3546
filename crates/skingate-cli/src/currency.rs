//! `skingate currency list|set`: the rates table behind `currencies` and `*_in_currencies`.

use clap::Subcommand;
use skingate_core::currency::Currency;
use skingate_server::Config;
use skingate_store::Store;

use crate::now;

/// Currency subcommands.
#[derive(Debug, Subcommand)]
pub enum CurrencyCmd {
    /// Print the table.
    List,
    /// Add a currency or change its rate (units per 1 USD, a decimal like 92.5).
    Set {
        /// Lowercase code, e.g. rub.
        code: String,
        /// Units of this currency per 1 USD.
        rate: String,
        /// Display name (default: keep, or the code for a new currency).
        #[arg(long)]
        name: Option<String>,
        /// Decimals shown (default: keep, or 2).
        #[arg(long)]
        scale: Option<u32>,
    },
}

/// Runs a currency subcommand. A running server picks changes up within `refresh_interval_ms`.
pub async fn run(config: &Config, cmd: CurrencyCmd) -> anyhow::Result<()> {
    let store = crate::open(config).await?;
    match cmd {
        CurrencyCmd::List => {
            for c in store.currencies().await? {
                outln!("{:<6} {:>16}  {} (scale {})", c.code, c.rate().to_string(), c.name, c.scale);
            }
        }
        CurrencyCmd::Set { code, rate, name, scale } => {
            let existing = store.currencies().await?.into_iter().find(|c| c.code == code);
            let name = name.or_else(|| existing.as_ref().map(|c| c.name.clone())).unwrap_or_else(|| code.clone());
            let scale = scale.or(existing.as_ref().map(|c| c.scale)).unwrap_or(2);
            let rate = rate.parse().map_err(|e| anyhow::anyhow!("rate: {e}"))?;
            let currency = Currency::new(&code, &name, scale, &rate)?;
            store.upsert_currency(&currency, now()).await?;
            outln!("{} = {} per USD", currency.code, currency.rate());
            if let Some(pinned) = config.currencies.iter().find(|c| c.code == currency.code) {
                eprintln!(
                    "note: the configuration sets {} to {}; the next `serve` or `migrate` puts that back",
                    currency.code, pinned.rate
                );
            }
        }
    }
    Ok(())
}
