//! `callback_error_list`: Result-URL callbacks that were not delivered (spec §4.8).
//!
//! A callback is listed while its last attempt failed (any answer but 2xx, or no answer), whether it is still
//! being retried on the published schedule or was given up; it leaves the list once an attempt succeeds.
//!
//! # Format
//! Request: optional `start_from` (cursor from the previous page). Response: `total_count` (items in this
//! page, ≤ 1000), `has_more`, `start_from` (pass back for the next page), `items[]` of
//! `{transaction_id, order_id, http_code}` (`http_code` is the status as a string, `"0"` when no answer came).
//! Errors: `1 invalid_start_from`.

use skingate_types::api::{PAGE_LIMIT, Page};
use skingate_types::deposits::CallbackError;

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

const INVALID_CURSOR: ApiError = ApiError::method(1, "invalid_start_from");

/// A `callback_error_list` call.
#[derive(Debug)]
pub struct CallbackErrorList {
    start_from: i64,
}

impl CallbackErrorList {
    /// Reads the cursor.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let start_from = params.opt_i64("start_from").map_err(|_| INVALID_CURSOR)?.unwrap_or(0);
        if start_from < 0 {
            return Err(INVALID_CURSOR);
        }
        Ok(Self { start_from })
    }

    /// Reads one page.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let mut rows = ctx.state.store.failed_callbacks(ctx.project.id, self.start_from, PAGE_LIMIT as u32).await?;
        let has_more = rows.len() > PAGE_LIMIT;
        rows.truncate(PAGE_LIMIT);
        let next = rows.last().map_or(self.start_from, |r| r.delivery_id);
        let items: Vec<CallbackError> = rows
            .into_iter()
            .map(|r| CallbackError {
                transaction_id: r.deposit_id,
                order_id: r.order_id,
                http_code: r.http_status.unwrap_or(0).to_string(),
            })
            .collect();
        Reply::success(&Page { total_count: items.len() as i64, has_more, start_from: Some(next), items })
    }
}
