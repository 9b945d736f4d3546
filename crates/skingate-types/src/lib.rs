//! Wire types of the SkinsBack merchant API, shared by the skingate server and the merchant SDK.
//!
//! Everything here is about bytes on the wire and nothing else: no I/O, no storage, no business rules.
//! Keeping one definition of each response shape means the server cannot drift from what the SDK parses.
//!
//! # Layout
//! - [`sign`]: the signature schemes (API `sign` HMAC-SHA1, `X-SIGN`/WebSocket md5, events HMAC-SHA256).
//! - [`decimal`]: an exact fixed-point decimal for money on the wire (never `f64`).
//! - [`lenient`]: deserializers that accept what real clients and servers send (ids as numbers or strings).
//! - [`envelope`]: the `{status:"error", error_code, error_message}` envelope and the global error codes.
//! - [`api`]: request and response bodies of each method.
//! - [`deposits`]: the deposit methods' names and bodies, and the deposit object.
//! - [`form`]: reading PHP-style form bodies (`items[0][id]=1`) as `$_POST` does, for requests and callbacks.

pub mod api;
pub mod decimal;
pub mod deposits;
pub mod envelope;
pub mod form;
pub mod lenient;
pub mod market;
pub mod sign;

pub use decimal::Decimal;
pub use envelope::{ErrorBody, GlobalError};
pub use sign::Canonicalization;
