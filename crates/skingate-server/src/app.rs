//! Assembling and running the gateway: routes, start-up, background refresh, shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::{any, get};
use skingate_core::currency::{Currency, seed_currencies};
use skingate_core::project::{Project, ProjectId, ProjectSettings};
use skingate_store::{SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::state::AppState;
use crate::supervise::supervise;

/// The `meta` key remembering which project is the demo one.
pub const DEMO_PROJECT_KEY: &str = "demo_project_id";

/// Every route the gateway serves.
pub fn router(state: AppState) -> Router {
    let admin = if state.config.sim_admin { crate::sim_admin::routes() } else { Router::new() };
    Router::new()
        .merge(admin)
        .route("/api.php", any(crate::api::endpoint))
        .route("/api/v1", any(crate::api::endpoint))
        .route("/ws", get(crate::hub::handler))
        .route("/ws/", get(crate::hub::handler))
        .route("/noop", any(noop))
        .route("/healthz", get(healthz))
        .merge(crate::pay::routes())
        .fallback(fallback)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// Does nothing, quickly: the loopback baseline that benchmarks compare API calls against.
async fn noop(body: axum::body::Bytes) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    drop(body);
    ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"status":"success"}"#)
}

/// A bug must not take the connection down with it: a panicking handler answers the opaque `-100
/// internal_error` envelope (and is logged), like any other internal failure.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic");
    crate::error::ApiError::internal(anyhow::anyhow!("handler panicked: {what}")).into_response()
}

/// A path nothing serves: `-14 unknown_path` in the envelope (HTTP 404), so a merchant whose base URL is
/// wrong reads why instead of failing to parse an empty answer (every vendor client parses JSON, spec §11.7).
async fn fallback() -> axum::response::Response {
    use axum::response::IntoResponse;
    (axum::http::StatusCode::NOT_FOUND, axum::Json(skingate_types::envelope::GlobalError::UnknownPath.body()))
        .into_response()
}

/// Paths as the vendor's nginx and PHP would take them, before routing: repeated slashes merged (nginx's
/// `merge_slashes`, so a base URL ending in `/` before a client's `/api.php` still works) and a trailing
/// slash after the API's own path dropped (`/api.php/` reaches PHP as the script).
fn normalize_path(request: &mut axum::extract::Request) {
    let path = request.uri().path();
    let mut normal = path.to_owned();
    while normal.contains("//") {
        normal = normal.replace("//", "/");
    }
    if matches!(normal.as_str(), "/api.php/" | "/api/v1/") {
        normal.pop();
    }
    if normal == path {
        return;
    }
    set_path(request, &normal);
}

/// Routes `request` as if sent to `path`, its query kept.
fn set_path(request: &mut axum::extract::Request, path: &str) {
    let with_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path) = with_query.parse() {
        parts.path_and_query = Some(path);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
}

/// Legacy clients open their WebSocket on `/`, on the API's path or on any other (spec §11.9): a WebSocket
/// upgrade is the hub's whatever its path, even one another route serves (`/api.php` answers a plain GET with
/// its `-1` envelope). Runs before routing, so the upgrade is routed as `/ws` with its query kept. Other
/// requests have their path normalised ([`normalize_path`]).
async fn upgrades_to_hub(mut request: axum::extract::Request) -> axum::extract::Request {
    use axum::http::{Method, header};
    normalize_path(&mut request);
    let wants_websocket = request.method() == Method::GET
        && request.headers().get_all(header::UPGRADE).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !wants_websocket || matches!(request.uri().path(), "/ws" | "/ws/") {
        return request;
    }
    set_path(&mut request, "/ws");
    request
}

/// Liveness: answers while the process serves HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Opens the configured database as it is, for the operator CLI: no migration, no seeding, refused unless
/// its schema is this binary's ([`SqliteStore::open_current`]).
pub async fn open_current_store(config: &Config) -> anyhow::Result<Arc<SqliteStore>> {
    let store = SqliteStore::open_current(&config.database_url, config.db_readers)
        .await
        .with_context(|| format!("opening database {}", config.database_url))?;
    Ok(Arc::new(store))
}

