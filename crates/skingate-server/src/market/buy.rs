//! The buy path, group-committed.
//!
//! A buy is a handful of small writes (reserve the unit, the pending ledger transfer, the purchase row, two
//! outbox events, the idempotency key) and a disk flush at commit. Buys are not committed one by one: each
//! request is queued to a single writer task, which takes everything queued (up to `market_batch_max`), runs
//! the buys one after another in ONE transaction and commits once; the commit answers every buy of the batch
//! (TigerBeetle-style batching, like the dispatcher's attempt recording). While a batch commits the next one
//! queues, so the batch size follows the load.
//!
//! Inside the batch, statements are what costs (each is a round trip to SQLite's worker thread), so a buy only
//! writes its own unit, purchase row and idempotency key as it goes; its funds are checked and reserved by the
//! domain ledger (`skingate_core::ledger::apply`) against the batch's in-memory view of the balances, and the
//! batch's ledger rows and events are written at the end with a few multi-row statements.
//!
//! Correctness is per buy: a refused buy (no funds, unit gone, price above `max_price`, `custom_id` reused for
//! another request) writes nothing and leaves the others alone; buys run in order on the single writer
//! connection, so two buyers of the last unit see each other's reservation (exactly one wins) and a repeated
//! `custom_id` sees the first request's stored answer (replay). Nothing is answered before the commit, so no
//! answer ever describes an uncommitted purchase; a failure of the gateway itself fails the whole batch and
//! commits nothing.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use skingate_core::Money;
use skingate_core::events::EventType;
use skingate_core::ledger::{self, Account, AccountKind, LedgerError};
use skingate_core::market::{Pricing, PurchaseStatus, reserve};
use skingate_core::project::{Project, ProjectId};
use skingate_steam::catalogue::Game;
use skingate_steam::ids::SteamId;
use skingate_store::market::{BulkEvent, DecidedTransfer, NewPurchase, Purchase, UnitPick, UnitState};
use skingate_store::{Claim, IdempotencyKey, Store, StoreError, WriteTx};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::error::ApiError;
use crate::events;
use crate::state::AppState;

/// Idempotency scope of `custom_id`, shared by `market_buy` and `market_batch_buy` items.
pub const CUSTOM_ID_SCOPE: &str = "market_buy";

/// Which unit to buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// A unit id from the price list or search.
    Id(i64),
    /// The cheapest unit of this name (at or under `max_price`).
    Name {
        /// The game.
        game: Game,
        /// `market_hash_name`.
        name: String,
    },
}

/// One buy, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyRequest {
    /// What to buy.
    pub pick: Pick,
    /// The most the merchant pays.
    pub max_price: Option<Money>,
    /// The recipient.
    pub partner: SteamId,
    /// The recipient's trade-URL token.
    pub token: String,
    /// The merchant's id, for idempotency.
    pub custom_id: Option<String>,
    /// Hash of the request, compared when `custom_id` repeats.
    pub fingerprint: String,
}

/// Why a buy was refused (the `market_buy` error codes 4–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 4: the balance does not cover the price.
    InsufficientFunds,
    /// 5: no such unit for sale.
    Unavailable,
    /// 6: units exist, but none at or under `max_price`.
    NotAtPrice,
    /// 7: the `custom_id` was used for a different request.
    CustomIdExists,
}

impl Refusal {
    /// The method error.
    pub fn error(self) -> ApiError {
        match self {
            Self::InsufficientFunds => ApiError::method(4, "insufficient_funds"),
            Self::Unavailable => ApiError::method(5, "skin_unavailable"),
            Self::NotAtPrice => ApiError::method(6, "skins_not_found_at_specified_price"),
            Self::CustomIdExists => ApiError::method(7, "custom_id_already_exists"),
        }
    }
}

/// A successful buy: the purchase record's JSON (without the envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bought {
    /// Bought now.
    Fresh(Vec<u8>),
    /// The stored answer of an earlier identical request with the same `custom_id`.
    Replayed(Vec<u8>),
}

/// Why a queued buy did not succeed.
#[derive(Debug)]
pub enum BuyFailure {
    /// Refused; nothing changed.
    Refused(Refusal),
    /// The gateway failed; nothing changed.
    Internal(anyhow::Error),
}

