//! `user_inventory`: a payer's Steam inventory in one game with prices (spec §4.4), for merchants that
//! build their own deposit UI and then call `create_from_user_inventory`.
//!
//! # Format
//! Request: `steam_id`, `trade_token` (or a full trade URL), optional `game` (`cs2` default, `dota2`,
//! `rust`; `csgo` means `cs2`), `currency` (a code of `currencies`, default `usd`), `custom_multiplier`
//! (0.5–2, default the project's), `custom_currency` (a label of at most 4 characters) with
//! `custom_currency_rate` (units per 1 USD, at least 0.1) to price in a currency the gateway does not know.
//! Response: `items[]` of `{item: {asset_id, tradable, app_id, class_id, icon_url, name, market_hash_name},
//! asset_id, name, market_hash_name, class_id, app_id, icon_url, context_id, price (USD), price_local,
//! multiplied_price_local, tradable, disabled, disabled_reason}` and `currency_local`; the same two fields are
//! repeated under `data`, because some clients read them there (spec §4.4, §12.9). The nested `item` is
//! where the vendor's doc and clients read the Steam fields; the flat copies stay for skingate's clients.
//! Items Steam does not let trade now (including CS2 items under Trade Protection, context 16) are listed
//! with `disabled: true`.
//!
//! Errors: `1 invalid_steam_id`, `2 invalid_trade_token`, `3 invalid_game`, `4 invalid_currency`,
//! `5 invalid_custom_multiplier`, `6 invalid_custom_currency`, `7 user_not_tradable`,
//! `8 steam_unavailable`.

use serde::Serialize;
use skingate_core::currency::{Currency, RATE_SCALE};
use skingate_steam::catalogue::{self, Game};
use skingate_types::Decimal;
use skingate_types::deposits::{InventoryAsset, InventoryBody, InventoryItem};

use super::create::parse_multiplier;
use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::deposits::{self, DepositError, PricedItem, Pricing};
use crate::error::ApiError;

const INVALID_STEAM_ID: ApiError = ApiError::method(1, "invalid_steam_id");
const INVALID_TRADE_TOKEN: ApiError = ApiError::method(2, "invalid_trade_token");
const INVALID_GAME: ApiError = ApiError::method(3, "invalid_game");
const INVALID_CURRENCY: ApiError = ApiError::method(4, "invalid_currency");
const INVALID_MULTIPLIER: ApiError = ApiError::method(5, "invalid_custom_multiplier");
const INVALID_CUSTOM_CURRENCY: ApiError = ApiError::method(6, "invalid_custom_currency");
const NOT_TRADABLE: ApiError = ApiError::method(7, "user_not_tradable");
const STEAM_UNAVAILABLE: ApiError = ApiError::method(8, "steam_unavailable");

/// A merchant-defined currency: label (≤ 4 characters) and rate (≥ 0.1 units per USD).
fn custom_currency(label: &str, rate: &str) -> Option<Currency> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 4 || !label.chars().all(char::is_alphanumeric) {
        return None;
    }
    let rate: Decimal = rate.parse().ok()?;
    let rate_micro = i64::try_from(rate.to_scale_exact(RATE_SCALE)?).ok().filter(|r| *r >= 100_000)?;
    Some(Currency { code: label.to_lowercase(), name: label.to_owned(), scale: 2, rate_micro })
}

/// A `user_inventory` call.
#[derive(Debug)]
pub struct UserInventory {
    steam_id: String,
    trade_token: String,
    game: Game,
    currency: Option<String>,
    custom: Option<(String, String)>,
    multiplier_ppm: Option<i64>,
}

