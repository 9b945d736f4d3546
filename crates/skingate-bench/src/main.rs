//! `skingate-bench`: how fast the gateway answers, measured against the loopback itself.
//!
//! The machine is shared and small (2 cores for server and load generator together), so absolute
//! requests/s say little from one run to the next. Every scenario is therefore measured beside a **no-op
//! route** (`POST /noop`: same HTTP stack, no work) in the same run, interleaved round by round, and the
//! figure that matters is the ratio. Each client is one keep-alive HTTP/1.1 connection sending requests
//! back to back; only `200` answers whose body starts with `{"status":"success"` count, and anything else
//! is reported as an error.
//!
//! By default the gateway runs in this process on its own runtime and thread, on a fresh SQLite file; with
//! `--url` it drives a gateway that is already running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::json;
use skingate_types::sign::{Canonicalization, api_sign};
use tokio::net::TcpStream;

mod target;

mod webhooks;
mod ws;

/// The benchmarks; each measures its figure beside its baseline in one run.
#[derive(Debug, Parser)]
#[command(about = "Benchmarks of skingate, each against its loopback baseline in the same run")]
enum Cli {
    /// Signed `balance` (and friends) against the no-op route.
    Api(Opts),
    /// Signed, durably recorded webhook deliveries against raw POSTs of the same HTTP client.
    Webhooks(webhooks::Opts),
    /// Idle authenticated WebSocket connections held by one node, and memory per connection.
    WsIdle(ws::IdleOpts),
    /// Commit-to-client latency with many connections and a steady event rate.
    WsLatency(ws::LatencyOpts),
}

/// Options of the `api` benchmark.
#[derive(Debug, clap::Args)]
struct Opts {
    /// Concurrent keep-alive clients; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Measured seconds per scenario and round.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured seconds at the start of each scenario and round.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Rounds per scenario; scenarios alternate within a round, the median round is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Drive a running gateway (`http://host:port`) instead of starting one.
    #[arg(long, requires_all = ["client_id", "secret"])]
    url: Option<String>,
    /// Client id of the project to use with `--url` (its rate limit must allow the load).
    #[arg(long)]
    client_id: Option<String>,
    /// Client secret of that project.
    #[arg(long)]
    secret: Option<String>,
}

/// One kind of request the bench sends.
#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

fn signed_body(method: &str, client_id: &str, secret: &str) -> Bytes {
    let mut params = json!({"method": method, "shopid": client_id}).as_object().cloned().unwrap_or_default();
    let sign = api_sign(secret, &params, Canonicalization::Js);
    params.insert("sign".into(), json!(sign));
    Bytes::from(serde_json::Value::Object(params).to_string())
}

