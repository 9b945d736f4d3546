//! Deposits end to end: the real server and its embedded Steam simulator on a manual clock, a recording
//! Result URL, and the SDK as the merchant. Every path of the deposit state machine, each callback's fields
//! and both signatures, the balance after each scenario, and bad inputs that change nothing.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use skingate_core::Money;
use skingate_core::project::{CallbackFormat, HoldPolicy, ProjectSettings};
use skingate_sdk::deposits::{CreateDeposit, DepositRef};
use skingate_server::clock::ManualClock;
use skingate_steam::SteamId;
use skingate_steam::catalogue::Game;
use skingate_steam::sim::Profile;
use skingate_steam::users::Asset;
use skingate_store::DeliveryState;
use skingate_types::sign;

use crate::utils::{Receiver, TestApp, spawn_with_clock};

const T0: i64 = 1_750_000_000;

struct Env {
    app: TestApp,
    clock: ManualClock,
    hook: Receiver,
}

fn config(c: skingate_server::Config) -> skingate_server::Config {
    c.with("webhook_allow_private", true)
        .unwrap()
        .with("webhook_jitter_percent", 0)
        .unwrap()
        .with("trade_poll_interval_ms", 20)
        .unwrap()
        .with("trade_confirm_delay_ms", 1)
        .unwrap()
}

async fn env(tweak: impl FnOnce(&mut ProjectSettings)) -> Env {
    let clock = ManualClock::new(T0);
    let mut app = spawn_with_clock(config, Arc::new(clock.clone())).await;
    let hook = Receiver::start().await;
    let url = hook.url.clone();
    app.update(move |s| {
        s.result_url = Some(url);
        tweak(s);
    })
    .await;
    Env { app, clock, hook }
}

impl Env {
    fn sim(&self) -> &skingate_steam::sim::Simulator {
        self.app.running.state.sim.as_deref().unwrap()
    }

    fn token(&self, user: SteamId) -> String {
        self.sim().trade_token(user)
    }

    /// `n` tradable, priced items of the payer.
    async fn items(&self, user: SteamId, game: Game, n: usize) -> Vec<Asset> {
        use skingate_steam::sim::Steam;
        let all = self.sim().inventory(user, game).await.unwrap();
        let picked: Vec<Asset> = all.into_iter().filter(|a| a.tradable && a.price_cents > 0).take(n).collect();
        assert_eq!(picked.len(), n, "payer {user} has too few tradable items");
        picked
    }

    /// Moves time on and lets the watcher look at once.
    fn advance(&self, secs: i64) {
        self.clock.advance(secs);
        self.app.running.state.deposits_wake.notify_one();
        self.app.running.state.events_committed();
    }

    /// A deposit from the payer's inventory through the API; returns its transaction id.
    async fn deposit(&self, order: &str, user: SteamId, game: Game, items: &[Asset]) -> i64 {
        let ids: Vec<String> = items.iter().map(|a| a.asset_id.to_string()).collect();
        let created = self
            .app
            .sdk()
            .create_from_user_inventory(order, &user.to_string(), &self.token(user), game.code(), &ids, Map::new())
            .await
            .unwrap();
        assert_eq!(created.local_currency, "usd");
        assert!(!created.bot_name.is_empty());
        created.transaction_id
    }

    /// The next Result-URL callback, both signatures checked, parsed the way PHP's `$_POST` would: by the SDK
    /// from the body as sent, as a merchant's receiver does.
    async fn callback(&self) -> Map<String, Value> {
        let got = self.hook.next().await;
        let secret = &self.app.project.client_secret;
        assert_eq!(got.header("x-sign"), sign::static_sign(&self.app.client_id(), secret));
        let content_type = got.header("content-type");
        assert!(matches!(content_type, "application/x-www-form-urlencoded" | "application/json"), "{content_type}");
        let verifier = skingate_sdk::webhooks::Verifier::new(&self.app.client_id(), secret);
        let params = verifier.verify_callback_body(Some(content_type), &got.body).expect("the callback verifies");
        let given = params["sign"].as_str().unwrap();
        assert!(sign::verify_api_sign(secret, &params, given), "callback sign: {params:?}");
        self.recorded(got.header("webhook-id")).await;
        params
    }

