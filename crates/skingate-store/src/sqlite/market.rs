//! SQLite implementation of the market repository (tables in `migrations/sqlite/0004_market.sql`).

use async_trait::async_trait;
use skingate_core::Money;
use skingate_core::market::PurchaseStatus;
use skingate_core::project::ProjectId;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::script::Script;
use super::tx::json;
use super::{SqliteStore, SqliteTx};
use crate::market::{
    AnsweredKey, BulkEvent, BuyBatchWrites, DecidedTransfer, MarketStore, MarketTx, NewPurchase, NewUnit, Purchase,
    PurchaseUpdate, StoredKey, Unit, UnitGroup, UnitState,
};
use crate::{Result, StoreError};
use skingate_core::ledger::{Account, AccountId};

const UNIT_COLUMNS: &str = "id, game, name, classid, asset_id, bot, reference, state";
const PURCHASE_COLUMNS: &str = "id, project_id, unit_id, game, name, classid, price, partner, token, custom_id, status,
    tradeofferid, error_reason, sent_at, accepted_at, watch_until, created_at";

/// Rows per INSERT when adding units (SQLite's bound-parameter limit is far above 7 × this).
const INSERT_CHUNK: usize = 500;

fn unit(r: &SqliteRow) -> Result<Unit> {
    let state: String = r.try_get(7)?;
    Ok(Unit {
        id: r.try_get(0)?,
        game: r.try_get(1)?,
        name: r.try_get(2)?,
        classid: r.try_get(3)?,
        asset_id: r.try_get(4)?,
        bot: r.try_get(5)?,
        reference: Money::from_minor(r.try_get(6)?),
        state: UnitState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("unit state {state}")))?,
    })
}

fn purchase(r: &SqliteRow) -> Result<Purchase> {
    let status: String = r.try_get(10)?;
    Ok(Purchase {
        id: r.try_get(0)?,
        project: ProjectId(r.try_get(1)?),
        unit_id: r.try_get(2)?,
        game: r.try_get(3)?,
        name: r.try_get(4)?,
        classid: r.try_get(5)?,
        price: Money::from_minor(r.try_get(6)?),
        partner: r.try_get(7)?,
        token: r.try_get(8)?,
        custom_id: r.try_get(9)?,
        status: PurchaseStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("purchase status {status}")))?,
        tradeofferid: r.try_get(11)?,
        error_reason: r.try_get(12)?,
        sent_at: r.try_get(13)?,
        accepted_at: r.try_get(14)?,
        watch_until: r.try_get(15)?,
        created_at: r.try_get(16)?,
    })
}

/// A savepoint name is spliced into SQL, so only plain identifiers are accepted.
fn savepoint_name(name: &str) -> Result<&str> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(name)
    } else {
        Err(StoreError::Corrupt(format!("bad savepoint name {name:?}")))
    }
}

