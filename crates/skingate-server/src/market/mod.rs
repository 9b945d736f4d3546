//! The market (skins withdraw): the orchestration between the API methods, storage, the ledger and Steam.
//!
//! # Layout
//! - [`buy`]: the group-committed buy path. Every `market_buy` (and each item of `market_batch_buy`) is queued
//!   to one writer task that decides a batch of them in memory and writes them in ONE transaction with a
//!   fixed number of statements, answering all of them after one commit (one disk flush per batch, not per
//!   buy).
//! - [`watcher`]: the background task that sends each purchase's offer, watches it on Steam (acting only on
//!   two agreeing observations), cancels it after 10 minutes, detects Trade Protection rollbacks, and applies
//!   the transitions of `skingate_core::market::transition` with their refunds and events.
//! - [`pricelist`]: the streamed price list.
//! - [`stock`]: seeding the stock from the catalogue and adding units.
//!
//! The market can be switched off by the operator (`skingate market off`, `meta` key [`MARKET_KEY`]); every
//! market method then answers `-6 market_disabled`.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skingate_core::market::{Pricing, PurchaseStatus};
use skingate_store::StoreError;
use skingate_store::market::{Purchase, Unit};
use skingate_types::market::{DEFAULT_INSTANCE_ID, MarketItem, Purchase as WirePurchase, PurchaseItem};
use tokio::sync::{Notify, mpsc};

use crate::error::ApiError;
use crate::state::AppState;

pub mod buy;
pub mod pricelist;
pub mod stock;
pub mod watcher;

/// The `meta` key of the market switch: `off` disables the market, anything else (or nothing) enables it.
pub const MARKET_KEY: &str = "market";

/// `-6 market_disabled` (spec §1.1).
pub const MARKET_DISABLED: ApiError = ApiError::method(-6, "market_disabled");

/// The market's share of the gateway state.
#[derive(Debug)]
pub struct Market {
    /// Wakes the purchase watcher (after a buy commits, or when a test moves the clock).
    pub wake: Notify,
    buys: OnceLock<mpsc::Sender<buy::BuyJob>>,
    switch: Mutex<Option<(Instant, bool)>>,
}

impl Default for Market {
    fn default() -> Self {
        Self { wake: Notify::new(), buys: OnceLock::new(), switch: Mutex::new(None) }
    }
}

impl Market {
    /// Whether the market is on, from memory for `project_cache_ttl_ms`, else from the database (so the CLI's
    /// switch takes effect within that time).
    pub async fn enabled(&self, state: &AppState) -> Result<bool, StoreError> {
        let ttl = Duration::from_millis(state.config.project_cache_ttl_ms);
        if let Some((at, on)) = *self.switch.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
            && at.elapsed() < ttl
        {
            return Ok(on);
        }
        let on = state.store.meta(MARKET_KEY).await?.is_none_or(|v| v != "off");
        *self.switch.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), on));
        Ok(on)
    }

    /// Fails with `-6 market_disabled` when the market is off.
    pub async fn ensure_enabled(&self, state: &AppState) -> Result<(), ApiError> {
        if self.enabled(state).await? { Ok(()) } else { Err(MARKET_DISABLED) }
    }

    /// The queue of the buy writer, started on first use.
    fn buy_queue(&self, state: &AppState) -> &mpsc::Sender<buy::BuyJob> {
        self.buys.get_or_init(|| buy::spawn_writer(state))
    }
}

/// The configured pricing.
pub fn pricing(state: &AppState) -> Pricing {
    Pricing { markup_bps: state.config.market_markup_bps }
}

/// A unit as the wire shows it, priced.
pub fn unit_item(unit: &Unit, pricing: Pricing) -> Result<MarketItem, ApiError> {
    let price = pricing.price(unit.reference).ok_or_else(|| ApiError::internal(anyhow::anyhow!("price overflow")))?;
    Ok(MarketItem {
        id: unit.id.to_string(),
        name: unit.name.clone(),
        price: price.to_wire(),
        classid: unit.classid.clone(),
    })
}

/// A purchase as `market_buy`, `market_getinfo` and `market_history` show it. `item.instanceid` is there
/// because merchant SDKs type it (spec §5.4); the stock keeps no instance ids and the simulator's items have
/// no per-copy properties, so it is Steam's default instance, `"0"` (as `market_pricelist extended=1` says).
pub fn record(p: &Purchase) -> WirePurchase {
    WirePurchase {
        item: PurchaseItem {
            id: p.unit_id.to_string(),
            name: p.name.clone(),
            price: p.price.to_wire(),
            classid: p.classid.clone(),
            instanceid: DEFAULT_INSTANCE_ID.to_owned(),
        },
        buy_id: p.id.to_string(),
        offer_status: p.status.as_str().to_owned(),
        steamid: Some(p.partner.clone()),
        date: Some(p.created_at),
        balance_debited_sum: p.price.to_wire(),
        tradeofferid: p.tradeofferid.clone(),
        custom_id: p.custom_id.clone(),
        error_reason: p.error_reason.clone(),
    }
}

/// The `buy_item` event's data (spec §7.2): all values strings, as in the vendor's example; `item.instanceid`
/// (`"0"`, as in [`record`]) because merchant SDKs type it on this event.
pub fn buy_item_data(p: &Purchase) -> Value {
    let r = record(p);
    json!({
        "item": r.item,
        "buy_id": r.buy_id,
        "offer_status": r.offer_status,
        "balance_debited_sum": r.balance_debited_sum,
        "custom_id": r.custom_id,
    })
}

/// The `status_change` event's data (spec §7.2).
pub fn status_change_data(p: &Purchase, status: PurchaseStatus) -> Value {
    json!({
        "item": {"id": p.unit_id.to_string()},
        "buy_id": p.id.to_string(),
        "offer_status": status.as_str(),
        "error_reason": p.error_reason,
        "tradeofferid": p.tradeofferid,
        "custom_id": p.custom_id,
    })
}
