//! The double-entry ledger.
//!
//! A [`Transfer`] moves an amount from one account (debit) to another (credit). Transfers are immutable;
//! a mistake is corrected by another transfer. Each transfer produces exactly two [`Entry`] rows, one per
//! side, each recording the account's balances before and after, so any balance can be audited from its
//! entries alone.
//!
//! # Two phases
//! A [`Phase::Pending`] transfer reserves money without settling it (TigerBeetle's model): on the debit
//! account it raises `debits_pending` (money in flight, no longer spendable), on the credit account it
//! raises `credits_pending` (money held, not yet spendable). A later [`Phase::Post`] settles it and a
//! [`Phase::Void`] releases it. Purchases reserve this way until the trade is accepted; deposits under
//! Steam Trade Protection are held this way until the protection period ends.
//!
//! # Invariants (enforced here, so no caller can forget them)
//! - every transfer is balanced: what one account is debited the other is credited, so the sum of the
//!   net balances of all accounts is always zero;
//! - an account flagged `no_overdraft` (every merchant balance) never has
//!   `credits_posted - debits_posted - debits_pending < 0` after a transfer that debits it, unless the
//!   transfer is a flagged clawback ([`TransferSpec::allow_overdraft`], FLOWS.md);
//! - a pending transfer is posted or voided at most once, for its full amount, between its own accounts;
//! - a transfer id is used once: repeating the same spec is harmless ([`Applied::AlreadyApplied`]),
//!   reusing the id for a different spec is an error ([`LedgerError::ExistsWithDifferentFields`]);
//! - no balance overflows.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// Database id of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId(pub i64);

/// Client-supplied transfer id, e.g. `adj:<uuid>` or `purchase:42:reserve`. Deterministic ids are what
/// make a retried business operation land once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransferId(pub String);

/// What an account is for. Merchant projects have one [`AccountKind::ProjectBalance`]; the others exist
/// once per installation and are the counterparties that keep every transfer balanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A merchant's balance: spendable (posted), held (pending credits), in flight (pending debits).
    ProjectBalance,
    /// Value of items received through deposits.
    DepositsClearing,
    /// Money paid for market purchases.
    MarketSales,
    /// Fees the gateway keeps.
    Fees,
    /// Manual credits and debits by an operator.
    OperatorAdjustments,
    /// Losses from reversed deposits that could not be clawed back.
    ReversalLosses,
}

impl AccountKind {
    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProjectBalance => "project_balance",
            Self::DepositsClearing => "deposits_clearing",
            Self::MarketSales => "market_sales",
            Self::Fees => "fees",
            Self::OperatorAdjustments => "operator_adjustments",
            Self::ReversalLosses => "reversal_losses",
        }
    }

    /// Inverse of [`AccountKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::ProjectBalance,
            Self::DepositsClearing,
            Self::MarketSales,
            Self::Fees,
            Self::OperatorAdjustments,
            Self::ReversalLosses,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Merchant balances may never be overdrawn by anything the merchant starts.
    pub fn no_overdraft(self) -> bool {
        matches!(self, Self::ProjectBalance)
    }
}

/// The four running totals of an account, in minor units. Each only ever grows except the pending
/// ones, which shrink when a pending transfer is posted or voided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    /// Settled money out.
    pub debits_posted: i64,
    /// Settled money in.
    pub credits_posted: i64,
    /// Reserved money out (purchases in flight).
    pub debits_pending: i64,
    /// Reserved money in (deposits held under Trade Protection).
    pub credits_pending: i64,
}

impl Balances {
    /// What may be spent: settled credits minus settled and reserved debits.
    pub fn available(&self) -> Money {
        Money::from_minor(self.credits_posted - self.debits_posted - self.debits_pending)
    }

    /// Money received but not yet spendable.
    pub fn held(&self) -> Money {
        Money::from_minor(self.credits_pending)
    }

    /// Money reserved by unfinished outgoing transfers.
    pub fn in_flight(&self) -> Money {
        Money::from_minor(self.debits_pending)
    }

