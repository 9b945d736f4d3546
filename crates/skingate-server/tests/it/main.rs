//! Black-box tests: the real server on port 0 with a fresh SQLite file per test, driven over HTTP.
//!
//! Protocol-level cases (wrong HTTP method, broken bodies, raw signatures) use a plain HTTP client;
//! everything a merchant would do goes through our own SDK crate.

mod api_methods;
mod auth;
mod bad_input;
mod deposits;
mod endpoints;
mod events;
mod market;
mod pay;
mod sim_admin;
mod utils;
