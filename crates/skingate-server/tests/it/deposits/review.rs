//! Regression tests for defects a review found in the deposit flow: the offer sent inside the write
//! transaction, `order_id` reused across `create` and `create_from_user_inventory`, and the deposit fee never
//! booked. (The hold-end rule is tested in `skingate_core::deposit`.)

use skingate_core::Money;
use skingate_core::ledger::{AccountKind, Applied, Phase, TransferCode, TransferId, TransferSpec};
use skingate_steam::catalogue::Game;
use skingate_steam::sim::Profile;

use super::{env, payer, value};

/// Re-applies a deposit fee transfer as the gateway would have booked it: `AlreadyApplied` proves the
/// gateway booked exactly this transfer (same id, accounts, amount and phase).
async fn fee_booked(
    e: &super::Env,
    (id, order): (&str, &str),
    (debit, credit): (AccountKind, AccountKind),
    fee: Money,
    phase: Phase,
) -> bool {
    let dep: i64 = id.split(':').nth(1).unwrap().parse().unwrap();
    let state = &e.app.running.state;
    let mut tx = state.store.begin().await.unwrap();
    let spec = TransferSpec {
        id: TransferId(id.into()),
        debit: tx.system_account(debit).await.unwrap(),
        credit: tx.system_account(credit).await.unwrap(),
        amount: fee,
        phase,
        code: TransferCode::Fee,
        allow_overdraft: false,
        reference: format!("deposit {dep} order {order}"),
    };
    let applied = tx.transfer(&spec, 0).await;
    drop(tx); // roll back whatever this probe did
    matches!(applied, Ok(Applied::AlreadyApplied))
}

#[tokio::test]
async fn deposit_fee_is_booked_to_the_fees_account() {
    let e = env(|s| s.deposit_fee_ppm = 50_000).await; // 5 %
    let user = payer(201);
    let items = e.items(user, Game::Dota2, 2).await;
    let id = e.deposit("fee-1", user, Game::Dota2, &items).await;
    e.advance(10);
    let cb = e.callback().await;
    assert_eq!(cb["status"], "success");
    let gross = value(&items);
    let fee = skingate_core::deposit::apply_ppm(gross, 50_000).unwrap();
    let net = Money::from_minor(gross.minor() - fee.minor());
    assert!(fee.is_positive());
    assert_eq!(cb["amount_usd"], net.to_wire().to_string());
    assert_eq!(e.balance().await, (net.to_wire().to_string(), "0.00".into()));
    let (clearing, fees) = (AccountKind::DepositsClearing, AccountKind::Fees);
    assert!(fee_booked(&e, (&format!("dep:{id}:fee"), "fee-1"), (clearing, fees), fee, Phase::Posted).await);

    // A held CS2 deposit: the fee is held with the credit, and voided with it when the payer reverses.
    let user = payer(202);
    e.sim().set_profile(user, Profile::ReverseAfter { accept_after: 5, reverse_after: 600 });
    let items = e.items(user, Game::Cs2, 1).await;
    let id = e.deposit("fee-2", user, Game::Cs2, &items).await;
    e.advance(5);
    assert_eq!(e.callback().await["status"], "in_hold");
    let fee = skingate_core::deposit::apply_ppm(value(&items), 50_000).unwrap();
    let hold = TransferId(format!("dep:{id}:fee_hold"));
    assert!(fee_booked(&e, (&hold.0, "fee-2"), (clearing, fees), fee, Phase::Pending).await);
    e.advance(600);
    assert_eq!(e.callback().await["status"], "fail");
    assert!(fee_booked(&e, (&format!("dep:{id}:fee_void"), "fee-2"), (clearing, fees), fee, Phase::Void(hold)).await);
}
