//! The `api` benchmark: signed `balance` (and friends) against the no-op route, in the same run.
//!
//! N clients, each one keep-alive HTTP/1.1 connection (`TCP_NODELAY`), send requests back to back. Each
//! scenario runs `--rounds` times, scenarios alternating within a round (noop, balance, …, noop, balance, …)
//! so that whatever else the shared machine does spreads over all of them; the median round's rate is
//! reported, and p50/p99 over every measured request of every round. Only `200` answers whose body starts
//! with `{"status":"success"` count; anything else is an error, reported, and makes the run invalid.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;
use skingate_types::sign::{Canonicalization, api_sign};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::target::InProcess;

/// Longest wait for a TCP connection to the gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one answer (a healthy gateway answers in milliseconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// What a counted answer's body starts with.
const SUCCESS_PREFIX: &[u8] = br#"{"status":"success""#;

/// Options of the `api` benchmark (also the options when no benchmark is named).
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Concurrent keep-alive clients; a comma-separated list (`1,16,64`) runs each in turn.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub(crate) clients: Vec<usize>,
    /// Measured seconds per scenario and round.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) seconds: f64,
    /// Unmeasured seconds at the start of each scenario and round.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Rounds per scenario; scenarios alternate within a round, the median round is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// Drive a running gateway (`http://host:port`) instead of starting one.
    #[arg(long, requires_all = ["client_id", "secret"])]
    pub(crate) url: Option<String>,
    /// Client id of the project to use with `--url` (its rate limit must allow the load).
    #[arg(long)]
    pub(crate) client_id: Option<String>,
    /// Client secret of that project.
    #[arg(long)]
    pub(crate) secret: Option<String>,
}

impl Opts {
    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.seconds.is_finite() && self.seconds > 0.0, "--seconds must be positive");
        ensure!(self.warmup.is_finite() && self.warmup >= 0.0, "--warmup must not be negative");
        ensure!(self.rounds >= 1, "--rounds must be at least 1");
        ensure!(!self.clients.is_empty() && !self.clients.contains(&0), "--clients must be positive");
        Ok(())
    }
}

/// Runs the benchmark: prints the table, then one JSON line; fails if any request failed.
pub fn run(opts: Opts) -> anyhow::Result<()> {
    opts.validate()?;
    let (host, client_id, secret, server) = match &opts.url {
        Some(url) => {
            let Some(host) = url.strip_prefix("http://") else { bail!("--url must start with http://") };
            let host = host.trim_end_matches('/').to_owned();
            (host, opts.client_id.clone().unwrap_or_default(), opts.secret.clone().unwrap_or_default(), None)
        }
        None => {
            let server = InProcess::start(|c| c)?;
            (server.addr.to_string(), server.client_id.clone(), server.secret.clone(), Some(server))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(drive(host, &client_id, &secret, &opts));
    if let Some(server) = server {
        server.stop();
    }
    result
}

/// One kind of request the bench sends.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) path: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Bytes,
}

/// A JSON body `{"method":…,"shopid":…,"sign":…}` signed the way SkinsBack's JS SDK signs.
fn signed_body(method: &str, client_id: &str, secret: &str) -> Bytes {
    let mut params = serde_json::Map::new();
    params.insert("method".into(), json!(method));
    params.insert("shopid".into(), json!(client_id));
    let sign = api_sign(secret, &params, Canonicalization::Js);
    params.insert("sign".into(), json!(sign));
    Bytes::from(serde_json::Value::Object(params).to_string())
}

/// The scenarios, baseline first; bodies are built once, not per request.
fn scenarios(client_id: &str, secret: &str) -> Vec<Arc<Scenario>> {
    let signed = signed_body("balance", client_id, secret);
    let by_headers = vec![("x-client-id", client_id.to_owned()), ("x-client-secret", secret.to_owned())];
    [
        // Same body size as the signed call, so only the work behind the route differs.
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
            headers: by_headers,
            body: Bytes::from_static(br#"{"method":"balance"}"#),
        },
    ]
    .into_iter()
    .map(Arc::new)
    .collect()
}

/// What one scenario round (or one client of it) measured.
#[derive(Debug, Default, Clone)]
struct Sample {
    ok: u64,
    errors: u64,
    secs: f64,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
    /// This process's CPU time over the measured window (see [`CpuTimes`]), when it could be read.
    cpu: Option<CpuTimes>,
}

/// CPU time this process used (all its threads, in `/proc/self/stat` ticks) over some wall-clock time.
///
/// The gateway runs inside the bench process with its load generator (unless `--url` points elsewhere; then
/// only the load generator is counted), and the two share the machine's cores, so a scenario's rate is bounded
/// by its CPU cost per request. Busy time over requests tells how much of the gap to the no-op route is work
/// (CPU per request) and how much is waiting (cores left idle while requests wait on something serial, such
/// as one writer). Other processes on the machine are not counted.
#[derive(Debug, Default, Clone, Copy)]
struct CpuTimes {
    ticks: u64,
    wall: Duration,
}

impl CpuTimes {
    /// User plus system time of this process so far (Linux); `None` elsewhere.
    fn used() -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at the 3rd: utime is the 14th, stime the 15th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    }

    fn add(self, other: Self) -> Self {
        Self { ticks: self.ticks + other.ticks, wall: self.wall + other.wall }
    }
}

