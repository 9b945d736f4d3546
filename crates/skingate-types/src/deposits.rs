//! Deposit method names and response bodies (spec §3, §4), shared by the server and the SDK.
//!
//! Deserialization is lenient like the rest of [`crate::api`]: ids and money as numbers or strings, unknown
//! fields ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Decimal;

/// Deposit method names, as sent in the `method` parameter.
pub mod method {
    /// Create a hosted deposit: returns the payment page URL.
    pub const CREATE: &str = "create";
    /// One deposit by `transaction_id` or `order_id`.
    pub const ORDERSTATUS: &str = "orderstatus";
    /// Deposits created in a time range.
    pub const ORDERS: &str = "orders";
    /// A payer's inventory with prices.
    pub const USER_INVENTORY: &str = "user_inventory";
    /// A deposit of chosen items without the hosted page.
    pub const CREATE_FROM_USER_INVENTORY: &str = "create_from_user_inventory";
    /// Release an `in_hold` deposit before Trade Protection ends.
    pub const OFFER_APPROVE: &str = "offer_approve";
    /// Result-URL callbacks whose last attempt failed.
    pub const CALLBACK_ERROR_LIST: &str = "callback_error_list";
    /// skingate, test mode only: end a deposit's hold now.
    pub const TEST_COMPLETE_HOLD: &str = "test_complete_hold";
}

/// `create`: where to send the payer.
///
/// On the wire the id is sent twice, as `transaction_id` (the vendor's clients) and `transactions_id` (an
/// integrator reads that spelling, spec §4.1, §12.10), same value, same type. Reading accepts either or both:
/// a serde `alias` would refuse a body carrying both as a duplicate field, hence the private `CreateWire`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CreateWire", try_from = "CreateWire")]
pub struct CreateResponse {
    /// The hosted payment page.
    pub url: String,
    /// The deposit's id.
    pub transaction_id: i64,
}

/// [`CreateResponse`] as sent and read.
#[derive(Serialize, Deserialize)]
struct CreateWire {
    url: String,
    #[serde(default, deserialize_with = "crate::lenient::opt_i64", skip_serializing_if = "Option::is_none")]
    transaction_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::lenient::opt_i64", skip_serializing_if = "Option::is_none")]
    transactions_id: Option<i64>,
}

impl From<CreateResponse> for CreateWire {
    fn from(r: CreateResponse) -> Self {
        Self { url: r.url, transaction_id: Some(r.transaction_id), transactions_id: Some(r.transaction_id) }
    }
}

impl TryFrom<CreateWire> for CreateResponse {
    type Error = &'static str;

    fn try_from(w: CreateWire) -> Result<Self, Self::Error> {
        let transaction_id = w.transaction_id.or(w.transactions_id).ok_or("missing field `transaction_id`")?;
        Ok(Self { url: w.url, transaction_id })
    }
}

/// One received item of a deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skin {
    /// Market name.
    pub name: String,
    /// Steam asset id.
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub asset_id: String,
    /// Steam class id.
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub classid: String,
    /// Reference price in the deposit currency.
    pub price: Decimal,
    /// With the multiplier, in the deposit currency.
    #[serde(default)]
    pub user_price: Option<Decimal>,
    /// Reference price in USD.
    #[serde(default)]
    pub price_usd: Option<Decimal>,
}

/// The deposit object (spec §3.2): `orderstatus`, `orders` items, and the Result-URL callback body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositObject {
    /// `pending`, `success`, `fail`, `in_hold`, `hold_approved`, `hold_returned` (open set).
    pub status: String,
    /// The deposit's id.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub transaction_id: i64,
    /// The merchant's id.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub order_id: String,
    /// The payer's SteamID64 (empty until known).
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub steam_id: String,
    /// Creation time, Unix seconds.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub date: i64,
    /// skingate: the game.
    #[serde(default)]
    pub game: Option<String>,
    /// skingate: Steam's trade offer id.
    #[serde(default)]
    pub trade_offer_id: Option<String>,
    /// When the offer was sent.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub offer_date: Option<i64>,
    /// When the payer accepted.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub skins_send_date: Option<i64>,
    /// Credited amount in `amount_currency` (paid or held only).
    #[serde(default)]
    pub amount: Option<Decimal>,
    /// The deposit's currency.
    #[serde(default)]
    pub amount_currency: Option<String>,
    /// `amount` in every currency.
    #[serde(default)]
    pub amount_in_currencies: BTreeMap<String, Decimal>,
    /// `amount × multiplier`.
    #[serde(default)]
    pub user_amount: Option<Decimal>,
    /// `user_amount` in every currency.
    #[serde(default)]
    pub user_amount_in_currencies: BTreeMap<String, Decimal>,
    /// skingate: `amount` in USD.
    #[serde(default)]
    pub amount_usd: Option<Decimal>,
    /// The items received.
    #[serde(default)]
    pub skins: Vec<Skin>,
    /// skingate: end of Trade Protection while held, Unix seconds.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub hold_until: Option<i64>,
    /// skingate: why it failed (`declined`, `expired`, `reversed`, …).
    #[serde(default)]
    pub fail_reason: Option<String>,
    /// The payer's history (the `in_hold` callback).
    #[serde(default)]
    pub user_risk: Option<serde_json::Value>,
}

