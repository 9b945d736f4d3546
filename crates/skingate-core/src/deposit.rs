//! Deposits: the state machine, what each transition does to the ledger, how a deposit's value is
//! computed, and when a Steam observation may be believed. Pure: no I/O, time passed in.
//!
//! # States (FLOWS.md "Deposit")
//! ```text
//! pending ──accepted, no protection──▶ success          credit available
//! pending ──accepted, CS2 protected──▶ in_hold          credit held (pending transfer)
//! pending ──declined/expired/…──▶ fail                  nothing moves
//! in_hold ──protection over──▶ success                  held → available (post)
//! in_hold ──payer reverses──▶ fail                      void held
//! in_hold ──offer_approve──▶ hold_approved              held → available (post)
//! hold_approved ──protection over──▶ success            nothing moves
//! hold_approved ──payer reverses──▶ hold_returned       clawback from available
//! ```
//! The graph has no cycle, so a deposit reaches each state at most once by construction; a repeated or
//! late observation asks for a transition that [`transition`] refuses, and nothing happens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// Trade Protection of a deposit: 8 days (Steam's 7 plus a day of margin for late reversals).
pub const HOLD_SECS: i64 = 8 * 86_400;

/// One in a million: multipliers and fees are stored as integer parts per million.
pub const PPM: i64 = 1_000_000;

/// Where a deposit stands (spec §3.1). The wire name is [`DepositStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepositStatus {
    /// Created; no accepted trade yet.
    Pending,
    /// Paid; the amount is final and spendable.
    Success,
    /// Failed or cancelled; nothing was credited (or the held credit was voided).
    Fail,
    /// Accepted, but under Steam Trade Protection; credited as held.
    InHold,
    /// The merchant (or its `credit_early` policy) released a held deposit before the protection ended.
    HoldApproved,
    /// An early-released deposit whose trade the payer reversed; the credit was taken back.
    HoldReturned,
}

impl DepositStatus {
    /// Every status.
    pub const ALL: [DepositStatus; 6] =
        [Self::Pending, Self::Success, Self::Fail, Self::InHold, Self::HoldApproved, Self::HoldReturned];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Success => "success",
            Self::Fail => "fail",
            Self::InHold => "in_hold",
            Self::HoldApproved => "hold_approved",
            Self::HoldReturned => "hold_returned",
        }
    }

    /// Whether nothing can happen to the deposit any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Fail | Self::HoldReturned)
    }

    /// Whether the amount fields are shown (spec §3.1: only when paid or on hold).
    pub fn has_amount(self) -> bool {
        matches!(self, Self::Success | Self::InHold | Self::HoldApproved)
    }
}

impl fmt::Display for DepositStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DepositStatus {
    type Err = TransitionError;
    fn from_str(s: &str) -> Result<Self, TransitionError> {
        Self::ALL.into_iter().find(|d| d.as_str() == s).ok_or(TransitionError::UnknownStatus)
    }
}

/// What a transition does to the project's ledger account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerMove {
    /// Nothing moves.
    None,
    /// Posted transfer clearing → project: `available` grows.
    CreditAvailable,
    /// Pending transfer clearing → project: `held` grows.
    CreditHeld,
    /// Post the pending transfer: `held` → `available`.
    ReleaseHeld,
    /// Void the pending transfer: `held` shrinks, nothing is credited.
    VoidHeld,
    /// Posted transfer project → clearing that may overdraw `available` (code `clawback`).
    Clawback,
}

impl LedgerMove {
    /// Whether the transition changes the spendable balance (and so emits `balance_change`).
    pub fn changes_available(self) -> bool {
        matches!(self, Self::CreditAvailable | Self::ReleaseHeld | Self::Clawback)
    }
}

/// Why a transition is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The graph has no such edge (includes every repeat: a state is reached at most once).
    #[error("a deposit cannot go from {0} to {1}")]
    NotAllowed(DepositStatus, DepositStatus),
    /// A stored status that is none of the known ones.
    #[error("unknown deposit status")]
    UnknownStatus,
}

