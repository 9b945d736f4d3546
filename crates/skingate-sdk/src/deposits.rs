//! Typed deposit methods (spec §3, §4): hosted deposits, deposits from a payer's inventory, their status,
//! early approval of held deposits, and undelivered Result-URL callbacks.
//!
//! Verify the Result-URL callbacks the gateway sends you with
//! [`Verifier::verify_callback_body`](crate::webhooks::Verifier::verify_callback_body) (the body as received,
//! form or JSON; the `sign` field only) and the
//! static `X-SIGN` header with [`Verifier::verify`](crate::webhooks::Verifier::verify) on a verifier set to
//! [`allow_static_only`](crate::webhooks::Verifier::allow_static_only) (a callback carries no stronger header).

use serde_json::{Map, Value, json};
use skingate_types::Decimal;
use skingate_types::api::Page;
use skingate_types::deposits::{
    CallbackError, CreateResponse, DepositObject, HoldCompleted, InventoryBody, OfferCreated, OfferCreatedResponse,
    method,
};

use crate::response::decode;
use crate::{Client, Error};

/// Parameters of `create` beyond the `order_id`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateDeposit {
    /// The payer's SteamID64, prefilled on the page.
    pub steam_id: Option<String>,
    /// The payer's trade token (or full trade URL).
    pub trade_token: Option<String>,
    /// The deposit's currency (required with limits).
    pub currency: Option<String>,
    /// Lower limit of the deposit's value, in `currency`.
    pub min_amount: Option<String>,
    /// Upper limit, in `currency`.
    pub max_amount: Option<String>,
    /// Result URL for this deposit.
    pub result_url: Option<String>,
    /// Where the payer lands after success.
    pub success_url: Option<String>,
    /// Where the payer lands after failure.
    pub fail_url: Option<String>,
    /// skingate: fix the game (`cs2`, `dota2`, `rust`).
    pub game: Option<String>,
    /// skingate: this deposit's multiplier (0.5–2) instead of the project's, so one project can credit users
    /// of different offers differently (`user_amount` = `amount` × it).
    pub custom_multiplier: Option<Decimal>,
}

/// Optional parameters of `user_inventory`, so the prices shown match what the deposit will credit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryOptions {
    /// A currency of the rates table for `price_local` (default USD).
    pub currency: Option<String>,
    /// The multiplier (0.5–2) for `multiplied_price_local` instead of the project's.
    pub custom_multiplier: Option<Decimal>,
    /// Your own currency instead of `currency`: prices are then in it.
    pub custom_currency: Option<CustomCurrency>,
}

/// A merchant-defined currency (site points, coins) for `user_inventory` prices; label and rate go together,
/// as the gateway refuses one without the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomCurrency {
    /// The label shown as `currency_local` (at most 4 characters).
    pub label: String,
    /// Units of it per USD (at least 0.1).
    pub rate: Decimal,
}

/// How a deposit is named in `orderstatus`, `offer_approve` and `test_complete_hold`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepositRef<'a> {
    /// The gateway's `transaction_id`.
    Transaction(i64),
    /// Your `order_id`.
    Order(&'a str),
}

impl DepositRef<'_> {
    fn params(&self) -> Map<String, Value> {
        let mut p = Map::new();
        match self {
            DepositRef::Transaction(id) => p.insert("transaction_id".into(), json!(id)),
            DepositRef::Order(id) => p.insert("order_id".into(), json!(id)),
        };
        p
    }
}

fn put(p: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        p.insert(key.into(), json!(v));
    }
}

/// Deposit methods.
impl Client {
    /// `create`: a hosted deposit; send the payer to the returned `url`. Repeating the same call with the
    /// same `order_id` returns the same deposit.
    pub async fn create_deposit(&self, order_id: &str, opts: &CreateDeposit) -> Result<CreateResponse, Error> {
        let mut p = Map::new();
        p.insert("order_id".into(), json!(order_id));
        put(&mut p, "steam_id", &opts.steam_id);
        put(&mut p, "trade_token", &opts.trade_token);
        put(&mut p, "currency", &opts.currency);
        put(&mut p, "min_amount", &opts.min_amount);
        put(&mut p, "max_amount", &opts.max_amount);
        put(&mut p, "result_url", &opts.result_url);
        put(&mut p, "success_url", &opts.success_url);
        put(&mut p, "fail_url", &opts.fail_url);
        put(&mut p, "game", &opts.game);
        if let Some(m) = &opts.custom_multiplier {
            p.insert("custom_multiplier".into(), json!(m.to_string()));
        }
        decode(self.call(method::CREATE, p).await?)
    }

