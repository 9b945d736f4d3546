//! `market_buy`: buy one unit and have it traded to a user (spec §5.4).
//!
//! # Format
//! Request: `partner` + `token` (from the user's trade URL; `partner` is the account id, a SteamID64 is
//! accepted too), and either `id` (a unit from the price list or search) or `name` + `game` (the cheapest
//! unit of that name), optional `max_price` (USD; the buy fails rather than pay more) and `custom_id` (the
//! merchant's id: repeating the same request replays the first answer, a different request with it is
//! error 7).
//! Response: `{item:{id,name,price,classid,instanceid:"0"}, buy_id, offer_status:"creating_trade", steamid,
//! date, balance_debited_sum, tradeofferid:null, custom_id, error_reason:null}`; the trade then runs in the
//! background (follow it with `market_getinfo` or the `status_change` events). `instanceid` is Steam's default
//! instance, since the stock's items have no per-copy properties (`crate::market::record`).
//!
//! Errors: `-6 market_disabled`, `1 missing_name_and_id`, `2 name_min_length_3`, `3 missing_partner_or_token`,
//! `4 insufficient_funds`, `5 skin_unavailable`, `6 skins_not_found_at_specified_price`,
//! `7 custom_id_already_exists`; skingate adds `8 invalid_max_price`, `9 invalid_custom_id` (longer than
//! 255 bytes) and `10 invalid_game` (buying by name with a `game` that is present but not a known code; a
//! missing one is `cs2`; with `id`, `game` is not read). A refused buy changes nothing.

use std::str::FromStr;
use std::sync::Arc;

use skingate_core::Money;
use skingate_steam::ids::SteamId;
use skingate_types::Decimal;
use skingate_types::market::method;

use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::error::ApiError;
use crate::idempotency::MAX_KEY_LEN;
use crate::market::buy::{Bought, BuyRequest, CUSTOM_ID_SCOPE, HEADER_SCOPE, Pick, Refusal, buy};

const MISSING_NAME_AND_ID: ApiError = ApiError::method(1, "missing_name_and_id");
const NAME_TOO_SHORT: ApiError = ApiError::method(2, "name_min_length_3");
/// `10 invalid_game`, as in every market method (see `market_pricelist`).
const INVALID_GAME: ApiError = ApiError::method(10, "invalid_game");
/// `3 missing_partner_or_token`.
pub(crate) const MISSING_PARTNER: ApiError = ApiError::method(3, "missing_partner_or_token");
/// `8 invalid_max_price`.
pub(crate) const INVALID_MAX_PRICE: ApiError = ApiError::method(8, "invalid_max_price");
/// `9 invalid_custom_id`.
pub(crate) const INVALID_CUSTOM_ID: ApiError = ApiError::method(9, "invalid_custom_id");

/// A `market_buy` call.
#[derive(Debug)]
pub struct MarketBuy {
    request: Result<BuyRequest, Refusal>,
}

/// The recipient from `partner` (account id or SteamID64) and `token`.
pub(crate) fn recipient(params: &Params) -> Result<(SteamId, String), ApiError> {
    let partner = params.text("partner").map_err(|_| MISSING_PARTNER)?;
    let token = params.text("token").map_err(|_| MISSING_PARTNER)?;
    // ASCII whitespace only, as for every number (`Params::i64`).
    let raw: u64 = partner.trim_ascii().parse().map_err(|_| MISSING_PARTNER)?;
    let id = if raw <= u64::from(u32::MAX) { SteamId::from_account_id(raw) } else { SteamId::from_str(&partner) };
    // A token of the wrong shape is accepted: like a stale one, the trade then fails as invalid_trade_token.
    Ok((id.map_err(|_| MISSING_PARTNER)?, token.trim().to_owned()))
}

