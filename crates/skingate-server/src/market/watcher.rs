//! The purchase watcher: moves purchases through `skingate_core::market::transition` as Steam reports.
//!
//! Each round (woken by a buy, or every `market_poll_interval_ms`) it reads the purchases due
//! (`next_check_at` on the shared clock) and, per purchase:
//! - `creating_trade`: sends the bot → user offer (`items_to_give` = the unit); the answer is the gateway's own
//!   action, so it is applied at once: `waiting_accept` with the offer id, or `invalid_trade_token`,
//!   `user_not_tradable`, `trade_create_error` (refund);
//! - `waiting_accept`: after 10 minutes from sending, cancels the offer (`timeout`, refund) if Steam still lets
//!   it; otherwise observes it: accepted → `accepted` (money posted), declined/countered/expired → `canceled`
//!   (refund);
//! - `accepted`, until Trade Protection ends: observes the trade; a reversal → `rollback_user` (the partner
//!   reversed: refund, unit back to stock) or `rollback_supplier` (the bot side reversed: refund).
//!
//! Purchases waiting for the user are observed every clock second from the watcher's memory (the database
//! keeps only their 10-minute deadline, so polling writes nothing; a watcher that starts reloads them all).
//! Purchases up to the highest id when it starts may have had their offer sent by a process that stopped
//! before recording it: Steam is asked for such an offer before one is sent. Accepted trades are checked
//! hourly until Trade Protection ends, and become final only once two looks after its end agree that the
//! trade stands (a reversal in the last hour counts).
//!
//! Steam flaps (an accepted offer is seen once as active), so an observation is acted on only when the next
//! one agrees ([`Confirmation`]); a purchase with an unconfirmed observation is looked at again on the next
//! round. All transitions of a round commit in one transaction (events written together at its end), each with
//! its `status_change` event and, when the spendable balance moves, `balance_change`. A transition is applied only
//! if the purchase is still in the status it was read in, so a transition (and its refund) happens once.

use std::collections::HashMap;
use std::time::Duration;

use skingate_core::events::EventType;
use skingate_core::ledger::AccountKind;
use skingate_core::ledger::{self, Account, AccountId, Transfer, TransferSpec};
use skingate_core::market::{
    Confirmation, MoneyStep, OFFER_TIMEOUT_SECS, PurchaseStatus, TradeEvent, UnitStep, money_transfer, reserve,
    transition,
};
use skingate_steam::catalogue::Game;
use skingate_steam::enums::OfferState;
use skingate_steam::ids::{SteamId, TradeUrl};
use skingate_steam::sim::{NewOffer, Party, SteamError, TRADE_PROTECTION_SECS};
use skingate_steam::users::Asset;
use skingate_store::StoreError;
use skingate_store::market::{BulkEvent, DecidedTransfer, Purchase, PurchaseUpdate, UnitState};
use tokio_util::sync::CancellationToken;

use crate::events;
use crate::state::AppState;

/// Purchases looked at per round. Its writes are a fixed number of bulk statements, so a large round costs the
/// single writer little more than a small one (about 10–20 ms for a full one under load); purchases due in the
/// database come first, offers waiting in memory fill the rest. A full round is followed at once by the next.
const ROUND_LIMIT: usize = 1024;
/// Pause between two rounds when the first was full.
const BACKLOG_PAUSE: Duration = Duration::from_millis(5);
/// How often (clock seconds) an open offer is observed when nothing is pending confirmation. Waiting purchases
/// are polled from memory; the database only holds their deadline, so polling writes nothing.
const WAITING_CHECK_SECS: i64 = 1;
/// How often (clock seconds) an accepted trade is checked for a rollback (168 times over Trade Protection).
const ACCEPTED_CHECK_SECS: i64 = 3_600;
/// `next_check_at` of a purchase nothing can happen to any more.
const NEVER: i64 = i64::MAX;

/// How long after a send Steam did not answer the watcher asks Steam whether the offer was made.
const SEND_RECHECK_SECS: i64 = 10;

