//! `orderstatus`: one deposit, by `transaction_id` or `order_id` (spec §4.5).
//!
//! # Format
//! Request: `transaction_id` **or** `order_id`. Response: the deposit object (see `deposits::wire`) at the
//! top level; its `status` is the deposit's status (`pending`, `success`, `fail`, `in_hold`,
//! `hold_approved`, `hold_returned`), which shares the key with the envelope: errors still come as
//! `status:"error"` with an `error_code`.
//!
//! Errors: `1 order_id_or_transaction_id_missing`, `2 invalid_order_id`, `3 invalid_transaction_id`,
//! `4 transaction_not_found`.

use skingate_store::deposits::Deposit;

use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::deposits::{self, Lookup};
use crate::error::ApiError;

/// Neither id was sent.
pub const MISSING: ApiError = ApiError::method(1, "order_id_or_transaction_id_missing");
/// `order_id` is not acceptable text.
pub const INVALID_ORDER_ID: ApiError = ApiError::method(2, "invalid_order_id");
/// `transaction_id` is not a positive integer.
pub const INVALID_TRANSACTION_ID: ApiError = ApiError::method(3, "invalid_transaction_id");
/// No such deposit in this project.
pub const NOT_FOUND: ApiError = ApiError::method(4, "transaction_not_found");

/// Reads `transaction_id` (preferred) or `order_id`, with this method family's codes 1–3.
pub fn parse_lookup(params: &Params) -> Result<Lookup, ApiError> {
    match params.i64("transaction_id") {
        Ok(id) if id > 0 => return Ok(Lookup::Transaction(id)),
        Ok(_) | Err(ParamError::Invalid) => return Err(INVALID_TRANSACTION_ID),
        Err(ParamError::Missing) => {}
    }
    match params.text("order_id") {
        Ok(id) if deposits::valid_order_id(&id) => Ok(Lookup::Order(id)),
        Ok(_) | Err(ParamError::Invalid) => Err(INVALID_ORDER_ID),
        Err(ParamError::Missing) => Err(MISSING),
    }
}

/// The deposit named by `lookup`, or `4 transaction_not_found`.
pub async fn find(ctx: &Ctx<'_>, lookup: &Lookup) -> Result<Deposit, ApiError> {
    deposits::find(ctx.state, ctx.project, lookup).await?.ok_or(NOT_FOUND)
}

/// An `orderstatus` call.
#[derive(Debug)]
pub struct OrderStatus {
    lookup: Lookup,
}

impl OrderStatus {
    /// Reads the id.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        Ok(Self { lookup: parse_lookup(params)? })
    }

    /// Answers the deposit object.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let dep = find(ctx, &self.lookup).await?;
        let body = serde_json::to_vec(&deposits::wire::deposit_object(&dep, None)).map_err(ApiError::internal)?;
        Ok(Reply { body, replayed: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Lookup, ApiError> {
        parse_lookup(&Params(v.as_object().unwrap().clone()))
    }

    #[test]
    fn lookups() {
        assert_eq!(parse(json!({"transaction_id": "12"})).unwrap(), Lookup::Transaction(12));
        assert_eq!(parse(json!({"order_id": 7})).unwrap(), Lookup::Order("7".into()));
        let code = |r: Result<Lookup, ApiError>| r.unwrap_err().body().error_code;
        assert_eq!(code(parse(json!({}))), 1);
        assert_eq!(code(parse(json!({"order_id": "x".repeat(300)}))), 2);
        assert_eq!(code(parse(json!({"transaction_id": "abc"}))), 3);
        assert_eq!(code(parse(json!({"transaction_id": -1}))), 3);
    }
}
