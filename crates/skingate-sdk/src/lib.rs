//! The merchant side of skingate (and of any SkinsBack-compatible gateway): a typed, signing API client.
//!
//! Every call is a POST of the method's parameters to `{base_url}/api.php`, authenticated either by a
//! `shopid` + `sign` signature in the body or by `X-CLIENT-ID` / `X-CLIENT-SECRET` headers, encoded as JSON
//! or as a PHP-style form. The answer is a JSON body whose `status` says whether it is an error (HTTP
//! status is 200 either way); errors become [`Error::Api`], which keeps the answer's `Retry-After`
//! ([`Error::retry_after`]) so a throttled caller of a typed method knows how long to wait.
//!
//! # Layout
//! - [`Client`] (`client.rs`): options ([`Auth`], [`Encoding`], timeout), signing, the typed methods
//!   (`status`, `balance`, `currencies`, `balance_history`, the webhook-delivery methods) and
//!   [`Client::call`] / [`Client::call_raw`] for any other method;
//! - [`deposits`]: the typed deposit methods (`create_deposit`, `order_status`, `orders`, `user_inventory`,
//!   `create_from_user_inventory`, `offer_approve`, `callback_error_list`);
//! - the market methods (`market.rs`): `market_pricelist`, `market_search`, `market_buy`, `market_batch_buy`
//!   (and `market_batch_buy_idempotent`), `market_getinfo`, `market_history`, with [`BuyOrder`] (whose
//!   `idempotency_key` makes a retried buy safe without a `custom_id`) and [`BatchItem`];
//! - [`RawResponse`] (`response.rs`): an answer with its HTTP status and headers (`Retry-After`,
//!   `Idempotent-Replayed`), and the envelope rule;
//! - [`Error`] (`error.rs`): the gateway's refusal kept intact, apart from transport and decode failures;
//! - [`form`]: PHP-style form encoding (`custom_ids[]=a`, `items[0][id]=1`);
//! - [`webhooks`]: verifying deliveries the gateway sends you (every signature scheme, and Result-URL
//!   callbacks from their raw form or JSON body);
//! - [`ws`]: a WebSocket event stream that reconnects with backoff and resumes from its last event, and ends
//!   with an error when it can never connect.
//!
//! Parsing is lenient on purpose: ids and money may come as numbers or strings and unknown fields are
//! ignored, because the vendor's documentation and its live service disagree on types (the response types
//! live in `skingate-types`, shared with the server, and are re-exported as [`api`]). Money is a
//! [`Decimal`], never a float.
//!
//! HTTPS and `wss://` need the `tls` feature; without it only `http://` and `ws://` gateways can be reached.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), skingate_sdk::Error> {
//! use std::time::Duration;
//! use skingate_sdk::{Auth, Client, Encoding};
//!
//! let client = Client::new("http://127.0.0.1:8080", "1", "my-client-secret")
//!     .with_auth(Auth::Signature)
//!     .with_encoding(Encoding::Json)
//!     .with_timeout(Duration::from_secs(5));
//! let balance = client.balance().await?;
//! println!("spendable: {} USD", balance.balance);
//!
//! // Any other method, with an idempotency key so a retry cannot buy twice.
//! let mut params = serde_json::Map::new();
//! params.insert("partner".into(), "76561198000000000".into());
//! match client.call_idempotent("market_buy", params, "order-42").await {
//!     Ok(answer) => println!("bought: {}", answer["buy_id"]),
//!     Err(e) if e.message() == Some("insufficient_funds") => println!("top up first"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

mod client;
pub mod deposits;
mod error;
pub mod form;
mod market;
mod response;
#[cfg(test)]
mod test_server;
pub mod webhooks;
pub mod ws;

pub use client::{Auth, Client, DEFAULT_TIMEOUT, Encoding, IDEMPOTENCY_KEY, POOL_IDLE_TIMEOUT};
pub use error::{ApiError, Error};
pub use market::{BatchItem, BuyOrder, BuyTarget};
pub use response::{IDEMPOTENT_REPLAYED, RETRY_AFTER, RawResponse};
pub use skingate_types::api;
pub use skingate_types::{Decimal, ErrorBody, GlobalError};
