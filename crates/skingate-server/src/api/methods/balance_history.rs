//! `balance_history`: every movement of the project balance, from the ledger.
//!
//! The vendor lists a page "Get the history of withdrawals and deposits of money" whose method name and
//! shape were never published; this is skingate's answer (also reachable as `money_history`). It pages
//! like `orders` and `market_history`.
//!
//! # Format
//! Request: `starting`, `ending` (Unix seconds, inclusive), optional `start_from` (the cursor from the
//! previous page). Response: `total_count` (items in this page, ≤ 1000), `has_more`, `start_from` (pass it
//! back for the next page), `items[]` of `{id, date, type, amount, balance_before, balance_after,
//! held_after, in_flight_after, transfer_id, reference}`; `amount` is the signed change of the spendable
//! balance in USD.
//!
//! Errors: `1 missing_starting_or_ending`, `2 invalid_starting_or_ending` (not integers, or `ending` before
//! `starting`), `3 invalid_start_from`.

use skingate_store::{HistoryEntry, HistoryQuery};
use skingate_types::api::{BalanceHistoryItem, PAGE_LIMIT, Page};

use super::{Ctx, Reply};
use crate::api::params::{Params, RangePage};
use crate::error::ApiError;

/// The other name this method answers to.
pub const ALIAS: &str = "money_history";

/// A `balance_history` call.
#[derive(Debug)]
pub struct BalanceHistory {
    starting: i64,
    ending: i64,
    start_from: i64,
}

impl BalanceHistory {
    /// Reads the time range and cursor (shared by every history method).
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let RangePage { starting, ending, start_from } = RangePage::parse(params)?;
        Ok(Self { starting, ending, start_from })
    }

    /// Reads one page of entries.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let q = HistoryQuery {
            starting: self.starting,
            ending: self.ending,
            after_id: self.start_from,
            limit: PAGE_LIMIT as u32,
        };
        let (entries, has_more) = ctx.state.store.balance_history(ctx.project.id, q).await?;
        let next = entries.last().map_or(self.start_from, |e| e.id);
        let items: Vec<BalanceHistoryItem> = entries.into_iter().map(item).collect();
        Reply::success(&Page { total_count: items.len() as i64, has_more, start_from: Some(next), items })
    }
}

fn item(e: HistoryEntry) -> BalanceHistoryItem {
    let change = e.available_after.minor() - e.available_before.minor();
    BalanceHistoryItem {
        id: e.id.to_string(),
        date: e.created_at,
        kind: e.code,
        amount: skingate_core::Money::from_minor(change).to_wire(),
        balance_before: e.available_before.to_wire(),
        balance_after: e.available_after.to_wire(),
        held_after: e.held_after.to_wire(),
        in_flight_after: e.in_flight_after.to_wire(),
        transfer_id: e.transfer_id,
        reference: e.reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<BalanceHistory, ApiError> {
        BalanceHistory::parse(&Params(v.as_object().unwrap().clone()))
    }

    #[test]
    fn parameters() {
        let ok = parse(json!({"starting": "10", "ending": 20, "start_from": "5"})).unwrap();
        assert_eq!((ok.starting, ok.ending, ok.start_from), (10, 20, 5));
        let code = |r: Result<BalanceHistory, ApiError>| r.unwrap_err().body().error_code;
        assert_eq!(code(parse(json!({"starting": 1}))), 1);
        assert_eq!(code(parse(json!({"starting": "x", "ending": 2}))), 2);
        assert_eq!(code(parse(json!({"starting": 3, "ending": 2}))), 2);
        assert_eq!(code(parse(json!({"starting": 1, "ending": 2, "start_from": "abc"}))), 3);
    }
}
