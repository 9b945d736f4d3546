//! One write transaction on the single writer connection.

use async_trait::async_trait;
use skingate_core::Money;
use skingate_core::ledger::{
    self, Account, AccountId, AccountKind, Applied, Balances, Phase, Transfer, TransferCode, TransferId, TransferSpec,
};
use skingate_core::project::ProjectId;
use sqlx::{Row, Sqlite, Transaction};

use super::cache::SharedCache;
use super::script::Script;
use crate::market::DecidedTransfer;
use crate::{Claim, IdempotencyKey, PayloadFn, ProjectBalance, Result, StoreError, StoredEvent, WriteTx};

/// The currency every ledger account is kept in today.
const LEDGER_CURRENCY: &str = skingate_core::money::LEDGER_CURRENCY;

/// Owner id of the installation's own accounts.
const SYSTEM_PROJECT: i64 = 0;

/// Rows as one JSON array for `json_each(?)`: bulk statements keep one SQL text (prepared once, cached by the
/// connection) however many rows they carry, and bind one parameter instead of one per column and row.
pub(crate) fn json<T: serde::Serialize + ?Sized>(rows: &T) -> Result<String> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("bulk rows as JSON: {e}")))
}

/// A [`WriteTx`] over SQLite; rolls back when dropped uncommitted.
pub struct SqliteTx {
    pub(crate) tx: Transaction<'static, Sqlite>,
    balances: SharedCache,
}

impl SqliteTx {
    pub(crate) fn new(tx: Transaction<'static, Sqlite>, balances: SharedCache) -> Self {
        Self { tx, balances }
    }
}

/// Returns the account's id, creating it on first use.
pub(crate) async fn ensure_account(
    tx: &mut Transaction<'static, Sqlite>,
    project: ProjectId,
    kind: AccountKind,
) -> Result<AccountId> {
    sqlx::query(
        "INSERT INTO accounts (project_id, kind, currency, no_overdraft) VALUES (?, ?, ?, ?)
         ON CONFLICT (project_id, kind, currency) DO NOTHING",
    )
    .bind(project.0)
    .bind(kind.as_str())
    .bind(LEDGER_CURRENCY)
    .bind(kind.no_overdraft())
    .execute(&mut **tx)
    .await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE project_id = ? AND kind = ? AND currency = ?")
        .bind(project.0)
        .bind(kind.as_str())
        .bind(LEDGER_CURRENCY)
        .fetch_one(&mut **tx)
        .await?;
    Ok(AccountId(id))
}

impl SqliteTx {
    async fn load_transfer(&mut self, id: &TransferId) -> Result<Option<Transfer>> {
        let row = sqlx::query(
            "SELECT debit_account_id, credit_account_id, amount, phase, pending_id, resolved, code, allow_overdraft,
                reference FROM transfers WHERE id = ?",
        )
        .bind(&id.0)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let phase: String = r.try_get(3)?;
        let code: String = r.try_get(6)?;
        let spec = TransferSpec {
            id: id.clone(),
            debit: AccountId(r.try_get(0)?),
            credit: AccountId(r.try_get(1)?),
            amount: Money::from_minor(r.try_get(2)?),
            phase: Phase::parse(&phase, r.try_get(4)?).ok_or_else(|| StoreError::Corrupt(format!("phase {phase}")))?,
            code: TransferCode::parse(&code).ok_or_else(|| StoreError::Corrupt(format!("code {code}")))?,
            allow_overdraft: r.try_get(7)?,
            reference: r.try_get(8)?,
        };
        Ok(Some(Transfer { spec, resolved: r.try_get(5)? }))
    }

    /// An account with its balances, and the project that owns it.
    pub(crate) async fn load_account(&mut self, id: AccountId) -> Result<(Account, i64)> {
        let r = sqlx::query(
            "SELECT kind, no_overdraft, debits_posted, credits_posted, debits_pending, credits_pending, project_id
             FROM accounts WHERE id = ?",
        )
        .bind(id.0)
        .fetch_one(&mut *self.tx)
        .await?;
        let kind: String = r.try_get(0)?;
        let account = Account {
            id,
            kind: AccountKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("account kind {kind}")))?,
            no_overdraft: r.try_get(1)?,
            balances: Balances {
                debits_posted: r.try_get(2)?,
                credits_posted: r.try_get(3)?,
                debits_pending: r.try_get(4)?,
                credits_pending: r.try_get(5)?,
            },
        };
        Ok((account, r.try_get(6)?))
    }

    /// Writes decided transfers (rows, entries, resolutions, settled totals) and the accounts' new balances
    /// in one hand-off to SQLite (see [`push_ledger`]).
    pub(crate) async fn write_ledger(
        &mut self,
        accounts: &[Account],
        transfers: &[DecidedTransfer],
        now: i64,
    ) -> Result<()> {
        let mut script = Script::default();
        push_ledger(&mut script, accounts, transfers, now)?;
        script.run(&mut self.tx).await?;
        Ok(())
    }
}

