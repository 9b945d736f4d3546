//! Signature schemes of the SkinsBack protocol.
//!
//! | where | scheme | function |
//! |---|---|---|
//! | API request `sign` param, Result-URL callback `sign` | HMAC-SHA1 over sorted top-level scalars | [`api_sign`], [`verify_api_sign`] |
//! | `X-SIGN` header, WebSocket `signature` query | `md5(client_id + client_secret)` | [`static_sign`], [`verify_static_sign`] |
//! | events webhook `Signature` header | HMAC-SHA256 of the raw body | [`events_signature`] |
//! | Standard Webhooks `webhook-signature` | `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` | [`standard_signature`], [`verify_standard`] |
//!
//! The API signature has a trap: the vendor's PHP and JavaScript snippets render booleans and `null`
//! differently (spec §2.1), and PHP's string conversion prints floats with 14 significant digits while the
//! JSON body it sends carries all 17. A server that wants every existing client to work checks each of these
//! renderings; a client (our SDK) sends only strings and numbers whose renderings agree.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How scalars other than strings and numbers become text in the string to sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canonicalization {
    /// JavaScript string concatenation: `true` → `"true"`, `null` skipped.
    Js,
    /// PHP string conversion of booleans and `null`: `true` → `"1"`, `false` and `null` → `""` (null kept as
    /// `key:;`). Floats as [`number_text`] prints them, which is what PHP prints with `precision = -1` for the
    /// usual magnitudes (from 1e-4 up to 1e15; PHP switches to `1.0E-5` / `1.0E+15` outside).
    Php,
    /// [`Canonicalization::Php`] with floats as PHP's string conversion prints them under its default
    /// `precision = 14` ([`php_float_text`]). A PHP client that posts a JSON body (Laravel `Http::post`,
    /// Guzzle `json`) sends a computed float with all its digits (`0.1 + 0.2` as `0.30000000000000004`, from
    /// `json_encode`, which uses `serialize_precision = -1`) but signs `"$k:$v"`, which gives `0.3`; the
    /// vendor's PHP re-renders the decoded float the same way and accepts it.
    PhpPrecision14,
}

/// The parameter that carries the signature and therefore never signs itself.
pub const SIGN_PARAM: &str = "sign";

/// Builds `key:value;` for every top-level scalar except `sign`, keys in ascending byte order.
///
/// Arrays and objects (`items`, `custom_ids`, `skins`, …) are skipped entirely, as the vendor does.
pub fn string_to_sign(params: &Map<String, Value>, canon: Canonicalization) -> String {
    let mut keys: Vec<&String> = params.keys().filter(|k| k.as_str() != SIGN_PARAM).collect();
    keys.sort_unstable();
    let mut out = String::with_capacity(keys.len() * 24);
    for key in keys {
        let rendered = match (&params[key.as_str()], canon) {
            (Value::Array(_) | Value::Object(_), _) => continue,
            (Value::Null, Canonicalization::Js) => continue,
            (Value::Null, Canonicalization::Php | Canonicalization::PhpPrecision14) => String::new(),
            (Value::Bool(b), Canonicalization::Js) => b.to_string(),
            (Value::Bool(b), Canonicalization::Php | Canonicalization::PhpPrecision14) => {
                if *b { "1" } else { "" }.to_owned()
            }
            (Value::Number(n), Canonicalization::PhpPrecision14) => match n.as_f64() {
                Some(f) if n.is_f64() => php_float_text(f),
                _ => n.to_string(),
            },
            (Value::Number(n), _) => number_text(n),
            (Value::String(s), _) => {
                push_pair(&mut out, key, s);
                continue;
            }
        };
        push_pair(&mut out, key, &rendered);
    }
    out
}

