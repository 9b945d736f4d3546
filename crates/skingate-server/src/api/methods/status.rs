//! `status`: is the gateway open for business?
//!
//! # Format
//! Request: no parameters. Response: `{"status":"success","available":true}` or, in maintenance,
//! `{"status":"success","available":false,"reason":"site_off"}`. Unlike every other method it answers
//! during maintenance, so merchants can poll it to know when to resume.

use skingate_types::api::StatusResponse;

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

/// Why the gateway is unavailable while in maintenance.
pub const REASON_SITE_OFF: &str = "site_off";

/// A `status` call.
#[derive(Debug)]
pub struct Status;

impl Status {
    /// Takes no parameters.
    pub fn parse(_params: &Params) -> Result<Self, ApiError> {
        Ok(Status)
    }

    /// Reports availability.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let maintenance = ctx.state.maintenance();
        Reply::success(&StatusResponse {
            available: !maintenance,
            reason: maintenance.then(|| REASON_SITE_OFF.to_owned()),
        })
    }
}