/// `/proc` counts CPU time in USER_HZ, which Linux fixes at 100 ticks a second for user space.
const TICK_US: f64 = 10_000.0;

impl Sample {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    fn merge(&mut self, other: Sample) {
        self.cpu = match (self.cpu, other.cpu) {
            (Some(a), Some(b)) => Some(a.add(b)),
            (a, b) => a.or(b),
        };
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        self.first_error = self.first_error.take().or(other.first_error);
    }

    fn record(&mut self, ok: bool, latency: Duration, body: &[u8]) {
        if ok {
            self.ok += 1;
            self.latencies_us.push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
        } else {
            self.errors += 1;
            self.first_error.get_or_insert_with(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into());
        }
    }
}

/// The `p` quantile (0..=1) of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

/// A keep-alive HTTP/1.1 connection with `TCP_NODELAY`; bounded by [`CONNECT_TIMEOUT`].
async fn connect(host: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(host))
        .await
        .with_context(|| format!("connecting to {host}: timed out"))?
        .with_context(|| format!("connecting to {host}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = timeout(CONNECT_TIMEOUT, hyper::client::conn::http1::handshake(TokioIo::new(stream)))
        .await
        .context("HTTP handshake timed out")??;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one request and reads the whole answer; `(counted as success, body)`.
async fn send(sender: &mut SendRequest<Full<Bytes>>, host: &str, s: &Scenario) -> anyhow::Result<(bool, Bytes)> {
    let mut req = Request::post(s.path).header("host", host).header("content-type", "application/json");
    for (k, v) in &s.headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(s.body.clone()))?;
    let exchange = async {
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status == 200 && body.starts_with(SUCCESS_PREFIX), body))
    };
    timeout(REQUEST_TIMEOUT, exchange).await.context("no answer within the request timeout")?
}

/// One client: sends until `until`, recording requests that start at or after `measure_from`.
async fn client(host: String, s: Arc<Scenario>, measure_from: Instant, until: Instant) -> anyhow::Result<Sample> {
    let mut sender = connect(&host).await?;
    let mut sample = Sample::default();
    loop {
        let start = Instant::now();
        if start >= until {
            return Ok(sample);
        }
        let (ok, body) = send(&mut sender, &host, &s).await.with_context(|| format!("{} on {host}", s.name))?;
        if start >= measure_from {
            sample.record(ok, start.elapsed(), &body);
        }
    }
}

/// One round of one scenario with `clients` connections opened together.
async fn round(host: &str, s: &Arc<Scenario>, clients: usize, opts: &Opts) -> anyhow::Result<Sample> {
    let measure_from = Instant::now() + Duration::from_secs_f64(opts.warmup);
    let until = measure_from + Duration::from_secs_f64(opts.seconds);
    let tasks: Vec<_> =
        (0..clients).map(|_| tokio::spawn(client(host.to_owned(), s.clone(), measure_from, until))).collect();
    // This process's CPU over exactly the measured window.
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let (start, from) = (CpuTimes::used()?, Instant::now());
        tokio::time::sleep_until(until.into()).await;
        Some(CpuTimes { ticks: CpuTimes::used()?.saturating_sub(start), wall: from.elapsed() })
    });
    let mut total = Sample { secs: opts.seconds, ..Sample::default() };
    for t in tasks {
        total.merge(t.await??);
    }
    total.cpu = cpu.await?;
    Ok(total)
}

