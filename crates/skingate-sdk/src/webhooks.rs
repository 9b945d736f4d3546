//! Verifying what a gateway sends you: events webhooks and Result-URL callbacks.
//!
//! A skingate delivery carries three signatures; check the strongest one present:
//! 1. Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`): covers id, time and body,
//!    refuses replays older than the tolerance (default 5 minutes), and may carry several signatures during
//!    a secret rotation. Checked first whenever the header is there.
//! 2. `Signature`: hex HMAC-SHA256 of the body (the vendor's scheme): covers the body, not the time.
//! 3. `X-SIGN`: `md5(client_id + secret)`, constant per project: proves little; only accepted when
//!    [`Verifier::allow_static_only`] is set, for gateways that send nothing else.
//!
//! All comparisons are constant-time.

use http::HeaderMap;
use serde_json::{Map, Value};
use skingate_types::sign::{self, StandardError, standard};

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No signature header this verifier accepts.
    #[error("no signature header")]
    Missing,
    /// A signature was there but matched no secret.
    #[error("signature does not match")]
    Mismatch,
    /// The Standard Webhooks timestamp is too old, too new or malformed.
    #[error("timestamp outside tolerance")]
    Timestamp,
    /// A callback body that is neither a JSON object nor a PHP-style form, or of another content type:
    /// nothing the gateway signed, so nothing to verify.
    #[error("callback body is not a JSON object or a form")]
    Malformed,
}

/// Which scheme accepted the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `webhook-signature`.
    StandardWebhooks,
    /// `Signature`.
    HmacSha256,
    /// `X-SIGN` only.
    StaticMd5,
}

/// Checks signatures for one project (one client id, one or more secrets).
#[derive(Debug, Clone)]
pub struct Verifier {
    client_id: String,
    secrets: Vec<String>,
    tolerance_secs: i64,
    static_only: bool,
}

