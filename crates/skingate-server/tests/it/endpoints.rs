//! The events endpoint's lifecycle: disabled after failing too long, set again, caught up by `webhook_recover`.

use std::sync::Arc;
use std::time::Duration;

use skingate_server::clock::ManualClock;
use skingate_store::DeliveryState;

use crate::utils::{Receiver, TestApp, spawn_with_clock, ws_connect, ws_next};

/// A gateway on a manual clock whose events endpoint is disabled after 100 s of failures (attempts 60 s apart).
async fn app_with_clock() -> (TestApp, ManualClock) {
    let clock = ManualClock::new(5_000_000);
    let tweak = |c: skingate_server::Config| {
        c.with("webhook_allow_private", true)
            .unwrap()
            .with("webhook_jitter_percent", 0)
            .unwrap()
            .with("webhook_retry_delays_secs", vec![60u64; 5])
            .unwrap()
            .with("webhook_disable_after_secs", 100)
            .unwrap()
    };
    (spawn_with_clock(tweak, Arc::new(clock.clone())).await, clock)
}

/// Polls until `check` holds for the project (at most 5 s).
async fn wait_until(app: &TestApp, what: &str, check: impl Fn(&skingate_core::project::Project) -> bool) {
    for _ in 0..500 {
        let p = app.running.state.store.project(app.project.id).await.unwrap().unwrap();
        if check(&p) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

/// Polls until the newest delivery has `n` attempts recorded (at most 5 s).
async fn wait_attempts(app: &TestApp, n: u32) {
    for _ in 0..500 {
        let list = app.running.state.store.deliveries(app.project.id, None, 0, 1).await.unwrap();
        if list.first().is_some_and(|d| d.attempts >= n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("attempt {n} never recorded");
}

/// Drives the first receiver's failures until the endpoint is disabled (three 500s over 120 s).
async fn fail_until_disabled(app: &TestApp, clock: &ManualClock, receiver: &Receiver) {
    receiver.answer_with(&[500; 3]);
    app.adjust(true, 1_000, "f1").await;
    for n in 1..=3u32 {
        receiver.next().await;
        wait_attempts(app, n).await;
        clock.advance(60);
        app.running.state.events_committed();
    }
    wait_until(app, "disabled", |p| p.events_disabled_at.is_some()).await;
}

/// An endpoint failing for longer than `webhook_disable_after_secs` is disabled, and the merchant's WebSocket
/// is told why and since when.
#[tokio::test]
async fn endpoints_failing_for_too_long_are_disabled() {
    let (mut app, clock) = app_with_clock().await;
    let receiver = Receiver::start().await;
    app.set_events_url(&receiver.url).await;
    let (mut ws, _) = ws_connect(&app.ws_url("")).await;
    // Third failure came 120 s after the first: past the 100 s limit, so the endpoint is disabled.
    fail_until_disabled(&app, &clock, &receiver).await;
    assert_eq!(ws_next(&mut ws).await["event"], "balance_change");
    let notice = ws_next(&mut ws).await;
    assert_eq!(notice["event"], "webhook_endpoint_disabled");
    assert_eq!(notice["data"]["reason"], "failing");
    assert_eq!(notice["data"]["failing_since"], 5_000_000);
}

/// After a disable, a new URL starts without the old endpoint's failing streak: one failure does not disable
/// it again.
#[tokio::test]
async fn a_new_url_after_a_disable_starts_with_a_fresh_failing_streak() {
    let (mut app, clock) = app_with_clock().await;
    let old = Receiver::start().await;
    app.set_events_url(&old.url).await;
    fail_until_disabled(&app, &clock, &old).await;
    clock.advance(10 * 86_400);
    let new = Receiver::start().await;
    new.answer_with(&[503]);
    app.set_events_url(&new.url).await;
    app.adjust(true, 1_000, "f2").await;
    new.next().await;
    wait_attempts(&app, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let p = app.running.state.store.project(app.project.id).await.unwrap().unwrap();
    assert_eq!(p.events_disabled_at, None, "one failure of a new endpoint does not disable it");
    clock.advance(60);
    app.running.state.events_committed();
    assert_eq!(new.next().await.json()["data"]["balance_value"], "2.00", "retried at the new URL");
}

/// `webhook_recover` after a new URL is set sends to that URL, both the deliveries that failed and the events
/// emitted while the endpoint was disabled (which had no delivery at all).
#[tokio::test]
async fn recover_sends_to_the_url_set_now_and_catches_up_on_events_missed_while_disabled() {
    let (mut app, clock) = app_with_clock().await;
    let since = app.running.state.now();
    let old = Receiver::start().await;
    app.set_events_url(&old.url).await;
    fail_until_disabled(&app, &clock, &old).await;
    app.adjust(true, 1_000, "while-disabled").await;
    let new = Receiver::start().await;
    app.set_events_url(&new.url).await;
    let sdk = app.sdk();
    assert_eq!(sdk.webhook_recover(since).await.unwrap().rescheduled, 2);
    // Attempts run concurrently: they may arrive in either order.
    let mut balances: Vec<String> = [new.next().await.json(), new.next().await.json()]
        .iter()
        .map(|b| b["data"]["balance_value"].as_str().unwrap().to_owned())
        .collect();
    balances.sort();
    assert_eq!(balances, ["1.00", "2.00"]);
    let store = &app.running.state.store;
    for _ in 0..500 {
        let all = store.deliveries(app.project.id, None, 0, 10).await.unwrap();
        if all.iter().all(|d| d.state == DeliveryState::Delivered) {
            assert!(all.iter().all(|d| d.url == new.url), "the log shows where they went");
            assert!(old.try_next().await.is_none(), "nothing more to the old URL");
            assert_eq!(sdk.webhook_recover(since).await.unwrap().rescheduled, 0, "nothing left to recover");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the recovered deliveries never completed");
}