/// Opens the database named by the config, runs migrations and seeds the rates table on first use. Used by
/// `serve`, `migrate` and a `project create` that sets a new gateway up. The config's `currencies` are
/// applied only by `serve` and `migrate` ([`apply_configured_currencies`]): applied by every command, they
/// would undo a `skingate currency set` at the next `currency list`.
pub async fn open_store(config: &Config, now: i64) -> anyhow::Result<Arc<SqliteStore>> {
    let store = SqliteStore::open(&config.database_url, config.db_readers)
        .await
        .with_context(|| format!("opening database {}", config.database_url))?;
    if store.currencies().await?.is_empty() {
        for c in seed_currencies() {
            store.upsert_currency(&c, now).await?;
        }
    }
    Ok(Arc::new(store))
}

/// Moves an offset clock (the demo's) to the offset it had reached before, so a restart never sends time
/// backwards: holds would end again, expired offers come alive. Other clocks are left alone.
pub async fn restore_clock_offset(store: &dyn Store, clock: &dyn Clock) -> anyhow::Result<()> {
    let saved = store.meta(crate::clock::OFFSET_KEY).await?;
    let Some(now) = clock.offset() else {
        // Not the demo's clock (production, or a test's): a demo's old offset no longer applies, and the CLI
        // must not stamp its writes with it.
        if saved.as_deref().is_some_and(|s| s != "0") {
            tracing::info!("the database kept a demo clock offset; this server runs on another clock: reset");
            store.set_meta(crate::clock::OFFSET_KEY, "0").await?;
        }
        return Ok(());
    };
    let Some(saved) = saved else { return Ok(()) };
    let saved: i64 = saved.parse().with_context(|| format!("meta {} = {saved}", crate::clock::OFFSET_KEY))?;
    if saved > now {
        clock.advance(saved - now);
    }
    Ok(())
}

/// Upserts the currencies the config names ("upserted at start", README), over whatever the rates table holds.
pub async fn apply_configured_currencies(store: &SqliteStore, config: &Config, now: i64) -> anyhow::Result<()> {
    for c in &config.currencies {
        let rate = c.rate.parse().map_err(|e| anyhow::anyhow!("currency {}: {e}", c.code))?;
        let currency =
            Currency::new(&c.code, &c.name, c.scale, &rate).with_context(|| format!("currency {}", c.code))?;
        store.upsert_currency(&currency, now).await?;
    }
    Ok(())
}

/// A fresh random client secret: 32 alphanumeric characters (~190 bits).
pub fn new_secret() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// The demo project, created on first start when `demo_project` is on.
pub async fn ensure_demo_project(store: &dyn Store, now: i64) -> anyhow::Result<Project> {
    if let Some(id) = store.meta(DEMO_PROJECT_KEY).await? {
        let id: ProjectId = id.parse().context("demo project id in meta")?;
        if let Some(p) = store.project(id).await? {
            return Ok(p);
        }
    }
    let project = store.create_project(&ProjectSettings::named("Demo shop"), &new_secret(), now).await?;
    store.set_meta(DEMO_PROJECT_KEY, &project.id.to_string()).await?;
    Ok(project)
}

/// A gateway running on a bound listener.
#[derive(Debug)]
pub struct Running {
    /// Where it listens (the real port when started on port 0).
    pub addr: SocketAddr,
    /// Its state, for tests that need to reach inside.
    pub state: AppState,
    /// The demo project, if configured.
    pub demo: Option<Project>,
    shutdown: CancellationToken,
    /// Ends the simulator saver: cancelled last, so its final save holds what the stopping loops changed.
    saver_stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    saver: JoinHandle<u64>,
    market_watcher: crate::dedicated::Finished,
    deposit_watcher: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
    /// Stops the background work when a `Running` is dropped without [`Running::stop`] (tests do): tasks on
    /// dedicated threads do not end with the runtime that started them.
    _stop_on_drop: [tokio_util::sync::DropGuard; 2],
}

