//! `TestApp`: one gateway per test, with a project whose secret the test knows.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use skingate_core::Money;
use skingate_core::ledger::{AccountKind, Phase, TransferCode, TransferId, TransferSpec};
use skingate_core::project::{Project, ProjectSettings};
use skingate_server::clock::{Clock, SystemClock};
use skingate_server::{Config, Running};
use skingate_types::sign::{Canonicalization, api_sign};

/// A running gateway and the project the test acts as.
pub struct TestApp {
    pub running: Running,
    pub project: Project,
    pub http: reqwest::Client,
    config: Config,
    clock: Arc<dyn Clock>,
    _dir: tempfile::TempDir,
}

/// Starts a gateway with test defaults, changed by `tweak`.
pub async fn spawn_with(tweak: impl FnOnce(Config) -> Config) -> TestApp {
    spawn_with_clock(tweak, Arc::new(SystemClock)).await
}

/// Starts a gateway whose clock the test controls.
pub async fn spawn_with_clock(tweak: impl FnOnce(Config) -> Config, clock: Arc<dyn Clock>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::defaults()
        .with("listen", "127.0.0.1:0")
        .unwrap()
        .with("database_url", format!("sqlite://{}", dir.path().join("gate.db").display()))
        .unwrap()
        .with("demo_project", false)
        .unwrap()
        .with("project_cache_ttl_ms", 0)
        .unwrap();
    let config = tweak(config);
    let running = skingate_server::start(config.clone(), clock.clone()).await.unwrap();
    let project =
        running.state.store.create_project(&ProjectSettings::named("Test shop"), "test-secret", 0).await.unwrap();
    TestApp { running, project, http: reqwest::Client::new(), config, clock, _dir: dir }
}

/// Starts a gateway with test defaults.
pub async fn spawn() -> TestApp {
    spawn_with(|c| c).await
}

impl TestApp {
    /// Stops the server, runs `between` with the database URL while nothing serves, and starts a new
    /// server on the same database (and a new port).
    pub async fn restart_after(self, between: impl AsyncFnOnce(String)) -> TestApp {
        let TestApp { running, project, http, config, clock, _dir } = self;
        running.stop().await.unwrap();
        between(config.database_url.clone()).await;
        let running = skingate_server::start(config.clone(), clock.clone()).await.unwrap();
        TestApp { running, project, http, config, clock, _dir }
    }

    /// Another project of the gateway, whose events webhook is `events_url`.
    pub async fn other_project(&self, name: &str, events_url: &str) -> Project {
        let mut settings = ProjectSettings::named(name);
        settings.events_url = Some(events_url.to_owned());
        self.running.state.store.create_project(&settings, "other-secret", 0).await.unwrap()
    }

    /// Sets the test project's events webhook URL.
    pub async fn set_events_url(&mut self, url: &str) {
        self.update(|s| s.events_url = Some(url.to_owned())).await;
    }

    /// Credits (or debits) through the operator-adjustment path, which emits `balance_change`.
    pub async fn try_adjust(
        &self,
        credit: bool,
        minor: i64,
        id: &str,
    ) -> Result<skingate_server::adjustments::Adjusted, skingate_server::adjustments::AdjustError> {
        self.try_adjust_for(self.project.id, credit, minor, id).await
    }

    /// [`TestApp::try_adjust`] for any project of the gateway.
    pub async fn try_adjust_for(
        &self,
        project: skingate_core::project::ProjectId,
        credit: bool,
        minor: i64,
        id: &str,
    ) -> Result<skingate_server::adjustments::Adjusted, skingate_server::adjustments::AdjustError> {
        let state = &self.running.state;
        let p = state.store.project(project).await.unwrap().unwrap();
        let done = skingate_server::adjustments::adjust(
            state.store.as_ref(),
            &p,
            credit,
            Money::from_minor(minor),
            "test",
            id,
            state.now(),
        )
        .await?;
        state.events_committed();
        Ok(done)
    }

    /// [`TestApp::try_adjust`] that must succeed.
    pub async fn adjust(&self, credit: bool, minor: i64, id: &str) -> skingate_server::adjustments::Adjusted {
        self.try_adjust(credit, minor, id).await.unwrap()
    }

