//! The API client.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use skingate_types::ErrorBody;
use skingate_types::api::{
    self, AttemptsResponse, BalanceHistoryItem, BalanceResponse, CurrenciesResponse, DeliveryItem, Page,
    RescheduledResponse, StatusResponse,
};
use skingate_types::envelope::STATUS_ERROR;
use skingate_types::sign::{Canonicalization, SIGN_PARAM, api_sign};

use crate::{Error, form};

/// How the client proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// `shopid` + `sign` (HMAC-SHA1) in the body: works with every SkinsBack-compatible gateway.
    #[default]
    Signature,
    /// `X-CLIENT-ID` / `X-CLIENT-SECRET` headers: simpler, no signing.
    Headers,
}

/// How request bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, PHP-style nesting.
    Form,
}

/// An answer as received, for callers that need headers (`Retry-After`, `Idempotent-Replayed`).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status (the API answers 200 even for errors).
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The parsed JSON body.
    pub body: Value,
}

impl RawResponse {
    /// The body as a result: the error envelope becomes [`Error::Api`].
    pub fn into_result(self) -> Result<Value, Error> {
        if self.body.get("status").and_then(Value::as_str) == Some(STATUS_ERROR) {
            let parsed: ErrorBody = decode(self.body)?;
            return Err(Error::Api(parsed));
        }
        Ok(self.body)
    }
}

fn decode<T: DeserializeOwned>(body: Value) -> Result<T, Error> {
    serde_json::from_value(body.clone()).map_err(|source| {
        let mut text = body.to_string();
        text.truncate(500);
        Error::Decode { body: text, source }
    })
}

/// A client for one project on one gateway. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    secret: String,
    auth: Auth,
    encoding: Encoding,
}

impl Client {
    /// A client for `base_url` (e.g. `https://gateway.example`; `/api.php` is appended) with signature auth,
    /// JSON bodies and a 30 s timeout.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            endpoint: format!("{}/api.php", base_url.trim_end_matches('/')),
            client_id: client_id.to_owned(),
            secret: client_secret.to_owned(),
            auth: Auth::default(),
            encoding: Encoding::default(),
        }
    }

    /// Uses another authentication mode.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Uses another body encoding.
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Uses a caller-configured HTTP client (timeouts, proxies, TLS).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The parameters as they will be sent: `method` added, and `shopid` + `sign` in signature mode.
    pub fn prepare(&self, method: &str, mut params: Map<String, Value>) -> Map<String, Value> {
        params.insert("method".into(), json!(method));
        if self.auth == Auth::Signature {
            params.insert("shopid".into(), json!(self.client_id));
            let sign = api_sign(&self.secret, &params, Canonicalization::Js);
            params.insert(SIGN_PARAM.into(), json!(sign));
        }
        params
    }

    /// Sends a call and returns the answer with its headers, whatever its status. `idempotency_key` is
    /// sent as the `Idempotency-Key` header.
    pub async fn call_raw(
        &self,
        method: &str,
        params: Map<String, Value>,
        idempotency_key: Option<&str>,
    ) -> Result<RawResponse, Error> {
        let params = self.prepare(method, params);
        let (content_type, body) = match self.encoding {
            Encoding::Json => ("application/json", Value::Object(params).to_string()),
            Encoding::Form => ("application/x-www-form-urlencoded", form::encode(&params)),
        };
        let mut req = self.http.post(&self.endpoint).header(CONTENT_TYPE, content_type).body(body);
        if self.auth == Auth::Headers {
            req = req.header("X-CLIENT-ID", &self.client_id).header("X-CLIENT-SECRET", &self.secret);
        }
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
            source,
        })?;
        Ok(RawResponse { status, headers, body })
    }

    /// Sends a call; the error envelope becomes [`Error::Api`], anything else is returned as JSON.
    pub async fn call(&self, method: &str, params: Map<String, Value>) -> Result<Value, Error> {
        self.call_raw(method, params, None).await?.into_result()
    }

    async fn typed<T: DeserializeOwned>(&self, method: &str, params: Map<String, Value>) -> Result<T, Error> {
        decode(self.call(method, params).await?)
    }

    /// `status`: whether the gateway is open.
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        self.typed(api::method::STATUS, Map::new()).await
    }

    /// `balance`: spendable balance and totals.
    pub async fn balance(&self) -> Result<BalanceResponse, Error> {
        self.typed(api::method::BALANCE, Map::new()).await
    }

    /// `currencies`: the rates table.
    pub async fn currencies(&self) -> Result<CurrenciesResponse, Error> {
        self.typed(api::method::CURRENCIES, Map::new()).await
    }

    /// `balance_history`: ledger entries between two Unix times, paged by `start_from`.
    pub async fn balance_history(
        &self,
        starting: i64,
        ending: i64,
        start_from: Option<i64>,
    ) -> Result<Page<BalanceHistoryItem>, Error> {
        let mut params = Map::new();
        params.insert("starting".into(), json!(starting));
        params.insert("ending".into(), json!(ending));
        if let Some(cursor) = start_from {
            params.insert("start_from".into(), json!(cursor));
        }
        self.typed(api::method::BALANCE_HISTORY, params).await
    }
}

