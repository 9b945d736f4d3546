//! Merchant projects: the unit of authentication, balance and configuration.
//!
//! A project's `client_id` is its numeric id as a string (SkinsBack's `shopid` is numeric, and legacy
//! clients parse it as one). Its secret signs every request and callback.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Numeric project id; also the `shopid` / client id on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProjectId(pub i64);

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ProjectId {
    type Err = std::num::ParseIntError;
    /// The `shopid` and `X-CLIENT-ID` text. ASCII whitespace around the digits is tolerated; other Unicode
    /// whitespace (`" 7\u{a0}"`) is refused, as in every number skingate reads.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim_ascii().parse().map(ProjectId)
    }
}

/// Default requests per minute per project, as the vendor enforces.
pub const DEFAULT_RATE_LIMIT_PER_MIN: u32 = 500;

/// What to do with CS2 deposits under Steam Trade Protection (used by the deposits flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldPolicy {
    /// Hold the value (`in_hold`) until the protection period ends; the merchant may `offer_approve`.
    #[default]
    Wait,
    /// Credit at once and claw back if the payer reverses; the merchant carries the risk.
    CreditEarly,
}

impl HoldPolicy {
    /// Stable name used in storage and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::CreditEarly => "credit_early",
        }
    }
}

impl FromStr for HoldPolicy {
    type Err = ProjectError;
    fn from_str(s: &str) -> Result<Self, ProjectError> {
        match s {
            "wait" => Ok(Self::Wait),
            "credit_early" => Ok(Self::CreditEarly),
            _ => Err(ProjectError::BadHoldPolicy),
        }
    }
}

/// How Result-URL callbacks are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackFormat {
    /// `application/x-www-form-urlencoded` with PHP-style nesting (`skins[0][name]=…`), so a PHP
    /// `$_POST` handler reads it unchanged.
    #[default]
    Form,
    /// `application/json`, the same object as JSON.
    Json,
}

impl CallbackFormat {
    /// Stable name used in storage and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Form => "form",
            Self::Json => "json",
        }
    }
}

impl FromStr for CallbackFormat {
    type Err = ProjectError;
    fn from_str(s: &str) -> Result<Self, ProjectError> {
        match s {
            "form" => Ok(Self::Form),
            "json" => Ok(Self::Json),
            _ => Err(ProjectError::BadCallbackFormat),
        }
    }
}

/// A merchant project as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Numeric id, also the client id.
    pub id: ProjectId,
    /// The HMAC key of the API and callbacks; shown only to the operator.
    pub client_secret: String,
    /// Settings the operator can change.
    pub settings: ProjectSettings,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// The secret before the last rotation, still signing webhooks beside the new one until
    /// `previous_secret_until`, so receivers can switch without losing deliveries.
    pub previous_secret: Option<String>,
    /// End of the rotation grace period, Unix seconds.
    pub previous_secret_until: Option<i64>,
    /// When the events webhook endpoint was disabled (410, or failing for days); `None` = enabled.
    pub events_disabled_at: Option<i64>,
}

impl Project {
    /// The client id as the wire shows it.
    pub fn client_id(&self) -> String {
        self.id.to_string()
    }

    /// Secrets that sign outgoing webhooks at `now`: the current one first, then the previous one while
    /// its grace period lasts.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        let mut secrets = vec![self.client_secret.as_str()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now < until
        {
            secrets.push(old);
        }
        secrets
    }

    /// Replaces the secret, keeping the old one for webhook signatures until `now + grace_secs`.
    pub fn rotate_secret(&mut self, new_secret: String, now: i64, grace_secs: i64) {
        let old = std::mem::replace(&mut self.client_secret, new_secret);
        self.previous_secret = Some(old);
        self.previous_secret_until = Some(now.saturating_add(grace_secs));
    }

    /// The URL events are delivered to, unless none is set or the endpoint was disabled.
    pub fn active_events_url(&self) -> Option<&str> {
        self.events_disabled_at.is_none().then_some(self.settings.events_url.as_deref()).flatten()
    }
}

/// Operator-controlled settings of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSettings {
    /// Display name.
    pub name: String,
    /// An inactive project's calls fail with `shop_not_active`.
    pub active: bool,
    /// Where deposit results are POSTed.
    pub result_url: Option<String>,
    /// Where the payer returns after a successful deposit.
    pub success_url: Option<String>,
    /// Where the payer returns after a failed deposit.
    pub fail_url: Option<String>,
    /// Where real-time events are POSTed.
    pub events_url: Option<String>,
    /// Caller addresses allowed to use the API; empty means any.
    pub ip_allowlist: Vec<IpNet>,
    /// API requests per minute before `request_limit_reached`.
    pub rate_limit_per_min: u32,
    /// Trade Protection policy for deposits.
    pub hold_policy: HoldPolicy,
    /// Test mode: magic payer values choose deposit outcomes and holds can be fast-forwarded.
    #[serde(default)]
    pub test_mode: bool,
    /// Deposit multiplier in parts per million (`user_amount = amount × multiplier`); 1 000 000 = ×1.
    #[serde(default = "default_multiplier")]
    pub multiplier_ppm: i64,
    /// Deposit fee in parts per million of the items' value (10 000 = 1 %), kept by the gateway.
    #[serde(default)]
    pub deposit_fee_ppm: i64,
    /// Encoding of Result-URL callbacks.
    #[serde(default)]
    pub callback_format: CallbackFormat,
    /// Origins allowed to embed the hosted payment page in an iframe (CSP `frame-ancestors`); empty = none.
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
}