impl From<StoreError> for BuyFailure {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<BuyFailure> for ApiError {
    #[track_caller]
    fn from(f: BuyFailure) -> Self {
        match f {
            BuyFailure::Refused(r) => r.error(),
            BuyFailure::Internal(e) => ApiError::internal(e),
        }
    }
}

/// A buy waiting for the writer.
#[derive(Debug)]
pub struct BuyJob {
    project: Arc<Project>,
    request: BuyRequest,
    reply: oneshot::Sender<Result<Bought, BuyFailure>>,
}

/// Buys through the group-committing writer and, on success, wakes event delivery and the watcher.
pub async fn buy(state: &AppState, project: Arc<Project>, request: BuyRequest) -> Result<Bought, BuyFailure> {
    let (reply, answer) = oneshot::channel();
    let queue = state.market.buy_queue(state);
    queue
        .send(BuyJob { project, request, reply })
        .await
        .map_err(|_| BuyFailure::Internal(anyhow::anyhow!("market buy writer stopped")))?;
    let outcome = answer.await.map_err(|_| BuyFailure::Internal(anyhow::anyhow!("market buy writer dropped a buy")))?;
    if matches!(outcome, Ok(Bought::Fresh(_))) {
        state.events_committed();
        state.market.wake.notify_one();
    }
    outcome
}

/// Starts the writer task; it ends when the state (and so the queue's sender) is dropped.
pub(super) fn spawn_writer(state: &AppState) -> mpsc::Sender<BuyJob> {
    let max = state.config.market_batch_max;
    let (tx, rx) = mpsc::channel(max.saturating_mul(8).max(64));
    tokio::spawn(writer(state.store.clone(), state.clock.clone(), super::pricing(state), max, rx));
    tx
}

async fn writer(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    pricing: Pricing,
    max: usize,
    mut rx: mpsc::Receiver<BuyJob>,
) {
    let mut jobs = Vec::with_capacity(max);
    while rx.recv_many(&mut jobs, max).await > 0 {
        match run_batch(store.as_ref(), &jobs, clock.now(), pricing).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, buys = jobs.len(), "market buy batch failed; nothing was committed");
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(BuyFailure::Internal(anyhow::anyhow!("buy batch failed: {e}"))));
                }
            }
        }
    }
}

