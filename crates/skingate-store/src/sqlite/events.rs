//! Outbox and delivery queries.
//!
//! Deliveries are a job table: a worker leases due rows with one `UPDATE … RETURNING` (SQLite has a single
//! writer, so no two workers can lease the same row), delivers them, and records the attempt. A lease that
//! expires (the worker died mid-delivery) makes the row due again: delivery is at least once.

use skingate_core::project::ProjectId;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::tx::json;
use crate::{Attempt, AttemptRow, ClaimLimit, Delivery, DeliveryState, NextStep, Result, StoreError, StoredEvent};

/// Delivery kind of the events webhook (the other kind, `result_url`, carries deposit callbacks).
pub const EVENTS_WEBHOOK: &str = "events_webhook";

/// How much of an answer body is kept per attempt.
pub const RESPONSE_HEAD_BYTES: usize = 4096;

/// The columns [`event`] reads, in its order: every query of whole events starts with it.
macro_rules! event_select {
    () => {
        "SELECT id, project_id, seq, event_type, payload, created_at FROM events"
    };
}

fn event(r: &SqliteRow, offset: usize) -> Result<StoredEvent> {
    Ok(StoredEvent {
        id: r.try_get(offset)?,
        project: ProjectId(r.try_get(offset + 1)?),
        seq: r.try_get(offset + 2)?,
        event_type: r.try_get(offset + 3)?,
        payload: r.try_get(offset + 4)?,
        created_at: r.try_get(offset + 5)?,
    })
}

pub(crate) async fn project_events_after(
    pool: &SqlitePool,
    project: ProjectId,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query(concat!(
        event_select!(),
        " WHERE project_id = ? AND seq > ? ORDER BY seq LIMIT CAST(? AS INTEGER)"
    ))
    .bind(project.0)
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| event(r, 0)).collect()
}

pub(crate) async fn project_event(pool: &SqlitePool, project: ProjectId, id: i64) -> Result<Option<StoredEvent>> {
    let row = sqlx::query(concat!(event_select!(), " WHERE id = ? AND project_id = ?"))
        .bind(id)
        .bind(project.0)
        .fetch_optional(pool)
        .await?;
    row.map(|r| event(&r, 0)).transpose()
}

pub(crate) async fn project_last_event(pool: &SqlitePool, project: ProjectId) -> Result<Option<StoredEvent>> {
    let row = sqlx::query(concat!(event_select!(), " WHERE project_id = ? ORDER BY seq DESC LIMIT 1"))
        .bind(project.0)
        .fetch_optional(pool)
        .await?;
    row.map(|r| event(&r, 0)).transpose()
}

pub(crate) async fn events_after(pool: &SqlitePool, after_id: i64, limit: u32) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query(concat!(event_select!(), " WHERE id > ? ORDER BY id LIMIT CAST(? AS INTEGER)"))
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| event(r, 0)).collect()
}

/// The columns [`delivery_row`] decodes; a macro so `concat!` can build `'static` SQL from it.
macro_rules! delivery_select {
    () => {
        "SELECT d.id, d.kind, d.url, d.state, d.attempts, d.next_attempt_at,
    d.last_http_status, d.created_at, e.id, e.project_id, e.seq, e.event_type, e.payload, e.created_at
    FROM deliveries d JOIN events e ON e.id = d.event_id"
    };
}

/// The `order_key` of the events-webhook delivery of event `e` (migration 0011): a purchase's `buy_item`
/// and `status_change` events go out in order, one at a time; other events keep no order (`NULL`), nor do
/// `skingate trigger`'s samples (`"test": true`, all `buy_id` `"0"`: no purchase to keep in order). A
/// Result-URL callback's key is `deposit:<id>` (`deposits.rs`).
macro_rules! events_webhook_order_key {
    () => {
        "CASE WHEN e.event_type IN ('buy_item', 'status_change') AND (e.payload ->> '$.data.test') IS NULL
             THEN 'buy:' || (e.payload ->> '$.data.buy_id') END"
    };
}

