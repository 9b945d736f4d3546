//! Request parameters and how they are read.
//!
//! Whatever the body encoding, parameters end up as one JSON object: form values are strings, JSON values
//! keep their types. Methods read them through [`Params`], which accepts numbers as strings and strings as
//! numbers (spec §8.7) and tells a missing parameter from a malformed one.

use serde_json::{Map, Value};
use skingate_steam::catalogue::Game;

use crate::error::ApiError;

/// 2^53: a JSON float below this in magnitude holds its integer value exactly; at or above it, neighbouring
/// integers read as one.
pub const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// The parameters of one request, signature fields included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub Map<String, Value>);

/// Why a parameter could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamError {
    /// Absent, `null` or an empty string.
    Missing,
    /// Present with the wrong shape.
    Invalid,
}

impl Params {
    /// `game`, defaulting to CS2 as legacy clients expect (`csgo` is CS2, spec §11.4); an unknown code or a value
    /// that is not text (`[1]`, `{}`) is `bad`, each method's own `invalid_game`. One reading for every method,
    /// deposits and market alike: the market once took a malformed one for CS2 and an unknown one for "no such
    /// game", so a buy or a list could silently be about another game than the caller meant.
    pub fn game(&self, bad: ApiError) -> Result<Game, ApiError> {
        match self.text("game") {
            Err(ParamError::Missing) => Ok(Game::Cs2),
            Err(ParamError::Invalid) => Err(bad),
            Ok(code) => Game::parse(&code).ok_or(bad),
        }
    }

    /// The raw value, treating `null` and `""` as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self.0.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(v) => Some(v),
        }
    }

    /// A scalar rendered as text: strings as they are, numbers as JavaScript prints them (as they are signed,
    /// [`skingate_types::sign::number_text`]). A number that JSON parsing could not keep exactly (an integer
    /// beyond 64 bits, a float of 2^53 or more) is invalid: two different ids such as `2361183241434822606849`
    /// and `…850` would read as one, and the second call would replay the first one's answer.
    pub fn text(&self, key: &str) -> Result<String, ParamError> {
        match self.get(key).ok_or(ParamError::Missing)? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if n.as_f64().is_some_and(|f| n.is_f64() && f.abs() >= EXACT_INTEGERS) => {
                Err(ParamError::Invalid)
            }
            Value::Number(n) => Ok(skingate_types::sign::number_text(n)),
            _ => Err(ParamError::Invalid),
        }
    }

    /// An integer sent as a number or a numeric string. ASCII whitespace around the digits is tolerated, other
    /// Unicode whitespace (a no-break space) is not: it is no more part of a number than a letter is.
    pub fn i64(&self, key: &str) -> Result<i64, ParamError> {
        match self.get(key).ok_or(ParamError::Missing)? {
            Value::Number(n) => n.as_i64().ok_or(ParamError::Invalid),
            Value::String(s) => s.trim_ascii().parse().map_err(|_| ParamError::Invalid),
            _ => Err(ParamError::Invalid),
        }
    }

    /// The entries of a list parameter in request order, or `None` when it is absent or not a list.
    ///
    /// One reading for every list parameter, so they all take the same shapes (spec §11.1): a JSON array, or an
    /// object keyed by index, which is what PHP's `json_encode` makes of an array whose keys are not 0, 1, …
    /// (`{"0":"a","2":"b"}`). Form lists (`ids[]=a`, `ids[0]=a`) already arrive as arrays ([`super::body`]).
    /// An object's entries are ordered by numeric key, since a map would sort `"10"` before `"2"` (other keys
    /// last, by name).
    pub fn list(&self, key: &str) -> Option<Vec<&Value>> {
        match self.get(key)? {
            Value::Array(items) => Some(items.iter().collect()),
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by_key(|(k, _)| (k.parse::<u64>().unwrap_or(u64::MAX), *k));
                Some(entries.into_iter().map(|(_, v)| v).collect())
            }
            _ => None,
        }
    }

    /// The strings of a list parameter ([`Params::list`]), or one string sent alone; numbers are taken as
    /// their text, written as [`Params::text`] writes them (so a `custom_ids` entry finds the `custom_id` a
    /// buy stored from the same number), and other entries are skipped. For lists of names and ids whose
    /// entries need no stricter check.
    pub fn strings(&self, key: &str) -> Option<Vec<String>> {
        let scalar = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(skingate_types::sign::number_text(n)),
            _ => None,
        };
        match self.list(key) {
            Some(items) => Some(items.into_iter().filter_map(scalar).collect()),
            None => scalar(self.get(key)?).map(|s| vec![s]),
        }
    }

    /// An optional integer: `Ok(None)` when absent.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, ParamError> {
        match self.i64(key) {
            Ok(v) => Ok(Some(v)),
            Err(ParamError::Missing) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The time range and cursor of every history method (`balance_history`, `orders`, `market_history`): one
/// reading, so they accept and refuse the same inputs with the same errors.
///
/// `starting` and `ending` are Unix seconds, inclusive, both required; `start_from` is the previous page's
/// cursor (an id; 0 or absent = from the start). Errors: `1 missing_starting_or_ending`,
/// `2 invalid_starting_or_ending` (not integers, or `ending` before `starting`), `3 invalid_start_from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePage {
    /// Earliest time, inclusive.
    pub starting: i64,
    /// Latest time, inclusive.
    pub ending: i64,
    /// Only rows with an id above this.
    pub start_from: i64,
}