/// What a round decided for one purchase.
#[derive(Debug, Clone)]
enum Step {
    /// Apply this trade event.
    Apply { purchase: Box<Purchase>, event: TradeEvent, offer: Option<u64>, reason: Option<String> },
    /// Look again at this time (`persist`: in the database; otherwise only in the watcher's memory).
    Recheck { id: i64, at: i64, persist: bool },
    /// Steam did not answer the send (`reason`): look again at `at` ([`Memory::failed_sends`]).
    SendFailed { id: i64, at: i64, reason: String },
}

/// What the watcher remembers between rounds.
#[derive(Debug, Default)]
pub struct Memory {
    /// Observations waiting for a second, agreeing one.
    pending: HashMap<i64, Confirmation<Option<TradeEvent>>>,
    /// Purchases in `waiting_accept`, with when to observe them next.
    waiting: HashMap<i64, (Purchase, i64)>,
    /// Offers sent whose id could not be stored and that could not be cancelled either (accepted already, or
    /// Steam unreachable): their purchases go on with them, never with a second offer for the same unit.
    unrecorded: HashMap<i64, u64>,
    /// Purchases whose send Steam did not answer (unavailable, timed out), with the error. Steam may have made
    /// the offer all the same, so one failed send is not final: the next look asks Steam for an offer of the
    /// unit to the user and goes on with it, and fails the purchase only when there is none.
    failed_sends: HashMap<i64, String>,
    /// The highest purchase id at this watcher's first round. A purchase up to it may have had its offer sent
    /// by an earlier process that stopped before recording it: Steam is asked before anything is sent. (An id,
    /// not a time: a restart within the same clock second must not pass for a fresh purchase.)
    started: Option<i64>,
}

