//! The items the simulator knows, with reference prices in US cents.
//!
//! CS2 comes from the shipped price list (`data/cs2-prices.json`, see `data/README.md` for source and
//! licence); Dota 2 and Rust from short hand-made lists, since no open priced list exists for them. Steam's
//! `classid` is not in any source, so each item gets a stable one derived from its game and name.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The shipped CS2 price list (`{"prices": {name: cents}}`); public so the load benchmark can time parsing it.
pub const CS2_PRICES: &str = include_str!("../data/cs2-prices.json");

/// A game the gateway trades items of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Game {
    /// Counter-Strike 2 (app 730).
    Cs2,
    /// Dota 2 (app 570).
    Dota2,
    /// Rust (app 252490).
    Rust,
}

impl Game {
    /// Every game.
    pub const ALL: [Game; 3] = [Game::Cs2, Game::Dota2, Game::Rust];

    /// The wire code (`cs2`, `dota2`, `rust`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Cs2 => "cs2",
            Self::Dota2 => "dota2",
            Self::Rust => "rust",
        }
    }

    /// Parses a wire code; `csgo` (old clients) means CS2.
    pub fn parse(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "cs2" | "csgo" => Some(Self::Cs2),
            "dota2" => Some(Self::Dota2),
            "rust" => Some(Self::Rust),
            _ => None,
        }
    }

    /// Steam app id.
    pub fn app_id(self) -> u32 {
        match self {
            Self::Cs2 => 730,
            Self::Dota2 => 570,
            Self::Rust => 252_490,
        }
    }

    /// The inventory context of tradable items (2 for all three).
    pub fn context_id(self) -> u32 {
        2
    }

    /// The context trade-protected items sit in, where Steam has one (CS2: 16).
    pub fn protected_context_id(self) -> Option<u32> {
        (self == Self::Cs2).then_some(16)
    }
}

/// One item type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogueItem {
    /// Its game.
    pub game: Game,
    /// Steam's `market_hash_name`, the price key.
    pub market_hash_name: String,
    /// A stable made-up `classid`.
    pub classid: u64,
    /// Reference price, US cents.
    pub price_cents: u64,
    /// The wear in the name, e.g. `Field-Tested`, when there is one.
    pub exterior: Option<String>,
}

/// Why a price list did not load.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// Not the expected JSON shape.
    #[error("price list: {0}")]
    Format(String),
}

/// Every known item, searchable by game and name.
#[derive(Debug, Default)]
pub struct Catalogue {
    items: Vec<CatalogueItem>,
    by_name: HashMap<(Game, String), usize>,
    by_game: HashMap<Game, Vec<usize>>,
}

const EXTERIORS: [&str; 5] = ["Factory New", "Minimal Wear", "Field-Tested", "Well-Worn", "Battle-Scarred"];

fn exterior(name: &str) -> Option<String> {
    let inner = name.strip_suffix(')')?.rsplit_once('(')?.1;
    EXTERIORS.contains(&inner).then(|| inner.to_owned())
}

/// A stable 10-digit `classid` for an item.
pub fn classid(game: Game, name: &str) -> u64 {
    let digest = Sha256::new().chain_update(game.code()).chain_update([0]).chain_update(name).finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    1_000_000_000 + n % 9_000_000_000
}

/// Where Steam's image CDN serves economy images; an [`icon_url`] is a path under it, as Steam's own is.
pub const ECONOMY_IMAGE_BASE: &str = "https://community.cloudflare.steamstatic.com/economy/image/";

/// The `icon_url` of an item, which `user_inventory` shows (spec §4.4, §12.9). No source the simulator is
/// built from carries images (`data/README.md`), so this is not Steam's own icon hash: it is Steam's by-class
/// image path `class/{app_id}/{classid}`. It keeps the shape of Steam's field, a path relative to
/// [`ECONOMY_IMAGE_BASE`], so a client that prefixes that base, as it must for Steam's own `icon_url`, still
/// builds a well-formed image URL. Stable: it follows from the app and the class alone. (The simulator's class
/// ids are made up, so Steam has no image behind them; a real Steam backend would pass Steam's hash instead.)
pub fn icon_url(app_id: u32, classid: &str) -> String {
    format!("class/{app_id}/{classid}")
}

/// Dota 2 items: well-known names, plausible prices in cents.
const DOTA2: &[(&str, u64)] = &[
    ("Dragonclaw Hook", 85_000),
    ("Manifold Paradox", 4_500),
    ("Fractal Horns of Inner Abysm", 2_800),
    ("Golden Moonfall", 3_900),
    ("Exalted Fractal Horns of Inner Abysm", 6_100),
    ("Genuine Mace of Aeons", 1_200),
    ("Bladeform Legacy", 950),
    ("Arcana Terrorblade Fractal Horns", 2_500),
    ("Inscribed Shadow Fiend's Demon Eater", 2_300),
    ("Crimson Witness of Twin Spirits", 700),
    ("Ethereal Flames Pink War Dog", 12_000),
    ("Blades of Voth Domosh", 1_800),
    ("Dark Artistry Cape", 3_200),
    ("Inscribed Feast of Abscession", 160),
    ("Genuine Flight of Epiphany", 520),
    ("Sylvan Guard's Shadow", 45),
    ("Treasure Key", 250),
    ("Immortal Treasure I 2024", 390),
    ("Inscribed Tempest Helm of the Thundergod", 2_100),
    ("Swine of the Sunken Galley", 1_400),
];

