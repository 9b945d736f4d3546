//! SQLite implementation of the deposits repository (tables in `migrations/sqlite/0003_deposits.sql`).
//!
//! The `last_observed` column of that migration is not used: the trade watcher keeps the previous Steam
//! observation in memory (writing it was a disk flush on the path from acceptance to callback, and after a
//! restart two fresh observations are needed anyway). Migrations are forward-only, so the column stays.

use async_trait::async_trait;
use skingate_core::Money;
use skingate_core::deposit::DepositStatus;
use skingate_core::project::ProjectId;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, SqliteTx};
use crate::deposits::{
    Deposit, DepositItem, DepositStore, DepositTx, FailedCallback, NewDeposit, OfferRecord, OfferTarget, PayerHistory,
    StatusChange,
};
use crate::{IdempotencyKey, Result, StoreError};

/// The columns [`deposit_row`] decodes.
macro_rules! deposit_select {
    () => {
        "SELECT id, project_id, order_id, page_token, status, steam_id, trade_token, game, currency, min_usd,
            max_usd, min_text, max_text, multiplier_ppm, fee_ppm, result_url, success_url, fail_url, offer_id,
            bot_steam_id, bot_name, offer_date, offer_expires_at, items, accepted_at, hold_until, amount_usd,
            user_amount_usd, amounts, fail_reason, created_at, updated_at
         FROM deposits"
    };
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn items_json(items: &[DepositItem]) -> Result<String> {
    serde_json::to_string(items).map_err(|e| corrupt("deposit items", e))
}

fn deposit_row(r: &SqliteRow) -> Result<Deposit> {
    let status: String = r.try_get("status")?;
    let items: String = r.try_get("items")?;
    let money = |col: &str| -> Result<Option<Money>> { Ok(r.try_get::<Option<i64>, _>(col)?.map(Money::from_minor)) };
    Ok(Deposit {
        id: r.try_get("id")?,
        project: ProjectId(r.try_get("project_id")?),
        order_id: r.try_get("order_id")?,
        page_token: r.try_get("page_token")?,
        status: status.parse().map_err(|e| corrupt("deposit status", e))?,
        steam_id: r.try_get("steam_id")?,
        trade_token: r.try_get("trade_token")?,
        game: r.try_get("game")?,
        currency: r.try_get("currency")?,
        min_usd: money("min_usd")?,
        max_usd: money("max_usd")?,
        min_text: r.try_get("min_text")?,
        max_text: r.try_get("max_text")?,
        multiplier_ppm: r.try_get("multiplier_ppm")?,
        fee_ppm: r.try_get("fee_ppm")?,
        result_url: r.try_get("result_url")?,
        success_url: r.try_get("success_url")?,
        fail_url: r.try_get("fail_url")?,
        offer_id: r.try_get("offer_id")?,
        bot_steam_id: r.try_get("bot_steam_id")?,
        bot_name: r.try_get("bot_name")?,
        offer_date: r.try_get("offer_date")?,
        offer_expires_at: r.try_get("offer_expires_at")?,
        items: serde_json::from_str(&items).map_err(|e| corrupt("deposit items", e))?,
        accepted_at: r.try_get("accepted_at")?,
        hold_until: r.try_get("hold_until")?,
        amount_usd: money("amount_usd")?,
        user_amount_usd: money("user_amount_usd")?,
        amounts: r.try_get("amounts")?,
        fail_reason: r.try_get("fail_reason")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

async fn one<'e>(
    exec: impl sqlx::Executor<'e, Database = sqlx::Sqlite>,
    query: sqlx::query::Query<'e, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
) -> Result<Option<Deposit>> {
    query.fetch_optional(exec).await?.map(|r| deposit_row(&r)).transpose()
}

#[async_trait]
impl DepositStore for SqliteStore {
    async fn deposit(&self, project: ProjectId, id: i64) -> Result<Option<Deposit>> {
        let q = sqlx::query(concat!(deposit_select!(), " WHERE id = ? AND project_id = ?")).bind(id).bind(project.0);
        one(&self.reader, q).await
    }

    async fn deposit_by_order(&self, project: ProjectId, order_id: &str) -> Result<Option<Deposit>> {
        let q = sqlx::query(concat!(deposit_select!(), " WHERE project_id = ? AND order_id = ?"))
            .bind(project.0)
            .bind(order_id);
        one(&self.reader, q).await
    }

    async fn deposit_by_page_token(&self, token: &str) -> Result<Option<Deposit>> {
        let q = sqlx::query(concat!(deposit_select!(), " WHERE page_token = ?")).bind(token);
        one(&self.reader, q).await
    }

    async fn deposits_in_range(
        &self,
        project: ProjectId,
        starting: i64,
        ending: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Deposit>> {
        // In id (commit) order, as `rows::HISTORY_SELECT` explains.
        let rows = sqlx::query(concat!(
            deposit_select!(),
            " WHERE project_id = ? AND created_at >= ? AND created_at <= ? AND id > ? ORDER BY id LIMIT CAST(? AS INTEGER)"
        ))
        .bind(project.0)
        .bind(starting)
        .bind(ending)
        .bind(after_id)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(deposit_row).collect()
    }

    async fn watched_deposits(&self, after_id: i64, limit: u32) -> Result<Vec<Deposit>> {
        let rows = sqlx::query(concat!(
            deposit_select!(),
            " WHERE status IN ('pending', 'in_hold', 'hold_approved') AND id > ?
              AND (status <> 'pending' OR offer_id IS NOT NULL) ORDER BY id LIMIT CAST(? AS INTEGER)"
        ))
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(deposit_row).collect()
    }

    async fn payer_history(&self, steam_id: &str, except: i64) -> Result<PayerHistory> {
        let r = sqlx::query(
            "SELECT
                COALESCE(SUM(CASE WHEN status IN ('success', 'in_hold', 'hold_approved', 'hold_returned') THEN 1 END), 0),
                COALESCE(SUM(CASE WHEN status IN ('success', 'in_hold', 'hold_approved', 'hold_returned')
                    THEN amount_usd END), 0),
                COALESCE(SUM(CASE WHEN status = 'hold_returned' THEN 1 END), 0),
                COALESCE(SUM(CASE WHEN status = 'hold_returned' THEN amount_usd END), 0),
                MIN(created_at),
                MAX(CASE WHEN status IN ('success', 'in_hold', 'hold_approved', 'hold_returned') THEN accepted_at END)
             FROM deposits WHERE steam_id = ? AND id <> ?",
        )
        .bind(steam_id)
        .bind(except)
        .fetch_one(&self.reader)
        .await?;
        Ok(PayerHistory {
            deposits_count: r.try_get(0)?,
            deposits_sum: Money::from_minor(r.try_get(1)?),
            rollback_count: r.try_get(2)?,
            rollback_sum: Money::from_minor(r.try_get(3)?),
            first_seen: r.try_get(4)?,
            last_deposit_at: r.try_get(5)?,
        })
    }

    async fn stuck_sending(&self, before: i64, limit: u32) -> Result<Vec<Deposit>> {
        let rows = sqlx::query(concat!(
            deposit_select!(),
            " WHERE offer_sending_at IS NOT NULL AND offer_sending_at <= ? AND status = 'pending'
              AND offer_id IS NULL ORDER BY offer_sending_at, id LIMIT CAST(? AS INTEGER)"
        ))
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(deposit_row).collect()
    }

    async fn idempotency_record(&self, key: &IdempotencyKey) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT request_hash, response FROM idempotency_keys WHERE project_id = ? AND scope = ? AND key = ?",
        )
        .bind(key.project.0)
        .bind(&key.scope)
        .bind(&key.key)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    async fn failed_callbacks(&self, project: ProjectId, after_id: i64, limit: u32) -> Result<Vec<FailedCallback>> {
        let rows = sqlx::query(
            "SELECT d.id, d.deposit_id, p.order_id, d.last_http_status FROM deliveries d
             JOIN deposits p ON p.id = d.deposit_id
             WHERE d.project_id = ? AND d.kind = 'result_url' AND d.id > ? AND d.attempts > 0
               AND d.state <> 'delivered' AND (d.last_http_status IS NULL OR d.last_http_status NOT BETWEEN 200 AND 299)
             ORDER BY d.id LIMIT CAST(? AS INTEGER)",
        )
        .bind(project.0)
        .bind(after_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let status: Option<i64> = r.try_get(3)?;
                Ok(FailedCallback {
                    delivery_id: r.try_get(0)?,
                    deposit_id: r.try_get(1)?,
                    order_id: r.try_get(2)?,
                    http_status: status.and_then(|s| u16::try_from(s).ok()),
                })
            })
            .collect()
    }
}

/// Ends the sending state of a deposit with no offer and puts back what it held before the send began
/// (`sending_prior`; a row that began sending before that column existed keeps the target); false when it
/// was not sending.
async fn release_send(tx: &mut SqliteTx, id: i64, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE deposits SET
            steam_id = CASE WHEN sending_prior IS NULL THEN steam_id
                ELSE json_extract(sending_prior, '$.steam_id') END,
            trade_token = CASE WHEN sending_prior IS NULL THEN trade_token
                ELSE json_extract(sending_prior, '$.trade_token') END,
            game = CASE WHEN sending_prior IS NULL THEN game ELSE json_extract(sending_prior, '$.game') END,
            items = CASE WHEN sending_prior IS NULL THEN items
                ELSE COALESCE(json_extract(sending_prior, '$.items'), '[]') END,
            sending_prior = NULL, offer_sending_at = NULL, updated_at = ?
         WHERE id = ? AND offer_sending_at IS NOT NULL AND offer_id IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx.tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl DepositTx for SqliteTx {
    async fn insert_deposit(&mut self, d: &NewDeposit) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO deposits (project_id, order_id, page_token, status, steam_id, trade_token, game, currency,
                min_usd, max_usd, min_text, max_text, multiplier_ppm, fee_ppm, result_url, success_url, fail_url,
                created_at, updated_at)
             VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(d.project.0)
        .bind(&d.order_id)
        .bind(&d.page_token)
        .bind(&d.steam_id)
        .bind(&d.trade_token)
        .bind(&d.game)
        .bind(&d.currency)
        .bind(d.min_usd.map(Money::minor))
        .bind(d.max_usd.map(Money::minor))
        .bind(&d.min_text)
        .bind(&d.max_text)
        .bind(d.multiplier_ppm)
        .bind(d.fee_ppm)
        .bind(&d.result_url)
        .bind(&d.success_url)
        .bind(&d.fail_url)
        .bind(d.created_at)
        .bind(d.created_at)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn deposit_in_tx(&mut self, id: i64) -> Result<Option<Deposit>> {
        let q = sqlx::query(concat!(deposit_select!(), " WHERE id = ?")).bind(id);
        one(&mut *self.tx, q).await
    }

    async fn record_offer(&mut self, id: i64, o: &OfferRecord, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deposits SET steam_id = ?, trade_token = ?, game = ?, offer_id = ?, bot_steam_id = ?, bot_name = ?,
                offer_date = ?, offer_expires_at = ?, items = ?, updated_at = ?, offer_sending_at = NULL,
                sending_prior = NULL
             WHERE id = ? AND status = 'pending' AND (offer_id IS NULL OR offer_id = ?)",
        )
        .bind(&o.steam_id)
        .bind(&o.trade_token)
        .bind(&o.game)
        .bind(&o.offer_id)
        .bind(&o.bot_steam_id)
        .bind(&o.bot_name)
        .bind(o.offer_date)
        .bind(o.offer_expires_at)
        .bind(items_json(&o.items)?)
        .bind(now)
        .bind(id)
        .bind(&o.offer_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn begin_sending(&mut self, id: i64, t: &OfferTarget, now: i64) -> Result<bool> {
        // The right-hand sides read the row as it was before this update: `sending_prior` keeps the values
        // the target overwrites.
        let done = sqlx::query(
            "UPDATE deposits SET
                sending_prior = json_object('steam_id', steam_id, 'trade_token', trade_token, 'game', game,
                    'items', json(items)),
                steam_id = ?, trade_token = ?, game = ?, items = ?, offer_sending_at = ?, updated_at = ?
             WHERE id = ? AND status = 'pending' AND offer_id IS NULL AND offer_sending_at IS NULL",
        )
        .bind(&t.steam_id)
        .bind(&t.trade_token)
        .bind(&t.game)
        .bind(items_json(&t.items)?)
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn end_sending(&mut self, id: i64, now: i64) -> Result<bool> {
        release_send(self, id, now).await
    }

    async fn abandon_deposit(&mut self, id: i64, key: &IdempotencyKey) -> Result<bool> {
        let done = sqlx::query("DELETE FROM deposits WHERE id = ? AND status = 'pending' AND offer_id IS NULL")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM idempotency_keys WHERE project_id = ? AND scope = ? AND key = ? AND response IS NULL")
            .bind(key.project.0)
            .bind(&key.scope)
            .bind(&key.key)
            .execute(&mut *self.tx)
            .await?;
        Ok(true)
    }

    async fn change_status(
        &mut self,
        id: i64,
        from: DepositStatus,
        to: DepositStatus,
        c: &StatusChange,
        now: i64,
    ) -> Result<bool> {
        let items = c.items.as_deref().map(items_json).transpose()?;
        if c.release_send {
            release_send(self, id, now).await?;
        }
        let done = sqlx::query(
            "UPDATE deposits SET status = ?, accepted_at = COALESCE(?, accepted_at),
                hold_until = COALESCE(?, hold_until), amount_usd = COALESCE(?, amount_usd),
                user_amount_usd = COALESCE(?, user_amount_usd), amounts = COALESCE(?, amounts),
                items = COALESCE(?, items), fail_reason = COALESCE(?, fail_reason), updated_at = ?
             WHERE id = ? AND status = ?",
        )
        .bind(to.as_str())
        .bind(c.accepted_at)
        .bind(c.hold_until)
        .bind(c.amount_usd.map(Money::minor))
        .bind(c.user_amount_usd.map(Money::minor))
        .bind(&c.amounts)
        .bind(items)
        .bind(&c.fail_reason)
        .bind(now)
        .bind(id)
        .bind(from.as_str())
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_hold_until(&mut self, id: i64, hold_until: i64, now: i64) -> Result<()> {
        sqlx::query("UPDATE deposits SET hold_until = ?, updated_at = ? WHERE id = ?")
            .bind(hold_until)
            .bind(now)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn insert_result_delivery(
        &mut self,
        event_id: i64,
        project: ProjectId,
        deposit: i64,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO deliveries (event_id, project_id, kind, url, state, next_attempt_at, created_at, deposit_id,
                 order_key)
             SELECT ?1, ?2, 'result_url', url, 'pending', ?3, ?3, ?4, 'deposit:' || ?4 FROM (
                 SELECT COALESCE((SELECT NULLIF(result_url, '') FROM deposits WHERE id = ?4),
                                 (SELECT NULLIF(result_url, '') FROM projects WHERE id = ?2)) AS url)
             WHERE url IS NOT NULL",
        )
        .bind(event_id)
        .bind(project.0)
        .bind(now)
        .bind(deposit)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