/// Runs rounds until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut memory = Memory::default();
    let interval = Duration::from_millis(state.config.market_poll_interval_ms);
    let coalesce = Duration::from_millis(state.config.market_watch_coalesce_ms);
    loop {
        let started = tokio::time::Instant::now();
        let full = match round(&state, &mut memory).await {
            Ok(seen) => seen >= ROUND_LIMIT,
            Err(e) => {
                tracing::warn!(error = %e, "market watcher round failed");
                false
            }
        };
        if full {
            // A backlog: go on almost at once (the pause bounds the loop should the same purchases keep failing).
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(BACKLOG_PAUSE) => continue,
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            // Buys wake the watcher; those arriving within `coalesce` of this round's start share the next one.
            () = state.market.wake.notified() => tokio::time::sleep_until(started + coalesce).await,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One round: observe what is due, then apply every decision in one transaction. Returns how many purchases
/// it looked at.
pub async fn round(state: &AppState, memory: &mut Memory) -> Result<usize, StoreError> {
    let now = state.now();
    let started = match memory.started {
        Some(id) => id,
        None => {
            let last = state.store.last_purchase_id().await?;
            // The purchases an earlier process left waiting for the user: polled from memory again now, not
            // only at their deadline.
            for p in state.store.purchases_waiting(now.saturating_add(OFFER_TIMEOUT_SECS)).await? {
                memory.waiting.insert(p.id, (p, now));
            }
            *memory.started.insert(last)
        }
    };
    let mut due = state.store.purchases_due(now, ROUND_LIMIT as u32).await?;
    let from_db: std::collections::HashSet<i64> = due.iter().map(|p| p.id).collect();
    for (p, next) in memory.waiting.values() {
        if due.len() >= ROUND_LIMIT {
            break;
        }
        if *next <= now && !from_db.contains(&p.id) {
            due.push(p.clone());
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    let seen = due.len();
    // The asset ids of the units about to be sent, read in one query for the round.
    let sending: Vec<i64> = due
        .iter()
        .filter(|p| p.status == PurchaseStatus::CreatingTrade && p.tradeofferid.is_none())
        .map(|p| p.unit_id)
        .collect();
    let assets: HashMap<i64, i64> =
        state.store.units_by_ids(&sending).await?.into_iter().map(|u| (u.id, u.asset_id)).collect();
    let mut steps = Vec::with_capacity(due.len());
    let sent = Sent { assets: &assets, unrecorded: &memory.unrecorded, failed_sends: &memory.failed_sends, started };
    for p in due {
        steps.push(decide(state, p, now, &mut memory.pending, &sent).await);
    }
    remember_sent_offers(state, &mut steps, &mut memory.unrecorded, now).await;
    // Waiting purchases are rescheduled in memory; everything else goes to the database.
    let mut writes = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::Recheck { id, at, persist: false } => {
                if let Some(entry) = memory.waiting.get_mut(&id) {
                    entry.1 = at;
                }
            }
            Step::SendFailed { id, at, reason } => {
                memory.failed_sends.insert(id, reason);
                writes.push(Step::Recheck { id, at, persist: true });
            }
            other => writes.push(other),
        }
    }
    for (purchase, to) in apply(state, writes, now).await? {
        memory.failed_sends.remove(&purchase.id);
        if to == PurchaseStatus::WaitingAccept {
            memory.waiting.insert(purchase.id, (purchase, now + WAITING_CHECK_SECS));
        } else {
            memory.waiting.remove(&purchase.id);
        }
    }
    Ok(seen)
}

/// What a round knows about the offers it may send.
struct Sent<'a> {
    /// Asset id by unit id, for the units about to be sent.
    assets: &'a HashMap<i64, i64>,
    /// See [`Memory::unrecorded`].
    unrecorded: &'a HashMap<i64, u64>,
    /// See [`Memory::failed_sends`].
    failed_sends: &'a HashMap<i64, String>,
    /// See [`Memory::started`].
    started: i64,
}

async fn decide(
    state: &AppState,
    p: Purchase,
    now: i64,
    pending: &mut HashMap<i64, Confirmation<Option<TradeEvent>>>,
    sent: &Sent<'_>,
) -> Step {
    match p.status {
        PurchaseStatus::CreatingTrade => send(state, p, sent, now).await,
        PurchaseStatus::WaitingAccept => {
            let Some(offer) = p.tradeofferid.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
                return Step::Apply {
                    purchase: Box::new(p),
                    event: TradeEvent::CreateFailed,
                    offer: None,
                    reason: None,
                };
            };
            let deadline = p.sent_at.unwrap_or(p.created_at) + OFFER_TIMEOUT_SECS;
            if now >= deadline && state.steam.cancel_offer(offer).await.is_ok() {
                pending.remove(&p.id);
                let reason = Some("not accepted within 10 minutes; the offer was cancelled".to_owned());
                return Step::Apply { purchase: Box::new(p), event: TradeEvent::TimedOut, offer: None, reason };
            }
            let observed = state.steam.offer(offer).await;
            // The offer is gone (see `AppState::offer_gone`) and the deadline has passed: no trade can come of it.
            let lost = now >= deadline && state.offer_gone(&observed);
            let expired = matches!(&observed, Ok(o) if o.state == OfferState::Expired);
            let seen = match observed {
                Ok(o) if o.state == OfferState::Accepted => Some(TradeEvent::Accepted),
                // Cancelled by us at the deadline in a round whose transaction did not commit: still a timeout.
                Ok(o) if o.state == OfferState::Canceled && now >= deadline => Some(TradeEvent::TimedOut),
                // Steam let it lapse unanswered (its own limit, past ours: the cancel at our deadline did not
                // go through): the user never answered, so a timeout, not a refusal.
                Ok(o) if o.state == OfferState::Expired => Some(TradeEvent::TimedOut),
                Ok(o) if o.state.is_failed() => Some(TradeEvent::Declined),
                _ if lost => Some(TradeEvent::TimedOut),
                Ok(_) | Err(_) => None,
            };
            let next = (now + WAITING_CHECK_SECS).min(deadline.max(now));
            let mut step = confirm(p, seen, next, now, pending, false);
            if let Step::Apply { event: TradeEvent::TimedOut, reason, .. } = &mut step {
                if lost {
                    *reason = Some("not accepted within 10 minutes; Steam no longer knows the offer".to_owned());
                } else if expired {
                    *reason = Some("not accepted; the offer expired at Steam".to_owned());
                }
            }
            step
        }
        PurchaseStatus::Accepted => {
            let until = p.watch_until.unwrap_or(0);
            let Some(offer) = p.tradeofferid.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
                pending.remove(&p.id);
                return Step::Recheck { id: p.id, at: NEVER, persist: true };
            };
            let observed = state.steam.offer(offer).await;
            let seen = match &observed {
                Ok(o) if o.trade_status.is_some_and(|t| t.is_rolled_back()) => match o.reversed_by {
                    Some(Party::Bot) => Some(TradeEvent::ReversedBySupplier),
                    _ => Some(TradeEvent::ReversedByUser),
                },
                Ok(_) | Err(_) => None,
            };
            if now < until {
                return confirm(p, seen, (now + ACCEPTED_CHECK_SECS).min(until), now, pending, true);
            }
            let gone = state.offer_gone(&observed);
            settle(p, observed.map(|_| seen), gone, now, pending)
        }
        _ => Step::Recheck { id: p.id, at: NEVER, persist: true },
    }
}

