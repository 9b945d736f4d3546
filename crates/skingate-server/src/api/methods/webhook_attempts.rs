//! `webhook_attempts` (skingate): every attempt of one delivery.
//!
//! # Format
//! Request: `delivery_id`. Response: `delivery` (as in `webhook_deliveries`) and `items[]` of
//! `{attempt, date, duration_ms, http_status, error, response_head}` (the first 4 KB of each answer).
//! Errors: `1 missing_delivery_id`, `2 delivery_not_found`.

use skingate_types::api::{AttemptItem, AttemptsResponse};

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

/// `delivery_id` missing or not a number.
pub const MISSING_ID: ApiError = ApiError::method(1, "missing_delivery_id");
/// No such delivery in this project.
pub const NOT_FOUND: ApiError = ApiError::method(2, "delivery_not_found");

/// A `webhook_attempts` call.
#[derive(Debug)]
pub struct WebhookAttempts {
    delivery_id: i64,
}

impl WebhookAttempts {
    /// Reads `delivery_id`.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        Ok(Self { delivery_id: params.i64("delivery_id").map_err(|_| MISSING_ID)? })
    }

    /// Lists the attempts.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let store = &ctx.state.store;
        let delivery = store.delivery(ctx.project.id, self.delivery_id).await?.ok_or(NOT_FOUND)?;
        let items = store
            .delivery_attempts(delivery.id)
            .await?
            .into_iter()
            .map(|a| AttemptItem {
                attempt: i64::from(a.attempt_no),
                date: a.started_at,
                duration_ms: i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
                http_status: a.http_status.map(i64::from),
                error: a.error,
                response_head: a.response_head,
            })
            .collect();
        Reply::success(&AttemptsResponse { delivery: super::webhook_deliveries::item(&delivery), items })
    }
}
