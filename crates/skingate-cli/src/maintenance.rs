//! `skingate maintenance on|off|status`: the run-time switch behind `-9 under_maintenance`.

use skingate_server::Config;
use skingate_server::state::MAINTENANCE_KEY;
use skingate_store::Store;

/// Sets or shows the switch. A running server sees it within `refresh_interval_ms`.
pub async fn run(config: &Config, mode: &str) -> anyhow::Result<()> {
    let store = crate::open(config).await?;
    if mode != "status" {
        store.set_meta(MAINTENANCE_KEY, mode).await?;
    }
    let runtime = store.meta(MAINTENANCE_KEY).await?.unwrap_or_else(|| "off".into());
    if config.maintenance {
        outln!("maintenance: on (forced by the configuration's `maintenance`; the run-time switch is {runtime})");
    } else {
        outln!("maintenance: {runtime}");
    }
    Ok(())
}
