//! Ledger rules, one unit test each, and a property test against a naive oracle model.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const PROJECT: AccountId = AccountId(1);
const OTHER: AccountId = AccountId(2);
const ADJUST: AccountId = AccountId(10);
const SALES: AccountId = AccountId(11);
const CLEARING: AccountId = AccountId(12);
const LOSSES: AccountId = AccountId(13);

fn ledger() -> Ledger {
    let mut l = Ledger::new();
    l.open(PROJECT, AccountKind::ProjectBalance);
    l.open(OTHER, AccountKind::ProjectBalance);
    l.open(ADJUST, AccountKind::OperatorAdjustments);
    l.open(SALES, AccountKind::MarketSales);
    l.open(CLEARING, AccountKind::DepositsClearing);
    l.open(LOSSES, AccountKind::ReversalLosses);
    l
}

fn spec(id: &str, debit: AccountId, credit: AccountId, minor: i64, phase: Phase) -> TransferSpec {
    TransferSpec {
        id: TransferId(id.into()),
        debit,
        credit,
        amount: Money::from_minor(minor),
        phase,
        code: TransferCode::Adjustment,
        allow_overdraft: false,
        reference: String::new(),
    }
}

fn available(l: &Ledger, a: AccountId) -> i64 {
    l.account(a).unwrap().balances.available().minor()
}

#[test]
fn posted_transfer_writes_two_balanced_entries() {
    let mut l = ledger();
    let Applied::New(entries) = l.execute(&spec("c1", ADJUST, PROJECT, 500, Phase::Posted)).unwrap() else {
        panic!("new transfer")
    };
    assert_eq!(entries[0].account, ADJUST);
    assert_eq!(entries[0].side, Side::Debit);
    assert_eq!(entries[0].after.debits_posted, 500);
    assert_eq!(entries[1].before, Balances::default());
    assert_eq!(entries[1].after.available(), Money::from_minor(500));
    assert_eq!(available(&l, PROJECT), 500);
    assert_eq!(l.accounts().map(|a| a.balances.net()).sum::<i128>(), 0);
}

#[test]
fn overdraft_is_refused_and_changes_nothing() {
    let mut l = ledger();
    l.execute(&spec("c1", ADJUST, PROJECT, 500, Phase::Posted)).unwrap();
    let before = l.clone();
    assert_eq!(l.execute(&spec("d1", PROJECT, ADJUST, 501, Phase::Posted)), Err(LedgerError::InsufficientFunds));
    assert_eq!(l.execute(&spec("p1", PROJECT, SALES, 501, Phase::Pending)), Err(LedgerError::InsufficientFunds));
    assert_eq!(l.entries().len(), before.entries().len());
    assert_eq!(available(&l, PROJECT), 500);
    // Exactly the balance is fine.
    assert!(l.execute(&spec("d2", PROJECT, ADJUST, 500, Phase::Posted)).is_ok());
    assert_eq!(available(&l, PROJECT), 0);
}

#[test]
fn clawback_may_overdraw_then_debits_fail() {
    let mut l = ledger();
    l.execute(&spec("c1", ADJUST, PROJECT, 100, Phase::Posted)).unwrap();
    let mut claw = spec("claw", PROJECT, LOSSES, 300, Phase::Posted);
    claw.allow_overdraft = true;
    claw.code = TransferCode::Clawback;
    l.execute(&claw).unwrap();
    assert_eq!(available(&l, PROJECT), -200);
    assert_eq!(l.execute(&spec("d", PROJECT, ADJUST, 1, Phase::Posted)), Err(LedgerError::InsufficientFunds));
    // Credits still land, and once positive again the balance is spendable.
    l.execute(&spec("c2", ADJUST, PROJECT, 250, Phase::Posted)).unwrap();
    assert!(l.execute(&spec("d2", PROJECT, ADJUST, 50, Phase::Posted)).is_ok());
}

#[test]
fn pending_debit_reserves_then_posts_or_voids() {
    let mut l = ledger();
    l.execute(&spec("c1", ADJUST, PROJECT, 1_000, Phase::Posted)).unwrap();
    l.execute(&spec("buy1", PROJECT, SALES, 400, Phase::Pending)).unwrap();
    assert_eq!(available(&l, PROJECT), 600);
    assert_eq!(l.account(PROJECT).unwrap().balances.in_flight(), Money::from_minor(400));
    l.execute(&spec("buy1:post", PROJECT, SALES, 400, Phase::Post(TransferId("buy1".into())))).unwrap();
    assert_eq!(available(&l, PROJECT), 600);
    assert_eq!(l.account(PROJECT).unwrap().balances.in_flight(), Money::ZERO);
    assert_eq!(l.account(SALES).unwrap().balances.credits_posted, 400);
    l.execute(&spec("buy2", PROJECT, SALES, 600, Phase::Pending)).unwrap();
    assert_eq!(available(&l, PROJECT), 0);
    l.execute(&spec("buy2:void", PROJECT, SALES, 600, Phase::Void(TransferId("buy2".into())))).unwrap();
    assert_eq!(available(&l, PROJECT), 600);
}

