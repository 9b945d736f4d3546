//! WAL checkpoints off the writer's path.
//!
//! In WAL mode every commit appends to the log, and by default the commit that takes the log past 1 000 pages
//! also copies it back into the database file and flushes that file: tens of milliseconds, on whichever write
//! transaction happens to cross the line (a buy batch, say), while every other writer waits for the single
//! write connection. The store turns that off on its writer (`wal_autocheckpoint = 0`) and checkpoints from a
//! connection of its own instead, every [`CHECKPOINT_EVERY`], with `PASSIVE` checkpoints: they copy what no
//! reader still needs and never block the writer or the readers. SQLite rewinds the log by itself once a
//! checkpoint has caught up, so it stays small.

use std::sync::Weak;
use std::time::Duration;

use sqlx::SqliteConnection;

/// How often the log is copied back into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints on `conn` until `alive` (something the store owns) is dropped.
pub(crate) async fn run<T>(alive: Weak<T>, mut conn: SqliteConnection) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.upgrade().is_none() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}