/// A `deliveries` row no earlier event's row of the same subject waits ahead of (still pending: due, leased,
/// or waiting for its retry). A row finished for good, delivered or failed, holds nothing up.
macro_rules! in_order {
    () => {
        "(deliveries.order_key IS NULL OR NOT EXISTS (
             SELECT 1 FROM deliveries AS earlier INDEXED BY deliveries_in_order
             WHERE earlier.order_key = deliveries.order_key AND earlier.state = 'pending'
                 AND earlier.order_key IS NOT NULL AND earlier.event_id < deliveries.event_id))"
    };
}

/// The deliveries due at `?1` (now), not leased, and not waiting behind an earlier one of their subject: what
/// [`claim_due`] looks for and claims.
macro_rules! due_deliveries {
    () => {
        concat!(
            "FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?1
                 AND (locked_until IS NULL OR locked_until <= ?1) AND ",
            in_order!()
        )
    };
}

fn delivery_row(r: &SqliteRow) -> Result<Delivery> {
    let state: String = r.try_get(3)?;
    let attempts: i64 = r.try_get(4)?;
    let status: Option<i64> = r.try_get(6)?;
    Ok(Delivery {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        url: r.try_get(2)?,
        state: DeliveryState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("delivery state {state}")))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: r.try_get(5)?,
        last_http_status: status.and_then(|s| u16::try_from(s).ok()),
        created_at: r.try_get(7)?,
        event: event(r, 8)?,
        leased_until: None,
    })
}

/// A delivery as one JSON array, in [`delivery_select!`]'s column order.
type DeliveryTuple =
    (i64, String, String, String, i64, Option<i64>, Option<i64>, i64, i64, i64, i64, String, String, i64);

/// Leases due rows. Every statement returns a single row (ids and deliveries aggregated as JSON by SQLite):
/// the driver hands rows over one at a time through a channel, so hundreds of rows would cost hundreds of
/// thread wake-ups, more than the query itself.
///
/// A lease needs no durability: if it is lost in a crash the row is simply due again, which at-least-once
/// delivery allows anyway (and an expired lease does the same). So the claim commits with
/// `synchronous = NORMAL` (no flush; in WAL mode this never corrupts, and the next FULL commit flushes
/// these frames too) and the connection goes back to `FULL` at once. Each claim would otherwise cost a disk
/// flush on the single writer connection (about 5 ms here), as much as recording a whole batch of attempts.
///
/// The dispatcher is woken by every commit that writes events, most of which need no webhook; a read on
/// `reader` first tells whether anything is due at all, so those wake-ups never take the writer from the
/// buys and deposits that need it. (A delivery committed before the wake-up is visible to that read.)
pub(crate) async fn claim_due(
    reader: &SqlitePool,
    writer: &SqlitePool,
    now: i64,
    lease_secs: i64,
    limit: &ClaimLimit,
) -> Result<Vec<Delivery>> {
    let due: Option<i64> = sqlx::query_scalar(concat!("SELECT 1 ", due_deliveries!(), " LIMIT 1"))
        .bind(now)
        .fetch_optional(reader)
        .await?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let mut relaxed = Relaxed(Some(writer.acquire().await?));
    let conn = relaxed.0.as_mut().ok_or_else(|| StoreError::Corrupt("connection taken".into()))?;
    sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut **conn).await?;
    let claimed = claim_in(conn, now, lease_secs, limit).await;
    sqlx::query("PRAGMA synchronous = FULL").execute(&mut **conn).await?;
    // Flushing again: back to the pool as any other writer connection.
    drop(relaxed.0.take());
    claimed
}

/// The writer connection while it does not flush on commit. Never handed to the ledger's writers like
/// that: unless [`claim_due`] restores `synchronous = FULL` and takes the connection back out, dropping this
/// (an error, or the claim's future dropped half-way) closes the connection, and the pool opens a new one
/// with the configured `FULL`.
struct Relaxed(Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>);

