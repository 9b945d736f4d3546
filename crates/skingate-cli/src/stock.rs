//! `skingate stock list|add|withdraw` and `skingate market on|off|status`: the operator's market tools.
//!
//! The stock is what the gateway's bots hold and the market sells. `add` puts units of a catalogue item into
//! it (held by the simulated bots), `withdraw` takes units for sale off the market, `list` shows what is for
//! sale with the selling price (the configured markup over the reference price). The switch turns every
//! market method into `-6 market_disabled`; a running server sees it within `project_cache_ttl_ms`.

use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;
use skingate_core::market::Pricing;
use skingate_server::Config;
use skingate_server::market::MARKET_KEY;
use skingate_server::market::stock::catalogue_units;
use skingate_steam::catalogue::Game;
use skingate_steam::sim::Simulator;
use skingate_store::market::UnitState;
use skingate_store::{MarketStore, Store};

use crate::now;

/// Stock subcommands.
#[derive(Debug, Subcommand)]
pub enum StockCmd {
    /// List units for sale, by id.
    List {
        /// Only this game (cs2, dota2, rust).
        #[arg(long)]
        game: Option<String>,
        /// Only units with an id above this.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON line per unit.
        #[arg(long)]
        json: bool,
    },
    /// Add units of a catalogue item (held by the simulated bots).
    Add {
        /// Game (cs2, dota2, rust).
        #[arg(long, default_value = "cs2")]
        game: String,
        /// Exact market_hash_name from the catalogue.
        #[arg(long)]
        name: String,
        /// How many units (1 to 100 000 per run: one write transaction, which the server's writes wait for).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
    },
    /// Take units for sale off the market (units sold or in a trade are left alone).
    Withdraw {
        /// Unit ids.
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

/// Runs a stock subcommand.
pub async fn run(config: &Config, cmd: StockCmd) -> anyhow::Result<()> {
    let store = crate::open(config).await?;
    let pricing = Pricing { markup_bps: config.market_markup_bps };
    match cmd {
        StockCmd::List { game, after, limit, json } => {
            let game = game.map(|g| Game::parse(&g).ok_or_else(|| anyhow::anyhow!("unknown game {g}"))).transpose()?;
            let units = store.units_page(game.map(Game::code), UnitState::Stock, after, limit).await?;
            for u in units {
                let price = pricing.price(u.reference).unwrap_or(u.reference).to_wire();
                if json {
                    let line = json!({"id": u.id, "game": u.game, "name": u.name, "classid": u.classid,
                        "price": price, "reference_price": u.reference.to_wire(), "bot": u.bot, "asset_id": u.asset_id});
                    outln!("{line}");
                } else {
                    outln!("{:>8}  {:<6} {:>10}  {}  (bot {})", u.id, u.game, price.to_string(), u.name, u.bot);
                }
            }
        }
        StockCmd::Add { game, name, count } => {
            let game = Game::parse(&game).ok_or_else(|| anyhow::anyhow!("unknown game {game}"))?;
            let sim = Simulator::new(config.sim_seed, Arc::new(now));
            // A fresh salt per run: two runs in the same second must not make the same asset ids.
            let salt = rand::random::<u64>();
            let units = catalogue_units(game, &name, count, sim.bots(), salt)
                .ok_or_else(|| anyhow::anyhow!("{name} is not in the {} catalogue", game.code()))?;
            let mut tx = store.begin().await?;
            let ids = tx.add_units(&units, now()).await?;
            tx.commit().await?;
            match (ids.first(), ids.last()) {
                (Some(first), Some(last)) if ids.len() > 20 => {
                    outln!("added {} unit(s) of {name}: ids {first} to {last}", ids.len());
                }
                _ => outln!("added {} unit(s) of {name}: ids {ids:?}", ids.len()),
            }
        }
        StockCmd::Withdraw { mut ids } => {
            ids.sort_unstable();
            ids.dedup();
            let refused = store.withdraw_units(&ids, now()).await?;
            if !refused.is_empty() {
                // Nothing moved: say which ids, and why, so the operator can fix the list (a unit in a trade
                // comes back on sale if the trade fails).
                let known: std::collections::HashMap<i64, UnitState> =
                    store.units_by_ids(&refused).await?.into_iter().map(|u| (u.id, u.state)).collect();
                let why: Vec<String> = refused
                    .iter()
                    .map(|id| match known.get(id) {
                        None => format!("{id} (unknown)"),
                        Some(UnitState::Reserved) => format!("{id} (in a trade)"),
                        Some(UnitState::Gone) => format!("{id} (sold)"),
                        Some(state) => format!("{id} ({})", state.as_str()),
                    })
                    .collect();
                anyhow::bail!("nothing was withdrawn; not for sale: {}", why.join(", "));
            }
            outln!("withdrew {} unit(s)", ids.len());
        }
    }
    Ok(())
}

/// Sets or shows the market switch.
pub async fn switch(config: &Config, mode: &str) -> anyhow::Result<()> {
    let store = crate::open(config).await?;
    if mode != "status" {
        store.set_meta(MARKET_KEY, mode).await?;
    }
    let on = store.meta(MARKET_KEY).await?.is_none_or(|v| v != "off");
    outln!("market: {}", if on { "on" } else { "off" });
    Ok(())
}
