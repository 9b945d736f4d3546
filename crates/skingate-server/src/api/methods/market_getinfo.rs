//! `market_getinfo`: where purchases stand (spec §5.6).
//!
//! # Format
//! Request: one of `buy_id` (one purchase), `buy_ids` (array) or `custom_ids` (array; PHP-style `custom_ids[]=`
//! works too), at most 1000 ids (more is `3 too_many_ids`, a skingate code: leaving the rest out would report
//! purchases that exist as not found).
//! Response: with `buy_id`, the record at the top level; with an array, `items[]` of records (ids that match
//! nothing are left out). A record is `{item:{id,name,price,classid,instanceid}, buy_id, offer_status, steamid,
//! date, balance_debited_sum, tradeofferid, custom_id, error_reason}`.
//! Errors: `-6 market_disabled`, `1 missing_buy_id` (none of the three given), `2 offer_not_found` (nothing
//! matched), `3 too_many_ids`.

use skingate_types::market::PurchasesResponse;

use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::error::ApiError;

const MISSING: ApiError = ApiError::method(1, "missing_buy_id");
const NOT_FOUND: ApiError = ApiError::method(2, "offer_not_found");
const TOO_MANY: ApiError = ApiError::method(3, "too_many_ids");
/// Most ids per call.
const MAX_IDS: usize = 1000;

/// What is asked for.
#[derive(Debug, PartialEq, Eq)]
enum Query {
    One(i64),
    Ids(Vec<i64>),
    CustomIds(Vec<String>),
}

/// A `market_getinfo` call.
#[derive(Debug)]
pub struct MarketGetinfo {
    query: Query,
}

impl MarketGetinfo {
    /// Reads `buy_id`, `buy_ids` or `custom_ids`.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let query = match params.i64("buy_id") {
            Ok(id) => Query::One(id),
            Err(ParamError::Invalid) => return Err(NOT_FOUND),
            Err(ParamError::Missing) => match (params.strings("buy_ids"), params.strings("custom_ids")) {
                (Some(ids), _) | (_, Some(ids)) if ids.len() > MAX_IDS => return Err(TOO_MANY),
                (Some(ids), _) if !ids.is_empty() => {
                    Query::Ids(ids.iter().filter_map(|s| s.trim_ascii().parse().ok()).collect())
                }
                (_, Some(ids)) if !ids.is_empty() => Query::CustomIds(ids),
                _ => return Err(MISSING),
            },
        };
        Ok(Self { query })
    }

    /// Reads the purchases.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let store = &ctx.state.store;
        let project = ctx.project.id;
        let found = match &self.query {
            Query::One(id) => store.purchases_by_ids(project, &[*id]).await?,
            Query::Ids(ids) => store.purchases_by_ids(project, ids).await?,
            Query::CustomIds(ids) => store.purchases_by_custom_ids(project, ids).await?,
        };
        if found.is_empty() {
            return Err(NOT_FOUND);
        }
        let items: Vec<_> = found.iter().map(crate::market::record).collect();
        match self.query {
            Query::One(_) => Reply::success(&items[0]),
            _ => Reply::success(&PurchasesResponse { items }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(v: Value) -> Result<MarketGetinfo, ApiError> {
        MarketGetinfo::parse(&Params(v.as_object().unwrap().clone()))
    }

    #[test]
    fn parameters() {
        assert_eq!(parse(json!({})).unwrap_err().body().error_code, 1);
        assert_eq!(parse(json!({"buy_ids": []})).unwrap_err().body().error_code, 1);
        assert_eq!(parse(json!({"buy_id": "x"})).unwrap_err().body().error_code, 2);
        assert_eq!(parse(json!({"buy_id": "7"})).unwrap().query, Query::One(7));
        assert_eq!(parse(json!({"buy_ids": [1, "2"]})).unwrap().query, Query::Ids(vec![1, 2]));
        assert_eq!(parse(json!({"custom_ids": {"0": "a"}})).unwrap().query, Query::CustomIds(vec!["a".into()]));
        let over: Vec<i64> = (0..=1000).collect();
        assert_eq!(parse(json!({"buy_ids": over})).unwrap_err().body().error_code, 3);
        assert_eq!(parse(json!({"custom_ids": vec!["x"; 1001]})).unwrap_err().body().error_code, 3);
        assert!(parse(json!({"custom_ids": vec!["x"; 1000]})).is_ok());
    }
}
