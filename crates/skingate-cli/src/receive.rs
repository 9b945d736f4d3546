//! `skingate receive`: a tiny merchant endpoint for development that prints every callback it gets and
//! checks its signatures, so a newcomer sees a deposit's Result-URL callback arrive without writing a
//! receiver first.
//!
//! Result-URL callbacks (form or JSON) are parsed the way PHP's `$_POST` would parse them, then `sign`
//! (HMAC-SHA1 over the top-level scalars, spec §2.2) and `X-SIGN` (md5(client_id + secret)) are checked.
//! Events webhooks (JSON with a `Signature` header) get their HMAC-SHA256 checked instead.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use clap::Args;
use serde_json::Value;
use skingate_server::api::body::{self, Encoding};
use skingate_types::sign;

/// `skingate receive`.
#[derive(Debug, Args)]
pub struct Receive {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// The project's client secret, to check signatures (without it they are only printed).
    #[arg(long)]
    secret: Option<String>,
    /// The project's client id, to check `X-SIGN`.
    #[arg(long)]
    client_id: Option<String>,
    /// HTTP status to answer with (e.g. 500 to watch the gateway retry).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..=599))]
    status: u16,
}

/// Serves until Ctrl-C.
pub async fn run(args: Receive) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let status = axum::http::StatusCode::from_u16(args.status)?;
    eprintln!("receiving on http://{addr}/ (answering {status}); set it as the project's result URL:");
    eprintln!("  skingate project set ID --result-url http://{addr}/callback   (needs webhook_allow_private)");
    let secret = args.secret;
    let client_id = args.client_id;
    let app = axum::Router::new().fallback(move |headers: HeaderMap, uri: axum::http::Uri, bytes: bytes::Bytes| {
        let (secret, client_id) = (secret.clone(), client_id.clone());
        async move {
            outln!("{}", describe(&headers, &uri, &bytes, secret.as_deref(), client_id.as_deref()));
            (status, "OK")
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(async { drop(tokio::signal::ctrl_c().await) }).await?;
    Ok(())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "valid" } else { "INVALID" }
}

/// A human report of one request: what it is, its fields, and whether each signature holds.
pub fn describe(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    bytes: &[u8],
    secret: Option<&str>,
    id: Option<&str>,
) -> String {
    let mut out = format!("--- POST {uri}");
    let content_type = header(headers, "content-type").unwrap_or("");
    if let Some(sig) = header(headers, "signature") {
        out.push_str("\nevents webhook");
        if let Some(secret) = secret {
            out.push_str(&format!(" (Signature {})", verdict(sign::verify_events_signature(secret, bytes, sig))));
        }
        out.push_str(&format!("\n{}", String::from_utf8_lossy(bytes)));
        return out;
    }
    let encoding = if content_type.starts_with("application/json") { Encoding::Json } else { Encoding::Form };
    let Ok(params) = body::parse(encoding, bytes) else {
        out.push_str(&format!("\nunparseable {content_type} body:\n{}", String::from_utf8_lossy(bytes)));
        return out;
    };
    let status = params.0.get("status").and_then(Value::as_str).unwrap_or("?");
    let order = match params.0.get("order_id") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    out.push_str(&format!("\nResult-URL callback ({content_type}): status {status}, order_id {order}"));
    if let Some(secret) = secret {
        let given = params.0.get(sign::SIGN_PARAM).and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!("\n  sign   {}", verdict(sign::verify_api_sign(secret, &params.0, given))));
        if let Some(id) = id {
            let x = header(headers, "x-sign").unwrap_or("");
            out.push_str(&format!("\n  X-SIGN {}", verdict(sign::verify_static_sign(id, secret, x))));
        }
    }
    let pretty = serde_json::to_string_pretty(&Value::Object(params.0)).unwrap_or_default();
    out.push_str(&format!("\n{pretty}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_a_form_callback() {
        let mut params = serde_json::Map::new();
        params.insert("status".into(), "success".into());
        params.insert("order_id".into(), "42".into());
        let signed = sign::api_sign("s3cret", &params, skingate_types::Canonicalization::Php);
        let body = format!("status=success&order_id=42&skins%5B0%5D%5Bname%5D=AK&sign={signed}");
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
        headers.insert("x-sign", sign::static_sign("7", "s3cret").parse().unwrap());
        let text = describe(&headers, &"/cb".parse().unwrap(), body.as_bytes(), Some("s3cret"), Some("7"));
        assert!(text.contains("sign   valid"), "{text}");
        assert!(text.contains("X-SIGN valid"), "{text}");
        let bad = describe(&headers, &"/cb".parse().unwrap(), b"status=fail&sign=00", Some("s3cret"), Some("7"));
        assert!(bad.contains("sign   INVALID"), "{bad}");
    }
}
