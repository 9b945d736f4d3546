//! `currencies`: the rates table.
//!
//! # Format
//! Request: no parameters. Response: `items[]` of `{code, name, rate}`, `rate` = units of the currency per
//! 1 USD as a decimal string. The table is seeded on first start and changed by operators
//! (`skingate currency set`, or `currencies` in the config file).

use skingate_types::api::{CurrenciesResponse, CurrencyItem};

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

/// A `currencies` call.
#[derive(Debug)]
pub struct Currencies;

impl Currencies {
    /// Takes no parameters.
    pub fn parse(_params: &Params) -> Result<Self, ApiError> {
        Ok(Currencies)
    }

    /// Lists the cached rates table.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let rates = ctx.state.rates();
        let items =
            rates.iter().map(|c| CurrencyItem { code: c.code.clone(), name: c.name.clone(), rate: c.rate() }).collect();
        Reply::success(&CurrenciesResponse { items })
    }
}
