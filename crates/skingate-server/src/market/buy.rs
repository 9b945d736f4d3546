//! The buy path, group-committed.
//!
//! A buy is a handful of small writes (reserve the unit, the pending ledger transfer, the purchase row, two
//! outbox events, the idempotency key) and one disk flush at commit. The flush dominates, so buys are not
//! committed one by one: each request is queued to a single writer task, which takes everything queued (up to
//! `market_batch_max`), runs each buy inside its own SAVEPOINT of ONE transaction, and commits once; the
//! commit answers every buy of the batch (TigerBeetle-style batching, like the dispatcher's attempt
//! recording). While a batch commits the next one queues, so the batch size follows the load.
//!
//! Correctness is per buy, inside the batch: a refused buy (no funds, unit gone, price above `max_price`,
//! `custom_id` reused for another request) rolls back to its savepoint and leaves the others alone; buys run
//! one after another on the single writer connection, so two buyers of the last unit see each other's
//! reservation (exactly one wins) and a repeated `custom_id` sees the first request's stored answer (replay).
//! Nothing is answered before the commit, so no answer ever describes an uncommitted purchase.

use std::collections::HashMap;
use std::sync::Arc;

use skingate_core::Money;
use skingate_core::events::EventType;
use skingate_core::ledger::{AccountId, AccountKind, LedgerError};
use skingate_core::market::{Pricing, PurchaseStatus, reserve};
use skingate_core::project::{Project, ProjectId};
use skingate_steam::catalogue::Game;
use skingate_steam::ids::SteamId;
use skingate_store::market::{NewPurchase, Purchase, UnitPick, UnitState};
use skingate_store::{Claim, IdempotencyKey, Store, StoreError, WriteTx};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::error::ApiError;
use crate::events;
use crate::state::AppState;

/// Idempotency scope of `custom_id`, shared by `market_buy` and `market_batch_buy` items.
pub const CUSTOM_ID_SCOPE: &str = "market_buy";

/// Savepoint name of one buy inside a batch.
const SAVEPOINT: &str = "market_buy";

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

/// Runs a batch in one transaction, each buy in its own savepoint. An error here (not a refusal) means the
/// transaction is unusable and nothing of the batch commits.
async fn run_batch(
    store: &dyn Store,
    jobs: &[BuyJob],
    now: i64,
    pricing: Pricing,
) -> Result<Vec<Result<Bought, BuyFailure>>, StoreError> {
    let mut tx = store.begin().await?;
    let sales = tx.system_account(AccountKind::MarketSales).await?;
    let mut accounts = HashMap::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        tx.savepoint(SAVEPOINT).await?;
        let mut ctx = BuyCtx { sales, accounts: &mut accounts, now, pricing };
        match buy_one(tx.as_mut(), &job.project, &job.request, &mut ctx).await {
            Ok(bought) => {
                tx.release_savepoint(SAVEPOINT).await?;
                outcomes.push(Ok(bought));
            }
            Err(failure) => {
                tx.rollback_to_savepoint(SAVEPOINT).await?;
                outcomes.push(Err(failure));
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

struct BuyCtx<'a> {
    sales: AccountId,
    accounts: &'a mut HashMap<ProjectId, AccountId>,
    now: i64,
    pricing: Pricing,
}

/// One buy inside the batch's transaction (inside its savepoint).
async fn buy_one(
    tx: &mut dyn WriteTx,
    project: &Project,
    r: &BuyRequest,
    ctx: &mut BuyCtx<'_>,
) -> Result<Bought, BuyFailure> {
    let now = ctx.now;
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
    let pick = match &r.pick {
        Pick::Id(id) => UnitPick::Id(*id),
        Pick::Name { game, name } => UnitPick::Cheapest {
            game: game.code().to_owned(),
            name: name.clone(),
            max_reference: r.max_price.map(|m| ctx.pricing.max_reference(m)),
        },
    };
    let Some(unit) = tx.pick_unit(&pick).await? else {
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
    let price = ctx.pricing.price(unit.reference).ok_or(BuyFailure::Refused(Refusal::Unavailable))?;
    if r.max_price.is_some_and(|max| price > max) {
        return Err(BuyFailure::Refused(Refusal::NotAtPrice));
    }
    if !price.is_positive() || !tx.move_unit(unit.id, UnitState::Stock, UnitState::Reserved, now).await? {
        return Err(BuyFailure::Refused(Refusal::Unavailable));
    }
    let partner = r.partner.to_string();
    let new = NewPurchase {
        project: project.id,
        unit: unit.clone(),
        price,
        partner: partner.clone(),
        token: r.token.clone(),
        custom_id: r.custom_id.clone(),
    };
    let buy_id = tx.insert_purchase(&new, now).await?;
    let account = match ctx.accounts.get(&project.id) {
        Some(a) => *a,
        None => {
            let a = tx.project_account(project.id).await?;
            ctx.accounts.insert(project.id, a);
            a
        }
    };
    match tx.transfer(&reserve(buy_id, account, ctx.sales, price), now).await {
        Ok(_) => {}
        Err(StoreError::Ledger(LedgerError::InsufficientFunds)) => {
            return Err(BuyFailure::Refused(Refusal::InsufficientFunds));
        }
        Err(e) => return Err(e.into()),
    }
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
    events::emit(tx, project, EventType::BuyItem, super::buy_item_data(&purchase), now).await?;
    events::emit_balance_change(tx, project, now).await?;
    let body = serde_json::to_string(&super::record(&purchase)).map_err(|e| BuyFailure::Internal(e.into()))?;
    if let Some(key) = &key {
        tx.store_idempotent_response(key, &body).await?;
    }
    Ok(Bought::Fresh(body.into_bytes()))
}
