//! Simulated Steam users: everything about them follows from the simulation's seed and their SteamID64.
//!
//! No user is ever created: any valid individual SteamID64 is a user, with a trade token and an inventory
//! per game that are the same every time for the same seed. A demo or a test just picks an id. (The
//! simulator's mutable state, such as items moved by trades or a regenerated token, is layered on top of
//! this starting point by the deposits work.)

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalogue::{Catalogue, Game};
use crate::ids::{SteamId, TradeUrl};

/// Characters a trade token is made of.
const TOKEN_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// One item in a user's inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Asset {
    /// Unique within the game and context.
    pub asset_id: u64,
    /// The game.
    pub game: Game,
    /// 2, or 16 for CS2 items under Trade Protection.
    pub context_id: u32,
    /// The item type.
    pub classid: u64,
    /// Its properties (stickers and the like); always 0 here.
    pub instance_id: u64,
    /// Steam's price key.
    pub market_hash_name: String,
    /// Reference price, US cents.
    pub price_cents: u64,
    /// Whether it can be traded now (protected and some other items cannot).
    pub tradable: bool,
}

/// A deterministic world of users.
#[derive(Debug, Clone)]
pub struct Simulation {
    seed: u64,
    catalogue: &'static Catalogue,
}

impl Simulation {
    /// A world for `seed` over the shipped catalogue.
    pub fn new(seed: u64) -> Self {
        Self { seed, catalogue: Catalogue::embedded() }
    }

    /// A number derived from the seed, the user and a label: the simulation's only source of chance.
    fn draw(&self, user: SteamId, label: &str, n: u64) -> u64 {
        let digest = Sha256::new()
            .chain_update(self.seed.to_be_bytes())
            .chain_update(user.as_u64().to_be_bytes())
            .chain_update(label)
            .chain_update(n.to_be_bytes())
            .finalize();
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    /// The user's current trade token (before any regeneration).
    pub fn trade_token(&self, user: SteamId) -> String {
        let bits = self.draw(user, "token", 0);
        (0..8).map(|i| char::from(TOKEN_ALPHABET[((bits >> (i * 6)) & 63) as usize])).collect()
    }

    /// The user's trade URL.
    pub fn trade_url(&self, user: SteamId) -> TradeUrl {
        TradeUrl { steam_id: user, token: self.trade_token(user) }
    }

    /// The user's starting inventory in a game: 5 to 40 items; about one in ten not tradable, and for
    /// CS2 about one in ten under Trade Protection (context 16, not tradable).
    pub fn inventory(&self, user: SteamId, game: Game) -> Vec<Asset> {
        let label = game.code();
        let count = 5 + self.draw(user, label, u64::MAX) % 36;
        (0..count)
            .filter_map(|i| {
                let pick = self.draw(user, label, i);
                let item = self.catalogue.nth(game, pick)?;
                let protected = game.protected_context_id().filter(|_| (pick >> 40).is_multiple_of(10));
                Some(Asset {
                    asset_id: 10_000_000_000 + self.draw(user, "asset", pick) % 90_000_000_000,
                    game,
                    context_id: protected.unwrap_or(game.context_id()),
                    classid: item.classid,
                    instance_id: 0,
                    market_hash_name: item.market_hash_name.clone(),
                    price_cents: item.price_cents,
                    tradable: protected.is_none() && !(pick >> 48).is_multiple_of(10),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::validate_token;

    fn user(n: u64) -> SteamId {
        SteamId::from_account_id(n).unwrap()
    }

    #[test]
    fn deterministic_per_seed_and_user() {
        let sim = Simulation::new(7);
        let a = sim.inventory(user(1), Game::Cs2);
        assert_eq!(a, Simulation::new(7).inventory(user(1), Game::Cs2));
        assert_ne!(a, Simulation::new(8).inventory(user(1), Game::Cs2));
        assert_ne!(a, sim.inventory(user(2), Game::Cs2));
        assert!((5..=40).contains(&a.len()));
        let token = sim.trade_token(user(1));
        assert!(validate_token(&token).is_ok(), "{token}");
        assert_eq!(token, Simulation::new(7).trade_token(user(1)));
        assert_ne!(token, sim.trade_token(user(2)));
        assert_eq!(sim.trade_url(user(1)).to_string().parse::<TradeUrl>().unwrap().token, token);
    }

    #[test]
    fn inventories_look_like_steam() {
        let sim = Simulation::new(1);
        let mut protected = 0;
        let mut total = 0;
        for n in 1..200 {
            for asset in sim.inventory(user(n), Game::Cs2) {
                total += 1;
                assert!(Catalogue::embedded().get(Game::Cs2, &asset.market_hash_name).is_some());
                if asset.context_id == 16 {
                    protected += 1;
                    assert!(!asset.tradable);
                }
            }
            assert!(sim.inventory(user(n), Game::Rust).iter().all(|a| a.context_id == 2));
        }
        let share = protected as f64 / total as f64;
        assert!((0.05..0.15).contains(&share), "protected share {share}");
    }
}