/// A JSON number as JavaScript's `String(x)` renders it before signing (ECMAScript `Number::toString`), since
/// JS clients sign what they send. Integers print exactly; a float prints its shortest round-trip digits laid
/// out as JavaScript does: plain notation from 1e-7 up to (not including) 1e21 (`10.0` is `10`, `1.5e-6` is
/// `0.0000015`, `1.5e20` is `150000000000000000000`), else `d.ddde±x` (`1e-7`, `1.5e+21`). PHP's string
/// conversion (`"$k:$v"`, `(string) $x`) does not: it uses the `precision` setting (14 significant digits by
/// default), so a float with more digits signs differently there; that rendering is [`php_float_text`]. (PHP
/// ≥ 7.1 prints the shortest round-trip form only in `json_encode`, `var_export` and `serialize`, through
/// `serialize_precision = -1`.)
pub fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    js_float_text(n.as_f64().unwrap_or(f64::NAN))
}

/// The significant digits of a float Rust printed in `{:e}` form (`1.25e-3` → `"125"`) and where the decimal
/// point goes relative to them (`-2`: `0.00125`), the two things JavaScript's and PHP's renderings lay out.
fn digits_and_point(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').expect("`e` formatting has an exponent");
    let exp: i32 = exp.parse().expect("`e` formatting has a numeric exponent");
    (mantissa.chars().filter(char::is_ascii_digit).collect(), exp + 1)
}

/// ECMAScript's `Number::toString(x)` for a finite float (JSON carries no other).
fn js_float_text(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == 0.0 {
        // `String(-0)` is `0`.
        return "0".into();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    // Rust's `{:e}` without a precision prints the shortest digits that round-trip, as ECMAScript asks.
    let (digits, n) = digits_and_point(&format!("{:e}", f.abs()));
    // The spec's k (number of digits) and n (where the decimal point goes).
    let k = digits.len() as i32;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let exp_sign = if n - 1 < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        format!("{first}{point}{rest}e{exp_sign}{}", (n - 1).abs())
    };
    format!("{sign}{body}")
}

