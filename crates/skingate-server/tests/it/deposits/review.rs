//! Regression tests for defects a review found in the deposit flow: the offer sent inside the write
//! transaction, `order_id` reused across `create` and `create_from_user_inventory`, and the deposit fee never
//! booked. (The hold-end rule is tested in `skingate_core::deposit`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use skingate_core::Money;
use skingate_core::ledger::{AccountKind, Applied, Phase, TransferCode, TransferId, TransferSpec};
use skingate_sdk::deposits::DepositRef;
use skingate_steam::catalogue::Game;
use skingate_steam::sim::{Profile, Steam};
use skingate_steam::users::Asset;
use skingate_store::deposits::{DepositItem, NewDeposit, OfferTarget};

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

/// A `create_from_user_inventory` request for `items` of `user`.
fn cfui(e: &super::Env, order: &str, user: skingate_steam::SteamId, items: &[skingate_steam::users::Asset]) -> Value {
    let ids: Vec<String> = items.iter().map(|a| a.asset_id.to_string()).collect();
    json!({"method": "create_from_user_inventory", "order_id": order, "steam_id": user.to_string(),
        "trade_token": e.token(user), "game": "dota2", "item_asset_ids": ids})
}

/// One `order_id` names one deposit, whichever method made it: reusing it across `create` and
/// `create_from_user_inventory` is the method's `order_id_already_exists`, never an internal error.
#[tokio::test]
async fn order_id_is_shared_by_create_and_create_from_user_inventory() {
    let e = env(|_| {}).await;
    let user = payer(203);
    let items = e.items(user, Game::Dota2, 1).await;
    let made = e.app.post_json(json!({"method": "create", "order_id": "shared-1"})).await;
    assert_eq!(made["status"], "success", "{made}");
    let again = e.app.post_json(cfui(&e, "shared-1", user, &items)).await;
    crate::utils::assert_error(&again, 7, "order_id_already_exists");
    // Nothing was sent: the items are still the payer's to offer.
    let first = e.app.post_json(cfui(&e, "shared-2", user, &items)).await;
    assert_eq!(first["status"], "success", "{first}");
    let back = e.app.post_json(json!({"method": "create", "order_id": "shared-2"})).await;
    crate::utils::assert_error(&back, 5, "order_id_already_exists");
}

/// Re-arms a one-shot pause inside Steam's `send_offer`, after the offer exists: the window in which a
/// client gives up while Steam has already created the offer.
fn pause_after_next_send(e: &super::Env, pause: Duration) -> Arc<AtomicBool> {
    let armed = Arc::new(AtomicBool::new(false));
    let flag = armed.clone();
    e.sim().add_listener(Arc::new(move |_| {
        if flag.swap(false, Ordering::SeqCst) {
            std::thread::sleep(pause);
        }
    }));
    armed
}

/// The merchant's client times out after Steam created the offer but before the gateway answered: the
/// deposit must still be recorded with that offer (the payer may accept it), and the retry must replay the
/// same answer without a second offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_gives_up_mid_send_loses_no_offer_and_its_retry_replays() {
    let e = env(|_| {}).await;
    let user = payer(204);
    let items = e.items(user, Game::Dota2, 1).await;
    e.sim().set_profile(user, Profile::Manual);
    let armed = pause_after_next_send(&e, Duration::from_millis(1_500));
    armed.store(true, Ordering::SeqCst);
    let body = e.app.signed(cfui(&e, "gone-1", user, &items));
    let sent = e.app.http.post(e.app.api_url()).json(&body).timeout(Duration::from_millis(300)).send().await;
    assert!(sent.is_err(), "the client was meant to time out: {sent:?}");
    // A retry while the offer is still being sent waits for the first answer and replays it.
    let retry = e.app.post_json(cfui(&e, "gone-1", user, &items)).await;
    assert_eq!(retry["status"], "success", "{retry}");
    let offer = retry["data"]["trade_offer_id"].as_str().unwrap().to_owned();
    let id = retry["data"]["transaction_id"].as_i64().unwrap();
    let st = e.app.sdk().order_status(DepositRef::Order("gone-1")).await.unwrap();
    assert_eq!((st.status.as_str(), st.trade_offer_id.as_deref()), ("pending", Some(offer.as_str())));
    // Once more after it settled: the same answer, and still one offer.
    let third = e.app.post_json(cfui(&e, "gone-1", user, &items)).await;
    assert_eq!(third, retry);
    let offer: u64 = offer.parse().unwrap();
    assert!(e.sim().offer(offer + 1).await.is_err(), "a second offer was sent");
    // The payer accepts the one live offer: the deposit is credited.
    e.sim().accept(offer).unwrap();
    e.advance(0);
    assert_eq!(e.callback().await["status"], "success");
    assert_eq!(e.status(id).await, "success");
}

