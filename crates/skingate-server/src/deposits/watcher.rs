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
//! - A held deposit succeeds when `hold_until` has passed and its trade was not seen reversed.
//!
//! Everything it needs is in the database: after a restart it resumes from the rows. It wakes on
//! [`crate::AppState::deposits_wake`] (a new offer, an operator action) or every poll interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use skingate_core::deposit::{self, DepositStatus, HOLD_SECS, Observed, Protection};
use skingate_core::project::{HoldPolicy, Project, ProjectId};
use skingate_steam::catalogue::Game;
use skingate_steam::enums::OfferState;
use skingate_steam::sim::Offer;
use skingate_store::deposits::{Deposit, StatusChange};
use tokio_util::sync::CancellationToken;

use super::{transitions, wire};
use crate::state::AppState;

/// Deposits read per page of a round.
const PAGE: u32 = 500;

/// Runs until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let poll = Duration::from_millis(state.config.trade_poll_interval_ms.max(1));
    let confirm = Duration::from_millis(state.config.trade_confirm_delay_ms);
    let mut woken = false;
    let mut seen = Seen::default();
    loop {
        let recheck = round(&state, &mut seen).await.unwrap_or_else(|e| {
            tracing::warn!(error = format!("{e:#}"), "deposit watcher round failed");
            false
        });
        // After a wake-up look again soon even if nothing seemed to change: the change that woke us may have
        // been hidden by a flap on this look.
        let wait = if recheck || woken { confirm } else { poll };
        woken = false;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = state.deposits_wake.notified() => woken = true,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The watcher's memory between rounds: each watched deposit's previous observation.
#[derive(Debug, Default)]
pub struct Seen(HashMap<i64, Observed>);

/// One pass over every watched deposit; true when some observation changed and should be confirmed soon.
pub async fn round(state: &AppState, seen: &mut Seen) -> anyhow::Result<bool> {
    let mut after = 0;
    let mut recheck = false;
    let mut projects: HashMap<ProjectId, Arc<Project>> = HashMap::new();
    let mut watched = HashMap::with_capacity(seen.0.len());
    loop {
        let batch = state.store.watched_deposits(after, PAGE).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        for dep in batch {
            let project = match projects.get(&dep.project) {
                Some(p) => p.clone(),
                None => match state.project(dep.project).await? {
                    Some(p) => projects.entry(dep.project).or_insert(p).clone(),
                    None => continue,
                },
            };
            let previous = seen.0.get(&dep.id).copied();
            match check(state, &project, &dep, previous).await {
                Ok((observed, again)) => {
                    recheck |= again;
                    if let Some(o) = observed {
                        watched.insert(dep.id, o);
                    }
                }
                Err(e) => tracing::warn!(deposit = dep.id, error = format!("{e:#}"), "checking a deposit failed"),
            }
        }
    }
    // Deposits no longer watched (decided) are forgotten.
    seen.0 = watched;
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
    let protection = Protection {
        protected: game == Some(Game::Cs2),
        credit_early: project.settings.hold_policy == HoldPolicy::CreditEarly,
    };
    let offer_id = dep.offer_id.as_deref().and_then(|s| s.parse().ok());
    let offer = match offer_id {
        Some(id) => state.steam.offer(id).await.ok(),
        None => None,
    };
    let Some(offer) = offer else {
        // Steam cannot show the trade: only the clock can end a hold.
        let steps = deposit::next_statuses(dep.status, None, Observed::Accepted, protection, dep.hold_until, now);
        return apply(state, project, dep, &steps, None, "").await.map(|()| (None, false));
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
