//! `POST /api.php`: the SkinsBack-compatible endpoint.
//!
//! One handler does what every method needs, in this order, and stops at the first failure:
//! 1. only POST (`-1`);
//! 2. body within the size limit (`-11`), a known content type (`-12`), parseable (`-10`);
//! 3. maintenance (`-9`), except for `status`, which reports it instead;
//! 4. authentication and access rules ([`auth`]: `-2`, `-3`, `-8`, `-4`, `-7`);
//! 5. a usable `Idempotency-Key` header (`-13`);
//! 6. the market switch (`-6`) for every `market_*` method, so while the market is off they answer `-6`
//!    whatever parameters they were sent;
//! 7. the method ([`methods`]): unknown is `-5`; each method parses its own parameters and applies.
//!
//! Nothing in steps 1–6 writes anything, so a refused request changes nothing.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method as HttpMethod, header};
use axum::response::{IntoResponse, Response};
use skingate_types::envelope::GlobalError;

use crate::error::ApiError;
use crate::listener::BodyError;
use crate::state::AppState;

pub mod auth;
pub mod body;
pub mod methods;
pub mod params;

pub use methods::{Ctx, Reply};
pub use params::Params;

/// Header naming a merchant-chosen idempotency key for writes that have no natural key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Response header set when a write was answered from its stored first response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The axum handler of `/api.php` and `/api/v1`.
pub async fn endpoint(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: HttpMethod,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&state, peer, method, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    peer: SocketAddr,
    method: HttpMethod,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if method != HttpMethod::POST {
        return Err(GlobalError::NotPost.into());
    }
    let mut params = read_params(state, headers, body).await?;
    let name = params.text("method").unwrap_or_default();
    let mut call = methods::Method::parse(&name, &params);
    let is_status = matches!(call, Ok(methods::Method::Status(_)));
    if state.maintenance() && !is_status {
        return Err(GlobalError::UnderMaintenance.into());
    }
    let client_ip = auth::client_ip(peer.ip(), headers, &state.config.trusted_proxies);
    let (project, rewritten) = auth::authenticate(state, headers, &mut params, client_ip).await?;
    if rewritten {
        // The floats now read as they were signed: the method reads its parameters again.
        call = methods::Method::parse(&name, &params);
    }
    // A key that cannot be used is refused, never ignored: ignoring it would let a retry do the work twice.
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => Some(idempotency_key(value).ok_or(GlobalError::InvalidIdempotencyKey)?),
    };
    // Checked here, before the parse error is answered: a method's own parameter error would otherwise hide
    // that the market is off, and a caller fixing its parameters would only then learn that.
    if is_market_method(&name) {
        state.market.ensure_enabled(state).await?;
    }
    let ctx = Ctx { state, project: &project, params: &params, idempotency_key };
    let call = call?;
    let span = tracing::debug_span!("api", method = %name, project = %project.id);
    let _guard = span.enter();
    call.respond(&ctx).await
}

/// The `Idempotency-Key` header as a key: 1 to 255 bytes of printable ASCII (space to `~`), as documented, or
/// `None`. `HeaderValue::to_str` alone also passes a tab, which is not printable and which proxies and logs may
/// turn into spaces, so the key stored would not be the one the client retries with.
fn idempotency_key(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    let printable = bytes.iter().all(|b| (b' '..=b'~').contains(b));
    if bytes.is_empty() || bytes.len() > crate::idempotency::MAX_KEY_LEN || !printable {
        return None;
    }
    value.to_str().ok()
}

/// Whether `name` is one of the market methods the operator's switch turns off. Only known names: an unknown
/// `market_*` name stays `-5 invalid_method`.
fn is_market_method(name: &str) -> bool {
    use skingate_types::market::method as market;
    [market::PRICELIST, market::SEARCH, market::BUY, market::BATCH_BUY, market::GETINFO, market::HISTORY]
        .contains(&name)
}

async fn read_params(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Params, ApiError> {
    let limit = state.config.body_limit_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(len) = declared.filter(|&len| len > limit) {
        // Read what the client sends anyway (see `DRAIN_MAX`), unless it waits for a go-ahead to send (the
        // answer tells it not to) or declared more than is worth reading.
        let waits = headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits && len <= crate::listener::DRAIN_MAX {
            crate::listener::discard(body, 0).await;
        }
        return Err(GlobalError::RequestBodyTooLarge.into());
    }
    let encoding = body::encoding(headers)?;
    let bytes = crate::listener::read_body(body, limit).await.map_err(|e| match e {
        BodyError::TooLarge => GlobalError::RequestBodyTooLarge,
        BodyError::Unreadable => GlobalError::InvalidRequestBody,
    })?;
    Ok(body::parse_body(encoding, bytes).await?)
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = ([(header::CONTENT_TYPE, "application/json")], self.body).into_response();
        if self.replayed {
            resp.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_printable_ascii() {
        let key = |bytes: &[u8]| idempotency_key(&HeaderValue::from_bytes(bytes).unwrap()).map(str::to_owned);
        assert_eq!(key(b"order-42"), Some("order-42".into()));
        assert_eq!(key(b"a b~!"), Some("a b~!".into()));
        assert_eq!(key(&[b'k'; 255]), Some("k".repeat(255)));
        for bad in [&b"a\tb"[..], b"\t", b"", &[b'k'; 256], "caf\u{e9}".as_bytes()] {
            assert_eq!(key(bad), None, "{bad:?}");
        }
    }
}
