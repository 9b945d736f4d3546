//! `market_search`: units for sale by exact `market_hash_name` (spec §5.3).
//!
//! # Format
//! Request: `game` (as `market_pricelist`), `name` (string) or `names` (array of strings).
//! Response: `items[]` of `{id, name, price, classid}`, one per unit, cheapest first per name (at most 1000).
//! Errors: `-6 market_disabled`, `1 name_or_names_required`, `2 name_min_length_3`, `10 invalid_game`
//! (a `game` that is present but not a known code, as in `market_pricelist`).

use skingate_steam::catalogue::Game;
use skingate_types::market::SearchResponse;

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

const NAME_REQUIRED: ApiError = ApiError::method(1, "name_or_names_required");
const NAME_TOO_SHORT: ApiError = ApiError::method(2, "name_min_length_3");
/// `10 invalid_game`, as in every market method (see `market_pricelist`).
const INVALID_GAME: ApiError = ApiError::method(10, "invalid_game");
/// Most units one search returns.
const LIMIT: u32 = 1000;
/// Most names one search takes.
const MAX_NAMES: usize = 100;

/// A `market_search` call.
#[derive(Debug)]
pub struct MarketSearch {
    game: Game,
    names: Vec<String>,
}

impl MarketSearch {
    /// Reads `game` and `name` / `names`.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let mut names = match (params.text("name"), params.strings("names")) {
            (Ok(name), _) => vec![name],
            (Err(_), Some(names)) if !names.is_empty() => names,
            _ => return Err(NAME_REQUIRED),
        };
        if names.iter().any(|n| n.trim().chars().count() < 3) {
            return Err(NAME_TOO_SHORT);
        }
        names.truncate(MAX_NAMES);
        Ok(Self { game: params.game(INVALID_GAME)?, names: names.into_iter().map(|n| n.trim().to_owned()).collect() })
    }

    /// Looks the names up.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let units = ctx.state.store.search_units(self.game.code(), &self.names, LIMIT).await?;
        let pricing = crate::market::pricing(ctx.state);
        let items = units.iter().map(|u| crate::market::unit_item(u, pricing)).collect::<Result<_, _>>()?;
        Reply::success(&SearchResponse { items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(v: Value) -> Result<MarketSearch, ApiError> {
        MarketSearch::parse(&Params(v.as_object().unwrap().clone()))
    }

    #[test]
    fn parameters() {
        let code = |r: Result<MarketSearch, ApiError>| r.unwrap_err().body().error_code;
        assert_eq!(code(parse(json!({}))), 1);
        assert_eq!(code(parse(json!({"names": []}))), 1);
        assert_eq!(code(parse(json!({"name": "AK"}))), 2);
        assert_eq!(code(parse(json!({"names": ["AK-47 | Redline (Field-Tested)", "x"]}))), 2);
        assert_eq!(parse(json!({"names": {"0": "Tempered AK47"}, "game": "rust"})).unwrap().names, ["Tempered AK47"]);
        assert_eq!(parse(json!({"name": "Big Grin"})).unwrap().game, Game::Cs2);
        assert_eq!(parse(json!({"name": "Big Grin", "game": "csgo"})).unwrap().game, Game::Cs2);
        for bad in [json!("tf2"), json!([1]), json!({})] {
            assert_eq!(code(parse(json!({"name": "Big Grin", "game": bad}))), 10);
        }
        // The name errors come first, as in `market_buy`.
        assert_eq!(code(parse(json!({"name": "Bi", "game": [1]}))), 2);
    }
}
