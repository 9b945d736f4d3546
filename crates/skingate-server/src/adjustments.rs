//! Operator adjustments: manual credits and debits of a project balance.
//!
//! The first source of events. An adjustment is a ledger transfer between the project and the
//! installation's operator-adjustments account, plus a `balance_change` event, in one transaction. A debit
//! that would overdraw the balance is refused by the ledger and changes nothing.

use skingate_core::Money;
use skingate_core::ledger::{AccountKind, Applied, LedgerError, Phase, TransferCode, TransferId, TransferSpec};
use skingate_core::project::Project;
use skingate_store::{Store, StoreError};

/// What an adjustment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjusted {
    /// The ledger transfer id (the reference shown in `balance_history`).
    pub transfer_id: String,
    /// The spendable balance afterwards.
    pub balance: Money,
    /// False when the same transfer id had been applied before (a retried command): nothing moved.
    pub applied: bool,
}

/// Why an adjustment was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdjustError {
    /// The debit is larger than the spendable balance.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// Amounts are positive.
    #[error("amount must be positive")]
    NonPositive,
    /// Over [`MAX_ADJUSTMENT`]: a typo of that size would push the ledger's running totals towards their
    /// 64-bit limit, where every later transfer of the accounts involved fails.
    #[error("amount above the largest adjustment (1 000 000 000 USD)")]
    TooLarge,
    /// The transfer id was used for a different adjustment.
    #[error("transfer id already used for a different adjustment")]
    IdReused,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdjustError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Ledger(LedgerError::InsufficientFunds) => AdjustError::InsufficientFunds,
            StoreError::Ledger(LedgerError::NonPositiveAmount) => AdjustError::NonPositive,
            StoreError::Ledger(LedgerError::ExistsWithDifferentFields(_)) => AdjustError::IdReused,
            other => AdjustError::Store(other),
        }
    }
}

/// The ledger id of an adjustment named `id`: always in the `adj:` namespace, so an operator's id can never
/// take the id a deposit or a purchase will need for its own transfer (`dep:42:credit`, say).
pub fn adjustment_transfer_id(id: &str) -> TransferId {
    if id.starts_with(ADJUSTMENT_PREFIX) {
        TransferId(id.to_owned())
    } else {
        TransferId(format!("{ADJUSTMENT_PREFIX}{id}"))
    }
}

/// The namespace of adjustment transfer ids.
pub const ADJUSTMENT_PREFIX: &str = "adj:";

/// The largest single adjustment, in USD: far above any real top-up, far below the ledger's limits.
pub const MAX_ADJUSTMENT: Money = Money::from_minor(1_000_000_000 * 1_000);

/// Credits (`credit = true`) or debits `amount` with `reason`, under `transfer_id` (a retry with the same
/// id does nothing the second time; see [`adjustment_transfer_id`]). Emits `balance_change` when money moved.
pub async fn adjust(
    store: &dyn Store,
    project: &Project,
    credit: bool,
    amount: Money,
    reason: &str,
    transfer_id: &str,
    now: i64,
) -> Result<Adjusted, AdjustError> {
    if amount > MAX_ADJUSTMENT {
        return Err(AdjustError::TooLarge);
    }
    let mut tx = store.begin().await?;
    let operator = tx.system_account(AccountKind::OperatorAdjustments).await?;
    let merchant = tx.project_account(project.id).await?;
    let (debit, credit_acc) = if credit { (operator, merchant) } else { (merchant, operator) };
    let id = adjustment_transfer_id(transfer_id);
    let spec = TransferSpec {
        id: id.clone(),
        debit,
        credit: credit_acc,
        amount,
        phase: Phase::Posted,
        code: TransferCode::Adjustment,
        allow_overdraft: false,
        reference: reason.to_owned(),
    };
    let applied = matches!(tx.transfer(&spec, now).await?, Applied::New(_));
    let balance = if applied {
        crate::events::emit_balance_change(tx.as_mut(), project, now).await?
    } else {
        tx.project_balance(project.id).await?.available
    };
    tx.commit().await?;
    Ok(Adjusted { transfer_id: id.0, balance, applied })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An adjustment over the cap is refused and moves nothing; one at the cap goes through.
    #[tokio::test]
    async fn adjustments_are_capped() {
        let (_dir, state, project) = crate::state::testing::state_with_project().await;
        let huge = Money::from_minor(i64::MAX);
        let refused = adjust(state.store.as_ref(), &project, true, huge, "typo", "t1", 0).await;
        assert!(matches!(refused, Err(AdjustError::TooLarge)));
        assert_eq!(state.store.project_balance(project.id).await.unwrap().available, Money::ZERO);
        let done = adjust(state.store.as_ref(), &project, true, MAX_ADJUSTMENT, "big", "t2", 0).await.unwrap();
        assert_eq!(done.balance, MAX_ADJUSTMENT);
    }

    #[test]
    fn operator_ids_stay_in_their_namespace() {
        assert_eq!(super::adjustment_transfer_id("dep:42:credit").0, "adj:dep:42:credit");
        assert_eq!(super::adjustment_transfer_id("adj:7").0, "adj:7");
    }
}