impl Drop for Relaxed {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

async fn claim_in(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    now: i64,
    lease_secs: i64,
    limit: &ClaimLimit,
) -> Result<Vec<Delivery>> {
    use sqlx::Connection as _;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    // The projects with pending rows, found by skipping through `deliveries_due_by_project` (one index seek
    // each, however long a project's backlog); of each, its oldest due rows up to the largest room; then
    // those within their project's room, in turns: every project's first, every project's second, ….
    let rooms: serde_json::Map<String, serde_json::Value> =
        limit.rooms.iter().map(|(p, room)| (p.0.to_string(), (*room).into())).collect();
    let largest = limit.rooms.iter().map(|r| r.1).chain([limit.per_project]).max().unwrap_or(0);
    let ids: String = sqlx::query_scalar(concat!(
        "WITH RECURSIVE p(id) AS (
             SELECT MIN(project_id) FROM deliveries INDEXED BY deliveries_due_by_project WHERE state = 'pending'
             UNION ALL
             SELECT (SELECT MIN(project_id) FROM deliveries INDEXED BY deliveries_due_by_project
                     WHERE state = 'pending' AND project_id > p.id)
             FROM p WHERE p.id IS NOT NULL)
         SELECT json_group_array(id) FROM (
             SELECT id FROM (
                 SELECT d.id, d.next_attempt_at,
                     ROW_NUMBER() OVER (PARTITION BY d.project_id ORDER BY d.next_attempt_at, d.id) AS turn,
                     COALESCE((SELECT value FROM json_each(?3) WHERE key = CAST(d.project_id AS TEXT)), ?4) AS room
                 FROM p JOIN deliveries d ON d.id IN (
                     SELECT id FROM deliveries INDEXED BY deliveries_due_by_project
                     WHERE state = 'pending' AND project_id = p.id AND next_attempt_at <= ?1
                         AND (locked_until IS NULL OR locked_until <= ?1) AND ",
        in_order!(),
        "
                     ORDER BY next_attempt_at, id LIMIT CAST(?5 AS INTEGER)))
             WHERE turn <= room ORDER BY turn, next_attempt_at, id LIMIT CAST(?2 AS INTEGER))",
    ))
    .bind(now)
    .bind(i64::from(limit.total))
    .bind(serde_json::Value::Object(rooms).to_string())
    .bind(i64::from(limit.per_project))
    .bind(i64::from(largest))
    .fetch_one(&mut *tx)
    .await?;
    if ids == "[]" {
        return Ok(Vec::new());
    }
    sqlx::query("UPDATE deliveries SET locked_until = ? WHERE id IN (SELECT value FROM json_each(?))")
        .bind(now + lease_secs)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let json: String = sqlx::query_scalar(
        "SELECT json_group_array(json(item)) FROM (
             SELECT json_array(d.id, d.kind, d.url, d.state, d.attempts, d.next_attempt_at, d.last_http_status,
                 d.created_at, e.id, e.project_id, e.seq, e.event_type, e.payload, e.created_at) AS item
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY e.id)",
    )
    .bind(&ids)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let rows: Vec<DeliveryTuple> = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    rows.into_iter()
        .map(|(id, kind, url, state, attempts, next, status, created, eid, project, seq, etype, payload, ecreated)| {
            Ok(Delivery {
                id,
                kind,
                url,
                state: DeliveryState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state {state}")))?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                next_attempt_at: next,
                last_http_status: status.and_then(|s| u16::try_from(s).ok()),
                created_at: created,
                leased_until: Some(now + lease_secs),
                event: StoredEvent {
                    id: eid,
                    project: ProjectId(project),
                    seq,
                    event_type: etype,
                    payload,
                    created_at: ecreated,
                },
            })
        })
        .collect()
}

/// Clears the leases of `leased` that still hold (see `Store::release_deliveries`). A lease lost in a crash
/// before this commits only runs out as it would have without the release.
/// Clears the leases of a JSON list of `[id, locked_until]`. `+deliveries.state`: not through the
/// `deliveries_due` index, with which the planner walked every pending row and scanned the list for each (an
/// audit: 1.1 s for 928 leases among 2 300 pending rows, 35 s among 48 000, past a stop's deadline); without
/// it, it walks the list and finds each row by its id.
pub(crate) const RELEASE: &str = "UPDATE deliveries SET locked_until = NULL FROM jsonb_each(?) AS v
    WHERE deliveries.id = v.value->>0 AND deliveries.locked_until = v.value->>1 AND +deliveries.state = 'pending'";