/// A scenario's figures over its rounds.
pub(crate) struct Summary {
    /// Successful requests/s of the median round.
    pub(crate) rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    pub(crate) errors: u64,
    first_error: Option<String>,
    /// This process's CPU time per successful request over all rounds, in microseconds (all cores together).
    cpu_us: Option<f64>,
    /// Share of the machine's cores this process kept busy over all rounds.
    busy: Option<f64>,
}

fn summarise(mut samples: Vec<Sample>) -> Summary {
    samples.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let rate = samples[samples.len() / 2].rate();
    let mut all = Sample::default();
    for s in samples {
        all.merge(s);
    }
    all.latencies_us.sort_unstable();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) as f64;
    let cpu = all.cpu.filter(|c| !c.wall.is_zero() && all.ok > 0);
    Summary {
        cpu_us: cpu.map(|c| c.ticks as f64 * TICK_US / all.ok as f64),
        busy: cpu.map(|c| c.ticks as f64 * TICK_US / (c.wall.as_micros() as f64 * cores)),
        rate,
        p50_ms: percentile_ms(&all.latencies_us, 0.50),
        p99_ms: percentile_ms(&all.latencies_us, 0.99),
        errors: all.errors,
        first_error: all.first_error,
    }
}

/// Every round of every scenario at one client count, interleaved.
pub(crate) async fn measure(
    host: &str,
    scenarios: &[Arc<Scenario>],
    clients: usize,
    opts: &Opts,
) -> anyhow::Result<Vec<Summary>> {
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); scenarios.len()];
    for _ in 0..opts.rounds {
        for (i, s) in scenarios.iter().enumerate() {
            samples[i].push(round(host, s, clients, opts).await?);
        }
    }
    Ok(samples.into_iter().map(summarise).collect())
}

pub(crate) fn print_header() {
    println!(
        "{:>7}  {:<18} {:>10} {:>9} {:>9} {:>8} {:>7} {:>10} {:>6}",
        "clients", "scenario", "req/s", "p50 ms", "p99 ms", "vs noop", "errors", "CPU µs/req", "busy"
    );
}

/// Prints one table row and returns its JSON record.
pub(crate) fn report_row(clients: usize, s: &Scenario, sum: &Summary, noop_rate: f64) -> serde_json::Value {
    let ratio = if noop_rate > 0.0 { sum.rate / noop_rate } else { 0.0 };
    let cpu_us = sum.cpu_us.map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
    let busy = sum.busy.map_or_else(|| "-".to_owned(), |b| format!("{:.0}%", b * 100.0));
    println!(
        "{clients:>7}  {:<18} {:>10.0} {:>9.3} {:>9.3} {:>7.0}% {:>7} {cpu_us:>10} {busy:>6}",
        s.name,
        sum.rate,
        sum.p50_ms,
        sum.p99_ms,
        ratio * 100.0,
        sum.errors
    );
    if let Some(e) = &sum.first_error {
        println!("         ^ {} failed request(s); first answer: {e}", sum.errors);
    }
    json!({"clients": clients, "scenario": s.name, "rps": sum.rate.round(), "p50_ms": sum.p50_ms,
        "p99_ms": sum.p99_ms, "ratio_vs_noop": (ratio * 1000.0).round() / 1000.0, "errors": sum.errors,
        "cpu_us_per_req": sum.cpu_us.map(|us| (us * 10.0).round() / 10.0),
        "process_busy": sum.busy.map(|b| (b * 1000.0).round() / 1000.0)})
}

async fn drive(host: String, client_id: &str, secret: &str, opts: &Opts) -> anyhow::Result<()> {
    let scenarios = scenarios(client_id, secret);
    let mut results = Vec::new();
    let mut errors = 0;
    print_header();
    for &clients in &opts.clients {
        let summaries = measure(&host, &scenarios, clients, opts).await?;
        let noop_rate = summaries[0].rate;
        for (s, sum) in scenarios.iter().zip(&summaries) {
            results.push(report_row(clients, s, sum, noop_rate));
            errors += sum.errors;
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{}",
        json!({"bench": "api", "cores": cores, "seconds": opts.seconds, "warmup": opts.warmup,
            "rounds": opts.rounds, "valid": errors == 0, "errors": errors, "results": results})
    );
    ensure!(errors == 0, "{errors} request(s) failed during the run: the figures above are not valid");
    Ok(())
}
