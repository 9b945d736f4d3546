//! The embedded SQLite store.
//!
//! SQLite allows one writer at a time. Rather than let concurrent transactions collide and retry on
//! `SQLITE_BUSY`, all writes go through a pool of exactly one connection and start with
//! `BEGIN IMMEDIATE`, so they queue in the pool in arrival order; reads use a separate pool and, in WAL
//! mode, never wait for the writer. Other processes (the CLI while the server runs) are covered by the
//! busy timeout. `synchronous=FULL` because a committed ledger entry must survive a power cut.
//!
//! Three habits keep prepared statements prepared (sqlx caches them per connection):
//! - `LIMIT CAST(? AS INTEGER)`, never a bare `LIMIT ?`: SQLite 3.47+ reads a bare `LIMIT ?`'s bound value
//!   while planning, which marks the statement to be prepared again on every execution (it was ~8% of the
//!   gateway's CPU under the market benchmark);
//! - states compared with a partial index's `WHERE state = '…'` are literals, not bound values, for the same
//!   reason (and so the planner can use the index);
//! - bulk writes bind one JSON array and read it with `json_each`, so their SQL does not change with the
//!   number of rows.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use skingate_core::currency::Currency;
use skingate_core::ledger::AccountKind;
use skingate_core::project::{Project, ProjectId, ProjectSettings};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

use crate::{
    Attempt, AttemptRow, ClaimLimit, Delivery, DeliveryState, HistoryEntry, HistoryQuery, MissedEvents, ProjectBalance,
    ProjectChange, Result, Store, StoreError, StoredEvent, WriteTx,
};

mod cache;
mod checkpoint;
mod deposits;
#[macro_use]
mod events;
mod market;
mod rows;
mod script;
mod tx;

pub use tx::SqliteTx;

/// How long [`SqliteStore::lock_for_server`] waits for a server that is still exiting.
const LOCK_WAIT: Duration = Duration::from_secs(1);

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
    /// Whether the database file at `url` exists (an in-memory database always does). The operator CLI asks
    /// before opening: run from the wrong directory, the relative default `sqlite://skingate.db` would
    /// otherwise create an empty database beside the real one and answer from it as if nothing were wrong.
    pub fn exists(url: &str) -> Result<bool> {
        Ok(database_file(&plain_options(url)?).is_none_or(Path::exists))
    }

    /// How many of this binary's migrations the database at `url` has yet to apply, looked at without
    /// changing anything; `None` when there is no database (or no schema) there yet. `migrate` asks first so
    /// that it can tell the operator whether it created, upgraded or merely checked the database.
    pub async fn pending_migrations(url: &str) -> Result<Option<usize>> {
        let look = plain_options(url)?.read_only(true);
        if database_file(&look).is_none_or(|file| !file.exists()) {
            return Ok(None);
        }
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(look).await?;
        let applied = applied_migrations(&pool).await;
        pool.close().await;
        Ok(applied?.map(|applied| MIGRATOR.iter().filter(|m| !applied.contains(&m.version)).count()))
    }

    /// Takes the lock that lets one server at a time run on the database at `url` (a file beside it,
    /// `<database>.serve-lock`, locked for as long as the returned handle lives; the operating system lets
    /// it go if the process dies). A second server would run its own watchers and simulator beside the
    /// first's. `None` for an in-memory database, which no other process can open.
    pub fn lock_for_server(url: &str) -> Result<Option<std::fs::File>> {
        let options = plain_options(url)?;
        let Some(file) = database_file(&options) else { return Ok(None) };
        let io = |e: std::io::Error| StoreError::Database(sqlx::Error::Io(e));
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        // Named after the database's real path: reached through a symlink or another spelling of its path, a
        // second server still finds this lock.
        let real = match std::fs::canonicalize(file) {
            Ok(real) => real,
            Err(_) => std::fs::canonicalize(dir).map_err(io)?.join(file.file_name().unwrap_or_default()),
        };
        let mut path = real.into_os_string();
        path.push(".serve-lock");
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        // A supervisor that restarts a killed server at once may start the new one while the old process is
        // still exiting (the lock goes with it): wait a moment before calling the database taken.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => return Ok(Some(lock)),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::InUse(format!(
                        "another skingate server is running on {}: stop it first (one server per database)",
                        file.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
    }

    /// Opens (creating if needed) the database at `url` (`sqlite://path`, `sqlite:path` or a plain path)
    /// and runs pending migrations. `readers` is the size of the read pool.
    pub async fn open(url: &str, readers: u32) -> Result<Self> {
        Self::open_with(url, readers, true).await
    }

    /// Opens the database at `url` without changing its schema, refusing one whose schema is not exactly
    /// this binary's: the operator CLI's commands must not upgrade a database under a running server of an
    /// older version (only `serve` and `migrate` migrate), nor work on a file that is not a skingate
    /// database.
    pub async fn open_current(url: &str, readers: u32) -> Result<Self> {
        let look = plain_options(url)?.read_only(true);
        if database_file(&look).is_none() {
            // In memory: nothing another process could see is written, so the check runs on the store itself.
            let store = Self::open_with(url, readers, false).await?;
            check_schema(&store.writer, &MIGRATOR).await?;
            return Ok(store);
        }
        // A file is checked on a read-only connection that sets nothing first, before the store opens it: the
        // writer's connection would switch the file to WAL mode (a write), or create a missing one, before the
        // check could refuse it.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(look).await?;
        let checked = check_schema(&pool, &MIGRATOR).await;
        pool.close().await;
        checked?;
        Self::open_with(url, readers, false).await
    }

    /// Opens the store, running pending migrations when `migrate`, leaving the schema alone otherwise (the
    /// caller checks it: [`Self::open_current`]).
    async fn open_with(url: &str, readers: u32, migrate: bool) -> Result<Self> {
        let options = connect_options(url)?;
        if let Some(dir) = Path::new(options.get_filename()).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        // Checkpoints run on a connection of their own (see `checkpoint`); only if it opens does the writer
        // stop checkpointing on commit.
        let checkpointer = options.clone().connect().await;
        let writer_options = match &checkpointer {
            Ok(_) => options.clone().pragma("wal_autocheckpoint", "0"),
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint connection; the writer checkpoints on commit");
                options.clone()
            }
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(writer_options)
            .await?;
        if migrate {
            // An older binary on a newer database (a rollback) gets the same words as every other command.
            MIGRATOR.run(&writer).await.map_err(|e| match e {
                sqlx::migrate::MigrateError::VersionMissing(_) => StoreError::Schema(NEWER_SCHEMA.into()),
                e => e.into(),
            })?;
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true))
            .await?;
        let balances = cache::SharedCache::default();
        tokio::spawn(cache::watch_other_writers(std::sync::Arc::downgrade(&balances), options.read_only(true)));
        if let Ok(conn) = checkpointer {
            tokio::spawn(checkpoint::run(std::sync::Arc::downgrade(&balances), conn));
        }
        Ok(Self { writer, reader, balances })
    }

    /// The balance figures straight from the database.
    async fn read_balance(&self, id: ProjectId) -> Result<ProjectBalance> {
        let row = sqlx::query(rows::BALANCE_SELECT).bind(id.0).fetch_optional(&self.reader).await?;
        rows::balance(&row.ok_or(StoreError::NotFound)?)
    }

    /// Closes both pools, letting in-flight work finish.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// This binary's schema, one migration per file in `migrations/sqlite/`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The database file `options` name; `None` for an in-memory database, which no other process can open.