/// `max_price` in USD. Absent (or null, or empty) means no cap; anything else that is not a non-negative number
/// is refused, never taken as no cap. Digits past the thousandth are dropped (floored): prices are whole
/// thousandths, so a price is at or under the cap exactly when it is at or under the floored cap, and a PHP
/// client's computed `0.30000000000000004`, which the vendor takes, buys instead of being refused.
pub(crate) fn max_price(params: &Params, key: &str) -> Result<Option<Money>, ApiError> {
    let text = match params.text(key) {
        Ok(text) => text,
        Err(ParamError::Missing) => return Ok(None),
        Err(ParamError::Invalid) => return Err(INVALID_MAX_PRICE),
    };
    // Only ASCII whitespace is tolerated: `120\u{a0}` is refused, not read as 120.
    let text = text.trim_ascii();
    if text.starts_with('-') && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        return Err(INVALID_MAX_PRICE);
    }
    let floored = match text.split_once('.') {
        Some((int, frac)) if frac.len() > 3 && frac.bytes().all(|b| b.is_ascii_digit()) => {
            std::borrow::Cow::Owned(format!("{int}.{}", &frac[..3]))
        }
        _ => std::borrow::Cow::Borrowed(text),
    };
    let d = Decimal::from_str(&floored).map_err(|_| INVALID_MAX_PRICE)?;
    let m = Money::from_wire(&d).map_err(|_| INVALID_MAX_PRICE)?;
    if m.minor() < 0 { Err(INVALID_MAX_PRICE) } else { Ok(Some(m)) }
}

/// `custom_id`, at most 255 bytes. One that is not text or a number (an array, say) is refused, never dropped:
/// dropping it would let a retry buy twice.
pub(crate) fn custom_id(params: &Params, key: &str) -> Result<Option<String>, ApiError> {
    match params.text(key) {
        Ok(k) if k.len() > MAX_KEY_LEN => Err(INVALID_CUSTOM_ID),
        Ok(k) => Ok(Some(k)),
        Err(ParamError::Missing) => Ok(None),
        Err(ParamError::Invalid) => Err(INVALID_CUSTOM_ID),
    }
}

