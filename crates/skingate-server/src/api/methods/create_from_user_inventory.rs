//! `create_from_user_inventory`: a deposit of items the merchant's own UI let the payer choose, without the
//! hosted page (spec §4.3). A bot sends the offer at once; the outcome arrives by Result-URL callback or
//! `orderstatus`.
//!
//! `order_id` is unique per project, as for `create` (same parameters: the first answer again; different
//! ones: `7 order_id_already_exists`). Choosing the items, sending the offer and recording it happen in
//! the transaction that claims the `order_id`, so a refused call leaves no deposit behind.
//!
//! # Format
//! Request: `order_id`, `steam_id`, `trade_token` (or a full trade URL), `item_asset_ids` (array of asset
//! ids from `user_inventory`; excluded from `sign` like every array), optional `game` (`cs2` default),
//! `currency` (the deposit's currency, default `usd`), `result_url`, and `custom_multiplier` (0.5–2).
//! Response: `{"data": {transaction_id, sum (USD, net of fee), local_sum, local_sum_multiplied,
//! local_currency, trade_offer_id, trade_offer_expiry_at, bot_steam_id, bot_name}}`.
//!
//! Errors: `1 invalid_order_id`, `2 invalid_steam_id`, `3 invalid_trade_token`, `4 invalid_game`,
//! `5 invalid_item_asset_ids` (missing, empty or not a list of ids), `6 items_not_available` (not in the
//! payer's inventory, not tradable, or repeated), `7 order_id_already_exists`,
//! `8 deposit_amount_less_minimum` (the items are worth nothing after the fee), `10 invalid_currency`,
//! `11 invalid_url`, `12 invalid_custom_multiplier`, `13 user_not_tradable`, `14 trade_create_error`
//! (Steam could not create the offer; try again).

use serde_json::Value;
use skingate_steam::catalogue::Game;
use skingate_store::IdempotencyKey;
use skingate_types::deposits::{OfferCreated, OfferCreatedResponse, method};

use super::create::parse_multiplier;
use super::user_inventory::parse_game;
use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::deposits::{self, CreateRequest, DepositError, Pricing};
use crate::error::ApiError;
use crate::idempotency::{self, Outcome};

const INVALID_ORDER_ID: ApiError = ApiError::method(1, "invalid_order_id");
const INVALID_STEAM_ID: ApiError = ApiError::method(2, "invalid_steam_id");
const INVALID_TRADE_TOKEN: ApiError = ApiError::method(3, "invalid_trade_token");
const INVALID_GAME: ApiError = ApiError::method(4, "invalid_game");
const INVALID_ASSET_IDS: ApiError = ApiError::method(5, "invalid_item_asset_ids");
const ITEMS_NOT_AVAILABLE: ApiError = ApiError::method(6, "items_not_available");
const ORDER_EXISTS: ApiError = ApiError::method(7, "order_id_already_exists");
const BELOW_MINIMUM: ApiError = ApiError::method(8, "deposit_amount_less_minimum");
const INVALID_CURRENCY: ApiError = ApiError::method(10, "invalid_currency");
const INVALID_URL: ApiError = ApiError::method(11, "invalid_url");
const INVALID_MULTIPLIER: ApiError = ApiError::method(12, "invalid_custom_multiplier");
const NOT_TRADABLE: ApiError = ApiError::method(13, "user_not_tradable");
const TRADE_CREATE_ERROR: ApiError = ApiError::method(14, "trade_create_error");

fn map_error(e: DepositError) -> ApiError {
    match e {
        DepositError::InvalidSteamId => INVALID_STEAM_ID,
        DepositError::InvalidTradeToken => INVALID_TRADE_TOKEN,
        DepositError::ItemsNotAvailable => ITEMS_NOT_AVAILABLE,
        DepositError::NoItems => INVALID_ASSET_IDS,
        DepositError::BelowMinimum | DepositError::AboveMaximum => BELOW_MINIMUM,
        DepositError::UserNotTradable => NOT_TRADABLE,
        DepositError::SteamUnavailable => TRADE_CREATE_ERROR,
        other => ApiError::internal(other),
    }
}

/// A `create_from_user_inventory` call.
#[derive(Debug)]
pub struct CreateFromUserInventory {
    order_id: String,
    trade_url: skingate_steam::TradeUrl,
    game: Game,
    asset_ids: Vec<String>,
    currency: String,
    result_url: Option<String>,
    multiplier_ppm: Option<i64>,
}

