//! Webhook delivery throughput: signed deliveries recorded durably, against raw POSTs.
//!
//! The gateway delivers `--events` outbox rows to a local receiver; the figure is deliveries per second
//! from the wake-up until every attempt is recorded in the database. The baseline is the raw loopback
//! POST rate of the same HTTP client (reqwest with the webhook client's settings) sending the same request
//! (same body, same header names and value sizes, values fixed instead of computed) to the same receiver
//! with the same concurrency, in the same run; a body-only POST rate is printed beside it. Rounds
//! alternate baselines and gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use skingate_core::events::EventType;
use skingate_store::DeliveryState;

use crate::target::InProcess;

/// Options of the `webhooks` benchmark.
#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Events per gateway round.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Concurrent deliveries (the gateway's `webhook_concurrency`, and the baseline's tasks).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Rounds of each.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// A receiver on its own runtime thread that answers 204 and counts.
struct Receiver {
    url: String,
    count: Arc<AtomicU64>,
}

fn start_receiver() -> anyhow::Result<Receiver> {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |_body: bytes::Bytes| {
                counter.fetch_add(1, Ordering::Relaxed);
                async { axum::http::StatusCode::NO_CONTENT }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let _ = tx.send(listener.local_addr().expect("addr"));
            let _ = axum::serve(listener, app).await;
        });
    });
    let addr = rx.recv()?;
    Ok(Receiver { url: format!("http://{addr}/hook"), count })
}

/// Runs the benchmark and prints the table.
pub fn run(opts: Opts) -> anyhow::Result<()> {
    let receiver = start_receiver()?;
    let concurrency = opts.concurrency;
    let server = InProcess::start(move |c| {
        c.with("webhook_allow_private", true)
            .and_then(|c| c.with("webhook_concurrency", concurrency))
            .and_then(|c| c.with("webhook_poll_interval_ms", 3_600_000))
            .expect("config")
    })?;
    let state = server.state.clone();
    let url = receiver.url.clone();
    let project = server.handle.block_on(async move {
        let id = state.store.projects().await?.into_iter().next().expect("bench project").id;
        let mut p = state.store.project(id).await?.expect("project");
        p.settings.events_url = Some(url);
        state.store.update_project(&p, 0).await?;
        state.forget_project(id);
        anyhow::Ok(p)
    })?;
    let body =
        json!({"event":"balance_change","data":{"balance_value":"10.00"},"id":"evt_1","seq":1,"created":0}).to_string();
    let client_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (mut raw_rates, mut bare_rates, mut gw_rates) = (Vec::new(), Vec::new(), Vec::new());
    let headers = delivery_headers();
    for round in 0..opts.rounds {
        raw_rates.push(client_rt.block_on(raw_posts(&receiver, &body, opts.events, concurrency, &headers))?);
        bare_rates.push(client_rt.block_on(raw_posts(&receiver, &body, opts.events, concurrency, &[]))?);
        let before = receiver.count.load(Ordering::Relaxed);
        let state = server.state.clone();
        let p = project.clone();
        let n = opts.events;
        let elapsed = server.handle.block_on(async move {
            // Write the events while the dispatcher sleeps, then wake it and time the deliveries.
            for chunk in 0..n.div_ceil(500) {
                let mut tx = state.store.begin().await?;
                for i in 0..500.min(n - chunk * 500) {
                    let data = json!({"balance_value": format!("{round}.{i}")});
                    skingate_server::events::emit(tx.as_mut(), &p, EventType::BalanceChange, data, 0).await?;
                }
                tx.commit().await?;
            }
            let start = Instant::now();
            state.events_committed();
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let pending = state.store.deliveries(p.id, Some(DeliveryState::Pending), 0, 1).await?;
                if pending.is_empty() {
                    return anyhow::Ok(start.elapsed());
                }
                anyhow::ensure!(start.elapsed() < Duration::from_secs(600), "deliveries did not finish in 10 min");
            }
        })?;
        let delivered = receiver.count.load(Ordering::Relaxed) - before;
        anyhow::ensure!(delivered >= opts.events, "receiver got {delivered} of {} deliveries", opts.events);
        gw_rates.push(opts.events as f64 / elapsed.as_secs_f64());
    }
    server.stop();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (raw, bare, gw) = (median(&mut raw_rates), median(&mut bare_rates), median(&mut gw_rates));
    println!("{:<44} {:>12}", "scenario", "per second");
    println!("{:<44} {:>12.0}", "raw POST, same headers (baseline)", raw);
    println!("{:<44} {:>12.0}", "raw POST, body only", bare);
    println!(
        "{:<44} {:>12.0}   {:.0}% of baseline ({:.0}% of body-only)",
        "signed + recorded deliveries",
        gw,
        gw / raw * 100.0,
        gw / bare * 100.0
    );
    println!(
        "{}",
        json!({"bench": "webhooks", "events": opts.events, "concurrency": concurrency,
        "raw_posts_per_s": raw.round(), "raw_body_only_per_s": bare.round(), "deliveries_per_s": gw.round(),
        "ratio": (gw / raw * 1000.0).round() / 1000.0, "ratio_body_only": (gw / bare * 1000.0).round() / 1000.0,
        "raw_rounds": raw_rates, "body_only_rounds": bare_rates, "gateway_rounds": gw_rates})
    );
    Ok(())
}

/// The baseline: `n` POSTs of `body` with `concurrency` tasks sharing one client.
/// The headers a delivery carries, with fixed values of the real sizes: a baseline that sends the same bytes
/// on the wire without computing anything.
fn delivery_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Signature", "0".repeat(64)),
        ("X-SIGN", "0".repeat(32)),
        ("webhook-id", "evt_12345".to_owned()),
        ("webhook-timestamp", "1795396533".to_owned()),
        ("webhook-signature", format!("v1,{}=", "A".repeat(43))),
    ]
}

async fn raw_posts(
    receiver: &Receiver,
    body: &str,
    n: u64,
    concurrency: usize,
    headers: &[(&'static str, String)],
) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, url, body) = (client.clone(), next.clone(), receiver.url.clone(), body.to_owned());
            let headers = headers.to_vec();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let mut req = client.post(&url).header("content-type", "application/json");
                    for (k, v) in &headers {
                        req = req.header(*k, v);
                    }
                    let resp = req.body(body.clone()).send().await?;
                    anyhow::ensure!(resp.status().is_success(), "receiver answered {}", resp.status());
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