/// A float as PHP's string conversion prints it under the default `precision = 14` (`php_gcvt` with `'E'`):
/// at most 14 significant digits, correctly rounded, trailing zeros dropped; plain notation while the decimal
/// exponent is from -5 to 14 (`0.0001`, `10000000000000`), else `d.dddE±x` with at least one digit after the
/// point and no padding in the exponent (`1.0E-5`, `1.0E+25`, `1.2345678901235E+17`). So `0.1 + 0.2` is
/// `0.3`, `3 * 1.1` is `3.3`, `10.0` is `10`.
pub fn php_float_text(f: f64) -> String {
    const PRECISION: i32 = 14;
    if !f.is_finite() {
        // JSON cannot carry these; PHP would print INF / NAN.
        return if f.is_nan() {
            "NAN".into()
        } else if f > 0.0 {
            "INF".into()
        } else {
            "-INF".into()
        };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    // Rust's `{:.13e}` is correctly rounded to 14 significant digits, as PHP's `zend_dtoa` in mode 2 is.
    // `decpt` as `zend_dtoa` reports it: where the decimal point goes relative to the digits.
    let (digits, decpt) = digits_and_point(&format!("{:.*e}", (PRECISION - 1) as usize, f.abs()));
    let digits = digits.trim_end_matches('0');
    let exp = decpt - 1;
    let mut out = String::from(sign);
    if if decpt < 0 { decpt < -3 } else { decpt > PRECISION } {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("{first}.{rest}E{exp_sign}{}", exp.unsigned_abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
        out.push_str(digits);
    } else {
        let decpt = decpt as usize;
        if digits.len() <= decpt {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', decpt - digits.len()));
        } else {
            out.push_str(&digits[..decpt]);
            out.push('.');
            out.push_str(&digits[decpt..]);
        }
    }
    out
}

fn push_pair(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push(':');
    out.push_str(value);
    out.push(';');
}

fn hmac_sha1(secret: &[u8], message: &[u8]) -> Hmac<Sha1> {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac
}

/// The `sign` value a client sends: lowercase hex HMAC-SHA1 (key = client secret) of [`string_to_sign`].
pub fn api_sign(secret: &str, params: &Map<String, Value>, canon: Canonicalization) -> String {
    let message = string_to_sign(params, canon);
    hex::encode(hmac_sha1(secret.as_bytes(), message.as_bytes()).finalize().into_bytes())
}

/// Checks a received `sign` in constant time per candidate, accepting any of the [`Canonicalization`]s (JS,
/// PHP, PHP with 14-digit floats) and any hex case. The JS and PHP candidates differ only in how they render
/// booleans and `null`, so neither lets a signature cover other values than the ones received; the 14-digit
/// one also covers every float that rounds to the same 14 digits. A reader that acts on the parameters must
/// therefore use [`signed_as`] and, on a 14-digit match, read the floats as signed ([`floats_as_php_text`]), as
/// the gateway does; checking a callback the gateway signed (strings only) needs no more than this.
pub fn verify_api_sign(secret: &str, params: &Map<String, Value>, provided: &str) -> bool {
    signed_as(secret, params, provided).is_some()
}

/// [`verify_api_sign`], naming the rendering that verified (the first of JS, PHP, PHP with 14 digits). A
/// request verified only as [`Canonicalization::PhpPrecision14`] signed its floats to 14 digits: its reader
/// must then take them as signed ([`floats_as_php_text`]), or many neighbouring floats would each pass as a
/// different, validly signed request (a `custom_id` of `1001.0000000000002` as a fresh key).
pub fn signed_as(secret: &str, params: &Map<String, Value>, provided: &str) -> Option<Canonicalization> {
    let provided = hex::decode(provided.trim().to_ascii_lowercase()).ok()?;
    let verify = |message: &str| hmac_sha1(secret.as_bytes(), message.as_bytes()).verify_slice(&provided).is_ok();
    let mut tried: Vec<String> = Vec::with_capacity(3);
    for canon in [Canonicalization::Js, Canonicalization::Php, Canonicalization::PhpPrecision14] {
        let message = string_to_sign(params, canon);
        if tried.contains(&message) {
            continue;
        }
        if verify(&message) {
            return Some(canon);
        }
        tried.push(message);
    }
    None
}

/// Replaces every top-level float with the text PHP signed for it ([`php_float_text`]): what the vendor's
/// PHP server reads too (`0.30000000000000004` becomes `"0.3"`). Nested values are not signed and stay.
pub fn floats_as_php_text(params: &mut Map<String, Value>) {
    for value in params.values_mut() {
        if let Value::Number(n) = value
            && n.is_f64()
            && let Some(f) = n.as_f64()
        {
            *value = Value::String(php_float_text(f));
        }
    }
}

/// `md5(client_id + client_secret)` in lowercase hex: the `X-SIGN` header and the WebSocket `signature`.
///
/// It authenticates the sender only weakly (it is constant per project and covers no body); it exists
/// because legacy clients check it.
pub fn static_sign(client_id: &str, secret: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(client_id.as_bytes());
    md5.update(secret.as_bytes());
    hex::encode(md5.finalize())
}

/// Constant-time check of a [`static_sign`] value, any hex case.
pub fn verify_static_sign(client_id: &str, secret: &str, provided: &str) -> bool {
    let expected = static_sign(client_id, secret);
    let provided = provided.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(provided.as_bytes()).into()
}

/// The events webhook `Signature` header: lowercase hex HMAC-SHA256 (key = client secret) of the exact body.
pub fn events_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Header names of the Standard Webhooks scheme (<https://www.standardwebhooks.com>).
pub mod standard {
    /// The event id, stable across retries: receivers deduplicate on it.
    pub const ID: &str = "webhook-id";
    /// Unix seconds of this attempt: receivers refuse old ones (replay protection).
    pub const TIMESTAMP: &str = "webhook-timestamp";
    /// Space-separated `v1,<base64>` signatures, one per active secret.
    pub const SIGNATURE: &str = "webhook-signature";
    /// How far a timestamp may be from the receiver's clock, in seconds.
    pub const TOLERANCE_SECS: i64 = 300;
}

/// One Standard Webhooks signature, `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`.
///
/// The key is the UTF-8 bytes of the project's client secret (not a `whsec_` base64 key): one secret per
/// project signs every scheme.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Why a Standard Webhooks message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardError {
    /// The timestamp header is not a number.
    BadTimestamp,
    /// The timestamp is further than the tolerance from `now`.
    OutsideTolerance,
    /// No `v1` signature matched any secret.
    NoMatch,
}

/// Verifies a `webhook-signature` header against each of `secrets` (several during a rotation), in
/// constant time per candidate; unknown schemes (`v1a,…`) are ignored.
pub fn verify_standard(
    secrets: &[&str],
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), StandardError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| StandardError::BadTimestamp)?;
    // A timestamp far from now (even i64::MIN) is out of tolerance, never an overflow.
    if now.checked_sub(ts).is_none_or(|d| d.unsigned_abs() > tolerance_secs.unsigned_abs()) {
        return Err(StandardError::OutsideTolerance);
    }
    let given: Vec<&str> = header.split_whitespace().filter(|s| s.starts_with("v1,")).collect();
    for secret in secrets {
        let expected = standard_signature(secret, id, ts, body);
        if given.iter().any(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes()))) {
            return Ok(());
        }
    }
    Err(StandardError::NoMatch)
}

