//! `create`: a hosted deposit (spec §4.1). The payer opens `url`, picks items, and a bot sends the offer.
//!
//! `order_id` is unique per project: repeating a call with the same parameters returns the first answer
//! again (header `Idempotent-Replayed: true`) and creates nothing; the same `order_id` with different
//! parameters, or already used by `create_from_user_inventory`, is `5 order_id_already_exists`.
//!
//! # Format
//! Request: `order_id` (required, ≤ 255 bytes); optional `steam_id` (SteamID64, prefilled on the page),
//! `trade_token` (8 characters, or a full trade URL, whose account is the payer's when `steam_id` is absent
//! and must be `steam_id` otherwise), `currency` (the deposit's currency, default `usd`;
//! required with limits), `min_amount`, `max_amount` (in `currency`, checked against the items' value net of
//! fee), `result_url`, `success_url`, `fail_url` (per-deposit overrides), skingate's `game`
//! (`cs2`/`dota2`/`rust`, fixes the game on the page) and `custom_multiplier` (0.5–2, overrides the
//! project's multiplier for this deposit).
//! Response: `{"url": "<payment page>", "transaction_id": N, "transactions_id": N}`: the id twice, because
//! the vendor's clients read `transaction_id` and an integrator reads `transactions_id` (spec §4.1, §12.10);
//! [`CreateResponse`] writes both.
//!
//! Errors: `1 invalid_order_id`, `2 invalid_steam_id`, `3 invalid_trade_token`,
//! `4 min_amount_requires_currency`, `5 order_id_already_exists`, `6 invalid_min_or_max_amount` (not a
//! positive number), `7 invalid_max_amount` (below `min_amount`), `8 invalid_currency`, `9 invalid_url`,
//! `10 invalid_game`, `11 invalid_custom_multiplier`.

use skingate_core::Money;
use skingate_steam::catalogue::Game;
use skingate_store::IdempotencyKey;
use skingate_types::Decimal;
use skingate_types::deposits::{CreateResponse, method};

use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::deposits::{self, CreateRequest};
use crate::error::ApiError;
use crate::idempotency::{self, Outcome};

const INVALID_ORDER_ID: ApiError = ApiError::method(1, "invalid_order_id");
const INVALID_STEAM_ID: ApiError = ApiError::method(2, "invalid_steam_id");
const INVALID_TRADE_TOKEN: ApiError = ApiError::method(3, "invalid_trade_token");
const LIMITS_NEED_CURRENCY: ApiError = ApiError::method(4, "min_amount_requires_currency");
const ORDER_EXISTS: ApiError = ApiError::method(5, "order_id_already_exists");
const INVALID_AMOUNT: ApiError = ApiError::method(6, "invalid_min_or_max_amount");
const INVALID_MAX: ApiError = ApiError::method(7, "invalid_max_amount");
const INVALID_CURRENCY: ApiError = ApiError::method(8, "invalid_currency");
const INVALID_URL: ApiError = ApiError::method(9, "invalid_url");
const INVALID_GAME: ApiError = ApiError::method(10, "invalid_game");
const INVALID_MULTIPLIER: ApiError = ApiError::method(11, "invalid_custom_multiplier");

/// An optional text parameter; a non-scalar is `bad`.
fn opt_text(params: &Params, key: &str, bad: ApiError) -> Result<Option<String>, ApiError> {
    Ok(opt_number_text(params, key, bad)?.map(|v| v.trim().to_owned()))
}

/// [`opt_text`] untrimmed, for numbers: their parsers tolerate ASCII whitespace only, and `str::trim` would
/// strip a no-break space first (`"10\u{a0}"` would be read as 10).
fn opt_number_text(params: &Params, key: &str, bad: ApiError) -> Result<Option<String>, ApiError> {
    match params.text(key) {
        Ok(v) => Ok(Some(v)),
        Err(ParamError::Missing) => Ok(None),
        Err(ParamError::Invalid) => Err(bad),
    }
}

/// `custom_multiplier` (0.5–2) as parts per million; shared with `user_inventory` and
/// `create_from_user_inventory`.
pub fn parse_multiplier(params: &Params, bad: ApiError) -> Result<Option<i64>, ApiError> {
    match params.text("custom_multiplier") {
        Err(ParamError::Missing) => Ok(None),
        Err(ParamError::Invalid) => Err(bad),
        Ok(text) => match skingate_core::deposit::parse_ppm(&text) {
            Some(ppm) if (500_000..=2_000_000).contains(&ppm) => Ok(Some(ppm)),
            _ => Err(bad),
        },
    }
}

/// A `create` call.
#[derive(Debug)]
pub struct Create {
    order_id: String,
    steam_id: Option<String>,
    trade_token: Option<String>,
    currency: Option<String>,
    min: Option<Decimal>,
    max: Option<Decimal>,
    game: Option<Game>,
    multiplier_ppm: Option<i64>,
    urls: [Option<String>; 3],
}

