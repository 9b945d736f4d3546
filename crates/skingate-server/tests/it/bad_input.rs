//! Requests that must be refused with the envelope, and change nothing.

use serde_json::{Value, json};

use crate::utils::{answer, assert_error, spawn, spawn_with};

async fn raw(app: &crate::utils::TestApp, content_type: Option<&str>, body: Vec<u8>) -> Value {
    let mut req = app.http.post(app.api_url()).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn get_is_refused() {
    let app = spawn().await;
    let body: Value = app.http.get(app.api_url()).send().await.unwrap().json().await.unwrap();
    assert_error(&body, -1, "please_use_post_method");
    let body: Value =
        app.http.put(format!("{}/api/v1", app.running.base_url())).send().await.unwrap().json().await.unwrap();
    assert_error(&body, -1, "please_use_post_method");
}

/// A base URL off by a slash still reaches the API, as it would behind the vendor's nginx and PHP; a path
/// nothing serves answers `-14 unknown_path` in the envelope (HTTP 404), which a client parsing JSON can read.
#[tokio::test]
async fn paths_are_taken_as_the_vendors_server_takes_them() {
    let app = spawn().await;
    let base = app.running.base_url();
    let headers = [("X-CLIENT-ID", app.client_id()), ("X-CLIENT-SECRET", app.project.client_secret.clone())];
    for path in ["//api.php", "/api.php/", "//api//v1/", "/api.php?x=1"] {
        let mut req = app.http.post(format!("{base}{path}")).json(&json!({"method": "balance"}));
        for (name, value) in &headers {
            req = req.header(*name, value);
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(body["status"], "success", "{path}: {body}");
    }
    for path in ["/api.php/x", "/nope", "/api.php5"] {
        let resp = app.http.post(format!("{base}{path}")).json(&json!({"method": "status"})).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        assert_error(&resp.json().await.unwrap(), -14, "unknown_path");
    }
}

#[tokio::test]
async fn malformed_bodies_and_content_types() {
    let app = spawn().await;
    assert_error(&raw(&app, Some("application/json"), b"{\"method\":".to_vec()).await, -10, "invalid_request_body");
    assert_error(&raw(&app, Some("application/json"), b"[1,2,3]".to_vec()).await, -10, "invalid_request_body");
    assert_error(&raw(&app, Some("application/json"), b"\"text\"".to_vec()).await, -10, "invalid_request_body");
    assert_error(&raw(&app, Some("text/xml"), b"<a/>".to_vec()).await, -12, "unsupported_content_type");
    assert_error(
        &raw(&app, Some("multipart/mixed; boundary=x"), b"--x--".to_vec()).await,
        -12,
        "unsupported_content_type",
    );
    // Invalid UTF-8 in a JSON body.
    assert_error(&raw(&app, Some("application/json"), vec![b'{', 0xff, b'}']).await, -10, "invalid_request_body");
    // An empty body names no shop.
    assert_error(&raw(&app, None, Vec::new()).await, -2, "invalid_shopid");
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_parsing() {
    let app = spawn_with(|c| c.with("body_limit_bytes", 4096).unwrap()).await;
    let big = format!("{{\"method\":\"balance\",\"pad\":\"{}\"}}", "x".repeat(5000));
    assert_error(&raw(&app, Some("application/json"), big.into_bytes()).await, -11, "request_body_too_large");
    // Without a Content-Length (chunked), the limit still holds while reading.
    let chunks = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1000])));
    let resp = app
        .http
        .post(app.api_url())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_error(&resp.json().await.unwrap(), -11, "request_body_too_large");
    // The default limit is 1 MiB.
    let default = spawn().await;
    let body = vec![b' '; (1 << 20) + 1];
    assert_error(&raw(&default, Some("application/json"), body).await, -11, "request_body_too_large");
}

/// Sends `request` on a fresh connection, optionally half-closing after it, and reads until the server closes
/// (at most 10 s); returns what came back.
async fn exchange(app: &crate::utils::TestApp, request: &[u8], half_close: bool) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = app.running.base_url().trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    if half_close {
        tcp.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the server let the connection hang")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn post(app: &crate::utils::TestApp, headers: &str, body: &str) -> Vec<u8> {
    let auth = format!("X-CLIENT-ID: {}\r\nX-CLIENT-SECRET: {}\r\n", app.client_id(), app.project.client_secret);
    format!("POST /api.php HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}{headers}\r\n{body}")
        .into_bytes()
}

