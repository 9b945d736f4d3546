//! The API client: builds, signs, encodes and sends calls, and parses the envelope.

use std::fmt;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use skingate_types::api::{
    self, AttemptsResponse, BalanceHistoryItem, BalanceResponse, CurrenciesResponse, DeliveryItem, Page,
    RescheduledResponse, StatusResponse,
};
use skingate_types::sign::{Canonicalization, SIGN_PARAM, api_sign};

use crate::response::{RawResponse, decode, parse_body};
use crate::{Error, form};

/// Timeout of a whole call (connect, send, receive) unless [`Client::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Client::new`]'s connection pool keeps an idle connection: below the gateway's idle limit for
/// kept-alive connections (30 s by default), which closes them from its side.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Header carrying the caller's idempotency key: a gateway that supports it (skingate does) executes a
/// call at most once per key and replays the stored answer for repeats.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How the client proves who it is (spec §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// `shopid` + `sign` (HMAC-SHA1, spec §2.1) in the body: works with every SkinsBack-compatible gateway,
    /// and the secret never travels.
    #[default]
    Signature,
    /// `X-CLIENT-ID` / `X-CLIENT-SECRET` headers: no signing, but the secret is sent with every call, so
    /// only use it over HTTPS.
    Headers,
}

/// How request bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `application/json`: what the vendor's own clients send.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` with PHP-style nesting (see [`crate::form`]), for gateways or
    /// proxies that only read `$_POST`.
    Form,
}

/// A client for one project on one gateway. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    secret: String,
    auth: Auth,
    encoding: Encoding,
    timeout: Option<Duration>,
}

/// Written by hand so the client secret never ends up in a log.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("auth", &self.auth)
            .field("encoding", &self.encoding)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `base_url` (e.g. `https://gateway.example`; `/api.php` is appended) with signature auth,
    /// JSON bodies and a [`DEFAULT_TIMEOUT`]. Nothing is sent until the first call.
    ///
    /// # Panics
    /// Like [`reqwest::Client::new`], when the TLS backend or the system resolver cannot be initialised;
    /// use [`Client::with_http_client`] to build the HTTP client yourself and handle that.
    ///
    /// Idle pooled connections are let go after [`POOL_IDLE_TIMEOUT`], before the gateway's own idle limit
    /// (`http_header_timeout_ms`, 30 s), so a call is not sent on a connection the gateway is closing.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .expect("a reqwest client with default TLS and resolver builds, as reqwest::Client::new assumes");
        Self {
            http,
            endpoint: format!("{}/api.php", base_url.trim_end_matches('/')),
            client_id: client_id.to_owned(),
            secret: client_secret.to_owned(),
            auth: Auth::default(),
            encoding: Encoding::default(),
            timeout: Some(DEFAULT_TIMEOUT),
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

    /// Limits each call (connect, send and the whole answer) to `timeout`; vendor clients give up after 5 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Removes the per-call timeout, leaving only the HTTP client's own (none by default).
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Uses a caller-configured HTTP client (proxies, TLS roots, pool settings). The per-call timeout of
    /// [`Client::with_timeout`] still applies on top of it.
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The URL every call is POSTed to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The parameters exactly as they will be sent: `method` added, top-level `null`s dropped (the two
    /// signature renderings disagree on them, spec §2.1), and in signature mode `shopid` + `sign`.
    pub fn prepare(&self, method: &str, mut params: Map<String, Value>) -> Map<String, Value> {
        params.retain(|_, v| !v.is_null());
        params.insert("method".into(), json!(method));
        if self.auth == Auth::Signature {
            params.insert("shopid".into(), json!(self.client_id));
            let sign = api_sign(&self.secret, &params, Canonicalization::Js);
            params.insert(SIGN_PARAM.into(), json!(sign));
        }
        params
    }

    /// The `Content-Type` and body for prepared parameters, in the configured encoding.
    pub fn encode_body(&self, params: &Map<String, Value>) -> (&'static str, String) {
        match self.encoding {
            Encoding::Json => ("application/json", Value::Object(params.clone()).to_string()),
            Encoding::Form => ("application/x-www-form-urlencoded", form::encode(params)),
        }
    }

    /// Sends a call and returns the answer with its status and headers, whatever its envelope says (use
    /// [`RawResponse::into_result`] to apply it). `idempotency_key` is sent as the `Idempotency-Key`
    /// header. Fails only when nothing usable came back: transport errors and non-JSON bodies.
    pub async fn call_raw(
        &self,
        method: &str,
        params: Map<String, Value>,
        idempotency_key: Option<&str>,
    ) -> Result<RawResponse, Error> {
        let request = self.request(method, params, idempotency_key);
        let resp = request.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        Ok(RawResponse { status, headers, body: parse_body(&bytes)? })
    }

    /// Builds the HTTP request of a call: auth, encoding, timeout and idempotency key applied.
    fn request(&self, method: &str, params: Map<String, Value>, key: Option<&str>) -> reqwest::RequestBuilder {
        let (content_type, body) = self.encode_body(&self.prepare(method, params));
        let mut req = self.http.post(&self.endpoint).header(CONTENT_TYPE, content_type).body(body);
        if self.auth == Auth::Headers {
            req = req.header("X-CLIENT-ID", &self.client_id).header("X-CLIENT-SECRET", &self.secret);
        }
        if let Some(key) = key {
            req = req.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(timeout) = self.timeout {
            req = req.timeout(timeout);
        }
        req
    }

    /// The escape hatch for any method: the error envelope becomes [`Error::Api`], any other JSON body is
    /// returned as is (including `orderstatus`, whose `status` is the deposit's).
    pub async fn call(&self, method: &str, params: Map<String, Value>) -> Result<Value, Error> {
        self.call_raw(method, params, None).await?.into_result()
    }

    /// Like [`Client::call`], with an `Idempotency-Key`: retrying with the same key after a timeout cannot
    /// buy or credit twice on a gateway that honours it. Use [`Client::call_raw`] to see whether the answer
    /// was replayed.
    pub async fn call_idempotent(&self, method: &str, params: Map<String, Value>, key: &str) -> Result<Value, Error> {
        self.call_raw(method, params, Some(key)).await?.into_result()
    }

    pub(crate) async fn typed<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<T, Error> {
        self.typed_keyed(method, params, None).await
    }

    /// [`Client::typed`] with an optional `Idempotency-Key` header, for the typed writes a retry must not repeat.
    pub(crate) async fn typed_keyed<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Map<String, Value>,
        idempotency_key: Option<&str>,
    ) -> Result<T, Error> {
        decode(self.call_raw(method, params, idempotency_key).await?.into_result()?)
    }

    /// `status`: whether the gateway is open for business (spec §6.4).
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        self.typed(api::method::STATUS, Map::new()).await
    }

    /// `balance`: spendable balance and lifetime totals, in USD and every currency (spec §6.1).
    pub async fn balance(&self) -> Result<BalanceResponse, Error> {
        self.typed(api::method::BALANCE, Map::new()).await
    }

    /// `currencies`: the rates table, units per USD (spec §6.3).
    pub async fn currencies(&self) -> Result<CurrenciesResponse, Error> {
        self.typed(api::method::CURRENCIES, Map::new()).await
    }

    /// `balance_history`: ledger entries between two Unix times (inclusive), paged by `start_from` (pass
    /// the previous page's [`Page::start_from`]).
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

/// skingate's own methods for the events webhook; other gateways answer them with `-5 invalid_method`.
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
mod tests;
