//! The trade watcher: a background task that observes every open deposit offer and every held deposit,
//! and moves them on through [`super::transitions`].
//!
//! # Rules
//! - Steam flaps (an accepted offer is observed as active again now and then), so an observation is acted on
//!   only when it equals the previous one ([`skingate_core::deposit::next_statuses`]). The previous
//!   observation is kept in memory: after a restart the watcher simply needs two fresh observations again,
//!   which is the safe side. When an observation changes, the deposit is looked at again after
//!   `trade_confirm_delay_ms` instead of the full `trade_poll_interval_ms`, so an accepted trade is credited
//!   within milliseconds.
//! - An offer is ours only if its partner is the deposit's payer and its items are the deposit's items
//!   (asset id *and* class id): a rollback reported on anything else changes nothing.
//! - A held deposit succeeds when `hold_until` has passed and two agreeing observations show its trade not
//!   reversed; a Steam error is no observation (it never counts as accepted).
//!
//! Everything it needs is in the database: after a restart it resumes from the rows. It wakes on
//! [`crate::AppState::wake_deposits`] (a new offer was sent) or [`crate::AppState::offer_changed`] (Steam
//! says an offer changed: the simulator's change listener should call it), or every poll interval.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use skingate_core::deposit::{self, DepositStatus, HOLD_SECS, Observed, Protection};
use skingate_core::project::{HoldPolicy, Project, ProjectId};
use skingate_steam::SteamId;
use skingate_steam::catalogue::Game;
use skingate_steam::enums::OfferState;
use skingate_steam::sim::Offer;
use skingate_store::deposits::{Deposit, OfferRecord, StatusChange};
use tokio_util::sync::CancellationToken;

use super::{transitions, wire};
use crate::state::AppState;

/// Deposits read per page of a round.
const PAGE: u32 = 500;

/// Runs until `shutdown`.
///
/// Two kinds of rounds: a **full** round reads every watched deposit from the database (every
/// `trade_poll_interval_ms`, and when woken without a named offer: a new offer was sent); a **focused**
/// round looks only at deposits whose offer was named by [`AppState::offer_changed`] or whose observation
/// just changed and awaits confirmation, `trade_confirm_delay_ms` later. Focused rounds keep the time from
/// acceptance to callback independent of how many deposits are open.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let poll = Duration::from_millis(state.config.trade_poll_interval_ms.max(1));
    let confirm = Duration::from_millis(state.config.trade_confirm_delay_ms);
    let mut seen = Seen::default();
    let mut full = true;
    let mut focus: HashSet<i64> = HashSet::new();
    let mut last_full = tokio::time::Instant::now();
    let mut unresolved: Vec<u64> = Vec::new();
    loop {
        // A deposit whose observation keeps changing must not starve the others (and their hold timers).
        full |= last_full.elapsed() >= poll;
        if full {
            last_full = tokio::time::Instant::now();
        }
        let looked = if full { round(&state, &mut seen).await } else { focused(&state, &mut seen, &focus).await };
        let recheck = looked.unwrap_or_else(|e| {
            tracing::warn!(error = format!("{e:#}"), "deposit watcher round failed");
            HashSet::new()
        });
        // Deposits looked at because their offer changed are looked at once more soon, even if nothing seemed
        // to change: the change may have been hidden by a flap on this look.
        let owed: Vec<i64> = focus.drain().filter(|id| seen.woken.remove(id)).collect();
        focus = recheck.into_iter().chain(owed).collect();
        // Named offers the last full round had not seen yet are known now.
        for offer in std::mem::take(&mut unresolved) {
            if let Some(id) = seen.by_offer.get(&offer).copied() {
                seen.woken.insert(id);
                focus.insert(id);
            }
        }
        let wait = if focus.is_empty() { poll } else { confirm };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = state.deposits_wake.notified() => {
                let named = state.take_changed_offers();
                for offer in &named {
                    match seen.by_offer.get(offer).copied() {
                        Some(id) => {
                            seen.woken.insert(id);
                            focus.insert(id);
                        }
                        None => unresolved.push(*offer),
                    }
                }
                // A full round asked for (a new offer, a hold ended; its wake-up may have merged with named
                // offers'), nothing named, or an offer not seen yet: read everything.
                full = state.take_full_round() || named.is_empty() || !unresolved.is_empty();
            }
            () = tokio::time::sleep(wait) => full = focus.is_empty(),
        }
    }
}

