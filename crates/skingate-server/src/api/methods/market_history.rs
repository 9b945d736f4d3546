//! `market_history`: the project's purchases in a time range (spec §5.7).
//!
//! # Format
//! Request: `starting`, `ending` (Unix seconds, inclusive, on the purchase time), optional `start_from` (the
//! cursor from the previous page).
//! Response: `total_count` (records in this page, ≤ 1000), `has_more`, `start_from` (pass it back for the next
//! page), `items[]` of purchase records as `market_getinfo` shows them, oldest first.
//! Errors: `-6 market_disabled`, `1 missing_starting_or_ending`, `2 invalid_starting_or_ending`,
//! `3 invalid_start_from`.

use skingate_types::api::{PAGE_LIMIT, Page};

use super::{Ctx, Reply};
use crate::api::params::{Params, RangePage};
use crate::error::ApiError;

/// A `market_history` call.
#[derive(Debug)]
pub struct MarketHistory {
    starting: i64,
    ending: i64,
    start_from: i64,
}

impl MarketHistory {
    /// Reads the time range and cursor (shared by every history method).
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let RangePage { starting, ending, start_from } = RangePage::parse(params)?;
        Ok(Self { starting, ending, start_from })
    }

    /// Reads one page.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let (found, has_more) = ctx
            .state
            .store
            .purchase_history(ctx.project.id, self.starting, self.ending, self.start_from, PAGE_LIMIT as u32)
            .await?;
        let next = found.last().map_or(self.start_from, |p| p.id);
        let items: Vec<_> = found.iter().map(crate::market::record).collect();
        Reply::success(&Page { total_count: items.len() as i64, has_more, start_from: Some(next), items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(v: Value) -> Result<MarketHistory, ApiError> {
        MarketHistory::parse(&Params(v.as_object().unwrap().clone()))
    }

    #[test]
    fn parameters() {
        let code = |r: Result<MarketHistory, ApiError>| r.unwrap_err().body().error_code;
        assert_eq!(code(parse(json!({"ending": 1}))), 1);
        assert_eq!(code(parse(json!({"starting": "a", "ending": 1}))), 2);
        assert_eq!(code(parse(json!({"starting": 5, "ending": 1}))), 2);
        assert_eq!(code(parse(json!({"starting": 1, "ending": 2, "start_from": -1}))), 3);
        let ok = parse(json!({"starting": 1, "ending": 2, "start_from": "9"})).unwrap();
        assert_eq!((ok.starting, ok.ending, ok.start_from), (1, 2, 9));
    }
}
