//! Market storage: the gateway's stock units, purchases and their lifecycle. [`MarketStore`] holds reads
//! and short writes, [`MarketTx`] the writes that must commit with ledger transfers and outbox rows. Both
//! are supertraits of [`crate::Store`] and [`crate::WriteTx`].
//!
//! Tables in `migrations/sqlite/0004_market.sql`. A unit's price is not stored: storage keeps the catalogue
//! reference price and the caller applies the pricing (`skingate_core::market::Pricing`), so the price list
//! and the buy always agree.

use async_trait::async_trait;
use skingate_core::Money;
use skingate_core::ledger::{Account, AccountId, Entry, TransferSpec};
use skingate_core::market::PurchaseStatus;
use skingate_core::project::ProjectId;

use crate::{IdempotencyKey, Result};

/// Where a stock unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitState {
    /// In a bot's inventory, for sale.
    Stock,
    /// Sold; its trade is running (or accepted and still reversible).
    Reserved,
    /// Given away for good, or taken back by the supplier.
    Gone,
    /// Taken off the market by an operator.
    Withdrawn,
}

impl UnitState {
    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stock => "stock",
            Self::Reserved => "reserved",
            Self::Gone => "gone",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Inverse of [`UnitState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Stock, Self::Reserved, Self::Gone, Self::Withdrawn].into_iter().find(|v| v.as_str() == s)
    }
}

/// A unit to put into stock (seeded from the catalogue, added by an operator, or received by a deposit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUnit {
    /// Game code (`cs2`, `dota2`, `rust`).
    pub game: String,
    /// `market_hash_name`.
    pub name: String,
    /// Steam classid.
    pub classid: String,
    /// Asset id in the bot's inventory.
    pub asset_id: i64,
    /// SteamID64 of the bot holding it.
    pub bot: String,
    /// Catalogue reference price.
    pub reference: Money,
}

/// A stock unit as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The public item `id`.
    pub id: i64,
    /// Game code.
    pub game: String,
    /// `market_hash_name`.
    pub name: String,
    /// Steam classid.
    pub classid: String,
    /// Asset id in the bot's inventory.
    pub asset_id: i64,
    /// SteamID64 of the bot holding it.
    pub bot: String,
    /// Catalogue reference price (the selling price is the pricing applied to it).
    pub reference: Money,
    /// Where it is.
    pub state: UnitState,
}

/// A row of the grouped price list: units for sale of one name at one reference price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitGroup {
    /// `market_hash_name`.
    pub name: String,
    /// Steam classid.
    pub classid: String,
    /// Reference price.
    pub reference: Money,
    /// How many units.
    pub count: i64,
}

/// An idempotency key as stored: the request it was claimed for and the answer kept for replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The merchant's key.
    pub key: String,
    /// Fingerprint of the request that claimed it.
    pub request_hash: String,
    /// The answer; `None` if its work committed without storing one (a repeat is then a conflict).
    pub response: Option<String>,
}

/// An idempotency key to insert together with its answer (a buy batch's successful buys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredKey {
    /// The key.
    pub key: IdempotencyKey,
    /// Fingerprint of the request.
    pub request_hash: String,
    /// The answer replayed to repeats.
    pub response: String,
}

/// A purchase to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPurchase {
    /// The buyer.
    pub project: ProjectId,
    /// The unit sold (already reserved).
    pub unit: Unit,
    /// Amount debited.
    pub price: Money,
    /// SteamID64 of the recipient.
    pub partner: String,
    /// Trade-URL token of the recipient.
    pub token: String,
    /// Merchant's id, if given.
    pub custom_id: Option<String>,
}

/// A purchase as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The public `buy_id`.
    pub id: i64,
    /// The buyer.
    pub project: ProjectId,
    /// The unit sold.
    pub unit_id: i64,
    /// Game code.
    pub game: String,
    /// `market_hash_name`.
    pub name: String,
    /// Steam classid.
    pub classid: String,
    /// Amount debited (`balance_debited_sum`).
    pub price: Money,
    /// SteamID64 of the recipient.
    pub partner: String,
    /// Trade-URL token of the recipient.
    pub token: String,
    /// Merchant's id.
    pub custom_id: Option<String>,
    /// `offer_status`.
    pub status: PurchaseStatus,
    /// Steam's trade offer id, once sent.
    pub tradeofferid: Option<String>,
    /// Why it failed, for failure statuses.
    pub error_reason: Option<String>,
    /// When the offer was sent.
    pub sent_at: Option<i64>,
    /// When it was accepted.
    pub accepted_at: Option<i64>,
    /// Until when an accepted purchase can roll back.
    pub watch_until: Option<i64>,
    /// When it was bought.
    pub created_at: i64,
}

/// A status change to write, guarded by the status it expects to leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseUpdate {
    /// The purchase.
    pub id: i64,
    /// The status it must be in now; otherwise nothing is written.
    pub from: PurchaseStatus,
    /// The new status.
    pub to: PurchaseStatus,
    /// Trade offer id, when it becomes known.
    pub tradeofferid: Option<String>,
    /// Failure reason.
    pub error_reason: Option<String>,
    /// Sent time, when it becomes known.
    pub sent_at: Option<i64>,
    /// Accepted time, when it becomes known.
    pub accepted_at: Option<i64>,
    /// End of the rollback window, for accepted purchases.
    pub watch_until: Option<i64>,
    /// Next look by the watcher.
    pub next_check_at: i64,
}

/// A transfer already decided by the domain ledger (`skingate_core::ledger::apply`) in memory, to be written
/// with others in bulk: the group-committed buy path and the watcher's rounds check a whole batch against the
/// in-memory balances and write its ledger rows with a few multi-row statements instead of eight statements per
/// transfer. Any phase: the pending transfers posted or voided are marked resolved, settled totals updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedTransfer {
    /// The transfer.
    pub spec: TransferSpec,
    /// Its two entries, as `apply` returned them.
    pub entries: [Entry; 2],
    /// Owner (project id, 0 for the installation) of the debit and credit accounts.
    pub owners: [i64; 2],
}

/// What one buy batch writes ([`MarketTx::write_buy_batch`]); empty parts write nothing.
#[derive(Debug, Default)]
pub struct BuyBatchWrites<'a> {
    /// The purchases, under ids from [`MarketTx::next_purchase_id`]; their units are reserved.
    pub purchases: &'a [(i64, NewPurchase)],
    /// The accounts the transfers touch, with their final balances.
    pub accounts: &'a [Account],
    /// The transfers, decided in memory by `ledger::apply`.
    pub transfers: &'a [DecidedTransfer],
    /// The outbox events.
    pub events: &'a [BulkEvent],
    /// The idempotency keys the batch answered.
    pub answered: &'a [AnsweredKey],
}

/// An outbox event to write in bulk.
pub struct BulkEvent {
    /// The project.
    pub project: ProjectId,
    /// The `event` name.
    pub event_type: &'static str,
    /// Builds the stored body from the event's id and sequence number.
    pub payload: Box<dyn Fn(i64, i64) -> String + Send + Sync>,
    /// Where to deliver it by webhook, if anywhere.
    pub webhook_url: Option<String>,
}

impl std::fmt::Debug for BulkEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkEvent").field("project", &self.project).field("event_type", &self.event_type).finish()
    }
}

/// Market reads and short writes.
#[async_trait]
pub trait MarketStore: Send + Sync {
    /// How many units exist in any state (0 = the stock was never seeded).
    async fn unit_count(&self) -> Result<i64>;
    /// Units in `state` (any game when `game` is `None`) with an id above `after_id`, by id.
    async fn units_page(&self, game: Option<&str>, state: UnitState, after_id: i64, limit: u32) -> Result<Vec<Unit>>;
    /// Groups of units for sale in a game, by name then reference price, after the key `after`.
    async fn unit_groups_page(&self, game: &str, after: Option<(&str, Money)>, limit: u32) -> Result<Vec<UnitGroup>>;
    /// Units for sale with one of these exact names, cheapest first, at most `limit`.
    async fn search_units(&self, game: &str, names: &[String], limit: u32) -> Result<Vec<Unit>>;
    /// Purchases of a project by buy id (missing ones skipped).
    async fn purchases_by_ids(&self, project: ProjectId, ids: &[i64]) -> Result<Vec<Purchase>>;
    /// Purchases of a project by custom id (missing ones skipped).
    async fn purchases_by_custom_ids(&self, project: ProjectId, custom_ids: &[String]) -> Result<Vec<Purchase>>;
    /// A page of a project's purchases made between two times (inclusive), with an id above `after_id`,
    /// plus whether more follow.
    async fn purchase_history(
        &self,
        project: ProjectId,
        starting: i64,
        ending: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<(Vec<Purchase>, bool)>;
    /// Purchases the watcher should look at now: unfinished, or accepted and still reversible, due by
    /// `next_check_at`, oldest due first.
    async fn purchases_due(&self, now: i64, limit: u32) -> Result<Vec<Purchase>>;
    /// Purchases in `waiting_accept` whose deadline (`next_check_at`) is at or before `until`, by id. The
    /// watcher polls them from memory, so one starting after a restart reloads them here rather than leave
    /// them unobserved until their deadline.
    async fn purchases_waiting(&self, until: i64) -> Result<Vec<Purchase>>;
    /// The highest purchase id so far (0 if none): a watcher that starts treats every purchase up to it as
    /// possibly sent by an earlier process that stopped before recording the offer.
    async fn last_purchase_id(&self) -> Result<i64>;
    /// Units by id, in any state (missing ones skipped).
    async fn units_by_ids(&self, ids: &[i64]) -> Result<Vec<Unit>>;
    /// Moves the units `ids` to `withdrawn`, all or none: returns the ids that are not for sale (unknown,
    /// sold, in a trade, withdrawn already), and when there are any nothing moves, so an operator's mistyped
    /// list changes nothing.
    async fn withdraw_units(&self, ids: &[i64], now: i64) -> Result<Vec<i64>>;
}

/// Market writes inside one business transaction.
#[async_trait]
pub trait MarketTx: Send {
    /// Opens a savepoint: a group-committed batch runs each request inside one so a failure undoes only it.
    async fn savepoint(&mut self, name: &str) -> Result<()>;
    /// Undoes everything since the savepoint and closes it.
    async fn rollback_to_savepoint(&mut self, name: &str) -> Result<()>;
    /// Keeps everything since the savepoint and closes it.
    async fn release_savepoint(&mut self, name: &str) -> Result<()>;
    /// Puts units into stock (for sale at once); returns their ids in order. Deposits call this with the
    /// items they received.
    async fn add_units(&mut self, units: &[NewUnit], now: i64) -> Result<Vec<i64>>;
    /// The units among `ids` that are in stock, read inside the transaction (a buy batch's picks by id).
    async fn stock_units(&mut self, ids: &[i64]) -> Result<Vec<Unit>>;
    /// The `limit` cheapest units in stock of one item, cheapest first (ties: lowest id), read inside the
    /// transaction: a buy batch fetches as many as it has buyers of that name and hands them out in order.
    async fn cheapest_units(&mut self, game: &str, name: &str, limit: u32) -> Result<Vec<Unit>>;
    /// Moves the units among `ids` that are in one of the `from` states to `to`; returns how many moved.
    async fn move_units(&mut self, ids: &[i64], from: &[UnitState], to: UnitState, now: i64) -> Result<u64>;
    /// The id the next purchase gets (the transaction holds the only write lock, so ids handed out in order
    /// from here are free).
    async fn next_purchase_id(&mut self) -> Result<i64>;
    /// The stored keys among `keys` of one project and scope, read inside the transaction.
    async fn idempotency_keys(&mut self, project: ProjectId, scope: &str, keys: &[&str]) -> Result<Vec<StoredKey>>;
    /// A ledger account with its balances and owner, read inside this transaction.
    async fn ledger_account(&mut self, id: AccountId) -> Result<(Account, i64)>;
    /// Writes transfers decided in memory, and the accounts' final balances, in bulk. The caller decided them
    /// inside this transaction from [`MarketTx::ledger_account`] reads; a pending transfer resolved twice makes the
    /// write fail.
    async fn write_decided_transfers(
        &mut self,
        accounts: &[Account],
        transfers: &[DecidedTransfer],
        now: i64,
    ) -> Result<()>;
    /// Writes outbox events (and their webhook deliveries) in bulk, numbering them after the existing ones.
    async fn insert_events_bulk(&mut self, events: &[BulkEvent], now: i64) -> Result<()>;
    /// Writes everything a buy batch decided, in one go: its purchases' units reserved (all of them from
    /// stock, or the write fails), its purchases (in `creating_trade`, due for the watcher now), its transfers with the
    /// accounts' balances, its events and its answered idempotency keys (a key that exists already fails the
    /// write: the caller looked them up in this transaction, so that would be a bug, not a race).
    /// On an error, the writes before the failing one may have run: the caller drops (rolls back) the
    /// transaction.
    async fn write_buy_batch(&mut self, writes: &BuyBatchWrites<'_>, now: i64) -> Result<()>;
    /// Applies status changes, each only if its purchase is still in `update.from`; returns the ids changed.
    /// One purchase at most once per call.
    async fn update_purchases(&mut self, updates: &[PurchaseUpdate], now: i64) -> Result<Vec<i64>>;
    /// Sets when the watcher looks at purchases next: `(purchase id, at)`.
    async fn set_next_checks(&mut self, checks: &[(i64, i64)]) -> Result<()>;
}