/// Checks the legacy `Signature` header (hex HMAC-SHA256 of the body) in constant time, any hex case.
pub fn verify_events_signature(secret: &str, body: &[u8], provided: &str) -> bool {
    let expected = events_signature(secret, body);
    expected.as_bytes().ct_eq(provided.trim().to_ascii_lowercase().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn spec_worked_example() {
        let p = map(json!({"method": "orderstatus", "order_id": 1, "shopid": "123"}));
        assert_eq!(string_to_sign(&p, Canonicalization::Js), "method:orderstatus;order_id:1;shopid:123;");
        assert_eq!(api_sign("123", &p, Canonicalization::Js), "abee99d476c736102c3d6062807761b6e4d31dd8");
        assert!(verify_api_sign("123", &p, "ABEE99D476C736102C3D6062807761B6E4D31DD8"));
        assert!(!verify_api_sign("124", &p, "abee99d476c736102c3d6062807761b6e4d31dd8"));
        assert!(!verify_api_sign("123", &p, "not-hex"));
    }

    /// Every case of `shared/spec/skinsback-vectors.json`, embedded so the test runs without `shared/`.
    #[test]
    fn vendor_vectors() {
        let vectors: Value = serde_json::from_str(include_str!("../tests/skinsback-vectors.json")).unwrap();
        for case in vectors["api_sign"]["cases"].as_array().unwrap() {
            let params = map(case["params"].clone());
            let canon = match case["canonicalization"].as_str().unwrap() {
                "js" => Canonicalization::Js,
                _ => Canonicalization::Php,
            };
            let name = case["name"].as_str().unwrap();
            assert_eq!(string_to_sign(&params, canon), case["string_to_sign"].as_str().unwrap(), "{name}");
            let secret = case["secret"].as_str().unwrap();
            assert_eq!(api_sign(secret, &params, canon), case["sign"].as_str().unwrap(), "{name}");
            assert!(verify_api_sign(secret, &params, case["sign"].as_str().unwrap()), "{name}");
        }
        let ws = &vectors["websocket_signature"];
        assert_eq!(static_sign(ws["clientId"].as_str().unwrap(), ws["clientSecret"].as_str().unwrap()), ws["md5"]);
        for case in vectors["events_webhook"]["cases"].as_array().unwrap() {
            let body = case["body"].as_str().unwrap().as_bytes();
            assert_eq!(events_signature(case["secret"].as_str().unwrap(), body), case["hmac_sha256_hex"]);
        }
    }

    #[test]
    fn null_and_bool_renderings() {
        let p = map(json!({"a": null, "b": false, "c": true, "sign": "x", "d": [1], "e": {"f": 1}}));
        assert_eq!(string_to_sign(&p, Canonicalization::Js), "b:false;c:true;");
        assert_eq!(string_to_sign(&p, Canonicalization::Php), "a:;b:;c:1;");
        let php = api_sign("s", &p, Canonicalization::Php);
        let js = api_sign("s", &p, Canonicalization::Js);
        assert!(verify_api_sign("s", &p, &php) && verify_api_sign("s", &p, &js));
    }

    #[test]
    fn numbers_render_as_javascript_and_php_print_them() {
        let p = map(json!({"a": 10.0, "b": 1.5, "c": 7, "d": -3.0, "e": 0.1, "f": 12345678901234567_u64}));
        let expected = "a:10;b:1.5;c:7;d:-3;e:0.1;f:12345678901234567;";
        assert_eq!(string_to_sign(&p, Canonicalization::Js), expected);
        assert_eq!(string_to_sign(&p, Canonicalization::Php), expected);
    }

    /// PHP's `"$k:$v"` under the default `precision = 14`; the expected texts are Python's `'%.14G' % x` in
    /// PHP's exponent form (`1.0E-5`, not `1E-05`).
    #[test]
    fn php_string_conversion_of_floats() {
        for (f, php) in [
            (0.1 + 0.2, "0.3"),
            (3.0 * 1.1, "3.3"),
            (19.99 * 1.15, "22.9885"),
            (0.00001, "1.0E-5"),
            (1e25, "1.0E+25"),
            (-1.5e-7, "-1.5E-7"),
            (1.2345678901234568e17, "1.2345678901235E+17"),
            (1e14, "1.0E+14"),
            (1e13, "10000000000000"),
            (0.0001, "0.0001"),
            (1.0 / 3.0, "0.33333333333333"),
            (200.0 / 3.0, "66.666666666667"),
            (0.5, "0.5"),
            (-3.0, "-3"),
            (10.0, "10"),
            (0.0, "0"),
            (1e100, "1.0E+100"),
        ] {
            assert_eq!(php_float_text(f), php, "{f:?}");
        }
        assert_eq!(0.1 + 0.2, 0.30000000000000004);
        assert_eq!(19.99 * 1.15, 22.988499999999995);
    }

    #[test]
    fn json_numbers_render_as_javascript_string_does() {
        // Each pair is JSON text and what node's `String(JSON.parse(text))` prints.
        for (json, js) in [
            ("10.0", "10"),
            ("-0.0", "0"),
            ("0.1", "0.1"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("0.000001", "0.000001"),
            ("0.0000015", "0.0000015"),
            ("-0.0000015", "-0.0000015"),
            ("0.0000001", "1e-7"),
            ("1.5e-7", "1.5e-7"),
            ("123456.789", "123456.789"),
            ("1e20", "100000000000000000000"),
            ("150000000000000000000", "150000000000000000000"),
            ("1e21", "1e+21"),
            ("1.5e21", "1.5e+21"),
            // JSON.stringify prints these from a double, so the text read back is the text signed.
            ("18446744073709552000", "18446744073709552000"),
            ("-9223372036854776000", "-9223372036854776000"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
        ] {
            let n: serde_json::Number = serde_json::from_str(json).unwrap();
            assert_eq!(number_text(&n), js, "{json}");
        }
        // Integers that fit 64 bits print exactly (what a PHP or Go client signs).
        for exact in ["18446744073709551615", "-9223372036854775808", "9007199254740993"] {
            assert_eq!(number_text(&serde_json::from_str(exact).unwrap()), exact);
        }
    }

    #[test]
    fn a_php_client_signing_a_json_float_with_precision_14() {
        // The body carries json_encode's digits; the client signed PHP's string conversion of them.
        let p = map(json!({"method": "market_buy", "id": 7, "max_price": 0.1 + 0.2, "shopid": "1", "x": 1e-5}));
        assert_eq!(p["max_price"].to_string(), "0.30000000000000004");
        let php = "id:7;max_price:0.3;method:market_buy;shopid:1;x:1.0E-5;";
        assert_eq!(string_to_sign(&p, Canonicalization::PhpPrecision14), php);
        let sign = hex::encode(hmac_sha1(b"s", php.as_bytes()).finalize().into_bytes());
        assert!(verify_api_sign("s", &p, &sign));
        // The other renderings still verify, and nothing else does: not the rounded value sent as such, nor the
        // 14-digit rendering with JS booleans.
        assert!(verify_api_sign("s", &p, &api_sign("s", &p, Canonicalization::Js)));
        assert!(verify_api_sign("s", &p, &api_sign("s", &p, Canonicalization::Php)));
        let mut rounded = p.clone();
        rounded.insert("max_price".into(), json!(0.3));
        assert!(!verify_api_sign("s", &rounded, &api_sign("s", &p, Canonicalization::Js)));
        let q = map(json!({"full": true, "price": 0.1 + 0.2}));
        let mixed = hex::encode(hmac_sha1(b"s", b"full:true;price:0.3;").finalize().into_bytes());
        assert!(!verify_api_sign("s", &q, &mixed));
        assert!(verify_api_sign("s", &q, &api_sign("s", &q, Canonicalization::PhpPrecision14)));
        // Verified only as PHP with 14 digits: the floats are then read as signed.
        assert_eq!(signed_as("s", &p, &sign), Some(Canonicalization::PhpPrecision14));
        assert_eq!(signed_as("s", &p, &api_sign("s", &p, Canonicalization::Js)), Some(Canonicalization::Js));
        let mut read = p.clone();
        floats_as_php_text(&mut read);
        assert_eq!(
            (read["max_price"].clone(), read["x"].clone(), read["id"].clone()),
            (json!("0.3"), json!("1.0E-5"), json!(7))
        );
        // A float sent as a string is signed as that string by every client.
        let r = map(json!({"max_price": "0.30000000000000004"}));
        let short = hex::encode(hmac_sha1(b"s", b"max_price:0.3;").finalize().into_bytes());
        assert!(!verify_api_sign("s", &r, &short));
    }

    /// A JSON float reads as the double its text names, to the last bit: the signature renders the parsed
    /// double again, so a float read one unit in the last place off would no longer match what a client
    /// signed (serde_json's fast float parser is off by one for some inputs unless `float_roundtrip` is on).
    #[test]
    fn json_floats_read_exactly() {
        for text in ["1001.0000000000002", "0.30000000000000004", "1994.1414234139934", "1600.1946036962565"] {
            let parsed: f64 = serde_json::from_str(text).unwrap();
            assert_eq!(parsed, text.parse::<f64>().unwrap(), "{text}");
            let p = map(serde_json::from_str(&format!(r#"{{"x": {text}}}"#)).unwrap());
            assert_eq!(string_to_sign(&p, Canonicalization::Js), format!("x:{text};"));
        }
    }

    #[test]
    fn standard_webhooks_round_trip() {
        let body = br#"{"event":"balance_change","data":{"balance_value":"1.00"}}"#;
        let sig = standard_signature("new", "evt_1", 1_000, body);
        assert!(sig.starts_with("v1,"));
        let header = format!("v1,bogus {sig} v1a,ignored");
        assert_eq!(verify_standard(&["old", "new"], "evt_1", "1000", body, &header, 1_100, 300), Ok(()));
        assert_eq!(verify_standard(&["old"], "evt_1", "1000", body, &header, 1_100, 300), Err(StandardError::NoMatch));
        assert_eq!(
            verify_standard(&["new"], "evt_1", "1000", body, &header, 1_400, 300),
            Err(StandardError::OutsideTolerance)
        );
        assert_eq!(
            verify_standard(&["new"], "evt_1", "x", body, &header, 1_000, 300),
            Err(StandardError::BadTimestamp)
        );
        assert_eq!(verify_standard(&["new"], "evt_2", "1000", body, &header, 1_000, 300), Err(StandardError::NoMatch));
        let far = i64::MIN.to_string();
        assert_eq!(
            verify_standard(&["new"], "evt_1", &far, body, &header, 1_000, 300),
            Err(StandardError::OutsideTolerance)
        );
        assert!(verify_events_signature("123", br#"{"a":1}"#, &events_signature("123", br#"{"a":1}"#).to_uppercase()));
    }

    #[test]
    fn static_sign_example() {
        assert_eq!(static_sign("123", "123"), "4297f44b13955235245b2497399d7a93");
        assert!(verify_static_sign("123", "123", "4297F44B13955235245B2497399D7A93"));
        assert!(!verify_static_sign("123", "124", "4297f44b13955235245b2497399d7a93"));
    }
}