    /// Credits minus debits, pending included; sums to zero over all accounts.
    pub fn net(&self) -> i128 {
        i128::from(self.credits_posted) + i128::from(self.credits_pending)
            - i128::from(self.debits_posted)
            - i128::from(self.debits_pending)
    }
}

/// An account with its current balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Database id.
    pub id: AccountId,
    /// What it is for.
    pub kind: AccountKind,
    /// Whether the ledger refuses transfers that would overdraw it.
    pub no_overdraft: bool,
    /// Running totals.
    pub balances: Balances,
}

impl Account {
    /// A new, empty account; the overdraft rule follows from its kind.
    pub fn new(id: AccountId, kind: AccountKind) -> Self {
        Self { id, kind, no_overdraft: kind.no_overdraft(), balances: Balances::default() }
    }
}

/// Why money moved; shown to merchants as the `type` of a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferCode {
    /// A deposit credited to the balance.
    Deposit,
    /// A deposit held under Trade Protection.
    DepositHold,
    /// Money reserved or paid for a market purchase.
    Purchase,
    /// Money returned for a failed or reversed purchase.
    Refund,
    /// A manual operator credit or debit.
    Adjustment,
    /// Taking back an early-approved deposit that the payer reversed.
    Clawback,
    /// A gateway fee.
    Fee,
}

impl TransferCode {
    /// Stable name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::DepositHold => "deposit_hold",
            Self::Purchase => "purchase",
            Self::Refund => "refund",
            Self::Adjustment => "adjustment",
            Self::Clawback => "clawback",
            Self::Fee => "fee",
        }
    }

    /// Inverse of [`TransferCode::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Deposit, Self::DepositHold, Self::Purchase, Self::Refund, Self::Adjustment, Self::Clawback, Self::Fee]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Which phase a transfer is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase", content = "pending_id")]
pub enum Phase {
    /// Settled at once.
    Posted,
    /// Reserved; settled or released later.
    Pending,
    /// Settles the named pending transfer.
    Post(TransferId),
    /// Releases the named pending transfer.
    Void(TransferId),
}

impl Phase {
    /// Stable name used in storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Posted => "posted",
            Self::Pending => "pending",
            Self::Post(_) => "post_pending",
            Self::Void(_) => "void_pending",
        }
    }

    /// The pending transfer this one resolves, if any.
    pub fn pending_id(&self) -> Option<&TransferId> {
        match self {
            Self::Post(id) | Self::Void(id) => Some(id),
            Self::Posted | Self::Pending => None,
        }
    }

    /// Inverse of [`Phase::as_str`] plus [`Phase::pending_id`].
    pub fn parse(s: &str, pending_id: Option<String>) -> Option<Self> {
        match (s, pending_id) {
            ("posted", None) => Some(Self::Posted),
            ("pending", None) => Some(Self::Pending),
            ("post_pending", Some(id)) => Some(Self::Post(TransferId(id))),
            ("void_pending", Some(id)) => Some(Self::Void(TransferId(id))),
            _ => None,
        }
    }
}

/// What a caller asks the ledger to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSpec {
    /// Unique, caller-chosen id (see [`TransferId`]).
    pub id: TransferId,
    /// Account the money leaves.
    pub debit: AccountId,
    /// Account the money enters.
    pub credit: AccountId,
    /// Strictly positive. For [`Phase::Post`] and [`Phase::Void`] it must equal the pending amount.
    pub amount: Money,
    /// Posted, pending, or the resolution of a pending transfer.
    pub phase: Phase,
    /// Why money moves.
    pub code: TransferCode,
    /// Only for the reversal clawback: may overdraw a `no_overdraft` account (FLOWS.md).
    pub allow_overdraft: bool,
    /// Free text shown to the merchant (a deposit id, an operator's reason).
    pub reference: String,
}

/// A transfer the ledger has accepted, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// What was asked.
    pub spec: TransferSpec,
    /// For a pending transfer: whether it has been posted or voided already.
    pub resolved: bool,
}

