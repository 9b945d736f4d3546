//! The `market` benchmark: `market_buy` throughput against the no-op route in the same run, and the streamed
//! price list's time and memory.
//!
//! Buys: an in-process gateway with `--units` units of one item in stock and a project with a large balance;
//! N keep-alive clients send signed `market_buy` (by name, cheapest unit) back to back, interleaved round by
//! round with `POST /noop` carrying a body of the same size, exactly like the `api` benchmark. Every buy is a
//! real purchase: unit reserved, pending ledger transfer, purchase row, `buy_item` + `balance_change` events,
//! committed durably (`synchronous=FULL`) by the group-committing writer; the purchase watcher runs too and
//! sends each purchase's offer to the simulator.
//!
//! Price list: a second gateway whose stock holds `--list-units` CS2 units; one `market_pricelist full=1`
//! request is read to the end while the process's resident memory is sampled every 2 ms. The same is done
//! with a quarter of the units first, so the two peaks show whether memory grows with the list.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use serde_json::json;
use skingate_server::market::stock::unit_of;
use skingate_steam::catalogue::{Catalogue, Game};
use skingate_types::sign::{Canonicalization, api_sign};

use crate::api::{self, Scenario};
use crate::target::InProcess;

/// Options of the `market` benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Concurrent keep-alive clients; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    clients: Vec<usize>,
    /// Measured seconds per scenario and round.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured seconds at the start of each scenario and round.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Rounds per scenario.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Units in stock for the buy benchmark (each buy takes one).
    #[arg(long, default_value_t = 400_000)]
    units: u32,
    /// Units listed by the price-list measurement (0 skips it).
    #[arg(long, default_value_t = 200_000)]
    list_units: u32,
}

/// The item every buy takes (Dota 2, 2.50 USD).
const ITEM: (&str, &str) = ("dota2", "Treasure Key");

/// Runs both measurements; prints a table and one JSON line each.
pub fn run(opts: Opts) -> anyhow::Result<()> {
    ensure!(opts.rounds >= 1 && opts.seconds > 0.0 && !opts.clients.contains(&0), "bad options");
    buys(&opts)?;
    if opts.list_units > 0 {
        pricelist(opts.list_units)?;
    }
    Ok(())
}

/// Puts `n` units of `make(i)` into the stock of `server`, in chunks.
fn stock(server: &InProcess, n: u32, make: impl Fn(u64) -> skingate_store::market::NewUnit) -> anyhow::Result<()> {
    let state = server.state.clone();
    let units: Vec<_> = (0..u64::from(n)).map(make).collect();
    server.handle.block_on(async move {
        for chunk in units.chunks(20_000) {
            let mut tx = state.store.begin().await?;
            tx.add_units(chunk, 0).await?;
            tx.commit().await?;
        }
        anyhow::Ok(())
    })
}

fn buys(opts: &Opts) -> anyhow::Result<()> {
    let server = InProcess::start(|c| c.with("market_seed_units", 0).expect("config key"))?;
    let sim = server.state.sim.clone().context("simulator")?;
    let item = Catalogue::embedded().get(Game::Dota2, ITEM.1).context("item")?.clone();
    let bots = sim.bots().to_vec();
    stock(&server, opts.units, |i| unit_of(&item, &bots[(i % bots.len() as u64) as usize], 9, i))?;
    let project: skingate_core::project::ProjectId = server.client_id.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let state = server.state.clone();
    server.handle.block_on(async move {
        let p = state.store.project(project).await?.context("bench project")?;
        skingate_server::adjustments::adjust(
            state.store.as_ref(),
            &p,
            true,
            skingate_core::Money::from_minor(1_000_000_000_000),
            "bench",
            "bench-topup",
            0,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        anyhow::Ok(())
    })?;
    let user = skingate_steam::ids::SteamId::from_account_id(4242).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut params = serde_json::Map::new();
    params.insert("method".into(), json!("market_buy"));
    params.insert("game".into(), json!(ITEM.0));
    params.insert("name".into(), json!(ITEM.1));
    params.insert("partner".into(), json!(user.account_id().to_string()));
    params.insert("token".into(), json!(sim.trade_token(user)));
    params.insert("shopid".into(), json!(server.client_id));
    let sign = api_sign(&server.secret, &params, Canonicalization::Js);
    params.insert("sign".into(), json!(sign));
    let body = Bytes::from(serde_json::Value::Object(params).to_string());
    let scenarios: Vec<Arc<Scenario>> = vec![
        Arc::new(Scenario { name: "noop", path: "/noop", headers: vec![], body: body.clone() }),
        Arc::new(Scenario { name: "market_buy", path: "/api.php", headers: vec![], body }),
    ];
    let host = server.addr.to_string();
    let common = api::Opts {
        clients: opts.clients.clone(),
        seconds: opts.seconds,
        warmup: opts.warmup,
        rounds: opts.rounds,
        url: None,
        client_id: None,
        secret: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let mut results = Vec::new();
        let mut errors = 0;
        api::print_header();
        for &clients in &opts.clients {
            let summaries = api::measure(&host, &scenarios, clients, &common).await?;
            let noop = summaries[0].rate;
            for (s, sum) in scenarios.iter().zip(&summaries) {
                results.push(api::report_row(clients, s, sum, noop));
                errors += sum.errors;
            }
        }
        println!("{}", json!({"bench": "market_buy", "units": opts.units, "valid": errors == 0, "results": results}));
        ensure!(errors == 0, "{errors} request(s) failed: the figures above are not valid");
        anyhow::Ok(())
    });
    server.stop();
    result
}