impl Client {
    /// `webhook_deliveries`: events-webhook deliveries, newest first; `state` filters, `start_from` pages.
    pub async fn webhook_deliveries(
        &self,
        state: Option<&str>,
        start_from: Option<i64>,
    ) -> Result<Page<DeliveryItem>, Error> {
        let mut params = Map::new();
        if let Some(state) = state {
            params.insert("state".into(), json!(state));
        }
        if let Some(cursor) = start_from {
            params.insert("start_from".into(), json!(cursor));
        }
        self.typed(api::method::WEBHOOK_DELIVERIES, params).await
    }

    /// `webhook_attempts`: every attempt of one delivery.
    pub async fn webhook_attempts(&self, delivery_id: &str) -> Result<AttemptsResponse, Error> {
        let mut params = Map::new();
        params.insert("delivery_id".into(), json!(delivery_id));
        self.typed(api::method::WEBHOOK_ATTEMPTS, params).await
    }

    /// `webhook_resend`: deliver one event again now.
    pub async fn webhook_resend(&self, delivery_id: &str) -> Result<RescheduledResponse, Error> {
        let mut params = Map::new();
        params.insert("delivery_id".into(), json!(delivery_id));
        self.typed(api::method::WEBHOOK_RESEND, params).await
    }

    /// `webhook_recover`: deliver again every failed delivery created since `since` (Unix seconds).
    pub async fn webhook_recover(&self, since: i64) -> Result<RescheduledResponse, Error> {
        let mut params = Map::new();
        params.insert("since".into(), json!(since));
        self.typed(api::method::WEBHOOK_RECOVER, params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn signs_like_the_spec_example() {
        let client = Client::new("http://x", "123", "123");
        let mut params = Map::new();
        params.insert("order_id".into(), json!(1));
        let sent = client.prepare("orderstatus", params);
        assert_eq!(sent["sign"], "abee99d476c736102c3d6062807761b6e4d31dd8");
        assert_eq!(sent["shopid"], "123");
        let headers = Client::new("http://x", "123", "123").with_auth(Auth::Headers);
        assert!(!headers.prepare("balance", Map::new()).contains_key("sign"));
    }

    #[test]
    fn lenient_bodies_parse() {
        for body in [
            json!({"status":"success","balance":10.5,"deals_sum":0,"withdraw_sum":"0.00","extra":{"x":1}}),
            json!({"status":"success","balance":"10.50","deals_sum":"0","withdraw_sum":0,
                   "balance_in_currencies":{"rub":971.25}}),
        ] {
            let b: BalanceResponse = decode(body).unwrap();
            assert_eq!(b.balance, "10.5".parse().unwrap());
        }
        let page: Page<BalanceHistoryItem> = decode(json!({"status":"success","total_count":"1","has_more":0,
            "start_from":"9","items":[{"id":9,"date":"5","type":"something_new","amount":"-1",
            "balance_before":"1","balance_after":0,"held_after":0,"in_flight_after":0,"transfer_id":7}]}))
        .unwrap();
        assert_eq!((page.total_count, page.has_more, page.start_from), (1, false, Some(9)));
        assert_eq!(page.items[0].kind, "something_new");
        let err = RawResponse {
            status: 200,
            headers: HeaderMap::new(),
            body: json!({"status":"error","error_code":"-3","error_message":"invalid_signature"}),
        };
        let e = err.into_result().unwrap_err();
        assert_eq!((e.api_code(), e.api_message()), (Some(-3), Some("invalid_signature")));
    }

    /// What goes over the wire: one request read by a tiny server on port 0.
    #[tokio::test]
    async fn sends_headers_and_form_bodies() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            while !String::from_utf8_lossy(&buf[..len]).contains("method=balance") {
                len += sock.read(&mut buf[len..]).await.unwrap();
            }
            let body = r#"{"status":"success","available":true}"#;
            let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            sock.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..len]).into_owned()
        });
        let client =
            Client::new(&format!("http://{addr}"), "7", "s").with_auth(Auth::Headers).with_encoding(Encoding::Form);
        let raw = client.call_raw("balance", Map::new(), Some("key-1")).await.unwrap();
        assert_eq!(raw.body["available"], true);
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("post /api.php http/1.1"), "{request}");
        for needle in
            ["x-client-id: 7", "x-client-secret: s", "idempotency-key: key-1", "application/x-www-form-urlencoded"]
        {
            assert!(request.contains(needle), "{needle} in {request}");
        }
    }
}
