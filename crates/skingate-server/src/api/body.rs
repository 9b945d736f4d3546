//! Turning a request body into [`Params`].
//!
//! Accepted encodings: `application/json` (a top-level object) and `application/x-www-form-urlencoded`
//! with PHP-style nesting (`items[0][id]=1`, `custom_ids[]=a`), parsed by `serde_qs` in its lenient form
//! mode (PHP's `http_build_query` percent-encodes the brackets); indices may have gaps or start above 0, as
//! PHP allows. The form parser lives in `skingate_types::form`, shared with the SDK's callback check. `multipart/form-data` (PHP curl given an array as `CURLOPT_POSTFIELDS`,
//! which the vendor's `$_POST` reads) is parsed by `multer`, and its text fields are read as that form would
//! be; a file part is refused, since no parameter is a file and PHP would move it out of `$_POST`. A body
//! without a `Content-Type`, or sent as `text/plain` (JavaScript's `fetch` with a string body and no header
//! set), is read as JSON when it starts with `{` and as a form otherwise, because `curl -d` and many PHP
//! clients omit the header. Anything else is refused before the body is looked at.

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use serde_json::Value;
use skingate_types::envelope::GlobalError;

use super::params::Params;

/// Deepest nesting accepted in a form body (`items[0][id]` is 2).
#[cfg(test)]
const FORM_MAX_DEPTH: usize = skingate_types::form::MAX_DEPTH;

/// How the body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json` (or any `+json` type).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data` with its boundary (`None` when the header names none: the body is then
    /// `-10`, once it has been read within the size limit).
    Multipart(Option<String>),
    /// No `Content-Type`, or `text/plain`: guess from the first byte.
    Sniff,
}

/// Reads the encoding from the headers; unknown types are `-12 unsupported_content_type`.
pub fn encoding(headers: &HeaderMap) -> Result<Encoding, GlobalError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Encoding::Sniff);
    };
    let mime = value.to_str().map_err(|_| GlobalError::UnsupportedContentType)?;
    match skingate_types::form::media_type(mime).as_str() {
        "application/json" | "text/json" => Ok(Encoding::Json),
        e if e.starts_with("application/") && e.ends_with("+json") => Ok(Encoding::Json),
        "application/x-www-form-urlencoded" => Ok(Encoding::Form),
        "multipart/form-data" => Ok(Encoding::Multipart(multer::parse_boundary(mime).ok())),
        // `fetch(url, {method: "POST", body: "..."})` labels a string body `text/plain;charset=UTF-8`; the
        // text is then JSON or a form, exactly as when the header is missing.
        "" | "text/plain" => Ok(Encoding::Sniff),
        _ => Err(GlobalError::UnsupportedContentType),
    }
}

/// Parses a request body, read within `body_limit_bytes` (so every encoding is bounded by it, multipart
/// included); malformed input is `-10 invalid_request_body`.
pub async fn parse_body(encoding: Encoding, body: Bytes) -> Result<Params, GlobalError> {
    match encoding {
        Encoding::Multipart(Some(boundary)) => parse_multipart(boundary, body).await,
        other => parse(other, &body),
    }
}

/// Parses a JSON, form or sniffed body; malformed input is `-10 invalid_request_body`. Synchronous for
/// callers outside a request (the CLI's callback receiver); a multipart body needs [`parse_body`] and is
/// `-10` here.
pub fn parse(encoding: Encoding, body: &[u8]) -> Result<Params, GlobalError> {
    let trimmed = body.trim_ascii_start();
    let encoding = match encoding {
        Encoding::Sniff if trimmed.first() == Some(&b'{') => Encoding::Json,
        Encoding::Sniff => Encoding::Form,
        e => e,
    };
    match encoding {
        Encoding::Json if trimmed.is_empty() => Ok(Params::default()),
        Encoding::Json => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut map)) => {
                map.values_mut().for_each(whole_floats_as_integers);
                Ok(Params(map))
            }
            _ => Err(GlobalError::InvalidRequestBody),
        },
        Encoding::Multipart(_) => Err(GlobalError::InvalidRequestBody),
        Encoding::Form | Encoding::Sniff => parse_form(body),
    }
}

/// A JSON float with a whole value (`2916.0`: PHP's `json_encode` of a float, Python's of `float(2916)`) becomes
/// the integer it is. Every signature rendering already signs it as `2916`; read as its JSON text it was the
/// id `"2916.0"`, an `order_id` that `orderstatus` with `2916` could not find, and a `custom_id` other than
/// the `2916` a retry sends. Only exact integers (below 2^53) and not `-0.0` (PHP signs it `-0`).
fn whole_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < super::params::EXACT_INTEGERS
                && !(f == 0.0 && f.is_sign_negative())
            {
                // Exact: |f| < 2^53, so the cast neither rounds nor saturates.
                #[allow(clippy::cast_possible_truncation)]
                let whole = f as i64;
                *value = Value::from(whole);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_floats_as_integers),
        _ => {}
    }
}

