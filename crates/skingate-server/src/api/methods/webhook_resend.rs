//! `webhook_resend` (skingate): deliver one event again, now, whatever its state.
//!
//! # Format
//! Request: `delivery_id`. Response: `{"rescheduled":1}`. The event keeps its id, so a receiver that got
//! it already can drop the repeat. Errors: `1 missing_delivery_id`, `2 delivery_not_found`,
//! `3 delivery_in_progress` (an attempt is under way: its result decides; resend after it if need be).

use skingate_types::api::RescheduledResponse;

use super::webhook_attempts::{MISSING_ID, NOT_FOUND};

/// An attempt at the delivery is under way: resending now would POST the same event twice at once.
const IN_PROGRESS: ApiError = ApiError::method(3, "delivery_in_progress");
use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

/// A `webhook_resend` call.
#[derive(Debug)]
pub struct WebhookResend {
    delivery_id: i64,
}

impl WebhookResend {
    /// Reads `delivery_id`.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        Ok(Self { delivery_id: params.i64("delivery_id").map_err(|_| MISSING_ID)? })
    }

    /// Schedules it and wakes the dispatcher.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let state = ctx.state;
        if !state.store.resend_delivery(ctx.project.id, self.delivery_id, state.now()).await? {
            let exists = state.store.delivery(ctx.project.id, self.delivery_id).await?.is_some();
            return Err(if exists { IN_PROGRESS } else { NOT_FOUND });
        }
        state.events_committed();
        Reply::success(&RescheduledResponse { rescheduled: 1 })
    }
}