fn default_multiplier() -> i64 {
    crate::deposit::PPM
}

impl ProjectSettings {
    /// Defaults for a new project with this name.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            active: true,
            result_url: None,
            success_url: None,
            fail_url: None,
            events_url: None,
            ip_allowlist: Vec::new(),
            rate_limit_per_min: DEFAULT_RATE_LIMIT_PER_MIN,
            hold_policy: HoldPolicy::Wait,
            test_mode: false,
            multiplier_ppm: crate::deposit::PPM,
            deposit_fee_ppm: 0,
            callback_format: CallbackFormat::Form,
            frame_ancestors: Vec::new(),
        }
    }

    /// Checks every field, so storage never holds a project the server cannot serve.
    pub fn validate(&self) -> Result<(), ProjectError> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(ProjectError::BadName);
        }
        for url in [&self.result_url, &self.success_url, &self.fail_url, &self.events_url].into_iter().flatten() {
            validate_url(url)?;
        }
        if self.rate_limit_per_min == 0 {
            return Err(ProjectError::BadRateLimit);
        }
        if !(1..=100 * crate::deposit::PPM).contains(&self.multiplier_ppm) {
            return Err(ProjectError::BadMultiplier);
        }
        if !(0..crate::deposit::PPM).contains(&self.deposit_fee_ppm) {
            return Err(ProjectError::BadFee);
        }
        for origin in &self.frame_ancestors {
            validate_origin(origin)?;
        }
        Ok(())
    }

    /// Whether a caller at `ip` may use the API.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.ip_allowlist.is_empty() || self.ip_allowlist.iter().any(|net| net.contains(&ip))
    }
}

/// Parses an allow-list entry: a CIDR network or a single address.
pub fn parse_ip_net(s: &str) -> Result<IpNet, ProjectError> {
    let s = s.trim();
    s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| ProjectError::BadIp(s.to_owned()))
}

fn validate_url(url: &str) -> Result<(), ProjectError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && url.len() <= 2048 && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(ProjectError::BadUrl(url.to_owned())),
    }
}

/// An iframe origin: `https://host[:port]` (or `http://`), nothing after the authority.
fn validate_origin(origin: &str) -> Result<(), ProjectError> {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        !r.is_empty() && r.len() <= 253 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:*".contains(&b))
    });
    if ok { Ok(()) } else { Err(ProjectError::BadOrigin(origin.to_owned())) }
}

/// Why a project setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    /// Names are 1–100 characters.
    #[error("name must be 1-100 characters")]
    BadName,
    /// URLs are absolute http(s) URLs without spaces.
    #[error("not an http(s) URL: {0}")]
    BadUrl(String),
    /// Allow-list entries are addresses or CIDR networks.
    #[error("not an IP address or network: {0}")]
    BadIp(String),
    /// A rate limit of zero would lock the merchant out.
    #[error("rate limit must be at least 1 per minute")]
    BadRateLimit,
    /// Hold policy is `wait` or `credit_early`.
    #[error("hold policy must be wait or credit_early")]
    BadHoldPolicy,
    /// Callback format is `form` or `json`.
    #[error("callback format must be form or json")]
    BadCallbackFormat,
    /// Multipliers are positive and at most 100.
    #[error("multiplier must be above 0 and at most 100")]
    BadMultiplier,
    /// Fees are 0 to below 100 %.
    #[error("deposit fee must be at least 0% and below 100%")]
    BadFee,
    /// Iframe origins are `http(s)://host[:port]`.
    #[error("not an origin (https://host[:port]): {0}")]
    BadOrigin(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_tolerate_ascii_whitespace_only() {
        assert_eq!(" 7\t".parse::<ProjectId>(), Ok(ProjectId(7)));
        for bad in [" 7\u{a0}", "\u{a0}7", "7\u{3000}", "\u{feff}7"] {
            assert!(bad.parse::<ProjectId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validation_and_allow_list() {
        let mut s = ProjectSettings::named("Demo");
        assert_eq!(s.validate(), Ok(()));
        s.result_url = Some("ftp://x".into());
        assert!(matches!(s.validate(), Err(ProjectError::BadUrl(_))));
        s.result_url = Some("https://shop.example/cb".into());
        s.ip_allowlist = vec![parse_ip_net("10.0.0.0/8").unwrap(), parse_ip_net("127.0.0.1").unwrap()];
        assert!(s.allows_ip("10.1.2.3".parse().unwrap()));
        assert!(s.allows_ip("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!s.allows_ip("192.168.1.1".parse().unwrap()));
        assert!(parse_ip_net("nope").is_err());
        s.frame_ancestors = vec!["https://shop.example".into()];
        assert_eq!(s.validate(), Ok(()));
        s.frame_ancestors = vec!["https://shop.example/path".into()];
        assert!(matches!(s.validate(), Err(ProjectError::BadOrigin(_))));
        s.frame_ancestors.clear();
        s.deposit_fee_ppm = crate::deposit::PPM;
        assert_eq!(s.validate(), Err(ProjectError::BadFee));
    }
}
