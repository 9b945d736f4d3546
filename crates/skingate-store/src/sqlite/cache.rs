//! A read cache of project balances that is never behind this process's own writes.
//!
//! `balance` is the hottest read of the API, and a SQLite query through sqlx costs far more than the rest
//! of the request (a hop to the connection's worker thread and back). The cache keeps the last figures per
//! project together with the *generation* they were read at. The generation moves:
//! - when a write transaction of this process commits ([`super::SqliteTx::commit`]), before the caller
//!   sees the commit succeed, so a process always reads its own writes;
//! - when another process (the CLI, a second server) commits, detected by polling SQLite's
//!   `PRAGMA data_version` on a dedicated connection every [`POLL_INTERVAL`].
//!
//! An entry read at an older generation is refetched. Writes never consult the cache: the ledger checks
//! balances inside its own transaction. The only staleness is a commit made by *another process*, seen
//! here at most one poll interval late.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use skingate_core::project::ProjectId;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};

use crate::ProjectBalance;

/// How often commits by other processes are looked for.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Cached balances and the generation counter.
#[derive(Debug, Default)]
pub(crate) struct BalanceCache {
    generation: AtomicU64,
    entries: RwLock<HashMap<ProjectId, (u64, ProjectBalance)>>,
    /// No watcher sees other processes' commits: every read goes to the database.
    disabled: AtomicBool,
}

impl BalanceCache {
    /// The current generation; read it *before* querying, store the result under it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Invalidates every entry.
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops serving entries for good (see [`watch_other_writers`]).
    pub(crate) fn disable(&self) {
        self.disabled.store(true, Ordering::Release);
    }

    /// A fresh entry, if any.
    pub(crate) fn get(&self, project: ProjectId) -> Option<ProjectBalance> {
        if self.disabled.load(Ordering::Acquire) {
            return None;
        }
        let generation = self.generation();
        let entries = self.entries.read().expect("balance cache lock");
        entries.get(&project).filter(|(g, _)| *g == generation).map(|(_, b)| *b)
    }

    /// Stores figures read at `generation`.
    pub(crate) fn put(&self, project: ProjectId, generation: u64, balance: ProjectBalance) {
        self.entries.write().expect("balance cache lock").insert(project, (generation, balance));
    }
}

/// Watches for commits by other connections until the cache is dropped.
pub(crate) async fn watch_other_writers(cache: Weak<BalanceCache>, options: SqliteConnectOptions) {
    let Ok(mut conn) = options.connect().await else {
        // Without a watcher, never trust the cache across processes: a commit by the CLI would stay unseen
        // for as long as this process writes nothing itself.
        if let Some(cache) = cache.upgrade() {
            cache.disable();
        }
        tracing::warn!("cannot open the data_version watcher; balances are read from the database each time");
        return;
    };
    let mut last = data_version(&mut conn).await;
    // Entries cached before this baseline may predate a commit it already counts: start them afresh.
    match cache.upgrade() {
        Some(cache) => cache.bump(),
        None => return,
    }
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    loop {
        tick.tick().await;
        let Some(cache) = cache.upgrade() else { return };
        let now = data_version(&mut conn).await;
        if now != last || now.is_none() {
            cache.bump();
            last = now;
        }
    }
}

async fn data_version(conn: &mut SqliteConnection) -> Option<i64> {
    sqlx::query_scalar("PRAGMA data_version").fetch_one(conn).await.ok()
}

/// Shares one cache between the store and its transactions.
pub(crate) type SharedCache = Arc<BalanceCache>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A disabled cache (its watcher could not start) serves nothing, whatever was put in it.
    #[test]
    fn a_disabled_cache_serves_nothing() {
        let cache = BalanceCache::default();
        let p = ProjectId(1);
        cache.put(p, cache.generation(), ProjectBalance::default());
        assert!(cache.get(p).is_some());
        cache.disable();
        assert!(cache.get(p).is_none());
        cache.put(p, cache.generation(), ProjectBalance::default());
        assert!(cache.get(p).is_none());
    }
}