/// A `multipart/form-data` body as PHP's `$_POST` sees it: each text field is one `name=value` pair, with
/// the same PHP-style nesting as a form body (`items[0][id]`), so the fields are re-encoded as a form and
/// read by [`parse_form`], nesting depth limit included. Values must be UTF-8, as in the other encodings.
///
/// A file part (one with a `filename`) is refused with `-10` rather than ignored: no parameter is a file,
/// and PHP would move it into `$_FILES`, so a parameter sent that way would silently go missing (a
/// `custom_id` among them, which would let a retry buy twice).
async fn parse_multipart(boundary: String, body: Bytes) -> Result<Params, GlobalError> {
    let stream = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut pairs: Vec<(String, String)> = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|_| GlobalError::InvalidRequestBody)? {
        if field.file_name().is_some() {
            return Err(GlobalError::InvalidRequestBody);
        }
        let name = field.name().ok_or(GlobalError::InvalidRequestBody)?.to_owned();
        let value = field.bytes().await.map_err(|_| GlobalError::InvalidRequestBody)?;
        let value = std::str::from_utf8(&value).map_err(|_| GlobalError::InvalidRequestBody)?;
        pairs.push((name, value.to_owned()));
    }
    // Built after the loop: the serializer is not `Send`, so it must not live across an `.await`.
    let form = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    parse_form(form.as_bytes())
}

