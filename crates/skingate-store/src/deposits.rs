//! Deposits storage: the repository side of the deposit flow (deposit rows, their items, Result-URL
//! callbacks). [`DepositStore`] holds reads and short writes, [`DepositTx`] the writes that must commit with
//! ledger transfers and outbox rows. Both are supertraits of [`crate::Store`] and [`crate::WriteTx`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use skingate_core::Money;
use skingate_core::deposit::DepositStatus;
use skingate_core::project::ProjectId;

use crate::{IdempotencyKey, Result};

/// One item of a deposit: asked for in the offer, and (once accepted) received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositItem {
    /// Steam asset id in the payer's inventory.
    pub asset_id: String,
    /// Steam class id.
    pub classid: String,
    /// Inventory context (2, or 16 for protected CS2 items).
    pub context_id: u32,
    /// The item's market name.
    pub market_hash_name: String,
    /// Reference price when the offer was made, US cents (the value at acceptance is recomputed from the
    /// offer's items then).
    pub price_cents: u64,
}

/// A deposit as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    /// The `transaction_id`.
    pub id: i64,
    /// Owner.
    pub project: ProjectId,
    /// The merchant's id.
    pub order_id: String,
    /// The hosted page's secret URL part.
    pub page_token: String,
    /// Where it stands.
    pub status: DepositStatus,
    /// The payer's SteamID64 (prefilled or chosen).
    pub steam_id: Option<String>,
    /// The payer's trade token.
    pub trade_token: Option<String>,
    /// Game code (`cs2`, `dota2`, `rust`) once chosen.
    pub game: Option<String>,
    /// The deposit's currency code.
    pub currency: String,
    /// Lower limit in USD.
    pub min_usd: Option<Money>,
    /// Upper limit in USD.
    pub max_usd: Option<Money>,
    /// Lower limit as given, in `currency`.
    pub min_text: Option<String>,
    /// Upper limit as given, in `currency`.
    pub max_text: Option<String>,
    /// Multiplier for `user_amount`, parts per million.
    pub multiplier_ppm: i64,
    /// Fee, parts per million.
    pub fee_ppm: i64,
    /// Per-deposit Result URL.
    pub result_url: Option<String>,
    /// Per-deposit success URL.
    pub success_url: Option<String>,
    /// Per-deposit fail URL.
    pub fail_url: Option<String>,
    /// Steam trade offer id, once sent.
    pub offer_id: Option<String>,
    /// The bot that sent it.
    pub bot_steam_id: Option<String>,
    /// Its name.
    pub bot_name: Option<String>,
    /// When the offer was sent.
    pub offer_date: Option<i64>,
    /// When an unanswered offer expires.
    pub offer_expires_at: Option<i64>,
    /// Items asked for, then received.
    pub items: Vec<DepositItem>,
    /// When the trade was accepted (`skins_send_date`).
    pub accepted_at: Option<i64>,
    /// End of Trade Protection for held deposits.
    pub hold_until: Option<i64>,
    /// Credited amount (net of fee), USD.
    pub amount_usd: Option<Money>,
    /// `amount × multiplier`, USD.
    pub user_amount_usd: Option<Money>,
    /// Every amount field as recorded at acceptance (JSON object).
    pub amounts: Option<String>,
    /// Why it failed (`declined`, `expired`, `reversed`, …).
    pub fail_reason: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// What `create` (or `create_from_user_inventory`) stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeposit {
    /// Owner.
    pub project: ProjectId,
    /// The merchant's id (unique per project).
    pub order_id: String,
    /// The hosted page's secret URL part.
    pub page_token: String,
    /// Prefilled payer.
    pub steam_id: Option<String>,
    /// Prefilled trade token.
    pub trade_token: Option<String>,
    /// Game, when known.
    pub game: Option<String>,
    /// Deposit currency.
    pub currency: String,
    /// Lower limit, USD.
    pub min_usd: Option<Money>,
    /// Upper limit, USD.
    pub max_usd: Option<Money>,
    /// Lower limit as given.
    pub min_text: Option<String>,
    /// Upper limit as given.
    pub max_text: Option<String>,
    /// Multiplier, ppm.
    pub multiplier_ppm: i64,
    /// Fee, ppm.
    pub fee_ppm: i64,
    /// Result URL override.
    pub result_url: Option<String>,
    /// Success URL override.
    pub success_url: Option<String>,
    /// Fail URL override.
    pub fail_url: Option<String>,
    /// Creation time.
    pub created_at: i64,
}

