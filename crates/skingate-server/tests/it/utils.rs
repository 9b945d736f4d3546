//! `TestApp`: one gateway per test, with a project whose secret the test knows.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use skingate_core::ledger::{AccountKind, Phase, TransferCode, TransferId, TransferSpec};
use skingate_core::project::{Project, ProjectSettings};
use skingate_core::Money;
use skingate_server::clock::SystemClock;
use skingate_server::{Config, Running};
use skingate_types::sign::{Canonicalization, api_sign};

/// A running gateway and the project the test acts as.
pub struct TestApp {
    pub running: Running,
    pub project: Project,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Starts a gateway with test defaults, changed by `tweak`.
pub async fn spawn_with(tweak: impl FnOnce(Config) -> Config) -> TestApp {
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
    let running = skingate_server::start(tweak(config), Arc::new(SystemClock)).await.unwrap();
    let project =
        running.state.store.create_project(&ProjectSettings::named("Test shop"), "test-secret", 0).await.unwrap();
    TestApp { running, project, http: reqwest::Client::new(), _dir: dir }
}

/// Starts a gateway with test defaults.
pub async fn spawn() -> TestApp {
    spawn_with(|c| c).await
}

impl TestApp {
    pub fn api_url(&self) -> String {
        format!("{}/api.php", self.running.base_url())
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

    /// POSTs a signed JSON body and returns the parsed answer.
    pub async fn post_json(&self, params: Value) -> Value {
        let body = self.signed(params);
        let resp = self.http.post(self.api_url()).json(&body).send().await.unwrap();
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
pub fn assert_error(body: &Value, code: i64, message: &str) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    assert_eq!(body["error_message"], message, "{body}");
}
