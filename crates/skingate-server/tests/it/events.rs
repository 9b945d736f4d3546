//! Real-time events end to end: outbox → WebSocket clients and the signed events webhook.

use std::sync::Arc;

use futures::SinkExt;
use serde_json::json;
use skingate_server::clock::ManualClock;
use skingate_store::{DeliveryState, SqliteStore, Store};
use skingate_types::sign;
use tokio_tungstenite::tungstenite::Message;

use crate::utils::{Receiver, spawn_with, spawn_with_clock, ws_close_code, ws_connect, ws_next};

fn allow_loopback(c: skingate_server::Config) -> skingate_server::Config {
    c.with("webhook_allow_private", true).unwrap()
}

/// The receiver-side check the vendor's PHP example does: `hash_hmac('sha256', $body, $secret)`.
fn php_hash_hmac_sha256(body: &[u8], secret: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn adjustment_reaches_every_websocket_and_the_signed_webhook() {
    let mut app = spawn_with(allow_loopback).await;
    let receiver = Receiver::start().await;
    app.set_events_url(&receiver.url).await;
    let (mut a, first_a) = ws_connect(&app.ws_url("")).await;
    let (mut b, first_b) = ws_connect(&app.ws_url("")).await;
    assert_eq!(first_a, json!({"event": "auth_success"}));
    assert_eq!(first_b, json!({"event": "auth_success"}));

    app.adjust(true, 10_000, "adj-1").await;

    for ws in [&mut a, &mut b] {
        let ev = ws_next(ws).await;
        assert_eq!(ev["event"], "balance_change");
        assert_eq!(ev["data"], json!({"balance_value": "10.00"}));
        assert_eq!(ev["seq"], 1);
        assert!(ev["id"].as_str().unwrap().starts_with("evt_"));
    }
    let hook = receiver.next().await;
    let body = hook.json();
    assert_eq!(body["event"], "balance_change");
    assert_eq!(body["data"]["balance_value"], "10.00");
    let secret = &app.project.client_secret;
    // The vendor's PHP verification, byte for byte.
    assert_eq!(hook.header("signature"), php_hash_hmac_sha256(&hook.body, secret));
    assert_eq!(hook.header("authorization"), hook.header("signature"), "the vendor's prose names Authorization");
    assert_eq!(hook.header("x-sign"), sign::static_sign(&app.client_id(), secret));
    // Standard Webhooks.
    assert_eq!(hook.header("webhook-id"), body["id"].as_str().unwrap());
    let ts = hook.header("webhook-timestamp");
    let now = app.running.state.now();
    let verified = sign::verify_standard(
        &[secret],
        hook.header("webhook-id"),
        ts,
        &hook.body,
        hook.header("webhook-signature"),
        now,
        300,
    );
    assert_eq!(verified, Ok(()));
    assert_eq!(hook.header("content-type"), "application/json");

    // A debit too large is refused and emits nothing.
    let refused = app.try_adjust(false, 10_001, "adj-2").await;
    assert!(matches!(refused, Err(skingate_server::adjustments::AdjustError::InsufficientFunds)));
    app.adjust(false, 2_500, "adj-3").await;
    assert_eq!(ws_next(&mut a).await["data"]["balance_value"], "7.50");
    assert_eq!(receiver.next().await.json()["seq"], 2);
}

/// A gateway on a manual clock (at 1 000 000, no jitter) whose events go to `receiver`, answering
/// `statuses` first, and one event (an adjustment) on its way.
async fn one_event_to(receiver: &Receiver, statuses: &[u16]) -> (crate::utils::TestApp, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    let mut app =
        spawn_with_clock(|c| allow_loopback(c).with("webhook_jitter_percent", 0).unwrap(), Arc::new(clock.clone()))
            .await;
    receiver.answer_with(statuses);
    app.set_events_url(&receiver.url).await;
    app.adjust(true, 1_000, "adj").await;
    (app, clock)
}

#[tokio::test]
async fn failing_receiver_gets_the_event_on_schedule() {
    let receiver = Receiver::start().await;
    let (app, clock) = one_event_to(&receiver, &[500, 503, 500]).await;

    let state = app.running.state.clone();
    let started = |r: &crate::utils::Received| r.header("webhook-timestamp").parse::<i64>().unwrap();
    let first = receiver.next().await;
    assert_eq!(started(&first), 1_000_000);
    // Expected schedule: +5 s, +5 min, +30 min after the previous attempt. Time only moves once the
    // previous attempt is recorded (as it would in real time: its lease outlasts the HTTP timeout).
    for (n, (delay, at)) in [(5, 1_000_005), (300, 1_000_305), (1_800, 1_002_105)].into_iter().enumerate() {
        wait_for_attempts_pending(&app, n as u32 + 1).await;
        clock.advance(delay - 1);
        state.events_committed();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), receiver.next()).await.is_err(),
            "too early"
        );
        clock.advance(1);
        state.events_committed();
        let got = receiver.next().await;
        assert_eq!(started(&got), at);
        assert_eq!(got.header("webhook-id"), first.header("webhook-id"), "same id on every retry");
    }
    // The 4th attempt got a 200: delivered, and the log shows every attempt.
    let deliveries = wait_for_state(&state, app.project.id, DeliveryState::Delivered).await;
    let attempts = state.store.delivery_attempts(deliveries.id).await.unwrap();
    let statuses: Vec<_> = attempts.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [Some(500), Some(503), Some(500), Some(200)]);
    assert_eq!(attempts[0].response_head, "receiver says hi");
}