#[async_trait]
impl MarketStore for SqliteStore {
    async fn unit_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM market_units").fetch_one(&self.reader).await?)
    }

    async fn units_page(&self, game: Option<&str>, state: UnitState, after_id: i64, limit: u32) -> Result<Vec<Unit>> {
        // The state is spliced in as a literal (one of four fixed names) so SQLite can use the partial index of
        // units for sale; a bound parameter would hide it from the planner.
        let state = state.as_str();
        let game_clause = if game.is_some() { "game = ? AND" } else { "" };
        let sql = format!(
            "SELECT {UNIT_COLUMNS} FROM market_units WHERE {game_clause} state = '{state}' AND id > ? ORDER BY id LIMIT CAST(? AS INTEGER)"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(game) = game {
            q = q.bind(game);
        }
        let rows = q.bind(after_id).bind(i64::from(limit)).fetch_all(&self.reader).await?;
        rows.iter().map(unit).collect()
    }

    async fn unit_groups_page(&self, game: &str, after: Option<(&str, Money)>, limit: u32) -> Result<Vec<UnitGroup>> {
        let (name, reference) = after.map_or((None, 0), |(n, r)| (Some(n), r.minor()));
        let rows = sqlx::query(
            "SELECT name, MIN(classid), reference, COUNT(*) FROM market_units
             WHERE state = 'stock' AND game = ? AND (? IS NULL OR (name, reference) > (?, ?))
             GROUP BY name, reference ORDER BY name, reference LIMIT CAST(? AS INTEGER)",
        )
        .bind(game)
        .bind(name)
        .bind(name)
        .bind(reference)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnitGroup {
                    name: r.try_get(0)?,
                    classid: r.try_get(1)?,
                    reference: Money::from_minor(r.try_get(2)?),
                    count: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn search_units(&self, game: &str, names: &[String], limit: u32) -> Result<Vec<Unit>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {UNIT_COLUMNS} FROM market_units WHERE state = 'stock' AND game = "));
        q.push_bind(game).push(" AND name IN (");
        let mut sep = q.separated(", ");
        for n in names {
            sep.push_bind(n);
        }
        q.push(") ORDER BY name, reference, id LIMIT CAST(").push_bind(i64::from(limit)).push(" AS INTEGER)");
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(unit).collect()
    }

    async fn purchases_by_ids(&self, project: ProjectId, ids: &[i64]) -> Result<Vec<Purchase>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {PURCHASE_COLUMNS} FROM purchases WHERE project_id = "));
        q.push_bind(project.0).push(" AND id IN (");
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        q.push(") ORDER BY id");
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(purchase).collect()
    }

    async fn purchases_by_custom_ids(&self, project: ProjectId, custom_ids: &[String]) -> Result<Vec<Purchase>> {
        if custom_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {PURCHASE_COLUMNS} FROM purchases WHERE project_id = "));
        q.push_bind(project.0).push(" AND custom_id IN (");
        let mut sep = q.separated(", ");
        for id in custom_ids {
            sep.push_bind(id);
        }
        q.push(") ORDER BY id");
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(purchase).collect()
    }

    async fn purchase_history(
        &self,
        project: ProjectId,
        starting: i64,
        ending: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<(Vec<Purchase>, bool)> {
        // In id (commit) order, as `rows::HISTORY_SELECT` explains.
        let sql = format!(
            "SELECT {PURCHASE_COLUMNS} FROM purchases WHERE project_id = ? AND created_at >= ? AND created_at <= ?
             AND id > ? ORDER BY id LIMIT CAST(? AS INTEGER)"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project.0)
            .bind(starting)
            .bind(ending)
            .bind(after_id)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await?;
        let has_more = rows.len() > limit as usize;
        let items = rows.iter().take(limit as usize).map(purchase).collect::<Result<_>>()?;
        Ok((items, has_more))
    }

    async fn purchases_due(&self, now: i64, limit: u32) -> Result<Vec<Purchase>> {
        let sql = format!(
            "SELECT {PURCHASE_COLUMNS} FROM purchases
             WHERE status IN ('creating_trade', 'waiting_accept', 'accepted') AND next_check_at <= ?
             ORDER BY next_check_at, id LIMIT CAST(? AS INTEGER)"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(i64::from(limit)).fetch_all(&self.reader).await?;
        rows.iter().map(purchase).collect()
    }

    async fn purchases_waiting(&self, until: i64) -> Result<Vec<Purchase>> {
        // The first status term lets the planner use `purchases_open` (a partial index's condition must appear
        // as it is); the second keeps the waiting ones.
        let sql = format!(
            "SELECT {PURCHASE_COLUMNS} FROM purchases
             WHERE status IN ('creating_trade', 'waiting_accept', 'accepted') AND next_check_at <= ?
               AND status = 'waiting_accept'
             ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(until).fetch_all(&self.reader).await?;
        rows.iter().map(purchase).collect()
    }

    async fn last_purchase_id(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM purchases").fetch_one(&self.reader).await?)
    }

    async fn units_by_ids(&self, ids: &[i64]) -> Result<Vec<Unit>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UNIT_COLUMNS} FROM market_units WHERE id IN (SELECT value FROM jsonb_each(?1)) ORDER BY id"
        )))
        .bind(json(ids)?)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(unit).collect()
    }

    async fn withdraw_units(&self, ids: &[i64], now: i64) -> Result<Vec<i64>> {
        let mut tx = crate::Store::begin(self).await?;
        let for_sale: std::collections::HashSet<i64> = tx.stock_units(ids).await?.iter().map(|u| u.id).collect();
        let refused: Vec<i64> = ids.iter().copied().filter(|id| !for_sale.contains(id)).collect();
        if refused.is_empty() {
            tx.move_units(ids, &[UnitState::Stock], UnitState::Withdrawn, now).await?;
            tx.commit().await?;
        }
        Ok(refused)
    }
}

