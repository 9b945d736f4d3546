//! Currencies, rates against USD, and conversion.
//!
//! The ledger runs in USD only; other currencies exist for display (`*_in_currencies`) and for limits a
//! merchant states in its own currency. A rate is "units of the currency per 1 USD" with six decimals.
//!
//! # Rounding
//! USD → currency ([`Currency::from_usd`]) rounds half away from zero to the currency's display scale
//! (`rub` 2 decimals, `usd` 3). This is PHP's `round()` and what a merchant checking our figures with a
//! calculator expects. Currency → USD ([`Currency::to_usd`]) rounds the same way to the ledger scale.
//! Conversions are display values: nothing converted is ever written to the ledger as if it were exact.

use std::collections::BTreeMap;

use skingate_types::Decimal;

use crate::money::{LEDGER_CURRENCY, LEDGER_SCALE, Money};

/// Digits after the point of a stored rate.
pub const RATE_SCALE: u32 = 6;

/// A currency the gateway can show amounts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    /// Lowercase code, e.g. `rub`.
    pub code: String,
    /// Human name shown by `currencies`.
    pub name: String,
    /// Decimals shown for amounts in this currency.
    pub scale: u32,
    /// Units of this currency per 1 USD, scaled by 10^[`RATE_SCALE`]; always positive.
    pub rate_micro: i64,
}

/// Why a currency definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    /// Codes are 2–8 lowercase ASCII letters, as clients send them.
    #[error("currency code must be 2-8 lowercase letters")]
    BadCode,
    /// A rate must be positive and have at most six decimals.
    #[error("rate must be positive with at most {RATE_SCALE} decimals")]
    BadRate,
    /// Display scale above 6 decimals is refused.
    #[error("scale must be 0..=6")]
    BadScale,
    /// USD is the ledger's currency: its rate is 1 and its scale the ledger's, always.
    #[error("usd is the ledger currency: rate 1, scale {LEDGER_SCALE}")]
    LedgerCurrency,
}

/// Divides with rounding half away from zero; `den` > 0.
fn div_round(num: i128, den: i128) -> i128 {
    let q = num / den;
    let r = num % den;
    if 2 * r.abs() >= den { q + num.signum() } else { q }
}

impl Currency {
    /// Validates and builds a currency.
    pub fn new(code: &str, name: &str, scale: u32, rate: &Decimal) -> Result<Self, CurrencyError> {
        let ok_code = (2..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase());
        if !ok_code {
            return Err(CurrencyError::BadCode);
        }
        if scale > 6 {
            return Err(CurrencyError::BadScale);
        }
        let rate_micro = rate
            .to_scale_exact(RATE_SCALE)
            .and_then(|r| i64::try_from(r).ok())
            .filter(|r| *r > 0)
            .ok_or(CurrencyError::BadRate)?;
        if code == LEDGER_CURRENCY && (scale != LEDGER_SCALE || rate_micro != ledger_usd().rate_micro) {
            return Err(CurrencyError::LedgerCurrency);
        }
        Ok(Self { code: code.to_owned(), name: name.to_owned(), scale, rate_micro })
    }

    /// The rate as a decimal, trailing zeros dropped.
    pub fn rate(&self) -> Decimal {
        Decimal::new(i128::from(self.rate_micro), RATE_SCALE).trimmed(0)
    }

    /// `usd` in this currency, rounded half away from zero to [`Currency::scale`] decimals.
    pub fn from_usd(&self, usd: Money) -> Decimal {
        let exact = i128::from(usd.minor()) * i128::from(self.rate_micro); // scale LEDGER_SCALE + RATE_SCALE
        let drop = LEDGER_SCALE + RATE_SCALE - self.scale.min(LEDGER_SCALE + RATE_SCALE);
        // Same shape as the ledger's own wire amounts: trailing zeros beyond two decimals are dropped.
        Decimal::new(div_round(exact, 10i128.pow(drop)), self.scale)
            .trimmed(crate::money::WIRE_MIN_SCALE.min(self.scale))
    }