/// Rust items: well-known skin names, plausible prices in cents.
const RUST: &[(&str, u64)] = &[
    ("Tempered AK47", 8_500),
    ("Alien Red", 21_000),
    ("Big Grin", 18_500),
    ("No Mercy Hoodie", 2_400),
    ("Glory AK47", 1_900),
    ("Punishment Mask", 6_800),
    ("Whiteout Hoodie", 3_300),
    ("Blackout Hoodie", 2_600),
    ("Azul Hoodie", 410),
    ("Ghost Facemask", 120),
    ("Digital Camo AK47", 160),
    ("Cold Hunter Pants", 90),
    ("Frontier Hoodie", 75),
    ("Wooden Door of Terror", 55),
    ("Green Hazmat Suit", 2_700),
    ("Neon Diver Suit", 1_100),
    ("Doodle Hoodie", 640),
    ("Jungle Soldier Pants", 35),
    ("Retro Tool Cupboard", 480),
    ("Sunset Large Wood Box", 240),
];

impl Catalogue {
    /// The shipped catalogue, parsed once.
    pub fn embedded() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| Catalogue::load(CS2_PRICES).expect("the shipped price list parses"))
    }

    /// Builds a catalogue from a CS2 price list (`{"prices": {name: cents}}`) plus the Dota 2 and Rust lists.
    pub fn load(cs2_json: &str) -> Result<Catalogue, CatalogueError> {
        #[derive(Deserialize)]
        struct PriceList {
            prices: HashMap<String, u64>,
        }
        let list: PriceList = serde_json::from_str(cs2_json).map_err(|e| CatalogueError::Format(e.to_string()))?;
        let mut cs2: Vec<(String, u64)> =
            list.prices.into_iter().filter(|(n, p)| *p > 0 && !n.starts_with('#')).collect();
        cs2.sort();
        let mut c = Catalogue::default();
        for (name, price) in cs2 {
            c.push(Game::Cs2, name, price);
        }
        for (game, list) in [(Game::Dota2, DOTA2), (Game::Rust, RUST)] {
            for (name, price) in list {
                c.push(game, (*name).to_owned(), *price);
            }
        }
        Ok(c)
    }

    fn push(&mut self, game: Game, name: String, price_cents: u64) {
        let item = CatalogueItem {
            game,
            classid: classid(game, &name),
            exterior: exterior(&name),
            market_hash_name: name.clone(),
            price_cents,
        };
        let index = self.items.len();
        self.items.push(item);
        self.by_name.insert((game, name), index);
        self.by_game.entry(game).or_default().push(index);
    }

    /// An item by game and exact `market_hash_name`.
    pub fn get(&self, game: Game, name: &str) -> Option<&CatalogueItem> {
        self.by_name.get(&(game, name.to_owned())).map(|&i| &self.items[i])
    }

    /// How many items a game has.
    pub fn count(&self, game: Game) -> usize {
        self.by_game.get(&game).map_or(0, Vec::len)
    }

    /// The `n`-th item of a game (wrapping), for deterministic picks.
    pub fn nth(&self, game: Game, n: u64) -> Option<&CatalogueItem> {
        let list = self.by_game.get(&game)?;
        let index = usize::try_from(n % u64::try_from(list.len()).ok()?).ok()?;
        list.get(index).map(|&i| &self.items[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogue() {
        let c = Catalogue::embedded();
        assert!(c.count(Game::Cs2) > 30_000, "{}", c.count(Game::Cs2));
        assert_eq!(c.count(Game::Dota2), DOTA2.len());
        let ak = c.get(Game::Cs2, "AK-47 | Redline (Field-Tested)").unwrap();
        assert_eq!(ak.price_cents, 4_210);
        assert_eq!(ak.exterior.as_deref(), Some("Field-Tested"));
        assert_eq!(ak.classid, classid(Game::Cs2, "AK-47 | Redline (Field-Tested)"));
        assert!((1_000_000_000..10_000_000_000).contains(&ak.classid));
        assert!(
            c.get(Game::Cs2, "#CSGO_crate_musickit_masterminds2_capsule").is_none(),
            "untranslated keys are skipped"
        );
        assert_eq!(c.get(Game::Rust, "Tempered AK47").unwrap().exterior, None);
        assert_eq!(c.nth(Game::Dota2, DOTA2.len() as u64).unwrap().market_hash_name, DOTA2[0].0);
    }

    #[test]
    fn games() {
        assert_eq!(Game::parse("csgo"), Some(Game::Cs2));
        assert_eq!(Game::parse("RUST"), Some(Game::Rust));
        assert_eq!(Game::parse("tf2"), None);
        assert_eq!((Game::Cs2.app_id(), Game::Cs2.protected_context_id()), (730, Some(16)));
        assert_eq!(Game::Rust.protected_context_id(), None);
        assert!(Catalogue::load("[]").is_err());
    }
}
