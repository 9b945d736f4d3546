//! Both authentication modes and the per-project access rules.

use serde_json::{Value, json};
use skingate_types::sign::{Canonicalization, api_sign};

use crate::utils::{answer, assert_error, spawn, spawn_with};

#[tokio::test]
async fn signature_mode_json_and_form() {
    let app = spawn().await;
    assert_eq!(app.post_json(json!({"method": "balance"})).await["status"], "success");
    // Form body, PHP style, with an unknown extra parameter that is signed like any other.
    let form = app.signed(json!({"method": "balance", "extra": "x y"}));
    let resp: Value = app.http.post(app.api_url()).form(&form).send().await.unwrap().json().await.unwrap();
    assert_eq!(resp["status"], "success", "{resp}");
    // shopid as a JSON number, signature in upper case.
    let mut map = app.signed(json!({"method": "balance"}));
    let sign = map["sign"].as_str().unwrap().to_uppercase();
    map.insert("sign".into(), json!(sign));
    map.insert("shopid".into(), json!(app.project.id.0));
    let resp = app.post_raw(&map).await;
    assert_eq!(resp["status"], "success", "{resp}");
}

/// A multipart body as PHP's curl writes it when `CURLOPT_POSTFIELDS` is an array: one part per field.
fn multipart(fields: &[(&str, Option<&str>, String)]) -> (String, String) {
    let boundary = "------------------------d74496d66958873e";
    let mut body = String::new();
    for (name, file, value) in fields {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""));
        if let Some(file) = file {
            body.push_str(&format!("; filename=\"{file}\"\r\nContent-Type: text/plain"));
        }
        body.push_str(&format!("\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `multipart/form-data` (PHP curl with an array) and `text/plain` (`fetch` with a string body) bodies are
/// read as the vendor's `$_POST` and sniffing read them, signature included.
#[tokio::test]
async fn multipart_and_text_plain_bodies() {
    let app = spawn_with(|c| c.with("body_limit_bytes", 4096).unwrap()).await;
    let send = |content_type: String, body: String| {
        answer(app.http.post(app.api_url()).header("content-type", content_type).body(body))
    };
    let signed = app.signed(json!({"method": "balance_history", "starting": 1, "ending": "2", "note": "a & b=c"}));
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut fields: Vec<(&str, Option<&str>, String)> =
        signed.iter().map(|(k, v)| (k.as_str(), None, text(v))).collect();
    // A nested field is unsigned and does not upset the signature check (how multipart nesting is read, sparse
    // indices included, is checked by body.rs's unit tests).
    fields.push(("custom_ids[3]", None, "x".into()));
    let (ct, body) = multipart(&fields);
    let resp = send(ct, body).await;
    assert_eq!((resp["status"].as_str(), resp["total_count"].as_i64()), (Some("success"), Some(0)), "{resp}");
    // A file part is refused, not dropped.
    let mut with_file = fields.clone();
    with_file.push(("receipt", Some("r.txt"), "hello".into()));
    let (ct, body) = multipart(&with_file);
    assert_error(&send(ct, body).await, -10, "invalid_request_body");
    // The size limit holds for multipart as for any body.
    let mut big = fields.clone();
    big.push(("pad", None, "x".repeat(5000)));
    let (ct, body) = multipart(&big);
    assert_error(&send(ct, body).await, -11, "request_body_too_large");
    assert_error(&send("multipart/form-data".into(), "x".into()).await, -10, "invalid_request_body");

    // text/plain carrying JSON (fetch's default for a string body) or a form.
    let json_body = serde_json::to_string(&app.signed(json!({"method": "balance"}))).unwrap();
    assert_eq!(send("text/plain;charset=UTF-8".into(), json_body).await["status"], "success");
    let form_body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(app.signed(json!({"method": "balance", "x": "1 2"})).iter().map(|(k, v)| (k.clone(), text(v))))
        .finish();
    assert_eq!(send("text/plain".into(), form_body).await["status"], "success");
}

/// A whole float (`10.0`, as PHP's json_encode writes it) is signed as both languages print it, `10`; the SDK
/// signs and sends it the same way in JSON and in form bodies.
#[tokio::test]
async fn whole_floats_verify_in_json_and_form_bodies() {
    let app = spawn().await;
    let mut map = json!({"method": "balance", "shopid": app.client_id(), "x": 10.0}).as_object().cloned().unwrap();
    let php_sign = api_sign(
        &app.project.client_secret,
        &json!({"method": "balance", "shopid": app.client_id(), "x": "10"}).as_object().cloned().unwrap(),
        Canonicalization::Php,
    );
    map.insert("sign".into(), json!(php_sign));
    assert_eq!(app.post_raw(&map).await["status"], "success", "signed as PHP would, over x:10");
    for encoding in [skingate_sdk::Encoding::Json, skingate_sdk::Encoding::Form] {
        let sdk = app.sdk().with_encoding(encoding);
        let params = json!({"x": 10.0, "y": 2.5}).as_object().cloned().unwrap();
        let answer = sdk.call("balance", params).await;
        assert!(answer.is_ok(), "{encoding:?}: {answer:?}");
    }
}

/// A PHP client posting JSON (Laravel `Http::post`): the body carries `json_encode`'s digits of a computed
/// float, the signature PHP's `"$k:$v"` with `precision = 14`, as the vendor re-renders it.
#[tokio::test]
async fn php_clients_sign_json_floats_with_fourteen_digits() {
    let app = spawn().await;
    let secret = &app.project.client_secret;
    for (sent, signed_as) in [(0.1 + 0.2, "0.3"), (3.0 * 1.1, "3.3"), (19.99 * 1.15, "22.9885"), (0.00001, "1.0E-5")] {
        let mut map = json!({"method": "balance", "shopid": app.client_id(), "x": sent}).as_object().cloned().unwrap();
        let mut as_php = map.clone();
        as_php.insert("x".into(), json!(signed_as));
        map.insert("sign".into(), json!(api_sign(secret, &as_php, Canonicalization::Php)));
        let body = serde_json::to_string(&map).unwrap();
        assert_ne!(serde_json::to_string(&map["x"]).unwrap(), signed_as, "the body carries all the digits: {body}");
        let resp = answer(app.http.post(app.api_url()).header("content-type", "application/json").body(body)).await;
        assert_eq!(resp["status"], "success", "{sent:?} signed as {signed_as}: {resp}");
        // A value that differs within the 14 digits is still refused.
        let mut other = map.clone();
        other.insert("x".into(), json!(sent + 1e-9));
        assert_error(&app.post_raw(&other).await, -3, "invalid_signature");
    }
}

#[tokio::test]
async fn php_and_js_renderings_of_booleans_both_verify() {
    let app = spawn().await;
    for canon in [Canonicalization::Js, Canonicalization::Php] {
        let mut map = json!({"method": "balance", "shopid": app.client_id(), "flag": true, "nothing": null})
            .as_object()
            .cloned()
            .unwrap();
        let sign = api_sign(&app.project.client_secret, &map, canon);
        map.insert("sign".into(), json!(sign));
        let resp = app.post_raw(&map).await;
        assert_eq!(resp["status"], "success", "{canon:?}: {resp}");
    }
}

#[tokio::test]
async fn wrong_or_missing_credentials() {
    let app = spawn().await;
    let mut bad = app.signed(json!({"method": "balance"}));
    bad.insert("sign".into(), json!("0000000000000000000000000000000000000000"));
    let resp = app.post_raw(&bad).await;
    assert_error(&resp, -3, "invalid_signature");
    // The signature covers every scalar: changing one after signing breaks it.
    let mut tampered = app.signed(json!({"method": "balance", "note": "a"}));
    tampered.insert("note".into(), json!("b"));
    let resp = app.post_raw(&tampered).await;
    assert_error(&resp, -3, "invalid_signature");
    for body in [
        json!({"method": "balance"}),
        json!({"method": "balance", "shopid": "999999", "sign": "ab"}),
        json!({"method": "balance", "shopid": "abc", "sign": "ab"}),
        json!({"method": "balance", "shopid": ["1"], "sign": "ab"}),
    ] {
        let resp = app.post_raw(&body).await;
        assert_error(&resp, -2, "invalid_shopid");
    }
    let resp = app.post_raw(&json!({"method": "balance", "shopid": app.client_id()})).await;
    assert_error(&resp, -3, "invalid_signature");
}

#[tokio::test]
async fn header_mode() {
    let app = spawn().await;
    let call = |id: String, secret: &str| {
        app.http
            .post(app.api_url())
            .header("X-CLIENT-ID", id)
            .header("X-CLIENT-SECRET", secret)
            .form(&[("method", "balance")])
            .send()
    };
    let ok: Value = call(app.client_id(), "test-secret").await.unwrap().json().await.unwrap();
    assert_eq!(ok["status"], "success");
    let bad: Value = call(app.client_id(), "test-secreT").await.unwrap().json().await.unwrap();
    assert_error(&bad, -3, "invalid_signature");
    let unknown: Value = call("4242".into(), "test-secret").await.unwrap().json().await.unwrap();
    assert_error(&unknown, -2, "invalid_shopid");
}

#[tokio::test]
async fn rotated_secret_stops_working() {
    let mut app = spawn().await;
    app.project.client_secret = "new-secret".into();
    app.update(|_| {}).await;
    let old = skingate_sdk::Client::new(&app.running.base_url(), &app.client_id(), "test-secret");
    let err = old.balance().await.unwrap_err();
    assert_eq!(err.api_code(), Some(-3));
    assert!(app.sdk().balance().await.is_ok());
}

#[tokio::test]
async fn inactive_project() {
    let mut app = spawn().await;
    app.update(|s| s.active = false).await;
    assert_error(&app.post_json(json!({"method": "balance"})).await, -4, "shop_not_active");
    // A wrong signature on an inactive project still says only that the signature is wrong.
    let resp = app.post_raw(&json!({"method": "balance", "shopid": app.client_id(), "sign": "00"})).await;
    assert_error(&resp, -3, "invalid_signature");
}

#[tokio::test]
async fn ip_allow_list() {
    let mut app = spawn().await;
    app.update(|s| s.ip_allowlist = vec!["10.0.0.0/8".parse().unwrap()]).await;
    assert_error(&app.post_json(json!({"method": "balance"})).await, -8, "invalid_ip_address");
    // A forged X-Forwarded-For from an untrusted peer is ignored.
    let body = app.signed(json!({"method": "balance"}));
    let resp = answer(app.http.post(app.api_url()).header("x-forwarded-for", "10.1.2.3").json(&body)).await;
    assert_error(&resp, -8, "invalid_ip_address");
    // The event stream is bound by the same list: a valid signature from elsewhere is not enough.
    let (_, first) = crate::utils::ws_connect(&app.ws_url("")).await;
    assert_eq!(first, json!({"event": "auth_failed"}));
    app.update(|s| s.ip_allowlist = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()]).await;
    assert_eq!(app.post_json(json!({"method": "balance"})).await["status"], "success");
    let (_, first) = crate::utils::ws_connect(&app.ws_url("")).await;
    assert_eq!(first, json!({"event": "auth_success"}));
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy() {
    let mut app = spawn_with(|c| c.with("trusted_proxies", ["127.0.0.1/32"]).unwrap()).await;
    app.update(|s| s.ip_allowlist = vec!["203.0.113.0/24".parse().unwrap()]).await;
    let body = app.signed(json!({"method": "balance"}));
    let via = |ip: &'static str| app.http.post(app.api_url()).header("x-forwarded-for", ip).json(&body).send();
    let ok: Value = via("203.0.113.7").await.unwrap().json().await.unwrap();
    assert_eq!(ok["status"], "success", "{ok}");
    let refused: Value = via("198.51.100.7").await.unwrap().json().await.unwrap();
    assert_error(&refused, -8, "invalid_ip_address");
}

#[tokio::test]
async fn rate_limit_per_project_with_retry_after() {
    let mut app = spawn().await;
    app.update(|s| s.rate_limit_per_min = 3).await;
    for _ in 0..3 {
        assert_eq!(app.post_json(json!({"method": "balance"})).await["status"], "success");
    }
    let body = app.signed(json!({"method": "balance"}));
    let resp = app.http.post(app.api_url()).json(&body).send().await.unwrap();
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_error(&resp.json().await.unwrap(), -7, "request_limit_reached");
    // Another project has its own budget.
    let other = app
        .running
        .state
        .store
        .create_project(&skingate_core::project::ProjectSettings::named("Other"), "s2", 0)
        .await
        .unwrap();
    let sdk = skingate_sdk::Client::new(&app.running.base_url(), &other.client_id(), "s2");
    assert!(sdk.balance().await.is_ok());
}

/// A typed SDK call refused with `-7` carries the server's `Retry-After`, so a merchant can back off.
#[tokio::test]
async fn typed_calls_see_retry_after_when_throttled() {
    let mut app = spawn().await;
    app.update(|s| s.rate_limit_per_min = 1).await;
    let sdk = app.sdk();
    sdk.balance().await.unwrap();
    let err = sdk.balance().await.unwrap_err();
    assert_eq!(err.global(), Some(skingate_types::GlobalError::RequestLimitReached), "{err}");
    let wait = err.retry_after().expect("Retry-After on the typed error");
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(matches!(&err, skingate_sdk::Error::Api(api) if api.retry_after == Some(wait) && api.error_code == -7));
}
