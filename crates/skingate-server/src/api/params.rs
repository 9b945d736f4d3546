//! Request parameters and how they are read.
//!
//! Whatever the body encoding, parameters end up as one JSON object: form values are strings, JSON values
//! keep their types. Methods read them through [`Params`], which accepts numbers as strings and strings as
//! numbers (spec §8.7) and tells a missing parameter from a malformed one.

use serde_json::{Map, Value};

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
