//! The skingate gateway server.
//!
//! # Layout
//! - [`app`]: routes, start-up ([`app::start`]), background refresh, graceful shutdown; [`listener`]: the
//!   connection loop (header deadline, half-close);
//! - [`api`]: the `POST /api.php` endpoint: body parsing, authentication, the dispatcher, and
//!   [`api::methods`] with one file per SkinsBack `method`;
//! - [`idempotency`]: the generic "run once, replay the answer" mechanism for writes;
//! - [`events`] (emit into the outbox), [`dispatcher`] + [`webhook`] (signed, retried webhook deliveries),
//!   [`hub`] (the WebSocket hub fed from the committed outbox), [`adjustments`] (operator credits/debits);
//! - [`deposits`]: the deposit flow: creating deposits, sending trade offers, the trade watcher, status
//!   transitions with their ledger transfers and Result-URL callbacks;
//! - [`market`]: the market: stock, the group-committed buy path, the purchase watcher, the streamed price list;
//! - [`pay`]: the hosted payment page (templates in `templates/pay/`, assets in `assets/pay/`);
//! - [`sim_admin`]: the simulator's operator routes and its saved state;
//! - [`error`]: the single mapping from internal failures to the public error envelope;
//! - [`state`], [`config`], [`clock`], [`ratelimit`]: what a request handler reads;
//! - [`dedicated`] (writer tasks on threads of their own), [`supervise`] (background loops restarted after a
//!   panic).
//!
//! Routes only parse, authenticate, call the domain (`skingate-core`) through storage
//! (`skingate-store`) and render; no business rule lives in this crate.

pub mod adjustments;
pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod dedicated;
pub mod deposits;
pub mod dispatcher;
pub mod error;
pub mod events;
pub mod hub;
pub mod idempotency;
pub mod listener;
pub mod market;
pub mod pay;
pub mod ratelimit;
pub mod sim_admin;
pub mod state;
pub mod supervise;
pub mod webhook;

pub use app::{Running, start};
pub use config::Config;
pub use state::AppState;
