//! Moving a deposit between states: the one place that does it.
//!
//! One write transaction per call holds everything a transition implies (FLOWS.md "Deposit"): the
//! conditional status update (the stored status must still be the one the decision was made on), the
//! ledger transfer of [`skingate_core::deposit::transition`]'s move, a `deposit_status` outbox event with the
//! deposit object and its Result-URL delivery, `balance_change` when the spendable balance moved, and at
//! `success` the received items into the market stock. A crash anywhere before the commit leaves nothing
//! behind; after it, the dispatcher delivers.

use skingate_core::Money;
use skingate_core::deposit::{self, DepositStatus, LedgerMove};
use skingate_core::events::EventType;
use skingate_core::ledger::{AccountKind, Phase, TransferCode, TransferId, TransferSpec};
use skingate_core::project::Project;
use skingate_store::WriteTx;
use skingate_store::deposits::{Deposit, StatusChange};

use super::wire;
use crate::state::AppState;

/// One step: the status to move to and the fields it records.
pub type Step = (DepositStatus, StatusChange);

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Every step was made; the deposit as it is now.
    Done(Box<Deposit>),
    /// The first step is not allowed from the stored status (a repeat, or someone else moved it first);
    /// nothing was written.
    Refused(DepositStatus),
}

/// Transfer ids are deterministic so a retried step lands once.
fn transfer_id(deposit: i64, what: &str) -> TransferId {
    TransferId(format!("dep:{deposit}:{what}"))
}

async fn move_money(
    tx: &mut dyn WriteTx,
    project: &Project,
    dep: &Deposit,
    mv: LedgerMove,
    (amount, fee): (Money, Money),
    now: i64,
) -> anyhow::Result<()> {
    if mv == LedgerMove::None {
        return Ok(());
    }
    let clearing = tx.system_account(AccountKind::DepositsClearing).await?;
    let merchant = tx.project_account(project.id).await?;
    let hold = transfer_id(dep.id, "hold");
    let reference = format!("deposit {} order {}", dep.id, dep.order_id);
    let (id, debit, credit, phase, code, allow_overdraft) = match mv {
        LedgerMove::None => return Ok(()),
        LedgerMove::CreditAvailable => {
            (transfer_id(dep.id, "credit"), clearing, merchant, Phase::Posted, TransferCode::Deposit, false)
        }
        LedgerMove::CreditHeld => (hold, clearing, merchant, Phase::Pending, TransferCode::DepositHold, false),
        LedgerMove::ReleaseHeld => {
            (transfer_id(dep.id, "release"), clearing, merchant, Phase::Post(hold), TransferCode::DepositHold, false)
        }
        LedgerMove::VoidHeld => {
            (transfer_id(dep.id, "void"), clearing, merchant, Phase::Void(hold), TransferCode::DepositHold, false)
        }
        // The merchant chose to take the risk: the clawback may overdraw the balance (a debt).
        LedgerMove::Clawback => {
            (transfer_id(dep.id, "clawback"), merchant, clearing, Phase::Posted, TransferCode::Clawback, true)
        }
    };
    if amount.is_positive() {
        let spec =
            TransferSpec { id, debit, credit, amount, phase, code, allow_overdraft, reference: reference.clone() };
        tx.transfer(&spec, now).await?;
    }
    book_fee(tx, dep, mv, fee, clearing, reference, now).await
}

/// The deposit fee follows the credit it was taken from: clearing → `Fees`, posted with a posted credit,
/// pending with a held one (posted at release, voided with a voided hold), and paid back to clearing when
/// the credit is clawed back. So clearing always carries the items' gross value and the fees account what
/// the gateway earned. Ids are deterministic (`dep:N:fee…`) like every deposit transfer.
async fn book_fee(
    tx: &mut dyn WriteTx,
    dep: &Deposit,
    mv: LedgerMove,
    fee: Money,
    clearing: skingate_core::ledger::AccountId,
    reference: String,
    now: i64,
) -> anyhow::Result<()> {
    if !fee.is_positive() {
        return Ok(());
    }
    let fees = tx.system_account(AccountKind::Fees).await?;
    let hold = transfer_id(dep.id, "fee_hold");
    let (id, debit, credit, phase) = match mv {
        LedgerMove::None => return Ok(()),
        LedgerMove::CreditAvailable => (transfer_id(dep.id, "fee"), clearing, fees, Phase::Posted),
        LedgerMove::CreditHeld => (hold, clearing, fees, Phase::Pending),
        LedgerMove::ReleaseHeld => (transfer_id(dep.id, "fee_release"), clearing, fees, Phase::Post(hold)),
        LedgerMove::VoidHeld => (transfer_id(dep.id, "fee_void"), clearing, fees, Phase::Void(hold)),
        LedgerMove::Clawback => (transfer_id(dep.id, "fee_refund"), fees, clearing, Phase::Posted),
    };
    let code = TransferCode::Fee;
    let spec = TransferSpec { id, debit, credit, amount: fee, phase, code, allow_overdraft: false, reference };
    tx.transfer(&spec, now).await?;
    Ok(())
}

