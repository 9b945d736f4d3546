//! Response bodies of the API methods, without the `status` field the envelope adds.
//!
//! The server serializes these and the SDK deserializes them, so the two cannot disagree. Deserialization
//! is lenient (ids and money as numbers or strings) because the SDK must also talk to the vendor's own
//! service, whose examples and clients disagree on types; unknown fields are ignored for the same reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Decimal;

/// Method names, as sent in the `method` parameter.
pub mod method {
    /// Server availability.
    pub const STATUS: &str = "status";
    /// Project balance and totals.
    pub const BALANCE: &str = "balance";
    /// Supported currencies and their rates against USD.
    pub const CURRENCIES: &str = "currencies";
    /// Ledger history of the project balance (skingate's name for the vendor's unnamed page).
    pub const BALANCE_HISTORY: &str = "balance_history";
    /// skingate: the project's events-webhook deliveries.
    pub const WEBHOOK_DELIVERIES: &str = "webhook_deliveries";
    /// skingate: the attempts of one delivery.
    pub const WEBHOOK_ATTEMPTS: &str = "webhook_attempts";
    /// skingate: deliver one event again now.
    pub const WEBHOOK_RESEND: &str = "webhook_resend";
    /// skingate: deliver again every failed delivery since a time.
    pub const WEBHOOK_RECOVER: &str = "webhook_recover";
}

/// `status`: whether the gateway accepts business right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// `false` while the gateway is in maintenance or cannot trade.
    #[serde(deserialize_with = "crate::lenient::bool")]
    pub available: bool,
    /// Why it is unavailable: `site_off` or `no_bots` (open set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `balance`: what the project may spend, and its lifetime totals, in USD and every supported currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceResponse {
    /// Spendable balance in USD. Negative only after a reversal clawback (a debt).
    pub balance: Decimal,
    /// `balance` converted with the current rates, keyed by lowercase currency code.
    #[serde(default)]
    pub balance_in_currencies: BTreeMap<String, Decimal>,
    /// Total credited by deposits minus Trade Protection clawbacks, USD.
    pub deals_sum: Decimal,
    /// `deals_sum` converted.
    #[serde(default)]
    pub deals_sum_in_currencies: BTreeMap<String, Decimal>,
    /// Total spent on withdrawals (market purchases net of refunds), USD.
    pub withdraw_sum: Decimal,
    /// `withdraw_sum` converted.
    #[serde(default)]
    pub withdraw_sum_in_currencies: BTreeMap<String, Decimal>,
    /// skingate: deposit value under Steam Trade Protection, not yet spendable, USD.
    #[serde(default)]
    pub held: Option<Decimal>,
    /// skingate: money reserved by purchases whose trade has not finished, USD.
    #[serde(default)]
    pub in_flight: Option<Decimal>,
    /// skingate: the currency of `balance`, always `usd`.
    #[serde(default)]
    pub currency: Option<String>,
}

/// One row of `currencies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyItem {
    /// Lowercase ISO-like code, e.g. `rub`.
    pub code: String,
    /// Human name.
    pub name: String,
    /// Units of this currency per 1 USD.
    pub rate: Decimal,
}

/// `currencies`: the rates table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrenciesResponse {
    /// Every supported currency, USD included with rate 1.
    pub items: Vec<CurrencyItem>,
}

/// One ledger entry of the project balance in `balance_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceHistoryItem {
    /// Entry id; ascending in time, the cursor for `start_from`.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub id: String,
    /// When the entry was written, Unix seconds.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub date: i64,
    /// What moved the money: `deposit`, `deposit_hold`, `purchase`, `refund`, `adjustment`, `clawback`, …
    /// (open set; tolerate new values).
    #[serde(rename = "type")]
    pub kind: String,
    /// Signed change of the spendable balance (negative for money out), USD.
    pub amount: Decimal,
    /// Spendable balance before this entry, USD.
    pub balance_before: Decimal,
    /// Spendable balance after this entry, USD.
    pub balance_after: Decimal,
    /// Held (Trade Protection) amount after this entry, USD.
    pub held_after: Decimal,
    /// In-flight (reserved by unfinished purchases) amount after this entry, USD.
    pub in_flight_after: Decimal,
    /// The ledger transfer this entry belongs to; the same id always means the same movement.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub transfer_id: String,
    /// What the transfer refers to (a deposit, a purchase, an operator's reason).
    #[serde(default)]
    pub reference: String,
}

/// A page of a time-ranged list (`orders`, `market_history`, `balance_history`).
///
/// `start_from` is the cursor for the next page; `has_more` says whether to ask for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// How many items this page holds (at most 1000).
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub total_count: i64,
    /// Whether more items match after this page.
    #[serde(deserialize_with = "crate::lenient::bool")]
    pub has_more: bool,
    /// Pass this back as `start_from` to get the next page.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub start_from: Option<i64>,
    /// The items, oldest first.
    pub items: Vec<T>,
}

/// Most items one page carries, as the vendor caps its lists.
pub const PAGE_LIMIT: usize = 1000;

/// One events-webhook delivery in `webhook_deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryItem {
    /// Delivery id (`delivery_id` of the other webhook methods).
    #[serde(deserialize_with = "crate::lenient::string")]
    pub delivery_id: String,
    /// The event's id (`evt_N`), the `webhook-id` header of every attempt.
    pub event_id: String,
    /// The event's name.
    pub event: String,
    /// Where it is sent.
    pub url: String,
    /// `pending`, `delivered` or `failed` (open set).
    pub state: String,
    /// Attempts made.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub attempts: i64,
    /// When the next attempt is due (pending only), Unix seconds.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub next_attempt_at: Option<i64>,
    /// HTTP status of the last attempt, if it got one.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub last_http_status: Option<i64>,
    /// Creation time (= the event's), Unix seconds.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub date: i64,
}

/// One attempt in `webhook_attempts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptItem {
    /// 1 for the first attempt.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub attempt: i64,
    /// When it started, Unix seconds.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub date: i64,
    /// How long it took.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub duration_ms: i64,
    /// The answer's status, if any.
    #[serde(default, deserialize_with = "crate::lenient::opt_i64")]
    pub http_status: Option<i64>,
    /// Why there was no usable answer.
    #[serde(default)]
    pub error: Option<String>,
    /// The first KBs of the answer.
    #[serde(default)]
    pub response_head: String,
}

/// `webhook_attempts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptsResponse {
    /// The delivery.
    pub delivery: DeliveryItem,
    /// Its attempts, oldest first.
    pub items: Vec<AttemptItem>,
}

/// `webhook_resend` and `webhook_recover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescheduledResponse {
    /// How many deliveries were scheduled again.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub rescheduled: i64,
}
