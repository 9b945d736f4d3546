//! `webhook_recover` (skingate): deliver again every failed delivery created since a time.
//!
//! For the morning after an outage: the merchant's endpoint was down, deliveries exhausted their retries,
//! and one call sends them all again, to the events URL set now (concurrently, like every delivery: the
//! receiver orders by `seq`). Events emitted while the endpoint was disabled (or no URL was set) had no
//! delivery at all: those since the time are queued too, so a re-enabled endpoint can catch up on everything
//! it missed.
//!
//! # Format
//! Request: `since` (Unix seconds). Response: `{"rescheduled":N}`, at most [`RECOVER_LIMIT`] (failed deliveries
//! first, then missed events, each oldest first; call again while N is the limit). Errors: `1 invalid_since`.

use skingate_core::events::EventType;
use skingate_store::MissedEvents;
use skingate_types::api::RescheduledResponse;

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

/// Most deliveries one call schedules: the work is one transaction on the writer every merchant shares, so
/// it is bounded; a call that schedules this many is repeated for the rest.
pub const RECOVER_LIMIT: u32 = 10_000;

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
        let types: Vec<&str> = EventType::ALL.into_iter().filter(|t| t.to_webhook()).map(EventType::as_str).collect();
        let missed = ctx.project.active_events_url().map(|url| MissedEvents { url, event_types: &types });
        let n = state.store.recover_deliveries(ctx.project.id, self.since, state.now(), missed, RECOVER_LIMIT).await?;
        state.events_committed();
        Reply::success(&RescheduledResponse { rescheduled: i64::try_from(n).unwrap_or(i64::MAX) })
    }
}
