//! The market (skins withdraw): purchase statuses, the purchase state machine, the money each transition
//! moves, and pricing.
//!
//! # The purchase (FLOWS.md "Purchase")
//! ```text
//! (buy) creating_trade ──offer sent──▶ waiting_accept ──accepted──▶ accepted
//! creating_trade ──▶ invalid_trade_token | user_not_tradable | trade_create_error          refund (void)
//! waiting_accept ──declined──▶ canceled ; ──10 min, gateway cancels──▶ timeout             refund (void)
//! accepted ──within protection: recipient reverses──▶ rollback_user        refund (posted), unit to stock
//! accepted ──within protection: supplier reverses──▶ rollback_supplier     refund (posted)
//! ```
//! At the buy the unit's price moves `available → in_flight` as a PENDING transfer project → market sales
//! ([`reserve`]). Acceptance posts it ([`MoneyStep::Post`]); a failure before acceptance voids it
//! ([`MoneyStep::Void`]); a rollback after acceptance is a posted refund market sales → project
//! ([`MoneyStep::Refund`]); [`money_transfer`] builds each. [`transition`] is the only place that decides
//! which of these a status change does, so each refund happens exactly once: a terminal status has no
//! outgoing transition except `accepted → rollback_*`, and a rollback status has none.
//!
//! Transfer ids are deterministic (`buy:<id>:reserve|post|void|refund`), so a retried step lands once.

use crate::Money;
use crate::ledger::{AccountId, Phase, TransferCode, TransferId, TransferSpec};

/// How long the payer has to accept a purchase offer before the gateway cancels it (spec §5.1: 10 minutes).
pub const OFFER_TIMEOUT_SECS: i64 = 600;

/// Where a purchase stands: the wire `offer_status` (spec §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurchaseStatus {
    /// Bought; the trade offer is being created.
    CreatingTrade,
    /// The offer is sent; waiting for the user.
    WaitingAccept,
    /// The user accepted (may still roll back under Trade Protection).
    Accepted,
    /// The user declined.
    Canceled,
    /// Not accepted within [`OFFER_TIMEOUT_SECS`]; the gateway cancelled the offer.
    Timeout,
    /// The trade token was wrong.
    InvalidTradeToken,
    /// The user cannot trade.
    UserNotTradable,
    /// Steam could not create the offer.
    TradeCreateError,
    /// The user reversed the trade under Trade Protection.
    RollbackUser,
    /// The supplier side reversed the trade under Trade Protection.
    RollbackSupplier,
}

impl PurchaseStatus {
    /// Every status, in the spec's order.
    pub const ALL: [PurchaseStatus; 10] = [
        Self::CreatingTrade,
        Self::WaitingAccept,
        Self::Accepted,
        Self::Canceled,
        Self::Timeout,
        Self::InvalidTradeToken,
        Self::UserNotTradable,
        Self::TradeCreateError,
        Self::RollbackUser,
        Self::RollbackSupplier,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatingTrade => "creating_trade",
            Self::WaitingAccept => "waiting_accept",
            Self::Accepted => "accepted",
            Self::Canceled => "canceled",
            Self::Timeout => "timeout",
            Self::InvalidTradeToken => "invalid_trade_token",
            Self::UserNotTradable => "user_not_tradable",
            Self::TradeCreateError => "trade_create_error",
            Self::RollbackUser => "rollback_user",
            Self::RollbackSupplier => "rollback_supplier",
        }
    }

    /// Inverse of [`PurchaseStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether nothing can happen to the purchase any more (`accepted` can still roll back, so it is not).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::CreatingTrade | Self::WaitingAccept | Self::Accepted)
    }
}

/// Something that happened to a purchase's trade, as the watcher concluded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeEvent {
    /// Steam created the offer.
    OfferSent,
    /// Steam refused the trade token.
    InvalidToken,
    /// The user cannot trade.
    NotTradable,
    /// Steam could not create the offer.
    CreateFailed,
    /// The user accepted (confirmed by two observations).
    Accepted,
    /// The user declined or countered, or the offer otherwise failed on Steam's side.
    Declined,
    /// The gateway cancelled the offer after [`OFFER_TIMEOUT_SECS`].
    TimedOut,
    /// The user reversed the accepted trade.
    ReversedByUser,
    /// The supplier reversed the accepted trade.
    ReversedBySupplier,
}

/// The ledger step of a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyStep {
    /// Nothing moves.
    None,
    /// Settle the reservation: in flight → market sales.
    Post,
    /// Release the reservation: in flight → available (refund before acceptance).
    Void,
    /// Pay back after a rollback: market sales → available (posted).
    Refund,
}

/// What happens to the unit sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitStep {
    /// It stays where it is (reserved while the trade runs, gone once given).
    Keep,
    /// It is back in the bot's inventory: for sale again.
    BackToStock,
    /// It left for good (given to the user, or taken back by the supplier).
    Gone,
}