/// A client that writes its whole oversized request before reading anything (Python's `http.client`, blocking
/// PHP streams) reads the `-11` answer: the body is read and dropped first. It used to see its write fail with a
/// reset, the server having closed with the body unread. A client waiting for `100 Continue`, or one declaring
/// more than is worth reading, is answered at once.
#[tokio::test]
async fn a_client_writing_a_whole_oversized_body_reads_the_refusal() {
    let app = spawn_with(|c| c.with("body_limit_bytes", 4096).unwrap()).await;
    let body = format!(r#"{{"method":"balance","pad":"{}"}}"#, "x".repeat(12 << 20));
    let declared = post(&app, &format!("Content-Length: {}\r\nConnection: close\r\n", body.len()), &body);
    let answer = exchange(&app, &declared, false).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(r#""error_code":-11"#), "{answer}");
    let chunked = post(
        &app,
        "Transfer-Encoding: chunked\r\nConnection: close\r\n",
        &format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()),
    );
    let answer = exchange(&app, &chunked, false).await;
    assert!(answer.contains(r#""error_code":-11"#), "{answer}");
    // Headers only: these clients send no body before the answer, which must not wait for one.
    let waits = post(&app, "Content-Length: 12000000\r\nExpect: 100-continue\r\nConnection: close\r\n", "");
    let answer = exchange(&app, &waits, false).await;
    assert!(!answer.contains("100 Continue") && answer.contains(r#""error_code":-11"#), "{answer}");
    let huge = post(&app, "Content-Length: 100000000\r\nConnection: close\r\n", "");
    assert!(exchange(&app, &huge, false).await.contains(r#""error_code":-11"#));
}

/// Slow or stalled clients are let go: headers not complete in time close the connection; a body not complete
/// in time (here: shorter than declared) is answered `-10`, as is a malformed chunked body (not `-11`: it is not
/// too large). Each used to hold the connection for good (or, for chunking, answer `-11`).
#[tokio::test]
async fn stalled_and_broken_requests_are_let_go() {
    let app =
        spawn_with(|c| c.with("http_header_timeout_ms", 300).unwrap().with("http_body_timeout_ms", 300).unwrap()).await;
    let half_headers = exchange(&app, b"POST /api.php HTTP/1.1\r\nHost: x\r\nContent-Le", false).await;
    assert!(!half_headers.contains("success"), "{half_headers}");
    let short_body = exchange(&app, &post(&app, "Content-Length: 100\r\n", r#"{"method":"balance"}"#), false).await;
    assert!(short_body.starts_with("HTTP/1.1 200"), "{short_body}");
    assert!(short_body.contains(r#""error_code":-10"#), "{short_body}");
    let chunked = post(&app, "Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n");
    let bad_chunks = exchange(&app, &chunked, false).await;
    assert!(bad_chunks.contains(r#""error_code":-10"#), "{bad_chunks}");
    // Every route, also one whose handler reads its body with an extractor (as `/noop` does).
    let noop = exchange(&app, b"POST /noop HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{", false).await;
    assert!(!noop.contains("success"), "{noop}");
    // A whole request still has the time it needs.
    let whole =
        exchange(&app, &post(&app, "Content-Length: 20\r\nConnection: close\r\n", r#"{"method":"balance"}"#), false)
            .await;
    assert!(whole.contains(r#""status":"success""#), "{whole}");
}

/// A stop does not wait on clients: a connection that sent half a request (hyper's graceful close leaves it
/// alone) or never reads its answer is closed once `http_shutdown_grace_ms` has passed.
#[tokio::test]
async fn a_stop_does_not_wait_for_a_client_that_sent_half_a_request() {
    use tokio::io::AsyncWriteExt as _;
    let app = spawn_with(|c| c.with("http_shutdown_grace_ms", 300).unwrap()).await;
    let addr = app.running.base_url().trim_start_matches("http://").to_owned();
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // The server has taken the connection once another request on a new one is answered after it.
    let health = app.http.get(format!("{}/healthz", app.running.base_url())).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(10), app.running.stop())
        .await
        .expect("the stop waited on the half-sent request (the header deadline is 30 s)")
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "stop took {:?}", started.elapsed());
}

/// A client that half-closes its side once its request is sent (`shutdown(SHUT_WR)`) gets its answer: the
/// connection used to be dropped at the client's EOF, answering nothing while a buy it asked for committed.
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let app = spawn().await;
    let body = r#"{"method":"balance_history","starting":0,"ending":4000000000}"#;
    let answer = exchange(&app, &post(&app, &format!("Content-Length: {}\r\n", body.len()), body), true).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""status":"success""#), "{answer}");
}

#[tokio::test]
async fn unknown_and_missing_methods() {
    let app = spawn().await;
    assert_error(&app.post_json(json!({"method": "no_such_method"})).await, -5, "invalid_method");
    assert_error(&app.post_json(json!({})).await, -5, "invalid_method");
    // Names are exact: no case folding, no partial matches.
    assert_error(&app.post_json(json!({"method": "Market_Buy", "id": 1})).await, -5, "invalid_method");
    // A name close to a real method is still unknown, never guessed.
    assert_error(&app.post_json(json!({"method": "market_sell", "id": 1})).await, -5, "invalid_method");
}

#[tokio::test]
async fn bad_parameters_get_method_errors() {
    let app = spawn().await;
    let body = app.post_json(json!({"method": "balance_history", "starting": 10})).await;
    assert_error(&body, 1, "missing_starting_or_ending");
    let body = app.post_json(json!({"method": "balance_history", "starting": "ten", "ending": 20})).await;
    assert_error(&body, 2, "invalid_starting_or_ending");
    let body = app.post_json(json!({"method": "balance_history", "starting": 1, "ending": 2, "start_from": [1]})).await;
    assert_error(&body, 3, "invalid_start_from");
}

/// Only ASCII whitespace is tolerated around a number: a no-break space (`%C2%A0`) makes it malformed, in a
/// form or JSON body and in the client id.
#[tokio::test]
async fn unicode_whitespace_around_numbers_is_refused() {
    let app = spawn().await;
    let buy = |max_price: &str| json!({"method": "market_buy", "id": "1", "partner": "1", "token": "AbCdEfGh", "max_price": max_price});
    assert_error(&app.post_form(buy("120\u{a0}"), "").await, 8, "invalid_max_price");
    assert_error(&app.post_json(buy("\u{2003}120")).await, 8, "invalid_max_price");
    // ASCII padding is still read (the buy then goes on, and fails on the empty balance).
    assert_error(&app.post_form(buy(" 120\t"), "").await, 4, "insufficient_funds");
    let create = json!({"method": "create", "order_id": "nbsp-1", "currency": "usd", "min_amount": "10\u{a0}"});
    assert_error(&app.post_json(create).await, 6, "invalid_min_or_max_amount");
    let mut signed = app.signed(json!({"method": "balance"}));
    signed.insert("shopid".into(), json!(format!(" {}\u{a0}", app.client_id())));
    assert_error(&app.post_raw(&signed).await, -2, "invalid_shopid");
    // The same in the header (refused already as a header that is not visible ASCII; the id parser's own
    // refusal is covered by `ProjectId`'s unit test).
    let nbsp = reqwest::header::HeaderValue::from_bytes(format!("{}\u{a0}", app.client_id()).as_bytes()).unwrap();
    let req = app.http.post(app.api_url()).header("x-client-id", nbsp);
    let resp =
        answer(req.header("x-client-secret", &app.project.client_secret).json(&json!({"method": "balance"}))).await;
    assert_error(&resp, -2, "invalid_shopid");
}

#[tokio::test]
async fn maintenance_blocks_everything_but_status() {
    let app = spawn_with(|c| c.with("maintenance", true).unwrap()).await;
    assert_error(&app.post_json(json!({"method": "balance"})).await, -9, "under_maintenance");
    let body = app.post_json(json!({"method": "status"})).await;
    assert_eq!(body, json!({"status": "success", "available": false, "reason": "site_off"}));
}

#[tokio::test]
async fn runtime_maintenance_switch_is_picked_up_by_refresh() {
    let app = spawn().await;
    app.running.state.store.set_meta(skingate_server::state::MAINTENANCE_KEY, "on").await.unwrap();
    app.running.state.refresh().await.unwrap();
    assert_error(&app.post_json(json!({"method": "balance"})).await, -9, "under_maintenance");
    app.running.state.store.set_meta(skingate_server::state::MAINTENANCE_KEY, "off").await.unwrap();
    app.running.state.refresh().await.unwrap();
    assert_eq!(app.post_json(json!({"method": "balance"})).await["status"], "success");
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let app = spawn().await;
    app.credit("seed", 1_000, 100).await;
    let before = app.running.state.store.project_balance(app.project.id).await.unwrap();
    for body in [b"{".to_vec(), b"method=balance&shopid=1&sign=00".to_vec(), vec![b'x'; 2 << 20]] {
        let _ = raw(&app, None, body).await;
    }
    let _ = app.post_json(json!({"method": "nope", "amount": "5"})).await;
    assert_eq!(app.running.state.store.project_balance(app.project.id).await.unwrap(), before);
}

#[tokio::test]
async fn market_off_outranks_market_parameter_errors() {
    let app = spawn().await;
    // Each market method with missing or bad parameters, and the error it answers while the market is on.
    let calls = [
        (json!({"method": "market_search"}), 1, "name_or_names_required"),
        (json!({"method": "market_getinfo"}), 1, "missing_buy_id"),
        (json!({"method": "market_history"}), 1, "missing_starting_or_ending"),
        (json!({"method": "market_buy", "id": 1}), 3, "missing_partner_or_token"),
        (json!({"method": "market_batch_buy"}), 1, "missing_name_and_id"),
    ];
    for (params, code, message) in &calls {
        assert_error(&app.post_json(params.clone()).await, *code, message);
    }
    app.running.state.store.set_meta(skingate_server::market::MARKET_KEY, "off").await.unwrap();
    for (params, ..) in &calls {
        assert_error(&app.post_json(params.clone()).await, -6, "market_disabled");
    }
    // Well-formed calls too, and the one market method that has no parameter errors.
    assert_error(&app.post_json(json!({"method": "market_pricelist"})).await, -6, "market_disabled");
    assert_error(&app.post_json(json!({"method": "market_getinfo", "buy_id": 1})).await, -6, "market_disabled");
    // The global errors still come first, and only real market methods are switched off.
    assert_error(
        &app.post_raw(&json!({"method": "market_search", "shopid": app.client_id()})).await,
        -3,
        "invalid_signature",
    );
    assert_error(&app.post_json(json!({"method": "market_sell"})).await, -5, "invalid_method");
    assert_error(&app.post_json(json!({"method": "balance_history"})).await, 1, "missing_starting_or_ending");
    app.running.state.store.set_meta(skingate_server::market::MARKET_KEY, "on").await.unwrap();
    for (params, code, message) in &calls {
        assert_error(&app.post_json(params.clone()).await, *code, message);
    }
}

#[tokio::test]
async fn item_asset_ids_as_an_index_keyed_object() {
    let app = spawn().await;
    let user = skingate_steam::SteamId::from_account_id(91_001).unwrap();
    let token = app.running.state.sim.as_deref().unwrap().trade_token(user);
    let call = |order: &str, ids: Value| {
        json!({"method": "create_from_user_inventory", "order_id": order, "steam_id": user.to_string(),
               "trade_token": token, "game": "dota2", "item_asset_ids": ids})
    };
    // A fake id gets past the parameters and is not in the payer's inventory, in either shape.
    assert_error(&app.post_json(call("as-array", json!(["123"]))).await, 6, "items_not_available");
    assert_error(&app.post_json(call("as-object", json!({"0": "123"}))).await, 6, "items_not_available");
    assert_error(&app.post_json(call("as-object-2", json!({"3": "123", "7": 456}))).await, 6, "items_not_available");
    // Each entry is still checked, whatever the shape.
    assert_error(&app.post_json(call("bad-1", json!({"0": "abc"}))).await, 5, "invalid_item_asset_ids");
    assert_error(&app.post_json(call("bad-2", json!({"0": "123", "1": -4}))).await, 5, "invalid_item_asset_ids");
    assert_error(&app.post_json(call("bad-3", json!({}))).await, 5, "invalid_item_asset_ids");
    assert_error(&app.post_json(call("bad-4", json!("123"))).await, 5, "invalid_item_asset_ids");
}

/// The gateway itself calls a deposit's `result_url`, so it must meet the webhook address rules when it is
/// given: a private or metadata address is refused at `create` (and `create_from_user_inventory`), never
/// stored to fail every attempt for days. Nothing is created.
#[tokio::test]
async fn a_private_result_url_is_refused_at_create() {
    use skingate_sdk::deposits::CreateDeposit;
    let app = spawn().await;
    let sdk = app.sdk();
    for (n, url) in ["http://169.254.169.254/latest/meta-data", "http://127.0.0.1:9000/cb", "http://localhost/cb"]
        .into_iter()
        .enumerate()
    {
        let req = CreateDeposit { result_url: Some(url.into()), ..CreateDeposit::default() };
        let err = sdk.create_deposit(&format!("ssrf-{n}"), &req).await.unwrap_err();
        assert_eq!(err.api_message(), Some("invalid_url"), "{url}");
        let mut extra = serde_json::Map::new();
        extra.insert("result_url".into(), json!(url));
        let ids = ["1".to_owned()];
        let err = sdk
            .create_from_user_inventory(&format!("ssrf-i{n}"), "76561198000000001", "tokentok", "rust", &ids, extra)
            .await
            .unwrap_err();
        assert_eq!(err.api_message(), Some("invalid_url"), "{url}");
    }
    assert!(sdk.orders(0, 4_000_000_000, None).await.unwrap().items.is_empty(), "nothing created");
    let req = CreateDeposit { result_url: Some("https://shop.example/cb".into()), ..CreateDeposit::default() };
    sdk.create_deposit("public-1", &req).await.unwrap();
}