/// The ledger move of `from → to`, or why that transition is not allowed.
pub fn transition(from: DepositStatus, to: DepositStatus) -> Result<LedgerMove, TransitionError> {
    use DepositStatus::*;
    Ok(match (from, to) {
        (Pending, Success) => LedgerMove::CreditAvailable,
        (Pending, InHold) => LedgerMove::CreditHeld,
        (Pending, Fail) => LedgerMove::None,
        (InHold, Success) => LedgerMove::ReleaseHeld,
        (InHold, Fail) => LedgerMove::VoidHeld,
        (InHold, HoldApproved) => LedgerMove::ReleaseHeld,
        (HoldApproved, Success) => LedgerMove::None,
        (HoldApproved, HoldReturned) => LedgerMove::Clawback,
        _ => return Err(TransitionError::NotAllowed(from, to)),
    })
}

/// What the gateway saw of a deposit's trade offer, reduced to what decides a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observed {
    /// Still open (active, in escrow, awaiting confirmation): wait.
    Open,
    /// Accepted and not reversed.
    Accepted,
    /// Ended without items moving (declined, countered, expired, cancelled, invalid items).
    Failed,
    /// Accepted, then reversed under Trade Protection by the payer.
    RolledBack,
}

impl Observed {
    /// Storage name, kept between observations (the watcher's memory survives restarts).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Accepted => "accepted",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Inverse of [`Observed::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Accepted, Self::Failed, Self::RolledBack].into_iter().find(|o| o.as_str() == s)
    }
}

/// How the trade is protected, which decides where an acceptance leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// The items are under Steam Trade Protection (CS2): the payer can reverse for 7 days.
    pub protected: bool,
    /// The project credits protected deposits at once (`credit_early`) instead of holding them.
    pub credit_early: bool,
}

/// The transitions the watcher makes, given the deposit's status, the last two observations (Steam
/// flaps: a single observation is never believed) and the clock. Returns the statuses to move through, in
/// order (empty: nothing to do).
///
/// - an observation is acted on only when it equals the previous one (`previous`);
/// - acceptance of a protected trade leads to `in_hold`, and with `credit_early` straight on to
///   `hold_approved` (two transitions, two callbacks);
/// - a reversal seen while held fails the deposit (`in_hold`) or returns it (`hold_approved`);
/// - a held deposit whose `hold_until` has passed succeeds on two agreeing observations that show no
///   reversal (the caller passes no observation at all when Steam cannot show the trade: an error is never
///   an acceptance).
pub fn next_statuses(
    status: DepositStatus,
    previous: Option<Observed>,
    current: Observed,
    protection: Protection,
    hold_until: Option<i64>,
    now: i64,
) -> Vec<DepositStatus> {
    use DepositStatus::*;
    let confirmed = previous == Some(current);
    match (status, current) {
        (Pending, Observed::Accepted) if confirmed => match (protection.protected, protection.credit_early) {
            (false, _) => vec![Success],
            (true, false) => vec![InHold],
            (true, true) => vec![InHold, HoldApproved],
        },
        // A reversal seen before we recorded the acceptance: the items came back, nothing was credited.
        (Pending, Observed::Failed | Observed::RolledBack) if confirmed => vec![Fail],
        (InHold, Observed::RolledBack) if confirmed => vec![Fail],
        (HoldApproved, Observed::RolledBack) if confirmed => vec![HoldReturned],
        // The hold ends on the clock, but only on two agreeing observations that show no reversal: a single
        // `Accepted` after a `RolledBack` is a flap (or a reversal racing the clock), and believing it would
        // make money spendable for a trade the payer took back.
        (InHold | HoldApproved, Observed::Accepted | Observed::Open)
            if confirmed && hold_until.is_some_and(|t| t <= now) =>
        {
            vec![Success]
        }
        _ => Vec::new(),
    }
}

