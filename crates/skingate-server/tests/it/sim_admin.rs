//! The simulator's operator routes and its state surviving a restart.

use std::sync::Arc;

use serde_json::{Value, json};
use skingate_server::clock::ManualClock;
use skingate_steam::SteamId;
use skingate_steam::catalogue::Game;
use skingate_steam::enums::OfferState;
use skingate_steam::sim::{NewOffer, Profile};

use crate::utils::{TestApp, spawn_with_clock};

async fn token(app: &TestApp) -> String {
    skingate_server::sim_admin::admin_token(app.running.state.store.as_ref()).await.unwrap()
}

async fn call(app: &TestApp, path: &str, body: Option<Value>, token: &str) -> (u16, Value) {
    let url = format!("{}{path}", app.running.base_url());
    let req = match body {
        Some(b) => app.http.post(url).json(&b),
        None => app.http.get(url),
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sends a deposit-style offer from the bot for the user's first tradable CS2 item.
async fn send_offer(app: &TestApp, user: SteamId) -> u64 {
    let sim = app.running.state.sim.clone().unwrap();
    let steam = &app.running.state.steam;
    let item = steam.inventory(user, Game::Cs2).await.unwrap().into_iter().find(|a| a.tradable).unwrap();
    let partner = sim.simulation().trade_url(user);
    let offer = NewOffer { partner, game: Game::Cs2, items_to_receive: vec![item.asset_id], items_to_give: vec![] };
    steam.send_offer(offer).await.unwrap()
}

#[tokio::test]
async fn operator_plays_the_payer_and_moves_time() {
    let clock = ManualClock::new(1_700_000_000);
    let app = spawn_with_clock(|c| c, Arc::new(clock.clone())).await;
    let t = token(&app).await;
    let user: SteamId = "76561198000000042".parse().unwrap();

    let (status, _) = call(&app, "/admin/sim/offers/1", None, "wrong").await;
    assert_eq!(status, 401, "a wrong token is refused");

    let (status, body) =
        call(&app, &format!("/admin/sim/users/{user}/profile"), Some(json!({"kind": "manual"})), &t).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.running.state.sim.as_ref().unwrap().profile(user), Profile::Manual);
    let saved = app.running.state.store.meta(skingate_server::sim_admin::SIM_STATE_KEY).await.unwrap().unwrap();
    assert!(saved.contains(&user.to_string()), "saved before the answer: {saved}");
    let (status, _) = call(&app, "/admin/sim/users/123/profile", Some(json!({"kind": "manual"})), &t).await;
    assert_eq!(status, 400, "not a SteamID64");
    let impossible = json!({"kind": "reverse_after", "accept_after": 5, "reverse_after": -60});
    let (status, _) = call(&app, &format!("/admin/sim/users/{user}/profile"), Some(impossible), &t).await;
    assert_eq!(status, 400, "a reversal before the acceptance");
    assert_eq!(app.running.state.sim.as_ref().unwrap().profile(user), Profile::Manual, "unchanged");

    let id = send_offer(&app, user).await;
    let (status, offer) = call(&app, &format!("/admin/sim/offers/{id}"), None, &t).await;
    assert_eq!((status, offer["state"].as_i64()), (200, Some(2)), "{offer}");
    let (status, _) = call(&app, &format!("/admin/sim/offers/{id}/accept"), Some(json!({})), &t).await;
    assert_eq!(status, 200);
    let (status, body) = call(&app, &format!("/admin/sim/offers/{id}/decline"), Some(json!({})), &t).await;
    assert_eq!(status, 409, "an accepted offer cannot be declined: {body}");
    assert!(body["error"].as_str().unwrap().contains("no longer active (state Accepted)"), "{body}");
    let (status, _) = call(&app, "/admin/sim/offers/999999/accept", Some(json!({})), &t).await;
    assert_eq!(status, 404, "no such offer");
    let (status, _) = call(&app, &format!("/admin/sim/offers/{id}/reverse"), Some(json!({})), &t).await;
    assert_eq!(status, 200);
    let (status, body) = call(&app, &format!("/admin/sim/offers/{id}/reverse"), Some(json!({})), &t).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("the trade was already reversed")), "{body}");
    let (_, offer) = call(&app, &format!("/admin/sim/offers/{id}"), None, &t).await;
    assert_eq!((offer["trade_status"].as_i64(), offer["reversed_by"].as_str()), (Some(12), Some("partner")));
    let (status, _) = call(&app, "/admin/sim/offers/99/explode", Some(json!({})), &t).await;
    assert_eq!(status, 404);

    let before = app.running.state.now();
    let (status, body) = call(&app, "/admin/clock/advance", Some(json!({"secs": 86_400})), &t).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.running.state.now(), before + 86_400);
    let (status, _) = call(&app, "/admin/clock/advance", Some(json!({"secs": -5})), &t).await;
    assert_eq!(status, 400);
    // An absurd jump is refused and changes nothing (it would wrap the clock into the past).
    let (status, _) = call(&app, "/admin/clock/advance", Some(json!({"secs": i64::MAX})), &t).await;
    assert_eq!(status, 400);
    assert_eq!(app.running.state.now(), before + 86_400);
}

#[tokio::test]
async fn admin_routes_are_absent_when_off() {
    let app = spawn_with_clock(|c| c.with("sim_admin", false).unwrap(), Arc::new(ManualClock::new(0))).await;
    let t = token(&app).await;
    let (status, _) = call(&app, "/admin/clock/advance", Some(json!({"secs": 5})), &t).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn simulator_state_survives_a_restart() {
    let clock = ManualClock::new(1_700_000_000);
    let app = spawn_with_clock(|c| c, Arc::new(clock.clone())).await;
    let user: SteamId = "76561198000000043".parse().unwrap();
    app.running.state.sim.as_ref().unwrap().set_profile(user, Profile::Manual);
    let id = send_offer(&app, user).await;
    let app = app.restart_after(async |_| {}).await;
    let sim = app.running.state.sim.clone().unwrap();
    assert_eq!(sim.profile(user), Profile::Manual);
    assert_eq!(app.running.state.steam.offer(id).await.unwrap().state, OfferState::Active);
    sim.accept(id).unwrap();
    assert_eq!(app.running.state.steam.offer(id).await.unwrap().state, OfferState::Accepted);
}

/// A saved offer record that does not parse could be a credited trade the simulator would forget: the start
/// is refused rather than run on a Steam that lost trades.
#[tokio::test]
async fn an_unreadable_offer_record_refuses_the_start() {
    let app = spawn_with_clock(|c| c, Arc::new(ManualClock::new(1_700_000_000))).await;
    let state = &app.running.state;
    skingate_server::sim_admin::restore(state).await.unwrap();
    state.store.save_sim_offers(&[(7_000_000_001, "{not json".into())]).await.unwrap();
    let refused = skingate_server::sim_admin::restore(state).await;
    assert!(matches!(refused, Err(skingate_store::StoreError::Corrupt(_))), "{refused:?}");
}