#[async_trait]
impl MarketTx for SqliteTx {
    async fn savepoint(&mut self, name: &str) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("SAVEPOINT {}", savepoint_name(name)?))).execute(&mut *self.tx).await?;
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self, name: &str) -> Result<()> {
        let name = savepoint_name(name)?;
        sqlx::query(sqlx::AssertSqlSafe(format!("ROLLBACK TO SAVEPOINT {name}"))).execute(&mut *self.tx).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("RELEASE SAVEPOINT {name}"))).execute(&mut *self.tx).await?;
        Ok(())
    }

    async fn release_savepoint(&mut self, name: &str) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("RELEASE SAVEPOINT {}", savepoint_name(name)?)))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn add_units(&mut self, units: &[NewUnit], now: i64) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(units.len());
        for chunk in units.chunks(INSERT_CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO market_units (game, name, classid, asset_id, bot, reference, state, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, u| {
                b.push_bind(&u.game)
                    .push_bind(&u.name)
                    .push_bind(&u.classid)
                    .push_bind(u.asset_id)
                    .push_bind(&u.bot)
                    .push_bind(u.reference.minor())
                    .push_bind(UnitState::Stock.as_str())
                    .push_bind(now)
                    .push_bind(now);
            });
            q.push(" RETURNING id");
            let rows = q.build().fetch_all(&mut *self.tx).await?;
            for r in rows {
                ids.push(r.try_get(0)?);
            }
        }
        Ok(ids)
    }

    async fn stock_units(&mut self, ids: &[i64]) -> Result<Vec<Unit>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UNIT_COLUMNS} FROM market_units WHERE state = 'stock' AND id IN (SELECT value FROM jsonb_each(?1))"
        )))
        .bind(json(ids)?)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(unit).collect()
    }

    async fn cheapest_units(&mut self, game: &str, name: &str, limit: u32) -> Result<Vec<Unit>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UNIT_COLUMNS} FROM market_units WHERE state = 'stock' AND game = ? AND name = ?
             ORDER BY reference, id LIMIT CAST(? AS INTEGER)"
        )))
        .bind(game)
        .bind(name)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(unit).collect()
    }

    async fn move_units(&mut self, ids: &[i64], from: &[UnitState], to: UnitState, now: i64) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut script = Script::default();
        push_move_units(&mut script, ids, from, to, now)?;
        moved(&script.run(&mut self.tx).await?)
    }

    async fn update_purchases(&mut self, updates: &[PurchaseUpdate], now: i64) -> Result<Vec<i64>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<_> = updates
            .iter()
            .map(|u| {
                (
                    u.id,
                    u.from.as_str(),
                    u.to.as_str(),
                    &u.tradeofferid,
                    &u.error_reason,
                    u.sent_at,
                    u.accepted_at,
                    u.watch_until,
                    u.next_check_at,
                )
            })
            .collect();
        let rows = json(&rows)?;
        // Which of them are still in their `from` status, as one JSON row: `RETURNING` would hand each id
        // over as a message of its own (about 2.5 µs a row, while holding the writer).
        let changed: String = sqlx::query_scalar(
            "SELECT json_group_array(p.id) FROM jsonb_each(?1) AS v
             JOIN purchases p ON p.id = v.value->>0 AND p.status = v.value->>1",
        )
        .bind(&rows)
        .fetch_one(&mut *self.tx)
        .await?;
        sqlx::query(
            "UPDATE purchases SET status = v.value->>2,
                tradeofferid = COALESCE(v.value->>3, purchases.tradeofferid),
                error_reason = COALESCE(v.value->>4, purchases.error_reason),
                sent_at = COALESCE(v.value->>5, purchases.sent_at),
                accepted_at = COALESCE(v.value->>6, purchases.accepted_at),
                watch_until = COALESCE(v.value->>7, purchases.watch_until),
                next_check_at = v.value->>8, updated_at = ?1
             FROM jsonb_each(?2) AS v WHERE purchases.id = v.value->>0 AND purchases.status = v.value->>1",
        )
        .bind(now)
        .bind(&rows)
        .execute(&mut *self.tx)
        .await?;
        serde_json::from_str(&changed).map_err(|e| StoreError::Corrupt(format!("changed purchase ids: {e}")))
    }

    async fn set_next_checks(&mut self, checks: &[(i64, i64)]) -> Result<()> {
        if checks.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE purchases SET next_check_at = v.value->>1 FROM jsonb_each(?1) AS v WHERE purchases.id = v.value->>0",
        )
        .bind(json(checks)?)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn next_purchase_id(&mut self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM purchases").fetch_one(&mut *self.tx).await?)
    }

    async fn idempotency_keys(&mut self, project: ProjectId, scope: &str, keys: &[&str]) -> Result<Vec<StoredKey>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT key, request_hash, response FROM idempotency_keys
             WHERE project_id = ?1 AND scope = ?2 AND key IN (SELECT value FROM jsonb_each(?3))",
        )
        .bind(project.0)
        .bind(scope)
        .bind(json(keys)?)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| Ok(StoredKey { key: r.try_get(0)?, request_hash: r.try_get(1)?, response: r.try_get(2)? }))
            .collect()
    }

    async fn ledger_account(&mut self, id: AccountId) -> Result<(Account, i64)> {
        self.load_account(id).await
    }

    async fn write_decided_transfers(
        &mut self,
        accounts: &[Account],
        transfers: &[DecidedTransfer],
        now: i64,
    ) -> Result<()> {
        self.write_ledger(accounts, transfers, now).await
    }

    async fn insert_events_bulk(&mut self, events: &[BulkEvent], now: i64) -> Result<()> {
        let mut script = Script::default();
        push_events(&mut script, &self.number_events(events).await?, now)?;
        script.run(&mut self.tx).await?;
        Ok(())
    }

    async fn write_buy_batch(&mut self, w: &BuyBatchWrites<'_>, now: i64) -> Result<()> {
        // The only read first (event numbers), then every write in one hand-off to SQLite.
        let events = self.number_events(w.events).await?;
        let units: Vec<i64> = w.purchases.iter().map(|(_, p)| p.unit.id).collect();
        let mut script = Script::default();
        if !units.is_empty() {
            push_move_units(&mut script, &units, &[UnitState::Stock], UnitState::Reserved, now)?;
        }
        push_purchases(&mut script, w.purchases, now)?;
        if !w.transfers.is_empty() {
            super::tx::push_ledger(&mut script, w.accounts, w.transfers, now)?;
        }
        push_events(&mut script, &events, now)?;
        push_answered_keys(&mut script, w.answered, now)?;
        // The units' `SELECT changes()` is the script's only row.
        let reserved = moved(&script.run(&mut self.tx).await?)?;
        if reserved != units.len() as u64 {
            // Read in this transaction on the only writer: a unit that moved meanwhile is a bug, not a race.
            return Err(StoreError::Corrupt(format!("reserved {reserved} of {} units sold", units.len())));
        }
        Ok(())
    }
}