impl Running {
    /// `http://addr`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, closes every WebSocket with 1001, lets in-flight requests finish, lets the background
    /// loops end their current round, and returns when the server is down.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        // Upgraded connections are not waited for by the server's graceful shutdown: each sends close 1001
        // ("reconnect and resume") and ends, while in-flight requests finish.
        self.state.hub.close();
        self.server.await.context("server task")??;
        // Each loop ends its round, bounded, as rounds wait on Steam or on merchants' endpoints: the purchase
        // watcher (a round cut after sending offers and before recording their ids would send them again after
        // a restart), the deposit watcher, and the webhook dispatcher (attempts under way are logged, the
        // leases of the rows it leased ahead are handed back for the next process to deliver at once).
        let webhooks = Duration::from_millis(self.state.config.webhook_timeout_ms) + DISPATCHER_STOP_MARGIN;
        let market = bounded("market watcher", WATCHER_STOP_TIMEOUT, async {
            self.market_watcher.wait().await;
            Ok::<(), std::convert::Infallible>(())
        });
        let deposits = bounded("deposit watcher", WATCHER_STOP_TIMEOUT, self.deposit_watcher);
        let dispatcher = bounded("webhook dispatcher", webhooks, self.dispatcher);
        // Deposit offers being sent for requests whose clients left: recorded before the process ends.
        self.state.background.close();
        let sends = bounded("deposit offer sends", WATCHER_STOP_TIMEOUT, async {
            self.state.background.wait().await;
            Ok::<(), std::convert::Infallible>(())
        });
        let sockets_limit = crate::hub::write_timeout(&self.state.config) + WEBSOCKETS_STOP_MARGIN;
        let sockets = bounded("WebSocket connections", sockets_limit, async {
            self.state.hub.closed().await;
            Ok::<(), std::convert::Infallible>(())
        });
        tokio::join!(market, deposits, dispatcher, sends, sockets);
        // Only now that nothing changes the simulator any more (offers sent by the last rounds and requests
        // included) is its state saved a last time, for a restart to read.
        self.saver_stop.cancel();
        self.saver.await.context("simulator saver task")?;
        Ok(())
    }

    /// Resolves when the server stops on its own (it only does on error).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.server).await.context("server task")??;
        Ok(())
    }
}

/// How long [`Running::stop`] waits for a trade watcher (purchases, deposits) to finish its current round.
const WATCHER_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than one webhook attempt [`Running::stop`] waits for the dispatcher to log its attempts.
const DISPATCHER_STOP_MARGIN: Duration = Duration::from_secs(5);
/// How much longer than one frame's write timeout [`Running::stop`] waits for the WebSockets to close: the
/// close frame's linger for the peer's ([`crate::hub::LINGER`]) and a second more.
const WEBSOCKETS_STOP_MARGIN: Duration = Duration::from_secs(1).saturating_add(crate::hub::LINGER);

/// Waits up to `limit` for a background loop stopping; a loop that takes longer is left (and logged): what it
/// had not written yet is picked up after a restart (leases run out, rounds start again). A loop that ended
/// in a panic is logged too: the stop itself goes on.
async fn bounded<E: std::fmt::Display>(name: &str, limit: Duration, ended: impl Future<Output = Result<(), E>>) {
    match tokio::time::timeout(limit, ended).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "the {name} failed"),
        Err(_) => tracing::warn!(timeout = ?limit, "the {name} did not stop in time"),
    }
}

