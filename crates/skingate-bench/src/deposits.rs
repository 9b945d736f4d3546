//! Deposit latency: from the payer accepting the trade to the merchant's Result URL receiving the
//! callback.
//!
//! The gateway runs in this process with the embedded Steam simulator. `--deposits` payers (distinct
//! simulated users, Dota 2, so no Trade Protection hold) each get a deposit through
//! `create_from_user_inventory` over HTTP, with a "manual" simulator profile so nobody accepts on their own.
//! Then, one deposit at a time, the bench accepts the offer as the payer (the simulator's operator
//! surface; its change listener tells the gateway at once, through `AppState::offer_changed`), and measures
//! the time until the callback for that deposit arrives at a local receiver. The path measured is the whole one: two
//! agreeing Steam observations, the transition transaction (ledger, outbox, delivery row, durable commit),
//! the dispatcher's claim, signing, form encoding and the HTTP POST. Every fifth simulated offer flaps once
//! (accepted → active → accepted), as Steam does, and costs an extra look. Baseline, in the same run: a
//! plain loopback POST of a callback-sized form body to the same receiver, answer included.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, json};
use skingate_steam::SteamId;
use skingate_steam::catalogue::Game;
use skingate_steam::sim::{Profile, Steam};
use tokio::sync::Notify;

use crate::target::InProcess;

/// Options of the `deposits` benchmark.
#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Deposits measured.
    #[arg(long, default_value_t = 1_000)]
    deposits: usize,
    /// The watcher's poll interval (ms); latency must not depend on it, since acceptance wakes the watcher.
    #[arg(long, default_value_t = 1_000)]
    poll_ms: u64,
}

/// Arrival times of callbacks, by transaction id.
#[derive(Default)]
struct Arrivals {
    at: Mutex<HashMap<i64, Instant>>,
    changed: Notify,
}

fn start_receiver(arrivals: Arc<Arrivals>) -> anyhow::Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |body: bytes::Bytes| {
                let now = Instant::now();
                let arrivals = arrivals.clone();
                async move {
                    let id = url::form_urlencoded::parse(&body)
                        .find(|(k, _)| k == "transaction_id")
                        .and_then(|(_, v)| v.parse::<i64>().ok());
                    if let Some(id) = id {
                        arrivals.at.lock().expect("arrivals").entry(id).or_insert(now);
                        arrivals.changed.notify_waiters();
                    }
                    axum::http::StatusCode::OK
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let _ = tx.send(listener.local_addr().expect("addr"));
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(format!("http://{}/callback", rx.recv()?))
}

/// Runs the benchmark and prints the table and a JSON line.
pub fn run(opts: Opts) -> anyhow::Result<()> {
    let arrivals = Arc::new(Arrivals::default());
    let url = start_receiver(arrivals.clone())?;
    let receiver_url = url.clone();
    let poll = opts.poll_ms;
    let server = InProcess::start(move |c| {
        c.with("webhook_allow_private", true).and_then(|c| c.with("trade_poll_interval_ms", poll)).expect("config")
    })?;
    let state = server.state.clone();
    let sim = state.sim.clone().ok_or_else(|| anyhow::anyhow!("the bench needs the embedded simulator"))?;
    let client = skingate_sdk::Client::new(&format!("http://{}", server.addr), &server.client_id, &server.secret);
    let n = opts.deposits;
    let result = server.handle.block_on(async move {
        let id = state.store.projects().await?.into_iter().next().expect("bench project").id;
        let mut p = state.store.project(id).await?.expect("project");
        p.settings.result_url = Some(url);
        state.store.update_project(&p, 0).await?;
        state.forget_project(id);
        // Create the deposits (not measured).
        let mut deposits = Vec::with_capacity(n);
        for i in 0..n {
            let user = SteamId::from_account_id(500_000 + i as u64)?;
            sim.set_profile(user, Profile::Manual);
            let items = sim.inventory(user, Game::Dota2).await?;
            let Some(item) = items.iter().find(|a| a.tradable && a.price_cents > 0) else { continue };
            let created = client
                .create_from_user_inventory(
                    &format!("bench-{i}"),
                    &user.to_string(),
                    &sim.trade_token(user),
                    "dota2",
                    &[item.asset_id.to_string()],
                    Map::new(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("create_from_user_inventory: {e}"))?;
            deposits.push((created.transaction_id, created.trade_offer_id.parse::<u64>()?));
        }
        // Let the watcher see every offer open once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut latencies = Vec::with_capacity(deposits.len());
        for (transaction, offer) in &deposits {
            let start = Instant::now();
            sim.accept(*offer).map_err(|e| anyhow::anyhow!("accept: {e}"))?;
            loop {
                let notified = arrivals.changed.notified();
                if let Some(at) = arrivals.at.lock().expect("arrivals").get(transaction) {
                    latencies.push(at.duration_since(start));
                    break;
                }
                anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "no callback for {transaction} in 30 s");
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        }
        // Baseline, same run, same receiver: a plain POST of a callback-sized form body and its answer.
        let http = reqwest::Client::builder().no_proxy().build()?;
        let body = format!("status=success&transaction_id=0&order_id=bench&{}", "skins%5B0%5D%5Bname%5D=x&".repeat(8));
        let mut baseline = Vec::with_capacity(deposits.len());
        for _ in 0..deposits.len() {
            let start = Instant::now();
            let resp = http
                .post(&receiver_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "receiver answered {}", resp.status());
            baseline.push(start.elapsed());
        }
        anyhow::Ok((latencies, baseline))
    });
    server.stop();
    let (mut latencies, mut baseline) = result?;
    baseline.sort();
    anyhow::ensure!(!latencies.is_empty(), "no deposit measured");
    latencies.sort();
    let pct = |v: &[Duration], q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let row = |v: &[Duration]| [0.50, 0.90, 0.99, 1.0].map(|q| ms(pct(v, q)));
    let (gw, base) = (row(&latencies), row(&baseline));
    println!("{} deposits; latency in ms", latencies.len());
    println!("{:<48} {:>8} {:>8} {:>8} {:>8}", "", "p50", "p90", "p99", "max");
    println!(
        "{:<48} {:>8} {:>8} {:>8} {:>8}",
        "raw POST to the receiver (baseline)", base[0], base[1], base[2], base[3]
    );
    println!(
        "{:<48} {:>8} {:>8} {:>8} {:>8}",
        "trade accepted → Result-URL callback received", gw[0], gw[1], gw[2], gw[3]
    );
    println!(
        "{}",
        json!({"bench": "deposits", "deposits": latencies.len(), "poll_ms": opts.poll_ms,
            "p50_ms": gw[0], "p90_ms": gw[1], "p99_ms": gw[2], "max_ms": gw[3],
            "baseline_p50_ms": base[0], "baseline_p99_ms": base[2]})
    );
    Ok(())
}