impl Create {
    /// Checks every parameter's shape (the currency is checked against the rates table in `apply`).
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let order_id = params.text("order_id").map_err(|_| INVALID_ORDER_ID)?;
        if !deposits::valid_order_id(&order_id) {
            return Err(INVALID_ORDER_ID);
        }
        let steam_id = opt_number_text(params, "steam_id", INVALID_STEAM_ID)?;
        let mut user = steam_id.as_deref().map(deposits::parse_steam_id).transpose().map_err(|_| INVALID_STEAM_ID)?;
        let mut trade_token = opt_text(params, "trade_token", INVALID_TRADE_TOKEN)?;
        if let Some(token) = &trade_token {
            // A full trade URL without `steam_id` names the payer's account: keep it, not only the token.
            let (account, token) = deposits::normalize_token(user, token).map_err(|_| INVALID_TRADE_TOKEN)?;
            user = account;
            trade_token = Some(token);
        }
        let amount = |key| -> Result<Option<Decimal>, ApiError> {
            match opt_number_text(params, key, INVALID_AMOUNT)? {
                None => Ok(None),
                Some(t) => match t.parse::<Decimal>() {
                    Ok(d) if d.mantissa() > 0 => Ok(Some(d)),
                    _ => Err(INVALID_AMOUNT),
                },
            }
        };
        let (min, max) = (amount("min_amount")?, amount("max_amount")?);
        let currency = opt_text(params, "currency", INVALID_CURRENCY)?.map(|c| c.to_ascii_lowercase());
        if (min.is_some() || max.is_some()) && currency.is_none() {
            return Err(LIMITS_NEED_CURRENCY);
        }
        let mut urls = [None, None, None];
        for (slot, key) in urls.iter_mut().zip(["result_url", "success_url", "fail_url"]) {
            *slot = opt_text(params, key, INVALID_URL)?;
            if slot.as_deref().is_some_and(|u| !deposits::valid_url(u)) {
                return Err(INVALID_URL);
            }
        }
        let game = opt_text(params, "game", INVALID_GAME)?.map(|g| Game::parse(&g).ok_or(INVALID_GAME)).transpose()?;
        let multiplier_ppm = parse_multiplier(params, INVALID_MULTIPLIER)?;
        Ok(Self {
            order_id,
            steam_id: user.map(|u| u.to_string()),
            trade_token,
            currency,
            min,
            max,
            game,
            multiplier_ppm,
            urls,
        })
    }

    /// Creates the deposit once per `order_id`.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let state = ctx.state;
        // The gateway itself calls the result URL: it meets the dispatcher's address rules now, rather than
        // fail every attempt for days after a `success` answer.
        if let Some(url) = &self.urls[0]
            && state.config.address_policy().check_url(url).is_err()
        {
            return Err(INVALID_URL);
        }
        let rates = state.rates();
        let code = self.currency.clone().unwrap_or_else(|| "usd".to_owned());
        let currency = rates.get(&code).ok_or(INVALID_CURRENCY)?;
        // Converted so they never widen: the minimum rounds up, the maximum down.
        let limit = |d: &Option<Decimal>, minimum: bool| -> Result<Option<(Money, String)>, ApiError> {
            let usd = |d: &Decimal| currency.to_usd_bound(d, minimum).ok_or(INVALID_AMOUNT);
            d.as_ref().map(|d| usd(d).map(|usd| (usd, d.to_string()))).transpose()
        };
        let (min, max) = (limit(&self.min, true)?, limit(&self.max, false)?);
        if max.as_ref().is_some_and(|hi| !hi.0.is_positive()) {
            // A maximum under the ledger's smallest unit would let no deposit through.
            return Err(INVALID_AMOUNT);
        }
        if let (Some(lo), Some(hi)) = (&min, &max)
            && hi.0 < lo.0
        {
            return Err(INVALID_MAX);
        }
        let [result_url, success_url, fail_url] = self.urls;
        let req = CreateRequest {
            order_id: self.order_id.clone(),
            steam_id: self.steam_id,
            trade_token: self.trade_token,
            game: self.game,
            currency: code,
            min,
            max,
            multiplier_ppm: self.multiplier_ppm,
            result_url,
            success_url,
            fail_url,
        };
        // One scope with `create_from_user_inventory`: an `order_id` names one deposit, whichever method made it.
        let key = IdempotencyKey { project: ctx.project.id, scope: deposits::ORDER_SCOPE.into(), key: self.order_id };
        let hash = idempotency::fingerprint(method::CREATE, ctx.params);
        let (owned_state, project) = (state.clone(), ctx.project.clone());
        let outcome = idempotency::run(state, key, &hash, move |tx| {
            Box::pin(async move {
                // A deposit whose key predates the shared scope.
                if owned_state.store.deposit_by_order(project.id, &req.order_id).await?.is_some() {
                    return Err(ORDER_EXISTS);
                }
                let created = deposits::create_deposit(&owned_state, tx, &project, &req).await?;
                let body = CreateResponse { url: created.url, transaction_id: created.transaction_id };
                Ok(Reply::success(&body)?.body)
            })
        })
        .await?;
        match outcome {
            Outcome::Fresh(body) => Ok(Reply { body, replayed: false }),
            Outcome::Replayed(body) => Ok(Reply { body, replayed: true }),
            Outcome::Conflict => Err(ORDER_EXISTS),
        }
    }
}
