//! Money as integers.
//!
//! Every amount inside skingate is an `i64` count of thousandths of a US dollar. Three decimals, not two,
//! because SkinsBack balances carry three (spec §10) and a deposit fee or multiplier applied to a cent
//! price must not be rounded before it reaches the ledger. Decimal strings exist only at the wire edge
//! ([`Money::to_wire`], [`Money::from_wire`]).

use std::fmt;
use std::ops::Neg;

use serde::{Deserialize, Serialize};
use skingate_types::Decimal;

/// Digits after the point of the ledger currency (USD): one minor unit is 0.001 USD.
pub const LEDGER_SCALE: u32 = 3;

/// Code of the ledger currency.
pub const LEDGER_CURRENCY: &str = "usd";

/// Digits the wire always shows for USD amounts, even when they are zeros (`"12.50"`).
pub const WIRE_MIN_SCALE: u32 = 2;

/// An amount of the ledger currency in minor units (thousandths of a USD). Signed, because balances
/// after a clawback and history amounts of money going out are negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(i64);

/// An amount that cannot be represented exactly in the ledger currency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// More decimals than the ledger keeps; refused rather than silently rounded.
    #[error("amount has more than {LEDGER_SCALE} decimals")]
    TooPrecise,
    /// Beyond what an `i64` of thousandths holds.
    #[error("amount out of range")]
    OutOfRange,
}

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);

    /// Wraps a count of thousandths of a USD.
    pub const fn from_minor(minor: i64) -> Self {
        Money(minor)
    }

    /// The count of thousandths of a USD.
    pub const fn minor(self) -> i64 {
        self.0
    }

    /// Whether this is more than zero.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Sum, or `None` on overflow: the ledger refuses a transfer rather than wrapping.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// Difference, or `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// Parses a wire amount exactly; more than three decimals is an error, not a rounding.
    pub fn from_wire(d: &Decimal) -> Result<Money, MoneyError> {
        let minor = d.to_scale_exact(LEDGER_SCALE).ok_or(MoneyError::TooPrecise)?;
        i64::try_from(minor).map(Money).map_err(|_| MoneyError::OutOfRange)
    }

    /// The wire decimal: exact, at least two decimals (`12.50`, `12.345`).
    pub fn to_wire(self) -> Decimal {
        Decimal::new(i128::from(self.0), LEDGER_SCALE).trimmed(WIRE_MIN_SCALE)
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} USD", self.to_wire())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_format() {
        assert_eq!(Money::from_minor(12_500).to_wire().to_string(), "12.50");
        assert_eq!(Money::from_minor(12_345).to_wire().to_string(), "12.345");
        assert_eq!(Money::from_minor(-5).to_wire().to_string(), "-0.005");
        assert_eq!(Money::ZERO.to_wire().to_string(), "0.00");
        assert_eq!(Money::from_wire(&"1.2345".parse().unwrap()), Err(MoneyError::TooPrecise));
        assert_eq!(Money::from_wire(&"0.5".parse().unwrap()), Ok(Money::from_minor(500)));
    }

    proptest! {
        #[test]
        fn wire_round_trip(minor in any::<i64>()) {
            let m = Money::from_minor(minor);
            let text = m.to_wire().to_string();
            let back = Money::from_wire(&text.parse().unwrap()).unwrap();
            prop_assert_eq!(back, m);
        }
    }
}
