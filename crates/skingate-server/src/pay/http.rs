//! HTTP around the payment page: security headers, the cross-site form check, assets and error pages.

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::view::ErrorPage;

/// The embedded stylesheet.
pub const CSS: &str = include_str!("../../assets/pay/pay.css");
/// The embedded script (progressive enhancement only).
pub const JS: &str = include_str!("../../assets/pay/pay.js");

/// The `frame-ancestors` source list for a project's allowed embedding origins: `'self'` plus each valid
/// origin. Anything that is not a plain `scheme://host[:port]` origin is dropped, so a setting can never
/// inject another directive or header.
pub fn frame_ancestors<'a>(origins: impl IntoIterator<Item = &'a str>) -> String {
    let mut list = vec!["'self'".to_owned()];
    for o in origins {
        let o = o.trim().trim_end_matches('/');
        if let Some(origin) = valid_origin(o) {
            list.push(origin);
        }
    }
    list.join(" ")
}

/// `scheme://host[:port]` with scheme http(s) and a host of letters, digits, dots, dashes, or a leading
/// `*.` wildcard label (as CSP allows).
fn valid_origin(o: &str) -> Option<String> {
    let (scheme, rest) = o.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (rest, None),
    };
    let bare = host.strip_prefix("*.").unwrap_or(host);
    let ok = !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then(|| match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// The headers every page carries: a strict CSP (own assets only, forms post back here, framing only by
/// `ancestors`), no MIME sniffing, no referrer leaving the gateway, no caching of payer data.
pub fn secure_headers(headers: &mut HeaderMap, ancestors: &str) {
    let csp = format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An HTML page with the security headers.
pub fn html(status: StatusCode, body: String, ancestors: &str) -> Response {
    let mut resp = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    secure_headers(resp.headers_mut(), ancestors);
    resp
}

/// Renders a template into a page; a rendering failure is a bug and becomes a plain 500.
pub fn page(status: StatusCode, template: &impl Template, ancestors: &str) -> Response {
    match template.render() {
        Ok(body) => html(status, body, ancestors),
        Err(e) => {
            tracing::error!(error = %e, "rendering the payment page failed");
            html(StatusCode::INTERNAL_SERVER_ERROR, "Internal error".into(), "'none'")
        }
    }
}

/// An error page that belongs to no deposit: not framable.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    framed_error_page(status, title, message, "'none'")
}

/// An error page of a known deposit: framable like its other pages (`ancestors`, see `adapter::ancestors`), so
/// a payer inside the shop's iframe reads it instead of the browser's blocked-frame error.
pub fn framed_error_page(status: StatusCode, title: &str, message: &str, ancestors: &str) -> Response {
    let t = ErrorPage { status: status.as_u16(), title: title.to_owned(), message: message.to_owned() };
    page(status, &t, ancestors)
}

/// The page for a token that names no deposit.
pub fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Payment link not found",
        "This payment link does not exist or has been mistyped. Go back to the shop and start the deposit again.",
    )
}

/// Whether a form post may come from a page of another site. Browsers send `Sec-Fetch-Site` and `Origin`
/// with form posts; a post is refused when either says it came from elsewhere. (The page token in the path
/// is the capability; this stops a page that learned it from posting in the payer's name.) The gateway's own
/// origin is the one its links use, `public_origin` (from `public_url`: behind a reverse proxy the `Host`
/// header may name the upstream instead), or else whatever `Host` the request came to.
pub fn cross_site(headers: &HeaderMap, public_origin: &str) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return true;
    }
    if origin_of(origin).is_some_and(|o| o == public_origin) {
        return false;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
    !origin_host.eq_ignore_ascii_case(host)
}

/// The origin of a URL as browsers serialise it in `Origin` (lower case, punycode, default port dropped:
/// `https://Pay.Example:443/x` → `https://pay.example`); `None` for what is not an http(s) URL.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.origin().ascii_serialization())
}

/// `GET /pay/assets/pay.css`.
pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// `GET /pay/assets/pay.js`.
pub async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_keeps_only_origins() {
        assert_eq!(frame_ancestors([]), "'self'");
        assert_eq!(
            frame_ancestors(["https://shop.example", "http://127.0.0.1:8080/", "https://*.shop.example"]),
            "'self' https://shop.example http://127.0.0.1:8080 https://*.shop.example"
        );
        for bad in ["shop.example", "https://a.example; script-src *", "javascript://x", "https://a b", "*", "'none'"] {
            assert_eq!(frame_ancestors([bad]), "'self'", "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        assert!(
            !cross_site(&headers(&[("host", "pay.example")]), "http://pay.example"),
            "no Origin: plain clients and old browsers"
        );
        assert!(!cross_site(
            &headers(&[("host", "pay.example"), ("origin", "https://pay.example")]),
            "http://pay.example"
        ));
        assert!(!cross_site(
            &headers(&[("host", "pay.example"), ("sec-fetch-site", "same-origin")]),
            "http://pay.example"
        ));
        assert!(cross_site(
            &headers(&[("host", "pay.example"), ("origin", "https://evil.example")]),
            "http://pay.example"
        ));
        assert!(cross_site(&headers(&[("host", "pay.example"), ("origin", "null")]), "http://pay.example"));
        assert!(cross_site(
            &headers(&[("host", "pay.example"), ("sec-fetch-site", "cross-site")]),
            "http://pay.example"
        ));
        // Behind a proxy that forwards its upstream's Host: the configured public origin is the gateway's own.
        let proxied = headers(&[("host", "127.0.0.1:8080"), ("origin", "https://pay.example")]);
        assert!(!cross_site(&proxied, "https://pay.example"));
        assert!(cross_site(&proxied, "https://other.example"));
        assert_eq!(origin_of("https://pay.example/base/").as_deref(), Some("https://pay.example"));
        assert_eq!(origin_of("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(origin_of("https://Pay.Example:443?x").as_deref(), Some("https://pay.example"));
        assert_eq!(origin_of("ftp://pay.example"), None);
        let default_port = headers(&[("host", "127.0.0.1:8080"), ("origin", "https://pay.example")]);
        assert!(!cross_site(&default_port, &origin_of("https://pay.example:443/").unwrap()));
    }

    #[test]
    fn pages_carry_the_security_headers() {
        let resp = html(StatusCode::OK, "x".into(), "'self' https://shop.example");
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.ends_with("frame-ancestors 'self' https://shop.example"), "{csp}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    }
}