impl MarketBuy {
    /// Reads and checks the parameters (codes 1, 2, 10, 3, 8, 9, in that order).
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let id = params.i64("id");
        let name = params.text("name");
        let pick = match (id, name) {
            (Ok(id), _) => Ok(Pick::Id(id)),
            (Err(ParamError::Invalid), _) => Err(Refusal::Unavailable),
            (Err(ParamError::Missing), Ok(name)) => {
                if name.trim().chars().count() < 3 {
                    return Err(NAME_TOO_SHORT);
                }
                Ok(Pick::Name { game: params.game(INVALID_GAME)?, name: name.trim().to_owned() })
            }
            (Err(ParamError::Missing), Err(_)) => return Err(MISSING_NAME_AND_ID),
        };
        let (partner, token) = recipient(params)?;
        let max_price = max_price(params, "max_price")?;
        let custom_id = custom_id(params, "custom_id")?;
        let fingerprint = crate::idempotency::fingerprint(method::BUY, params);
        let key = custom_id.clone().map(|k| (CUSTOM_ID_SCOPE, k));
        let request = pick.map(|pick| BuyRequest { pick, max_price, partner, token, custom_id, key, fingerprint });
        Ok(Self { request })
    }

    /// Buys through the group-committed writer; without `custom_id`, an `Idempotency-Key` header is the key.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let mut request = self.request.map_err(Refusal::error)?;
        if request.key.is_none() {
            request.key = ctx.idempotency_key.map(|k| (HEADER_SCOPE, k.to_owned()));
        }
        let (record, replayed) = match buy(ctx.state, Arc::new(ctx.project.clone()), request).await? {
            Bought::Fresh(body) => (body, false),
            Bought::Replayed(body) => (body, true),
        };
        let record: serde_json::Value = serde_json::from_slice(&record).map_err(ApiError::internal)?;
        let mut reply = Reply::success(&record)?;
        reply.replayed = replayed;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use skingate_steam::catalogue::Game;

    fn parse(v: Value) -> Result<MarketBuy, ApiError> {
        MarketBuy::parse(&Params(v.as_object().unwrap().clone()))
    }

    #[test]
    fn parameters() {
        let code = |r: Result<MarketBuy, ApiError>| r.unwrap_err().body().error_code;
        assert_eq!(code(parse(json!({"partner": "1", "token": "AbCdEfGh"}))), 1);
        assert_eq!(code(parse(json!({"name": "AK", "partner": "1", "token": "AbCdEfGh"}))), 2);
        assert_eq!(code(parse(json!({"id": 5}))), 3);
        assert_eq!(code(parse(json!({"id": 5, "partner": "1"}))), 3);
        assert_eq!(code(parse(json!({"id": 5, "partner": "x", "token": "AbCdEfGh"}))), 3);
        // A cap past the thousandth is floored (prices are whole thousandths), never rounded up.
        let cases = [
            (json!("1.2345"), 1_234),
            (json!(0.30000000000000004), 300),
            (json!(22.988499999999995), 22_988),
            (json!("0.1234567890123456789"), 123),
            (json!("0.0009"), 0),
        ];
        for (sent, cap) in cases {
            let parsed = parse(json!({"id": 5, "partner": "1", "token": "AbCdEfGh", "max_price": sent}));
            assert_eq!(parsed.unwrap().request.unwrap().max_price, Some(Money::from_minor(cap)), "{sent}");
        }
        assert_eq!(code(parse(json!({"id": 5, "partner": "1", "token": "AbCdEfGh", "max_price": "-0.0001"}))), 8);
        // Exponent forms are not decimals: refused, never guessed.
        assert_eq!(code(parse(json!({"id": 5, "partner": "1", "token": "AbCdEfGh", "max_price": 1e-7}))), 8);
        // Only ASCII whitespace is tolerated around a number: a no-break space makes it malformed.
        assert_eq!(code(parse(json!({"id": 5, "partner": "1", "token": "AbCdEfGh", "max_price": "120\u{a0}"}))), 8);
        assert_eq!(code(parse(json!({"id": 5, "partner": "1\u{a0}", "token": "AbCdEfGh"}))), 3);
        assert_eq!(
            parse(json!({"id": " 7\u{a0}", "partner": 1, "token": "AbCdEfGh"})).unwrap().request,
            Err(Refusal::Unavailable)
        );
        let padded = parse(json!({"id": " 7 ", "partner": " 1\t", "token": "AbCdEfGh", "max_price": " 120\n"}));
        let padded = padded.unwrap().request.unwrap();
        assert_eq!((padded.pick, padded.max_price), (Pick::Id(7), Some(Money::from_minor(120_000))));
        assert_eq!(code(parse(json!({"id": 5, "partner": "1", "token": "t", "custom_id": "x".repeat(256)}))), 9);
        // Not a number or text: refused, never read as "no cap" or "no key".
        assert_eq!(code(parse(json!({"id": 5, "partner": "1", "token": "AbCdEfGh", "max_price": [0.5]}))), 8);
        assert_eq!(code(parse(json!({"id": 5, "partner": "1", "token": "AbCdEfGh", "max_price": true}))), 8);
        assert_eq!(code(parse(json!({"id": 5, "partner": "1", "token": "AbCdEfGh", "custom_id": ["a"]}))), 9);
        let open = parse(json!({"id": 5, "partner": "1", "token": "AbCdEfGh", "max_price": null, "custom_id": ""}));
        let open = open.unwrap().request.unwrap();
        assert_eq!((open.max_price, open.custom_id), (None, None), "null and empty mean absent");
        let ok = parse(json!({"id": "5", "partner": 12, "token": "AbCdEfGh", "max_price": 1.5, "custom_id": 7}))
            .unwrap()
            .request
            .unwrap();
        assert_eq!(ok.pick, Pick::Id(5));
        assert_eq!(ok.max_price, Some(Money::from_minor(1500)));
        assert_eq!(ok.partner.account_id(), 12);
        assert_eq!(ok.custom_id.as_deref(), Some("7"));
        let by_name = parse(json!({"name": "Tempered AK47", "game": "rust", "partner": "76561197960265740",
            "token": "AbCdEfGh"}))
        .unwrap()
        .request
        .unwrap();
        assert_eq!(by_name.partner.account_id(), 12);
        assert!(matches!(by_name.pick, Pick::Name { game: Game::Rust, .. }));
        // By name, a missing game is CS2 and `csgo` an alias; a present one must be a known code.
        let name = |game: Value| {
            let mut p = json!({"name": "Big Grin", "partner": 1, "token": "AbCdEfGh"});
            if !game.is_null() {
                p["game"] = game;
            }
            parse(p)
        };
        for game in [Value::Null, json!("csgo"), json!("CS2")] {
            assert!(matches!(name(game).unwrap().request.unwrap().pick, Pick::Name { game: Game::Cs2, .. }));
        }
        for bad in [json!("tf2"), json!([1]), json!({}), json!(730)] {
            assert_eq!(code(name(bad.clone())), 10, "{bad}");
        }
        // With an id, game is not read.
        assert!(parse(json!({"id": 5, "game": [1], "partner": 1, "token": "AbCdEfGh"})).unwrap().request.is_ok());
        assert_eq!(
            parse(json!({"id": "x", "partner": 1, "token": "AbCdEfGh"})).unwrap().request,
            Err(Refusal::Unavailable)
        );
    }
}