/// A deposit's value, recorded once at acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    /// Reference value of the accepted items.
    pub gross: Money,
    /// The project's deposit fee taken from it.
    pub fee: Money,
    /// What is credited: `gross - fee`. The deposit's `amount` (in USD).
    pub net: Money,
    /// `net × multiplier`: what the merchant credits its user (`user_amount`, in USD).
    pub user: Money,
}

/// Why amounts cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// A fee outside 0–100 % or a multiplier that is not positive.
    #[error("fee must be 0..=100% and multiplier positive")]
    BadRate,
    /// Beyond the range of the ledger.
    #[error("amount out of range")]
    Overflow,
}

/// `value × ppm / 1 000 000`, rounded half away from zero.
pub fn apply_ppm(value: Money, ppm: i64) -> Option<Money> {
    let exact = i128::from(value.minor()).checked_mul(i128::from(ppm))?;
    let den = i128::from(PPM);
    let q = exact / den;
    let r = exact % den;
    let rounded = if 2 * r.abs() >= den { q + exact.signum() } else { q };
    i64::try_from(rounded).ok().map(Money::from_minor)
}

/// `gross` less the fee of `fee_ppm` on it (rounded half away from zero): the value a deposit of items worth
/// `gross` is credited and checked against its limits. One function, so the payment page decides as the
/// server does.
pub fn net_of(gross: Money, fee_ppm: i64) -> Option<Money> {
    gross.checked_sub(apply_ppm(gross, fee_ppm)?)
}

/// A price in US cents as ledger money.
pub fn cents(c: u64) -> Option<Money> {
    i64::try_from(c).ok()?.checked_mul(10).map(Money::from_minor)
}

/// The amounts of a deposit of items worth `prices_cents`, with the project's fee and multiplier (both
/// parts per million; the fee rounds half away from zero, and the payer never gets less than zero).
pub fn compute_amounts(prices_cents: &[u64], fee_ppm: i64, multiplier_ppm: i64) -> Result<Amounts, AmountError> {
    if !(0..=PPM).contains(&fee_ppm) || multiplier_ppm <= 0 {
        return Err(AmountError::BadRate);
    }
    let gross =
        prices_cents.iter().try_fold(Money::ZERO, |acc, c| acc.checked_add(cents(*c)?)).ok_or(AmountError::Overflow)?;
    let net = net_of(gross, fee_ppm).ok_or(AmountError::Overflow)?;
    let fee = gross.checked_sub(net).ok_or(AmountError::Overflow)?;
    let user = apply_ppm(net, multiplier_ppm).ok_or(AmountError::Overflow)?;
    Ok(Amounts { gross, fee, net, user })
}

/// Parses a decimal multiplier or percentage text into parts per million (`"1.5"` → 1 500 000), exactly.
pub fn parse_ppm(text: &str) -> Option<i64> {
    let d: skingate_types::Decimal = text.parse().ok()?;
    i64::try_from(d.to_scale_exact(6)?).ok()
}