/// A deposit of one Dota 2 item of `user`, committed in the sending state with no offer id: what a crash
/// between the start of a send and its record leaves behind.
async fn interrupted_send(e: &super::Env, order: &str, user: skingate_steam::SteamId) -> (i64, Vec<Asset>) {
    interrupted_send_at(e, order, user, e.app.running.state.now(), false).await
}

/// [`interrupted_send`], begun at `begun` (gateway clock); with `api_call`, for a `create_from_user_inventory`
/// call whose order key has no answer stored yet.
async fn interrupted_send_at(
    e: &super::Env,
    order: &str,
    user: skingate_steam::SteamId,
    begun: i64,
    api_call: bool,
) -> (i64, Vec<Asset>) {
    let state = &e.app.running.state;
    let items = e.items(user, Game::Dota2, 1).await;
    let new = NewDeposit {
        project: e.app.project.id,
        order_id: order.into(),
        page_token: format!("{order}-page-token"),
        steam_id: Some(user.to_string()),
        trade_token: Some(e.token(user)),
        game: Some("dota2".into()),
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
        created_at: state.now(),
    };
    let target = OfferTarget {
        steam_id: user.to_string(),
        trade_token: e.token(user),
        game: "dota2".into(),
        items: vec![DepositItem {
            asset_id: items[0].asset_id.to_string(),
            classid: items[0].classid.to_string(),
            context_id: items[0].context_id,
            market_hash_name: items[0].market_hash_name.clone(),
            price_cents: items[0].price_cents,
        }],
    };
    let mut tx = state.store.begin().await.unwrap();
    if api_call {
        let key = skingate_store::IdempotencyKey {
            project: e.app.project.id,
            scope: skingate_server::deposits::ORDER_SCOPE.into(),
            key: order.into(),
        };
        // The hash the request `cfui` builds has, so a retry of it is "the same request".
        let params = skingate_server::api::params::Params(cfui(e, order, user, &items).as_object().unwrap().clone());
        let hash = skingate_server::idempotency::fingerprint("create_from_user_inventory", &params);
        tx.claim_idempotency_key(&key, &hash, begun).await.unwrap();
    }
    let id = tx.insert_deposit(&new).await.unwrap();
    assert!(tx.begin_sending(id, &target, begun).await.unwrap());
    tx.commit().await.unwrap();
    (id, items)
}

/// A `create_from_user_inventory` send interrupted by a restart is failed with its callback, as one of the
/// running process is: the merchant's call got no answer and nobody is on a page to send again (a page
/// deposit is put back instead: pay.rs).
#[tokio::test]
async fn an_api_send_interrupted_by_a_restart_is_failed() {
    let e = env(|_| {}).await;
    let begun = e.app.running.state.started_at - 1;
    let (id, _) = interrupted_send_at(&e, "crash-api-1", payer(209), begun, true).await;
    e.advance(skingate_server::deposits::SEND_GRACE_SECS);
    let cb = e.callback().await;
    assert_eq!((cb["status"].as_str(), cb["fail_reason"].as_str()), (Some("fail"), Some("trade_create_error")));
    assert_eq!(e.status(id).await, "fail");
}

/// A process that starts in the clock second in which an earlier process began a send it left unfinished
/// (a crash and an immediate restart) starts in the next second, so that send still reads as an earlier
/// process's: the watcher puts a page deposit back for its payer instead of failing it (a crash audit saw 12 of
/// 21 interrupted sends begin in their successor's first second).
#[tokio::test]
async fn a_process_starting_in_the_second_of_an_orphaned_send_starts_after_it() {
    use skingate_server::clock::{Clock as _, SystemClock};
    let app = crate::utils::spawn().await;
    let state = &app.running.state;
    let made = app.post_json(json!({"method": "create", "order_id": "same-second"})).await;
    let id = made["transaction_id"].as_i64().unwrap_or_else(|| panic!("{made}"));
    let target = OfferTarget {
        steam_id: payer(211).to_string(),
        trade_token: "AbCdEfGh".into(),
        game: "dota2".into(),
        items: vec![],
    };
    let mut tx = state.store.begin().await.unwrap();
    let begun = SystemClock.now();
    assert!(tx.begin_sending(id, &target, begun).await.unwrap());
    tx.commit().await.unwrap();
    let next =
        skingate_server::AppState::new(state.config.clone(), state.store.clone(), Arc::new(SystemClock)).await.unwrap();
    assert!(next.started_at > begun, "started at {} with a send of {begun}", next.started_at);
}

/// A retry of a `create_from_user_inventory` call whose send began before this process started (the gateway
/// restarted mid-send) answers `14 trade_create_error` at once instead of waiting for an answer that nobody is
/// left to give (a retry during a live send waits up to 10 s for it).
#[tokio::test]
async fn a_retry_of_a_call_a_restart_interrupted_answers_at_once() {
    let e = env(|_| {}).await;
    let user = payer(210);
    let begun = e.app.running.state.started_at - 1;
    let (_, items) = interrupted_send_at(&e, "crash-api-2", user, begun, true).await;
    let started = std::time::Instant::now();
    let again = e.app.post_json(cfui(&e, "crash-api-2", user, &items)).await;
    crate::utils::assert_error(&again, 14, "trade_create_error");
    assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
}