    /// A WebSocket URL for the test project (signature = md5(id + secret)).
    pub fn ws_url(&self, extra: &str) -> String {
        let sig = skingate_types::sign::static_sign(&self.client_id(), &self.project.client_secret);
        format!("ws://{}/ws/?shopid={}&signature={sig}{extra}", self.running.addr, self.client_id())
    }

    pub fn api_url(&self) -> String {
        format!("{}/api.php", self.running.base_url())
    }

    /// The database this gateway runs on, for tests that reach under it (fault injection).
    pub fn database_url(&self) -> &str {
        &self.config.database_url
    }

    pub fn client_id(&self) -> String {
        self.project.client_id()
    }

    /// An SDK client for the test project.
    pub fn sdk(&self) -> skingate_sdk::Client {
        skingate_sdk::Client::new(&self.running.base_url(), &self.client_id(), &self.project.client_secret)
    }

    /// Changes the test project's settings directly in storage.
    pub async fn update(&mut self, f: impl FnOnce(&mut ProjectSettings)) {
        f(&mut self.project.settings);
        self.running.state.store.update_project(&self.project, 0).await.unwrap();
    }

    /// Signs `params` (adding `shopid`) the way a legacy client does.
    pub fn signed(&self, params: Value) -> Map<String, Value> {
        let mut map = params.as_object().cloned().unwrap();
        map.insert("shopid".into(), json!(self.client_id()));
        let sign = api_sign(&self.project.client_secret, &map, Canonicalization::Js);
        map.insert("sign".into(), json!(sign));
        map
    }

    /// POSTs `body` as JSON exactly as given (no signing) and returns the parsed answer.
    pub async fn post_raw(&self, body: &impl serde::Serialize) -> Value {
        self.http.post(self.api_url()).json(body).send().await.unwrap().json().await.unwrap()
    }