/// Trade Protection is over (`watch_until`, from the gateway's acceptance, is never before Steam's own end): the
/// purchase becomes final only once two agreeing looks show the trade not reversed, so a reversal made in the
/// last hour, after the last hourly check, is still seen and refunded. A look Steam cannot answer counts for
/// nothing and is tried again in an hour; an offer that is `gone` (`AppState::offer_gone`) cannot show
/// anything any more.
fn settle(
    p: Purchase,
    seen: Result<Option<TradeEvent>, SteamError>,
    gone: bool,
    now: i64,
    pending: &mut HashMap<i64, Confirmation<Option<TradeEvent>>>,
) -> Step {
    let seen = match seen {
        Ok(seen) => seen,
        Err(_) if gone => {
            pending.remove(&p.id);
            return Step::Recheck { id: p.id, at: NEVER, persist: true };
        }
        Err(_) => return Step::Recheck { id: p.id, at: now + ACCEPTED_CHECK_SECS, persist: true },
    };
    match pending.entry(p.id).or_default().observe(seen) {
        Some(None) => {
            pending.remove(&p.id);
            Step::Recheck { id: p.id, at: NEVER, persist: true }
        }
        Some(Some(event)) => {
            pending.remove(&p.id);
            Step::Apply { purchase: Box::new(p), event, offer: None, reason: reason(event) }
        }
        None => Step::Recheck { id: p.id, at: now, persist: true },
    }
}

/// The `error_reason` a failure or rollback records.
fn reason(event: TradeEvent) -> Option<String> {
    let text = match event {
        TradeEvent::Declined => "the user declined the offer",
        TradeEvent::TimedOut => "not accepted within 10 minutes; the offer was cancelled",
        TradeEvent::ReversedByUser => "the user reversed the trade (Trade Protection)",
        TradeEvent::ReversedBySupplier => "the supplier reversed the trade (Trade Protection)",
        _ => return None,
    };
    Some(text.to_owned())
}

/// Acts on an observation only when it repeats; otherwise looks again next round (now) or at `next`.
fn confirm(
    p: Purchase,
    seen: Option<TradeEvent>,
    next: i64,
    now: i64,
    pending: &mut HashMap<i64, Confirmation<Option<TradeEvent>>>,
    persist: bool,
) -> Step {
    match pending.entry(p.id).or_default().observe(seen) {
        Some(Some(event)) => {
            pending.remove(&p.id);
            Step::Apply { purchase: Box::new(p), event, offer: None, reason: reason(event) }
        }
        _ if seen.is_some() => Step::Recheck { id: p.id, at: now, persist },
        _ => {
            pending.remove(&p.id);
            Step::Recheck { id: p.id, at: next, persist }
        }
    }
}