fn database_file(options: &SqliteConnectOptions) -> Option<&Path> {
    let file = options.get_filename();
    (!file.as_os_str().is_empty() && file != Path::new(":memory:")).then_some(file)
}

/// Why a database a newer binary has upgraded is refused: this binary cannot know what its tables now mean.
const NEWER_SCHEMA: &str = "the database's schema is newer than this binary: use the binary the server runs";

/// The versions of the migrations applied to the database behind `pool`; `None` when it has no schema at all.
async fn applied_migrations(pool: &SqlitePool) -> Result<Option<Vec<i64>>> {
    let table: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_optional(pool)
            .await?;
    if table.is_none() {
        return Ok(None);
    }
    let applied = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await?;
    Ok(Some(applied))
}

/// Refuses a database whose applied migrations are not exactly `migrator`'s.
async fn check_schema(pool: &SqlitePool, migrator: &sqlx::migrate::Migrator) -> Result<()> {
    let Some(applied) = applied_migrations(pool).await? else {
        return Err(StoreError::Schema(
            "not a skingate database (it has no schema): `skingate migrate` sets one up".into(),
        ));
    };
    let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    if applied.iter().any(|v| !known.contains(v)) {
        return Err(StoreError::Schema(NEWER_SCHEMA.into()));
    }
    if applied.len() < known.len() {
        return Err(StoreError::Schema(
            "the database's schema is older than this binary: upgrade it with `skingate migrate` (or by \
             starting the new server), after stopping the old one (docs/OPERATIONS.md)"
                .into(),
        ));
    }
    Ok(())
}

