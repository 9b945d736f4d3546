//! Reading PHP-style `application/x-www-form-urlencoded` bodies the way PHP's `$_POST` does.
//!
//! One implementation for both sides of the wire: the server reads API requests with it, and the SDK reads
//! the form-encoded Result-URL callbacks the server sends, so a merchant verifying a callback sees exactly the
//! parameters (and nesting) the gateway signed. Nested keys (`items[0][id]=1`, `custom_ids[]=a`, brackets
//! percent-encoded or not) become arrays and objects, parsed by `serde_qs` in its lenient form mode (PHP's
//! `http_build_query` percent-encodes the brackets). Indices may have gaps or start above 0, as PHP allows:
//! such a node becomes an array in index order. Nesting deeper than [`MAX_DEPTH`] keeps the rest of the key
//! as one name. Every value is a string.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Deepest nesting read as structure (`items[0][id]` is 2); below it the rest of a key is one name, which
/// bounds the work a hostile body can cause.
pub const MAX_DEPTH: usize = 5;

/// Most `name=value` pairs a body may hold (PHP's `max_input_vars` is 1000 by default; the largest list a
/// method takes is 1000 entries, `market_getinfo`'s ids). A body with more is refused before any of it is
/// parsed: nested keys cost the parser several microseconds each, so an unauthenticated megabyte of them cost
/// a third of a second of CPU (an audit stalled every route on two cores with six senders).
pub const MAX_PAIRS: usize = 2000;

/// Most bracket segments one key may have (`items[0][id]` has 2): deeper keys are refused before parsing, as
/// a single megabyte-long key of `[0][0]…` still cost tens of milliseconds of CPU under the pair cap.
pub const MAX_SEGMENTS: usize = 8;

/// A body that is not a PHP-style form (bad percent-encoding, conflicting keys such as `a=1&a[b]=2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError(String);

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a PHP-style form body: {}", self.0)
    }
}

impl std::error::Error for FormError {}

/// The media type a `Content-Type` value names, lower-cased and without its parameters
/// (`Application/X-WWW-Form-Urlencoded; charset=UTF-8` → `application/x-www-form-urlencoded`): media types
/// are case-insensitive (RFC 9110 §8.3.1), and every reader of a body (API requests, the payment page's forms,
/// the SDK's callback check) decides on this one reading.
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether a `Content-Type` value names a urlencoded form.
pub fn is_form(content_type: &str) -> bool {
    media_type(content_type) == "application/x-www-form-urlencoded"
}

/// Parses a form body into its top-level parameters; an empty body is no parameters.
pub fn parse(body: &[u8]) -> Result<Map<String, Value>, FormError> {
    if body.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    let pairs: Vec<&[u8]> = body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()).collect();
    if pairs.len() > MAX_PAIRS {
        return Err(FormError(format!("{} parameters, more than {MAX_PAIRS}", pairs.len())));
    }
    for pair in &pairs {
        let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
        let segments = key.iter().filter(|&&b| b == b'[').count()
            + key.windows(3).filter(|w| w.eq_ignore_ascii_case(b"%5B")).count();
        if segments > MAX_SEGMENTS {
            return Err(FormError(format!("a key nested {segments} deep, more than {MAX_SEGMENTS}")));
        }
    }
    let config = serde_qs::Config::new().max_depth(MAX_DEPTH).use_form_encoding(true);
    let body = indices_as_keys(body);
    let value: Value = config.deserialize_bytes(&body).map_err(|e| FormError(e.to_string()))?;
    match arrays_from_index_maps(value) {
        Value::Object(map) => Ok(map),
        other => Err(FormError(format!("top level is not a map: {other}"))),
    }
}

