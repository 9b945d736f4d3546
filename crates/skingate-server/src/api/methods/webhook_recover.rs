//! `webhook_recover` (skingate): deliver again every failed delivery created since a time.
//!
//! For the morning after an outage: the merchant's endpoint was down, deliveries exhausted their retries,
//! and one call sends them all again (in event order, as usual).
//!
//! # Format
//! Request: `since` (Unix seconds). Response: `{"rescheduled":N}`. Errors: `1 invalid_since`.

use skingate_types::api::RescheduledResponse;

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

/// A `webhook_recover` call.
#[derive(Debug)]
pub struct WebhookRecover {
    since: i64,
}

impl WebhookRecover {
    /// Reads `since`.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        Ok(Self { since: params.i64("since").map_err(|_| ApiError::method(1, "invalid_since"))? })
    }

    /// Schedules them and wakes the dispatcher.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let state = ctx.state;
        let n = state.store.recover_deliveries(ctx.project.id, self.since, state.now()).await?;
        state.events_committed();
        Reply::success(&RescheduledResponse { rescheduled: i64::try_from(n).unwrap_or(i64::MAX) })
    }
}