/// A retry's delay runs from the answer, not from the start of the attempt (an audit saw an endpoint that
/// answers 500 after 8 s tried again at once, its 5 s being over by then).
#[tokio::test]
async fn a_retry_waits_its_delay_after_a_slow_answer() {
    let receiver = Receiver::start_slow(1, std::time::Duration::from_millis(2_100)).await;
    let (app, _clock) = one_event_to(&receiver, &[500]).await;
    receiver.next().await;
    wait_for_attempts_pending(&app, 1).await;
    let delivery = app.running.state.store.deliveries(app.project.id, None, 0, 1).await.unwrap().remove(0);
    assert_eq!(delivery.next_attempt_at, Some(1_000_000 + 2 + 5), "the answer took 2 s; then 5 s");
}

async fn wait_for_state(
    state: &skingate_server::AppState,
    project: skingate_core::project::ProjectId,
    want: DeliveryState,
) -> skingate_store::Delivery {
    for _ in 0..200 {
        let list = state.store.deliveries(project, None, 0, 10).await.unwrap();
        if let Some(d) = list.into_iter().find(|d| d.state == want) {
            return d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no delivery reached {want:?}");
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_tells_the_merchant() {
    let mut app = spawn_with(allow_loopback).await;
    let receiver = Receiver::start().await;
    receiver.answer_with(&[410]);
    app.set_events_url(&receiver.url).await;
    let (mut ws, _) = ws_connect(&app.ws_url("")).await;
    app.adjust(true, 1_000, "adj").await;
    assert_eq!(ws_next(&mut ws).await["event"], "balance_change");
    let notice = ws_next(&mut ws).await;
    assert_eq!(notice["event"], "webhook_endpoint_disabled");
    assert_eq!(notice["data"]["reason"], "gone");
    receiver.next().await;
    let p = app.running.state.store.project(app.project.id).await.unwrap().unwrap();
    assert!(p.events_disabled_at.is_some());
    // Later events are not delivered to a disabled endpoint.
    app.adjust(true, 1_000, "adj2").await;
    assert_eq!(ws_next(&mut ws).await["event"], "balance_change");
    assert!(receiver.try_next().await.is_none());
}

#[tokio::test]
async fn private_addresses_are_refused_without_the_switch() {
    let mut app = spawn_with(|c| c).await;
    let receiver = Receiver::start().await;
    app.set_events_url(&receiver.url).await;
    app.adjust(true, 1_000, "adj").await;
    let state = app.running.state.clone();
    let d = loop {
        let list = state.store.deliveries(app.project.id, None, 0, 1).await.unwrap();
        if list.first().is_some_and(|d| d.attempts > 0) {
            break list.into_iter().next().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let attempts = state.store.delivery_attempts(d.id).await.unwrap();
    assert!(attempts[0].error.as_deref().unwrap().contains("not allowed"), "{attempts:?}");
    assert!(receiver.try_next().await.is_none());
}

#[tokio::test]
async fn restart_between_commit_and_delivery_loses_nothing() {
    let mut app = spawn_with(allow_loopback).await;
    let receiver = Receiver::start().await;
    app.set_events_url(&receiver.url).await;
    let (mut ws, _) = ws_connect(&app.ws_url("")).await;
    app.adjust(true, 1_000, "before").await;
    let seen = ws_next(&mut ws).await;
    receiver.next().await;
    drop(ws);
    let project = app.project.id;
    // While no server runs, another process commits an event (the CLI, or a server that died after commit).
    let app = app
        .restart_after(async move |url: String| {
            let other = SqliteStore::open(&url, 1).await.unwrap();
            let p = other.project(project).await.unwrap().unwrap();
            let money = skingate_core::Money::from_minor(500);
            skingate_server::adjustments::adjust(&other, &p, true, money, "offline", "during", 1).await.unwrap();
            other.close().await;
        })
        .await;
    let hook = receiver.next().await;
    assert_eq!(hook.json()["data"]["balance_value"], "1.50");
    let resume = format!("&last_event_id={}", seen["id"].as_str().unwrap());
    let (mut ws, _) = ws_connect(&app.ws_url(&resume)).await;
    let missed = ws_next(&mut ws).await;
    assert_eq!((missed["seq"].as_i64(), missed["data"]["balance_value"].as_str()), (Some(2), Some("1.50")));
}

#[tokio::test]
async fn a_graceful_stop_logs_the_attempt_under_way_and_hands_back_the_rest() {
    // One attempt at a time to an endpoint that takes a second to answer until the restart: a stop finds an
    // attempt under way and the other deliveries leased ahead of it, waiting for the slot (leased for 360 s by
    // default).
    let mut app = spawn_with(|c| allow_loopback(c).with("webhook_concurrency", 1).unwrap()).await;
    let receiver = Receiver::start_slow(usize::MAX, std::time::Duration::from_secs(1)).await;
    app.set_events_url(&receiver.url).await;
    for i in 0..5 {
        app.adjust(true, 100, &format!("top-up-{i}")).await;
    }
    let mut seen = vec![receiver.next().await.json()["id"].clone()];
    let first_id = seen[0].clone();
    let endpoint = &receiver;
    let app = app
        .restart_after(async move |url: String| {
            let db = sqlx::SqlitePool::connect(&url).await.unwrap();
            let rows: Vec<(String, Option<i64>, i64, i64)> = sqlx::query_as(
                "SELECT d.state, d.locked_until, d.attempts, e.id FROM deliveries d JOIN events e ON e.id = d.event_id",
            )
            .fetch_all(&db)
            .await
            .unwrap();
            assert_eq!(rows.len(), 5);
            let first = rows.iter().find(|r| first_id == skingate_server::events::public_id(r.3).as_str()).unwrap();
            assert_eq!(first.0, "delivered", "the attempt under way finished and was logged");
            assert_eq!((first.1, first.2), (None, 1));
            for row in &rows {
                // At most one more attempt can have started before the stop; none is left leased.
                assert!(matches!(row, (s, None, ..) if s == "delivered" || s == "pending"), "{row:?}");
            }
            assert!(rows.iter().filter(|r| r.0 == "pending").count() >= 3, "{rows:?}");
            db.close().await;
            endpoint.answer_fast();
        })
        .await;
    // The new process delivers the rest at once (each within `next`'s 10 s), each once.
    while seen.len() < 5 {
        let id = receiver.next().await.json()["id"].clone();
        assert!(!seen.contains(&id), "{id} delivered twice");
        seen.push(id);
    }
    drop(app);
}

#[tokio::test]
async fn resume_after_a_dropped_connection_has_no_gap_and_no_duplicate() {
    let app = spawn_with(|c| c).await;
    let (mut ws, _) = ws_connect(&app.ws_url("")).await;
    app.adjust(true, 1_000, "e1").await;
    let first = ws_next(&mut ws).await;
    drop(ws);
    for i in 2..=4 {
        app.adjust(true, 1_000, &format!("e{i}")).await;
    }
    let resume = format!("&last_event_id={}", first["id"].as_str().unwrap());
    let (mut ws, hello) = ws_connect(&app.ws_url(&resume)).await;
    assert_eq!(hello["event"], "auth_success");
    let seqs: Vec<i64> = [ws_next(&mut ws).await, ws_next(&mut ws).await, ws_next(&mut ws).await]
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
    app.adjust(true, 1_000, "e5").await;
    assert_eq!(ws_next(&mut ws).await["seq"], 5);
    app.adjust(true, 1_000, "e6").await;
    assert_eq!(ws_next(&mut ws).await["seq"], 6, "no duplicate of 5");
    // An unknown id is reported, then live events flow.
    let (mut ws2, _) = ws_connect(&app.ws_url("&last_event_id=evt_999999")).await;
    let failed = ws_next(&mut ws2).await;
    let newest = app.running.state.store.project_last_event(app.project.id).await.unwrap().unwrap();
    assert_eq!(failed["event"], "resume_failed");
    assert_eq!(failed["data"]["last_event_id"], format!("evt_{}", newest.id), "names where live events start");
    app.adjust(true, 1_000, "e7").await;
    assert_eq!(ws_next(&mut ws2).await["seq"], 7);
}

#[tokio::test]
async fn bad_auth_pings_and_oversized_frames() {
    let app = spawn_with(|c| c).await;
    let base = format!("ws://{}/ws/?shopid={}", app.running.addr, app.client_id());
    for url in
        [format!("{base}&signature=00"), format!("ws://{}/ws?shopid=999&signature=00", app.running.addr), base.clone()]
    {
        let (mut ws, first) = ws_connect(&url).await;
        assert_eq!(first, json!({"event": "auth_failed"}));
        assert_eq!(ws_close_code(&mut ws).await, 4001);
    }
    // Upper-case signature, path without the trailing slash: accepted.
    let sig = sign::static_sign(&app.client_id(), &app.project.client_secret).to_uppercase();
    let (mut ws, first) =
        ws_connect(&format!("ws://{}/ws?shopid={}&signature={sig}", app.running.addr, app.client_id())).await;
    assert_eq!(first["event"], "auth_success");
    ws.send(Message::text("ping")).await.unwrap();
    app.adjust(true, 1_000, "x").await;
    assert_eq!(ws_next(&mut ws).await["event"], "balance_change", "ping gets no reply; events keep flowing");
    ws.send(Message::text("x".repeat(70 * 1024))).await.unwrap();
    assert_eq!(ws_close_code(&mut ws).await, 1009);
    // A client that writes before reading a refusal still gets the close code: the gateway reads what it sent
    // before letting go of the socket, so no TCP reset overtakes the close frame.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{base}&signature=00")).await.unwrap();
    for _ in 0..3 {
        ws.send(Message::text("ping")).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(ws_next(&mut ws).await, json!({"event": "auth_failed"}));
    assert_eq!(ws_close_code(&mut ws).await, 4001);
    // A close the client starts is answered with a close frame (a clean close, not an abnormal end), and a
    // frame that breaks the protocol is named as such (1002), not as too big.
    let (mut ws, _) = ws_connect(&app.ws_url("")).await;
    ws.close(None).await.unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), futures::StreamExt::next(&mut ws)).await;
    assert!(matches!(reply, Ok(Some(Ok(Message::Close(_))))), "{reply:?}");
    let (mut ws, _) = ws_connect(&app.ws_url("")).await;
    ws.send(Message::Ping(vec![0u8; 200].into())).await.unwrap();
    assert_eq!(ws_close_code(&mut ws).await, 1002);
}

#[tokio::test]
async fn sdk_stream_resumes_after_a_drop_and_sdk_verifier_accepts_deliveries() {
    let mut app = spawn_with(allow_loopback).await;
    let receiver = Receiver::start().await;
    app.set_events_url(&receiver.url).await;
    let base = format!("ws://{}", app.running.addr);
    let mut stream = skingate_sdk::ws::EventStream::new(&base, &app.client_id(), &app.project.client_secret);
    // Connect first so the live event is not missed.
    let next = tokio::spawn(async move {
        let e = stream.next().await.unwrap();
        (stream, e)
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    app.adjust(true, 1_000, "s1").await;
    let (mut stream, first) = next.await.unwrap();
    assert_eq!((first.event.as_str(), first.seq), ("balance_change", Some(1)));
    stream.disconnect();
    app.adjust(true, 1_000, "s2").await;
    app.adjust(true, 1_000, "s3").await;
    let seqs = [stream.next().await.unwrap().seq, stream.next().await.unwrap().seq];
    assert_eq!(seqs, [Some(2), Some(3)]);

    let verifier = skingate_sdk::webhooks::Verifier::new(&app.client_id(), &app.project.client_secret);
    let hook = receiver.next().await;
    let now = app.running.state.now();
    assert_eq!(verifier.verify(&hook.headers, &hook.body, now), Ok(skingate_sdk::webhooks::Scheme::StandardWebhooks));
    assert_eq!(hook.body.as_ref(), first.raw.as_bytes(), "webhook body and WebSocket frame are the same bytes");
    let mut tampered = hook.body.to_vec();
    tampered[5] ^= 1;
    assert!(verifier.verify(&hook.headers, &tampered, now).is_err());
    let wrong = skingate_sdk::Client::new(&app.running.base_url(), &app.client_id(), "nope");
    let bad = skingate_sdk::ws::EventStream::new(&base, &app.client_id(), "nope").next().await;
    assert!(matches!(bad, Err(skingate_sdk::ws::StreamError::AuthFailed)));
    assert_eq!(wrong.status().await.unwrap_err().api_code(), Some(-3));
}

/// `cursor=1` names the project's newest event in `auth_success`; without it the frame is the vendor's.
#[tokio::test]
async fn cursor_welcome_names_the_newest_event_and_plain_clients_get_the_vendor_frame() {
    let app = spawn_with(|c| c).await;
    let (_ws, first) = ws_connect(&app.ws_url("&cursor=1")).await;
    assert_eq!(first, json!({"event": "auth_success", "data": {"last_event_id": "evt_0"}}));
    app.adjust(true, 1_000, "c1").await;
    app.adjust(true, 1_000, "c2").await;
    let (_ws, plain) = ws_connect(&app.ws_url("")).await;
    assert_eq!(plain, json!({"event": "auth_success"}));
    let (mut ws, first) = ws_connect(&app.ws_url("&cursor=1")).await;
    let newest = app.running.state.store.project_last_event(app.project.id).await.unwrap().unwrap();
    assert_eq!(first["data"]["last_event_id"], format!("evt_{}", newest.id));
    app.adjust(true, 1_000, "c3").await;
    assert_eq!(ws_next(&mut ws).await["seq"], 3, "only what follows the cursor");
    // With `last_event_id` the client has its cursor already: the frame stays plain.
    let (_ws, resumed) = ws_connect(&app.ws_url("&cursor=1&last_event_id=0")).await;
    assert_eq!(resumed, json!({"event": "auth_success"}));
}

/// An SDK stream that drops before its first event resumes from the cursor it was given: nothing committed
/// in between is lost.
#[tokio::test]
async fn sdk_stream_dropped_before_its_first_event_misses_nothing() {
    let app = spawn_with(|c| c).await;
    let base = format!("ws://{}", app.running.addr);
    let mut stream = skingate_sdk::ws::EventStream::new(&base, &app.client_id(), &app.project.client_secret);
    let idle = tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await;
    assert!(idle.is_err(), "no event yet");
    assert_eq!(stream.last_event_id(), Some("evt_0"), "connected, with the gateway's cursor");
    stream.disconnect();
    app.adjust(true, 1_000, "d1").await;
    app.adjust(true, 1_000, "d2").await;
    let seqs = [stream.next().await.unwrap().seq, stream.next().await.unwrap().seq];
    assert_eq!(seqs, [Some(1), Some(2)]);
}

/// A resume the gateway cannot serve is reported once; the stream then goes on live.
#[tokio::test]
async fn sdk_stream_reports_a_failed_resume_then_goes_on() {
    let app = spawn_with(|c| c).await;
    let base = format!("ws://{}", app.running.addr);
    let mut stream = skingate_sdk::ws::EventStream::new(&base, &app.client_id(), &app.project.client_secret)
        .resume_from("evt_999999");
    match stream.next().await {
        Err(skingate_sdk::ws::StreamError::ResumeFailed { after }) => assert_eq!(after, "evt_999999"),
        other => panic!("expected ResumeFailed, got {other:?}"),
    }
    assert_eq!(stream.last_event_id(), Some("evt_0"), "resumes from where live events started");
    app.adjust(true, 1_000, "r1").await;
    let event = stream.next().await.unwrap();
    assert_eq!((event.event.as_str(), event.seq), ("balance_change", Some(1)));
}

/// The API's `http://` base URL works for the stream too (mapped to `ws://`).
#[tokio::test]
async fn sdk_stream_takes_the_http_base_url() {
    let app = spawn_with(|c| c).await;
    app.adjust(true, 1_000, "h1").await;
    let mut stream =
        skingate_sdk::ws::EventStream::new(&app.running.base_url(), &app.client_id(), &app.project.client_secret)
            .resume_from("0");
    let event = stream.next().await.unwrap();
    assert_eq!((event.event.as_str(), event.seq), ("balance_change", Some(1)));
}

/// A stream that can never connect says why at once instead of retrying forever; a 5xx is retried first.
#[tokio::test]
async fn sdk_stream_ends_on_errors_that_would_repeat() {
    use skingate_sdk::ws::{EventStream, StreamError};
    let limit = std::time::Duration::from_secs(10);
    let app = spawn_with(|c| c).await;
    let secret = &app.project.client_secret;

    let mut bad_scheme = EventStream::new(&format!("ftp://{}", app.running.addr), &app.client_id(), secret);
    let err = tokio::time::timeout(limit, bad_scheme.next()).await.expect("no retry loop");
    assert!(matches!(err, Err(StreamError::InvalidUrl { .. })), "{err:?}");
    assert_eq!(bad_scheme.reconnects(), 0);

    // A base URL that is no skingate: the server answers the upgrade with 404 (after one 503, retried).
    let not_a_gateway = Receiver::start().await;
    not_a_gateway.answer_with(&[503, 404]);
    let mut wrong_path = EventStream::new(&not_a_gateway.url, &app.client_id(), secret);
    let err = tokio::time::timeout(limit, wrong_path.next()).await.expect("no retry loop");
    match err {
        Err(StreamError::Refused { url, status }) => {
            assert_eq!(status, 404);
            assert!(url.ends_with("/hook/ws/") && !url.contains("signature"), "{url}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(wrong_path.reconnects(), 1, "the 503 was retried, the 404 was not");
    let first = not_a_gateway.next().await;
    assert_eq!(first.header("upgrade").to_ascii_lowercase(), "websocket");
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_the_grace_period() {
    let mut app = spawn_with(allow_loopback).await;
    let receiver = Receiver::start().await;
    app.set_events_url(&receiver.url).await;
    let old = app.project.client_secret.clone();
    app.project.rotate_secret("brand-new-secret".into(), app.running.state.now(), 3_600);
    app.update(|_| {}).await;
    app.adjust(true, 1_000, "r1").await;
    let hook = receiver.next().await;
    assert_eq!(hook.header("webhook-signature").split(' ').count(), 2);
    let now = app.running.state.now();
    let with_old = skingate_sdk::webhooks::Verifier::new(&app.client_id(), &old);
    assert_eq!(with_old.verify(&hook.headers, &hook.body, now), Ok(skingate_sdk::webhooks::Scheme::StandardWebhooks));
    assert_eq!(hook.header("signature"), php_hash_hmac_sha256(&hook.body, "brand-new-secret"));
}

#[tokio::test]
async fn delivery_log_resend_and_recover_through_the_api() {
    let mut app = spawn_with(|c| allow_loopback(c).with("webhook_retry_delays_secs", Vec::<u64>::new()).unwrap()).await;
    let receiver = Receiver::start().await;
    receiver.answer_with(&[500, 500]);
    app.set_events_url(&receiver.url).await;
    let since = app.running.state.now();
    app.adjust(true, 1_000, "d1").await;
    receiver.next().await;
    wait_for_state(&app.running.state, app.project.id, DeliveryState::Failed).await;
    let sdk = app.sdk();
    let page = sdk.webhook_deliveries(Some("failed"), None).await.unwrap();
    assert_eq!(page.total_count, 1);
    let d = &page.items[0];
    assert_eq!(
        (d.state.as_str(), d.attempts, d.last_http_status, d.event.as_str()),
        ("failed", 1, Some(500), "balance_change")
    );
    let attempts = sdk.webhook_attempts(&d.delivery_id).await.unwrap();
    assert_eq!(attempts.items[0].http_status, Some(500));
    assert_eq!(attempts.items[0].response_head, "receiver says hi");
    // Resend: the next answer is another 500, so it fails again; recover then succeeds.
    assert_eq!(sdk.webhook_resend(&d.delivery_id).await.unwrap().rescheduled, 1);
    receiver.next().await;
    wait_for_attempts(&app, 2).await;
    assert_eq!(sdk.webhook_recover(since).await.unwrap().rescheduled, 1);
    let third = receiver.next().await;
    assert_eq!(third.header("webhook-id"), d.event_id);
    wait_for_state(&app.running.state, app.project.id, DeliveryState::Delivered).await;
    assert_eq!(sdk.webhook_deliveries(Some("failed"), None).await.unwrap().total_count, 0);
    // Errors.
    assert_eq!(sdk.webhook_attempts("999").await.unwrap_err().api_message(), Some("delivery_not_found"));
    assert_eq!(sdk.webhook_resend("x").await.unwrap_err().api_message(), Some("missing_delivery_id"));
    assert_eq!(sdk.webhook_deliveries(Some("weird"), None).await.unwrap_err().api_code(), Some(1));
}

async fn wait_for_attempts_pending(app: &crate::utils::TestApp, n: u32) {
    for _ in 0..500 {
        let list = app.running.state.store.deliveries(app.project.id, None, 0, 1).await.unwrap();
        if list.first().is_some_and(|d| d.attempts >= n) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("attempt {n} never recorded");
}

async fn wait_for_attempts(app: &crate::utils::TestApp, n: u32) {
    for _ in 0..200 {
        let list = app.running.state.store.deliveries(app.project.id, None, 0, 1).await.unwrap();
        if list.first().is_some_and(|d| d.attempts >= n && d.state != DeliveryState::Pending) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("delivery never reached {n} attempts");
}

#[tokio::test]
async fn slow_websocket_consumers_are_disconnected_with_4008() {
    let app = spawn_with(|c| c.with("ws_queue_len", 2).unwrap()).await;
    let (mut ws, _) = ws_connect(&app.ws_url("")).await;
    // Fifty events in one transaction reach the hub in one batch: more than the client's queue.
    let state = &app.running.state;
    let p = state.store.project(app.project.id).await.unwrap().unwrap();
    let mut tx = state.store.begin().await.unwrap();
    for i in 0..50 {
        let data = json!({"n": i});
        skingate_server::events::emit(tx.as_mut(), &p, skingate_core::events::EventType::StatusChange, data, 1)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    state.events_committed();
    assert_eq!(ws_close_code(&mut ws).await, 4008);
    // Reconnecting with resume gets everything.
    let (mut ws, _) = ws_connect(&app.ws_url("&last_event_id=0")).await;
    for seq in 1..=50 {
        assert_eq!(ws_next(&mut ws).await["seq"], seq);
    }
}

#[tokio::test]
async fn legacy_paths_and_dead_peers() {
    let app =
        spawn_with(|c| c.with("ws_ping_interval_secs", 1).unwrap().with("ws_idle_timeout_secs", 2).unwrap()).await;
    // Any path upgrades (some legacy clients connect to `/`).
    let url = app.ws_url("").replace("/ws/?", "/?");
    let (mut ws, first) = ws_connect(&url).await;
    assert_eq!(first["event"], "auth_success");
    // A peer that never answers the server's pings (this one does not read, so it sends no pong) is dropped.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    assert_eq!(ws_close_code(&mut ws).await, 1001);
    let resp = app.http.get(format!("{}/nothing-here", app.running.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// A WebSocket upgrade reaches the hub on every path, also on paths other routes serve (spec §11.9: clients
/// build the socket's URL from the API's base URL); those routes still answer their plain requests.
#[tokio::test]
async fn a_websocket_upgrade_on_another_route_s_path_reaches_the_hub() {
    let app = spawn_with(|c| c).await;
    for path in ["/api.php", "/api/v1", "/healthz", "/noop", "/pay/nothing", "/WS/"] {
        let url = app.ws_url("").replace("/ws/?", &format!("{path}?"));
        let (_ws, first) = ws_connect(&url).await;
        assert_eq!(first["event"], "auth_success", "{path}");
    }
    let plain = app.http.get(app.api_url()).send().await.unwrap();
    assert_eq!(
        plain.json::<serde_json::Value>().await.unwrap()["error_code"],
        -1,
        "a plain GET of the API is its -1 envelope"
    );
    let health = app.http.get(format!("{}/healthz", app.running.base_url())).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
}

/// Polls `state.hub.connections()` until it is `n`, for at most `limit`.
async fn wait_for_connections(state: &skingate_server::AppState, n: u64, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    while state.hub.connections() != n {
        assert!(std::time::Instant::now() < deadline, "{} connections after {limit:?}", state.hub.connections());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_resuming_client_that_stops_reading_during_the_replay_is_dropped() {
    // The write timeout follows the idle limit down: a peer that takes no frame for 2 s is gone.
    let app =
        spawn_with(|c| c.with("ws_ping_interval_secs", 1).unwrap().with("ws_idle_timeout_secs", 2).unwrap()).await;
    // Far more than the kernel's socket buffers and the WebSocket's write buffer hold: 2000 events of 16 KiB.
    let state = &app.running.state;
    let p = state.store.project(app.project.id).await.unwrap().unwrap();
    let mut tx = state.store.begin().await.unwrap();
    let padding = "x".repeat(16 * 1024);
    for i in 0..2000 {
        let data = json!({"n": i, "padding": padding});
        skingate_server::events::emit(tx.as_mut(), &p, skingate_core::events::EventType::StatusChange, data, 1)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // The client reads the welcome, then nothing more.
    let (ws, first) = ws_connect(&app.ws_url("&last_event_id=0")).await;
    assert_eq!(first["event"], "auth_success");
    wait_for_connections(state, 1, std::time::Duration::from_secs(1)).await;
    wait_for_connections(state, 0, std::time::Duration::from_secs(8)).await;
    drop(ws);
}

#[tokio::test]
async fn stopping_the_server_closes_websockets_with_1001() {
    let app = spawn_with(|c| c).await;
    let (mut live, first) = ws_connect(&app.ws_url("&cursor=1")).await;
    assert_eq!(first["data"]["last_event_id"], "evt_0");
    app.adjust(true, 1_000, "s1").await;
    let (mut resumed, _) = ws_connect(&app.ws_url("&last_event_id=0")).await;
    assert_eq!(ws_next(&mut resumed).await["seq"], 1);
    assert_eq!(ws_next(&mut live).await["seq"], 1);
    let state = app.running.state.clone();
    assert_eq!(state.hub.connections(), 2);
    let started = std::time::Instant::now();
    app.running.stop().await.unwrap();
    // Stop waited for the connections to end, and did not take long doing so.
    assert_eq!(state.hub.connections(), 0);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "stop took {:?}", started.elapsed());
    assert_eq!(ws_close_code(&mut live).await, 1001);
    assert_eq!(ws_close_code(&mut resumed).await, 1001);
}

/// A rotated secret (or a switched-off project) ends the connections opened with the old credentials at the
/// next server ping, with 4001: a leaked secret stops streaming events once it is rotated.
#[tokio::test]
async fn rotating_the_secret_closes_connections_made_with_the_old_one() {
    let mut app =
        spawn_with(|c| c.with("ws_ping_interval_secs", 1).unwrap().with("ws_idle_timeout_secs", 5).unwrap()).await;
    let (mut ws, first) = ws_connect(&app.ws_url("")).await;
    assert_eq!(first["event"], "auth_success");
    let now = app.running.state.now();
    app.project.rotate_secret("rotated-secret".into(), now, 3_600);
    app.update(|_| {}).await;
    assert_eq!(ws_close_code(&mut ws).await, 4001);
    let (mut ws, first) = ws_connect(&app.ws_url("")).await;
    assert_eq!(first["event"], "auth_success", "the new secret opens the stream");
    // The SDK reports the revocation as AuthFailed, not as an event named auth_failed.
    let base = format!("ws://{}", app.running.addr);
    let mut stream = skingate_sdk::ws::EventStream::new(&base, &app.client_id(), "rotated-secret");
    let idle = tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await;
    assert!(idle.is_err(), "connected, no event yet");
    app.update(|s| s.active = false).await;
    assert_eq!(ws_close_code(&mut ws).await, 4001);
    let revoked = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await.unwrap();
    assert!(matches!(revoked, Err(skingate_sdk::ws::StreamError::AuthFailed)), "{revoked:?}");
}

/// One merchant's slow endpoint does not hold up another merchant's webhooks: the slots go to the project
/// running fewest attempts, and claims take projects in turns. (An audit had 200 callbacks to a black-hole
/// address hold every slot: another merchant's webhook arrived 56 s late, later the more callbacks.)
#[tokio::test]
async fn a_slow_merchant_endpoint_does_not_hold_up_another_merchants_webhooks() {
    let mut app = spawn_with(|c| allow_loopback(c).with("webhook_concurrency", 2).unwrap()).await;
    let slow = Receiver::start_slow(usize::MAX, std::time::Duration::from_secs(3)).await;
    app.set_events_url(&slow.url).await;
    for i in 0..12 {
        app.adjust(true, 100, &format!("slow-{i}")).await;
    }
    // Both slots are taken by the slow endpoint (12 deliveries: 18 s one after the other, two at a time).
    slow.next().await;
    slow.next().await;
    let fast = Receiver::start().await;
    let other = app.other_project("Other shop", &fast.url).await;
    let started = std::time::Instant::now();
    app.try_adjust_for(other.id, true, 500, "other-1").await.unwrap();
    let got = fast.next().await.json();
    assert_eq!((got["event"].as_str(), got["seq"].as_i64()), (Some("balance_change"), Some(1)), "{got}");
    // The next free slot is the other merchant's: within one slow answer (3 s), not after the backlog (the
    // old first-come order: ~18 s).
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(6), "waited {waited:?} behind another merchant");
    drop(app);
}

/// Two merchants' backlogs to slow endpoints filling the whole lease-ahead window do not keep a third
/// merchant's delivery from being claimed: a project with nothing leased is claimed all the same, and gets the
/// next free slot. (A re-audit saw a third merchant wait up to 156 s behind two black-hole backlogs.)
#[tokio::test]
async fn a_full_lease_window_still_takes_a_merchant_with_nothing_leased() {
    // One slot: a project may lease 16 deliveries ahead, all projects 32.
    let mut app = spawn_with(|c| allow_loopback(c).with("webhook_concurrency", 1).unwrap()).await;
    let slow = Receiver::start_slow(usize::MAX, std::time::Duration::from_secs(2)).await;
    app.set_events_url(&slow.url).await;
    let second = app.other_project("Second", &slow.url).await;
    for i in 0..20 {
        app.adjust(true, 100, &format!("first-{i}")).await;
        app.try_adjust_for(second.id, true, 100, &format!("second-{i}")).await.unwrap();
    }
    slow.next().await;
    let fast = Receiver::start().await;
    let third = app.other_project("Third", &fast.url).await;
    let started = std::time::Instant::now();
    app.try_adjust_for(third.id, true, 100, "third-1").await.unwrap();
    assert_eq!(fast.next().await.json()["event"], "balance_change");
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(6), "waited {waited:?} behind two full backlogs");
    drop(app);
}