/// A sent offer, recorded on its deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRecord {
    /// The payer.
    pub steam_id: String,
    /// The payer's token used.
    pub trade_token: String,
    /// The game.
    pub game: String,
    /// Steam's offer id.
    pub offer_id: String,
    /// The bot.
    pub bot_steam_id: String,
    /// The bot's name.
    pub bot_name: String,
    /// When it was sent.
    pub offer_date: i64,
    /// When it expires unanswered.
    pub offer_expires_at: i64,
    /// The items asked for.
    pub items: Vec<DepositItem>,
}

/// What a deposit's offer will ask for, recorded before it is sent (so a send that never finishes is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferTarget {
    /// The payer.
    pub steam_id: String,
    /// The payer's token used.
    pub trade_token: String,
    /// The game.
    pub game: String,
    /// The items asked for.
    pub items: Vec<DepositItem>,
}

/// The fields a status transition writes (only those it sets; `None` keeps the stored value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusChange {
    /// When accepted.
    pub accepted_at: Option<i64>,
    /// End of the hold.
    pub hold_until: Option<i64>,
    /// Credited amount, USD.
    pub amount_usd: Option<Money>,
    /// User amount, USD.
    pub user_amount_usd: Option<Money>,
    /// Amount fields, JSON.
    pub amounts: Option<String>,
    /// Items received (replacing those asked for).
    pub items: Option<Vec<DepositItem>>,
    /// Why it failed.
    pub fail_reason: Option<String>,
    /// Ends an interrupted send with the change (as [`DepositTx::end_sending`] does, in the same
    /// transaction): the watcher failing a send that never finished puts back what the deposit held before it.
    pub release_send: bool,
}

/// The gateway's history of one payer, across all projects (the base of `user_risk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PayerHistory {
    /// Deposits that were credited (success, in_hold, hold_approved, hold_returned).
    pub deposits_count: i64,
    /// Their value, USD.
    pub deposits_sum: Money,
    /// Credited deposits whose trade the payer reversed after funds were advanced (hold_returned).
    pub rollback_count: i64,
    /// Their value, USD.
    pub rollback_sum: Money,
    /// First time the gateway saw this payer (first deposit created), if ever.
    pub first_seen: Option<i64>,
    /// Last credited deposit's acceptance time.
    pub last_deposit_at: Option<i64>,
}

/// A Result-URL callback whose last attempt failed (`callback_error_list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCallback {
    /// The delivery's id (the page cursor).
    pub delivery_id: i64,
    /// The deposit.
    pub deposit_id: i64,
    /// The merchant's order id.
    pub order_id: String,
    /// HTTP status of the last attempt (`None`: no answer at all).
    pub http_status: Option<u16>,
}