/// Writes the first digit of every numeric bracket segment of a key percent-encoded (`items[2][id]` →
/// `items[%322][id]`), so `serde_qs` reads the index as a map key instead of a sequence position.
///
/// Why: `serde_qs` turns a node whose keys are all numbers into a sequence and refuses one whose indices are
/// not exactly 0, 1, 2, … (`missing index`), while PHP takes any indices: `items[0]…&items[2]…` (a list after
/// `unset()`), `items[1][id]=96` alone, `custom_ids[5]=x`. Read as map keys they decode to the same text and
/// become arrays in index order in [`arrays_from_index_maps`], as PHP would iterate them. Brackets are
/// recognised as `serde_qs` recognises them in form mode (`[`, `]`, `%5B`, `%5D`), and only in keys (before a
/// pair's `=`), so nesting and its depth limit are unchanged and values are never touched.
fn indices_as_keys(body: &[u8]) -> Cow<'_, [u8]> {
    fn opener(rest: &[u8]) -> usize {
        if rest.starts_with(b"[") {
            1
        } else if rest.starts_with(b"%5B") {
            3
        } else {
            0
        }
    }
    fn closes(rest: &[u8]) -> bool {
        rest.starts_with(b"]") || rest.starts_with(b"%5D")
    }
    let mut out: Option<Vec<u8>> = None;
    let (mut i, mut in_key) = (0, true);
    while i < body.len() {
        let b = body[i];
        match b {
            b'&' => in_key = true,
            b'=' => in_key = false,
            _ => {}
        }
        let open = if in_key { opener(&body[i..]) } else { 0 };
        if open > 0 {
            let start = i + open;
            let digits = body[start..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 && closes(&body[start + digits..]) {
                let buf = out.get_or_insert_with(|| body[..i].to_vec());
                buf.extend_from_slice(&body[i..start]);
                buf.extend_from_slice(format!("%{:02X}", body[start]).as_bytes());
                buf.extend_from_slice(&body[start + 1..start + digits]);
                i = start + digits;
                continue;
            }
        }
        if let Some(buf) = out.as_mut() {
            buf.push(b);
        }
        i += 1;
    }
    match out {
        Some(buf) => Cow::Owned(buf),
        None => Cow::Borrowed(body),
    }
}

/// `a[0]=x&a[2]=y` arrives as an object with keys `"0"`, `"2"`: make it the array PHP would iterate, entries
/// in index order (gaps closed, as a list parameter is only ever iterated).
fn arrays_from_index_maps(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let map: Map<String, Value> = map.into_iter().map(|(k, v)| (k, arrays_from_index_maps(v))).collect();
            let mut indexed: Vec<(usize, &Value)> = Vec::with_capacity(map.len());
            for (k, v) in &map {
                match k.parse::<usize>() {
                    Ok(i) => indexed.push((i, v)),
                    Err(_) => return Value::Object(map),
                }
            }
            if indexed.is_empty() {
                return Value::Object(map);
            }
            indexed.sort_by_key(|(i, _)| *i);
            Value::Array(indexed.into_iter().map(|(_, v)| v.clone()).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(arrays_from_index_maps).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn media_types_are_read_without_case_or_parameters() {
        assert_eq!(media_type(" Application/JSON ; charset=UTF-8"), "application/json");
        assert!(is_form("APPLICATION/X-WWW-FORM-URLENCODED; Charset=UTF-8"));
        assert!(!is_form("application/x-www-form-urlencodedish") && !is_form("multipart/form-data; boundary=x"));
        assert_eq!(media_type(""), "");
    }

    fn form(body: &str) -> Value {
        Value::Object(parse(body.as_bytes()).unwrap())
    }

    /// The largest list a method takes fits (1000 ids and the call's own parameters); a body of more pairs is
    /// refused unparsed, however they are nested or emptied (`&&` separates nothing and does not count).
    #[test]
    fn pair_count_is_bounded() {
        let ids: String = (0..1000).map(|i| format!("custom_ids[]=c{i}&")).collect();
        let fits = parse(format!("{ids}method=market_getinfo&shopid=1&sign=x").as_bytes()).unwrap();
        assert_eq!(fits["custom_ids"].as_array().unwrap().len(), 1000);
        let many: String = (0..=MAX_PAIRS).map(|i| format!("a[{i}][0][0][0]=1&")).collect();
        assert!(parse(many.as_bytes()).unwrap_err().to_string().contains("more than 2000"));
        assert!(parse(format!("a=1{}", "&".repeat(10_000)).as_bytes()).is_ok());
        // Depth: a key of many segments is refused whole, in either spelling of the brackets.
        assert!(parse(format!("a{}=1", "[0]".repeat(MAX_SEGMENTS + 1)).as_bytes()).is_err());
        assert!(parse(format!("a{}=1", "%5b0%5D".repeat(MAX_SEGMENTS + 1)).as_bytes()).is_err());
        assert!(parse(format!("a{}=1", "[0]".repeat(MAX_SEGMENTS)).as_bytes()).is_ok());
    }

    /// A Result-URL callback as the server writes it: scalars, and the deposit's items nested PHP-style.
    #[test]
    fn callback_shaped_bodies() {
        assert_eq!(
            form("status=success&skins%5B0%5D%5Bname%5D=AK-47+%7C+Redline&skins%5B0%5D%5Bprice%5D=1.50&sign=ab"),
            json!({"status": "success", "skins": [{"name": "AK-47 | Redline", "price": "1.50"}], "sign": "ab"})
        );
        assert_eq!(form("custom_ids[]=a&custom_ids[]=b"), json!({"custom_ids": ["a", "b"]}));
        assert_eq!(form("items[2][id]=52&items[0][id]=96"), json!({"items": [{"id": "96"}, {"id": "52"}]}));
        assert_eq!(form(" "), json!({}));
        assert!(parse(b"a=1&a[b]=2").is_err());
    }
}
