//! `offer_approve`: release an `in_hold` deposit before Trade Protection ends (spec §4.7).
//!
//! The held value becomes spendable at once (`hold_approved`, Result-URL callback, `balance_change`); if the
//! payer then reverses the trade the deposit becomes `hold_returned` and the value is clawed back, even into
//! a negative balance: approving early is the merchant's risk.
//!
//! # Format
//! Request: `transaction_id` **or** `order_id`. Response: `{"status":"success"}`.
//! Errors: `1 order_id_or_transaction_id_missing`, `2 invalid_order_id`, `3 invalid_transaction_id`,
//! `4 transaction_not_found`, `5 offer_already_approved_or_canceled` (any status but `in_hold`).

use serde_json::json;
use skingate_core::deposit::DepositStatus;
use skingate_store::deposits::StatusChange;

use super::orderstatus::{find, parse_lookup};
use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::deposits::{Lookup, transitions};
use crate::error::ApiError;

/// The deposit is not `in_hold`.
pub const NOT_HELD: ApiError = ApiError::method(5, "offer_already_approved_or_canceled");

/// An `offer_approve` call.
#[derive(Debug)]
pub struct OfferApprove {
    lookup: Lookup,
}

impl OfferApprove {
    /// Reads the id.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        Ok(Self { lookup: parse_lookup(params)? })
    }

    /// Moves the deposit to `hold_approved`.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let dep = find(ctx, &self.lookup).await?;
        if dep.status != DepositStatus::InHold {
            return Err(NOT_HELD);
        }
        let steps = [(DepositStatus::HoldApproved, StatusChange::default())];
        match transitions::apply(ctx.state, ctx.project, dep.id, &steps).await.map_err(ApiError::internal)? {
            transitions::Applied::Done(_) => Reply::success(&json!({})),
            transitions::Applied::Refused(_) => Err(NOT_HELD),
        }
    }
}