impl SqliteTx {
    /// Gives each event its id and its project's next sequence number (this transaction holds the only write
    /// lock, so numbers handed out from the current maxima are free) and builds its body.
    async fn number_events<'e>(&mut self, events: &'e [BulkEvent]) -> Result<Vec<NumberedEvent<'e>>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut projects: Vec<i64> = events.iter().map(|e| e.project.0).collect();
        projects.sort_unstable();
        projects.dedup();
        // One read for the next id and every project's next sequence number.
        let rows = sqlx::query(
            "SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM events), p.value,
                (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE project_id = p.value)
             FROM jsonb_each(?) AS p",
        )
        .bind(json(&projects)?)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut next_id: i64 = rows.first().map_or(Ok(1), |r| r.try_get(0))?;
        let mut seqs = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            seqs.insert(r.try_get::<i64, _>(1)?, r.try_get::<i64, _>(2)?);
        }
        let mut numbered = Vec::with_capacity(events.len());
        for e in events {
            let seq = seqs.get_mut(&e.project.0).ok_or_else(|| StoreError::Corrupt("event project".into()))?;
            numbered.push(NumberedEvent { id: next_id, seq: *seq, body: (e.payload)(next_id, *seq), event: e });
            next_id += 1;
            *seq += 1;
        }
        Ok(numbered)
    }
}

