//! `create_from_user_inventory`: a deposit of items the merchant's own UI let the payer choose, without the
//! hosted page (spec §4.3). A bot sends the offer at once; the outcome arrives by Result-URL callback or
//! `orderstatus`.
//!
//! `order_id` is unique per project and shared with `create` (same parameters: the first answer again, even
//! while the first call is still sending its offer; different ones, or a deposit `create` made:
//! `7 order_id_already_exists`). The deposit is committed as *sending* before Steam is asked, the offer is
//! recorded afterwards, and a failed send takes the deposit back, so a refused call leaves no deposit behind
//! and a sent offer is never unknown (see [`CreateFromUserInventory::apply`]).
//!
//! # Format
//! Request: `order_id`, `steam_id`, `trade_token` (or a full trade URL), `item_asset_ids` (array of asset
//! ids from `user_inventory`, or an object keyed by index as PHP's `json_encode` makes of a non-sequential
//! array; excluded from `sign` like every array), optional `game` (`cs2` default),
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

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skingate_core::deposit::DepositStatus;
use skingate_steam::catalogue::Game;
use skingate_store::{Claim, IdempotencyKey};
use skingate_types::deposits::{OfferCreated, OfferCreatedResponse, method};

use super::create::parse_multiplier;
use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::deposits::{self, CreateRequest, DepositError, OnSendFailure, Pricing};
use crate::error::ApiError;
use crate::idempotency;

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
        let game = params.game(INVALID_GAME)?;
        // Any list shape the other list parameters take (a JSON array, an index-keyed object, `ids[0]=` in a
        // form), but every entry must be an id: one bad entry refuses the call rather than being skipped.
        let asset_ids: Vec<String> = params
            .list("item_asset_ids")
            .ok_or(INVALID_ASSET_IDS)?
            .into_iter()
            .map(|v| match v {
                Value::String(s) if s.trim_ascii().parse::<u64>().is_ok() => Ok(s.trim_ascii().to_owned()),
                Value::Number(n) if n.is_u64() => Ok(n.to_string()),
                _ => Err(INVALID_ASSET_IDS),
            })
            .collect::<Result<_, _>>()?;
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
    ///
    /// Three steps, so a live offer is never unknown to the gateway and the database's writer is never held
    /// during a Steam call: (1) claim the `order_id` and store the deposit marked as sending, commit;
    /// (2) send the offer outside any transaction; (3) record it with the answer to replay, commit. Steps 2–3
    /// run as a task that finishes even if the client disconnects; a retry meanwhile waits for its answer.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let (state, project) = (ctx.state, ctx.project);
        // As in `create`: the callback's address meets the dispatcher's rules before anything is stored.
        if let Some(url) = &self.result_url
            && state.config.address_policy().check_url(url).is_err()
        {
            return Err(INVALID_URL);
        }
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
        let key =
            IdempotencyKey { project: project.id, scope: deposits::ORDER_SCOPE.into(), key: self.order_id.clone() };
        let hash = idempotency::fingerprint(method::CREATE_FROM_USER_INVENTORY, ctx.params);
        // A repeat (or another request with this order_id) never touches Steam.
        if state.store.deposit_by_order(project.id, &self.order_id).await?.is_some() {
            return settle_existing(ctx, &key, &hash).await;
        }
        let fee = project.settings.deposit_fee_ppm;
        let sel =
            deposits::select_items(state, project, &self.trade_url, self.game, &self.asset_ids, (None, None), fee)
                .await
                .map_err(map_error)?;
        if !sel.value.is_positive() {
            return Err(BELOW_MINIMUM);
        }
        let mut tx = state.store.begin().await?;
        if tx.claim_idempotency_key(&key, &hash, state.now()).await? != Claim::New {
            drop(tx);
            return settle_existing(ctx, &key, &hash).await;
        }
        let created = deposits::create_deposit(state, tx.as_mut(), project, &req).await?;
        if !tx.begin_sending(created.transaction_id, &deposits::offer_target(&sel), state.now()).await? {
            return Err(ApiError::internal(anyhow::anyhow!("a new deposit cannot start sending")));
        }
        tx.commit().await?;
        let value = sel.value;
        let reply: deposits::ReplyFn = Box::new(move |offer| {
            let data = OfferCreated {
                transaction_id: offer.transaction_id,
                sum: value.to_wire(),
                local_sum: pricing.local(value),
                local_sum_multiplied: pricing.multiplied(value),
                local_currency: pricing.currency.code.clone(),
                trade_offer_id: offer.offer_id.clone(),
                trade_offer_expiry_at: deposits::iso_micros(offer.offer_expires_at),
                bot_steam_id: offer.bot_steam_id.clone(),
                bot_name: offer.bot_name.clone(),
            };
            let body = Reply::success(&OfferCreatedResponse { data }).map_err(|e| anyhow::anyhow!("{e:?}"))?.body;
            Ok(String::from_utf8(body)?)
        });
        let token = self.trade_url.token.clone();
        let failure = OnSendFailure::Abandon(key.clone());
        let owned = Arc::new(project.clone());
        let sent = deposits::spawn_send(state, owned, created.transaction_id, sel, token, failure, Some((key, reply)));
        let (_, body) = sent.await.map_err(|e| match e {
            DepositError::NotPending => TRADE_CREATE_ERROR,
            other => map_error(other),
        })?;
        let body = body.ok_or_else(|| ApiError::internal(anyhow::anyhow!("offer recorded without an answer")))?;
        Ok(Reply { body: body.into_bytes(), replayed: false })
    }
}

/// How long a repeat waits for the answer of the same request still sending its offer.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// The answer to a request whose `order_id` already names a deposit: the stored answer of the same request
/// (waiting for it while that request's offer is still being sent), `7 order_id_already_exists` for any
/// other request, `14 trade_create_error` when the first request's send was given up.
async fn settle_existing(ctx: &Ctx<'_>, key: &IdempotencyKey, hash: &str) -> Result<Reply, ApiError> {
    let state = ctx.state;
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    loop {
        match state.store.idempotency_record(key).await? {
            Some((stored, Some(body))) if stored == hash => {
                return Ok(Reply { body: body.into_bytes(), replayed: true });
            }
            Some((stored, None)) if stored == hash => {
                // The same request, its offer still being sent (or its send interrupted by a crash: the
                // watcher settles such a deposit after a grace period). A send begun before this process
                // started has no one left to finish it: no use waiting for its answer.
                let dep = state.store.deposit_by_order(ctx.project.id, &key.key).await?;
                let alive = dep.is_some_and(|d| d.status == DepositStatus::Pending && d.updated_at >= state.started_at);
                if !alive || tokio::time::Instant::now() >= deadline {
                    return Err(TRADE_CREATE_ERROR);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The first request failed and took its deposit back meanwhile: the merchant may retry.
            None if state.store.deposit_by_order(ctx.project.id, &key.key).await?.is_none() => {
                return Err(TRADE_CREATE_ERROR);
            }
            // A deposit made before the scope was shared: its key is under this method's own scope.
            None => {
                let legacy = IdempotencyKey { scope: method::CREATE_FROM_USER_INVENTORY.into(), ..key.clone() };
                return match state.store.idempotency_record(&legacy).await? {
                    Some((stored, Some(body))) if stored == hash => {
                        Ok(Reply { body: body.into_bytes(), replayed: true })
                    }
                    _ => Err(ORDER_EXISTS),
                };
            }
            _ => return Err(ORDER_EXISTS),
        }
    }
}
