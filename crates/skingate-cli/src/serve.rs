//! `skingate serve`: start the gateway, print how to reach it, stop cleanly on SIGTERM or Ctrl-C.

use std::sync::Arc;

use skingate_server::Config;
use skingate_server::clock::{Clock, OffsetClock, SystemClock};
use tracing_subscriber::EnvFilter;

/// Prints a banner line. Unlike the other commands' output, a closed standard output never stops the
/// server: a supervisor that stopped reading must not take the gateway down with it.
macro_rules! show {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Runs until a termination signal, then drains in-flight requests and exits.
pub async fn run(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    // Handlers go in before anything is printed: a supervisor may send SIGTERM as soon as it reads the
    // "listening" line.
    let shutdown = shutdown_signal()?;
    // One server per database: a second would run its own watchers and simulator beside the first's.
    let _lock = skingate_store::SqliteStore::lock_for_server(&config.database_url)?;
    let public = (!config.public_url.is_empty()).then(|| config.base_url());
    // With the simulator's admin routes on (the demo), time can be moved forward; otherwise it is the system's.
    let clock: Arc<dyn Clock> = if config.sim_admin { Arc::new(OffsetClock::default()) } else { Arc::new(SystemClock) };
    let mut running = skingate_server::start(config, clock).await?;
    let local = running.base_url();
    // With `listen` on port 0 only the running server knows its port.
    let base = public.unwrap_or_else(|| local.clone());
    tracing::info!(addr = %running.addr, "skingate listening on {local}");
    show!("API endpoint:  {base}/api.php   (alias {base}/api/v1)");
    show!("Health check:  {base}/healthz");
    if let Some(demo) = &running.demo {
        show!("Demo project:  client_id={}  client_secret={}", demo.client_id(), demo.client_secret);
        let ws = base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        let sig = skingate_types::sign::static_sign(&demo.client_id(), &demo.client_secret);
        show!("Events:        {ws}/ws/?shopid={}&signature={sig}", demo.client_id());
        show!(
            "Try it:        curl -s -X POST {base}/api.php -H 'X-CLIENT-ID: {}' -H 'X-CLIENT-SECRET: {}' -d method=balance",
            demo.client_id(),
            demo.client_secret
        );
    }
    if running.state.config.sim_admin {
        show!(
            "Simulator:     every SteamID64 is a simulated player (`skingate sim user 76561198000000001`); operator \
             routes and `skingate sim advance` are ON: set sim_admin = false in production"
        );
    }
    tokio::select! {
        () = shutdown => tracing::info!("shutting down"),
        res = running.wait() => return res,
    }
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM, SIGINT (Ctrl-C) or SIGHUP (the terminal closed, an SSH session dropped): each stops
/// the server cleanly; the handlers are registered when this is called.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        // Under `nohup` (SIGHUP ignored when the process started) a closed terminal must not stop the server:
        // the hang-up handler is left out, and the ignoring stays as nohup set it.
        let mut hup = if hangup_ignored() { None } else { Some(signal(SignalKind::hangup())?) };
        Ok(async move {
            let hangup = async {
                match hup.as_mut() {
                    Some(hup) => hup.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hangup => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Whether this process started with SIGHUP ignored (`nohup`), read from `/proc/self/status` (`SigIgn`, a hex
/// mask whose bit 0 is SIGHUP); false where that cannot be read.
#[cfg(unix)]
fn hangup_ignored() -> bool {
    std::fs::read_to_string("/proc/self/status").ok().is_some_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & 1 == 1)
    })
}
