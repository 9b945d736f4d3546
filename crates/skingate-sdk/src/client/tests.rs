//! The client against a one-request server: what goes over the wire and how answers come back.

use std::time::Duration;

use serde_json::{Map, Value, json};
use skingate_types::GlobalError;
use skingate_types::sign::verify_api_sign;

use super::*;
use crate::test_server::{LIMIT, serve_once};

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn signs_like_the_spec_example() {
    let client = Client::new("http://x", "123", "123");
    let sent = client.prepare("orderstatus", params(json!({"order_id": 1, "sign": "forged", "note": null})));
    assert_eq!(sent["sign"], "abee99d476c736102c3d6062807761b6e4d31dd8");
    assert_eq!(sent["shopid"], "123");
    assert!(!sent.contains_key("note"), "nulls are not sent");
    let headers = client.clone().with_auth(Auth::Headers).prepare("balance", Map::new());
    assert_eq!(Value::Object(headers), json!({"method": "balance"}));
}

#[test]
fn form_body_carries_what_was_signed() {
    let client = Client::new("http://x/", "123", "123").with_encoding(Encoding::Form);
    assert_eq!(client.endpoint(), "http://x/api.php");
    let sent = client.prepare("orderstatus", params(json!({"order_id": 1})));
    let (content_type, body) = client.encode_body(&sent);
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    let mut pairs: Vec<String> = body.split('&').map(str::to_owned).collect();
    pairs.sort();
    assert_eq!(
        pairs,
        ["method=orderstatus", "order_id=1", "shopid=123", "sign=abee99d476c736102c3d6062807761b6e4d31dd8"]
    );
}

#[test]
fn debug_hides_the_secret() {
    let shown = format!("{:?}", Client::new("http://x", "7", "top-secret-value"));
    assert!(!shown.contains("top-secret-value") && shown.contains("redacted"), "{shown}");
}

/// Signature mode, JSON body; the answer is a throttling error with the headers tests look for.
#[tokio::test]
async fn json_signature_call_and_error_headers() {
    let body = r#"{"status":"error","error_code":-7,"error_message":"request_limit_reached"}"#;
    let (base, server) =
        serve_once("200 OK", &["Retry-After: 7", "Idempotent-Replayed: true", "content-type: application/json"], body)
            .await;
    let client = Client::new(&base, "123", "123");
    let raw = client.call_raw("orderstatus", params(json!({"order_id": 1})), None).await.unwrap();
    let req = server.await.unwrap();
    assert!(req.head.starts_with("post /api.php http/1.1"), "{}", req.head);
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!((req.header("x-client-id"), req.header("idempotency-key")), (None, None));
    let sent: Map<String, Value> = serde_json::from_str(&req.body).unwrap();
    assert_eq!(
        Value::Object(sent.clone()),
        json!({"method":"orderstatus","order_id":1,"shopid":"123","sign":"abee99d476c736102c3d6062807761b6e4d31dd8"})
    );
    assert!(verify_api_sign("123", &sent, sent["sign"].as_str().unwrap()));
    assert_eq!((raw.status, raw.retry_after(), raw.replayed()), (200, Some(7), true));
    let err = raw.into_result().unwrap_err();
    assert_eq!((err.code(), err.message()), (Some(-7), Some("request_limit_reached")));
    assert_eq!(err.global(), Some(GlobalError::RequestLimitReached));
    assert_eq!(err.retry_after(), Some(7), "typed callers see how long to wait");
}

/// Header mode, form body, idempotency key.
#[tokio::test]
async fn header_auth_form_body_and_idempotency_key() {
    let (base, server) = serve_once("200 OK", &[], r#"{"status":"success","available":true}"#).await;
    let client = Client::new(&base, "7", "s").with_auth(Auth::Headers).with_encoding(Encoding::Form);
    let answer = client
        .call_idempotent("market_batch_buy", params(json!({"custom_ids": ["a", "b"], "items": [{"id": 1}]})), "key-1")
        .await
        .unwrap();
    assert_eq!(answer["available"], true);
    let req = server.await.unwrap();
    assert_eq!(req.header("x-client-id"), Some("7"));
    assert_eq!(req.header("x-client-secret"), Some("s"));
    assert_eq!(req.header("idempotency-key"), Some("key-1"));
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(req.body, "custom_ids%5B%5D=a&custom_ids%5B%5D=b&items%5B0%5D%5Bid%5D=1&method=market_batch_buy");
}

/// A typed call: parameters as numbers, answer with strings, numbers and fields the SDK does not know.
#[tokio::test]
async fn balance_history_typed() {
    let answer = r#"{"status":"success","total_count":1,"has_more":true,"start_from":"12","future":[1],
        "items":[{"id":"12","date":1000,"type":"deposit","amount":"1.5","balance_before":0,"balance_after":"1.5",
        "held_after":"0","in_flight_after":"0","transfer_id":"3","reference":"dep_1"}]}"#;
    let (base, server) = serve_once("200 OK", &[], answer).await;
    let page = Client::new(&base, "1", "s").balance_history(0, 2_000, Some(11)).await.unwrap();
    let sent: Value = serde_json::from_str(&server.await.unwrap().body).unwrap();
    assert_eq!(
        (&sent["method"], &sent["starting"], &sent["ending"]),
        (&json!("balance_history"), &json!(0), &json!(2000))
    );
    assert_eq!(sent["start_from"], 11);
    assert_eq!((page.total_count, page.has_more, page.start_from), (1, true, Some(12)));
    assert_eq!(page.items[0].amount, "1.50".parse().unwrap());
    assert_eq!(page.items[0].reference, "dep_1");
}

#[tokio::test]
async fn typed_call_surfaces_the_envelope() {
    let (base, _server) =
        serve_once("200 OK", &[], r#"{"status":"error","error_code":"-3","error_message":"invalid_signature"}"#).await;
    let err = Client::new(&base, "1", "wrong").balance().await.unwrap_err();
    assert_eq!((err.api_code(), err.api_message()), (Some(-3), Some("invalid_signature")));
}

#[tokio::test]
async fn non_json_answer_is_a_decode_error() {
    let (base, _server) = serve_once("502 Bad Gateway", &[], "<html>bad gateway</html>").await;
    let err = Client::new(&base, "1", "s").status().await.unwrap_err();
    assert!(matches!(&err, Error::Decode { body, .. } if body == "<html>bad gateway</html>"), "{err}");
    assert_eq!(err.code(), None);
}

/// The listener never accepts, so the request is never answered: only the client's timeout ends the call.
#[tokio::test]
async fn timeout_is_reported() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", silent.local_addr().unwrap());
    let client = Client::new(&base, "1", "s").with_timeout(Duration::from_millis(200));
    let err = tokio::time::timeout(LIMIT, client.status()).await.expect("bounded by the client timeout").unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn refused_connection_is_an_http_error() {
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let client = Client::new(&format!("http://127.0.0.1:{port}"), "1", "s");
    let err = tokio::time::timeout(LIMIT, client.call("status", Map::new())).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Http(_)) && !err.is_timeout(), "{err:?}");
}