/// A crash between Steam's answer and the record leaves a deposit in the sending state with no offer id:
/// the watcher fails it after the grace period (with its callback) instead of leaving it pending forever,
/// and a retry of the order gets `trade_create_error`, not a second offer.
#[tokio::test]
async fn a_send_interrupted_by_a_crash_is_failed_by_the_watcher() {
    let e = env(|_| {}).await;
    let (id, _) = interrupted_send(&e, "crash-1", payer(205)).await;
    // Within the grace period a send may still be under way: nothing happens.
    e.advance(skingate_server::deposits::SEND_GRACE_SECS - 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.status(id).await, "pending");
    e.advance(1);
    let cb = e.callback().await;
    assert_eq!(cb["status"], "fail");
    assert_eq!(cb["fail_reason"], "trade_create_error");
    assert_eq!(e.status(id).await, "fail");
}

/// If the interrupted send did reach Steam, the watcher finds that offer and adopts it instead of failing the
/// deposit: the payer who accepts it is credited, and no offer is left unwatched.
#[tokio::test]
async fn an_interrupted_send_whose_offer_reached_steam_is_adopted() {
    use skingate_steam::ids::TradeUrl;
    use skingate_steam::sim::NewOffer;
    let e = env(|_| {}).await;
    let user = payer(206);
    let (id, items) = interrupted_send(&e, "crash-2", user).await;
    let partner = TradeUrl::new(user, &e.token(user)).unwrap();
    let sent =
        NewOffer { partner, game: Game::Dota2, items_to_receive: vec![items[0].asset_id], items_to_give: vec![] };
    let offer = e.sim().send_offer(sent).await.unwrap();
    e.advance(skingate_server::deposits::SEND_GRACE_SECS);
    let cb = e.callback().await;
    assert_eq!(cb["status"], "success", "the payer accepted the adopted offer 10 s after it was sent");
    let st = e.app.sdk().order_status(DepositRef::Transaction(id)).await.unwrap();
    assert_eq!(st.trade_offer_id, Some(offer.to_string()));
    assert_eq!(e.balance().await.0, value(&items).to_wire().to_string());
}

/// An offer found at Steam is adopted only if no other deposit records it: a payer whose first deposit's send
/// never reached Steam and who deposits the same item again is credited once, for the second deposit.
#[tokio::test]
async fn adoption_never_takes_an_offer_another_deposit_recorded() {
    let e = env(|_| {}).await;
    let user = payer(207);
    let (first, items) = interrupted_send(&e, "crash-3", user).await;
    e.advance(1);
    let second = e.deposit("again-3", user, Game::Dota2, &items).await;
    e.advance(skingate_server::deposits::SEND_GRACE_SECS);
    let mut outcomes = [e.callback().await, e.callback().await];
    outcomes.sort_by_key(|cb| cb["transaction_id"].to_string());
    let statuses: Vec<(String, String)> = outcomes
        .iter()
        .map(|cb| (cb["transaction_id"].to_string().trim_matches('"').to_owned(), cb["status"].to_string()))
        .collect();
    assert_eq!(statuses, [(first.to_string(), "\"fail\"".to_owned()), (second.to_string(), "\"success\"".to_owned())]);
    assert_eq!(e.balance().await.0, value(&items).to_wire().to_string(), "credited once");
}

/// A sent offer that can be neither recorded (the write fails) nor cancelled (the payer accepted at once)
/// keeps its deposit in the sending state: after the grace period the watcher adopts the offer and the payer
/// is credited, instead of the items arriving for a deposit that was deleted.
#[tokio::test]
async fn an_offer_neither_recorded_nor_cancelled_is_adopted_by_the_watcher() {
    let e = env(|_| {}).await;
    let user = payer(208);
    e.sim().set_profile(user, Profile::AcceptAfter { secs: 0 });
    let items = e.items(user, Game::Dota2, 1).await;
    let when = "NEW.offer_id IS NOT NULL AND OLD.offer_id IS NULL";
    let fault = crate::utils::Fault::inject(e.app.database_url(), "BEFORE UPDATE ON deposits", when).await;
    let ids: Vec<String> = items.iter().map(|a| a.asset_id.to_string()).collect();
    let failed = e
        .app
        .sdk()
        .create_from_user_inventory("stuck-4", &user.to_string(), &e.token(user), "dota2", &ids, Default::default())
        .await;
    assert!(failed.is_err(), "the record failed: {failed:?}");
    fault.clear().await;
    e.advance(skingate_server::deposits::SEND_GRACE_SECS);
    let cb = e.callback().await;
    assert_eq!((cb["status"].as_str(), cb["order_id"].as_str()), (Some("success"), Some("stuck-4")));
    assert_eq!(e.balance().await.0, value(&items).to_wire().to_string());
}
