//! The merchant side of skingate (and of any SkinsBack-compatible gateway): a typed, signing API client.
//!
//! # Layout
//! - [`Client`]: builds, signs and sends calls; typed methods for each API method, plus [`Client::call`]
//!   for anything else;
//! - [`form`]: PHP-style form encoding (`items[0][id]=1`, `custom_ids[]=a`) for gateways or proxies that
//!   only read `$_POST`;
//! - [`Error`]: what can go wrong, with the gateway's own error envelope kept intact;
//! - [`webhooks`]: verifying deliveries the gateway sends you (every signature scheme);
//! - [`ws`]: a WebSocket event stream that reconnects with backoff and resumes from its last event.
//!
//! Parsing is lenient on purpose: ids and money may come as numbers or strings and unknown fields are
//! ignored, because the vendor's documentation and its live service disagree on types (the response
//! types live in `skingate-types` and are shared with the server).
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), skingate_sdk::Error> {
//! let client = skingate_sdk::Client::new("http://127.0.0.1:8080", "1", "my-client-secret");
//! let balance = client.balance().await?;
//! println!("spendable: {} USD", balance.balance);
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod form;
pub mod webhooks;
pub mod ws;

pub use client::{Auth, Client, Encoding, RawResponse};
pub use error::Error;
pub use skingate_types::api;
pub use skingate_types::{Decimal, ErrorBody};
