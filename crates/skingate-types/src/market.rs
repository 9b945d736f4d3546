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

/// Steam's default instance id: an item with no per-copy properties has instance `0`.
pub const DEFAULT_INSTANCE_ID: &str = "0";

fn default_instance_id() -> String {
    DEFAULT_INSTANCE_ID.to_owned()
}

/// The item of a purchase: `{id, name, price, classid, instanceid}`.
///
/// A stock unit's fields plus Steam's `instanceid`, which merchant SDKs type on purchases and on the
/// `buy_item` event (spec §5.4, §7.2), as a string like the other ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseItem {
    /// The unit's id.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub id: String,
    /// `market_hash_name`.
    pub name: String,
    /// Price in USD.
    pub price: Decimal,
    /// Steam classid.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub classid: String,
    /// Steam instance id. skingate's stock holds no per-copy properties, so it is always
    /// [`DEFAULT_INSTANCE_ID`]; read as that when a server leaves it out (skingate before this field).
    #[serde(default = "default_instance_id", deserialize_with = "crate::lenient::string")]
    pub instanceid: String,
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
    pub item: PurchaseItem,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purchase_item_without_instanceid_reads_as_the_default_instance() {
        let old = serde_json::json!({"id": 17, "name": "Tempered AK47", "price": "89.25", "classid": 4012345678u64});
        let item: PurchaseItem = serde_json::from_value(old).unwrap();
        assert_eq!((item.id.as_str(), item.instanceid.as_str()), ("17", DEFAULT_INSTANCE_ID));
        let numeric =
            serde_json::json!({"id": "1", "name": "n", "price": "1", "classid": "2", "instanceid": 188530139});
        assert_eq!(serde_json::from_value::<PurchaseItem>(numeric).unwrap().instanceid, "188530139");
    }
}