/// Runs a batch in one transaction. Each buy is checked and reserved against the batch's in-memory view of
/// the balances (the domain ledger's own `apply`), with only its unit, purchase row and idempotency key written
/// as it goes (picking and reserving the unit is one statement); the batch's purchase rows, ledger rows and
/// events are then written with a few multi-row statements. A refused buy leaves nothing behind (its unit goes
/// back to stock, a key it claimed is removed again). An error here (not a refusal) means the transaction
/// is unusable and nothing of the batch commits.
async fn run_batch(
    store: &dyn Store,
    jobs: &[BuyJob],
    now: i64,
    pricing: Pricing,
) -> Result<Vec<Result<Bought, BuyFailure>>, StoreError> {
    let mut tx = store.begin().await?;
    let sales_id = tx.system_account(AccountKind::MarketSales).await?;
    let (sales, sales_owner) = tx.ledger_account(sales_id).await?;
    let next_id = tx.next_purchase_id().await?;
    let mut batch = Batch {
        sales,
        sales_owner,
        books: HashMap::new(),
        next_id,
        purchases: Vec::new(),
        transfers: Vec::new(),
        events: Vec::new(),
        now,
        pricing,
    };
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        match buy_one(tx.as_mut(), &job.project, &job.request, &mut batch).await {
            Err(BuyFailure::Internal(e)) => return Err(StoreError::Corrupt(format!("buy failed: {e:#}"))),
            outcome => outcomes.push(outcome),
        }
    }
    if !batch.transfers.is_empty() {
        tx.insert_purchases_bulk(&batch.purchases, now).await?;
        let mut accounts: Vec<Account> = batch.books.into_values().map(|(a, _)| a).collect();
        accounts.push(batch.sales);
        tx.write_decided_transfers(&accounts, &batch.transfers, now).await?;
        tx.insert_events_bulk(&batch.events, now).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// The batch's in-memory state: balances as the batch left them, and the rows it will write in bulk.
struct Batch {
    sales: Account,
    sales_owner: i64,
    books: HashMap<ProjectId, (Account, i64)>,
    next_id: i64,
    purchases: Vec<(i64, NewPurchase)>,
    transfers: Vec<DecidedTransfer>,
    events: Vec<BulkEvent>,
    now: i64,
    pricing: Pricing,
}

fn event(project: &Project, kind: EventType, data: serde_json::Value, now: i64) -> BulkEvent {
    BulkEvent {
        project: project.id,
        event_type: kind.as_str(),
        webhook_url: events::webhook_url(project, kind).map(str::to_owned),
        payload: Box::new(move |id, seq| events::envelope(kind, &data, id, seq, now)),
    }
}

/// One buy of the batch.
async fn buy_one(
    tx: &mut dyn WriteTx,
    project: &Project,
    r: &BuyRequest,
    batch: &mut Batch,
) -> Result<Bought, BuyFailure> {
    let now = batch.now;
    let key = r.custom_id.as_ref().map(|k| IdempotencyKey {
        project: project.id,
        scope: CUSTOM_ID_SCOPE.into(),
        key: k.clone(),
    });
    if let Some(key) = &key {
        match tx.claim_idempotency_key(key, &r.fingerprint, now).await? {
            Claim::Replay(body) => return Ok(Bought::Replayed(body.into_bytes())),
            Claim::Mismatch => return Err(BuyFailure::Refused(Refusal::CustomIdExists)),
            Claim::New => {}
        }
    }
    match decide(tx, project, r, batch).await {
        Ok(body) => {
            if let Some(key) = &key {
                tx.store_idempotent_response(key, &body).await?;
            }
            Ok(Bought::Fresh(body.into_bytes()))
        }
        Err(failure) => {
            if let (Some(key), BuyFailure::Refused(_)) = (&key, &failure) {
                tx.forget_idempotency_key(key).await?;
            }
            Err(failure)
        }
    }
}

/// Picks the unit, checks the price and the funds, reserves both; returns the purchase record's JSON.
async fn decide(
    tx: &mut dyn WriteTx,
    project: &Project,
    r: &BuyRequest,
    batch: &mut Batch,
) -> Result<String, BuyFailure> {
    let now = batch.now;
    let pick = match &r.pick {
        Pick::Id(id) => UnitPick::Id(*id),
        Pick::Name { game, name } => UnitPick::Cheapest {
            game: game.code().to_owned(),
            name: name.clone(),
            max_reference: r.max_price.map(|m| batch.pricing.max_reference(m)),
        },
    };
    let Some(unit) = tx.reserve_unit(&pick, now).await? else {
        // By name under a price cap: tell "none at this price" from "none at all".
        let refusal = match pick {
            UnitPick::Cheapest { game, name, max_reference: Some(_) } => {
                let any = UnitPick::Cheapest { game, name, max_reference: None };
                if tx.pick_unit(&any).await?.is_some() { Refusal::NotAtPrice } else { Refusal::Unavailable }
            }
            _ => Refusal::Unavailable,
        };
        return Err(BuyFailure::Refused(refusal));
    };
    // The unit is reserved from here: a refusal puts it back.
    let price = batch.pricing.price(unit.reference).filter(|p| p.is_positive());
    let refusal = match price {
        None => Some(Refusal::Unavailable),
        Some(p) if r.max_price.is_some_and(|max| p > max) => Some(Refusal::NotAtPrice),
        Some(_) => None,
    };
    if let Some(refusal) = refusal {
        tx.move_unit(unit.id, UnitState::Reserved, UnitState::Stock, now).await?;
        return Err(BuyFailure::Refused(refusal));
    }
    let price = price.unwrap_or_default();
    let (account, owner) = match batch.books.get(&project.id) {
        Some(book) => book.clone(),
        None => {
            let id = tx.project_account(project.id).await?;
            let book = tx.ledger_account(id).await?;
            batch.books.insert(project.id, book.clone());
            book
        }
    };
    let buy_id = batch.next_id;
    let spec = reserve(buy_id, account.id, batch.sales.id, price);
    let (mut debit, mut credit) = (account, batch.sales.clone());
    let entries = match ledger::apply(&spec, &mut debit, &mut credit, None) {
        Ok(entries) => entries,
        Err(LedgerError::InsufficientFunds) => {
            tx.move_unit(unit.id, UnitState::Reserved, UnitState::Stock, now).await?;
            return Err(BuyFailure::Refused(Refusal::InsufficientFunds));
        }
        Err(e) => return Err(BuyFailure::Internal(e.into())),
    };
    let partner = r.partner.to_string();
    let new = NewPurchase {
        project: project.id,
        unit: unit.clone(),
        price,
        partner: partner.clone(),
        token: r.token.clone(),
        custom_id: r.custom_id.clone(),
    };
    batch.purchases.push((buy_id, new));
    // From here on nothing can refuse: the batch's view moves on.
    let balance = debit.balances.available();
    batch.books.insert(project.id, (debit, owner));
    batch.sales = credit;
    batch.next_id += 1;
    batch.transfers.push(DecidedTransfer { spec, entries, owners: [owner, batch.sales_owner] });
    let purchase = Purchase {
        id: buy_id,
        project: project.id,
        unit_id: unit.id,
        game: unit.game,
        name: unit.name,
        classid: unit.classid,
        price,
        partner,
        token: r.token.clone(),
        custom_id: r.custom_id.clone(),
        status: PurchaseStatus::CreatingTrade,
        tradeofferid: None,
        error_reason: None,
        sent_at: None,
        accepted_at: None,
        watch_until: None,
        created_at: now,
    };
    let body = serde_json::to_string(&super::record(&purchase)).map_err(|e| BuyFailure::Internal(e.into()))?;
    batch.events.push(event(project, EventType::BuyItem, super::buy_item_data(&purchase), now));
    batch.events.push(event(project, EventType::BalanceChange, json!({"balance_value": balance.to_wire()}), now));
    Ok(body)
}
