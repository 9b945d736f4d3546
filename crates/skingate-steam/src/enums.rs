//! Steam's state enums, open: an unknown number is kept, never an error.
//!
//! Values from node-steam-tradeoffer-manager's `resources/` and the Valve wiki; `TradeProtectionRollback`
//! (12) is undocumented and appeared with CS2 Trade Protection in 2025.

use serde::{Deserialize, Serialize};

/// `ETradeOfferState`: where a trade offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "i32", into = "i32")]
pub enum OfferState {
    /// 1: invalid.
    Invalid,
    /// 2: sent, waiting for the other party.
    Active,
    /// 3: accepted; the items moved (for CS2, under Trade Protection).
    Accepted,
    /// 4: the recipient countered (treated as declined).
    Countered,
    /// 5: not accepted in time.
    Expired,
    /// 6: the sender cancelled it (e.g. our own timeout).
    Canceled,
    /// 7: the recipient declined.
    Declined,
    /// 8: some item is no longer available.
    InvalidItems,
    /// 9: created, awaiting the sender's mobile confirmation.
    CreatedNeedsConfirmation,
    /// 10: cancelled through the second factor.
    CanceledBySecondFactor,
    /// 11: accepted, held in escrow.
    InEscrow,
    /// Any value Steam adds later.
    Unknown(i32),
}

impl From<i32> for OfferState {
    fn from(v: i32) -> Self {
        match v {
            1 => Self::Invalid,
            2 => Self::Active,
            3 => Self::Accepted,
            4 => Self::Countered,
            5 => Self::Expired,
            6 => Self::Canceled,
            7 => Self::Declined,
            8 => Self::InvalidItems,
            9 => Self::CreatedNeedsConfirmation,
            10 => Self::CanceledBySecondFactor,
            11 => Self::InEscrow,
            other => Self::Unknown(other),
        }
    }
}

impl From<OfferState> for i32 {
    fn from(s: OfferState) -> i32 {
        match s {
            OfferState::Invalid => 1,
            OfferState::Active => 2,
            OfferState::Accepted => 3,
            OfferState::Countered => 4,
            OfferState::Expired => 5,
            OfferState::Canceled => 6,
            OfferState::Declined => 7,
            OfferState::InvalidItems => 8,
            OfferState::CreatedNeedsConfirmation => 9,
            OfferState::CanceledBySecondFactor => 10,
            OfferState::InEscrow => 11,
            OfferState::Unknown(v) => v,
        }
    }
}

impl OfferState {
    /// Whether Steam can still move the offer on by itself (a later observation may differ).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Active | Self::CreatedNeedsConfirmation | Self::InEscrow)
    }

    /// Whether the offer ended without items moving.
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            Self::Invalid
                | Self::Countered
                | Self::Expired
                | Self::Canceled
                | Self::Declined
                | Self::InvalidItems
                | Self::CanceledBySecondFactor
        )
    }
}

/// `ETradeStatus`: what happened to an accepted trade afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "i32", into = "i32")]
pub enum TradeStatus {
    /// 0
    Init,
    /// 1
    PreCommitted,
    /// 2
    Committed,
    /// 3: done.
    Complete,
    /// 4
    Failed,
    /// 5
    PartialSupportRollback,
    /// 6
    FullSupportRollback,
    /// 7
    SupportRollbackSelective,
    /// 8
    RollbackFailed,
    /// 9
    RollbackAbandoned,
    /// 10
    InEscrow,
    /// 11
    EscrowRollback,
    /// 12 (undocumented): a party reversed the trade under Trade Protection.
    TradeProtectionRollback,
    /// Any value Steam adds later.
    Unknown(i32),
}

const TRADE_STATUSES: [TradeStatus; 13] = [
    TradeStatus::Init,
    TradeStatus::PreCommitted,
    TradeStatus::Committed,
    TradeStatus::Complete,
    TradeStatus::Failed,
    TradeStatus::PartialSupportRollback,
    TradeStatus::FullSupportRollback,
    TradeStatus::SupportRollbackSelective,
    TradeStatus::RollbackFailed,
    TradeStatus::RollbackAbandoned,
    TradeStatus::InEscrow,
    TradeStatus::EscrowRollback,
    TradeStatus::TradeProtectionRollback,
];

impl From<i32> for TradeStatus {
    fn from(v: i32) -> Self {
        usize::try_from(v).ok().and_then(|i| TRADE_STATUSES.get(i).copied()).unwrap_or(Self::Unknown(v))
    }
}

impl From<TradeStatus> for i32 {
    fn from(s: TradeStatus) -> i32 {
        match s {
            TradeStatus::Unknown(v) => v,
            known => TRADE_STATUSES.iter().position(|k| *k == known).map_or(-1, |i| i as i32),
        }
    }
}

impl TradeStatus {
    /// Whether the items went back: any rollback Steam reports.
    pub fn is_rolled_back(self) -> bool {
        matches!(
            self,
            Self::PartialSupportRollback
                | Self::FullSupportRollback
                | Self::SupportRollbackSelective
                | Self::EscrowRollback
                | Self::TradeProtectionRollback
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_round_trips() {
        for v in -1..40 {
            assert_eq!(i32::from(OfferState::from(v)), v);
            assert_eq!(i32::from(TradeStatus::from(v)), v);
        }
        assert_eq!(TradeStatus::from(12), TradeStatus::TradeProtectionRollback);
        assert!(TradeStatus::from(12).is_rolled_back());
        assert_eq!(serde_json::from_str::<OfferState>("3").unwrap(), OfferState::Accepted);
        assert_eq!(serde_json::from_str::<OfferState>("42").unwrap(), OfferState::Unknown(42));
        assert!(OfferState::Active.is_open() && OfferState::Declined.is_failed());
        assert!(!OfferState::Accepted.is_failed() && !OfferState::Accepted.is_open());
    }
}
