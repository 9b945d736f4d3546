//! `skingate sim ...`: the simulated Steam world, for demos and tests.
//!
//! `sim user` needs nothing but the seed (every SteamID64 is a simulated user). The other commands act on
//! the RUNNING server's simulator through its admin routes (`skingate_server::sim_admin`), with the token
//! kept in the database: play the payer (accept, decline, reverse), choose how a user behaves, let time pass.

use clap::Subcommand;
use serde_json::json;
use skingate_server::Config;
use skingate_steam::SteamId;
use skingate_steam::catalogue::Game;
use skingate_steam::users::Simulation;

/// Simulator subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCmd {
    /// Show a trade offer as the simulated Steam sees it now.
    Offer {
        /// Trade offer id (as in `orderstatus` / `market_getinfo`).
        offer_id: u64,
    },
    /// The payer accepts the offer now.
    Accept {
        /// Trade offer id.
        offer_id: u64,
    },
    /// The payer declines the offer now.
    Decline {
        /// Trade offer id.
        offer_id: u64,
    },
    /// Reverse an accepted trade under Trade Protection (by the payer, or by the supplier side).
    Reverse {
        /// Trade offer id.
        offer_id: u64,
        /// The gateway's side reverses (a purchase's `rollback_supplier`).
        #[arg(long)]
        supplier: bool,
    },
    /// Choose how a simulated user treats offers sent from now on.
    Profile {
        /// SteamID64.
        steam_id: String,
        /// accept-after, decline, counter, never-answer, reverse-after, trade-banned, escrow, manual, send-fails.
        #[arg(value_parser = ["accept-after", "decline", "counter", "never-answer", "reverse-after", "trade-banned", "escrow", "manual", "send-fails"])]
        kind: String,
        /// Seconds until acceptance (accept-after, reverse-after).
        #[arg(long, default_value_t = 10)]
        secs: i64,
        /// Seconds from acceptance to reversal (reverse-after).
        #[arg(long, default_value_t = 60)]
        reverse_after: i64,
        /// Escrow days (escrow).
        #[arg(long, default_value_t = 3)]
        days: u32,
    },
    /// Move the server's clock forward (e.g. `advance 8d` to end a Trade Protection hold).
    Advance {
        /// Seconds, or a number with s, m, h or d.
        duration: String,
    },
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
pub async fn run(config: &Config, cmd: SimCmd) -> anyhow::Result<()> {
    let (path, body) = match cmd {
        SimCmd::User { steam_id, json } => return user(config, &steam_id, json),
        SimCmd::Offer { offer_id } => return admin(config, &format!("/admin/sim/offers/{offer_id}"), None).await,
        SimCmd::Accept { offer_id } => (format!("/admin/sim/offers/{offer_id}/accept"), json!({})),
        SimCmd::Decline { offer_id } => (format!("/admin/sim/offers/{offer_id}/decline"), json!({})),
        SimCmd::Reverse { offer_id, supplier } => {
            let action = if supplier { "reverse_supplier" } else { "reverse" };
            (format!("/admin/sim/offers/{offer_id}/{action}"), json!({}))
        }
        SimCmd::Profile { steam_id, kind, secs, reverse_after, days } => {
            let profile = match kind.as_str() {
                "accept-after" => json!({"kind": "accept_after", "secs": secs}),
                "reverse-after" => {
                    json!({"kind": "reverse_after", "accept_after": secs, "reverse_after": reverse_after})
                }
                "escrow" => json!({"kind": "escrow", "days": days}),
                other => json!({"kind": other.replace('-', "_")}),
            };
            (format!("/admin/sim/users/{steam_id}/profile"), profile)
        }
        SimCmd::Advance { duration } => {
            ("/admin/clock/advance".to_owned(), json!({"secs": parse_duration(&duration)?}))
        }
    };
    admin(config, &path, Some(body)).await
}

/// Calls an admin route of the running server (GET without a body, POST with one) and prints its answer.
async fn admin(config: &Config, path: &str, body: Option<serde_json::Value>) -> anyhow::Result<()> {
    let store = crate::open(config).await?;
    let token = skingate_server::sim_admin::admin_token(store.as_ref()).await?;
    let url = format!("{}{path}", local_base(config));
    let http = reqwest::Client::new();
    let req = match body {
        Some(b) => http.post(&url).json(&b),
        None => http.get(&url),
    };
    let resp = req.bearer_auth(token).send().await.map_err(|e| anyhow::anyhow!("is the server running? {url}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if status == reqwest::StatusCode::NOT_FOUND && text.is_empty() {
        anyhow::bail!("the server does not serve simulator routes (sim_admin is off)");
    }
    if !status.is_success() {
        anyhow::bail!("{status}: {text}");
    }
    outln!("{text}");
    Ok(())
}

/// Where this machine reaches the server: `public_url` if set, else `listen` (0.0.0.0 becomes 127.0.0.1).
fn local_base(config: &Config) -> String {
    if !config.public_url.is_empty() {
        return config.base_url();
    }
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// `90`, `90s`, `15m`, `2h`, `8d` → seconds.
fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: i64 = num.trim().parse().map_err(|_| anyhow::anyhow!("{s}: not a duration like 90s, 15m, 2h or 8d"))?;
    let mul = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => anyhow::bail!("{s}: unit must be s, m, h or d"),
    };
    n.checked_mul(mul).filter(|v| *v > 0).ok_or_else(|| anyhow::anyhow!("{s}: must be positive"))
}

fn user(config: &Config, steam_id: &str, json: bool) -> anyhow::Result<()> {
    let id: SteamId = steam_id.parse().map_err(|e| anyhow::anyhow!("{steam_id}: {e}"))?;
    let sim = Simulation::new(config.sim_seed);
    let url = sim.trade_url(id);
    if json {
        let inventories: serde_json::Map<String, serde_json::Value> =
            Game::ALL.iter().map(|g| (g.code().to_owned(), json!(sim.inventory(id, *g)))).collect();
        let out = json!({"steam_id": id.to_string(), "account_id": id.account_id(), "trade_token": url.token,
            "trade_url": url.to_string(), "inventories": inventories});
        outln!("{out}");
        return Ok(());
    }
    outln!("steam_id     {id}\naccount_id   {}\ntrade_token  {}\ntrade_url    {url}", id.account_id(), url.token);
    for game in Game::ALL {
        let items = sim.inventory(id, game);
        let tradable = items.iter().filter(|a| a.tradable).count();
        let value: u64 = items.iter().map(|a| a.price_cents).sum();
        outln!(
            "{:<12} {} items ({tradable} tradable), {}.{:02} USD",
            game.code(),
            items.len(),
            value / 100,
            value % 100
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("8d").unwrap(), 691_200);
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("x").is_err());
    }
}
