//! `skingate serve`: start the gateway, print how to reach it, stop cleanly on SIGTERM or Ctrl-C.

use std::sync::Arc;

use skingate_server::Config;
use skingate_server::clock::{Clock, OffsetClock, SystemClock};
use tracing_subscriber::EnvFilter;

/// Runs until a termination signal, then drains in-flight requests and exits.
pub async fn run(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    // Handlers go in before anything is printed: a supervisor may send SIGTERM as soon as it reads the
    // "listening" line.
    let shutdown = shutdown_signal()?;
    let public = (!config.public_url.is_empty()).then(|| config.base_url());
    // With the simulator's admin routes on (the demo), time can be moved forward; otherwise it is the system's.
    let clock: Arc<dyn Clock> = if config.sim_admin { Arc::new(OffsetClock::default()) } else { Arc::new(SystemClock) };
    let mut running = skingate_server::start(config, clock).await?;
    let local = running.base_url();
    // With `listen` on port 0 only the running server knows its port.
    let base = public.unwrap_or_else(|| local.clone());
    tracing::info!(addr = %running.addr, "skingate listening on {local}");
    println!("API endpoint:  {base}/api.php   (alias {base}/api/v1)");
    println!("Health check:  {base}/healthz");
    if let Some(demo) = &running.demo {
        println!("Demo project:  client_id={}  client_secret={}", demo.client_id(), demo.client_secret);
        let ws = base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        let sig = skingate_types::sign::static_sign(&demo.client_id(), &demo.client_secret);
        println!("Events:        {ws}/ws/?shopid={}&signature={sig}", demo.client_id());
        println!(
            "Try it:        curl -s -X POST {base}/api.php -H 'X-CLIENT-ID: {}' -H 'X-CLIENT-SECRET: {}' -d method=balance",
            demo.client_id(),
            demo.client_secret
        );
    }
    if running.state.config.sim_admin {
        println!(
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

/// Resolves on SIGTERM or SIGINT (Ctrl-C); the handlers are registered when this is called.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
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