impl CreateFromUserInventory {
    /// Checks every parameter's shape.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let order_id = params.text("order_id").map_err(|_| INVALID_ORDER_ID)?;
        if !deposits::valid_order_id(&order_id) {
            return Err(INVALID_ORDER_ID);
        }
        let steam_id = params.text("steam_id").map_err(|_| INVALID_STEAM_ID)?;
        let user = deposits::parse_steam_id(&steam_id).map_err(|_| INVALID_STEAM_ID)?;
        let token = params.text("trade_token").map_err(|_| INVALID_TRADE_TOKEN)?;
        let trade_url = deposits::parse_trade_token(user, &token).map_err(|_| INVALID_TRADE_TOKEN)?;
        let game = parse_game(params, INVALID_GAME)?;
        let asset_ids: Vec<String> = match params.get("item_asset_ids") {
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|v| match v {
                    Value::String(s) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().to_owned()),
                    Value::Number(n) if n.is_u64() => Ok(n.to_string()),
                    _ => Err(INVALID_ASSET_IDS),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(INVALID_ASSET_IDS),
        };
        if asset_ids.is_empty() || asset_ids.len() > 200 {
            return Err(INVALID_ASSET_IDS);
        }
        let currency = match params.text("currency") {
            Ok(c) => c.trim().to_ascii_lowercase(),
            Err(ParamError::Missing) => "usd".to_owned(),
            Err(ParamError::Invalid) => return Err(INVALID_CURRENCY),
        };
        let result_url = match params.text("result_url") {
            Ok(u) if deposits::valid_url(u.trim()) => Some(u.trim().to_owned()),
            Err(ParamError::Missing) => None,
            _ => return Err(INVALID_URL),
        };
        let multiplier_ppm = parse_multiplier(params, INVALID_MULTIPLIER)?;
        Ok(Self { order_id, trade_url, game, asset_ids, currency, result_url, multiplier_ppm })
    }

    /// Creates the deposit and sends its offer, once per `order_id`.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let (state, project) = (ctx.state, ctx.project);
        let currency = state.rates().get(&self.currency).ok_or(INVALID_CURRENCY)?.clone();
        let req = CreateRequest {
            order_id: self.order_id.clone(),
            steam_id: Some(self.trade_url.steam_id.to_string()),
            trade_token: Some(self.trade_url.token.clone()),
            game: Some(self.game),
            currency: self.currency.clone(),
            min: None,
            max: None,
            multiplier_ppm: self.multiplier_ppm,
            result_url: self.result_url.clone(),
            success_url: None,
            fail_url: None,
        };
        let pricing =
            Pricing { currency, multiplier_ppm: self.multiplier_ppm.unwrap_or(project.settings.multiplier_ppm) };
        let key = IdempotencyKey {
            project: project.id,
            scope: method::CREATE_FROM_USER_INVENTORY.into(),
            key: self.order_id.clone(),
        };
        let hash = idempotency::fingerprint(method::CREATE_FROM_USER_INVENTORY, ctx.params);
        let (trade_url, game, asset_ids) = (self.trade_url, self.game, self.asset_ids);
        let (owned_state, owned_project) = (state.clone(), project.clone());
        let outcome = idempotency::run(state, key, &hash, move |tx| {
            Box::pin(async move {
                let (state, project) = (&owned_state, &owned_project);
                let sel = deposits::select_items(state, project, &trade_url, game, &asset_ids, (None, None))
                    .await
                    .map_err(map_error)?;
                if !sel.value.is_positive() {
                    return Err(BELOW_MINIMUM);
                }
                let created = deposits::create_deposit(state, tx, project, &req).await?;
                let offer = deposits::send_offer(state, project, created.transaction_id, &sel, &trade_url.token)
                    .await
                    .map_err(map_error)?;
                deposits::record_offer(tx, &sel, &offer, state.now()).await?;
                let data = OfferCreated {
                    transaction_id: created.transaction_id,
                    sum: sel.value.to_wire(),
                    local_sum: pricing.local(sel.value),
                    local_sum_multiplied: pricing.multiplied(sel.value),
                    local_currency: pricing.currency.code.clone(),
                    trade_offer_id: offer.offer_id,
                    trade_offer_expiry_at: deposits::iso_micros(offer.offer_expires_at),
                    bot_steam_id: offer.bot_steam_id,
                    bot_name: offer.bot_name,
                };
                Ok(Reply::success(&OfferCreatedResponse { data })?.body)
            })
        })
        .await?;
        state.deposits_wake.notify_one();
        match outcome {
            Outcome::Fresh(body) => Ok(Reply { body, replayed: false }),
            Outcome::Replayed(body) => Ok(Reply { body, replayed: true }),
            Outcome::Conflict => Err(ORDER_EXISTS),
        }
    }
}