fn scenarios(client_id: &str, secret: &str) -> Vec<Scenario> {
    let signed = signed_body("balance", client_id, secret);
    let plain = Bytes::from_static(br#"{"method":"balance"}"#);
    vec![
        Scenario { name: "noop", path: "/noop", headers: vec![], body: signed.clone() },
        Scenario { name: "balance (signed)", path: "/api.php", headers: vec![], body: signed },
        // Authentication and dispatch without a database read: shows what the read itself costs.
        Scenario {
            name: "status (signed)",
            path: "/api.php",
            headers: vec![],
            body: signed_body("status", client_id, secret),
        },
        Scenario {
            name: "balance (headers)",
            path: "/api.php",
            headers: vec![("x-client-id", client_id.to_owned()), ("x-client-secret", secret.to_owned())],
            body: plain,
        },
    ]
}

/// What one scenario round measured.
#[derive(Debug, Default, Clone)]
struct Sample {
    ok: u64,
    errors: u64,
    secs: f64,
    latencies_us: Vec<u32>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

/// One client: a connection that sends until the deadline, recording latencies after the warm-up.
async fn client(host: String, s: Arc<Scenario>, measure_from: Instant, until: Instant) -> anyhow::Result<Sample> {
    let stream = TcpStream::connect(&host).await.with_context(|| format!("connecting to {host}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut sample = Sample::default();
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        let mut req = Request::post(s.path).header("host", &host).header("content-type", "application/json");
        for (k, v) in &s.headers {
            req = req.header(*k, v);
        }
        let resp = sender.send_request(req.body(Full::new(s.body.clone()))?).await?;
        let ok_status = resp.status() == 200;
        let body = resp.into_body().collect().await?.to_bytes();
        let done = Instant::now();
        if start < measure_from {
            continue;
        }
        if ok_status && body.starts_with(br#"{"status":"success""#) {
            sample.ok += 1;
            sample.latencies_us.push(done.duration_since(start).as_micros().min(u128::from(u32::MAX)) as u32);
        } else {
            sample.errors += 1;
            if sample.errors == 1 {
                eprintln!("{}: unexpected answer: {}", s.name, String::from_utf8_lossy(&body));
            }
        }
    }
    Ok(sample)
}

async fn round(host: &str, s: &Arc<Scenario>, clients: usize, opts: &Opts) -> anyhow::Result<Sample> {
    let measure_from = Instant::now() + Duration::from_secs_f64(opts.warmup);
    let until = measure_from + Duration::from_secs_f64(opts.seconds);
    let tasks: Vec<_> =
        (0..clients).map(|_| tokio::spawn(client(host.to_owned(), s.clone(), measure_from, until))).collect();
    let mut total = Sample { secs: opts.seconds, ..Sample::default() };
    for t in tasks {
        let one = t.await??;
        total.ok += one.ok;
        total.errors += one.errors;
        total.latencies_us.extend(one.latencies_us);
    }
    Ok(total)
}

/// The median round of a scenario (by rate) and all its latencies.
struct Summary {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn summarise(mut samples: Vec<Sample>) -> Summary {
    samples.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let rate = samples[samples.len() / 2].rate();
    let errors = samples.iter().map(|s| s.errors).sum();
    let mut all: Vec<u32> = samples.into_iter().flat_map(|s| s.latencies_us).collect();
    all.sort_unstable();
    Summary { rate, p50_ms: percentile(&all, 0.50), p99_ms: percentile(&all, 0.99), errors }
}

async fn run(host: String, client_id: String, secret: String, opts: Opts) -> anyhow::Result<()> {
    let scenarios: Vec<Arc<Scenario>> = scenarios(&client_id, &secret).into_iter().map(Arc::new).collect();
    let mut report = Vec::new();
    println!(
        "{:>7}  {:<18} {:>10} {:>9} {:>9} {:>8} {:>7}",
        "clients", "scenario", "req/s", "p50 ms", "p99 ms", "vs noop", "errors"
    );
    for &clients in &opts.clients {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); scenarios.len()];
        for _ in 0..opts.rounds {
            for (i, s) in scenarios.iter().enumerate() {
                samples[i].push(round(&host, s, clients, &opts).await?);
            }
        }
        let summaries: Vec<Summary> = samples.into_iter().map(summarise).collect();
        let noop = summaries[0].rate;
        for (s, sum) in scenarios.iter().zip(&summaries) {
            let ratio = sum.rate / noop;
            println!(
                "{clients:>7}  {:<18} {:>10.0} {:>9.3} {:>9.3} {:>7.0}% {:>7}",
                s.name,
                sum.rate,
                sum.p50_ms,
                sum.p99_ms,
                ratio * 100.0,
                sum.errors
            );
            report.push(json!({"clients": clients, "scenario": s.name, "rps": sum.rate.round(),
                "p50_ms": sum.p50_ms, "p99_ms": sum.p99_ms, "ratio_vs_noop": (ratio * 1000.0).round() / 1000.0,
                "errors": sum.errors}));
        }
        if summaries.iter().any(|s| s.errors > 0) {
            bail!("errors during the run: figures above are not valid");
        }
    }
    println!("{}", json!({"bench": "api", "seconds": opts.seconds, "rounds": opts.rounds, "results": report}));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Api(opts) => api(opts),
        Cli::Webhooks(opts) => webhooks::run(opts),
        Cli::WsIdle(opts) => ws::idle(opts),
        Cli::WsLatency(opts) => ws::latency(opts),
    }
}

fn api(opts: Opts) -> anyhow::Result<()> {
    let (host, client_id, secret, server) = match &opts.url {
        Some(url) => {
            let host = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
            (host, opts.client_id.clone().unwrap_or_default(), opts.secret.clone().unwrap_or_default(), None)
        }
        None => {
            let server = target::InProcess::start(|c| c)?;
            (server.addr.to_string(), server.client_id.clone(), server.secret.clone(), Some(server))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(run(host, client_id, secret, opts));
    if let Some(server) = server {
        server.stop();
    }
    result
}