/// Deposit reads and short writes.
#[async_trait]
pub trait DepositStore: Send + Sync {
    /// One deposit of a project by `transaction_id`.
    async fn deposit(&self, project: ProjectId, id: i64) -> Result<Option<Deposit>>;
    /// One deposit of a project by the merchant's `order_id`.
    async fn deposit_by_order(&self, project: ProjectId, order_id: &str) -> Result<Option<Deposit>>;
    /// The deposit behind a hosted page.
    async fn deposit_by_page_token(&self, token: &str) -> Result<Option<Deposit>>;
    /// A project's deposits created in `[starting, ending]` with id above `after_id`, oldest first, up to
    /// `limit + 1` rows (the extra one tells there is more).
    async fn deposits_in_range(
        &self,
        project: ProjectId,
        starting: i64,
        ending: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Deposit>>;
    /// Deposits the trade watcher must look at: pending ones with an offer, and held ones; id above
    /// `after_id`, ascending, at most `limit`.
    async fn watched_deposits(&self, after_id: i64, limit: u32) -> Result<Vec<Deposit>>;
    /// The gateway's history of a payer (excluding deposit `except`).
    async fn payer_history(&self, steam_id: &str, except: i64) -> Result<PayerHistory>;
    /// Pending deposits whose offer started sending at or before `before` and has no recorded offer id (a
    /// send interrupted by a crash), oldest first, at most `limit`.
    async fn stuck_sending(&self, before: i64, limit: u32) -> Result<Vec<Deposit>>;
    /// The request hash and stored response (if any yet) of an idempotency key; `None` if unclaimed.
    async fn idempotency_record(&self, key: &IdempotencyKey) -> Result<Option<(String, Option<String>)>>;
    /// Result-URL callbacks of a project whose last attempt failed, delivery id above `after_id`, ascending,
    /// up to `limit + 1` rows.
    async fn failed_callbacks(&self, project: ProjectId, after_id: i64, limit: u32) -> Result<Vec<FailedCallback>>;
}

/// Deposit writes inside one business transaction.
#[async_trait]
pub trait DepositTx: Send {
    /// Stores a new pending deposit; returns its id (`transaction_id`).
    async fn insert_deposit(&mut self, new: &NewDeposit) -> Result<i64>;
    /// Reads a deposit inside the transaction (what the transaction's decisions are based on).
    async fn deposit_in_tx(&mut self, id: i64) -> Result<Option<Deposit>>;
    /// Records the sent offer on a pending deposit that has none yet, or already has this very one (and ends its
    /// sending state); false when it has another or is no longer pending (a concurrent submit won, or the
    /// watcher gave up on it). "This very one": the watcher may have adopted the offer of a send that was
    /// taking too long, and the send's own late record must then not cancel it.
    async fn record_offer(&mut self, id: i64, offer: &OfferRecord, now: i64) -> Result<bool>;
    /// Marks a pending deposit without an offer as sending one to `target` (written over its account, game
    /// and items, so that an interrupted send can be adopted; what they held is kept for
    /// [`DepositTx::end_sending`]); false when it is not pending, already has an offer, or another send is
    /// under way (so one deposit never gets two offers).
    async fn begin_sending(&mut self, id: i64, target: &OfferTarget, now: i64) -> Result<bool>;
    /// Ends the sending state of a deposit whose offer was not sent (the payer may try again) and puts back
    /// the account, game and items it held before [`DepositTx::begin_sending`] (a failed attempt must not
    /// become the deposit's payer: `orderstatus`, the page's "selected by the merchant" account and its game
    /// would show it); false when it was not sending.
    async fn end_sending(&mut self, id: i64, now: i64) -> Result<bool>;
    /// Deletes a deposit whose offer was never sent, and its idempotency key if no response was stored (the
    /// call that created both failed: the merchant may retry the same `order_id`); false when the deposit had
    /// moved on (an offer, or another status).
    async fn abandon_deposit(&mut self, id: i64, key: &IdempotencyKey) -> Result<bool>;
    /// Moves a deposit `from → to` with the fields `change` sets; false (nothing written) when the stored
    /// status is no longer `from`.
    async fn change_status(
        &mut self,
        id: i64,
        from: DepositStatus,
        to: DepositStatus,
        change: &StatusChange,
        now: i64,
    ) -> Result<bool>;
    /// Moves the end of a deposit's hold (test mode's fast-forward).
    async fn set_hold_until(&mut self, id: i64, hold_until: i64, now: i64) -> Result<()>;
    /// Queues a Result-URL callback of `event` for `deposit`, due now, to the deposit's own `result_url` or
    /// else the project's, both read inside this transaction: a project's URL changed a moment ago (which the
    /// caller's cached copy may not show yet) is the one used, and a change committed after this one
    /// re-points the callback (the project update does). Nothing is queued when neither URL is set; returns
    /// whether a callback was queued.
    async fn insert_result_delivery(
        &mut self,
        event_id: i64,
        project: ProjectId,
        deposit: i64,
        now: i64,
    ) -> Result<bool>;
}