#[test]
fn pending_credit_is_held_until_posted() {
    let mut l = ledger();
    l.execute(&spec("dep", CLEARING, PROJECT, 700, Phase::Pending)).unwrap();
    assert_eq!(available(&l, PROJECT), 0);
    assert_eq!(l.account(PROJECT).unwrap().balances.held(), Money::from_minor(700));
    l.execute(&spec("dep:post", CLEARING, PROJECT, 700, Phase::Post(TransferId("dep".into())))).unwrap();
    assert_eq!(available(&l, PROJECT), 700);
    assert_eq!(l.account(PROJECT).unwrap().balances.held(), Money::ZERO);
}

#[test]
fn pending_resolution_rules() {
    let mut l = ledger();
    l.execute(&spec("c1", ADJUST, PROJECT, 1_000, Phase::Posted)).unwrap();
    l.execute(&spec("p", PROJECT, SALES, 100, Phase::Pending)).unwrap();
    let pid = || TransferId("p".into());
    assert_eq!(
        l.execute(&spec("x1", PROJECT, SALES, 99, Phase::Post(pid()))),
        Err(LedgerError::PendingMismatch(pid()))
    );
    assert_eq!(l.execute(&spec("x2", OTHER, SALES, 100, Phase::Void(pid()))), Err(LedgerError::PendingMismatch(pid())));
    l.execute(&spec("x3", PROJECT, SALES, 100, Phase::Void(pid()))).unwrap();
    assert_eq!(
        l.execute(&spec("x4", PROJECT, SALES, 100, Phase::Post(pid()))),
        Err(LedgerError::PendingAlreadyResolved(pid()))
    );
    let c1 = TransferId("c1".into());
    assert_eq!(
        l.execute(&spec("x5", ADJUST, PROJECT, 1_000, Phase::Post(c1.clone()))),
        Err(LedgerError::NotPending(c1))
    );
    let nope = TransferId("nope".into());
    assert_eq!(
        l.execute(&spec("x6", ADJUST, PROJECT, 1, Phase::Void(nope.clone()))),
        Err(LedgerError::PendingNotFound(nope))
    );
}

#[test]
fn duplicate_ids() {
    let mut l = ledger();
    let s = spec("c1", ADJUST, PROJECT, 500, Phase::Posted);
    l.execute(&s).unwrap();
    assert_eq!(l.execute(&s), Ok(Applied::AlreadyApplied));
    assert_eq!(l.entries().len(), 2);
    let changed = spec("c1", ADJUST, PROJECT, 501, Phase::Posted);
    assert_eq!(l.execute(&changed), Err(LedgerError::ExistsWithDifferentFields(TransferId("c1".into()))));
    assert_eq!(available(&l, PROJECT), 500);
}

#[test]
fn bad_amounts_and_accounts() {
    let mut l = ledger();
    assert_eq!(l.execute(&spec("z", ADJUST, PROJECT, 0, Phase::Posted)), Err(LedgerError::NonPositiveAmount));
    assert_eq!(l.execute(&spec("n", ADJUST, PROJECT, -5, Phase::Posted)), Err(LedgerError::NonPositiveAmount));
    assert_eq!(l.execute(&spec("s", PROJECT, PROJECT, 5, Phase::Posted)), Err(LedgerError::SameAccount));
    l.execute(&spec("big", ADJUST, PROJECT, i64::MAX, Phase::Posted)).unwrap();
    assert_eq!(l.execute(&spec("more", ADJUST, PROJECT, 1, Phase::Posted)), Err(LedgerError::Overflow));
}

// ---------------------------------------------------------------------------------------------------------
// Property test: random operations against a deliberately naive oracle.

