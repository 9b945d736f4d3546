//! Steam as skingate sees it, and the parts of the Steam simulator that need no clock.
//!
//! # Layout
//! - [`ids`]: SteamID64 ↔ account id, trade URLs and their 8-character tokens;
//! - [`enums`]: Steam's offer and trade states as **open** enums (Steam adds values without notice:
//!   `TradeProtectionRollback = 12` broke libraries in 2025);
//! - [`catalogue`]: the items the simulator hands out, with reference prices (CS2 from a shipped price list,
//!   Dota 2 and Rust hand-made);
//! - [`users`]: every valid individual SteamID64 is a simulated user whose trade token and inventory follow
//!   from a seed and the id alone, so a demo or a test needs no setup;
//! - [`sim`]: the [`sim::Steam`] trait the gateway calls, and the [`sim::Simulator`] implementing it: offers
//!   on the shared clock with per-user profiles, escrow, Trade Protection reversals, flapping, and an
//!   operator surface (accept, decline, reverse).

pub mod catalogue;
pub mod enums;
pub mod ids;
pub mod sim;
pub mod users;

pub use ids::{SteamId, TradeUrl};