impl UserInventory {
    /// Reads the parameters.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let steam_id = params.text("steam_id").map_err(|_| INVALID_STEAM_ID)?;
        let user = deposits::parse_steam_id(&steam_id).map_err(|_| INVALID_STEAM_ID)?;
        let trade_token = params.text("trade_token").map_err(|_| INVALID_TRADE_TOKEN)?;
        deposits::parse_trade_token(user, &trade_token).map_err(|_| INVALID_TRADE_TOKEN)?;
        let game = params.game(INVALID_GAME)?;
        let currency = match params.text("currency") {
            Ok(c) => Some(c.trim().to_ascii_lowercase()),
            Err(ParamError::Missing) => None,
            Err(ParamError::Invalid) => return Err(INVALID_CURRENCY),
        };
        let custom = match (params.text("custom_currency"), params.text("custom_currency_rate")) {
            (Err(ParamError::Missing), Err(ParamError::Missing)) => None,
            (Ok(label), Ok(rate)) => Some((label, rate)),
            _ => return Err(INVALID_CUSTOM_CURRENCY),
        };
        if let Some((label, rate)) = &custom
            && custom_currency(label, rate).is_none()
        {
            return Err(INVALID_CUSTOM_CURRENCY);
        }
        let multiplier_ppm = parse_multiplier(params, INVALID_MULTIPLIER)?;
        Ok(Self { steam_id, trade_token, game, currency, custom, multiplier_ppm })
    }

    /// Reads and prices the inventory.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let currency = match &self.custom {
            Some((label, rate)) => custom_currency(label, rate).ok_or(INVALID_CUSTOM_CURRENCY)?,
            None => ctx.state.rates().get(self.currency.as_deref().unwrap_or("usd")).ok_or(INVALID_CURRENCY)?.clone(),
        };
        let pricing =
            Pricing { currency, multiplier_ppm: self.multiplier_ppm.unwrap_or(ctx.project.settings.multiplier_ppm) };
        let items =
            deposits::priced_inventory(ctx.state, ctx.project, &self.steam_id, &self.trade_token, self.game, &pricing)
                .await
                .map_err(|e| match e {
                    DepositError::InvalidSteamId => INVALID_STEAM_ID,
                    DepositError::InvalidTradeToken => INVALID_TRADE_TOKEN,
                    DepositError::UserNotTradable => NOT_TRADABLE,
                    DepositError::SteamUnavailable => STEAM_UNAVAILABLE,
                    other => ApiError::internal(other),
                })?;
        let body =
            InventoryBody { items: items.into_iter().map(item).collect(), currency_local: pricing.currency.code };
        Reply::success(&WithData { inner: &body, data: &body })
    }
}

#[derive(Serialize)]
struct WithData<'a> {
    #[serde(flatten)]
    inner: &'a InventoryBody,
    data: &'a InventoryBody,
}

/// One entry: the Steam item nested as `item`, where the vendor's doc (`item.asset_id`, `item.tradable`) and
/// its clients (`entry.item.asset_id`, `item.class_id`/`app_id`/`icon_url`) read it, and the same fields flat,
/// where skingate's earlier clients read them. No icon data exists in the simulator's sources, so `icon_url`
/// is the stable by-class path of [`catalogue::icon_url`].
fn item(p: PricedItem) -> InventoryItem {
    let icon_url = catalogue::icon_url(p.app_id, &p.classid);
    InventoryItem {
        item: InventoryAsset {
            asset_id: p.asset_id.clone(),
            tradable: p.tradable,
            app_id: i64::from(p.app_id),
            class_id: p.classid.clone(),
            icon_url: icon_url.clone(),
            name: p.market_hash_name.clone(),
            market_hash_name: p.market_hash_name.clone(),
        },
        asset_id: p.asset_id,
        name: p.market_hash_name.clone(),
        market_hash_name: p.market_hash_name,
        class_id: p.classid,
        app_id: i64::from(p.app_id),
        icon_url,
        context_id: i64::from(p.context_id),
        price: p.price.to_wire(),
        price_local: p.price_local,
        multiplied_price_local: p.multiplied_price_local,
        tradable: p.tradable,
        disabled: p.disabled,
        disabled_reason: p.disabled_reason.map(str::to_owned),
    }
}