/// Renders parts per million as a short decimal (`1 500 000` → `"1.5"`).
pub fn ppm_text(ppm: i64) -> String {
    skingate_types::Decimal::new(i128::from(ppm), 6).trimmed(0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use DepositStatus::*;
    use proptest::prelude::*;

    #[test]
    fn graph_and_moves() {
        assert_eq!(transition(Pending, Success), Ok(LedgerMove::CreditAvailable));
        assert_eq!(transition(Pending, InHold), Ok(LedgerMove::CreditHeld));
        assert_eq!(transition(InHold, HoldApproved), Ok(LedgerMove::ReleaseHeld));
        assert_eq!(transition(HoldApproved, HoldReturned), Ok(LedgerMove::Clawback));
        assert_eq!(transition(HoldApproved, Success), Ok(LedgerMove::None));
        assert!(transition(Success, Fail).is_err());
        assert!(transition(Fail, Success).is_err());
        assert!(transition(HoldReturned, Success).is_err());
        assert!(transition(InHold, HoldReturned).is_err());
        for s in DepositStatus::ALL {
            assert!(transition(s, s).is_err(), "{s} → {s}");
            assert_eq!(s.as_str().parse::<DepositStatus>(), Ok(s));
            if s.is_final() {
                assert!(DepositStatus::ALL.iter().all(|t| transition(s, *t).is_err()));
            }
        }
    }

    #[test]
    fn single_observations_are_not_believed() {
        let p = Protection { protected: false, credit_early: false };
        assert!(next_statuses(Pending, None, Observed::Accepted, p, None, 0).is_empty());
        assert!(next_statuses(Pending, Some(Observed::Open), Observed::Accepted, p, None, 0).is_empty());
        assert_eq!(next_statuses(Pending, Some(Observed::Accepted), Observed::Accepted, p, None, 0), [Success]);
        let cs2 = Protection { protected: true, credit_early: false };
        assert_eq!(next_statuses(Pending, Some(Observed::Accepted), Observed::Accepted, cs2, None, 0), [InHold]);
        let early = Protection { protected: true, credit_early: true };
        assert_eq!(
            next_statuses(Pending, Some(Observed::Accepted), Observed::Accepted, early, None, 0),
            [InHold, HoldApproved]
        );
        assert_eq!(next_statuses(InHold, Some(Observed::RolledBack), Observed::RolledBack, cs2, Some(9), 0), [Fail]);
        assert_eq!(
            next_statuses(HoldApproved, Some(Observed::RolledBack), Observed::RolledBack, cs2, Some(9), 0),
            [HoldReturned]
        );
        // The hold ends on the clock, unless the trade was seen reversed.
        assert!(next_statuses(InHold, Some(Observed::Accepted), Observed::Accepted, cs2, Some(10), 9).is_empty());
        assert_eq!(next_statuses(InHold, Some(Observed::Accepted), Observed::Accepted, cs2, Some(10), 10), [Success]);
        assert!(next_statuses(InHold, Some(Observed::Accepted), Observed::RolledBack, cs2, Some(10), 10).is_empty());
        assert!(next_statuses(Success, Some(Observed::RolledBack), Observed::RolledBack, cs2, Some(1), 10).is_empty());
    }

    /// At the end of the hold, one observation is not enough: a flap from `RolledBack` back to `Accepted`, or
    /// a first look after a restart, does not release held money.
    #[test]
    fn hold_end_needs_two_agreeing_observations_without_reversal() {
        let cs2 = Protection { protected: true, credit_early: false };
        for status in [InHold, HoldApproved] {
            let after = |prev, cur| next_statuses(status, prev, cur, cs2, Some(10), 10);
            assert!(after(Some(Observed::RolledBack), Observed::Accepted).is_empty(), "{status}: flap");
            assert!(after(Some(Observed::RolledBack), Observed::Open).is_empty(), "{status}: flap to open");
            assert!(after(None, Observed::Accepted).is_empty(), "{status}: first look");
            assert!(after(Some(Observed::Open), Observed::Accepted).is_empty(), "{status}: changed");
            assert_eq!(after(Some(Observed::Accepted), Observed::Accepted), [Success], "{status}");
        }
    }

    #[test]
    fn amounts_round_half_away_from_zero() {
        let a = compute_amounts(&[1_234, 66], 25_000, 1_500_000).unwrap();
        assert_eq!(a.gross, Money::from_minor(13_000));
        assert_eq!(a.fee, Money::from_minor(325));
        assert_eq!(a.net, Money::from_minor(12_675));
        assert_eq!(a.user, Money::from_minor(19_013)); // 19 012.5 rounds up
        assert_eq!(compute_amounts(&[1], 0, 1_000_000).unwrap().net, Money::from_minor(10));
        assert_eq!(compute_amounts(&[1], PPM + 1, PPM), Err(AmountError::BadRate));
        assert_eq!(compute_amounts(&[1], 0, 0), Err(AmountError::BadRate));
        assert_eq!(compute_amounts(&[u64::MAX], 0, PPM), Err(AmountError::Overflow));
        assert_eq!(parse_ppm("1.5"), Some(1_500_000));
        assert_eq!(parse_ppm("0.0000001"), None);
        assert_eq!(ppm_text(1_500_000), "1.5");
        assert_eq!(ppm_text(PPM), "1");
    }

    /// A tiny model of the project account: what each move does to (available, held).
    fn apply(m: LedgerMove, v: i64, (avail, held): (i64, i64)) -> (i64, i64) {
        match m {
            LedgerMove::None => (avail, held),
            LedgerMove::CreditAvailable => (avail + v, held),
            LedgerMove::CreditHeld => (avail, held + v),
            LedgerMove::ReleaseHeld => (avail + v, held - v),
            LedgerMove::VoidHeld => (avail, held - v),
            LedgerMove::Clawback => (avail - v, held),
        }
    }

    fn any_status() -> impl Strategy<Value = DepositStatus> {
        prop::sample::select(DepositStatus::ALL.to_vec())
    }

    fn any_observed() -> impl Strategy<Value = Observed> {
        prop::sample::select(vec![Observed::Open, Observed::Accepted, Observed::Failed, Observed::RolledBack])
    }

    proptest! {
        /// Whatever transitions are asked for, in any order and repeated: each state is reached at most once,
        /// and the account ends where FLOWS.md says for the final state.
        #[test]
        fn states_once_and_money_balances(asks in prop::collection::vec(any_status(), 0..40), v in 1i64..1_000_000) {
            let mut status = Pending;
            let mut seen = vec![Pending];
            let mut acct = (0i64, 0i64);
            for to in asks {
                if let Ok(m) = transition(status, to) {
                    prop_assert!(!seen.contains(&to), "{to} reached twice");
                    acct = apply(m, v, acct);
                    seen.push(to);
                    status = to;
                }
                prop_assert!(acct.1 >= 0);
            }
            let expected = match status {
                Pending | Fail | HoldReturned => (0, 0),
                InHold => (0, v),
                Success | HoldApproved => (v, 0),
            };
            prop_assert_eq!(acct, expected);
        }

        /// The watcher's decisions are always legal transitions, never from a final state, and need the same
        /// observation twice to act (also at the end of a hold).
        #[test]
        fn watcher_decisions_are_legal(
            status in any_status(),
            prev in prop::option::of(any_observed()),
            cur in any_observed(),
            protected in any::<bool>(),
            credit_early in any::<bool>(),
            hold_until in prop::option::of(0i64..100),
            now in 0i64..100,
        ) {
            let steps = next_statuses(status, prev, cur, Protection { protected, credit_early }, hold_until, now);
            let mut at = status;
            for s in &steps {
                prop_assert!(transition(at, *s).is_ok(), "{at} → {s}");
                at = *s;
            }
            // Nothing happens on a single observation, and nothing ends a hold while the trade shows reversed.
            if !steps.is_empty() {
                prop_assert_eq!(prev, Some(cur));
            }
            if steps.last() == Some(&Success) {
                prop_assert!(matches!(cur, Observed::Accepted | Observed::Open));
            }
        }

        #[test]
        fn amounts_are_consistent(prices in prop::collection::vec(0u64..10_000_000, 0..50), fee in 0i64..=PPM, mult in 1i64..5_000_000) {
            let a = compute_amounts(&prices, fee, mult).unwrap();
            prop_assert_eq!(a.gross.minor(), prices.iter().map(|c| *c as i64 * 10).sum::<i64>());
            prop_assert_eq!(a.net.minor() + a.fee.minor(), a.gross.minor());
            prop_assert!(a.net.minor() >= 0 && a.fee.minor() >= 0);
            if mult == PPM { prop_assert_eq!(a.user, a.net); }
        }
    }
}