/// The database named by `url`, with none of the settings a connection applies when it opens (no journal
/// mode, which would be a write): for looking at a file before deciding to use it.
fn plain_options(url: &str) -> Result<SqliteConnectOptions> {
    let url = if url.starts_with("sqlite:") { url.to_owned() } else { format!("sqlite://{url}") };
    Ok(SqliteConnectOptions::from_str(&url)?)
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions> {
    Ok(plain_options(url)?
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
                ip_allowlist, rate_limit_per_min, hold_policy, created_at, updated_at, test_mode, multiplier_ppm,
                deposit_fee_ppm, callback_format, frame_ancestors)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        .bind(settings.test_mode)
        .bind(settings.multiplier_ppm)
        .bind(settings.deposit_fee_ppm)
        .bind(settings.callback_format.as_str())
        .bind(settings.frame_ancestors.join(" "))
        .fetch_one(&mut *tx)
        .await?;
        tx::ensure_account(&mut tx, ProjectId(id), AccountKind::ProjectBalance).await?;
        tx.commit().await?;
        Ok(Project {
            id: ProjectId(id),
            client_secret: secret.to_owned(),
            settings: settings.clone(),
            created_at: now,
            previous_secret: None,
            previous_secret_until: None,
            events_disabled_at: None,
        })
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        write_project(&mut tx, p, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn modify_project(&self, id: ProjectId, now: i64, change: &mut ProjectChange<'_>) -> Result<Project> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(rows::PROJECT_SELECT).bind(id.0).fetch_optional(&mut *tx).await?;
        let mut p = row.map(|r| rows::project(&r)).transpose()?.ok_or(StoreError::NotFound)?;
        change(&mut p).map_err(StoreError::Refused)?;
        write_project(&mut tx, &p, now).await?;
        tx.commit().await?;
        Ok(p)
    }

    async fn currencies(&self) -> Result<Vec<Currency>> {
        let rows = sqlx::query("SELECT code, name, scale, rate_micro FROM currencies ORDER BY code")
            .fetch_all(&self.reader)
            .await?;
        // One unreadable row (edited by hand) costs its own currency, not the whole table: the server
        // still starts and `skingate currency set` can repair it.
        Ok(rows
            .iter()
            .filter_map(|r| {
                rows::currency(r)
                    .map_err(|e| tracing::error!(error = %e, "a stored currency is unusable; skipped"))
                    .ok()
            })
            .collect())
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

    async fn max_recorded_offer_id(&self) -> Result<Option<u64>> {
        let max: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(id) FROM (
                 SELECT CAST(offer_id AS INTEGER) AS id FROM deposits WHERE offer_id IS NOT NULL
                 UNION ALL SELECT CAST(tradeofferid AS INTEGER) FROM purchases WHERE tradeofferid IS NOT NULL)",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(max.and_then(|m| u64::try_from(m).ok()))
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?").bind(key).fetch_optional(&self.reader).await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn save_sim_offers(&self, records: &[(u64, String)]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, &str)> = records
            .iter()
            .map(|(id, body)| {
                Ok((i64::try_from(*id).map_err(|_| StoreError::Corrupt(format!("offer id {id}")))?, body.as_str()))
            })
            .collect::<Result<_>>()?;
        sqlx::query(
            "INSERT INTO sim_offers (id, body) SELECT value->>0, value->>1 FROM json_each(?) WHERE true
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
        )
        .bind(serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn sim_offers(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT body FROM sim_offers ORDER BY id").fetch_all(&self.reader).await?)
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(SqliteTx::new(tx, self.balances.clone())))
    }

    async fn project_events_after(&self, project: ProjectId, after_seq: i64, limit: u32) -> Result<Vec<StoredEvent>> {
        events::project_events_after(&self.reader, project, after_seq, limit).await
    }

    async fn project_event(&self, project: ProjectId, id: i64) -> Result<Option<StoredEvent>> {
        events::project_event(&self.reader, project, id).await
    }

    async fn project_last_event(&self, project: ProjectId) -> Result<Option<StoredEvent>> {
        events::project_last_event(&self.reader, project).await
    }

    async fn events_after(&self, after_id: i64, limit: u32) -> Result<Vec<StoredEvent>> {
        events::events_after(&self.reader, after_id, limit).await
    }

    async fn offer_recorded(&self, offer_id: &str) -> Result<bool> {
        // Rare (an interrupted send being resolved): the purchases side has no index on the offer id and scans.
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM deposits WHERE offer_id = ?1)
                 OR EXISTS (SELECT 1 FROM purchases WHERE tradeofferid = ?1)",
        )
        .bind(offer_id)
        .fetch_one(&self.reader)
        .await?)
    }

    async fn last_event_id(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&self.reader).await?)
    }

    async fn claim_due_deliveries(&self, now: i64, lease_secs: i64, limit: &ClaimLimit) -> Result<Vec<Delivery>> {
        events::claim_due(&self.reader, &self.writer, now, lease_secs, limit).await
    }

    async fn record_attempts(&self, batch: &[AttemptRow<'_>]) -> Result<Vec<Option<i64>>> {
        events::record_attempts(&self.writer, batch).await
    }

    async fn release_deliveries(&self, leased: &[&Delivery]) -> Result<u64> {
        events::release(&self.writer, leased).await
    }

    async fn deliveries(
        &self,
        project: ProjectId,
        state: Option<DeliveryState>,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        events::deliveries(&self.reader, project, state, before_id, limit).await
    }

    async fn delivery(&self, project: ProjectId, id: i64) -> Result<Option<Delivery>> {
        events::delivery(&self.reader, project, id).await
    }

    async fn delivery_attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>> {
        events::attempts(&self.reader, delivery_id).await
    }

    async fn resend_delivery(&self, project: ProjectId, id: i64, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, locked_until = NULL, finished_at = NULL
             WHERE id = ?2 AND project_id = ?3 AND (locked_until IS NULL OR locked_until <= ?1)",
        )
        .bind(now)
        .bind(id)
        .bind(project.0)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recover_deliveries(
        &self,
        project: ProjectId,
        since: i64,
        now: i64,
        missed: Option<MissedEvents<'_>>,
        limit: u32,
    ) -> Result<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut n = sqlx::query(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, locked_until = NULL, finished_at = NULL
             WHERE id IN (SELECT id FROM deliveries WHERE project_id = ? AND state = 'failed' AND created_at >= ?
                          ORDER BY id LIMIT CAST(? AS INTEGER))",
        )
        .bind(now)
        .bind(project.0)
        .bind(since)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let room = u64::from(limit).saturating_sub(n);
        if let Some(missed) = missed.filter(|_| room > 0) {
            n += sqlx::query(concat!(
                "INSERT INTO deliveries (event_id, project_id, kind, url, state, next_attempt_at, created_at,
                         order_key)
                     SELECT e.id, e.project_id, 'events_webhook', ?, 'pending', ?, ?, ",
                events_webhook_order_key!(),
                " FROM events e
                 WHERE e.project_id = ? AND e.created_at >= ?
                   AND e.event_type IN (SELECT value FROM json_each(?))
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.kind = 'events_webhook')
                 ORDER BY e.id LIMIT CAST(? AS INTEGER)",
            ))
            .bind(missed.url)
            .bind(now)
            .bind(now)
            .bind(project.0)
            .bind(since)
            .bind(serde_json::to_string(missed.event_types).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            .bind(i64::try_from(room).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// Writes a project's settings and secret inside the caller's write transaction (see
/// [`Store::update_project`] for which fields a stale copy cannot undo).
async fn write_project(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, p: &Project, now: i64) -> Result<()> {
    let s = &p.settings;
    let done = sqlx::query(
        "UPDATE projects SET client_secret = ?, name = ?, active = ?, result_url = ?, success_url = ?,
                fail_url = ?, events_url = ?, ip_allowlist = ?, rate_limit_per_min = ?, hold_policy = ?,
                previous_secret = ?, previous_secret_until = ?,
                events_disabled_at = CASE WHEN events_url IS ? THEN events_disabled_at ELSE ? END,
                updated_at = ?, test_mode = ?,
                multiplier_ppm = ?, deposit_fee_ppm = ?, callback_format = ?, frame_ancestors = ?,
                events_failing_since = CASE WHEN events_url IS ? THEN events_failing_since END
             WHERE id = ?",
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
    .bind(&p.previous_secret)
    .bind(p.previous_secret_until)
    // The dispatcher disables an endpoint on its own: a caller's copy read before that must not switch it
    // back on. Only a new events URL takes the caller's value (a new endpoint starts enabled).
    .bind(&s.events_url)
    .bind(p.events_disabled_at)
    .bind(now)
    .bind(s.test_mode)
    .bind(s.multiplier_ppm)
    .bind(s.deposit_fee_ppm)
    .bind(s.callback_format.as_str())
    .bind(s.frame_ancestors.join(" "))
    // A new events URL starts without the old one's failing streak.
    .bind(&s.events_url)
    .bind(p.id.0)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    // Deliveries still to make go to the endpoint as it is now: events webhooks (the dispatcher sends them
    // there in any case; the log shows where they will go) and deposit callbacks, except those a deposit aimed
    // at its own `result_url` (events rows name no deposit). A merchant who fixes a broken URL gets the stuck
    // ones at the new one: retry, resend or recover.
    for (url, kind) in [(&s.events_url, "events_webhook"), (&s.result_url, "result_url")] {
        let Some(url) = url else { continue };
        // The kind is a literal in the SQL (module docs): the planner then uses the partial index of callbacks.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries SET url = ?1 WHERE project_id = ?2 AND kind = '{kind}' AND state != 'delivered'
                   AND url != ?1
                   AND NOT EXISTS (SELECT 1 FROM deposits WHERE id = deliveries.deposit_id AND result_url != '')"
        )))
        .bind(url)
        .bind(p.id.0)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
