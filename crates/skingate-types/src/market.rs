//! Wire types of the market methods (spec §5) and their events (§7.2), shared by the server and the SDK.
//!
//! Ids and money are strings on the way out, as in the vendor's examples (`"id":"2715"`, `"price":"77.02"`),
//! and accepted as numbers or strings on the way in.

use serde::{Deserialize, Deserializer, Serialize};

use crate::Decimal;

/// Method names.
pub mod method {
    /// `market_pricelist`
    pub const PRICELIST: &str = "market_pricelist";
    /// `market_search`
    pub const SEARCH: &str = "market_search";
    /// `market_buy`
    pub const BUY: &str = "market_buy";
    /// `market_batch_buy`
    pub const BATCH_BUY: &str = "market_batch_buy";
    /// `market_getinfo`
    pub const GETINFO: &str = "market_getinfo";
    /// `market_history`
    pub const HISTORY: &str = "market_history";
}

fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        S(String),
        I(i64),
        U(u64),
    }
    Ok(Option::<Any>::deserialize(d)?.map(|a| match a {
        Any::S(s) => s,
        Any::I(i) => i.to_string(),
        Any::U(u) => u.to_string(),
    }))
}

/// A stock unit or a purchased item: `{id, name, price, classid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketItem {
    /// The unit's id (use it with `market_buy`).
    #[serde(deserialize_with = "crate::lenient::string")]
    pub id: String,
    /// `market_hash_name`.
    pub name: String,
    /// Price in USD.
    pub price: Decimal,
    /// Steam classid.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub classid: String,
}

/// A row of the grouped price list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceGroup {
    /// `market_hash_name`.
    pub name: String,
    /// Price in USD.
    pub price: Decimal,
    /// Steam classid.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub classid: String,
    /// Units for sale at this price.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub count: i64,
}

/// `market_pricelist` answer; `T` is [`PriceGroup`] (grouped) or [`MarketItem`] (`full=1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricelistResponse<T> {
    /// When the list was made, Unix seconds.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub last_update: i64,
    /// The rows.
    pub items: Vec<T>,
}

/// `market_search` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// Units for sale, cheapest first per name.
    pub items: Vec<MarketItem>,
}

/// A purchase: the answer of `market_buy`, the records of `market_getinfo` and `market_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// The item bought.
    pub item: MarketItem,
    /// The purchase id (for `market_getinfo`).
    #[serde(deserialize_with = "crate::lenient::string")]
    pub buy_id: String,
    /// Where the trade stands (spec §5.1).
    pub offer_status: String,
    /// SteamID64 of the recipient.
    #[serde(default, deserialize_with = "opt_string")]
    pub steamid: Option<String>,
    /// When it was bought, Unix seconds.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub date: Option<i64>,
    /// Amount charged, USD.
    pub balance_debited_sum: Decimal,
    /// Steam's trade offer id once sent.
    #[serde(default, deserialize_with = "opt_string")]
    pub tradeofferid: Option<String>,
    /// The merchant's id, if given.
    #[serde(default, deserialize_with = "opt_string")]
    pub custom_id: Option<String>,
    /// Why it failed, for failure statuses.
    #[serde(default)]
    pub error_reason: Option<String>,
}

/// One item of `market_batch_buy`'s `unavailable[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    /// The unit id asked for.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub id: String,
    /// The merchant's id of that item, if given.
    #[serde(default, deserialize_with = "opt_string")]
    pub custom_id: Option<String>,
    /// The `market_buy` error code it would have got.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub error_code: i64,
    /// The reason (`insufficient_funds`, `skin_unavailable`, …).
    pub reason: String,
}

/// `market_batch_buy` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchBuyResponse {
    /// Items bought, as `market_buy` answers.
    pub purchased: Vec<Purchase>,
    /// Items not bought, with the reason.
    pub unavailable: Vec<Unavailable>,
}

/// `market_getinfo` with `buy_ids` or `custom_ids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchasesResponse {
    /// One record per purchase found.
    pub items: Vec<Purchase>,
}
