//! The market methods (spec §5): price list, search, buy, batch buy, purchase status and history.

use serde_json::{Map, Value, json};
use skingate_types::Decimal;
use skingate_types::api::Page;
use skingate_types::market::{
    BatchBuyResponse, MarketItem, PriceGroup, PricelistResponse, Purchase, PurchasesResponse, SearchResponse, method,
};

use crate::{Client, Error};

/// What `market_buy` buys: a unit by id, or the cheapest unit of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyTarget {
    /// A unit id from the price list or search.
    Id(i64),
    /// The cheapest unit of this `market_hash_name` in this game (`cs2`, `dota2`, `rust`).
    Name {
        /// Game code.
        game: String,
        /// `market_hash_name`.
        name: String,
    },
}

/// A `market_buy` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyOrder {
    /// What to buy.
    pub target: BuyTarget,
    /// `partner` of the recipient's trade URL.
    pub partner: String,
    /// `token` of the recipient's trade URL.
    pub token: String,
    /// The most to pay, USD.
    pub max_price: Option<Decimal>,
    /// Your id: repeating an order with it cannot buy twice.
    pub custom_id: Option<String>,
    /// Sent as the `Idempotency-Key` header: for an order without `custom_id`, skingate keys the purchase on
    /// it, so retrying after a timeout with the same key buys once and replays the first answer. (With a
    /// `custom_id`, that id is the key.)
    pub idempotency_key: Option<String>,
}

/// One item of `market_batch_buy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// The unit id.
    pub id: i64,
    /// The most to pay for it, USD.
    pub max_price: Option<Decimal>,
    /// Your id for it.
    pub custom_id: Option<String>,
}

fn game_param(params: &mut Map<String, Value>, game: Option<&str>) {
    if let Some(game) = game {
        params.insert("game".into(), json!(game));
    }
}

impl Client {
    /// `market_pricelist`, grouped: one row per name and price with the count for sale.
    pub async fn market_pricelist(&self, game: Option<&str>) -> Result<PricelistResponse<PriceGroup>, Error> {
        let mut params = Map::new();
        game_param(&mut params, game);
        self.typed(method::PRICELIST, params).await
    }

    /// `market_pricelist` with `full=1`: one row per unit, with the `id` to buy it by (`extended=1` adds
    /// fields, ignored by this type; use [`Client::call`] to read them).
    pub async fn market_pricelist_full(
        &self,
        game: Option<&str>,
        extended: bool,
    ) -> Result<PricelistResponse<MarketItem>, Error> {
        let mut params = Map::new();
        game_param(&mut params, game);
        params.insert("full".into(), json!(1));
        if extended {
            params.insert("extended".into(), json!(1));
        }
        self.typed(method::PRICELIST, params).await
    }

    /// `market_search`: units for sale with these exact names.
    pub async fn market_search(&self, game: Option<&str>, names: &[&str]) -> Result<SearchResponse, Error> {
        let mut params = Map::new();
        game_param(&mut params, game);
        match names {
            [one] => params.insert("name".into(), json!(one)),
            many => params.insert("names".into(), json!(many)),
        };
        self.typed(method::SEARCH, params).await
    }

    /// `market_buy`: buys one unit and has it traded to the recipient; the answer's `offer_status` is
    /// `creating_trade` (follow it with [`Client::market_getinfo`]).
    pub async fn market_buy(&self, order: &BuyOrder) -> Result<Purchase, Error> {
        let mut params = Map::new();
        match &order.target {
            BuyTarget::Id(id) => params.insert("id".into(), json!(id)),
            BuyTarget::Name { game, name } => {
                params.insert("game".into(), json!(game));
                params.insert("name".into(), json!(name))
            }
        };
        params.insert("partner".into(), json!(order.partner));
        params.insert("token".into(), json!(order.token));
        if let Some(max) = &order.max_price {
            params.insert("max_price".into(), json!(max.to_string()));
        }
        if let Some(id) = &order.custom_id {
            params.insert("custom_id".into(), json!(id));
        }
        self.typed_keyed(method::BUY, params, order.idempotency_key.as_deref()).await
    }

    /// `market_batch_buy`: each item bought or refused on its own. Items without a `custom_id` are not
    /// keyed: use [`Client::market_batch_buy_idempotent`] when the call may be retried.
    pub async fn market_batch_buy(
        &self,
        partner: &str,
        token: &str,
        items: &[BatchItem],
    ) -> Result<BatchBuyResponse, Error> {
        self.market_batch_buy_idempotent(partner, token, items, None).await
    }

    /// `market_batch_buy` with an `Idempotency-Key` header: skingate keys each item without a `custom_id` on
    /// the key and the item's position, so retrying the same batch with the same key buys each item once.
    pub async fn market_batch_buy_idempotent(
        &self,
        partner: &str,
        token: &str,
        items: &[BatchItem],
        idempotency_key: Option<&str>,
    ) -> Result<BatchBuyResponse, Error> {
        let items: Vec<Value> = items
            .iter()
            .map(|i| {
                let mut item = Map::new();
                item.insert("id".into(), json!(i.id));
                if let Some(max) = &i.max_price {
                    item.insert("max_price".into(), json!(max.to_string()));
                }
                if let Some(id) = &i.custom_id {
                    item.insert("custom_id".into(), json!(id));
                }
                Value::Object(item)
            })
            .collect();
        let mut params = Map::new();
        params.insert("partner".into(), json!(partner));
        params.insert("token".into(), json!(token));
        params.insert("items".into(), Value::Array(items));
        self.typed_keyed(method::BATCH_BUY, params, idempotency_key).await
    }

    /// `market_getinfo` for one purchase.
    pub async fn market_getinfo(&self, buy_id: &str) -> Result<Purchase, Error> {
        let mut params = Map::new();
        params.insert("buy_id".into(), json!(buy_id));
        self.typed(method::GETINFO, params).await
    }

    /// `market_getinfo` for several purchases by buy id (at most 1 000 a call: more is error `3 too_many_ids`;
    /// ids that match nothing are left out of the answer).
    pub async fn market_getinfo_many(&self, buy_ids: &[&str]) -> Result<PurchasesResponse, Error> {
        let mut params = Map::new();
        params.insert("buy_ids".into(), json!(buy_ids));
        self.typed(method::GETINFO, params).await
    }

    /// `market_getinfo` for several purchases by your `custom_id`s (at most 1 000 a call, as
    /// [`Client::market_getinfo_many`]).
    pub async fn market_getinfo_by_custom_ids(&self, custom_ids: &[&str]) -> Result<PurchasesResponse, Error> {
        let mut params = Map::new();
        params.insert("custom_ids".into(), json!(custom_ids));
        self.typed(method::GETINFO, params).await
    }

    /// `market_history`: purchases made between two Unix times (inclusive), paged by `start_from`.
    pub async fn market_history(
        &self,
        starting: i64,
        ending: i64,
        start_from: Option<i64>,
    ) -> Result<Page<Purchase>, Error> {
        let mut params = Map::new();
        params.insert("starting".into(), json!(starting));
        params.insert("ending".into(), json!(ending));
        if let Some(cursor) = start_from {
            params.insert("start_from".into(), json!(cursor));
        }
        self.typed(method::HISTORY, params).await
    }
}