/// A PHP-style form body, read by the parser the SDK also uses for callbacks ([`skingate_types::form`]).
fn parse_form(body: &[u8]) -> Result<Params, GlobalError> {
    skingate_types::form::parse(body).map(Params).map_err(|_| GlobalError::InvalidRequestBody)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_now(encoding: Encoding, body: &[u8]) -> Result<Params, GlobalError> {
        futures::executor::block_on(parse_body(encoding, Bytes::copy_from_slice(body)))
    }

    fn form(body: &str) -> Value {
        Value::Object(parse_now(Encoding::Form, body.as_bytes()).unwrap().0)
    }

    /// A multipart body as curl writes it for `CURLOPT_POSTFIELDS` given an array.
    fn multipart(parts: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
        let mut out = String::new();
        for (name, file, value) in parts {
            out.push_str("--XyZ\r\nContent-Disposition: form-data; name=\"");
            out.push_str(name);
            out.push('"');
            if let Some(file) = file {
                out.push_str(&format!("; filename=\"{file}\"\r\nContent-Type: application/octet-stream"));
            }
            out.push_str("\r\n\r\n");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("--XyZ--\r\n");
        out.into_bytes()
    }

    #[test]
    fn multipart_text_fields_are_a_php_form() {
        let mp = |parts: &[(&str, Option<&str>, &str)]| {
            parse_now(Encoding::Multipart(Some("XyZ".into())), &multipart(parts))
        };
        let p = mp(&[
            ("method", None, "market_batch_buy"),
            ("shopid", None, "1"),
            ("name", None, "AK-47 | Redline & co = 100%"),
            ("items[0][id]", None, "96"),
            ("items[2][id]", None, "52"),
            ("custom_ids[]", None, "a"),
            ("custom_ids[]", None, "b"),
        ])
        .unwrap();
        assert_eq!(
            Value::Object(p.0),
            json!({"method": "market_batch_buy", "shopid": "1", "name": "AK-47 | Redline & co = 100%",
                   "items": [{"id": "96"}, {"id": "52"}], "custom_ids": ["a", "b"]})
        );
        assert_eq!(mp(&[]).unwrap(), Params::default());
        // A file part is refused, not dropped; so are broken bodies and a missing boundary.
        assert_eq!(
            mp(&[("method", None, "balance"), ("custom_id", Some("c.txt"), "c-1")]),
            Err(GlobalError::InvalidRequestBody)
        );
        assert_eq!(
            parse_now(Encoding::Multipart(Some("XyZ".into())), b"--XyZ\r\nnonsense"),
            Err(GlobalError::InvalidRequestBody)
        );
        assert_eq!(
            parse_now(Encoding::Multipart(None), &multipart(&[("method", None, "balance")])),
            Err(GlobalError::InvalidRequestBody)
        );
        let mut latin1 = multipart(&[("name", None, "caf")]);
        let at = latin1.windows(3).position(|w| w == b"caf").unwrap() + 3;
        latin1.insert(at, 0xe9);
        assert_eq!(parse_now(Encoding::Multipart(Some("XyZ".into())), &latin1), Err(GlobalError::InvalidRequestBody));
        // Nesting deeper than the form limit is read as a form body would be.
        let deep = format!("a{}", "[0]".repeat(FORM_MAX_DEPTH + 1));
        assert_eq!(Value::Object(mp(&[(&deep, None, "x")]).unwrap().0), form(&format!("{deep}=x")));
    }

    #[test]
    fn php_style_forms() {
        assert_eq!(form("method=balance&shopid=1&sign=ab"), json!({"method":"balance","shopid":"1","sign":"ab"}));
        assert_eq!(form("custom_ids[]=a&custom_ids[]=b"), json!({"custom_ids":["a","b"]}));
        assert_eq!(form("custom_ids%5B%5D=a&custom_ids%5B%5D=b"), json!({"custom_ids":["a","b"]}));
        assert_eq!(
            form("items[0][id]=1&items[0][max_price]=0.5&items[1][id]=2"),
            json!({"items":[{"id":"1","max_price":"0.5"},{"id":"2"}]})
        );
        assert_eq!(form("name=AK-47+%7C+Redline"), json!({"name":"AK-47 | Redline"}));
    }

    /// Indices as PHP leaves them after `unset()`, or chosen by hand: any numbers, in index order.
    #[test]
    fn sparse_and_non_zero_based_indices() {
        assert_eq!(form("items[0][id]=96&items[2][id]=52"), json!({"items":[{"id":"96"},{"id":"52"}]}));
        assert_eq!(form("items%5B2%5D%5Bid%5D=52&items%5B0%5D%5Bid%5D=96"), json!({"items":[{"id":"96"},{"id":"52"}]}));
        assert_eq!(form("items[1][id]=96"), json!({"items":[{"id":"96"}]}));
        assert_eq!(form("custom_ids[5]=x"), json!({"custom_ids":["x"]}));
        assert_eq!(form("custom_ids[10]=b&custom_ids[9]=a"), json!({"custom_ids":["a","b"]}));
        assert_eq!(form("a[3][b][7]=x&a[3][b][2]=y"), json!({"a":[{"b":["y","x"]}]}));
        // A map with a name among the numbers stays a map; values and top-level keys are never rewritten.
        assert_eq!(form("a[x]=1&a[0]=2"), json!({"a":{"x":"1","0":"2"}}));
        assert_eq!(form("name=[5]&note=a%5B7%5D"), json!({"name":"[5]","note":"a[7]"}));
        // The depth limit applies as to contiguous indices: below it the rest of the key is one name.
        let deep = |i: &str| format!("a{}=x", format!("[{i}]").repeat(FORM_MAX_DEPTH + 1));
        let nest = |leaf: Value| json!({"a": [[[[[leaf]]]]]});
        assert_eq!(form(&deep("0")), nest(json!({"[0]": "x"})));
        assert_eq!(form(&deep("3")), nest(json!({"[3]": "x"})));
    }

    #[test]
    fn json_and_sniffing() {
        let p = parse_now(Encoding::Sniff, br#" {"method":"status","n":1}"#).unwrap();
        assert_eq!(p.0["n"], json!(1));
        // Whole floats are the integers they are (as every client signs them), everywhere in the body; other
        // floats, huge ones and -0.0 stay as sent.
        let body = br#"{"id":2916.0,"items":[{"id":5.0}],"x":0.5,"big":1e20,"neg":-3.0,"nz":-0.0}"#;
        let p = parse_now(Encoding::Json, body).unwrap();
        assert_eq!((&p.0["id"], &p.0["items"][0]["id"], &p.0["neg"]), (&json!(2916), &json!(5), &json!(-3)));
        assert_eq!(p.text("id"), Ok("2916".to_owned()));
        assert!(p.0["x"].is_f64() && p.0["big"].is_f64() && p.0["nz"].is_f64());
        assert_eq!(parse_now(Encoding::Json, b"[1,2]"), Err(GlobalError::InvalidRequestBody));
        assert_eq!(parse_now(Encoding::Json, b"{bad"), Err(GlobalError::InvalidRequestBody));
        assert_eq!(parse_now(Encoding::Json, b"").unwrap(), Params::default());
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(encoding(&h), Ok(Encoding::Sniff));
        h.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert_eq!(encoding(&h), Ok(Encoding::Json));
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert_eq!(encoding(&h), Ok(Encoding::Form));
        h.insert(header::CONTENT_TYPE, "text/plain;charset=UTF-8".parse().unwrap());
        assert_eq!(encoding(&h), Ok(Encoding::Sniff));
        h.insert(header::CONTENT_TYPE, "multipart/form-data; boundary=----abc".parse().unwrap());
        assert_eq!(encoding(&h), Ok(Encoding::Multipart(Some("----abc".into()))));
        h.insert(header::CONTENT_TYPE, "multipart/form-data".parse().unwrap());
        assert_eq!(encoding(&h), Ok(Encoding::Multipart(None)));
        h.insert(header::CONTENT_TYPE, "multipart/mixed; boundary=x".parse().unwrap());
        assert_eq!(encoding(&h), Err(GlobalError::UnsupportedContentType));
        h.insert(header::CONTENT_TYPE, "text/xml".parse().unwrap());
        assert_eq!(encoding(&h), Err(GlobalError::UnsupportedContentType));
    }
}
