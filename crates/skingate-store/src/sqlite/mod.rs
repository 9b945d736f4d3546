//! The embedded SQLite store.
//!
//! SQLite allows one writer at a time. Rather than let concurrent transactions collide and retry on
//! `SQLITE_BUSY`, all writes go through a pool of exactly one connection and start with
//! `BEGIN IMMEDIATE`, so they queue in the pool in arrival order; reads use a separate pool and, in WAL
//! mode, never wait for the writer. Other processes (the CLI while the server runs) are covered by the
//! busy timeout. `synchronous=FULL` because a committed ledger entry must survive a power cut.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use skingate_core::currency::Currency;
use skingate_core::ledger::AccountKind;
use skingate_core::project::{Project, ProjectId, ProjectSettings};
use skingate_core::Money;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::{HistoryEntry, HistoryQuery, ProjectBalance, Result, Store, StoreError, WriteTx};

mod cache;
mod rows;
mod tx;

pub use tx::SqliteTx;

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite implementation of [`Store`].
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    balances: cache::SharedCache,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`, `sqlite:path` or a plain path)
    /// and runs pending migrations. `readers` is the size of the read pool.
    pub async fn open(url: &str, readers: u32) -> Result<Self> {
        let options = connect_options(url)?;
        if let Some(dir) = Path::new(options.get_filename()).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true))
            .await?;
        let balances = cache::SharedCache::default();
        tokio::spawn(cache::watch_other_writers(std::sync::Arc::downgrade(&balances), options.read_only(true)));
        Ok(Self { writer, reader, balances })
    }

    /// The balance figures straight from the database.
    async fn read_balance(&self, id: ProjectId) -> Result<ProjectBalance> {
        let row = sqlx::query(rows::BALANCE_SELECT).bind(id.0).fetch_optional(&self.reader).await?;
        let Some(r) = row else { return Err(StoreError::NotFound) };
        let (cp, dp, dpend, cpend): (i64, i64, i64, i64) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        Ok(ProjectBalance {
            available: Money::from_minor(cp - dp - dpend),
            held: Money::from_minor(cpend),
            in_flight: Money::from_minor(dpend),
            deals_sum: Money::from_minor(r.try_get(4)?),
            withdraw_sum: Money::from_minor(r.try_get(5)?),
        })
    }

    /// Closes both pools, letting in-flight work finish.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions> {
    let url = if url.starts_with("sqlite:") { url.to_owned() } else { format!("sqlite://{url}") };
    Ok(SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true))
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_project(&self, settings: &ProjectSettings, secret: &str, now: i64) -> Result<Project> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO projects (client_secret, name, active, result_url, success_url, fail_url, events_url,
                ip_allowlist, rate_limit_per_min, hold_policy, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(secret)
        .bind(&settings.name)
        .bind(settings.active)
        .bind(&settings.result_url)
        .bind(&settings.success_url)
        .bind(&settings.fail_url)
        .bind(&settings.events_url)
        .bind(rows::allowlist_text(&settings.ip_allowlist))
        .bind(i64::from(settings.rate_limit_per_min))
        .bind(settings.hold_policy.as_str())
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx::ensure_account(&mut tx, ProjectId(id), AccountKind::ProjectBalance).await?;
        tx.commit().await?;
        Ok(Project { id: ProjectId(id), client_secret: secret.to_owned(), settings: settings.clone(), created_at: now })
    }

    async fn project(&self, id: ProjectId) -> Result<Option<Project>> {
        let row = sqlx::query(rows::PROJECT_SELECT).bind(id.0).fetch_optional(&self.reader).await?;
        row.map(|r| rows::project(&r)).transpose()
    }

    async fn projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query(rows::PROJECT_SELECT_ALL).fetch_all(&self.reader).await?;
        rows.iter().map(rows::project).collect()
    }

    async fn update_project(&self, p: &Project, now: i64) -> Result<()> {
        let s = &p.settings;
        let done = sqlx::query(
            "UPDATE projects SET client_secret = ?, name = ?, active = ?, result_url = ?, success_url = ?,
                fail_url = ?, events_url = ?, ip_allowlist = ?, rate_limit_per_min = ?, hold_policy = ?,
                updated_at = ? WHERE id = ?",
        )
        .bind(&p.client_secret)
        .bind(&s.name)
        .bind(s.active)
        .bind(&s.result_url)
        .bind(&s.success_url)
        .bind(&s.fail_url)
        .bind(&s.events_url)
        .bind(rows::allowlist_text(&s.ip_allowlist))
        .bind(i64::from(s.rate_limit_per_min))
        .bind(s.hold_policy.as_str())
        .bind(now)
        .bind(p.id.0)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn currencies(&self) -> Result<Vec<Currency>> {
        let rows = sqlx::query("SELECT code, name, scale, rate_micro FROM currencies ORDER BY code")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(rows::currency).collect()
    }

    async fn upsert_currency(&self, c: &Currency, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO currencies (code, name, scale, rate_micro, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, scale = excluded.scale,
                rate_micro = excluded.rate_micro, updated_at = excluded.updated_at",
        )
        .bind(&c.code)
        .bind(&c.name)
        .bind(i64::from(c.scale))
        .bind(c.rate_micro)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn project_balance(&self, id: ProjectId) -> Result<ProjectBalance> {
        if let Some(cached) = self.balances.get(id) {
            return Ok(cached);
        }
        let generation = self.balances.generation();
        let balance = self.read_balance(id).await?;
        self.balances.put(id, generation, balance);
        Ok(balance)
    }

    async fn balance_history(&self, id: ProjectId, q: HistoryQuery) -> Result<(Vec<HistoryEntry>, bool)> {
        let rows = sqlx::query(rows::HISTORY_SELECT)
            .bind(id.0)
            .bind(q.starting)
            .bind(q.ending)
            .bind(q.after_id)
            .bind(i64::from(q.limit) + 1)
            .fetch_all(&self.reader)
            .await?;
        let has_more = rows.len() > q.limit as usize;
        let items = rows.iter().take(q.limit as usize).map(rows::history_entry).collect::<Result<_>>()?;
        Ok((items, has_more))
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?").bind(key).fetch_optional(&self.reader).await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(SqliteTx::new(tx, self.balances.clone())))
    }
}

#[cfg(test)]
mod tests;