/// The watcher's memory between rounds.
#[derive(Debug, Default)]
pub struct Seen {
    /// Each watched deposit's project and previous observation.
    deposits: HashMap<i64, (ProjectId, Option<Observed>)>,
    /// Deposit id by Steam offer id.
    by_offer: HashMap<u64, i64>,
    /// Deposits named by a change notice, owed one more look.
    woken: HashSet<i64>,
}

/// Looks at one deposit and remembers the observation; returns whether to confirm it soon.
async fn look(
    state: &AppState,
    seen: &mut Seen,
    projects: &mut HashMap<ProjectId, Arc<Project>>,
    dep: &Deposit,
) -> anyhow::Result<bool> {
    let project = match projects.get(&dep.project) {
        Some(p) => p.clone(),
        None => match state.project(dep.project).await? {
            Some(p) => projects.entry(dep.project).or_insert(p).clone(),
            None => return Ok(false),
        },
    };
    let previous = seen.deposits.get(&dep.id).and_then(|(_, o)| *o);
    let (observed, again) = check(state, &project, dep, previous).await?;
    seen.deposits.insert(dep.id, (dep.project, observed));
    if let Some(offer) = dep.offer_id.as_deref().and_then(|o| o.parse().ok()) {
        seen.by_offer.insert(offer, dep.id);
    }
    Ok(again)
}

/// One pass over every watched deposit; returns those whose observation changed and should be confirmed
/// soon.
pub async fn round(state: &AppState, seen: &mut Seen) -> anyhow::Result<HashSet<i64>> {
    let mut after = 0;
    let mut recheck = HashSet::new();
    let mut projects = HashMap::new();
    fail_stuck_sends(state, &mut projects).await?;
    let mut alive = HashSet::with_capacity(seen.deposits.len());
    loop {
        let batch = state.store.watched_deposits(after, PAGE).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        for dep in batch {
            alive.insert(dep.id);
            match look(state, seen, &mut projects, &dep).await {
                Ok(true) => {
                    recheck.insert(dep.id);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(deposit = dep.id, error = format!("{e:#}"), "checking a deposit failed"),
            }
        }
    }
    // Deposits no longer watched (decided) are forgotten.
    seen.deposits.retain(|id, _| alive.contains(id));
    seen.by_offer.retain(|_, id| alive.contains(id));
    seen.woken.retain(|id| alive.contains(id));
    Ok(recheck)
}

/// Settles deposits whose offer started sending more than [`super::SEND_GRACE_SECS`] ago and was never
/// recorded: the send was interrupted (a crash between Steam's answer and the record). If Steam holds the
/// offer that send made (still open, or accepted: the payer's items may be on their way), the deposit adopts
/// it and goes on as if it had been recorded. Otherwise, a hosted-page send begun by an earlier process (it
/// crashed; nothing can finish that send) is put back as the send found it, for the payer to send again; any
/// other fails, with what it held before the send put back
/// ([`skingate_store::deposits::DepositTx::end_sending`]), in a transaction that requires "still no offer", so
/// a send that finishes late finds the deposit failed and cancels its offer, and one that finished first is
/// left alone: never two offers, never an unwatched one. While Steam cannot answer, nothing is decided.
async fn fail_stuck_sends(state: &AppState, projects: &mut HashMap<ProjectId, Arc<Project>>) -> anyhow::Result<()> {
    let stuck = state.store.stuck_sending(state.now() - super::SEND_GRACE_SECS, PAGE).await?;
    for dep in stuck {
        match adopt_interrupted_send(state, &dep).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(deposit = dep.id, error = format!("{e:#}"), "looking for an interrupted send's offer");
                continue;
            }
        }
        if dep.updated_at < state.started_at && !api_call_unanswered(state, &dep).await? {
            // A hosted-page send of an earlier process, which nothing can still finish: the deposit is put back
            // as the send found it (no status change, no callback), as a send that fails on its own is, so a
            // payer can send again. (A send of this process is failed below: it may yet finish late.)
            let mut tx = state.store.begin().await?;
            let released = tx.end_sending(dep.id, state.now()).await?;
            tx.commit().await?;
            if released {
                tracing::warn!(deposit = dep.id, "offer send interrupted by a restart; released for the payer");
            }
            continue;
        }
        let project = match projects.get(&dep.project) {
            Some(p) => p.clone(),
            None => match state.project(dep.project).await? {
                Some(p) => projects.entry(dep.project).or_insert(p).clone(),
                None => continue,
            },
        };
        // Failed without an offer: what the send wrote (its account, game, items) is put back with the failure,
        // as a send that fails on its own does.
        let change = StatusChange {
            fail_reason: Some("trade_create_error".into()),
            release_send: true,
            ..StatusChange::default()
        };
        let steps = [(DepositStatus::Fail, change)];
        let unsent = |d: &Deposit| d.offer_id.is_none() && d.status == DepositStatus::Pending;
        match transitions::apply_if(state, &project, dep.id, &steps, unsent).await {
            Ok(transitions::Applied::Done(_)) => tracing::warn!(deposit = dep.id, "offer send interrupted; failed"),
            Ok(transitions::Applied::Refused(_)) => {}
            Err(e) => tracing::warn!(deposit = dep.id, error = format!("{e:#}"), "failing a stuck send failed"),
        }
    }
    Ok(())
}

