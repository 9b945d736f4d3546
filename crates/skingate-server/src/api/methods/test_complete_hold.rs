//! `test_complete_hold` (skingate, test mode only): end a held deposit's Trade Protection now.
//!
//! Sets the deposit's `hold_until` to the current time and wakes the trade watcher, which then completes
//! it like any hold that ran out: `success` unless the trade was reversed. Lets a merchant test the end of
//! the 8-day hold without waiting 8 days. A deposit completed early is no longer watched, so a reversal
//! after it goes unseen (no `fail`, no `hold_returned` clawback): that is why it exists only where every
//! trade is simulated, i.e. on a gateway running the Steam simulator (test mode means nothing elsewhere
//! either: the magic tokens need the simulator).
//!
//! # Format
//! Request: `transaction_id` **or** `order_id`. Response: `{"transaction_id": N}`; the deposit reaches
//! `success` moments later (watch the Result URL or `orderstatus`).
//! Errors: `1`–`4` as `orderstatus`, `5 deposit_not_held` (not `in_hold` or `hold_approved`),
//! `6 test_mode_disabled` (the project is not in test mode, or the gateway does not run the simulator).

use skingate_core::deposit::DepositStatus;
use skingate_types::deposits::HoldCompleted;

use super::orderstatus::{find, parse_lookup};
use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::deposits::Lookup;
use crate::error::ApiError;

/// The deposit is not held.
pub const NOT_HELD: ApiError = ApiError::method(5, "deposit_not_held");
/// The project is not in test mode.
pub const NOT_TEST_MODE: ApiError = ApiError::method(6, "test_mode_disabled");

/// A `test_complete_hold` call.
#[derive(Debug)]
pub struct TestCompleteHold {
    lookup: Lookup,
}

impl TestCompleteHold {
    /// Reads the id.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        Ok(Self { lookup: parse_lookup(params)? })
    }

    /// Moves the hold's end to now.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        if !ctx.project.settings.test_mode || ctx.state.sim.is_none() {
            return Err(NOT_TEST_MODE);
        }
        let dep = find(ctx, &self.lookup).await?;
        if !matches!(dep.status, DepositStatus::InHold | DepositStatus::HoldApproved) {
            return Err(NOT_HELD);
        }
        let mut tx = ctx.state.store.begin().await?;
        let now = ctx.state.now();
        tx.set_hold_until(dep.id, now, now).await?;
        tx.commit().await?;
        ctx.state.wake_deposits();
        Reply::success(&HoldCompleted { transaction_id: dep.id })
    }
}