pub(crate) async fn release(pool: &SqlitePool, leased: &[&Delivery]) -> Result<u64> {
    let rows: Vec<(i64, i64)> = leased.iter().filter_map(|d| Some((d.id, d.leased_until?))).collect();
    if rows.is_empty() {
        return Ok(0);
    }
    let released = sqlx::query(RELEASE).bind(json(&rows)?).execute(pool).await?;
    Ok(released.rows_affected())
}

pub(crate) async fn record_attempts(pool: &SqlitePool, batch: &[AttemptRow<'_>]) -> Result<Vec<Option<i64>>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // The common case, a first-time 2xx, is written with a few set-based statements for the whole batch;
    // anything else (retries, failures) row by row.
    let (fast, slow): (Vec<_>, Vec<_>) =
        batch.iter().enumerate().partition(|(_, (_, _, next))| *next == NextStep::Delivered);
    let mut out = vec![None; batch.len()];
    for chunk in fast.chunks(200) {
        record_delivered(&mut tx, chunk.iter().map(|(_, row)| *row)).await?;
    }
    for (i, (d, a, next)) in slow {
        out[i] = record_one(&mut tx, d, a, *next).await?;
    }
    tx.commit().await?;
    Ok(out)
}

fn truncated_head(head: &str) -> &str {
    if head.len() <= RESPONSE_HEAD_BYTES {
        return head;
    }
    let mut cut = RESPONSE_HEAD_BYTES;
    while !head.is_char_boundary(cut) {
        cut -= 1;
    }
    &head[..cut]
}

/// Logs attempts with one multi-row insert.
async fn insert_attempts<'a>(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    rows: impl Iterator<Item = (&'a Delivery, &'a Attempt)>,
    n: usize,
) -> Result<()> {
    let mut sql = String::from(
        "INSERT INTO delivery_attempts (delivery_id, project_id, attempt_no, started_at, duration_ms, http_status,
            error, response_head) VALUES ",
    );
    sql.push_str(&vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", "));
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (d, a) in rows {
        insert = insert
            .bind(d.id)
            .bind(d.event.project.0)
            .bind(i64::from(a.attempt_no))
            .bind(a.started_at)
            .bind(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
            .bind(a.http_status.map(i64::from))
            .bind(a.error.clone())
            .bind(truncated_head(&a.response_head).to_owned());
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

/// Deliveries whose attempts ended alike (status, attempt number, finish time, lease) and so take one update.
type SameOutcome = (Option<u16>, u32, i64, Option<i64>);

/// Delivered attempts: one multi-row insert, one update per distinct status, one project reset.
async fn record_delivered<'a>(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    rows: impl Iterator<Item = &'a AttemptRow<'a>> + Clone,
) -> Result<()> {
    let n = rows.clone().count();
    if n == 0 {
        return Ok(());
    }
    insert_attempts(tx, rows.clone().map(|(d, a, _)| (*d, *a)), n).await?;
    let mut by_status: std::collections::BTreeMap<SameOutcome, Vec<i64>> = Default::default();
    let mut projects = std::collections::BTreeSet::new();
    for (d, a, _) in rows {
        let finished = a.started_at + i64::try_from(a.duration_ms / 1000).unwrap_or(0);
        by_status.entry((a.http_status, a.attempt_no, finished, d.leased_until)).or_default().push(d.id);
        if d.kind == EVENTS_WEBHOOK {
            projects.insert(d.event.project.0);
        }
    }
    for ((status, attempt_no, finished, lease), ids) in by_status {
        let ids = json(&ids)?;
        sqlx::query(
            "UPDATE deliveries SET state = 'delivered', attempts = ?, next_attempt_at = NULL, locked_until = NULL,
                last_http_status = ?, finished_at = ? WHERE id IN (SELECT value FROM json_each(?)) AND locked_until IS ?",
        )
        .bind(i64::from(attempt_no))
        .bind(status.map(i64::from))
        .bind(finished)
        .bind(ids)
        .bind(lease)
        .execute(&mut **tx)
        .await?;
    }
    let projects: Vec<i64> = projects.into_iter().collect();
    let projects = json(&projects)?;
    sqlx::query(
        "UPDATE projects SET events_failing_since = NULL
         WHERE id IN (SELECT value FROM json_each(?)) AND events_failing_since IS NOT NULL",
    )
    .bind(projects)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn record_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    d: &Delivery,
    a: &Attempt,
    next: NextStep,
) -> Result<Option<i64>> {
    insert_attempts(tx, std::iter::once((d, a)), 1).await?;
    let finished = a.started_at + i64::try_from(a.duration_ms / 1000).unwrap_or(0);
    let (state, next_at, finished_at) = match next {
        NextStep::Delivered => ("delivered", None, Some(finished)),
        NextStep::RetryAt(at) => ("pending", Some(at), None),
        NextStep::Fail => ("failed", None, Some(finished)),
    };
    let moved = sqlx::query(
        "UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, locked_until = NULL,
            last_http_status = ?, finished_at = ? WHERE id = ? AND locked_until IS ?",
    )
    .bind(state)
    .bind(i64::from(a.attempt_no))
    .bind(next_at)
    .bind(a.http_status.map(i64::from))
    .bind(finished_at)
    .bind(d.id)
    .bind(d.leased_until)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if moved == 0 {
        // The lease ran out and a newer attempt owns the row: this one is logged above, nothing more.
        return Ok(None);
    }
    // The failing streak (which disables an endpoint) is the events webhook's alone: a merchant's broken
    // Result URL must not switch its events off.
    if d.kind != EVENTS_WEBHOOK {
        return Ok(None);
    }
    if next == NextStep::Delivered {
        sqlx::query(
            "UPDATE projects SET events_failing_since = NULL WHERE id = ? AND events_failing_since IS NOT NULL",
        )
        .bind(d.event.project.0)
        .execute(&mut **tx)
        .await?;
        return Ok(None);
    }
    Ok(sqlx::query_scalar(
        "UPDATE projects SET events_failing_since = COALESCE(events_failing_since, ?) WHERE id = ?
         RETURNING events_failing_since",
    )
    .bind(a.started_at)
    .bind(d.event.project.0)
    .fetch_optional(&mut **tx)
    .await?
    .flatten())
}

pub(crate) async fn deliveries(
    pool: &SqlitePool,
    project: ProjectId,
    state: Option<DeliveryState>,
    before_id: i64,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let before = if before_id <= 0 { i64::MAX } else { before_id };
    let rows = sqlx::query(concat!(
        delivery_select!(),
        " WHERE d.project_id = ? AND d.id < ? AND (? IS NULL OR d.state = ?) ORDER BY d.id DESC LIMIT CAST(? AS INTEGER)"
    ))
    .bind(project.0)
    .bind(before)
    .bind(state.map(DeliveryState::as_str))
    .bind(state.map(DeliveryState::as_str))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(delivery_row).collect()
}

pub(crate) async fn delivery(pool: &SqlitePool, project: ProjectId, id: i64) -> Result<Option<Delivery>> {
    let row = sqlx::query(concat!(delivery_select!(), " WHERE d.id = ? AND d.project_id = ?"))
        .bind(id)
        .bind(project.0)
        .fetch_optional(pool)
        .await?;
    row.map(|r| delivery_row(&r)).transpose()
}

pub(crate) async fn attempts(pool: &SqlitePool, delivery_id: i64) -> Result<Vec<Attempt>> {
    let rows = sqlx::query(
        "SELECT attempt_no, started_at, duration_ms, http_status, error, response_head FROM delivery_attempts
         WHERE delivery_id = ? ORDER BY attempt_no, id",
    )
    .bind(delivery_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let no: i64 = r.try_get(0)?;
            let ms: i64 = r.try_get(2)?;
            let status: Option<i64> = r.try_get(3)?;
            Ok(Attempt {
                attempt_no: u32::try_from(no).unwrap_or(0),
                started_at: r.try_get(1)?,
                duration_ms: u64::try_from(ms).unwrap_or(0),
                http_status: status.and_then(|s| u16::try_from(s).ok()),
                error: r.try_get(4)?,
                response_head: r.try_get(5)?,
            })
        })
        .collect()
}
