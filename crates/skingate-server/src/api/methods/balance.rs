//! `balance`: what the project may spend, and its lifetime totals.
//!
//! # Format
//! Request: no parameters. Response (USD amounts as exact decimal strings, at least two decimals):
//! `balance` (spendable), `deals_sum` (settled deposits), `withdraw_sum` (settled purchases minus refunds),
//! each with a `*_in_currencies` object converted at the current rates (rounding: half away from zero, to
//! each currency's scale), plus skingate's `held`, `in_flight` and `currency`.

use skingate_types::api::BalanceResponse;

use super::{Ctx, Reply};
use crate::api::params::Params;
use crate::error::ApiError;

/// A `balance` call.
#[derive(Debug)]
pub struct Balance;

impl Balance {
    /// Takes no parameters.
    pub fn parse(_params: &Params) -> Result<Self, ApiError> {
        Ok(Balance)
    }

    /// Reads the ledger's figures and converts them.
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let b = ctx.state.store.project_balance(ctx.project.id).await?;
        let rates = ctx.state.rates();
        Reply::success(&BalanceResponse {
            balance: b.available.to_wire(),
            balance_in_currencies: rates.convert_all(b.available),
            deals_sum: b.deals_sum.to_wire(),
            deals_sum_in_currencies: rates.convert_all(b.deals_sum),
            withdraw_sum: b.withdraw_sum.to_wire(),
            withdraw_sum_in_currencies: rates.convert_all(b.withdraw_sum),
            held: Some(b.held.to_wire()),
            in_flight: Some(b.in_flight.to_wire()),
            currency: Some(skingate_core::money::LEDGER_CURRENCY.to_owned()),
        })
    }
}