impl RangePage {
    /// Reads `starting`, `ending` and `start_from`.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        const MISSING_RANGE: ApiError = ApiError::method(1, "missing_starting_or_ending");
        const INVALID_RANGE: ApiError = ApiError::method(2, "invalid_starting_or_ending");
        const INVALID_CURSOR: ApiError = ApiError::method(3, "invalid_start_from");
        let bound = |key| match params.i64(key) {
            Ok(v) => Ok(v),
            Err(ParamError::Missing) => Err(MISSING_RANGE),
            Err(ParamError::Invalid) => Err(INVALID_RANGE),
        };
        let (starting, ending) = (bound("starting")?, bound("ending")?);
        if ending < starting {
            return Err(INVALID_RANGE);
        }
        let start_from = params.opt_i64("start_from").map_err(|_| INVALID_CURSOR)?.unwrap_or(0);
        if start_from < 0 {
            return Err(INVALID_CURSOR);
        }
        Ok(Self { starting, ending, start_from })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_tolerate_ascii_whitespace_only() {
        let p = Params(
            json!({"a": " 7\t", "b": "7\u{a0}", "c": "\u{a0}7", "d": "\u{2009}7", "e": 7}).as_object().unwrap().clone(),
        );
        assert_eq!(p.i64("a"), Ok(7));
        assert_eq!(p.i64("e"), Ok(7));
        for key in ["b", "c", "d"] {
            assert_eq!(p.i64(key), Err(ParamError::Invalid), "{key}");
        }
    }

    #[test]
    fn numbers_as_text_are_exact_or_refused() {
        let body = r#"{"big": 18446744073709551615, "over": 2361183241434822606849, "whole": 1e16,
            "small": 0.0000015, "plain": 42, "neg": -7}"#;
        let p = Params(serde_json::from_str(body).unwrap());
        assert_eq!(p.text("big").as_deref(), Ok("18446744073709551615"));
        assert_eq!(p.text("small").as_deref(), Ok("0.0000015"), "as JavaScript prints it, as it was signed");
        assert_eq!((p.text("plain").as_deref(), p.text("neg").as_deref()), (Ok("42"), Ok("-7")));
        // Parsed as floats that cannot hold every digit: two such ids would read as one.
        assert_eq!(p.text("over"), Err(ParamError::Invalid));
        assert_eq!(p.text("whole"), Err(ParamError::Invalid));
    }

    /// A list entry sent as a number reads as the same text as that number sent alone, so `custom_ids:
    /// [0.0000015]` finds the buy whose `custom_id` was that number (serde alone writes it `1.5e-6`).
    #[test]
    fn list_numbers_read_as_single_numbers_do() {
        let p = Params(serde_json::from_str(r#"{"one": 0.0000015, "many": [0.0000015, 42, "x", null]}"#).unwrap());
        let one = p.text("one").unwrap();
        assert_eq!(p.strings("many").unwrap(), [one.as_str(), "42", "x"]);
        assert_eq!(p.strings("one").unwrap(), ["0.0000015"]);
    }
}
