//! Request parameters and how they are read.
//!
//! Whatever the body encoding, parameters end up as one JSON object: form values are strings, JSON values
//! keep their types. Methods read them through [`Params`], which accepts numbers as strings and strings as
//! numbers (spec §8.7) and tells a missing parameter from a malformed one.

use serde_json::{Map, Value};

use crate::error::ApiError;

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
    /// The raw value, treating `null` and `""` as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self.0.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(v) => Some(v),
        }
    }

    /// A scalar rendered as text: strings as they are, numbers in their JSON form.
    pub fn text(&self, key: &str) -> Result<String, ParamError> {
        match self.get(key).ok_or(ParamError::Missing)? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(ParamError::Invalid),
        }
    }

    /// An integer sent as a number or a numeric string.
    pub fn i64(&self, key: &str) -> Result<i64, ParamError> {
        match self.get(key).ok_or(ParamError::Missing)? {
            Value::Number(n) => n.as_i64().ok_or(ParamError::Invalid),
            Value::String(s) => s.trim().parse().map_err(|_| ParamError::Invalid),
            _ => Err(ParamError::Invalid),
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