    /// Waits until the delivery of event `id` is recorded as delivered, so moving the manual clock on cannot
    /// expire its lease and send it again (at least once is the contract, but tests count callbacks).
    async fn recorded(&self, id: &str) {
        let state = &self.app.running.state;
        for _ in 0..500 {
            let list = state.store.deliveries(self.app.project.id, None, 0, 1000).await.unwrap();
            let done = list.iter().any(|d| {
                skingate_server::events::public_id(d.event.id) == id
                    && d.state == skingate_store::DeliveryState::Delivered
            });
            if done {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("delivery {id} never recorded");
    }

    async fn balance(&self) -> (String, String) {
        let b = self.app.sdk().balance().await.unwrap();
        (b.balance.to_string(), b.held.unwrap().to_string())
    }

    async fn status(&self, id: i64) -> String {
        self.app.sdk().order_status(DepositRef::Transaction(id)).await.unwrap().status
    }
}

fn payer(n: u64) -> SteamId {
    SteamId::from_account_id(90_000 + n).unwrap()
}

fn value(items: &[Asset]) -> Money {
    Money::from_minor(items.iter().map(|a| a.price_cents as i64 * 10).sum())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn dota_deposit_is_credited_at_acceptance_with_a_signed_form_callback() {
    let e = env(|_| {}).await;
    let user = payer(1);
    let items = e.items(user, Game::Dota2, 2).await;
    let names: Vec<&str> = items.iter().map(|a| a.market_hash_name.as_str()).collect();
    let in_stock = async || e.app.sdk().market_search(Some("dota2"), &names).await.unwrap().items.len();
    let stock_before = in_stock().await;
    let id = e.deposit("order-1", user, Game::Dota2, &items).await;
    assert_eq!(e.status(id).await, "pending");
    assert_eq!(e.balance().await, ("0.00".into(), "0.00".into()));

    e.advance(10); // the simulated payer accepts 10 s after the offer
    let cb = e.callback().await;
    assert_eq!(cb["status"], "success");
    assert_eq!(text(&cb["transaction_id"]), id.to_string());
    assert_eq!(cb["order_id"], "order-1");
    assert_eq!(cb["steam_id"], user.to_string());
    assert_eq!(cb["amount_currency"], "usd");
    assert_eq!(cb["amount_usd"], value(&items).to_wire().to_string());
    assert_eq!(text(&cb["skins_send_date"]), (T0 + 10).to_string());
    assert_eq!(cb["skins"].as_array().unwrap().len(), 2);
    assert_eq!(cb["skins"][0]["name"], items[0].market_hash_name);
    assert!(cb["amount_in_currencies"]["rub"].is_string());
    assert!(cb.get("user_risk").is_none());
    // Ledger: spendable at once, nothing held.
    assert_eq!(e.balance().await, (value(&items).to_wire().to_string(), "0.00".into()));
    assert_eq!(e.status(id).await, "success");
    let obj = e.app.sdk().order_status(DepositRef::Order("order-1")).await.unwrap();
    assert_eq!(obj.amount_usd.unwrap().to_string(), value(&items).to_wire().to_string());
    assert_eq!(obj.skins.len(), 2);
    // The received items are the bots' stock now, for sale on the market.
    assert_eq!(in_stock().await, stock_before + 2);
    // A late observation changes nothing: no second callback.
    e.advance(60);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(e.hook.try_next().await.is_none());
}

#[tokio::test]
async fn cs2_deposit_is_held_then_credited_when_protection_ends() {
    let e = env(|s| s.callback_format = CallbackFormat::Json).await;
    let user = payer(2);
    let items = e.items(user, Game::Cs2, 1).await;
    let id = e.deposit("cs-1", user, Game::Cs2, &items).await;
    e.advance(10);
    let held = e.callback().await;
    assert_eq!(held["status"], "in_hold");
    assert_eq!(text(&held["hold_until"]), (T0 + 10 + 8 * 86_400).to_string());
    let risk = &held["user_risk"];
    assert_eq!(risk["total_deposits_count"], 0);
    // A first-time payer joined when the deposit was created, not when it was accepted 10 s later.
    assert_eq!(risk["joined_at"].as_str(), Some(skingate_server::deposits::wire::datetime(T0).as_str()));
    for game in ["cs2", "dota2", "rust"] {
        assert!(risk["user_inventory"][game]["sum"].is_string(), "every game, as the vendor's example: {risk}");
    }
    let v = value(&items).to_wire().to_string();
    assert_eq!(e.balance().await, ("0.00".into(), v.clone()));
    // Seven days later still held.
    e.advance(7 * 86_400);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(e.status(id).await, "in_hold");
    e.advance(86_400);
    let done = e.callback().await;
    assert_eq!(done["status"], "success");
    assert!(done.get("user_risk").is_none());
    assert_eq!(e.balance().await, (v, "0.00".into()));
}

#[tokio::test]
async fn approved_early_then_reversed_is_clawed_back_into_debt() {
    let e = env(|_| {}).await;
    let user = payer(3);
    let items = e.items(user, Game::Cs2, 2).await;
    let id = e.deposit("cs-2", user, Game::Cs2, &items).await;
    e.advance(10);
    assert_eq!(e.callback().await["status"], "in_hold");
    let v = value(&items).to_wire().to_string();
    e.app.sdk().offer_approve(DepositRef::Transaction(id)).await.unwrap();
    assert_eq!(e.callback().await["status"], "hold_approved");
    assert_eq!(e.balance().await, (v.clone(), "0.00".into()));
    // A second approval is refused.
    let again = e.app.sdk().offer_approve(DepositRef::Transaction(id)).await.unwrap_err();
    assert_eq!(again.code(), Some(5));
    // The merchant spends the approved money at once…
    e.app.adjust(false, value(&items).minor(), "spent").await;
    assert_eq!(e.balance().await, ("0.00".into(), "0.00".into()));
    // …then the payer reverses within the protection period: the credit is taken back, into a debt.
    let offer = e.app.sdk().order_status(DepositRef::Transaction(id)).await.unwrap().trade_offer_id.unwrap();
    e.advance(3_600);
    e.sim().reverse(offer.parse().unwrap()).unwrap();
    e.advance(0);
    let back = e.callback().await;
    assert_eq!(back["status"], "hold_returned");
    assert!(back.get("amount").is_none(), "no amount after the return (spec §3.1)");
    assert_eq!(e.balance().await, (format!("-{v}"), "0.00".into()));
    assert_eq!(e.status(id).await, "hold_returned");
    let sums = e.app.sdk().balance().await.unwrap();
    assert_eq!(sums.deals_sum.to_string(), "0.00", "a clawed-back deposit is no longer a deal");
}

#[tokio::test]
async fn reversal_while_held_fails_the_deposit_and_releases_nothing() {
    let e = env(|_| {}).await;
    let user = payer(4);
    e.sim().set_profile(user, Profile::ReverseAfter { accept_after: 5, reverse_after: 600 });
    let items = e.items(user, Game::Cs2, 1).await;
    let id = e.deposit("cs-3", user, Game::Cs2, &items).await;
    e.advance(5);
    assert_eq!(e.callback().await["status"], "in_hold");
    e.advance(600);
    let failed = e.callback().await;
    assert_eq!(failed["status"], "fail");
    assert_eq!(failed["fail_reason"], "reversed");
    assert_eq!(e.balance().await, ("0.00".into(), "0.00".into()));
    assert_eq!(e.status(id).await, "fail");
}

#[tokio::test]
async fn declined_offer_fails_and_credit_early_policy_approves_at_once() {
    let e = env(|s| s.hold_policy = HoldPolicy::CreditEarly).await;
    let decliner = payer(5);
    e.sim().set_profile(decliner, Profile::Decline);
    let items = e.items(decliner, Game::Rust, 1).await;
    let id = e.deposit("r-1", decliner, Game::Rust, &items).await;
    e.advance(3);
    let cb = e.callback().await;
    assert_eq!((cb["status"].as_str(), cb["fail_reason"].as_str()), (Some("fail"), Some("declined")));
    assert_eq!(e.status(id).await, "fail");
    assert_eq!(e.balance().await, ("0.00".into(), "0.00".into()));

    let user = payer(6);
    let items = e.items(user, Game::Cs2, 1).await;
    e.deposit("cs-4", user, Game::Cs2, &items).await;
    e.advance(10);
    // Both transitions commit together; their callbacks travel independently and may arrive in either order.
    let mut got = vec![e.callback().await["status"].clone(), e.callback().await["status"].clone()];
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, [json!("hold_approved"), json!("in_hold")]);
    assert_eq!(e.balance().await, (value(&items).to_wire().to_string(), "0.00".into()));
}

#[tokio::test]
async fn bad_inputs_get_the_spec_errors_and_change_nothing() {
    let e = env(|_| {}).await;
    let sdk = e.app.sdk();
    let user = payer(7);
    let items = e.items(user, Game::Dota2, 1).await;
    let ids = vec![items[0].asset_id.to_string()];
    let token = e.token(user);
    let cfui = |order: &'static str, steam: String, tok: String, ids: Vec<String>| {
        let sdk = sdk.clone();
        async move { sdk.create_from_user_inventory(order, &steam, &tok, "dota2", &ids, Map::new()).await }
    };
    assert_eq!(cfui("x", "123".into(), token.clone(), ids.clone()).await.unwrap_err().code(), Some(2));
    assert_eq!(cfui("x", user.to_string(), "short".into(), ids.clone()).await.unwrap_err().code(), Some(3));
    assert_eq!(cfui("x", user.to_string(), "AAAAAAAA".into(), ids.clone()).await.unwrap_err().code(), Some(3));
    assert_eq!(cfui("x", user.to_string(), token.clone(), vec!["1".into()]).await.unwrap_err().code(), Some(6));
    let mine = e.items(payer(8), Game::Dota2, 1).await;
    let not_owned = vec![mine[0].asset_id.to_string()];
    assert_eq!(cfui("x", user.to_string(), token.clone(), not_owned).await.unwrap_err().code(), Some(6));
    // Nothing was created by any of those, and the items are still free.
    assert_eq!(sdk.orders(0, i64::MAX, None).await.unwrap().total_count, 0);
    let first = cfui("dup", user.to_string(), token.clone(), ids.clone()).await.unwrap();
    // Same call again: the same deposit. Different parameters: order_id_already_exists.
    let replay = cfui("dup", user.to_string(), token.clone(), ids.clone()).await.unwrap();
    assert_eq!(replay, first);
    let other = e.items(user, Game::Dota2, 2).await;
    let conflict = cfui("dup", user.to_string(), token.clone(), vec![other[1].asset_id.to_string()]).await;
    assert_eq!(conflict.unwrap_err().message(), Some("order_id_already_exists"));

    // create: duplicate order id, bad ids, limits.
    let opts = CreateDeposit::default();
    let created = sdk.create_deposit("c-1", &opts).await.unwrap();
    // The payment link works as given, also when the server listens on port 0.
    assert!(created.url.starts_with(&format!("{}/pay/", e.app.running.base_url())), "{}", created.url);
    assert_eq!(e.app.http.get(&created.url).send().await.unwrap().status(), 200);
    assert_eq!(sdk.create_deposit("c-1", &opts).await.unwrap(), created);
    let other = CreateDeposit { currency: Some("rub".into()), ..CreateDeposit::default() };
    assert_eq!(sdk.create_deposit("c-1", &other).await.unwrap_err().code(), Some(5));
    let bad_steam = CreateDeposit { steam_id: Some("7656".into()), ..CreateDeposit::default() };
    assert_eq!(sdk.create_deposit("c-2", &bad_steam).await.unwrap_err().code(), Some(2));
    let bad_token = CreateDeposit { trade_token: Some("no".into()), ..CreateDeposit::default() };
    assert_eq!(sdk.create_deposit("c-2", &bad_token).await.unwrap_err().code(), Some(3));
    // A full trade URL alone names the payer: the deposit records its account, not only the token; a URL of
    // another account than `steam_id` is refused.
    let url = format!("https://steamcommunity.com/tradeoffer/new/?partner={}&token={token}", user.account_id());
    let by_url = CreateDeposit { trade_token: Some(url.clone()), ..CreateDeposit::default() };
    let created_by_url = sdk.create_deposit("c-url", &by_url).await.unwrap();
    let status = sdk.order_status(DepositRef::Transaction(created_by_url.transaction_id)).await.unwrap();
    assert_eq!(status.steam_id, user.to_string());
    let mismatch = CreateDeposit {
        trade_token: Some(url),
        steam_id: Some("76561198000000001".into()),
        ..CreateDeposit::default()
    };
    assert_eq!(sdk.create_deposit("c-2", &mismatch).await.unwrap_err().code(), Some(3));
    let no_cur = CreateDeposit { min_amount: Some("1".into()), ..CreateDeposit::default() };
    assert_eq!(sdk.create_deposit("c-2", &no_cur).await.unwrap_err().code(), Some(4));
    let inverted = CreateDeposit {
        min_amount: Some("10".into()),
        max_amount: Some("5".into()),
        currency: Some("usd".into()),
        ..CreateDeposit::default()
    };
    assert_eq!(sdk.create_deposit("c-2", &inverted).await.unwrap_err().code(), Some(7));
    let bad_cur = CreateDeposit { currency: Some("zzz".into()), ..CreateDeposit::default() };
    assert_eq!(sdk.create_deposit("c-2", &bad_cur).await.unwrap_err().code(), Some(8));
    // 0.04 RUB is under the ledger's smallest unit: a maximum no deposit could meet.
    let tiny =
        CreateDeposit { max_amount: Some("0.04".into()), currency: Some("rub".into()), ..CreateDeposit::default() };
    assert_eq!(sdk.create_deposit("c-2", &tiny).await.unwrap_err().code(), Some(6));

    // Unknown transaction.
    assert_eq!(sdk.order_status(DepositRef::Transaction(999_999)).await.unwrap_err().code(), Some(4));
    assert_eq!(sdk.order_status(DepositRef::Order("nope")).await.unwrap_err().code(), Some(4));
    assert_eq!(sdk.offer_approve(DepositRef::Transaction(999_999)).await.unwrap_err().code(), Some(4));
    // A pending deposit cannot be approved.
    assert_eq!(sdk.offer_approve(DepositRef::Transaction(first.transaction_id)).await.unwrap_err().code(), Some(5));
    assert_eq!(sdk.orders(0, i64::MAX, None).await.unwrap().total_count, 3, "first, c-1, c-url");
    assert_eq!(e.balance().await, ("0.00".into(), "0.00".into()));
}

/// `create` answers the id as `transaction_id` and, for the integrator that reads that spelling (spec §12.10),
/// as `transactions_id`: same value, same JSON type, also in a replay; the SDK reads the answer as before.
#[tokio::test]
async fn create_answers_transaction_id_and_transactions_id() {
    let e = env(|_| {}).await;
    let raw = e.app.post_json(json!({"method": "create", "order_id": "tx-1"})).await;
    assert_eq!(raw["status"], "success");
    assert!(raw["transaction_id"].is_i64(), "{raw}");
    assert_eq!(raw["transactions_id"], raw["transaction_id"], "{raw}");
    let replay = e.app.post_json(json!({"method": "create", "order_id": "tx-1"})).await;
    assert_eq!(replay, raw, "a replay answers both too");
    let status = e.app.sdk().order_status(DepositRef::Order("tx-1")).await.unwrap();
    assert_eq!(Some(status.transaction_id), raw["transactions_id"].as_i64());

    let created = e.app.sdk().create_deposit("tx-2", &CreateDeposit::default()).await.unwrap();
    assert_eq!(
        e.app.sdk().order_status(DepositRef::Order("tx-2")).await.unwrap().transaction_id,
        created.transaction_id
    );
}

#[tokio::test]
async fn limits_are_enforced_when_the_offer_is_started() {
    let e = env(|_| {}).await;
    let user = payer(9);
    let items = e.items(user, Game::Dota2, 1).await;
    let v = value(&items);
    let state = &e.app.running.state;
    let project = state.project(e.app.project.id).await.unwrap().unwrap();
    let min = Money::from_minor(v.minor() + 10).to_wire().to_string();
    let opts = CreateDeposit { min_amount: Some(min), currency: Some("usd".into()), ..CreateDeposit::default() };
    let created = e.app.sdk().create_deposit("lim-1", &opts).await.unwrap();
    let url = skingate_steam::TradeUrl::new(user, &e.token(user)).unwrap();
    let ids = vec![items[0].asset_id.to_string()];
    let refused =
        skingate_server::deposits::start_offer(state, &project, created.transaction_id, &url, Game::Dota2, &ids)
            .await
            .unwrap_err();
    assert!(matches!(refused, skingate_server::deposits::DepositError::BelowMinimum), "{refused:?}");
    let view = skingate_server::deposits::find_by_page_token(state, created.url.rsplit('/').next().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.deposit.offer_id, None);
    assert_eq!(view.deposit.min_usd, Some(Money::from_minor(v.minor() + 10)));

    // Within the limits the page's submit sends the offer once; a second submit is refused.
    let ok = e.app.sdk().create_deposit("lim-2", &CreateDeposit::default()).await.unwrap();
    let started = skingate_server::deposits::start_offer(state, &project, ok.transaction_id, &url, Game::Dota2, &ids)
        .await
        .unwrap();
    assert_eq!(started.value, v);
    let twice =
        skingate_server::deposits::start_offer(state, &project, ok.transaction_id, &url, Game::Dota2, &ids).await;
    assert!(matches!(twice, Err(skingate_server::deposits::DepositError::NotPending)));
    e.advance(10);
    let cb = e.callback().await;
    assert_eq!((cb["status"].as_str(), cb["order_id"].as_str()), (Some("success"), Some("lim-2")));
}

#[tokio::test]
async fn failing_result_url_is_retried_listed_and_never_disables_events() {
    let e = env(|_| {}).await;
    e.hook.answer_with(&[500, 502]);
    let user = payer(10);
    let items = e.items(user, Game::Rust, 1).await;
    let id = e.deposit("retry-1", user, Game::Rust, &items).await;
    e.advance(10);
    let first = e.hook.next().await;
    assert_eq!(first.header("x-sign"), sign::static_sign(&e.app.client_id(), &e.app.project.client_secret));
    let sdk = e.app.sdk();
    let listed = wait_for(|| async { sdk.callback_error_list(None).await.unwrap() }, |p| p.total_count == 1).await;
    assert_eq!(listed.items[0].transaction_id, id);
    assert_eq!(listed.items[0].order_id, "retry-1");
    assert_eq!(listed.items[0].http_code, "500");
    e.advance(5);
    e.hook.next().await;
    let listed = wait_for(
        || async { sdk.callback_error_list(None).await.unwrap() },
        |p| p.items.first().is_some_and(|i| i.http_code == "502"),
    )
    .await;
    assert_eq!(listed.total_count, 1);
    e.advance(300);
    let third = e.hook.next().await;
    assert_eq!(third.body, first.body, "the same callback every time");
    wait_for(|| async { sdk.callback_error_list(None).await.unwrap() }, |p| p.total_count == 0).await;
    let store = &e.app.running.state.store;
    let project = store.project(e.app.project.id).await.unwrap().unwrap();
    assert_eq!(project.events_disabled_at, None);
    // Resent after its delivery, it waits for its attempt with a 2xx as its last answer: not a failed callback.
    let delivered = store.deliveries(project.id, Some(DeliveryState::Delivered), 0, 10).await.unwrap();
    let callback = delivered.iter().find(|d| d.kind == "result_url").unwrap();
    assert!(store.resend_delivery(project.id, callback.id, T0).await.unwrap());
    assert_eq!(sdk.callback_error_list(None).await.unwrap().total_count, 0);
}

/// A merchant who fixes a broken Result URL gets the stuck callback at the new one on its next retry; a
/// deposit that named its own `result_url` keeps it.
#[tokio::test]
async fn a_fixed_result_url_receives_the_stuck_callbacks() {
    let mut e = env(|s| s.result_url = Some("http://127.0.0.1:9/dead".into())).await;
    let user = payer(13);
    let items = e.items(user, Game::Rust, 2).await;
    e.deposit("moved-1", user, Game::Rust, &items[..1]).await;
    let mut own = Map::new();
    own.insert("result_url".into(), json!("http://127.0.0.1:9/own"));
    let ids = [items[1].asset_id.to_string()];
    let sdk = e.app.sdk();
    sdk.create_from_user_inventory("own-1", &user.to_string(), &e.token(user), Game::Rust.code(), &ids, own)
        .await
        .unwrap();
    e.advance(10);
    wait_for(|| async { sdk.callback_error_list(None).await.unwrap() }, |p| p.total_count == 2).await;
    let url = e.hook.url.clone();
    e.app.update(move |s| s.result_url = Some(url)).await;
    e.advance(5);
    let cb = e.callback().await;
    assert_eq!((cb["order_id"].as_str(), cb["status"].as_str()), (Some("moved-1"), Some("success")));
    let listed = wait_for(|| async { sdk.callback_error_list(None).await.unwrap() }, |p| p.total_count == 1).await;
    assert_eq!(listed.items[0].order_id, "own-1", "a deposit's own result_url is not moved");
}

/// 410 from a Result URL is a failure like any other: retried on the schedule (only a 2xx counts), not
/// given up at once as the events endpoint would be.
#[tokio::test]
async fn a_result_url_answering_410_is_retried() {
    let e = env(|_| {}).await;
    e.hook.answer_with(&[410]);
    let user = payer(12);
    let items = e.items(user, Game::Rust, 1).await;
    e.deposit("gone-1", user, Game::Rust, &items).await;
    e.advance(10);
    let first = e.hook.next().await;
    e.advance(5);
    let second = e.hook.next().await;
    assert_eq!(second.body, first.body, "the same callback again");
}

#[tokio::test]
async fn a_restart_between_commit_and_callback_loses_nothing() {
    let e = env(|_| {}).await;
    e.hook.answer_with(&[503]);
    let user = payer(11);
    let items = e.items(user, Game::Dota2, 1).await;
    let id = e.deposit("restart-1", user, Game::Dota2, &items).await;
    e.advance(10);
    e.hook.next().await; // committed, first attempt failed
    let Env { app, clock, hook } = e;
    let app = app.restart_after(async |_| {}).await;
    let e = Env { app, clock, hook };
    e.advance(5);
    let cb = e.callback().await;
    assert_eq!((cb["status"].as_str(), text(&cb["transaction_id"])), (Some("success"), id.to_string()));
    assert_eq!(e.balance().await.0, value(&items).to_wire().to_string());
}

#[tokio::test]
async fn a_held_deposit_completes_after_a_restart() {
    // The simulator keeps offers in memory: after the restart it no longer knows the offer, and the
    // watcher still ends the hold from the row alone.
    let e = env(|_| {}).await;
    let user = payer(12);
    let items = e.items(user, Game::Cs2, 1).await;
    let id = e.deposit("held-restart", user, Game::Cs2, &items).await;
    e.advance(10);
    assert_eq!(e.callback().await["status"], "in_hold");
    let Env { app, clock, hook } = e;
    let app = app.restart_after(async |_| {}).await;
    let e = Env { app, clock, hook };
    e.advance(8 * 86_400);
    assert_eq!(e.callback().await["status"], "success");
    assert_eq!(e.status(id).await, "success");
}

#[tokio::test]
async fn test_mode_magic_tokens_choose_the_outcome() {
    let e = env(|s| s.test_mode = true).await;
    let sdk = e.app.sdk();
    let run = |order: &'static str, n: u64, token: &'static str, game: Game| {
        let sdk = sdk.clone();
        let e = &e;
        async move {
            let user = payer(n);
            let items = e.items(user, game, 1).await;
            let ids = vec![items[0].asset_id.to_string()];
            sdk.create_from_user_inventory(order, &user.to_string(), token, game.code(), &ids, Map::new()).await
        }
    };
    assert_eq!(run("bad", 20, "badtoken", Game::Cs2).await.unwrap_err().code(), Some(3));
    let declined = run("dec", 21, "decline_", Game::Dota2).await.unwrap();
    e.advance(3);
    let cb = e.callback().await;
    assert_eq!(
        (cb["status"].as_str(), text(&cb["transaction_id"])),
        (Some("fail"), declined.transaction_id.to_string())
    );
    let held = run("hold", 22, "hold_ok_", Game::Cs2).await.unwrap();
    e.advance(5);
    assert_eq!(e.callback().await["status"], "in_hold");
    sdk.test_complete_hold(DepositRef::Transaction(held.transaction_id)).await.unwrap();
    assert_eq!(e.callback().await["status"], "success");
    let rev = run("rev", 23, "reverse_", Game::Cs2).await.unwrap();
    e.advance(5);
    assert_eq!(e.callback().await["status"], "in_hold");
    e.advance(3_600);
    assert_eq!(e.callback().await["status"], "fail");
    assert_eq!(e.status(rev.transaction_id).await, "fail");
    let timeout = run("late", 24, "timeout_", Game::Rust).await.unwrap();
    e.advance(14 * 86_400);
    let cb = e.callback().await;
    assert_eq!((cb["status"].as_str(), cb["fail_reason"].as_str()), (Some("fail"), Some("expired")));
    assert_eq!(e.status(timeout.transaction_id).await, "fail");
    // Outside test mode the method refuses.
    let normal = env(|_| {}).await;
    let err = normal.app.sdk().test_complete_hold(DepositRef::Transaction(1)).await.unwrap_err();
    assert_eq!(err.code(), Some(6));
}

#[tokio::test]
async fn inventory_is_priced_in_the_merchants_currency_and_multiplier() {
    let e = env(|s| s.multiplier_ppm = 1_500_000).await;
    let user = payer(30);
    let inv = e.app.sdk().user_inventory(&user.to_string(), &e.token(user), "cs2", Some("rub")).await.unwrap();
    assert_eq!(inv.currency_local, "rub");
    assert!(!inv.items.is_empty());
    for item in &inv.items {
        if item.context_id == 16 {
            assert!(item.disabled && !item.tradable);
        }
        assert_eq!(item.disabled, !item.tradable || item.price.mantissa() == 0);
    }
    let raw = e
        .app
        .post_json(json!({"method": "user_inventory", "steam_id": user.to_string(), "trade_token": e.token(user)}))
        .await;
    assert_eq!(raw["data"]["items"], raw["items"], "the data wrapper repeats the items");
    let bad = e.app.post_json(json!({"method": "user_inventory", "steam_id": "1", "trade_token": "x"})).await;
    crate::utils::assert_error(&bad, 1, "invalid_steam_id");
}

/// The optional parameters the server reads reach it through typed calls: `create`'s `custom_multiplier`, and
/// `user_inventory`'s `custom_multiplier`, `custom_currency` and `custom_currency_rate`.
#[tokio::test]
async fn typed_calls_send_multipliers_and_a_custom_currency() {
    use skingate_sdk::deposits::{CustomCurrency, InventoryOptions};
    let e = env(|_| {}).await;
    let sdk = e.app.sdk();
    let dec = |s: &str| -> skingate_types::Decimal { s.parse().unwrap() };
    // Thousandths of a price, to compare amounts rounded to a currency's scale.
    let milli = |d: skingate_types::Decimal| d.to_scale_exact(3).unwrap();

    let opts = CreateDeposit { custom_multiplier: Some(dec("1.5")), ..CreateDeposit::default() };
    let created = sdk.create_deposit("mult-1", &opts).await.unwrap();
    let stored = e.app.running.state.store.deposit(e.app.project.id, created.transaction_id).await.unwrap().unwrap();
    assert_eq!(stored.multiplier_ppm, 1_500_000, "the deposit keeps the multiplier sent");
    let bad = CreateDeposit { custom_multiplier: Some(dec("3")), ..CreateDeposit::default() };
    assert_eq!(sdk.create_deposit("mult-2", &bad).await.unwrap_err().message(), Some("invalid_custom_multiplier"));

    let user = payer(32);
    let (steam, token) = (user.to_string(), e.token(user));
    let plain = sdk.user_inventory_with(&steam, &token, "dota2", &InventoryOptions::default()).await.unwrap();
    let doubled = InventoryOptions { custom_multiplier: Some(dec("2")), ..InventoryOptions::default() };
    let doubled = sdk.user_inventory_with(&steam, &token, "dota2", &doubled).await.unwrap();
    let points = InventoryOptions {
        custom_currency: Some(CustomCurrency { label: "pts".into(), rate: dec("10") }),
        ..InventoryOptions::default()
    };
    let points = sdk.user_inventory_with(&steam, &token, "dota2", &points).await.unwrap();
    assert_eq!((plain.currency_local.as_str(), points.currency_local.as_str()), ("usd", "pts"));
    let priced: Vec<_> = plain.items.iter().filter(|i| i.price_local.mantissa() > 0).collect();
    assert!(!priced.is_empty());
    for item in priced {
        let twin = |inv: &skingate_types::deposits::InventoryBody| {
            inv.items.iter().find(|i| i.asset_id == item.asset_id).unwrap().clone()
        };
        let base = milli(item.price_local);
        assert!((milli(twin(&doubled).multiplied_price_local) - 2 * base).abs() <= 10, "{item:?}");
        assert!((milli(twin(&points).price_local) - 10 * base).abs() <= 10, "{item:?}");
    }
    let half_currency = json!({"method": "user_inventory", "steam_id": steam, "trade_token": token,
        "custom_currency": "pts"});
    crate::utils::assert_error(&e.app.post_json(half_currency).await, 6, "invalid_custom_currency");
}

/// Each entry carries the Steam item nested as `item` (the vendor's doc: `item.asset_id`, `item.tradable`;
/// its clients: `entry.item.asset_id`, `item.class_id`/`app_id`/`icon_url`), the flat fields stay, and both
/// `items` and `data.items` have them; an asset id read from `item` makes a deposit.
#[tokio::test]
async fn inventory_entries_nest_the_steam_item_where_vendor_clients_read_it() {
    let e = env(|_| {}).await;
    let user = payer(31);
    let raw = e
        .app
        .post_json(json!({"method": "user_inventory", "steam_id": user.to_string(), "trade_token": e.token(user),
                          "game": "dota2"}))
        .await;
    assert_eq!(raw["status"], "success");
    assert_eq!(raw["data"]["items"], raw["items"], "data.items (spec §12.9) repeats the entries");
    let entries = raw["items"].as_array().unwrap();
    assert!(!entries.is_empty());
    for entry in entries {
        let item = &entry["item"];
        assert!(item["asset_id"].is_string(), "{entry}");
        assert!(item["tradable"].is_boolean(), "{entry}");
        for key in ["asset_id", "tradable", "app_id", "class_id", "icon_url", "name", "market_hash_name"] {
            assert_eq!(item[key], entry[key], "{key} nested and flat agree: {entry}");
        }
        assert_eq!(item["app_id"], 570);
        let class_id = item["class_id"].as_str().unwrap();
        assert!(!class_id.is_empty());
        assert_eq!(item["icon_url"], format!("class/570/{class_id}"), "Steam's by-class image path");
        assert!(entry["disabled"].is_boolean() && entry["price"].is_string(), "{entry}");
    }

    // The SDK reads the nested item, and an asset id taken from it deposits like the flat one.
    let inv = e.app.sdk().user_inventory(&user.to_string(), &e.token(user), "dota2", None).await.unwrap();
    for i in &inv.items {
        assert_eq!((&i.item.asset_id, i.item.tradable, i.item.app_id), (&i.asset_id, i.tradable, i.app_id));
        assert_eq!((&i.item.class_id, &i.item.icon_url, &i.item.name), (&i.class_id, &i.icon_url, &i.name));
        assert_eq!(i.icon_url, skingate_steam::catalogue::icon_url(570, &i.class_id));
    }
    let pick = inv.items.iter().find(|i| !i.disabled).unwrap();
    let created = e
        .app
        .sdk()
        .create_from_user_inventory(
            "nested-1",
            &user.to_string(),
            &e.token(user),
            "dota2",
            std::slice::from_ref(&pick.item.asset_id),
            Map::new(),
        )
        .await
        .unwrap();
    assert!(created.transaction_id > 0);
}

async fn wait_for<T, F, Fut>(mut get: F, ok: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..300 {
        let v = get().await;
        if ok(&v) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 3 s");
}

#[tokio::test]
async fn an_operator_accept_named_by_offer_changed_is_seen_without_waiting_for_the_poll() {
    // A poll interval of a minute: only the change notice can explain a prompt callback.
    let clock = ManualClock::new(T0);
    let tweak = |c| config(c).with("trade_poll_interval_ms", 60_000).unwrap();
    let mut app = spawn_with_clock(tweak, Arc::new(clock.clone())).await;
    let hook = Receiver::start().await;
    let url = hook.url.clone();
    app.update(move |s| s.result_url = Some(url)).await;
    let e = Env { app, clock, hook };
    let user = payer(40);
    e.sim().set_profile(user, Profile::Manual);
    let items = e.items(user, Game::Rust, 1).await;
    let id = e.deposit("manual-1", user, Game::Rust, &items).await;
    let offer: u64 =
        e.app.sdk().order_status(DepositRef::Transaction(id)).await.unwrap().trade_offer_id.unwrap().parse().unwrap();
    e.sim().accept(offer).unwrap();
    e.app.running.state.offer_changed(offer);
    let started = std::time::Instant::now();
    let cb = e.callback().await;
    assert_eq!(cb["status"], "success");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_fee_is_taken_from_the_value_and_follows_holds_and_reversals() {
    let e = env(|s| {
        s.deposit_fee_ppm = 100_000; // 10 %
        s.multiplier_ppm = 2_000_000;
    })
    .await;
    let net = |items: &[Asset]| {
        let gross = value(items).minor();
        Money::from_minor(gross - skingate_core::deposit::apply_ppm(Money::from_minor(gross), 100_000).unwrap().minor())
    };
    // Dota 2: credited at once, net of the fee; user_amount doubles it.
    let user = payer(50);
    let items = e.items(user, Game::Dota2, 2).await;
    e.deposit("fee-1", user, Game::Dota2, &items).await;
    e.advance(10);
    let cb = e.callback().await;
    assert_eq!(cb["amount_usd"], net(&items).to_wire().to_string());
    assert_eq!(cb["user_amount"], Money::from_minor(net(&items).minor() * 2).to_wire().to_string());
    let credited = net(&items);
    assert_eq!(e.balance().await.0, credited.to_wire().to_string());
    // CS2, held then reversed: the held credit and the held fee are both released; nothing changes.
    let user = payer(51);
    e.sim().set_profile(user, Profile::ReverseAfter { accept_after: 5, reverse_after: 60 });
    let items = e.items(user, Game::Cs2, 1).await;
    e.deposit("fee-2", user, Game::Cs2, &items).await;
    e.advance(5);
    assert_eq!(e.callback().await["amount_usd"], net(&items).to_wire().to_string());
    assert_eq!(e.balance().await, (credited.to_wire().to_string(), net(&items).to_wire().to_string()));
    e.advance(60);
    assert_eq!(e.callback().await["status"], "fail");
    assert_eq!(e.balance().await, (credited.to_wire().to_string(), "0.00".into()));
    // CS2 held, then approved: fee and credit settle together.
    let user = payer(52);
    let items = e.items(user, Game::Cs2, 1).await;
    let id = e.deposit("fee-3", user, Game::Cs2, &items).await;
    e.advance(10);
    assert_eq!(e.callback().await["status"], "in_hold");
    e.app.sdk().offer_approve(DepositRef::Transaction(id)).await.unwrap();
    assert_eq!(e.callback().await["status"], "hold_approved");
    let total = Money::from_minor(credited.minor() + net(&items).minor());
    assert_eq!(e.balance().await, (total.to_wire().to_string(), "0.00".into()));
}

mod review;

/// Work a request hands to `background` (a deposit offer being sent and recorded after its client left) is
/// finished before a stop returns: the process never ends between Steam's answer and its record.
#[tokio::test]
async fn a_stop_waits_for_work_outliving_its_request() {
    let app = crate::utils::spawn().await;
    let state = app.running.state.clone();
    let (started, running) = tokio::sync::oneshot::channel();
    state.background.spawn({
        let state = state.clone();
        async move {
            let _ = started.send(());
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            state.store.set_meta("test_background", "recorded").await.unwrap();
        }
    });
    running.await.unwrap();
    let app = app
        .restart_after(async |url: String| {
            use skingate_store::Store;
            let store = skingate_store::SqliteStore::open(&url, 1).await.unwrap();
            assert_eq!(store.meta("test_background").await.unwrap().as_deref(), Some("recorded"));
            store.close().await;
        })
        .await;
    drop(app);
}

/// Should Steam lose a deposit's offer (the simulator's saved records cannot after a crash, see the next test,
/// but a database restored from an older backup could): the deposit waits while the offer could still be live,
/// then fails as `expired` once it would have expired, instead of staying pending for good.
#[tokio::test]
async fn a_pending_offer_the_simulator_lost_fails_once_it_would_have_expired() {
    let e = env(|_| {}).await;
    let user = payer(13);
    e.sim().set_profile(user, Profile::Manual);
    let items = e.items(user, Game::Rust, 1).await;
    let (_, before) = e.sim().snapshot();
    let id = e.deposit("lost-1", user, Game::Rust, &items).await;
    // Steam forgets the offer; the gateway's recorded ids are skipped as at a restart.
    e.sim().restore(Some(&before), std::iter::empty()).unwrap();
    skingate_server::sim_admin::skip_recorded_ids(&e.app.running.state).await.unwrap();
    e.advance(86_400);
    e.advance(1);
    assert_eq!(e.status(id).await, "pending", "the offer could still be live");
    e.advance(14 * 86_400);
    let cb = e.callback().await;
    assert_eq!((cb["status"].as_str(), cb["fail_reason"].as_str()), (Some("fail"), Some("expired")));
    assert_eq!(e.status(id).await, "fail");
    assert_eq!(e.balance().await, ("0.00".into(), "0.00".into()));
}

/// A crash right after a deposit was credited: the simulator comes back from a snapshot taken before the offer
/// and from the offer records saved before the gateway acted. The trade is still there, accepted, and its items
/// are still the bots': the payer cannot deposit them a second time (before, the simulator forgot the trade and
/// the same items were credited twice).
#[tokio::test]
async fn a_credited_trade_survives_a_crash_of_the_simulator() {
    use skingate_steam::enums::OfferState;
    use skingate_steam::sim::Steam;
    let e = env(|_| {}).await;
    let user = payer(14);
    let items = e.items(user, Game::Rust, 1).await;
    let (_, before) = e.sim().snapshot();
    e.deposit("crash-1", user, Game::Rust, &items).await;
    e.advance(10);
    e.advance(1);
    let cb = e.callback().await;
    assert_eq!(cb["status"].as_str(), Some("success"), "{cb:?}");
    let offer: u64 = cb["trade_offer_id"].as_str().unwrap().parse().unwrap();
    // The crash: only what was saved survives (the snapshot from before the offer, and the offer records).
    e.sim().restore(Some(&before), std::iter::empty()).unwrap();
    skingate_server::sim_admin::restore(&e.app.running.state).await.unwrap();
    assert_eq!(e.sim().offer(offer).await.unwrap().state, OfferState::Accepted, "Steam still has the trade");
    let still: Vec<u64> = e.sim().inventory(user, Game::Rust).await.unwrap().iter().map(|a| a.asset_id).collect();
    assert!(!still.contains(&items[0].asset_id), "the traded item is the bots'");
    let ids = vec![items[0].asset_id.to_string()];
    let again = e
        .app
        .sdk()
        .create_from_user_inventory("crash-2", &user.to_string(), &e.token(user), "rust", &ids, Map::new())
        .await;
    assert_eq!(again.unwrap_err().message(), Some("items_not_available"), "the same item cannot be deposited twice");
}
