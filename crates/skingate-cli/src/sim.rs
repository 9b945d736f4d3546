//! `skingate sim user STEAMID`: a simulated Steam user's trade URL and inventories, for demos and tests.

use clap::Subcommand;
use serde_json::json;
use skingate_server::Config;
use skingate_steam::SteamId;
use skingate_steam::catalogue::Game;
use skingate_steam::users::Simulation;

/// Simulator subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCmd {
    /// Show a simulated user (any valid individual SteamID64 is one).
    User {
        /// SteamID64, e.g. 76561198000000000.
        steam_id: String,
        /// Print JSON (with the full inventories).
        #[arg(long)]
        json: bool,
    },
}

/// Runs a simulator subcommand; the world follows `sim_seed`.
pub fn run(config: &Config, cmd: SimCmd) -> anyhow::Result<()> {
    let SimCmd::User { steam_id, json } = cmd;
    let id: SteamId = steam_id.parse().map_err(|e| anyhow::anyhow!("{steam_id}: {e}"))?;
    let sim = Simulation::new(config.sim_seed);
    let url = sim.trade_url(id);
    if json {
        let inventories: serde_json::Map<String, serde_json::Value> =
            Game::ALL.iter().map(|g| (g.code().to_owned(), json!(sim.inventory(id, *g)))).collect();
        let out = json!({"steam_id": id.to_string(), "account_id": id.account_id(), "trade_token": url.token,
            "trade_url": url.to_string(), "inventories": inventories});
        println!("{out}");
        return Ok(());
    }
    println!("steam_id     {id}\naccount_id   {}\ntrade_token  {}\ntrade_url    {url}", id.account_id(), url.token);
    for game in Game::ALL {
        let items = sim.inventory(id, game);
        let tradable = items.iter().filter(|a| a.tradable).count();
        let value: u64 = items.iter().map(|a| a.price_cents).sum();
        println!(
            "{:<12} {} items ({tradable} tradable), {}.{:02} USD",
            game.code(),
            items.len(),
            value / 100,
            value % 100
        );
    }
    Ok(())
}