/// Adds the statements that write decided transfers (rows, entries, resolutions, settled totals) and the
/// accounts' new balances: the one place ledger rows are written, for a single transfer ([`WriteTx::transfer`])
/// and for a batch (the market's group-committed buys, the purchase watcher's rounds) alike. A pending transfer
/// resolved twice fails the write (unique index on `pending_id`).
pub(crate) fn push_ledger(
    script: &mut Script,
    accounts: &[Account],
    transfers: &[DecidedTransfer],
    now: i64,
) -> Result<()> {
    // Constant SQL over JSON arrays (`jsonb_each`): prepared once and cached, whatever the batch size.
    let rows: Vec<_> = transfers
        .iter()
        .map(|t| {
            let s = &t.spec;
            (
                &s.id.0,
                s.debit.0,
                s.credit.0,
                s.amount.minor(),
                s.phase.as_str(),
                s.phase.pending_id().map(|p| p.0.as_str()),
                s.code.as_str(),
                s.allow_overdraft,
                &s.reference,
            )
        })
        .collect();
    script
        .push(
            "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, phase, pending_id, code,
                allow_overdraft, reference, created_at)
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7,
                value->>8, ? FROM jsonb_each(?)",
        )
        .bind(now)?
        .bind(json(&rows)?)?;
    let rows: Vec<_> = transfers
        .iter()
        .flat_map(|t| t.entries.iter().zip(t.owners).map(move |(e, o)| (&t.spec.id, e, o)))
        .map(|(id, e, owner)| {
            (
                &id.0,
                e.account.0,
                owner,
                e.side.as_str(),
                e.amount.minor(),
                e.before.available().minor(),
                e.after.available().minor(),
                e.before.held().minor(),
                e.after.held().minor(),
                e.before.in_flight().minor(),
                e.after.in_flight().minor(),
            )
        })
        .collect();
    script
        .push(
            "INSERT INTO entries (transfer_id, account_id, project_id, side, amount, available_before,
                available_after, held_before, held_after, in_flight_before, in_flight_after, created_at)
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7,
                value->>8, value->>9, value->>10, ? FROM jsonb_each(?)",
        )
        .bind(now)?
        .bind(json(&rows)?)?;
    // The pending transfers these post or void are resolved (the unique index on pending_id refuses a second
    // resolution, failing the whole write).
    let resolved: Vec<&str> =
        transfers.iter().filter_map(|t| t.spec.phase.pending_id()).map(|p| p.0.as_str()).collect();
    if !resolved.is_empty() {
        script
            .push("UPDATE transfers SET resolved = 1 WHERE id IN (SELECT value FROM jsonb_each(?))")
            .bind(json(&resolved)?)?;
    }
    // Settled totals (what `balance` reports as deposit and withdrawal sums), summed before writing.
    let mut totals: std::collections::BTreeMap<(i64, &str, &str), i64> = std::collections::BTreeMap::new();
    for t in transfers.iter().filter(|t| !matches!(t.spec.phase, Phase::Pending | Phase::Void(_))) {
        let s = &t.spec;
        *totals.entry((s.debit.0, s.code.as_str(), "debit")).or_default() += s.amount.minor();
        *totals.entry((s.credit.0, s.code.as_str(), "credit")).or_default() += s.amount.minor();
    }
    if !totals.is_empty() {
        let rows: Vec<_> = totals.into_iter().map(|((a, c, s), t)| (a, c, s, t)).collect();
        // `WHERE true` tells SQLite's parser the upsert's ON belongs to the INSERT, not a join.
        script
            .push(
                "INSERT INTO transfer_totals (account_id, code, side, total)
                 SELECT value->>0, value->>1, value->>2, value->>3 FROM jsonb_each(?) WHERE true
                 ON CONFLICT (account_id, code, side) DO UPDATE SET total = total + excluded.total",
            )
            .bind(json(&rows)?)?;
    }
    let rows: Vec<_> = accounts
        .iter()
        .map(|a| {
            let b = &a.balances;
            (a.id.0, b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending)
        })
        .collect();
    script
        .push(
            "UPDATE accounts SET debits_posted = v.value->>1, credits_posted = v.value->>2,
                debits_pending = v.value->>3, credits_pending = v.value->>4
             FROM jsonb_each(?) AS v WHERE accounts.id = v.value->>0",
        )
        .bind(json(&rows)?)?;
    Ok(())
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn claim_idempotency_key(&mut self, key: &IdempotencyKey, request_hash: &str, now: i64) -> Result<Claim> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (project_id, scope, key, request_hash, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (project_id, scope, key) DO NOTHING",
        )
        .bind(key.project.0)
        .bind(&key.scope)
        .bind(&key.key)
        .bind(request_hash)
        .bind(now)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let row = sqlx::query(
            "SELECT request_hash, response FROM idempotency_keys WHERE project_id = ? AND scope = ? AND key = ?",
        )
        .bind(key.project.0)
        .bind(&key.scope)
        .bind(&key.key)
        .fetch_one(&mut *self.tx)
        .await?;
        let (hash, response): (String, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
        match response {
            Some(body) if hash == request_hash => Ok(Claim::Replay(body)),
            // A key without a response was claimed by work that committed without storing one: treat any
            // repeat as a conflict rather than running the work twice.
            _ => Ok(Claim::Mismatch),
        }
    }

    async fn store_idempotent_response(&mut self, key: &IdempotencyKey, response: &str) -> Result<()> {
        sqlx::query("UPDATE idempotency_keys SET response = ? WHERE project_id = ? AND scope = ? AND key = ?")
            .bind(response)
            .bind(key.project.0)
            .bind(&key.scope)
            .bind(&key.key)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn project_account(&mut self, project: ProjectId) -> Result<AccountId> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM accounts WHERE project_id = ? AND kind = 'project_balance' AND currency = ?",
        )
        .bind(project.0)
        .bind(LEDGER_CURRENCY)
        .fetch_optional(&mut *self.tx)
        .await?;
        id.map(AccountId).ok_or(StoreError::NotFound)
    }

    async fn system_account(&mut self, kind: AccountKind) -> Result<AccountId> {
        ensure_account(&mut self.tx, ProjectId(SYSTEM_PROJECT), kind).await
    }

    async fn transfer(&mut self, spec: &TransferSpec, now: i64) -> Result<Applied> {
        let existing = self.load_transfer(&spec.id).await?;
        if ledger::check_existing(spec, existing.as_ref())? {
            return Ok(Applied::AlreadyApplied);
        }
        if spec.debit == spec.credit {
            return Err(ledger::LedgerError::SameAccount.into());
        }
        let (mut debit, debit_owner) = self.load_account(spec.debit).await?;
        let (mut credit, credit_owner) = self.load_account(spec.credit).await?;
        let pending = match spec.phase.pending_id() {
            Some(id) => self.load_transfer(id).await?,
            None => None,
        };
        let entries = ledger::apply(spec, &mut debit, &mut credit, pending.as_ref())?;
        let decided =
            DecidedTransfer { spec: spec.clone(), entries: entries.clone(), owners: [debit_owner, credit_owner] };
        self.write_ledger(&[debit, credit], std::slice::from_ref(&decided), now).await?;
        Ok(Applied::New(entries))
    }

    async fn insert_event(
        &mut self,
        project: ProjectId,
        event_type: &str,
        payload: PayloadFn<'_>,
        webhook_url: Option<&str>,
        now: i64,
    ) -> Result<StoredEvent> {
        // One writer at a time, so MAX + 1 cannot race; the UNIQUE (project_id, seq) index would catch it.
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE project_id = ?")
            .bind(project.0)
            .fetch_one(&mut *self.tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (project_id, seq, event_type, payload, created_at) VALUES (?, ?, ?, '', ?) RETURNING id",
        )
        .bind(project.0)
        .bind(seq)
        .bind(event_type)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        let body = payload(id, seq);
        sqlx::query("UPDATE events SET payload = ? WHERE id = ?").bind(&body).bind(id).execute(&mut *self.tx).await?;
        if let Some(url) = webhook_url {
            sqlx::query(concat!(
                "INSERT INTO deliveries (event_id, project_id, kind, url, state, next_attempt_at, created_at, order_key)
                 SELECT e.id, e.project_id, 'events_webhook', ?, 'pending', ?, ?, ",
                events_webhook_order_key!(),
                " FROM events e WHERE e.id = ?"
            ))
            .bind(url)
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(StoredEvent { id, project, seq, event_type: event_type.to_owned(), payload: body, created_at: now })
    }

    async fn project_balance(&mut self, project: ProjectId) -> Result<ProjectBalance> {
        let row = sqlx::query(super::rows::BALANCE_SELECT).bind(project.0).fetch_optional(&mut *self.tx).await?;
        super::rows::balance(&row.ok_or(StoreError::NotFound)?)
    }

    async fn disable_events_endpoint(&mut self, project: ProjectId, url: &str, now: i64) -> Result<bool> {
        // The failing streak ends with the endpoint: a URL set later starts afresh.
        let disabled = sqlx::query(
            "UPDATE projects SET events_disabled_at = ?, events_failing_since = NULL
             WHERE id = ? AND events_disabled_at IS NULL AND events_url = ?",
        )
        .bind(now)
        .bind(project.0)
        .bind(url)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if disabled == 0 {
            return Ok(false);
        }
        sqlx::query(
            // A row whose attempt is under way keeps its lease: a resend meanwhile would POST it twice at once.
            "UPDATE deliveries SET state = 'failed', next_attempt_at = NULL, finished_at = ?
             WHERE project_id = ? AND kind = 'events_webhook' AND state = 'pending'",
        )
        .bind(now)
        .bind(project.0)
        .execute(&mut *self.tx)
        .await?;
        Ok(true)
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await?;
        self.balances.bump();
        Ok(())
    }
}