/// Opens storage, binds `config.listen` and starts serving.
pub async fn start(mut config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let store = open_store(&config, clock.now()).await?;
    restore_clock_offset(store.as_ref(), clock.as_ref()).await?;
    apply_configured_currencies(&store, &config, clock.now()).await?;
    let demo = if config.demo_project { Some(ensure_demo_project(store.as_ref(), clock.now()).await?) } else { None };
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    // With port 0 only the bound socket knows the port; links the gateway hands out (payment pages) need it.
    config.listen = listener.local_addr()?;
    let state = AppState::new(config, store, clock).await?;
    crate::sim_admin::restore(&state).await?;
    state.listen_to_steam();
    crate::market::stock::seed_if_empty(&state).await.context("seeding the market stock")?;
    // Where live events start, read before anything is served: every later commit reaches the WebSocket hub.
    let events_from = state.store.last_event_id().await.context("reading the events outbox")?;
    let shutdown = CancellationToken::new();
    let saved = state.sim.as_ref().map_or(0, |s| s.version());
    let saver_stop = CancellationToken::new();
    let saver = tokio::spawn(crate::sim_admin::run_saver(state.clone(), saver_stop.clone(), saved));
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, state.clone(), shutdown.clone().cancelled_owned()));
    tokio::spawn(refresh_loop(state.clone(), shutdown.clone()));
    tokio::spawn({
        let (state, stop) = (state.clone(), shutdown.clone());
        let cursor = Arc::new(std::sync::atomic::AtomicI64::new(events_from));
        supervise("event tailer", shutdown.clone(), move || {
            crate::hub::run_tailer(state.clone(), stop.clone(), cursor.clone())
        })
    });
    // The loops that move money and deliver events start again after a panic (crate::supervise).
    let market_watcher = crate::dedicated::spawn("skingate-market-watcher", {
        let (state, stop) = (state.clone(), shutdown.clone());
        supervise("market watcher", shutdown.clone(), move || crate::market::watcher::run(state.clone(), stop.clone()))
    });
    let client = crate::webhook::WebhookClient::new(
        state.config.address_policy(),
        Duration::from_millis(state.config.webhook_timeout_ms),
    );
    let dispatcher = tokio::spawn({
        let (state, stop) = (state.clone(), shutdown.clone());
        supervise("webhook dispatcher", shutdown.clone(), move || {
            crate::dispatcher::run(state.clone(), client.clone(), stop.clone())
        })
    });
    let deposit_watcher = tokio::spawn({
        let (state, stop) = (state.clone(), shutdown.clone());
        supervise("deposit watcher", shutdown.clone(), move || {
            crate::deposits::watcher::run(state.clone(), stop.clone())
        })
    });
    let _stop_on_drop = [shutdown.clone().drop_guard(), saver_stop.clone().drop_guard()];
    Ok(Running {
        addr,
        state,
        demo,
        shutdown,
        saver_stop,
        server,
        saver,
        market_watcher,
        deposit_watcher,
        dispatcher,
        _stop_on_drop,
    })
}

/// Serves HTTP on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = crate::listener::Limits {
        header: Duration::from_millis(state.config.http_header_timeout_ms),
        body: Duration::from_millis(state.config.http_body_timeout_ms),
        shutdown_grace: Duration::from_millis(state.config.http_shutdown_grace_ms),
    };
    let app = tower::Layer::layer(&axum::middleware::map_request(upgrades_to_hub), router(state));
    crate::listener::serve(listener, app, limits, shutdown).await
}

async fn refresh_loop(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.refresh_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = state.refresh().await {
                    tracing::warn!(error = %e, "refreshing rates and maintenance flag failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_become_the_opaque_internal_error() {
        let resp = panic_response(Box::new("boom at /secret/path"));
        assert_eq!(resp.status(), 200);
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"status":"error","error_code":-100,"error_message":"internal_error"}"#);
    }

    /// The demo clock's offset survives a restart (kept by `clock/advance`); a test's manual clock ignores it.
    #[tokio::test]
    async fn a_restart_keeps_the_demo_clock_ahead() {
        use crate::clock::{ManualClock, OFFSET_KEY, OffsetClock};
        let (_dir, state, _) = crate::state::testing::state_with_project().await;
        state.store.set_meta(OFFSET_KEY, "172800").await.unwrap();
        let demo = OffsetClock::default();
        restore_clock_offset(state.store.as_ref(), &demo).await.unwrap();
        assert_eq!(demo.offset(), Some(172_800));
        restore_clock_offset(state.store.as_ref(), &demo).await.unwrap();
        assert_eq!(demo.offset(), Some(172_800), "never twice");
        let manual = ManualClock::new(100);
        restore_clock_offset(state.store.as_ref(), &manual).await.unwrap();
        assert_eq!(manual.now(), 100);
        // A server on another clock resets the demo's offset, so the CLI stops using it.
        assert_eq!(state.store.meta(OFFSET_KEY).await.unwrap().as_deref(), Some("0"));
    }
}