/// Sends the purchase's offer; Steam's answer decides the step. A purchase whose offer was already sent goes
/// on with that offer instead: one recorded by a round whose main transaction failed (see
/// [`remember_sent_offers`]), one this watcher could neither record nor cancel ([`Memory::unrecorded`]), or,
/// for a purchase older than this watcher or whose last send Steam did not answer, one sent and never recorded
/// (Steam is asked; while it cannot answer, nothing is sent). An adopted offer's 10 minutes run from when
/// Steam made it, as a recorded one's run from its recorded `sent_at`.
async fn send(state: &AppState, mut p: Purchase, sent: &Sent<'_>, now: i64) -> Step {
    let known = p.tradeofferid.as_deref().and_then(|s| s.parse::<u64>().ok());
    if let Some(offer) = known.or_else(|| sent.unrecorded.get(&p.id).copied()) {
        return Step::Apply { purchase: Box::new(p), event: TradeEvent::OfferSent, offer: Some(offer), reason: None };
    }
    let assets = sent.assets;
    let game = Game::parse(&p.game).unwrap_or(Game::Cs2);
    let partner = p.partner.parse::<SteamId>().ok().and_then(|id| TradeUrl::new(id, &p.token).ok());
    let Some(partner) = partner else {
        let reason = Some("the trade URL's token is not valid".to_owned());
        return Step::Apply { purchase: Box::new(p), event: TradeEvent::InvalidToken, offer: None, reason };
    };
    let asset = Asset {
        asset_id: assets.get(&p.unit_id).map_or(0, |a| u64::try_from(*a).unwrap_or(0)),
        game,
        context_id: game.context_id(),
        classid: p.classid.parse().unwrap_or(0),
        instance_id: 0,
        market_hash_name: p.name.clone(),
        price_cents: u64::try_from(p.price.minor() / 10).unwrap_or(0),
        tradable: true,
    };
    let failed_send = sent.failed_sends.get(&p.id);
    if p.id <= sent.started || failed_send.is_some() {
        match state.find_sent_offer(partner.steam_id, p.created_at, &[asset.asset_id], &[]).await {
            Ok(Some(offer)) => {
                tracing::warn!(purchase = p.id, offer = offer.id, "adopting an offer sent but never recorded");
                p.sent_at = Some(offer.created_at);
                let offer = Some(offer.id);
                return Step::Apply { purchase: Box::new(p), event: TradeEvent::OfferSent, offer, reason: None };
            }
            // The send Steam did not answer made no offer (two looks agree): the purchase fails.
            Ok(None) if failed_send.is_some() => {
                let reason = failed_send.cloned();
                return Step::Apply { purchase: Box::new(p), event: TradeEvent::CreateFailed, offer: None, reason };
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(purchase = p.id, error = %e, "cannot tell whether an offer was sent; waiting");
                return Step::Recheck { id: p.id, at: now + 1, persist: true };
            }
        }
    }
    // A user whose trades Steam holds in escrow would get the skin days later, long after the purchase's 10
    // minutes: refused before anything is sent, as Steam refuses a trade-banned user.
    if let Ok(days @ 1..) = state.steam.escrow_days(&partner).await {
        let reason = Some(format!("the user's trades are held for {days} day(s) (Steam escrow)"));
        return Step::Apply { purchase: Box::new(p), event: TradeEvent::NotTradable, offer: None, reason };
    }
    let offer = NewOffer { partner, game, items_to_receive: Vec::new(), items_to_give: vec![asset] };
    match state.steam.send_offer(offer).await {
        Ok(id) => Step::Apply { purchase: Box::new(p), event: TradeEvent::OfferSent, offer: Some(id), reason: None },
        // No answer: Steam may have made the offer all the same, so this is not final (see `Memory::failed_sends`).
        Err(e @ SteamError::Unavailable) => {
            tracing::warn!(purchase = p.id, error = %e, "sending an offer got no answer; looking again");
            Step::SendFailed { id: p.id, at: now + SEND_RECHECK_SECS, reason: e.to_string() }
        }
        Err(e) => {
            let event = match e {
                SteamError::InvalidToken => TradeEvent::InvalidToken,
                SteamError::TradeBanned => TradeEvent::NotTradable,
                SteamError::InvalidItems | SteamError::NotFound | SteamError::Unavailable => TradeEvent::CreateFailed,
            };
            Step::Apply { purchase: Box::new(p), event, offer: None, reason: Some(e.to_string()) }
        }
    }
}

