//! `webhook_deliveries` (skingate): the project's events-webhook deliveries, newest first.
//!
//! The vendor's `callback_error_list` only shows failed Result-URL callbacks; this shows every delivery of
//! the events webhook with its state, so a merchant can see what reached it and what did not.
//!
//! # Format
//! Request: optional `state` (`pending`, `delivered`, `failed`), optional `start_from` (cursor: pass back the
//! previous page's `start_from`). Response: the usual page (`total_count` ≤ 100, `has_more`, `start_from`,
//! `items[]` of `{delivery_id, event_id, event, url, state, attempts, next_attempt_at, last_http_status,
//! date}`). Errors: `1 invalid_state`, `2 invalid_start_from`.

use skingate_store::{Delivery, DeliveryState};
use skingate_types::api::{DeliveryItem, Page};

use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::error::ApiError;
use crate::events::public_id;

/// Items per page.
pub const PAGE_SIZE: u32 = 100;

/// A `webhook_deliveries` call.
#[derive(Debug)]
pub struct WebhookDeliveries {
    state: Option<DeliveryState>,
    before: i64,
}

impl WebhookDeliveries {
    /// Reads the filter and cursor.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let state = match params.text("state") {
            Ok(s) => Some(DeliveryState::parse(&s).ok_or(ApiError::method(1, "invalid_state"))?),
            Err(ParamError::Missing) => None,
            Err(ParamError::Invalid) => return Err(ApiError::method(1, "invalid_state")),
        };
        let before = params.opt_i64("start_from").map_err(|_| ApiError::method(2, "invalid_start_from"))?.unwrap_or(0);
        Ok(Self { state, before })
    }

    /// Reads one page.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let mut rows = ctx.state.store.deliveries(ctx.project.id, self.state, self.before, PAGE_SIZE + 1).await?;
        let has_more = rows.len() > PAGE_SIZE as usize;
        rows.truncate(PAGE_SIZE as usize);
        let next = rows.last().map_or(self.before, |d| d.id);
        let items: Vec<DeliveryItem> = rows.iter().map(item).collect();
        Reply::success(&Page { total_count: items.len() as i64, has_more, start_from: Some(next), items })
    }
}

/// The wire form of a delivery.
pub fn item(d: &Delivery) -> DeliveryItem {
    DeliveryItem {
        delivery_id: d.id.to_string(),
        event_id: public_id(d.event.id),
        event: d.event.event_type.clone(),
        url: d.url.clone(),
        state: d.state.as_str().to_owned(),
        attempts: i64::from(d.attempts),
        next_attempt_at: d.next_attempt_at,
        last_http_status: d.last_http_status.map(i64::from),
        date: d.created_at,
    }
}
