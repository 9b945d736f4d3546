//! `skingate-bench`: how fast the gateway answers, measured against the loopback itself.
//!
//! # Layout
//! One module per benchmark: [`api`] (`api`, the default), [`market`], [`deposits`], [`catalogue`],
//! [`webhooks`], [`ws`] (`ws-idle`, `ws-latency`); [`target`] starts the gateway under test.
//!
//! # Method
//! The machine is shared and small (2 cores for server and load generator together), so absolute
//! requests/s say little from one run to the next. Every scenario is therefore measured beside a **no-op
//! route** (`POST /noop`: same HTTP stack, no work) in the same run, interleaved round by round, and the
//! figure that matters is the ratio. Each client is one keep-alive HTTP/1.1 connection sending requests
//! back to back; only `200` answers whose body starts with `{"status":"success"` count, and anything else
//! is reported as an error.
//!
//! By default the gateway runs in this process on its own runtime and thread, on a fresh SQLite file; with
//! `--url` it drives a gateway that is already running.
//!
//! Benchmarks are subcommands (`api`, `market`, `deposits`, `catalogue`, `webhooks`, `ws-idle`,
//! `ws-latency`); with none named, `api` runs, so `skingate-bench --clients 1,16,64 --seconds 5` is the API
//! benchmark. Results are a human table and a final machine-readable JSON line; see `docs/BENCHMARKS.md` for measured figures.

use clap::{Parser, Subcommand};

mod api;
mod catalogue;
mod deposits;
mod market;
mod target;
mod webhooks;
mod ws;

/// The benchmarks; each measures its figure beside its baseline in one run.
#[derive(Debug, Parser)]
#[command(
    about = "Benchmarks of skingate, each against its loopback baseline in the same run",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Which benchmark (default: `api`, with the options below).
    #[command(subcommand)]
    bench: Option<Bench>,
    /// Options of `api` when no benchmark is named.
    #[command(flatten)]
    api: api::Opts,
}

/// One benchmark and its options.
#[derive(Debug, Subcommand)]
enum Bench {
    /// Signed `balance` (and friends) against the no-op route.
    Api(api::Opts),
    /// Signed, durably recorded webhook deliveries against raw POSTs of the same HTTP client.
    Webhooks(webhooks::Opts),
    /// `market_buy` throughput against the no-op route, and the streamed price list's time and memory.
    Market(market::Opts),
    /// Idle authenticated WebSocket connections held by one node, and memory per connection.
    WsIdle(ws::IdleOpts),
    /// Commit-to-client latency with many connections and a steady event rate.
    WsLatency(ws::LatencyOpts),
    /// Deposit latency: trade accepted → Result-URL callback received.
    Deposits(deposits::Opts),
    /// The simulator's item catalogue: load time from the shipped list.
    Catalogue(catalogue::Opts),
}

/// Runs the chosen benchmark; a failure is one clear line on stderr and exit status 1.
fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.bench {
        None => api::run(cli.api),
        Some(Bench::Api(opts)) => api::run(opts),
        Some(Bench::Webhooks(opts)) => webhooks::run(opts),
        Some(Bench::Market(opts)) => market::run(opts),
        Some(Bench::WsIdle(opts)) => ws::idle(opts),
        Some(Bench::WsLatency(opts)) => ws::latency(opts),
        Some(Bench::Deposits(opts)) => deposits::run(opts),
        Some(Bench::Catalogue(opts)) => catalogue::run(opts),
    }
}
