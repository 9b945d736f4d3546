//! An exact decimal for money at the wire edge.
//!
//! SkinsBack sends money both as JSON numbers (`10.5`) and as strings (`"77.02"`). Parsing either into `f64`
//! would make `0.1 + 0.2` style errors part of a payment product, so every amount is parsed into an integer
//! mantissa with a decimal scale instead. The domain converts this into its own minor units.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most digits after the point we accept; more than enough for money and exchange rates.
pub const MAX_SCALE: u32 = 12;

/// A decimal number `mantissa / 10^scale`, exact, with its scale as written.
///
/// Equality is numeric after normalisation (`1.50 == 1.5`) because two renderings of the same amount must
/// compare equal when the SDK checks a response.
#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// Why a text is not a decimal amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDecimalError(&'static str);

impl fmt::Display for ParseDecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid decimal: {}", self.0)
    }
}

impl std::error::Error for ParseDecimalError {}

impl Decimal {
    /// Builds `mantissa / 10^scale`; the scale is capped so later arithmetic cannot overflow `i128`.
    pub fn new(mantissa: i128, scale: u32) -> Self {
        assert!(scale <= MAX_SCALE, "decimal scale {scale} above {MAX_SCALE}");
        Self { mantissa, scale }
    }

    /// The integer digits, scaled by `10^scale`.
    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    /// How many digits follow the decimal point.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Rescales to exactly `scale` digits; `None` when that would drop non-zero digits or overflow,
    /// so a caller never truncates money silently.
    pub fn to_scale_exact(&self, scale: u32) -> Option<i128> {
        if scale >= self.scale {
            self.mantissa.checked_mul(10i128.checked_pow(scale - self.scale)?)
        } else {
            let div = 10i128.pow(self.scale - scale);
            (self.mantissa % div == 0).then(|| self.mantissa / div)
        }
    }

    /// Drops trailing zeros but keeps at least `min_scale` digits, e.g. `12.500` → `12.50` with 2.
    pub fn trimmed(&self, min_scale: u32) -> Self {
        let mut d = *self;
        while d.scale > min_scale && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    fn normalised(&self) -> Self {
        self.trimmed(0)
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.normalised(), other.normalised());
        a.mantissa == b.mantissa && a.scale == b.scale
    }
}

impl Eq for Decimal {}

impl FromStr for Decimal {
    type Err = ParseDecimalError;

    /// Accepts `-12`, `12.`, `0.5`, `.5`, `1e2` is refused: exponents are not money. ASCII whitespace around
    /// the number is tolerated (a form field padded by hand); other Unicode whitespace (a no-break space
    /// pasted from a spreadsheet, `U+00A0`) is refused like any other character, as PHP's numeric strings
    /// refuse it: `str::trim` would strip it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim_ascii();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(ParseDecimalError("no digits"));
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(ParseDecimalError("not a plain decimal number"));
        }
        let scale = u32::try_from(frac.len()).map_err(|_| ParseDecimalError("too many decimals"))?;
        if scale > MAX_SCALE {
            return Err(ParseDecimalError("too many decimals"));
        }
        if int.len() + frac.len() > 30 {
            return Err(ParseDecimalError("too many digits"));
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa * 10 + i128::from(b - b'0');
        }
        Ok(Self { mantissa: if neg { -mantissa } else { mantissa }, scale })
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let abs = self.mantissa.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let div = 10u128.pow(self.scale);
        write!(f, "{sign}{}.{:0width$}", abs / div, abs % div, width = self.scale as usize)
    }
}

impl Serialize for Decimal {
    /// Always a string: SkinsBack's own examples send money as strings, and a string survives every JSON
    /// parser (JavaScript included) without rounding.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number or numeric string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
                Ok(Decimal::new(i128::from(v), 0))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
                Ok(Decimal::new(i128::from(v), 0))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
                // The shortest text that reads back as this f64 is what the sender wrote (`10.5`), so going
                // through it recovers the exact decimal the JSON carried.
                if !v.is_finite() {
                    return Err(E::custom("not a finite number"));
                }
                let text = format!("{v}");
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        for (text, shown) in [("0.5", "0.5"), ("12", "12"), ("-3.050", "-3.050"), (".5", "0.5"), ("7.", "7")] {
            assert_eq!(text.parse::<Decimal>().unwrap().to_string(), shown, "{text}");
        }
        for bad in ["", "-", "1e3", "1.2.3", "abc", "NaN", "1,5"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_ascii_whitespace_around_a_number() {
        assert_eq!(" \t12.5\r\n".parse::<Decimal>().unwrap().to_string(), "12.5");
        for bad in ["120\u{a0}", "\u{a0}120", "1\u{2003}", "\u{3000}5", "5\u{feff}", "\u{85}5"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_number_and_string_agree() {
        let a: Decimal = serde_json::from_str("10.1").unwrap();
        let b: Decimal = serde_json::from_str("\"10.10\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_scale_exact(3), Some(10_100));
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"10.1\"");
    }

    #[test]
    fn rescaling_never_drops_digits() {
        let d: Decimal = "1.2345".parse().unwrap();
        assert_eq!(d.to_scale_exact(3), None);
        assert_eq!(d.to_scale_exact(4), Some(12_345));
        assert_eq!("12.500".parse::<Decimal>().unwrap().trimmed(2).to_string(), "12.50");
    }
}