#[derive(Debug, Clone)]
enum Op {
    Credit(usize, i64),
    Debit(usize, i64),
    Reserve(usize, i64),
    Hold(usize, i64),
    Resolve(usize, bool),
    Clawback(usize, i64),
    Replay(usize),
    Reuse(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..2usize;
    let amt = 1..5_000i64;
    prop_oneof![
        (p.clone(), amt.clone()).prop_map(|(p, a)| Op::Credit(p, a)),
        (p.clone(), amt.clone()).prop_map(|(p, a)| Op::Debit(p, a)),
        (p.clone(), amt.clone()).prop_map(|(p, a)| Op::Reserve(p, a)),
        (p.clone(), amt.clone()).prop_map(|(p, a)| Op::Hold(p, a)),
        (0..64usize, any::<bool>()).prop_map(|(i, post)| Op::Resolve(i, post)),
        (p, amt.clone()).prop_map(|(p, a)| Op::Clawback(p, a)),
        (0..64usize).prop_map(Op::Replay),
        (0..64usize, amt).prop_map(|(i, a)| Op::Reuse(i, a)),
    ]
}

/// The oracle: per project three plain numbers and a list of pending transfers.
#[derive(Default, Debug)]
struct Oracle {
    available: [i64; 2],
    held: [i64; 2],
    in_flight: [i64; 2],
    /// id -> (project, amount, is_debit, resolved)
    pending: HashMap<String, (usize, i64, bool, bool)>,
}

const PROJECTS: [AccountId; 2] = [PROJECT, OTHER];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn ledger_agrees_with_oracle(ops in proptest::collection::vec(op(), 1..150)) {
        let mut l = ledger();
        let mut o = Oracle::default();
        let mut done: Vec<TransferSpec> = Vec::new();
        let mut pendings: Vec<String> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            let id = format!("t{n}");
            let (s, expect): (TransferSpec, Result<(), LedgerError>) = match op {
                Op::Credit(p, a) => {
                    o.available[p] += a;
                    (spec(&id, ADJUST, PROJECTS[p], a, Phase::Posted), Ok(()))
                }
                Op::Debit(p, a) | Op::Reserve(p, a) => {
                    let pending = matches!(op, Op::Reserve(..));
                    let phase = if pending { Phase::Pending } else { Phase::Posted };
                    let s = spec(&id, PROJECTS[p], if pending { SALES } else { ADJUST }, a, phase);
                    if o.available[p] - a < 0 {
                        (s, Err(LedgerError::InsufficientFunds))
                    } else {
                        o.available[p] -= a;
                        if pending {
                            o.in_flight[p] += a;
                            o.pending.insert(id.clone(), (p, a, true, false));
                            pendings.push(id.clone());
                        }
                        (s, Ok(()))
                    }
                }
                Op::Hold(p, a) => {
                    o.held[p] += a;
                    o.pending.insert(id.clone(), (p, a, false, false));
                    pendings.push(id.clone());
                    (spec(&id, CLEARING, PROJECTS[p], a, Phase::Pending), Ok(()))
                }
                Op::Resolve(i, post) => {
                    let Some(pid) = pendings.get(i % pendings.len().max(1)).cloned() else { continue };
                    let (p, a, is_debit, resolved) = o.pending[&pid];
                    let (debit, credit) = if is_debit { (PROJECTS[p], SALES) } else { (CLEARING, PROJECTS[p]) };
                    let phase = if post { Phase::Post(TransferId(pid.clone())) } else { Phase::Void(TransferId(pid.clone())) };
                    let s = spec(&id, debit, credit, a, phase);
                    if resolved {
                        (s, Err(LedgerError::PendingAlreadyResolved(TransferId(pid))))
                    } else {
                        o.pending.get_mut(&pid).unwrap().3 = true;
                        match (is_debit, post) {
                            (true, true) => o.in_flight[p] -= a,
                            (true, false) => { o.in_flight[p] -= a; o.available[p] += a; }
                            (false, true) => { o.held[p] -= a; o.available[p] += a; }
                            (false, false) => o.held[p] -= a,
                        }
                        (s, Ok(()))
                    }
                }
                Op::Clawback(p, a) => {
                    o.available[p] -= a;
                    let mut s = spec(&id, PROJECTS[p], LOSSES, a, Phase::Posted);
                    s.allow_overdraft = true;
                    (s, Ok(()))
                }
                Op::Replay(i) => {
                    let Some(s) = done.get(i % done.len().max(1)).cloned() else { continue };
                    prop_assert_eq!(l.execute(&s), Ok(Applied::AlreadyApplied));
                    continue;
                }
                Op::Reuse(i, a) => {
                    let Some(mut s) = done.get(i % done.len().max(1)).cloned() else { continue };
                    if s.amount.minor() == a { continue }
                    s.amount = Money::from_minor(a);
                    let err = LedgerError::ExistsWithDifferentFields(s.id.clone());
                    (s, Err(err))
                }
            };
            let entries_before = l.entries().len();
            let got = l.execute(&s).map(|_| ());
            prop_assert_eq!(&got, &expect, "op {} {:?}", n, s);
            if got.is_ok() {
                done.push(s);
                prop_assert_eq!(l.entries().len(), entries_before + 2);
            } else {
                prop_assert_eq!(l.entries().len(), entries_before);
            }
            for (i, a) in PROJECTS.iter().enumerate() {
                let b = l.account(*a).unwrap().balances;
                prop_assert_eq!(b.available().minor(), o.available[i]);
                prop_assert_eq!(b.held().minor(), o.held[i]);
                prop_assert_eq!(b.in_flight().minor(), o.in_flight[i]);
            }
            prop_assert_eq!(l.accounts().map(|a| a.balances.net()).sum::<i128>(), 0);
        }
        // Entries chain: each account's `before` is its previous `after`; debits equal credits.
        let mut last: HashMap<AccountId, Balances> = HashMap::new();
        let (mut debits, mut credits) = (0i128, 0i128);
        for e in l.entries() {
            prop_assert_eq!(last.get(&e.account).copied().unwrap_or_default(), e.before);
            last.insert(e.account, e.after);
            match e.side {
                Side::Debit => debits += i128::from(e.amount.minor()),
                Side::Credit => credits += i128::from(e.amount.minor()),
            }
        }
        prop_assert_eq!(debits, credits);
    }
}
