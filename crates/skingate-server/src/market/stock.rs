//! The stock: units the gateway's bots hold. Seeded from the catalogue when empty, added by operators, and
//! by the items of every deposit that settles ([`deposit_units`], called in the deposit's `success`
//! transaction through [`skingate_store::MarketTx::add_units`]).

use sha2::{Digest, Sha256};
use skingate_core::Money;
use skingate_steam::catalogue::{Catalogue, CatalogueItem, Game};
use skingate_steam::sim::Bot;
use skingate_store::StoreError;
use skingate_store::deposits::Deposit;
use skingate_store::market::NewUnit;

use crate::state::AppState;

/// A number derived from the seed and a label: the only source of chance of the seeded stock.
fn draw(seed: u64, label: &str, n: u64) -> u64 {
    let digest =
        Sha256::new().chain_update(seed.to_be_bytes()).chain_update(label).chain_update(n.to_be_bytes()).finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A unit of a catalogue item held by `bot`, with a made-up asset id derived from `seed` and `n`.
pub fn unit_of(item: &CatalogueItem, bot: &Bot, seed: u64, n: u64) -> NewUnit {
    NewUnit {
        game: item.game.code().to_owned(),
        name: item.market_hash_name.clone(),
        classid: item.classid.to_string(),
        asset_id: i64::try_from(30_000_000_000 + draw(seed, "market-asset", n) % 60_000_000_000).unwrap_or(i64::MAX),
        bot: bot.steam_id.to_string(),
        reference: Money::from_minor(i64::try_from(item.price_cents).unwrap_or(i64::MAX / 10) * 10),
    }
}

/// `count` units spread over the three games (8 in 10 CS2, 1 Dota 2, 1 Rust) and over the bots, the same
/// for the same seed.
pub fn seeded_units(seed: u64, count: u32, bots: &[Bot]) -> Vec<NewUnit> {
    let catalogue = Catalogue::embedded();
    (0..u64::from(count))
        .filter_map(|i| {
            let game = match i % 10 {
                8 => Game::Dota2,
                9 => Game::Rust,
                _ => Game::Cs2,
            };
            let item = catalogue.nth(game, draw(seed, "market-item", i))?;
            let bot = bots.get(usize::try_from(i).ok()? % bots.len().max(1))?;
            Some(unit_of(item, bot, seed, i))
        })
        .collect()
}

/// `count` units of one catalogue item, spread over the bots; `None` if the catalogue has no such item.
pub fn catalogue_units(game: Game, name: &str, count: u32, bots: &[Bot], salt: u64) -> Option<Vec<NewUnit>> {
    let item = Catalogue::embedded().get(game, name)?;
    (0..u64::from(count))
        .map(|i| {
            let bot = bots.get(usize::try_from(i).ok()? % bots.len().max(1))?;
            Some(unit_of(item, bot, salt, i))
        })
        .collect()
}

/// The units a settled deposit brings into the stock: each received item, held by the bot that received it,
/// at the catalogue's reference price. Only at `success`: before that a CS2 item is under Trade Protection
/// (it cannot be traded on, and the payer may still take it back), and a failed deposit brought nothing.
/// Items the catalogue does not know (no reference price) are left out rather than sold at a guess.
pub fn deposit_units(dep: &Deposit) -> Vec<NewUnit> {
    let (Some(game), Some(bot)) = (dep.game.as_deref().and_then(Game::parse), dep.bot_steam_id.as_deref()) else {
        return Vec::new();
    };
    let catalogue = Catalogue::embedded();
    dep.items
        .iter()
        .filter_map(|item| {
            let known = catalogue.get(game, &item.market_hash_name)?;
            Some(NewUnit {
                game: game.code().to_owned(),
                name: known.market_hash_name.clone(),
                classid: known.classid.to_string(),
                asset_id: item.asset_id.parse().ok()?,
                bot: bot.to_owned(),
                reference: Money::from_minor(i64::try_from(known.price_cents).ok()?.checked_mul(10)?),
            })
        })
        .collect()
}

/// Seeds `market_seed_units` units when the market has never had any.
pub async fn seed_if_empty(state: &AppState) -> Result<u64, StoreError> {
    let count = state.config.market_seed_units;
    if count == 0 || state.store.unit_count().await? > 0 {
        return Ok(0);
    }
    let Some(sim) = &state.sim else { return Ok(0) };
    let units = seeded_units(state.config.sim_seed, count, sim.bots());
    let mut tx = state.store.begin().await?;
    let ids = tx.add_units(&units, state.now()).await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skingate_steam::sim::Simulator;

    #[test]
    fn seeded_stock_is_deterministic_and_spread() {
        let sim = Simulator::new(1, std::sync::Arc::new(|| 0));
        let a = seeded_units(7, 1000, sim.bots());
        assert_eq!(a, seeded_units(7, 1000, sim.bots()));
        assert_ne!(a, seeded_units(8, 1000, sim.bots()));
        assert_eq!(a.len(), 1000);
        let count = |g: &str| a.iter().filter(|u| u.game == g).count();
        assert_eq!((count("cs2"), count("dota2"), count("rust")), (800, 100, 100));
        assert!(a.iter().all(|u| u.reference.is_positive()));
        assert_eq!(a.iter().map(|u| &u.bot).collect::<std::collections::HashSet<_>>().len(), sim.bots().len());
        assert!(catalogue_units(Game::Rust, "Tempered AK47", 3, sim.bots(), 1).unwrap().len() == 3);
        assert!(catalogue_units(Game::Rust, "No such thing", 3, sim.bots(), 1).is_none());
    }
}