    /// A bound stated in this currency as a USD bound that never widens it: a minimum rounds up, a maximum
    /// down, to the ledger scale (a rounded-down minimum would admit deposits just under the stated one).
    /// `None` as for [`Currency::to_usd`].
    pub fn to_usd_bound(&self, amount: &Decimal, minimum: bool) -> Option<Money> {
        let num = amount.mantissa().checked_mul(10i128.pow(RATE_SCALE + LEDGER_SCALE))?;
        let den = i128::from(self.rate_micro).checked_mul(10i128.pow(amount.scale()))?;
        let (q, r) = (num.div_euclid(den), num.rem_euclid(den));
        let bound = if minimum && r != 0 { q + 1 } else { q };
        i64::try_from(bound).ok().map(Money::from_minor)
    }

    /// An amount of this currency in USD, rounded half away from zero to the ledger scale.
    /// `None` if the amount is beyond range or has more than [`skingate_types::decimal::MAX_SCALE`] decimals.
    pub fn to_usd(&self, amount: &Decimal) -> Option<Money> {
        // amount / rate, carried at a common scale: m / 10^s ÷ (r / 10^6) = m * 10^6 / (r * 10^s)
        let num = amount.mantissa().checked_mul(10i128.pow(RATE_SCALE + LEDGER_SCALE))?;
        let den = i128::from(self.rate_micro).checked_mul(10i128.pow(amount.scale()))?;
        i64::try_from(div_round(num, den)).ok().map(Money::from_minor)
    }
}

/// The rates table: every currency the gateway shows, USD always among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rates {
    by_code: BTreeMap<String, Currency>,
}

impl Rates {
    /// Builds the table; USD is always the ledger's own (rate 1, ledger scale), whatever a stored row says,
    /// because every conversion starts from it and every USD amount on the wire is a ledger amount.
    pub fn new(currencies: impl IntoIterator<Item = Currency>) -> Self {
        let mut by_code: BTreeMap<String, Currency> = currencies.into_iter().map(|c| (c.code.clone(), c)).collect();
        by_code.insert(LEDGER_CURRENCY.to_owned(), ledger_usd());
        Self { by_code }
    }

    /// Looks a currency up by its lowercase code.
    pub fn get(&self, code: &str) -> Option<&Currency> {
        self.by_code.get(code)
    }

    /// All currencies, ordered by code.
    pub fn iter(&self) -> impl Iterator<Item = &Currency> {
        self.by_code.values()
    }

    /// `usd` in every currency: the `*_in_currencies` objects of the wire.
    pub fn convert_all(&self, usd: Money) -> BTreeMap<String, Decimal> {
        self.by_code.values().map(|c| (c.code.clone(), c.from_usd(usd))).collect()
    }
}

/// The ledger's own currency, USD at rate 1 and scale 3, whatever a stored row says: the rates table and
/// the store both use it for `usd`, so an old or hand-edited row can never change what the ledger means.
pub fn ledger_usd() -> Currency {
    Currency { code: LEDGER_CURRENCY.into(), name: "US Dollar".into(), scale: LEDGER_SCALE, rate_micro: 1_000_000 }
}