    /// `orderstatus`: one deposit; its `status` is the deposit's status.
    pub async fn order_status(&self, deposit: DepositRef<'_>) -> Result<DepositObject, Error> {
        decode(self.call(method::ORDERSTATUS, deposit.params()).await?)
    }

    /// `orders`: deposits created between two Unix times (inclusive), paged by `start_from`.
    pub async fn orders(
        &self,
        starting: i64,
        ending: i64,
        start_from: Option<i64>,
    ) -> Result<Page<DepositObject>, Error> {
        let mut p = Map::new();
        p.insert("starting".into(), json!(starting));
        p.insert("ending".into(), json!(ending));
        if let Some(c) = start_from {
            p.insert("start_from".into(), json!(c));
        }
        decode(self.call(method::ORDERS, p).await?)
    }

    /// `user_inventory`: a payer's items in `game` with prices in `currency` (default USD).
    pub async fn user_inventory(
        &self,
        steam_id: &str,
        trade_token: &str,
        game: &str,
        currency: Option<&str>,
    ) -> Result<InventoryBody, Error> {
        let opts = InventoryOptions { currency: currency.map(str::to_owned), ..InventoryOptions::default() };
        self.user_inventory_with(steam_id, trade_token, game, &opts).await
    }

    /// `user_inventory` with every optional parameter (multiplier, your own currency), for a shop that
    /// shows the payer the amounts its own deposit settings will produce.
    pub async fn user_inventory_with(
        &self,
        steam_id: &str,
        trade_token: &str,
        game: &str,
        opts: &InventoryOptions,
    ) -> Result<InventoryBody, Error> {
        let mut p = Map::new();
        p.insert("steam_id".into(), json!(steam_id));
        p.insert("trade_token".into(), json!(trade_token));
        p.insert("game".into(), json!(game));
        put(&mut p, "currency", &opts.currency);
        if let Some(m) = &opts.custom_multiplier {
            p.insert("custom_multiplier".into(), json!(m.to_string()));
        }
        if let Some(c) = &opts.custom_currency {
            p.insert("custom_currency".into(), json!(c.label));
            p.insert("custom_currency_rate".into(), json!(c.rate.to_string()));
        }
        decode(self.call(method::USER_INVENTORY, p).await?)
    }

    /// `create_from_user_inventory`: a deposit of the chosen asset ids; a bot sends the offer at once.
    /// `extra` carries optional parameters (`currency`, `result_url`, `custom_multiplier`).
    pub async fn create_from_user_inventory(
        &self,
        order_id: &str,
        steam_id: &str,
        trade_token: &str,
        game: &str,
        asset_ids: &[String],
        extra: Map<String, Value>,
    ) -> Result<OfferCreated, Error> {
        let mut p = extra;
        p.insert("order_id".into(), json!(order_id));
        p.insert("steam_id".into(), json!(steam_id));
        p.insert("trade_token".into(), json!(trade_token));
        p.insert("game".into(), json!(game));
        p.insert("item_asset_ids".into(), json!(asset_ids));
        let answer: OfferCreatedResponse = decode(self.call(method::CREATE_FROM_USER_INVENTORY, p).await?)?;
        Ok(answer.data)
    }

    /// `offer_approve`: credit an `in_hold` deposit now (it becomes `hold_approved`); if the payer then
    /// reverses the trade, the amount is taken back.
    pub async fn offer_approve(&self, deposit: DepositRef<'_>) -> Result<(), Error> {
        self.call(method::OFFER_APPROVE, deposit.params()).await.map(drop)
    }

    /// `callback_error_list`: Result-URL callbacks whose last attempt failed, paged by `start_from`.
    pub async fn callback_error_list(&self, start_from: Option<i64>) -> Result<Page<CallbackError>, Error> {
        let mut p = Map::new();
        if let Some(c) = start_from {
            p.insert("start_from".into(), json!(c));
        }
        decode(self.call(method::CALLBACK_ERROR_LIST, p).await?)
    }

    /// skingate, test mode: end a held deposit's Trade Protection now (it reaches `success` shortly).
    pub async fn test_complete_hold(&self, deposit: DepositRef<'_>) -> Result<HoldCompleted, Error> {
        decode(self.call(method::TEST_COMPLETE_HOLD, deposit.params()).await?)
    }
}