/// Stores the offers this round has just sent, in one short transaction of their own, before the round's
/// main transaction moves the purchases on: should that transaction fail, the next round finds each offer id
/// on its purchase (still `creating_trade`) and goes on with it instead of sending a second offer for the same
/// unit. If even this write fails, those offers are cancelled at Steam and their purchases retried next round;
/// an offer that cannot be cancelled (accepted already, or Steam unreachable) is kept in `unrecorded` and its
/// purchase goes on with it next round, so no offer Steam knows of is ever untracked or doubled. One commit
/// per round, not per purchase: the single writer connection is shared with the buy path.
async fn remember_sent_offers(state: &AppState, steps: &mut [Step], unrecorded: &mut HashMap<i64, u64>, now: i64) {
    let sent: Vec<(i64, u64)> = steps
        .iter()
        .filter_map(|step| match step {
            Step::Apply { purchase, event: TradeEvent::OfferSent, offer: Some(id), .. }
                if purchase.tradeofferid.is_none() =>
            {
                Some((purchase.id, *id))
            }
            _ => None,
        })
        .collect();
    if sent.is_empty() {
        return;
    }
    let updates: Vec<PurchaseUpdate> = sent
        .iter()
        .map(|(purchase, offer)| PurchaseUpdate {
            id: *purchase,
            from: PurchaseStatus::CreatingTrade,
            to: PurchaseStatus::CreatingTrade,
            tradeofferid: Some(offer.to_string()),
            error_reason: None,
            sent_at: Some(now),
            accepted_at: None,
            watch_until: None,
            next_check_at: now,
        })
        .collect();
    let stored = async {
        // The offers are saved at Steam (the simulator's records) before the purchases name them.
        state.steam_sync().await?;
        let mut tx = state.store.begin().await?;
        tx.update_purchases(&updates, now).await?;
        tx.commit().await
    };
    let Err(e) = stored.await else {
        for (purchase, _) in &sent {
            unrecorded.remove(purchase);
        }
        return;
    };
    tracing::warn!(error = %e, offers = sent.len(), "could not store sent offers; cancelling them");
    for step in steps.iter_mut() {
        if let Step::Apply { purchase, event: TradeEvent::OfferSent, offer: Some(id), .. } = step
            && purchase.tradeofferid.is_none()
        {
            match state.steam.cancel_offer(*id).await {
                Ok(()) => {
                    unrecorded.remove(&purchase.id);
                }
                Err(e) => {
                    tracing::error!(error = %e, purchase = purchase.id, offer = *id, "an unrecorded offer could not be cancelled; kept");
                    unrecorded.insert(purchase.id, *id);
                }
            }
            *step = Step::Recheck { id: purchase.id, at: now + 1, persist: true };
        }
    }
}

/// Applies a round's steps in one transaction; returns the transitions made. The fast path runs them back to
/// back and writes their events in bulk; if anything fails, the round is run again with each step in its own
/// savepoint, so one broken purchase is skipped (and retried next round) instead of stalling the others.
async fn apply(state: &AppState, steps: Vec<Step>, now: i64) -> Result<Vec<(Purchase, PurchaseStatus)>, StoreError> {
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    // What this round saw or did at Steam (acceptances, cancellations) is durable there before it is acted on.
    state.steam_sync().await?;
    let applied = match apply_round(state, steps.clone(), now, false).await {
        Ok(applied) => applied,
        Err(e) => {
            tracing::warn!(error = %e, "market watcher round failed; retrying step by step");
            apply_round(state, steps, now, true).await?
        }
    };
    if !applied.is_empty() {
        state.events_committed();
    }
    Ok(applied)
}

