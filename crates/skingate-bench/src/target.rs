//! The gateway under test, started in this process on its own runtime and thread so that the load
//! generator's tasks and the server's never share a scheduler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::Context;
use skingate_core::project::ProjectSettings;
use skingate_server::Config;
use skingate_server::clock::SystemClock;
use tokio::sync::oneshot;

/// A running in-process gateway with one project whose rate limit does not get in the way.
pub struct InProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bench project's client id.
    pub client_id: String,
    /// The bench project's secret.
    pub secret: String,
    /// The gateway's state (use it through [`InProcess::handle`]: its pools live on that runtime).
    pub state: skingate_server::AppState,
    /// The server runtime, to run store operations where the store lives.
    pub handle: tokio::runtime::Handle,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts the gateway on 127.0.0.1:0 with a fresh database.
    pub fn start(tweak: impl FnOnce(Config) -> Config + Send + 'static) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = Config::defaults()
            .with("listen", "127.0.0.1:0")
            .and_then(|c| c.with("database_url", format!("sqlite://{}", dir.path().join("bench.db").display())))
            .and_then(|c| c.with("demo_project", false))
            .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let config = tweak(config);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("server runtime");
            let handle = rt.handle().clone();
            rt.block_on(async move {
                let started = async {
                    let running = skingate_server::start(config, Arc::new(SystemClock)).await?;
                    let mut settings = ProjectSettings::named("bench");
                    settings.rate_limit_per_min = u32::MAX / 2;
                    let project = running.state.store.create_project(&settings, "bench-secret", 0).await?;
                    anyhow::Ok((running, project))
                };
                match started.await {
                    Ok((running, project)) => {
                        let ready = (
                            running.addr,
                            project.client_id(),
                            project.client_secret.clone(),
                            running.state.clone(),
                            handle,
                        );
                        let _ = ready_tx.send(Ok(ready));
                        let _ = stop_rx.await;
                        let _ = running.stop().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        });
        let (addr, client_id, secret, state, handle) = ready_rx.recv().context("server thread died")??;
        Ok(Self { addr, client_id, secret, state, handle, stop, thread, _dir: dir })
    }

    /// Stops the gateway and waits for its thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
