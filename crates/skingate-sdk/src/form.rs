//! PHP-style `application/x-www-form-urlencoded` bodies.
//!
//! PHP's `http_build_query` writes nested values as `key[sub]=v` and lists as `key[0]=v`; a PHP gateway
//! reads them back into the same arrays. Scalars are written the way the signature renders them (JS
//! rendering: `true`, numbers as written), so what is signed is what is sent.

use serde_json::{Map, Value};

/// Encodes a parameter map as a form body.
pub fn encode(params: &Map<String, Value>) -> String {
    let mut out = Vec::new();
    for (key, value) in params {
        push(&mut out, key.clone(), value);
    }
    let mut ser = url_encoder();
    for (k, v) in &out {
        ser.append_pair(k, v);
    }
    ser.finish()
}

fn url_encoder() -> form_urlencoded::Serializer<'static, String> {
    form_urlencoded::Serializer::new(String::new())
}

fn push(out: &mut Vec<(String, String)>, key: String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((key, b.to_string())),
        Value::Number(n) => out.push((key, n.to_string())),
        Value::String(s) => out.push((key, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push(out, format!("{key}[{i}]"), item);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                push(out, format!("{key}[{k}]"), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_arrays_php_style() {
        let params = json!({"method": "market_batch_buy", "items": [{"id": 1, "max_price": 0.5}, {"id": 2}],
            "custom_ids": ["a", "b c"], "flag": true, "skip": null});
        let body = encode(params.as_object().unwrap());
        assert_eq!(
            body,
            "custom_ids%5B0%5D=a&custom_ids%5B1%5D=b+c&flag=true&items%5B0%5D%5Bid%5D=1&items%5B0%5D%5Bmax_price%5D=0.5\
             &items%5B1%5D%5Bid%5D=2&method=market_batch_buy"
        );
    }
}