/// Which side of a transfer an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Money leaves the account.
    Debit,
    /// Money enters the account.
    Credit,
}

impl Side {
    /// Stable name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debit => "debit",
            Self::Credit => "credit",
        }
    }
}

/// One side of a transfer, with the account's balances around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The account.
    pub account: AccountId,
    /// Debit or credit.
    pub side: Side,
    /// The transfer's amount.
    pub amount: Money,
    /// Balances before the transfer.
    pub before: Balances,
    /// Balances after the transfer.
    pub after: Balances,
}

/// The ledger's answer to a [`TransferSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied now; persist these entries and the new balances.
    New([Entry; 2]),
    /// The same spec was applied before; nothing to do (a retry).
    AlreadyApplied,
}

/// Why the ledger refuses a transfer. Nothing changes when it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Amounts are strictly positive.
    #[error("amount must be positive")]
    NonPositiveAmount,
    /// A transfer needs two different accounts.
    #[error("debit and credit account are the same")]
    SameAccount,
    /// The accounts passed do not match the spec.
    #[error("account {0:?} does not match the transfer")]
    WrongAccount(AccountId),
    /// The debit would overdraw a `no_overdraft` account.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// The id is taken by a different transfer.
    #[error("transfer {0:?} exists with different fields")]
    ExistsWithDifferentFields(TransferId),
    /// Post/void of an unknown transfer.
    #[error("pending transfer {0:?} not found")]
    PendingNotFound(TransferId),
    /// Post/void of a transfer that is not pending.
    #[error("transfer {0:?} is not pending")]
    NotPending(TransferId),
    /// The pending transfer was already posted or voided.
    #[error("pending transfer {0:?} already resolved")]
    PendingAlreadyResolved(TransferId),
    /// Post/void must use the pending transfer's accounts and amount.
    #[error("post/void does not match pending transfer {0:?}")]
    PendingMismatch(TransferId),
    /// A balance would overflow.
    #[error("balance overflow")]
    Overflow,
}

/// Step 1 of applying a spec: has this id been used? `Ok(true)` = already applied (replay),
/// `Ok(false)` = new, error = id reused for something else.
pub fn check_existing(spec: &TransferSpec, existing: Option<&Transfer>) -> Result<bool, LedgerError> {
    match existing {
        None => Ok(false),
        Some(t) if t.spec == *spec => Ok(true),
        Some(_) => Err(LedgerError::ExistsWithDifferentFields(spec.id.clone())),
    }
}

/// Step 2: apply a new spec to its two accounts (and the pending transfer it resolves), returning the
/// entries. On error nothing is modified. The caller persists `debit`, `credit` and the entries, and
/// marks the pending transfer resolved, all in one transaction.
pub fn apply(
    spec: &TransferSpec,
    debit: &mut Account,
    credit: &mut Account,
    pending: Option<&Transfer>,
) -> Result<[Entry; 2], LedgerError> {
    // Same order of checks as `Ledger::execute` and storage, which refuse one-account transfers before
    // loading anything: every path gives the same error for the same spec.
    if spec.debit == spec.credit {
        return Err(LedgerError::SameAccount);
    }
    if !spec.amount.is_positive() {
        return Err(LedgerError::NonPositiveAmount);
    }
    for (want, got) in [(spec.debit, debit.id), (spec.credit, credit.id)] {
        if want != got {
            return Err(LedgerError::WrongAccount(got));
        }
    }
    check_pending(spec, pending)?;
    let amount = spec.amount.minor();
    let (d_before, c_before) = (debit.balances, credit.balances);
    let mut d = d_before;
    let mut c = c_before;
    let add = |x: i64, y: i64| x.checked_add(y).ok_or(LedgerError::Overflow);
    match spec.phase {
        Phase::Posted => {
            d.debits_posted = add(d.debits_posted, amount)?;
            c.credits_posted = add(c.credits_posted, amount)?;
        }
        Phase::Pending => {
            d.debits_pending = add(d.debits_pending, amount)?;
            c.credits_pending = add(c.credits_pending, amount)?;
        }
        Phase::Post(_) => {
            d.debits_pending -= amount;
            d.debits_posted = add(d.debits_posted, amount)?;
            c.credits_pending -= amount;
            c.credits_posted = add(c.credits_posted, amount)?;
        }
        Phase::Void(_) => {
            d.debits_pending -= amount;
            c.credits_pending -= amount;
        }
    }
    // Net balances must stay representable for reports.
    for b in [&d, &c] {
        if b.credits_posted.checked_sub(b.debits_posted).and_then(|x| x.checked_sub(b.debits_pending)).is_none() {
            return Err(LedgerError::Overflow);
        }
    }
    let lowers_available = d.available() < d_before.available();
    if debit.no_overdraft && lowers_available && d.available() < Money::ZERO && !spec.allow_overdraft {
        return Err(LedgerError::InsufficientFunds);
    }
    debug_assert_eq!(d.net() + c.net(), d_before.net() + c_before.net(), "transfer must be balanced");
    debit.balances = d;
    credit.balances = c;
    Ok([
        Entry { account: debit.id, side: Side::Debit, amount: spec.amount, before: d_before, after: d },
        Entry { account: credit.id, side: Side::Credit, amount: spec.amount, before: c_before, after: c },
    ])
}

