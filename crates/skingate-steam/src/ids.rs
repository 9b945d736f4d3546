//! SteamIDs and trade URLs.
//!
//! An individual account's SteamID64 is `76561197960265728 + account_id` (universe 1, type 1, instance 1);
//! the trade URL names the account id as `partner` and carries an 8-character `token` the user can
//! regenerate (which invalidates the old one). Tokens are `[A-Za-z0-9_-]{8}`.

use std::fmt;
use std::str::FromStr;

/// SteamID64 of account id 0; an individual's SteamID64 is this plus its account id.
pub const STEAMID64_BASE: u64 = 76_561_197_960_265_728;

/// Length of a trade-URL token.
pub const TOKEN_LEN: usize = 8;

/// A valid individual Steam account. Serialized as its 64-bit number; deserializing validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct SteamId(u64);

impl TryFrom<u64> for SteamId {
    type Error = IdError;
    fn try_from(raw: u64) -> Result<Self, IdError> {
        Self::from_account_id(raw.checked_sub(STEAMID64_BASE).ok_or(IdError::BadSteamId)?)
    }
}

impl From<SteamId> for u64 {
    fn from(id: SteamId) -> u64 {
        id.0
    }
}

/// Why an id, token or trade URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a SteamID64 of an individual public account.
    #[error("not an individual SteamID64")]
    BadSteamId,
    /// Tokens are 8 characters of `A-Z a-z 0-9 _ -`.
    #[error("trade token must be 8 characters of A-Z, a-z, 0-9, _ or -")]
    BadToken,
    /// Not a `…/tradeoffer/new/?partner=…&token=…` URL.
    #[error("not a Steam trade URL")]
    BadTradeUrl,
}

impl SteamId {
    /// From an account id (the trade URL's `partner`); 0 and ids beyond 32 bits are refused.
    pub fn from_account_id(account_id: u64) -> Result<Self, IdError> {
        if account_id == 0 || account_id > u64::from(u32::MAX) {
            return Err(IdError::BadSteamId);
        }
        Ok(Self(STEAMID64_BASE + account_id))
    }

    /// The 64-bit id.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The 32-bit account id (`partner` in trade URLs).
    pub fn account_id(self) -> u64 {
        self.0 - STEAMID64_BASE
    }
}

impl FromStr for SteamId {
    type Err = IdError;

    /// Accepts only individual public accounts: universe 1, type 1, instance 1, account id ≠ 0.
    fn from_str(s: &str) -> Result<Self, IdError> {
        // ASCII whitespace only: a no-break space is not part of an id.
        let raw: u64 = s.trim_ascii().parse().map_err(|_| IdError::BadSteamId)?;
        let account = raw.checked_sub(STEAMID64_BASE).ok_or(IdError::BadSteamId)?;
        Self::from_account_id(account)
    }
}

impl fmt::Display for SteamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Checks a trade token's shape.
pub fn validate_token(token: &str) -> Result<(), IdError> {
    let ok = token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(IdError::BadToken) }
}

/// A user's trade URL: who, and the token that lets anyone send them an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeUrl {
    /// The account.
    pub steam_id: SteamId,
    /// The current token.
    pub token: String,
}

impl TradeUrl {
    /// Builds one from parts, checking the token.
    pub fn new(steam_id: SteamId, token: &str) -> Result<Self, IdError> {
        validate_token(token)?;
        Ok(Self { steam_id, token: token.to_owned() })
    }
}

impl FromStr for TradeUrl {
    type Err = IdError;

    /// Parses `https://steamcommunity.com/tradeoffer/new/?partner=123&token=AbCdEfGh` (any order of the
    /// two parameters, other parameters ignored).
    fn from_str(s: &str) -> Result<Self, IdError> {
        let s = s.trim();
        let (path, query) = s.split_once('?').ok_or(IdError::BadTradeUrl)?;
        if !path.trim_end_matches('/').ends_with("steamcommunity.com/tradeoffer/new") {
            return Err(IdError::BadTradeUrl);
        }
        let (mut partner, mut token) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("partner", v)) => partner = v.parse::<u64>().ok(),
                Some(("token", v)) => token = Some(v),
                _ => {}
            }
        }
        let steam_id = SteamId::from_account_id(partner.ok_or(IdError::BadTradeUrl)?)?;
        TradeUrl::new(steam_id, token.ok_or(IdError::BadTradeUrl)?)
    }
}

impl fmt::Display for TradeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "https://steamcommunity.com/tradeoffer/new/?partner={}&token={}",
            self.steam_id.account_id(),
            self.token
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steam_ids_tolerate_ascii_whitespace_only() {
        assert!(" 76561198000000000\n".parse::<SteamId>().is_ok());
        assert!("76561198000000000\u{a0}".parse::<SteamId>().is_err());
    }

    #[test]
    fn steam_ids() {
        let id: SteamId = "76561198000000000".parse().unwrap();
        assert_eq!(id.account_id(), 39_734_272);
        assert_eq!(SteamId::from_account_id(39_734_272).unwrap(), id);
        for bad in ["76561197960265728", "123", "abc", "", "-1"] {
            assert!(bad.parse::<SteamId>().is_err(), "{bad}");
        }
        assert!("76561202255233024".parse::<SteamId>().is_err(), "beyond 32-bit account ids");
        assert!("76561202255233023".parse::<SteamId>().is_ok());
    }

    #[test]
    fn trade_urls() {
        let url: TradeUrl =
            "https://steamcommunity.com/tradeoffer/new/?partner=39734272&token=zXZIog_y".parse().unwrap();
        assert_eq!(url.steam_id.to_string(), "76561198000000000");
        assert_eq!(url.token, "zXZIog_y");
        assert_eq!(url.to_string().parse::<TradeUrl>().unwrap(), url);
        let swapped: TradeUrl = "steamcommunity.com/tradeoffer/new?token=AbCd-fGh&partner=5&x=1".parse().unwrap();
        assert_eq!(swapped.steam_id.account_id(), 5);
        for bad in [
            "https://steamcommunity.com/tradeoffer/new/?partner=1&token=short",
            "https://steamcommunity.com/tradeoffer/new/?partner=0&token=AbCdEfGh",
            "https://example.com/tradeoffer/new/?partner=1&token=AbCdEfGh",
            "https://steamcommunity.com/tradeoffer/new/?token=AbCdEfGh",
            "https://steamcommunity.com/tradeoffer/new/?partner=1&token=AbC!EfGh",
        ] {
            assert!(bad.parse::<TradeUrl>().is_err(), "{bad}");
        }
    }
}
