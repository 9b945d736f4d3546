//! `skingate`: runs the gateway and manages it.
//!
//! # Layout
//! One module per command group: [`serve`] (the server), [`project`] (merchant projects and operator
//! adjustments), [`currency`] (the rates table), [`maintenance`] (the run-time switch), [`dev`] (`listen`,
//! `trigger`, `sign`, `verify` for merchants' developers), [`receive`] (prints received Result-URL
//! callbacks), [`sim`] (the simulated Steam world), [`stock`] (the market stock and switch). Every command
//! reads the same configuration as the server (`--config`, `skingate.toml`, `SKINGATE_*`), so it works on the
//! server's database, also while the server runs, when it finds that database: the default `database_url` is
//! relative, so run it where the server runs, or point it at the same database. A missing database is refused
//! (see [`open`]), except by `migrate` and `project create`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use skingate_server::Config;

/// `println!` for what a command prints: when its reader goes away (`skingate stock list | head -1`) the
/// command ends quietly with success, as Unix tools do, instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output_failed(&e)
        }
    }};
}

/// Ends the process after standard output failed: silently if the reader left, with a message otherwise.
fn output_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("Error: writing to standard output: {e}");
    std::process::exit(1)
}

mod currency;
mod dev;
mod maintenance;
mod project;
mod receive;
mod serve;
mod sim;
mod stock;

/// skingate: a self-hostable, SkinsBack-compatible skins payment gateway.
#[derive(Debug, Parser)]
#[command(name = "skingate", version, about)]
struct Cli {
    /// Configuration file (default: ./skingate.toml if present). Env: SKINGATE_CONFIG.
    #[arg(long, global = true, env = "SKINGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (creates the database and a demo project on first start).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage merchant projects.
    #[command(subcommand)]
    Project(project::ProjectCmd),
    /// Show or change the currency rates table.
    #[command(subcommand)]
    Currency(currency::CurrencyCmd),
    /// Switch maintenance mode on or off while the server runs.
    Maintenance {
        /// on, off, or status.
        #[arg(value_parser = ["on", "off", "status"])]
        mode: String,
    },
    /// Print the effective configuration (defaults, file and environment merged) as JSON.
    Config,
    /// Forward a project's events from the gateway's WebSocket to a local URL, signed like webhooks.
    Listen(dev::Listen),
    /// Write a sample event to a project's outbox (delivered like a real one).
    Trigger(dev::Trigger),
    /// Compute signatures (API `sign`, webhook headers) for debugging.
    #[command(subcommand)]
    Sign(dev::SignCmd),
    /// Verify a received webhook's signatures.
    Verify(dev::WebhookArgs),
    /// Manage the market stock (units the bots hold and sell).
    #[command(subcommand)]
    Stock(stock::StockCmd),
    /// Switch the market (skins withdraw) on or off; off answers -6 market_disabled.
    Market {
        /// on, off, or status.
        #[arg(value_parser = ["on", "off", "status"])]
        mode: String,
    },
    /// Print the callbacks a local endpoint receives and check their signatures (development).
    Receive(receive::Receive),
    /// Look at and act in the simulated Steam world (play the payer, let time pass).
    #[command(subcommand)]
    Sim(sim::SimCmd),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::run(config).await,
            Command::Migrate => {
                // Never under a running server (of another version, perhaps): it holds this lock.
                let _lock = skingate_store::SqliteStore::lock_for_server(&config.database_url)?;
                let pending = skingate_store::SqliteStore::pending_migrations(&config.database_url).await?;
                let store = skingate_server::app::open_store(&config, now()).await?;
                skingate_server::app::apply_configured_currencies(&store, &config, now()).await?;
                match pending {
                    None => outln!("database {} created", config.database_url),
                    Some(0) => outln!("database {} is up to date", config.database_url),
                    Some(n) => outln!(
                        "database {} upgraded ({n} migration{} applied)",
                        config.database_url,
                        if n == 1 { "" } else { "s" }
                    ),
                }
                Ok(())
            }
            Command::Project(cmd) => project::run(&config, cmd).await,
            Command::Currency(cmd) => currency::run(&config, cmd).await,
            Command::Maintenance { mode } => maintenance::run(&config, &mode).await,
            Command::Listen(args) => dev::listen(&config, args).await,
            Command::Trigger(args) => dev::trigger(&config, args).await,
            Command::Sign(cmd) => dev::sign(cmd),
            Command::Verify(args) => dev::verify(args),
            Command::Sim(cmd) => sim::run(&config, cmd).await,
            Command::Stock(cmd) => stock::run(&config, cmd).await,
            Command::Market { mode } => stock::switch(&config, &mode).await,
            Command::Receive(args) => receive::run(args).await,
            Command::Config => {
                outln!("{}", serde_json::to_string_pretty(&config)?);
                Ok(())
            }
        }
    })
}

/// Unix seconds, for commands that write outside the server.
fn now() -> i64 {
    use skingate_server::clock::{Clock, SystemClock};
    SystemClock.now().saturating_add(CLOCK_OFFSET.load(std::sync::atomic::Ordering::Relaxed))
}

/// How far the demo's clock runs ahead of the system clock (see [`open`]); 0 outside the demo.
static CLOCK_OFFSET: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Opens the server's database, refusing a missing one: from another directory the relative default would
/// create an empty database and every command would answer from it as if nothing were wrong. Its schema is
/// left as it is and must be this binary's: a newer binary's command must not upgrade the database under a
/// running older server (only `serve` and `migrate` migrate; docs/OPERATIONS.md).
async fn open(config: &Config) -> anyhow::Result<std::sync::Arc<skingate_store::SqliteStore>> {
    if !skingate_store::SqliteStore::exists(&config.database_url)? {
        anyhow::bail!(
            "no database at {}: run the command where the server runs (the default database_url is relative to \
             the working directory), or point it at the server's database with --config or \
             SKINGATE_DATABASE_URL; `skingate migrate` creates a new one",
            config.database_url
        );
    }
    with_clock_offset(config, skingate_server::app::open_current_store(config).await?).await
}

/// [`open`], or, when there is no database yet, a new one with its schema: for `project create`, which may
/// set a new gateway up before its first start.
async fn open_or_create(config: &Config) -> anyhow::Result<std::sync::Arc<skingate_store::SqliteStore>> {
    if skingate_store::SqliteStore::exists(&config.database_url)? {
        return open(config).await;
    }
    with_clock_offset(config, skingate_server::app::open_store(config, now()).await?).await
}

/// With the simulator's admin surface on (the demo, whose server runs on an adjustable clock) the CLI takes
/// the server's clock offset, so what it writes is stamped with the server's time: a secret rotated after
/// `skingate sim advance 2d` keeps its grace period, adjustments are dated right.
async fn with_clock_offset(
    config: &Config,
    store: std::sync::Arc<skingate_store::SqliteStore>,
) -> anyhow::Result<std::sync::Arc<skingate_store::SqliteStore>> {
    if config.sim_admin
        && let Some(offset) = skingate_store::Store::meta(store.as_ref(), skingate_server::clock::OFFSET_KEY).await?
    {
        let offset = offset.parse::<i64>().unwrap_or(0);
        CLOCK_OFFSET.store(offset, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(store)
}