/// An event with its id, sequence number and body, ready to write.
struct NumberedEvent<'e> {
    id: i64,
    seq: i64,
    body: String,
    event: &'e BulkEvent,
}

/// Adds the statements writing numbered events and the webhook deliveries of those that have a URL.
fn push_events(script: &mut Script, events: &[NumberedEvent<'_>], now: i64) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = events.iter().map(|e| (e.id, e.event.project.0, e.seq, e.event.event_type, &e.body)).collect();
    script
        .push(
            "INSERT INTO events (id, project_id, seq, event_type, payload, created_at)
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ? FROM jsonb_each(?)",
        )
        .bind(now)?
        .bind(json(&rows)?)?;
    let deliveries: Vec<_> =
        events.iter().filter_map(|e| Some((e.id, e.event.project.0, e.event.webhook_url.as_deref()?))).collect();
    if !deliveries.is_empty() {
        script
            .push(concat!(
                "INSERT INTO deliveries (event_id, project_id, kind, url, state, next_attempt_at, created_at, order_key)
                 SELECT e.id, e.project_id, 'events_webhook', value->>2, 'pending', ?, ?, ",
                events_webhook_order_key!(),
                " FROM jsonb_each(?) JOIN events e ON e.id = value->>0"
            ))
            .bind(now)?
            .bind(now)?
            .bind(json(&deliveries)?)?;
    }
    Ok(())
}

/// Adds the statement recording purchases in `creating_trade`, due for the watcher now.
fn push_purchases(script: &mut Script, purchases: &[(i64, NewPurchase)], now: i64) -> Result<()> {
    if purchases.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = purchases
        .iter()
        .map(|(id, p)| {
            (
                id,
                p.project.0,
                p.unit.id,
                &p.unit.game,
                &p.unit.name,
                &p.unit.classid,
                p.price.minor(),
                &p.partner,
                &p.token,
                &p.custom_id,
            )
        })
        .collect();
    script
        .push(
            "INSERT INTO purchases (id, project_id, unit_id, game, name, classid, price, partner, token,
                custom_id, status, next_check_at, created_at, updated_at)
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7,
                value->>8, value->>9, 'creating_trade', ?, ?, ? FROM jsonb_each(?)",
        )
        .bind(now)?
        .bind(now)?
        .bind(now)?
        .bind(json(&rows)?)?;
    Ok(())
}

/// Adds the statements moving the units among `ids` that are in a `from` state to `to`, then reporting how
/// many moved (one row, even for no ids).
fn push_move_units(script: &mut Script, ids: &[i64], from: &[UnitState], to: UnitState, now: i64) -> Result<()> {
    // States are spliced in as literals (fixed names, not input): a bound value compared with the partial
    // indexes' `state = 'stock'` would make SQLite re-plan the statement whenever the binding changes.
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "UPDATE market_units SET state = '{}', updated_at = ?
         WHERE id IN (SELECT value FROM jsonb_each(?)) AND state IN ({})",
        to.as_str(),
        from.join(", ")
    );
    script.push(&sql).bind(now)?.bind(json(ids)?)?;
    script.push("SELECT changes()");
    Ok(())
}

/// How many units the script's [`push_move_units`] moved: its `SELECT changes()` row (0 without one).
fn moved(rows: &[SqliteRow]) -> Result<u64> {
    rows.first().map_or(Ok(0), |r| Ok(r.try_get::<i64, _>(0)?.unsigned_abs()))
}

/// Adds the statement inserting keys with their answers (a key that exists already fails the script).
fn push_answered_keys(script: &mut Script, keys: &[AnsweredKey], now: i64) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> =
        keys.iter().map(|k| (k.key.project.0, &k.key.scope, &k.key.key, &k.request_hash, &k.response)).collect();
    script
        .push(
            "INSERT INTO idempotency_keys (project_id, scope, key, request_hash, response, created_at)
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, ? FROM jsonb_each(?)",
        )
        .bind(now)?
        .bind(json(&rows)?)?;
    Ok(())
}