/// The Steam item of a `user_inventory` entry, nested as `item`.
///
/// The vendor's doc names the fields `item.asset_id` and `item.tradable`, and its clients read
/// `entry.item.asset_id` and `item.class_id`/`app_id`/`icon_url` (spec §4.4, §12.9), so they sit here as well
/// as flat on [`InventoryItem`], where skingate's first clients read them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryAsset {
    /// Pass to `create_from_user_inventory`.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub asset_id: String,
    /// Steam lets it be traded now.
    #[serde(deserialize_with = "crate::lenient::bool")]
    pub tradable: bool,
    /// Steam app id.
    #[serde(default, deserialize_with = "crate::lenient::i64")]
    pub app_id: i64,
    /// Steam class id.
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub class_id: String,
    /// The image: a path under Steam's economy image base, as Steam's own `icon_url` is (docs/DEPOSITS.md
    /// says what skingate puts here).
    #[serde(default)]
    pub icon_url: String,
    /// Market name.
    #[serde(default)]
    pub name: String,
    /// Market name (Steam's key).
    #[serde(default)]
    pub market_hash_name: String,
}

/// One item of `user_inventory`: the flat fields, and the same Steam item nested as `item`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryItem {
    /// The Steam item, where the vendor's doc and clients read it (`item.asset_id`). Defaults to empty
    /// when a server does not send it (skingate before this field).
    #[serde(default)]
    pub item: InventoryAsset,
    /// Pass to `create_from_user_inventory`.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub asset_id: String,
    /// Market name.
    pub name: String,
    /// Market name (Steam's key).
    #[serde(default)]
    pub market_hash_name: String,
    /// Steam class id.
    #[serde(default, deserialize_with = "crate::lenient::string")]
    pub class_id: String,
    /// Steam app id.
    #[serde(default, deserialize_with = "crate::lenient::i64")]
    pub app_id: i64,
    /// The same as `item.icon_url`, flat beside the other flat fields.
    #[serde(default)]
    pub icon_url: String,
    /// Inventory context (16: CS2 Trade Protection).
    #[serde(default, deserialize_with = "crate::lenient::i64")]
    pub context_id: i64,
    /// Reference price, USD.
    pub price: Decimal,
    /// In `currency_local`.
    pub price_local: Decimal,
    /// With the multiplier, in `currency_local`.
    pub multiplied_price_local: Decimal,
    /// Steam lets it be traded now.
    #[serde(deserialize_with = "crate::lenient::bool")]
    pub tradable: bool,
    /// The gateway does not accept it.
    #[serde(deserialize_with = "crate::lenient::bool")]
    pub disabled: bool,
    /// skingate: why it is disabled (`not_tradable`, `trade_protected`, `no_price`).
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

/// The body of `user_inventory` (also repeated under `data`, which some clients read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryBody {
    /// The items.
    pub items: Vec<InventoryItem>,
    /// The currency of `price_local`.
    pub currency_local: String,
}

/// `create_from_user_inventory`'s `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferCreated {
    /// The deposit's id.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub transaction_id: i64,
    /// Value of the items now (net of fee), USD.
    pub sum: Decimal,
    /// In `local_currency`.
    pub local_sum: Decimal,
    /// `local_sum × multiplier`.
    pub local_sum_multiplied: Decimal,
    /// The deposit's currency.
    pub local_currency: String,
    /// Steam's offer id.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub trade_offer_id: String,
    /// When the offer expires, ISO-8601 with microseconds.
    pub trade_offer_expiry_at: String,
    /// The bot's SteamID64.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub bot_steam_id: String,
    /// The bot's name.
    pub bot_name: String,
}

/// `create_from_user_inventory`'s answer: everything under `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferCreatedResponse {
    /// The created deposit and its offer.
    pub data: OfferCreated,
}

/// One row of `callback_error_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackError {
    /// The deposit.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub transaction_id: i64,
    /// The merchant's id.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub order_id: String,
    /// HTTP status the Result URL answered last (`"0"` when it did not answer).
    #[serde(deserialize_with = "crate::lenient::string")]
    pub http_code: String,
}

/// `test_complete_hold`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldCompleted {
    /// The deposit whose hold now ends.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub transaction_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_response_sends_both_spellings_and_reads_either() {
        let r = CreateResponse { url: "https://g/pay/x".into(), transaction_id: 17 };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v, serde_json::json!({"url": "https://g/pay/x", "transaction_id": 17, "transactions_id": 17}));
        assert_eq!(serde_json::from_value::<CreateResponse>(v).unwrap(), r, "both at once is no duplicate");
        for body in [
            serde_json::json!({"url": "https://g/pay/x", "transaction_id": "17"}),
            serde_json::json!({"url": "https://g/pay/x", "transactions_id": 17}),
        ] {
            assert_eq!(serde_json::from_value::<CreateResponse>(body).unwrap(), r);
        }
        assert!(serde_json::from_value::<CreateResponse>(serde_json::json!({"url": "u"})).is_err());
    }
}
