//! Who is calling: the two authentication modes of spec §1, the IP allow-list, the active flag and the
//! rate limit, checked in that order.
//!
//! - Header mode: `X-CLIENT-ID` + `X-CLIENT-SECRET`. Takes precedence when `X-CLIENT-ID` is present
//!   (the vendor does not say; a caller sending headers clearly meant them).
//! - Signature mode: `shopid` + `sign` in the body, HMAC-SHA1 over the sorted scalars; both the PHP and the
//!   JavaScript renderings of booleans and nulls are accepted, and PHP's 14-digit rendering of floats
//!   ([`skingate_types::sign::verify_api_sign`]).
//!
//! Secrets and signatures are compared in constant time. An unauthenticated caller learns only that the
//! id or the signature is wrong: the allow-list and the active flag are checked after the signature.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use ipnet::IpNet;
use skingate_core::project::{Project, ProjectId};
use skingate_types::envelope::GlobalError;
use skingate_types::sign;
use subtle::ConstantTimeEq;

use super::params::Params;
use crate::error::ApiError;
use crate::state::AppState;

/// Header carrying the client id in header mode.
pub const CLIENT_ID_HEADER: &str = "x-client-id";
/// Header carrying the client secret in header mode.
pub const CLIENT_SECRET_HEADER: &str = "x-client-secret";

/// Authenticates the caller and applies the project's access rules; returns the project, and whether
/// `params` were rewritten to what was signed (a PHP client's floats signed to 14 digits, see
/// [`sign::signed_as`]): the caller must then read them again.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &mut Params,
    client_ip: IpAddr,
) -> Result<(Arc<Project>, bool), ApiError> {
    let (project, rewritten) = match headers.get(CLIENT_ID_HEADER) {
        Some(id) => (by_headers(state, id.to_str().unwrap_or(""), headers).await?, false),
        None => by_signature(state, params).await?,
    };
    if !project.settings.allows_ip(client_ip) {
        return Err(GlobalError::InvalidIpAddress.into());
    }
    if !project.settings.active {
        return Err(GlobalError::ShopNotActive.into());
    }
    state
        .limits
        .check(project.id, project.settings.rate_limit_per_min)
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    Ok((project, rewritten))
}

async fn lookup(state: &AppState, client_id: &str) -> Result<Arc<Project>, ApiError> {
    let id: ProjectId = client_id.parse().map_err(|_| GlobalError::InvalidShopid)?;
    state.project(id).await?.ok_or(ApiError::Global(GlobalError::InvalidShopid))
}

async fn by_headers(state: &AppState, client_id: &str, headers: &HeaderMap) -> Result<Arc<Project>, ApiError> {
    let project = lookup(state, client_id).await?;
    let given = headers.get(CLIENT_SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if bool::from(project.client_secret.as_bytes().ct_eq(given)) {
        Ok(project)
    } else {
        Err(GlobalError::InvalidSignature.into())
    }
}

async fn by_signature(state: &AppState, params: &mut Params) -> Result<(Arc<Project>, bool), ApiError> {
    let shopid = params.text("shopid").map_err(|_| GlobalError::InvalidShopid)?;
    let project = lookup(state, &shopid).await?;
    let given = params.text(sign::SIGN_PARAM).map_err(|_| GlobalError::InvalidSignature)?;
    match sign::signed_as(&project.client_secret, &params.0, &given) {
        None => Err(GlobalError::InvalidSignature.into()),
        Some(sign::Canonicalization::PhpPrecision14) => {
            sign::floats_as_php_text(&mut params.0);
            Ok((project, true))
        }
        Some(_) => Ok((project, false)),
    }
}

/// The client's address: the TCP peer, or the last untrusted hop of `X-Forwarded-For` when the peer is a
/// trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return peer;
    }
    let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let hops: Vec<IpAddr> = hops.flat_map(|v| v.split(',')).filter_map(|h| h.trim().parse().ok()).collect();
    hops.into_iter().rev().find(|ip| !trusted.iter().any(|n| n.contains(ip))).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let trusted = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(proxy, &h, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