/// The seed table written on first start: the currencies SkinsBack clients know (spec §3.2), at plausible
/// rates. Operators replace the rates (`skingate currency set`, or the config) — they are not live quotes.
pub fn seed_currencies() -> Vec<Currency> {
    [
        ("usd", "US Dollar", 3, "1"),
        ("eur", "Euro", 2, "0.92"),
        ("rub", "Russian Ruble", 2, "92.5"),
        ("uah", "Ukrainian Hryvnia", 2, "41.3"),
        ("kzt", "Kazakhstani Tenge", 2, "498.7"),
        ("cny", "Chinese Yuan", 2, "7.24"),
        ("aud", "Australian Dollar", 2, "1.53"),
        ("cad", "Canadian Dollar", 2, "1.39"),
        ("brl", "Brazilian Real", 2, "5.41"),
        ("nzd", "New Zealand Dollar", 2, "1.68"),
    ]
    .into_iter()
    .map(|(code, name, scale, rate)| {
        Currency::new(code, name, scale, &rate.parse().expect("seed rate")).expect("seed currency")
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rub() -> Currency {
        Currency::new("rub", "Ruble", 2, &"92.5".parse().unwrap()).unwrap()
    }

    #[test]
    fn usd_to_currency_rounds_half_away_from_zero() {
        // 0.001 USD * 92.5 = 0.0925 RUB -> 0.09
        assert_eq!(rub().from_usd(Money::from_minor(1)).to_string(), "0.09");
        // 0.005 USD * 1.5 = 0.0075 -> 0.01 (half up), and -0.0075 -> -0.01 (half away from zero)
        let c = Currency::new("xyz", "Test", 2, &"1.5".parse().unwrap()).unwrap();
        assert_eq!(c.from_usd(Money::from_minor(5)).to_string(), "0.01");
        assert_eq!(c.from_usd(Money::from_minor(-5)).to_string(), "-0.01");
        // 10.50 USD -> 971.25 RUB exactly
        assert_eq!(rub().from_usd(Money::from_minor(10_500)).to_string(), "971.25");
    }

    #[test]
    fn currency_to_usd() {
        assert_eq!(rub().to_usd(&"971.25".parse().unwrap()), Some(Money::from_minor(10_500)));
        // 100 RUB / 92.5 = 1.081081... -> 1.081
        assert_eq!(rub().to_usd(&"100".parse().unwrap()), Some(Money::from_minor(1_081)));
    }

    #[test]
    fn bounds_never_widen() {
        // 100 RUB / 92.5 = 1.081081… USD: a minimum of 1.082, a maximum of 1.081.
        let hundred = "100".parse().unwrap();
        assert_eq!(rub().to_usd_bound(&hundred, true), Some(Money::from_minor(1_082)));
        assert_eq!(rub().to_usd_bound(&hundred, false), Some(Money::from_minor(1_081)));
        // Exact conversions stay exact; a tiny maximum becomes zero (the caller refuses it).
        assert_eq!(rub().to_usd_bound(&"92.5".parse().unwrap(), true), Some(Money::from_minor(1_000)));
        assert_eq!(rub().to_usd_bound(&"0.04".parse().unwrap(), false), Some(Money::ZERO));
    }

    #[test]
    fn validation() {
        assert_eq!(Currency::new("RUB", "x", 2, &"1".parse().unwrap()), Err(CurrencyError::BadCode));
        assert_eq!(Currency::new("rub", "x", 2, &"0".parse().unwrap()), Err(CurrencyError::BadRate));
        assert_eq!(Currency::new("rub", "x", 2, &"1.0000001".parse().unwrap()), Err(CurrencyError::BadRate));
        assert_eq!(Currency::new("usd", "x", 3, &"2".parse().unwrap()), Err(CurrencyError::LedgerCurrency));
        assert_eq!(Currency::new("usd", "x", 0, &"1".parse().unwrap()), Err(CurrencyError::LedgerCurrency));
        assert!(Currency::new("usd", "Dollar", 3, &"1".parse().unwrap()).is_ok());
        let stored = Currency { code: "usd".into(), name: "x".into(), scale: 0, rate_micro: 2_000_000 };
        let forced = Rates::new([stored]);
        assert_eq!(forced.get("usd").unwrap().from_usd(Money::from_minor(1_500)).to_string(), "1.50", "always 1:1");
        let rates = Rates::new(seed_currencies());
        assert_eq!(rates.get("usd").unwrap().from_usd(Money::from_minor(12_345)).to_string(), "12.345");
        assert_eq!(rates.get("usd").unwrap().from_usd(Money::from_minor(12_500)).to_string(), "12.50");
        assert_eq!(rates.convert_all(Money::ZERO).len(), 10);
    }
}