impl Verifier {
    /// A verifier for this project's current secret.
    pub fn new(client_id: &str, secret: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            secrets: vec![secret.to_owned()],
            tolerance_secs: standard::TOLERANCE_SECS,
            static_only: false,
        }
    }

    /// Also accept another secret (the old one, while a rotation is under way).
    pub fn with_secret(mut self, secret: &str) -> Self {
        self.secrets.push(secret.to_owned());
        self
    }

    /// How far `webhook-timestamp` may be from now, in seconds.
    pub fn tolerance_secs(mut self, secs: i64) -> Self {
        self.tolerance_secs = secs;
        self
    }

    /// Accept deliveries that carry only the weak `X-SIGN` header.
    pub fn allow_static_only(mut self, allow: bool) -> Self {
        self.static_only = allow;
        self
    }

    /// Verifies an events-webhook delivery: headers and the exact body bytes, at Unix time `now`.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<Scheme, VerifyError> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let (Some(id), Some(ts), Some(sig)) = (get(standard::ID), get(standard::TIMESTAMP), get(standard::SIGNATURE))
        {
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            return match sign::verify_standard(&secrets, id, ts, body, sig, now, self.tolerance_secs) {
                Ok(()) => Ok(Scheme::StandardWebhooks),
                Err(StandardError::NoMatch) => Err(VerifyError::Mismatch),
                Err(_) => Err(VerifyError::Timestamp),
            };
        }
        if let Some(sig) = get("signature").or_else(|| get("authorization")) {
            return if self.secrets.iter().any(|s| sign::verify_events_signature(s, body, sig)) {
                Ok(Scheme::HmacSha256)
            } else {
                Err(VerifyError::Mismatch)
            };
        }
        match get("x-sign") {
            Some(x) if self.static_only => {
                if self.secrets.iter().any(|s| sign::verify_static_sign(&self.client_id, s, x)) {
                    Ok(Scheme::StaticMd5)
                } else {
                    Err(VerifyError::Mismatch)
                }
            }
            _ => Err(VerifyError::Missing),
        }
    }

    /// Verifies a Result-URL callback as received: its `Content-Type` header and its exact body. Returns its
    /// parameters once the `sign` holds, so a receiver never reads an unverified callback.
    ///
    /// Form bodies (the gateway's default) are read as PHP's `$_POST` reads them, with the parser the gateway
    /// itself uses for requests (`skins[0][name]=…` becomes a list of objects); JSON bodies (the project's
    /// `callback_format = json`) are read as they are. A missing or `text/plain` type is sniffed: JSON when the
    /// body starts with `{`, else a form.
    pub fn verify_callback_body(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Map<String, Value>, VerifyError> {
        let params = parse_callback(content_type, body).ok_or(VerifyError::Malformed)?;
        self.verify_callback(&params)?;
        Ok(params)
    }

    /// Verifies a Result-URL callback's `sign` field (HMAC-SHA1 over its scalar fields, spec §2.2) once its
    /// body is parsed, nesting included; [`Verifier::verify_callback_body`] parses the body as sent.
    pub fn verify_callback(&self, params: &Map<String, Value>) -> Result<(), VerifyError> {
        let Some(Value::String(given)) = params.get(sign::SIGN_PARAM) else { return Err(VerifyError::Missing) };
        if self.secrets.iter().any(|s| sign::verify_api_sign(s, params, given)) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// A callback body's parameters, read by its content type; `None` when it is not a JSON object or a form.
fn parse_callback(content_type: Option<&str>, body: &[u8]) -> Option<Map<String, Value>> {
    let json = match skingate_types::form::media_type(content_type.unwrap_or("")).as_str() {
        "application/json" => true,
        "application/x-www-form-urlencoded" => false,
        "" | "text/plain" => body.trim_ascii_start().starts_with(b"{"),
        _ => return None,
    };
    if json {
        match serde_json::from_slice(body).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    } else {
        skingate_types::form::parse(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn each_scheme() {
        let body = br#"{"event":"balance_change","data":{"balance_value":"11.945"}}"#;
        let v = Verifier::new("1", "123");
        // The spec's vector for the legacy header.
        let legacy =
            headers(&[("signature", "5e19c9dc867d542ac1f17426ec56d0ecb94f968230853e993ad5dba7536bfd3f".into())]);
        assert_eq!(v.verify(&legacy, body, 0), Ok(Scheme::HmacSha256));
        assert_eq!(v.verify(&legacy, b"{}", 0), Err(VerifyError::Mismatch));
        let std_sig = sign::standard_signature("123", "evt_1", 1_000, body);
        let h = headers(&[
            ("webhook-id", "evt_1".into()),
            ("webhook-timestamp", "1000".into()),
            ("webhook-signature", std_sig),
        ]);
        assert_eq!(v.verify(&h, body, 1_100), Ok(Scheme::StandardWebhooks));
        assert_eq!(v.verify(&h, body, 2_000), Err(VerifyError::Timestamp));
        assert_eq!(Verifier::new("1", "new").verify(&h, body, 1_000), Err(VerifyError::Mismatch));
        assert_eq!(Verifier::new("1", "new").with_secret("123").verify(&h, body, 1_000), Ok(Scheme::StandardWebhooks));
        let x = headers(&[("x-sign", "2cfd4560539f887a5e420412b370b361".into())]);
        assert_eq!(v.verify(&x, body, 0), Err(VerifyError::Missing));
        assert_eq!(v.clone().allow_static_only(true).verify(&x, body, 0), Ok(Scheme::StaticMd5));
        assert_eq!(v.verify(&HeaderMap::new(), body, 0), Err(VerifyError::Missing));
    }

    #[test]
    fn result_callback_sign() {
        let vectors: Value =
            serde_json::from_str(include_str!("../../skingate-types/tests/skinsback-vectors.json")).unwrap();
        let case =
            vectors["api_sign"]["cases"].as_array().unwrap().iter().find(|c| c["name"] == "deposit-callback").unwrap();
        let mut params = case["params"].as_object().unwrap().clone();
        params.insert("sign".into(), case["sign"].clone());
        assert_eq!(Verifier::new("1", "123").verify_callback(&params), Ok(()));
        params.insert("amount".into(), Value::from(11));
        assert_eq!(Verifier::new("1", "123").verify_callback(&params), Err(VerifyError::Mismatch));
    }

    #[test]
    fn callback_bodies_by_content_type() {
        let v = Verifier::new("1", "123");
        let mut params: Map<String, Value> =
            serde_json::from_str(r#"{"order_id":"7","status":"success","amount":"1.50"}"#).unwrap();
        let sign = sign::api_sign("123", &params, sign::Canonicalization::Js);
        params.insert("sign".into(), Value::from(sign.clone()));
        let form = format!("order_id=7&status=success&amount=1.50&skins%5B0%5D%5Bname%5D=X&sign={sign}");
        let got = v.verify_callback_body(Some("application/x-www-form-urlencoded"), form.as_bytes()).unwrap();
        assert_eq!(got["skins"][0]["name"], "X", "nesting rebuilt as PHP would");
        let json = Value::Object(params.clone()).to_string();
        assert_eq!(v.verify_callback_body(Some("application/json; charset=utf-8"), json.as_bytes()), Ok(params));
        assert!(v.verify_callback_body(None, json.as_bytes()).is_ok(), "sniffed");
        let tampered = form.replace("1.50", "9.50");
        assert_eq!(v.verify_callback_body(None, tampered.as_bytes()), Err(VerifyError::Mismatch));
        assert_eq!(v.verify_callback_body(Some("text/xml"), form.as_bytes()), Err(VerifyError::Malformed));
        assert_eq!(v.verify_callback_body(Some("application/json"), b"[1]"), Err(VerifyError::Malformed));
        assert_eq!(v.verify_callback_body(None, b"status=success"), Err(VerifyError::Missing));
    }
}
