//! Deserializers that accept what real SkinsBack peers send.
//!
//! The vendor's docs type ids as integers while its examples send strings (`"buy_id":"65"`), and clients
//! differ in the same way (spec §8.7, §10). Parsing strictly would break the first merchant whose client
//! made the other choice, so every id, count and flag goes through one of these.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// An id or other token sent as a JSON string or number; always returned as a string.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// An integer sent as a JSON number or a numeric string.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer or a numeric string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            v.trim().parse().map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// An optional integer: absent, `null`, `""`, a number or a numeric string.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(i64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Num(n)) => Ok(Some(n)),
        Some(Raw::Text(t)) if t.trim().is_empty() => Ok(None),
        Some(Raw::Text(t)) => t.trim().parse().map(Some).map_err(de::Error::custom),
    }
}

/// A flag sent as `true`/`false`, `1`/`0`, or those as strings.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean, 0/1, or \"true\"/\"false\"")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" | "" => Ok(false),
                other => Err(E::custom(format!("not a flag: {other}"))),
            }
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::string")]
        id: String,
        #[serde(deserialize_with = "super::i64")]
        n: i64,
        #[serde(deserialize_with = "super::bool")]
        f: bool,
        #[serde(default, deserialize_with = "super::opt_i64")]
        o: Option<i64>,
    }

    #[test]
    fn numbers_and_strings_are_both_fine() {
        let a: T = serde_json::from_str(r#"{"id":65,"n":"7","f":1,"o":"3"}"#).unwrap();
        let b: T = serde_json::from_str(r#"{"id":"65","n":7,"f":"true"}"#).unwrap();
        assert_eq!((a.id.as_str(), a.n, a.f, a.o), ("65", 7, true, Some(3)));
        assert_eq!((b.id.as_str(), b.n, b.f, b.o), ("65", 7, true, None));
        assert!(serde_json::from_str::<T>(r#"{"id":"x","n":"x","f":1}"#).is_err());
    }
}