/// Whether `dep` was being sent for a `create_from_user_inventory` call that got no answer (its order key has
/// no stored response yet; a `create` stores its answer with the deposit). Such a deposit is failed, with its
/// callback, rather than put back: the merchant's call failed and nobody is on a page to send again.
async fn api_call_unanswered(state: &AppState, dep: &Deposit) -> anyhow::Result<bool> {
    use skingate_types::deposits::method::CREATE_FROM_USER_INVENTORY;
    for scope in [super::ORDER_SCOPE, CREATE_FROM_USER_INVENTORY] {
        let key =
            skingate_store::IdempotencyKey { project: dep.project, scope: scope.into(), key: dep.order_id.clone() };
        if let Some((_, None)) = state.store.idempotency_record(&key).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records on `dep` the offer its interrupted send made, if Steam has one that is open or accepted (sent to
/// the payer since the send began, asking for exactly the deposit's items); true if it did.
async fn adopt_interrupted_send(state: &AppState, dep: &Deposit) -> anyhow::Result<bool> {
    let Some(partner) = dep.steam_id.as_deref().and_then(|s| s.parse::<SteamId>().ok()) else { return Ok(false) };
    let receive: Vec<u64> = dep.items.iter().filter_map(|i| i.asset_id.parse().ok()).collect();
    // `updated_at` is when the send began: nothing else writes a deposit in the sending state.
    let Some(offer) = state.find_sent_offer(partner, dep.updated_at, &[], &receive).await? else { return Ok(false) };
    let record = OfferRecord {
        steam_id: partner.to_string(),
        trade_token: dep.trade_token.clone().unwrap_or_default(),
        game: dep.game.clone().unwrap_or_default(),
        offer_id: offer.id.to_string(),
        bot_steam_id: offer.bot.steam_id.to_string(),
        bot_name: offer.bot.name.clone(),
        offer_date: offer.created_at,
        offer_expires_at: offer.expires_at,
        items: dep.items.clone(),
    };
    state.steam_sync().await?;
    let mut tx = state.store.begin().await?;
    let recorded = tx.record_offer(dep.id, &record, state.now()).await?;
    tx.commit().await?;
    if recorded {
        tracing::warn!(deposit = dep.id, offer = offer.id, "adopted the offer of an interrupted send");
        state.wake_deposits();
    }
    Ok(recorded)
}

/// A pass over the named deposits only.
async fn focused(state: &AppState, seen: &mut Seen, ids: &HashSet<i64>) -> anyhow::Result<HashSet<i64>> {
    let mut recheck = HashSet::new();
    let mut projects = HashMap::new();
    for id in ids {
        let Some(project) = seen.deposits.get(id).map(|(p, _)| *p) else { continue };
        let Some(dep) = state.store.deposit(project, *id).await? else { continue };
        if dep.status.is_final() {
            continue;
        }
        match look(state, seen, &mut projects, &dep).await {
            Ok(true) => {
                recheck.insert(dep.id);
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(deposit = dep.id, error = format!("{e:#}"), "checking a deposit failed"),
        }
    }
    Ok(recheck)
}

/// Whether Steam's offer is the deposit's trade: same counterparty, same items (asset and class ids).
fn is_ours(dep: &Deposit, offer: &Offer) -> bool {
    let partner = dep.steam_id.as_deref() == Some(offer.partner.to_string().as_str());
    let mut want: Vec<(&str, &str)> = dep.items.iter().map(|i| (i.asset_id.as_str(), i.classid.as_str())).collect();
    let got_owned: Vec<(String, String)> =
        offer.items.iter().map(|a| (a.asset_id.to_string(), a.classid.to_string())).collect();
    let mut got: Vec<(&str, &str)> = got_owned.iter().map(|(a, c)| (a.as_str(), c.as_str())).collect();
    want.sort_unstable();
    got.sort_unstable();
    partner && want == got
}

/// The observation of an offer, and the failure reason it implies.
fn classify(dep: &Deposit, offer: &Offer) -> (Observed, &'static str) {
    if !is_ours(dep, offer) {
        tracing::warn!(deposit = dep.id, offer = offer.id, "offer does not match its deposit; ignored");
        return (Observed::Open, "");
    }
    if offer.trade_status.is_some_and(|t| t.is_rolled_back()) {
        return (Observed::RolledBack, "reversed");
    }
    match offer.state {
        OfferState::Accepted => (Observed::Accepted, ""),
        OfferState::Declined => (Observed::Failed, "declined"),
        OfferState::Countered => (Observed::Failed, "countered"),
        OfferState::Expired => (Observed::Failed, "expired"),
        OfferState::Canceled | OfferState::CanceledBySecondFactor => (Observed::Failed, "canceled"),
        OfferState::InvalidItems => (Observed::Failed, "invalid_items"),
        s if s.is_failed() => (Observed::Failed, "trade_failed"),
        _ => (Observed::Open, ""),
    }
}

/// Looks at one deposit: what Steam shows now (if it shows the offer), and whether that changed and should
/// be confirmed soon.
async fn check(
    state: &AppState,
    project: &Project,
    dep: &Deposit,
    previous: Option<Observed>,
) -> anyhow::Result<(Option<Observed>, bool)> {
    let now = state.now();
    let game = dep.game.as_deref().and_then(Game::parse);
    // Every CS2 trade is protected: since July 2025 Steam puts Trade Protection on all CS2 items a trade moves
    // (the receiver sees them in context 16 for 7 days and the giver can reverse), and the simulator models
    // exactly that. The received items carry nothing that could exempt them (they come from the payer's
    // context 2), so FLOWS.md's "unprotected CS2" has no case today; Dota 2 and Rust are never protected.
    let protection = Protection {
        protected: game == Some(Game::Cs2),
        credit_early: project.settings.hold_policy == HoldPolicy::CreditEarly,
    };
    let offer_id = dep.offer_id.as_deref().and_then(|s| s.parse().ok());
    let observed = match offer_id {
        Some(id) => Some(state.steam.offer(id).await),
        None => None,
    };
    // A pending deposit's offer that is gone (see `AppState::offer_gone`) once it would have expired: no trade
    // can come of it, like an expired offer. Held deposits are left alone: their items did move, and only
    // observations that show no reversal end a hold.
    let lost = dep.status == DepositStatus::Pending
        && observed.as_ref().is_some_and(|o| state.offer_gone(o))
        && dep.offer_expires_at.is_some_and(|at| now >= at);
    if lost {
        let steps = deposit::next_statuses(dep.status, previous, Observed::Failed, protection, dep.hold_until, now);
        apply(state, project, dep, &steps, None, "expired").await?;
        return Ok((Some(Observed::Failed), previous != Some(Observed::Failed)));
    }
    let Some(offer) = observed.and_then(Result::ok) else {
        // Steam cannot show the trade: that is no observation at all (never an acceptance), and it breaks the
        // chain of agreeing observations, so a hold only ends once two fresh looks agree again.
        tracing::debug!(deposit = dep.id, "Steam cannot show the deposit's offer; nothing decided");
        return Ok((None, false));
    };
    let (current, reason) = classify(dep, &offer);
    let changed = previous != Some(current);
    let steps = deposit::next_statuses(dep.status, previous, current, protection, dep.hold_until, now);
    apply(state, project, dep, &steps, Some(&offer), reason).await?;
    Ok((Some(current), changed && current != Observed::Open))
}

/// Builds each step's recorded fields and applies them.
async fn apply(
    state: &AppState,
    project: &Project,
    dep: &Deposit,
    steps: &[DepositStatus],
    offer: Option<&Offer>,
    reason: &str,
) -> anyhow::Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let now = state.now();
    let mut planned = Vec::with_capacity(steps.len());
    for to in steps {
        let mut change = StatusChange::default();
        match (dep.status, to, offer) {
            (DepositStatus::Pending, DepositStatus::Success | DepositStatus::InHold, Some(offer)) => {
                let items = wire::received_items(&offer.items);
                let prices: Vec<u64> = items.iter().map(|i| i.price_cents).collect();
                let amounts = deposit::compute_amounts(&prices, dep.fee_ppm, dep.multiplier_ppm)?;
                change.accepted_at = Some(now);
                change.amount_usd = Some(amounts.net);
                change.user_amount_usd = Some(amounts.user);
                change.amounts = Some(wire::amounts_record(&state.rates(), dep, &amounts, &items));
                change.items = Some(items);
                if *to == DepositStatus::InHold {
                    change.hold_until = Some(now + HOLD_SECS);
                }
            }
            (_, DepositStatus::Fail | DepositStatus::HoldReturned, _) => {
                change.fail_reason = Some(if reason.is_empty() { "reversed" } else { reason }.to_owned());
            }
            _ => {}
        }
        planned.push((*to, change));
    }
    if let transitions::Applied::Refused(now_at) = transitions::apply(state, project, dep.id, &planned).await? {
        tracing::debug!(deposit = dep.id, status = %now_at, "deposit moved meanwhile; nothing done");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use skingate_core::project::ProjectId;
    use skingate_steam::SteamId;
    use skingate_steam::enums::TradeStatus;
    use skingate_steam::sim::{Bot, Party};
    use skingate_steam::users::Asset;
    use skingate_store::deposits::DepositItem;

    use super::*;

    fn asset(id: u64, classid: u64) -> Asset {
        Asset {
            asset_id: id,
            game: Game::Cs2,
            context_id: 2,
            classid,
            instance_id: 0,
            market_hash_name: "AK-47 | Redline (Field-Tested)".into(),
            price_cents: 1_000,
            tradable: true,
        }
    }

    fn deposit(payer: SteamId) -> Deposit {
        Deposit {
            id: 1,
            project: ProjectId(1),
            order_id: "o".into(),
            page_token: "t".into(),
            status: DepositStatus::InHold,
            steam_id: Some(payer.to_string()),
            trade_token: None,
            game: Some("cs2".into()),
            currency: "usd".into(),
            min_usd: None,
            max_usd: None,
            min_text: None,
            max_text: None,
            multiplier_ppm: 1_000_000,
            fee_ppm: 0,
            result_url: None,
            success_url: None,
            fail_url: None,
            offer_id: Some("7".into()),
            bot_steam_id: None,
            bot_name: None,
            offer_date: None,
            offer_expires_at: None,
            items: vec![DepositItem {
                asset_id: "11".into(),
                classid: "22".into(),
                context_id: 2,
                market_hash_name: "AK-47 | Redline (Field-Tested)".into(),
                price_cents: 1_000,
            }],
            accepted_at: Some(0),
            hold_until: Some(100),
            amount_usd: None,
            user_amount_usd: None,
            amounts: None,
            fail_reason: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn offer(partner: SteamId, items: Vec<Asset>, state: OfferState, rolled_back: bool) -> Offer {
        Offer {
            id: 7,
            partner,
            state,
            items,
            items_to_give: vec![],
            bot: Bot { steam_id: SteamId::from_account_id(5).unwrap(), name: "Kestrel".into() },
            created_at: 0,
            escrow_ends_at: None,
            expires_at: 0,
            trade_status: Some(if rolled_back { TradeStatus::TradeProtectionRollback } else { TradeStatus::Complete }),
            reversed_by: rolled_back.then_some(Party::Partner),
        }
    }

    #[test]
    fn a_reversal_counts_only_for_the_deposits_counterparty_and_items() {
        let payer = SteamId::from_account_id(1).unwrap();
        let other = SteamId::from_account_id(2).unwrap();
        let dep = deposit(payer);
        let ours = offer(payer, vec![asset(11, 22)], OfferState::Accepted, true);
        assert_eq!(classify(&dep, &ours).0, Observed::RolledBack);
        // Same asset id, different item (class): not our trade.
        let swapped = offer(payer, vec![asset(11, 23)], OfferState::Accepted, true);
        assert_eq!(classify(&dep, &swapped).0, Observed::Open);
        // Same items, another counterparty: not our trade.
        let stranger = offer(other, vec![asset(11, 22)], OfferState::Accepted, true);
        assert_eq!(classify(&dep, &stranger).0, Observed::Open);
        assert_eq!(
            classify(&dep, &offer(payer, vec![asset(11, 22)], OfferState::Accepted, false)).0,
            Observed::Accepted
        );
        assert_eq!(
            classify(&dep, &offer(payer, vec![asset(11, 22)], OfferState::Declined, false)),
            (Observed::Failed, "declined")
        );
    }
}
