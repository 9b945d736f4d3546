//! The hosted payment page: where a payer sent by a merchant picks skins and accepts a trade offer.
//!
//! # Flow
//! `GET /pay/{page_token}` (confirm or enter the Steam account) → `POST …/account` → `GET …/items` (the
//! priced inventory) → `POST …/items` (the bot sends the offer) → `GET /pay/{page_token}` shows the offer's
//! progress until it ends on the merchant's success or fail URL. `GET …/status` is the JSON the page polls.
//!
//! # Design
//! - Server-rendered HTML ([`view`], askama, auto-escaped); every step works with plain forms and links.
//!   One stylesheet and one small script are embedded in the binary and served from `/pay/assets/`, so the
//!   page needs no CDN and runs under a strict Content-Security-Policy.
//! - The unguessable page token in the path is the capability; forms also refuse cross-site posts.
//! - Handlers only parse, call the deposits domain and render.

pub mod adapter;
pub mod handlers;
pub mod http;
pub mod view;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Largest form body the page accepts (a few hundred asset ids fit easily).
pub const FORM_LIMIT: usize = 16 * 1024;

/// The payment page's routes, merged into the gateway's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pay/assets/pay.css", get(http::css))
        .route("/pay/assets/pay.js", get(http::js))
        .route("/pay/{token}", get(handlers::show))
        .route("/pay/{token}/account", post(handlers::account))
        .route("/pay/{token}/items", get(handlers::items).post(handlers::submit))
        .route("/pay/{token}/status", get(handlers::status))
}