fn check_pending(spec: &TransferSpec, pending: Option<&Transfer>) -> Result<(), LedgerError> {
    let Some(pending_id) = spec.phase.pending_id() else {
        return Ok(());
    };
    let p =
        pending.filter(|p| &p.spec.id == pending_id).ok_or_else(|| LedgerError::PendingNotFound(pending_id.clone()))?;
    if p.spec.phase != Phase::Pending {
        return Err(LedgerError::NotPending(pending_id.clone()));
    }
    if p.resolved {
        return Err(LedgerError::PendingAlreadyResolved(pending_id.clone()));
    }
    if (p.spec.debit, p.spec.credit, p.spec.amount) != (spec.debit, spec.credit, spec.amount) {
        return Err(LedgerError::PendingMismatch(pending_id.clone()));
    }
    Ok(())
}

/// An in-memory ledger: the reference implementation the storage layer must agree with, and a
/// convenient fake for tests. It runs the same [`check_existing`] and [`apply`] as storage does.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    accounts: BTreeMap<AccountId, Account>,
    transfers: HashMap<TransferId, Transfer>,
    entries: Vec<Entry>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens an account (replacing none: ids are unique).
    pub fn open(&mut self, id: AccountId, kind: AccountKind) {
        self.accounts.entry(id).or_insert_with(|| Account::new(id, kind));
    }

    /// Current state of an account.
    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }

    /// Every account.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// Every entry, in the order written.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Applies a transfer: all or nothing.
    ///
    /// # Panics
    /// If the spec names an account that was never opened: that is a programming error, not input.
    pub fn execute(&mut self, spec: &TransferSpec) -> Result<Applied, LedgerError> {
        if check_existing(spec, self.transfers.get(&spec.id))? {
            return Ok(Applied::AlreadyApplied);
        }
        if spec.debit == spec.credit {
            return Err(LedgerError::SameAccount);
        }
        let mut debit = self.accounts[&spec.debit].clone();
        let mut credit = self.accounts[&spec.credit].clone();
        let pending = spec.phase.pending_id().and_then(|id| self.transfers.get(id));
        let entries = apply(spec, &mut debit, &mut credit, pending)?;
        if let Some(id) = spec.phase.pending_id() {
            self.transfers.get_mut(id).expect("checked by apply").resolved = true;
        }
        self.accounts.insert(debit.id, debit);
        self.accounts.insert(credit.id, credit);
        self.transfers.insert(spec.id.clone(), Transfer { spec: spec.clone(), resolved: false });
        self.entries.extend(entries.iter().cloned());
        Ok(Applied::New(entries))
    }
}

#[cfg(test)]
mod tests;
