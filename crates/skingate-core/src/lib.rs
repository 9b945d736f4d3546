//! skingate's domain: the rules about money, with no I/O.
//!
//! # Layout
//! - [`money`]: [`Money`], integer minor units of the ledger currency (USD, scale 3), and its wire format.
//! - [`currency`]: the rates table and conversion with documented rounding.
//! - [`ledger`]: the double-entry ledger. Its invariants (balanced transfers, no overdraft of a merchant
//!   balance, each pending transfer resolved once, duplicate transfer ids harmless) live here and only here;
//!   storage persists what the ledger decides and never writes balances any other way.
//! - [`market`]: the purchase state machine, the money each of its transitions moves, and pricing.
//! - [`events`]: event names and the webhook retry policy.
//! - [`deposit`]: the deposit state machine, its ledger moves, amounts, and when Steam is believed.
//! - [`project`]: what a merchant project is and which of its settings are valid.
//!
//! Nothing in this crate knows about HTTP, SQL or the clock: callers pass time in.

pub mod currency;
pub mod deposit;
pub mod events;
pub mod ledger;
pub mod market;
pub mod money;
pub mod project;

pub use money::Money;
