//! `market_pricelist`: what the market sells (spec §5.2), streamed.
//!
//! # Format
//! Request: `game` (`cs2`, `dota2`, `rust`; `csgo` is `cs2`; missing = `cs2`, spec §11.4; anything else is
//! `10 invalid_game`), `full` (0/1 or a JSON bool), `extended` (0/1; accepted without `full` and then implies
//! it, spec §11.5).
//! Response: `{"status":"success","last_update":<unix>,"items":[…]}` with items
//! - grouped (default): `{name, price, classid, count}`, one row per name and price;
//! - `full=1`: `{id, name, price, classid}`, one row per unit (buy it with `market_buy id=…`);
//! - `extended=1`: the full rows plus `game`, `instanceid`, `assetid`, `bot_steamid`, `reference_price`.
//!
//! Prices are USD strings, the same pricing `market_buy` charges. The body is streamed from the database
//! (see [`crate::market::pricelist`]), so memory does not grow with the list.
//! Errors: `-6 market_disabled`, `10 invalid_game`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use skingate_steam::catalogue::Game;

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;
use crate::market::pricelist::{ListSpec, body};

/// A `market_pricelist` call.
#[derive(Debug)]
pub struct MarketPricelist {
    game: Game,
    full: bool,
    extended: bool,
}

/// `10 invalid_game` ([`Params::game`]): the spec gives the market methods no error for a bad `game` (§5), so
/// this is the deposit methods' `invalid_game` under `create`'s number, the same in every market method.
const INVALID_GAME: ApiError = ApiError::method(10, "invalid_game");

/// A 0/1 flag sent as a number, a string or a JSON bool.
pub(crate) fn flag(params: &Params, key: &str) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"),
        _ => false,
    }
}

impl MarketPricelist {
    /// Reads `game`, `full` and `extended`.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let extended = flag(params, "extended");
        Ok(Self { game: params.game(INVALID_GAME)?, full: flag(params, "full") || extended, extended })
    }

    /// Streams the list.
    pub async fn respond(self, ctx: &Ctx<'_>) -> Result<Response, ApiError> {
        let spec = ListSpec {
            game: self.game.code().to_owned(),
            full: self.full,
            extended: self.extended,
            pricing: crate::market::pricing(ctx.state),
            now: ctx.state.now(),
        };
        let body = body(ctx.state.store.clone(), spec).await?;
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    }

    /// The list collected in memory (the dispatcher streams it through [`MarketPricelist::respond`] instead).
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let resp = self.respond(ctx).await?;
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.map_err(ApiError::internal)?;
        Ok(Reply { body: bytes.to_vec(), replayed: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn try_parse(v: Value) -> Result<MarketPricelist, ApiError> {
        MarketPricelist::parse(&Params(v.as_object().unwrap().clone()))
    }

    fn parse(v: Value) -> MarketPricelist {
        try_parse(v).unwrap()
    }

    #[test]
    fn parameters() {
        let p = parse(json!({}));
        assert_eq!((p.game, p.full, p.extended), (Game::Cs2, false, false));
        let p = parse(json!({"game": "csgo", "full": true}));
        assert_eq!((p.game, p.full, p.extended), (Game::Cs2, true, false));
        let p = parse(json!({"game": "rust", "extended": "1"}));
        assert_eq!((p.game, p.full, p.extended), (Game::Rust, true, true));
        assert_eq!(parse(json!({"game": null})).game, Game::Cs2);
        assert_eq!(parse(json!({"game": ""})).game, Game::Cs2);
    }

    #[test]
    fn a_present_game_must_be_a_known_code() {
        for bad in [json!("tf2"), json!([1]), json!({}), json!({"0": "cs2"}), json!(true), json!(730)] {
            let err = try_parse(json!({"game": bad})).unwrap_err();
            assert_eq!((err.body().error_code, err.body().error_message), (10, "invalid_game".into()), "{bad}");
        }
    }
}