/// The fee of a deposit whose received items are `items`: recomputed from the recorded prices and fee rate,
/// the same computation that gave its net `amount`.
fn fee_of(dep: &Deposit, items: &[skingate_store::deposits::DepositItem]) -> anyhow::Result<Money> {
    let prices: Vec<u64> = items.iter().map(|i| i.price_cents).collect();
    Ok(deposit::compute_amounts(&prices, dep.fee_ppm, deposit::PPM)?.fee)
}

/// Makes `steps` on deposit `id` of `project` in one transaction, in order.
pub async fn apply(state: &AppState, project: &Project, id: i64, steps: &[Step]) -> anyhow::Result<Applied> {
    apply_if(state, project, id, steps, |_| true).await
}

/// [`apply`], refused unless `guard` holds for the deposit as read inside the transaction (a condition the
/// status alone does not capture, such as "no offer recorded").
pub async fn apply_if(
    state: &AppState,
    project: &Project,
    id: i64,
    steps: &[Step],
    guard: impl Fn(&Deposit) -> bool + Send,
) -> anyhow::Result<Applied> {
    let now = state.now();
    // Read outside the write transaction: the payer's history does not depend on this deposit's change.
    let pre = state.store.deposit(project.id, id).await?.ok_or_else(|| anyhow::anyhow!("deposit {id} vanished"))?;
    let risk = match (&pre.steam_id, steps.iter().any(|(s, _)| *s == DepositStatus::InHold)) {
        (Some(payer), true) => Some(wire::user_risk(state, payer, &pre).await?),
        _ => None,
    };
    // What Steam showed (an acceptance, a cancellation) is durable there before the deposit acts on it.
    state.steam_sync().await?;
    let mut tx = state.store.begin().await?;
    let mut dep = tx.deposit_in_tx(id).await?.ok_or_else(|| anyhow::anyhow!("deposit {id} vanished"))?;
    if !guard(&dep) {
        return Ok(Applied::Refused(dep.status));
    }
    let mut available_moved = false;
    for (to, change) in steps {
        let Ok(mv) = deposit::transition(dep.status, *to) else {
            return Ok(Applied::Refused(dep.status));
        };
        let amount = change.amount_usd.or(dep.amount_usd).unwrap_or(Money::ZERO);
        let fee = fee_of(&dep, change.items.as_deref().unwrap_or(&dep.items))?;
        move_money(tx.as_mut(), project, &dep, mv, (amount, fee), now).await?;
        if !tx.change_status(id, dep.status, *to, change, now).await? {
            return Ok(Applied::Refused(dep.status));
        }
        dep = tx.deposit_in_tx(id).await?.ok_or_else(|| anyhow::anyhow!("deposit {id} vanished"))?;
        available_moved |= mv.changes_available() && amount.is_positive();
        if *to == DepositStatus::Success {
            // Settled: the received items are the bots' to sell from now on.
            tx.add_units(&crate::market::stock::deposit_units(&dep), now).await?;
        }
        let object = wire::deposit_object(&dep, if *to == DepositStatus::InHold { risk.as_ref() } else { None });
        let event = crate::events::emit(tx.as_mut(), project, EventType::DepositStatus, object, now).await?;
        tx.insert_result_delivery(event.id, project.id, id, now).await?;
    }
    if available_moved {
        crate::events::emit_balance_change(tx.as_mut(), project, now).await?;
    }
    tx.commit().await?;
    state.events_committed();
    tracing::info!(deposit = id, status = %dep.status, "deposit status changed");
    Ok(Applied::Done(Box::new(dep)))
}