async fn apply_round(
    state: &AppState,
    steps: Vec<Step>,
    now: i64,
    isolate: bool,
) -> Result<Vec<(Purchase, PurchaseStatus)>, StoreError> {
    let mut tx = state.store.begin().await?;
    let sales = tx.system_account(AccountKind::MarketSales).await?;
    let mut ctx = RoundCtx {
        sales,
        accounts: HashMap::new(),
        events: Vec::new(),
        now,
        in_memory: !isolate,
        books: HashMap::new(),
        transfers: Vec::new(),
    };
    let mut applied = Vec::new();
    if !isolate {
        applied = apply_steps(state, tx.as_mut(), steps, &mut ctx).await?;
    } else {
        for step in steps {
            tx.savepoint("watch").await?;
            let queued = ctx.events.len();
            match apply_steps(state, tx.as_mut(), vec![step], &mut ctx).await {
                Ok(done) => {
                    applied.extend(done);
                    tx.release_savepoint("watch").await?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "market watcher step failed; it is retried next round");
                    ctx.events.truncate(queued);
                    tx.rollback_to_savepoint("watch").await?;
                }
            }
        }
    }
    if !ctx.transfers.is_empty() {
        let accounts: Vec<Account> = ctx.books.into_values().map(|(a, _)| a).collect();
        tx.write_decided_transfers(&accounts, &ctx.transfers, now).await?;
    }
    tx.insert_events_bulk(&ctx.events, now).await?;
    tx.commit().await?;
    Ok(applied)
}

/// What a round's steps share: account ids looked up once, events written together at the end, and (on the
/// fast path) the round's ledger: transfers decided by `ledger::apply` against in-memory balances read once in
/// this transaction, written in bulk at the end.
struct RoundCtx {
    sales: AccountId,
    accounts: HashMap<skingate_core::project::ProjectId, AccountId>,
    events: Vec<BulkEvent>,
    now: i64,
    in_memory: bool,
    books: HashMap<AccountId, (Account, i64)>,
    transfers: Vec<DecidedTransfer>,
}

impl RoundCtx {
    /// An account as the round has left it so far.
    async fn book(
        &mut self,
        tx: &mut dyn skingate_store::WriteTx,
        id: AccountId,
    ) -> Result<(Account, i64), StoreError> {
        if let Some(book) = self.books.get(&id) {
            return Ok(book.clone());
        }
        let book = tx.ledger_account(id).await?;
        self.books.insert(id, book.clone());
        Ok(book)
    }

    /// Applies a transfer: in memory on the fast path (written at the end of the round), else at once.
    async fn transfer(
        &mut self,
        tx: &mut dyn skingate_store::WriteTx,
        spec: TransferSpec,
        pending: Option<TransferSpec>,
    ) -> Result<(), StoreError> {
        if !self.in_memory {
            tx.transfer(&spec, self.now).await?;
            return Ok(());
        }
        let (mut debit, debit_owner) = self.book(tx, spec.debit).await?;
        let (mut credit, credit_owner) = self.book(tx, spec.credit).await?;
        let pending = pending.map(|spec| Transfer { spec, resolved: false });
        let entries = ledger::apply(&spec, &mut debit, &mut credit, pending.as_ref())?;
        self.books.insert(debit.id, (debit, debit_owner));
        self.books.insert(credit.id, (credit, credit_owner));
        self.transfers.push(DecidedTransfer { spec, entries, owners: [debit_owner, credit_owner] });
        Ok(())
    }

    /// The project's spendable balance after this round's changes so far.
    async fn available(
        &mut self,
        tx: &mut dyn skingate_store::WriteTx,
        project: skingate_core::project::ProjectId,
        account: AccountId,
    ) -> Result<skingate_core::Money, StoreError> {
        if self.in_memory {
            Ok(self.book(tx, account).await?.0.balances.available())
        } else {
            Ok(tx.project_balance(project).await?.available)
        }
    }
}