    /// POSTs a signed JSON body and returns the parsed answer.
    pub async fn post_json(&self, params: Value) -> Value {
        let body = self.signed(params);
        let resp = self.http.post(self.api_url()).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// POSTs a signed form body as PHP's `http_build_query` writes it: the scalars of `params`, signed, then
    /// `nested` as written (bracketed keys, which the signature skips).
    pub async fn post_form(&self, params: Value, nested: &str) -> Value {
        let signed = self.signed(params);
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &signed {
            form.append_pair(k, v.as_str().map_or_else(|| v.to_string(), str::to_owned).as_str());
        }
        let mut body = form.finish();
        if !nested.is_empty() {
            body = format!("{body}&{nested}");
        }
        let resp = self
            .http
            .post(self.api_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Credits the project through the ledger, as an operator adjustment would.
    pub async fn credit(&self, id: &str, minor: i64, at: i64) {
        let mut tx = self.running.state.store.begin().await.unwrap();
        let spec = TransferSpec {
            id: TransferId(id.into()),
            debit: tx.system_account(AccountKind::OperatorAdjustments).await.unwrap(),
            credit: tx.project_account(self.project.id).await.unwrap(),
            amount: Money::from_minor(minor),
            phase: Phase::Posted,
            code: TransferCode::Adjustment,
            allow_overdraft: false,
            reference: format!("test credit {id}"),
        };
        tx.transfer(&spec, at).await.unwrap();
        tx.commit().await.unwrap();
    }
}

/// Asserts an error envelope with this code and message.
/// Sends a request built by the test (its own headers or body) and parses the JSON answer.
pub async fn answer(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

pub fn assert_error(body: &Value, code: i64, message: &str) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    assert_eq!(body["error_message"], message, "{body}");
}

/// A merchant endpoint on port 0 that records every request and answers with scripted statuses.
pub struct Receiver {
    pub url: String,
    requests: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, bytes::Bytes)>>,
    statuses: Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
    slow: Arc<std::sync::atomic::AtomicUsize>,
    refusals: Arc<std::sync::Mutex<Vec<String>>>,
}

/// One request the receiver got.
pub struct Received {
    pub headers: axum::http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or_else(|| panic!("header {name} missing"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Receiver {
    /// Starts the receiver; it answers 200 unless told otherwise.
    pub async fn start() -> Receiver {
        Self::start_slow(0, std::time::Duration::ZERO).await
    }

    /// Starts a receiver whose first `slow` answers take `delay` each (a slow merchant endpoint).
    pub async fn start_slow(slow: usize, delay: std::time::Duration) -> Receiver {
        let slow = Arc::new(std::sync::atomic::AtomicUsize::new(slow));
        let slow_left = slow.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let statuses = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let script = statuses.clone();
        let refusals = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let refuse = refusals.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            let script = script.clone();
            let slow = slow.clone();
            let refuse = refuse.clone();
            async move {
                let refused = {
                    let mut refuse = refuse.lock().unwrap();
                    let text = String::from_utf8_lossy(&body);
                    let hit = refuse.iter().position(|needle| text.contains(needle.as_str()));
                    hit.map(|i| refuse.remove(i)).is_some()
                };
                let _ = tx.send((headers, body));
                if refused {
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "refused once");
                }
                let take = |n: usize| n.checked_sub(1);
                if slow
                    .fetch_update(std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire, take)
                    .is_ok()
                {
                    tokio::time::sleep(delay).await;
                }
                let status = script.lock().unwrap().pop_front().unwrap_or(200);
                (axum::http::StatusCode::from_u16(status).unwrap(), "receiver says hi")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, requests: tokio::sync::Mutex::new(rx), statuses, slow: slow_left, refusals }
    }

    /// Answers 500 to the next request whose body contains `needle` (once), whatever order requests come in.
    pub fn refuse_once(&self, needle: &str) {
        self.refusals.lock().unwrap().push(needle.to_owned());
    }

    /// Answers at once from now on (ends [`Receiver::start_slow`]'s slow answers).
    pub fn answer_fast(&self) {
        self.slow.store(0, std::sync::atomic::Ordering::Release);
    }

    /// The next answers, in order (then 200).
    pub fn answer_with(&self, statuses: &[u16]) {
        self.statuses.lock().unwrap().extend(statuses);
    }

    /// The next request, waiting at most 10 s.
    pub async fn next(&self) -> Received {
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), self.requests.lock().await.recv()).await;
        let (headers, body) = got.expect("a webhook within 10 s").expect("receiver running");
        Received { headers, body }
    }

    /// Whether a request is already waiting.
    pub async fn try_next(&self) -> Option<Received> {
        self.requests.lock().await.try_recv().ok().map(|(headers, body)| Received { headers, body })
    }
}

/// A raw WebSocket client.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and returns the socket and its first frame.
pub async fn ws_connect(url: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let first = ws_next(&mut ws).await;
    (ws, first)
}

/// The next text frame as JSON (10 s at most); panics on close.
pub async fn ws_next(ws: &mut Ws) -> Value {
    use futures::StreamExt;
    loop {
        let msg =
            tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.expect("a frame within 10 s");
        match msg.expect("socket open").unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            tokio_tungstenite::tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Waits for the close frame and returns its code.
pub async fn ws_close_code(ws: &mut Ws) -> u16 {
    use futures::StreamExt;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.expect("close within 10 s");
        match msg {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(None))) | None => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(_)) => return 1006,
        }
    }
}

/// An injected storage fault: while it is on, the statement a trigger names fails inside the gateway's own
/// transaction (how tests reach failure paths of the real code, like a write failing after Steam answered).
pub struct Fault {
    db: sqlx::SqliteConnection,
}

impl Fault {
    /// Refuses `event` (e.g. `BEFORE UPDATE ON purchases`) when `when` holds, from now until [`Fault::clear`].
    pub async fn inject(database_url: &str, event: &str, when: &str) -> Fault {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::query("INSERT INTO meta (key, value) VALUES ('test_fault', '1')").execute(&mut db).await.unwrap();
        let trigger = format!(
            "CREATE TRIGGER test_fault {event} WHEN ({when}) AND EXISTS (SELECT 1 FROM meta WHERE key = 'test_fault')
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        );
        sqlx::query(sqlx::AssertSqlSafe(trigger)).execute(&mut db).await.unwrap();
        Fault { db }
    }

    /// Ends the fault.
    pub async fn clear(mut self) {
        sqlx::query("DELETE FROM meta WHERE key = 'test_fault'").execute(&mut self.db).await.unwrap();
    }
}