/// Resident set size of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn pricelist(units: u32) -> anyhow::Result<()> {
    println!("{:>9} {:>10} {:>12} {:>14} {:>16}", "units", "seconds", "body MiB", "RSS before MiB", "RSS peak +MiB");
    let mut rows = Vec::new();
    for n in [units / 4, units] {
        let server = InProcess::start(|c| c.with("market_seed_units", 0).expect("config key"))?;
        let sim = server.state.sim.clone().context("simulator")?;
        let bots = sim.bots().to_vec();
        let catalogue = Catalogue::embedded();
        stock(&server, n, |i| {
            let item = catalogue.nth(Game::Cs2, i.wrapping_mul(2_654_435_761)).expect("cs2 items");
            unit_of(item, &bots[(i % bots.len() as u64) as usize], 11, i)
        })?;
        let mut params = serde_json::Map::new();
        params.insert("method".into(), json!("market_pricelist"));
        params.insert("game".into(), json!("cs2"));
        params.insert("full".into(), json!(1));
        params.insert("shopid".into(), json!(server.client_id));
        let sign = api_sign(&server.secret, &params, Canonicalization::Js);
        params.insert("sign".into(), json!(sign));
        let url = format!("http://{}/api.php", server.addr);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let before = rss_kib();
        let peak = Arc::new(AtomicU64::new(before));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let started = Instant::now();
        let (bytes, rows_seen) = runtime.block_on(async {
            let body = serde_json::Value::Object(params).to_string();
            let resp =
                reqwest::Client::new().post(&url).header("content-type", "application/json").body(body).send().await?;
            let mut resp = resp;
            let (mut bytes, mut ids, mut tail) = (0usize, 0usize, Vec::new());
            while let Some(chunk) = resp.chunk().await? {
                bytes += chunk.len();
                // Count row starts, including one split between two chunks.
                tail.extend_from_slice(&chunk);
                ids += tail.windows(6).filter(|w| w == b"{\"id\":").count();
                tail.drain(..tail.len().saturating_sub(5));
            }
            anyhow::Ok((bytes, ids))
        })?;
        let secs = started.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        let peak = peak.load(Ordering::Relaxed);
        ensure!(rows_seen == n as usize, "listed {rows_seen} rows, expected {n}");
        let mib = |k: u64| k as f64 / 1024.0;
        println!(
            "{n:>9} {secs:>10.2} {:>12.1} {:>14.1} {:>16.1}",
            bytes as f64 / (1 << 20) as f64,
            mib(before),
            mib(peak.saturating_sub(before))
        );
        rows.push(json!({"units": n, "seconds": (secs * 100.0).round() / 100.0, "body_bytes": bytes,
            "rss_before_kib": before, "rss_peak_growth_kib": peak.saturating_sub(before)}));
        server.stop();
    }
    println!("{}", json!({"bench": "market_pricelist", "results": rows}));
    Ok(())
}