/// Applies steps with a fixed number of statements: their rechecks, their guarded status changes, then, for
/// the purchases that did move, the money (through `ctx`), the units and the events. Returns each purchase
/// that moved, as it is now, with its new status.
async fn apply_steps(
    state: &AppState,
    tx: &mut dyn skingate_store::WriteTx,
    steps: Vec<Step>,
    ctx: &mut RoundCtx,
) -> Result<Vec<(Purchase, PurchaseStatus)>, StoreError> {
    let (sales, now) = (ctx.sales, ctx.now);
    let mut checks = Vec::new();
    let mut moves = Vec::new();
    let mut updates = Vec::new();
    for step in steps {
        let (p, event, offer, reason) = match step {
            Step::Recheck { id, at, .. } | Step::SendFailed { id, at, .. } => {
                checks.push((id, at));
                continue;
            }
            Step::Apply { purchase, event, offer, reason } => (*purchase, event, offer, reason),
        };
        let Some(t) = transition(p.status, event) else { continue };
        let accepted = t.to == PurchaseStatus::Accepted;
        // Trade Protection covers CS2 trades only: a Dota 2 or Rust trade cannot be reversed, so its purchase is
        // settled at once (after the two agreeing looks `settle` asks for) instead of watched for seven days.
        let protected = Game::parse(&p.game) == Some(Game::Cs2);
        let watch_until = if protected { now + TRADE_PROTECTION_SECS } else { now };
        // The offer's 10 minutes run from when it was sent: a recorded or adopted offer keeps that time (a
        // restart between recording the offer and this step must not start them again).
        let sent_at = offer.map(|_| p.sent_at.unwrap_or(now));
        updates.push(PurchaseUpdate {
            id: p.id,
            from: p.status,
            to: t.to,
            tradeofferid: offer.map(|o| o.to_string()),
            error_reason: reason.clone(),
            sent_at,
            accepted_at: accepted.then_some(now),
            watch_until: accepted.then_some(watch_until),
            next_check_at: match t.to {
                // Polled from memory; the database only needs the deadline (and catches up after a restart).
                PurchaseStatus::WaitingAccept => sent_at.unwrap_or(now) + OFFER_TIMEOUT_SECS,
                PurchaseStatus::Accepted => (now + ACCEPTED_CHECK_SECS).min(watch_until),
                _ => NEVER,
            },
        });
        moves.push((p, t, offer, reason));
    }
    if !checks.is_empty() {
        tx.set_next_checks(&checks).await?;
    }
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    // A transition is made only if the purchase is still in the status it was read in.
    let changed: std::collections::HashSet<i64> = tx.update_purchases(&updates, now).await?.into_iter().collect();
    let (mut gone, mut back, mut applied) = (Vec::new(), Vec::new(), Vec::new());
    for (mut p, t, offer, reason) in moves.into_iter().filter(|(p, ..)| changed.contains(&p.id)) {
        if let Some(o) = offer {
            p.tradeofferid = Some(o.to_string());
        }
        if reason.is_some() {
            p.error_reason = reason;
        }
        let project_account = match ctx.accounts.get(&p.project) {
            Some(a) => *a,
            None => {
                let a = tx.project_account(p.project).await?;
                ctx.accounts.insert(p.project, a);
                a
            }
        };
        if let Some(spec) = money_transfer(t.money, p.id, project_account, sales, p.price) {
            // Posting or voiding resolves the reservation made at the buy (same deterministic spec).
            let pending = matches!(t.money, MoneyStep::Post | MoneyStep::Void)
                .then(|| reserve(p.id, project_account, sales, p.price));
            ctx.transfer(tx, spec, pending).await?;
        }
        match t.unit {
            UnitStep::Keep => {}
            UnitStep::Gone => gone.push(p.unit_id),
            UnitStep::BackToStock => back.push(p.unit_id),
        }
        let project = state.project(p.project).await?.ok_or(StoreError::NotFound)?;
        ctx.events.push(events::bulk(&project, EventType::StatusChange, super::status_change_data(&p, t.to), now));
        if matches!(t.money, MoneyStep::Void | MoneyStep::Refund) {
            let balance = ctx.available(tx, p.project, project_account).await?;
            ctx.events.push(events::bulk(
                &project,
                EventType::BalanceChange,
                events::balance_change_data(balance),
                now,
            ));
        }
        p.status = t.to;
        if offer.is_some() {
            p.sent_at = p.sent_at.or(Some(now));
        }
        applied.push((p, t.to));
    }
    if !gone.is_empty() {
        tx.move_units(&gone, &[UnitState::Reserved], UnitState::Gone, now).await?;
    }
    if !back.is_empty() {
        // A unit returns from wherever the trade left it: still reserved, or gone after an accepted trade.
        tx.move_units(&back, &[UnitState::Reserved, UnitState::Gone], UnitState::Stock, now).await?;
    }
    Ok(applied)
}