/// A status change and what it moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The new status.
    pub to: PurchaseStatus,
    /// The money it moves.
    pub money: MoneyStep,
    /// What happens to the unit.
    pub unit: UnitStep,
}

/// The purchase state machine: the transition `event` causes from `from`, or `None` when the event does not
/// apply there (a late or repeated observation changes nothing).
pub fn transition(from: PurchaseStatus, event: TradeEvent) -> Option<Transition> {
    use PurchaseStatus as S;
    use TradeEvent as E;
    let t = |to, money, unit| Some(Transition { to, money, unit });
    match (from, event) {
        (S::CreatingTrade, E::OfferSent) => t(S::WaitingAccept, MoneyStep::None, UnitStep::Keep),
        (S::CreatingTrade, E::InvalidToken) => t(S::InvalidTradeToken, MoneyStep::Void, UnitStep::BackToStock),
        (S::CreatingTrade, E::NotTradable) => t(S::UserNotTradable, MoneyStep::Void, UnitStep::BackToStock),
        (S::CreatingTrade, E::CreateFailed) => t(S::TradeCreateError, MoneyStep::Void, UnitStep::BackToStock),
        (S::WaitingAccept, E::Accepted) => t(S::Accepted, MoneyStep::Post, UnitStep::Gone),
        (S::WaitingAccept, E::Declined) => t(S::Canceled, MoneyStep::Void, UnitStep::BackToStock),
        (S::WaitingAccept, E::TimedOut) => t(S::Timeout, MoneyStep::Void, UnitStep::BackToStock),
        (S::Accepted, E::ReversedByUser) => t(S::RollbackUser, MoneyStep::Refund, UnitStep::BackToStock),
        (S::Accepted, E::ReversedBySupplier) => t(S::RollbackSupplier, MoneyStep::Refund, UnitStep::Gone),
        _ => None,
    }
}

/// Confirms a Steam observation before it is acted on: Steam flaps (an accepted offer is seen once as active
/// again), so a conclusion counts only when two consecutive observations agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation<T> {
    last: Option<T>,
}

impl<T> Default for Confirmation<T> {
    fn default() -> Self {
        Self { last: None }
    }
}

impl<T: PartialEq + Copy> Confirmation<T> {
    /// Records an observation; returns it when it repeats the previous one.
    pub fn observe(&mut self, seen: T) -> Option<T> {
        let confirmed = self.last == Some(seen);
        self.last = Some(seen);
        confirmed.then_some(seen)
    }
}

/// The markup the gateway sells at, over the catalogue's reference price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pricing {
    /// Markup in basis points (100 = 1 %).
    pub markup_bps: u32,
}

impl Pricing {
    /// The selling price of an item whose reference price is `reference`: the markup applied, rounded up to
    /// a whole cent (prices are shown in cents; rounding up never sells below the configured markup).
    /// `None` on overflow.
    pub fn price(self, reference: Money) -> Option<Money> {
        let scaled = i128::from(reference.minor()) * (10_000 + i128::from(self.markup_bps));
        let minor = (scaled + 9_999) / 10_000;
        let cent = 10;
        let rounded = (minor + cent - 1) / cent * cent;
        i64::try_from(rounded).ok().map(Money::from_minor)
    }
}

/// The reservation made at the buy: a pending transfer project → market sales.
pub fn reserve(buy_id: i64, project: AccountId, sales: AccountId, price: Money) -> TransferSpec {
    TransferSpec {
        id: TransferId(format!("buy:{buy_id}:reserve")),
        debit: project,
        credit: sales,
        amount: price,
        phase: Phase::Pending,
        code: TransferCode::Purchase,
        allow_overdraft: false,
        reference: format!("market purchase {buy_id}"),
    }
}

/// The ledger transfer of a transition's money step (`None` for [`MoneyStep::None`]).
pub fn money_transfer(
    step: MoneyStep,
    buy_id: i64,
    project: AccountId,
    sales: AccountId,
    price: Money,
) -> Option<TransferSpec> {
    let reserved = reserve(buy_id, project, sales, price);
    let pending = reserved.id.clone();
    let with = |suffix: &str, phase: Phase, code: TransferCode, reference: String| TransferSpec {
        id: TransferId(format!("buy:{buy_id}:{suffix}")),
        phase,
        code,
        reference,
        ..reserved.clone()
    };
    match step {
        MoneyStep::None => None,
        MoneyStep::Post => Some(with("post", Phase::Post(pending), TransferCode::Purchase, reserved.reference.clone())),
        MoneyStep::Void => {
            Some(with("void", Phase::Void(pending), TransferCode::Refund, format!("refund of {buy_id}")))
        }
        MoneyStep::Refund => Some(TransferSpec {
            id: TransferId(format!("buy:{buy_id}:refund")),
            debit: sales,
            credit: project,
            amount: price,
            phase: Phase::Posted,
            code: TransferCode::Refund,
            allow_overdraft: false,
            reference: format!("refund of rolled back purchase {buy_id}"),
        }),
    }
}

#[cfg(test)]
mod tests;
