//! PHP-style `application/x-www-form-urlencoded` bodies.
//!
//! A PHP gateway reads a form body through `$_POST`, which rebuilds arrays from bracketed keys. So nested
//! values are written the way PHP expects them (spec §11.1):
//! - a list of scalars as `key[]=a&key[]=b` (what `custom_ids` looks like in the vendor's docs);
//! - a list holding objects or lists with explicit indices, `items[0][id]=1&items[0][max_price]=0.5`, because
//!   `[]` would start a new element at every key;
//! - an object as `key[sub]=v`;
//! - `null` and empty lists not at all (`http_build_query` drops them too).
//!
//! Scalars are written as the signature renders them (the JS rendering: `true`, numbers exactly as in the
//! JSON value), so what is signed is what is sent. Keys keep the map's order.

use serde_json::{Map, Value};

/// Encodes a parameter map as a form body (brackets percent-encoded, spaces as `+`, as PHP does).
pub fn encode(params: &Map<String, Value>) -> String {
    let mut pairs = Vec::with_capacity(params.len());
    for (key, value) in params {
        flatten(&mut pairs, key.clone(), value);
    }
    let mut ser = form_urlencoded::Serializer::new(String::new());
    ser.extend_pairs(&pairs);
    ser.finish()
}

/// Appends the `(key, value)` pairs of one value under `key`.
fn flatten(out: &mut Vec<(String, String)>, key: String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((key, b.to_string())),
        // The text the signature was computed over (`10.0` is signed as `10`), so the gateway, which sees
        // only this text, signs the same thing.
        Value::Number(n) => out.push((key, skingate_types::sign::number_text(n))),
        Value::String(s) => out.push((key, s.clone())),
        Value::Array(items) if items.iter().all(is_scalar) => {
            for item in items {
                flatten(out, format!("{key}[]"), item);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(out, format!("{key}[{i}]"), item);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                flatten(out, format!("{key}[{k}]"), v);
            }
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(v: Value) -> String {
        let body = encode(v.as_object().unwrap());
        body.replace("%5B", "[").replace("%5D", "]")
    }

    #[test]
    fn scalars() {
        assert_eq!(
            enc(json!({"flag": true, "method": "orderstatus", "order_id": 1, "price": "1.50", "skip": null})),
            "flag=true&method=orderstatus&order_id=1&price=1.50"
        );
        assert_eq!(
            enc(json!({"name": "AK-47 | Redline (FT)", "q": "a&b=c"})),
            "name=AK-47+%7C+Redline+%28FT%29&q=a%26b%3Dc"
        );
        assert_eq!(enc(json!({})), "");
        // Numbers as they are signed: a whole float is written without its `.0`.
        assert_eq!(enc(json!({"m": 1.0, "n": 1.5, "o": -3.0})), "m=1&n=1.5&o=-3");
    }

    #[test]
    fn nested_arrays_php_style() {
        // Keys in ascending order, so the test holds whether or not serde_json's `preserve_order` is on.
        let params = json!({"custom_ids": ["a", "b c"], "empty": [],
            "items": [{"id": 1, "max_price": "0.5"}, {"id": 2}], "method": "market_batch_buy"});
        assert_eq!(
            enc(params),
            "custom_ids[]=a&custom_ids[]=b+c&items[0][id]=1&items[0][max_price]=0.5&items[1][id]=2\
             &method=market_batch_buy"
        );
        assert_eq!(enc(json!({"m": [[1, 2], [3]], "o": {"k": ["x"]}})), "m[0][]=1&m[0][]=2&m[1][]=3&o[k][]=x");
    }

    #[test]
    fn brackets_are_percent_encoded_like_php() {
        assert_eq!(encode(json!({"a": ["x"]}).as_object().unwrap()), "a%5B%5D=x");
    }
}
