//! SQL text and row decoding shared by the store's methods.

use ipnet::IpNet;
use skingate_core::Money;
use skingate_core::currency::Currency;
use skingate_core::project::{Project, ProjectId, ProjectSettings, parse_ip_net};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{HistoryEntry, ProjectBalance, Result, StoreError};

/// The columns [`project`] decodes; a macro so `concat!` can build `'static` SQL from it.
macro_rules! project_select {
    () => {
        "SELECT id, client_secret, name, active, result_url, success_url, fail_url, events_url, ip_allowlist,
            rate_limit_per_min, hold_policy, created_at, previous_secret, previous_secret_until, events_disabled_at,
            test_mode, multiplier_ppm, deposit_fee_ppm, callback_format, frame_ancestors
         FROM projects"
    };
}

pub(crate) const PROJECT_SELECT: &str = concat!(project_select!(), " WHERE id = ?");

pub(crate) const PROJECT_SELECT_ALL: &str = concat!(project_select!(), " ORDER BY id");

pub(crate) const BALANCE_SELECT: &str = "SELECT a.credits_posted, a.debits_posted, a.debits_pending, a.credits_pending,
    COALESCE((SELECT SUM(CASE WHEN t.side = 'credit' AND t.code IN ('deposit', 'deposit_hold') THEN t.total
        WHEN t.side = 'debit' AND t.code = 'clawback' THEN -t.total ELSE 0 END)
        FROM transfer_totals t WHERE t.account_id = a.id), 0),
    COALESCE((SELECT SUM(CASE WHEN t.side = 'debit' AND t.code = 'purchase' THEN t.total
        WHEN t.side = 'credit' AND t.code = 'refund' THEN -t.total ELSE 0 END)
        FROM transfer_totals t WHERE t.account_id = a.id), 0)
    FROM accounts a WHERE a.project_id = ? AND a.kind = 'project_balance' AND a.currency = 'usd'";

/// A page of balance history, in id (commit) order after the cursor. Id order, not time order: a row's
/// `created_at` is taken before its transaction waits for the writer, so a row committed later may carry an
/// earlier time, and a time-ordered cursor would skip it for a merchant syncing up to now. The price: a page
/// sorts the rows of `[starting, ending]` after the cursor, so long histories are best read in bounded windows.
pub(crate) const HISTORY_SELECT: &str = "SELECT e.id, e.created_at, t.code, e.transfer_id, t.reference,
    e.available_before, e.available_after, e.held_after, e.in_flight_after
    FROM entries e JOIN transfers t ON t.id = e.transfer_id
    WHERE e.project_id = ? AND e.created_at >= ? AND e.created_at <= ? AND e.id > ?
    ORDER BY e.id LIMIT CAST(? AS INTEGER)";

/// Allow-lists are stored as comma-separated networks: short, greppable, portable.
pub(crate) fn allowlist_text(nets: &[IpNet]) -> String {
    nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn allowlist(text: &str) -> Result<Vec<IpNet>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_ip_net(s).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

pub(crate) fn project(r: &SqliteRow) -> Result<Project> {
    let hold: String = r.try_get("hold_policy")?;
    let rate: i64 = r.try_get("rate_limit_per_min")?;
    let format: String = r.try_get("callback_format")?;
    let settings = ProjectSettings {
        name: r.try_get("name")?,
        active: r.try_get("active")?,
        result_url: r.try_get("result_url")?,
        success_url: r.try_get("success_url")?,
        fail_url: r.try_get("fail_url")?,
        events_url: r.try_get("events_url")?,
        ip_allowlist: allowlist(&r.try_get::<String, _>("ip_allowlist")?)?,
        rate_limit_per_min: u32::try_from(rate).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        hold_policy: hold.parse().map_err(|_| StoreError::Corrupt(format!("hold_policy {hold}")))?,
        test_mode: r.try_get("test_mode")?,
        multiplier_ppm: r.try_get("multiplier_ppm")?,
        deposit_fee_ppm: r.try_get("deposit_fee_ppm")?,
        callback_format: format.parse().map_err(|_| StoreError::Corrupt(format!("callback_format {format}")))?,
        frame_ancestors: r.try_get::<String, _>("frame_ancestors")?.split_whitespace().map(str::to_owned).collect(),
    };
    Ok(Project {
        id: ProjectId(r.try_get("id")?),
        client_secret: r.try_get("client_secret")?,
        settings,
        created_at: r.try_get("created_at")?,
        previous_secret: r.try_get("previous_secret")?,
        previous_secret_until: r.try_get("previous_secret_until")?,
        events_disabled_at: r.try_get("events_disabled_at")?,
    })
}

/// A stored currency, through the same checks as a new one ([`Currency::new`]): a row edited by hand with a
/// scale or rate the conversions cannot take is refused here, as corrupt, instead of panicking (or scaling
/// amounts wrong) deep inside a deposit's amounts.
pub(crate) fn currency(r: &SqliteRow) -> Result<Currency> {
    let scale: i64 = r.try_get("scale")?;
    let code: String = r.try_get("code")?;
    let name: String = r.try_get("name")?;
    let rate_micro: i64 = r.try_get("rate_micro")?;
    if code == skingate_core::money::LEDGER_CURRENCY {
        // A `usd` row stored before such rows were refused still opens: USD is the ledger's own.
        return Ok(skingate_core::currency::ledger_usd());
    }
    let scale = u32::try_from(scale).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let rate = skingate_types::Decimal::new(i128::from(rate_micro), skingate_core::currency::RATE_SCALE);
    Currency::new(&code, &name, scale, &rate).map_err(|e| StoreError::Corrupt(format!("currency {code}: {e}")))
}

pub(crate) fn history_entry(r: &SqliteRow) -> Result<HistoryEntry> {
    let money = |i: usize| -> Result<Money> { Ok(Money::from_minor(r.try_get(i)?)) };
    Ok(HistoryEntry {
        id: r.try_get(0)?,
        created_at: r.try_get(1)?,
        code: r.try_get(2)?,
        transfer_id: r.try_get(3)?,
        reference: r.try_get(4)?,
        available_before: money(5)?,
        available_after: money(6)?,
        held_after: money(7)?,
        in_flight_after: money(8)?,
    })
}

pub(crate) fn balance(r: &SqliteRow) -> Result<ProjectBalance> {
    let (cp, dp, dpend, cpend): (i64, i64, i64, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
    Ok(ProjectBalance {
        available: Money::from_minor(cp - dp - dpend),
        held: Money::from_minor(cpend),
        in_flight: Money::from_minor(dpend),
        deals_sum: Money::from_minor(r.try_get(4)?),
        withdraw_sum: Money::from_minor(r.try_get(5)?),
    })
}
