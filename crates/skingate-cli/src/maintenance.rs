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
    let forced = if config.maintenance { " (forced on by configuration)" } else { "" };
    println!("maintenance: {runtime}{forced}");
    Ok(())
}
