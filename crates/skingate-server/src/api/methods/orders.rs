//! `orders`: the project's deposits created in a time range (spec §4.6).
//!
//! # Format
//! Request: `starting`, `ending` (Unix seconds, inclusive), optional `start_from` (cursor from the previous
//! page). Response: `total_count` (items in this page, ≤ 1000), `has_more`, `start_from` (pass back for the
//! next page), `items[]` of deposit objects (as `orderstatus`), oldest first.
//! Errors: `1 missing_starting_or_ending`, `2 invalid_starting_or_ending` (not integers, or `ending` before
//! `starting`), `3 invalid_start_from`.

use skingate_types::api::{PAGE_LIMIT, Page};

use super::{Ctx, Reply};
use crate::api::params::{Params, RangePage};
use crate::deposits::wire;
use crate::error::ApiError;

/// An `orders` call.
#[derive(Debug)]
pub struct Orders {
    starting: i64,
    ending: i64,
    start_from: i64,
}

impl Orders {
    /// Reads the time range and cursor (shared by every history method).
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let RangePage { starting, ending, start_from } = RangePage::parse(params)?;
        Ok(Self { starting, ending, start_from })
    }

    /// Reads one page.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let mut rows = ctx
            .state
            .store
            .deposits_in_range(ctx.project.id, self.starting, self.ending, self.start_from, PAGE_LIMIT as u32)
            .await?;
        let has_more = rows.len() > PAGE_LIMIT;
        rows.truncate(PAGE_LIMIT);
        let next = rows.last().map_or(self.start_from, |d| d.id);
        let items: Vec<serde_json::Value> = rows.iter().map(|d| wire::deposit_object(d, None)).collect();
        Reply::success(&Page { total_count: items.len() as i64, has_more, start_from: Some(next), items })
    }
}
