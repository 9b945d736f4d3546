//! What the payment page shows: view models and the askama templates they fill.
//!
//! Handlers build these from the deposit and the priced inventory; nothing here touches storage or Steam,
//! so every page can be rendered (and tested) from plain values. Templates live in `templates/pay/` and
//! are HTML-escaped by askama: merchant names, item names and URLs can never inject markup.

use askama::Template;
use skingate_core::Money;
use skingate_core::currency::RATE_SCALE;
use skingate_core::deposit::net_of;
use skingate_core::money::LEDGER_SCALE;
use skingate_types::Decimal;

use crate::deposits::Pricing;

/// Largest integer JavaScript adds exactly (2^53 − 1): the items page's script sums item values as numbers,
/// so every value and bound it is given stays at or below this.
pub const JS_MAX_SAFE: i64 = (1 << 53) - 1;

/// How a deposit turns the exact value of a set of items (the sum of their reference prices, USD ledger
/// minor units) into what the server decides and records for it: the fee is taken from the **sum** (rounded
/// once), the net is compared with the limits, the multiplier and the currency's rounding give `user_amount`.
/// The items page and its script use exactly this, so the page never allows what the server refuses (or the
/// other way round), and its total is the `user_amount` the deposit will record (at today's rates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    /// The deposit's currency (USD if the rates table lost it) and its own multiplier.
    pub pricing: Pricing,
    /// The fee frozen on the deposit, parts per million.
    pub fee_ppm: i64,
}

impl Credit {
    /// The value the limits are checked against: `gross − fee(gross)`, as `select_items` computes it.
    pub fn net(&self, gross: Money) -> Money {
        net_of(gross, self.fee_ppm).unwrap_or(gross)
    }

    /// `net × multiplier` in the deposit's currency, as `user_amount` is recorded.
    pub fn user(&self, net: Money) -> Amount {
        Amount::exact(&self.pricing.multiplied(net), &self.pricing.currency.code)
    }

    /// What the payer is credited for items worth `gross`: the `user_amount` of a deposit of exactly them.
    pub fn credited(&self, gross: Money) -> Amount {
        self.user(self.net(gross))
    }

    /// The smallest gross value whose net reaches `min` ([`JS_MAX_SAFE`] if none does: a 100 % fee).
    pub fn gross_at_least(&self, min: Money) -> i64 {
        // `net` never decreases as the gross grows (the fee grows by at most one unit per unit), so the
        // first gross that reaches the minimum is found by bisection.
        if self.net(Money::from_minor(JS_MAX_SAFE)) < min {
            return JS_MAX_SAFE;
        }
        let (mut lo, mut hi) = (0, JS_MAX_SAFE);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.net(Money::from_minor(mid)) >= min { hi = mid } else { lo = mid + 1 }
        }
        lo
    }

    /// The largest gross value whose net stays within `max`.
    pub fn gross_at_most(&self, max: Money) -> i64 {
        let (mut lo, mut hi) = (0, JS_MAX_SAFE);
        while lo < hi {
            let mid = hi - (hi - lo) / 2;
            if self.net(Money::from_minor(mid)) <= max { lo = mid } else { hi = mid - 1 }
        }
        lo
    }

    /// What `Currency::from_usd` divides `user × rate` by (the script converts the same way):
    /// 10^(ledger scale + rate scale − the currency's scale).
    pub fn divisor(&self) -> i128 {
        10i128.pow(LEDGER_SCALE + RATE_SCALE - self.pricing.currency.scale.min(LEDGER_SCALE + RATE_SCALE))
    }

    /// An amount of this currency in integer units at the currency's scale (what the script works in).
    pub fn minor_of(&self, a: &Amount) -> i128 {
        let scale = self.pricing.currency.scale;
        if a.scale <= scale { a.minor * 10i128.pow(scale - a.scale) } else { a.minor / 10i128.pow(a.scale - scale) }
    }

    /// Zero in the deposit's currency.
    pub fn zero(&self) -> Amount {
        self.user(Money::ZERO)
    }
}

/// A deposit limit as the items page uses it: shown to the payer, and handed to the script as a bound on the
/// items' gross value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The limit credited (multiplier applied, deposit currency), as the payer reads it.
    pub shown: Amount,
    /// The bound on the sum of the items' values (USD ledger minor units) that decides exactly as the server.
    pub value: i64,
}

/// An amount as the payer sees it: a decimal in a currency, also kept as an integer at the currency's
/// display scale so the page can add amounts up without floating point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    /// Integer units at `scale` decimals (e.g. cents for scale 2).
    pub minor: i128,
    /// Decimals shown.
    pub scale: u32,
    /// Uppercase currency code, e.g. `USD`.
    pub code: String,
}

impl Amount {
    /// `value` shown with `scale` decimals in currency `code`; `None` if `value` has more decimals.
    pub fn new(value: &Decimal, scale: u32, code: &str) -> Option<Self> {
        Some(Self { minor: value.to_scale_exact(scale)?, scale, code: code.to_ascii_uppercase() })
    }

    /// `value` exactly as it is, at its own scale (an amount recorded or computed by the server, shown as
    /// the wire shows it).
    pub fn exact(value: &Decimal, code: &str) -> Self {
        Self { minor: value.mantissa(), scale: value.scale(), code: code.to_ascii_uppercase() }
    }

    /// `value` rounded half away from zero to `scale` decimals (a display figure: the ledger keeps the
    /// exact amount).
    pub fn rounded(value: &Decimal, scale: u32, code: &str) -> Self {
        let minor = if value.scale() <= scale {
            value.mantissa() * 10i128.pow(scale - value.scale())
        } else {
            let den = 10i128.pow(value.scale() - scale);
            let (q, r) = (value.mantissa() / den, value.mantissa() % den);
            if 2 * r.abs() >= den { q + value.mantissa().signum() } else { q }
        };
        Self { minor, scale, code: code.to_ascii_uppercase() }
    }

    /// Zero in the same currency and scale.
    pub fn zero_like(&self) -> Self {
        Self { minor: 0, ..self.clone() }
    }

    /// The sum of two amounts of the same currency and scale.
    pub fn plus(&self, other: &Amount) -> Amount {
        debug_assert_eq!((self.scale, &self.code), (other.scale, &other.code));
        Self { minor: self.minor + other.minor, ..self.clone() }
    }

    /// The number alone, e.g. `1234.50`.
    pub fn number(&self) -> String {
        Decimal::new(self.minor, self.scale).to_string()
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.number(), self.code)
    }
}

/// What every page shows around its content: who is asking for the deposit and which one it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chrome {
    /// The merchant's (project's) display name.
    pub merchant: String,
    /// The merchant's order id.
    pub order_id: String,
    /// The gateway's transaction id.
    pub transaction_id: String,
    /// The page's base path, `/pay/{page_token}`.
    pub base: String,
    /// Which of the three steps is current (1 account, 2 items, 3 trade; 4 = all done); 0 hides the step bar.
    pub step: u8,
}

impl Chrome {
    /// The merchant's initial, for the logo badge.
    pub fn initial(&self) -> String {
        self.merchant.chars().find(|c| c.is_alphanumeric()).map_or_else(|| "S".into(), |c| c.to_uppercase().collect())
    }

    /// CSS class of step `n` in the step bar.
    pub fn step_class(&self, n: u8) -> &'static str {
        match self.step.cmp(&n) {
            std::cmp::Ordering::Greater => "done",
            std::cmp::Ordering::Equal => "current",
            std::cmp::Ordering::Less => "todo",
        }
    }
}

/// Step 1: the payer confirms the account the merchant named or enters a trade URL.
#[derive(Debug, Template)]
#[template(path = "pay/account.html")]
pub struct AccountPage {
    /// Page chrome.
    pub page: Chrome,
    /// The account the merchant pre-selected, when it gave both SteamID and trade token.
    pub known: Option<KnownAccount>,
    /// What to pre-fill in the trade URL field (the payer's last input after an error).
    pub trade_url: String,
    /// Why the last submission was refused.
    pub error: Option<String>,
    /// The deposit's limits, in words.
    pub limits: Option<String>,
}

/// An account the payer can confirm with one click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAccount {
    /// SteamID64.
    pub steam_id: String,
    /// Its trade URL.
    pub trade_url: String,
}

/// One item of the payer's inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemView {
    /// Steam asset id, the value posted back.
    pub asset_id: String,
    /// `market_hash_name` without the exterior suffix.
    pub name: String,
    /// The exterior (`Field-Tested`…), if any.
    pub exterior: Option<String>,
    /// What the merchant credits for it alone (deposit currency, fee taken, multiplier applied).
    pub price: Amount,
    /// Its exact value: the reference price in USD ledger minor units (what the script sums).
    pub value: i64,
    /// Why it cannot be picked (`None` = selectable).
    pub disabled: Option<String>,
    /// Whether it is ticked (re-rendering after a refused submission).
    pub checked: bool,
}

impl ItemView {
    /// Splits `AK-47 | Redline (Field-Tested)` into the name and the exterior.
    pub fn split_name(market_hash_name: &str) -> (String, Option<String>) {
        match market_hash_name.rsplit_once(" (") {
            Some((name, ext)) if ext.ends_with(')') && EXTERIORS.contains(&&ext[..ext.len() - 1]) => {
                (name.to_owned(), Some(ext[..ext.len() - 1].to_owned()))
            }
            _ => (market_hash_name.to_owned(), None),
        }
    }

    /// Two letters for the item tile (e.g. `FT`), or the name's initial.
    pub fn badge(&self) -> String {
        match &self.exterior {
            Some(e) => e.split(['-', ' ']).filter_map(|w| w.chars().next()).collect(),
            None => self.name.chars().find(|c| c.is_alphanumeric()).map(String::from).unwrap_or_default(),
        }
    }
}

/// CS2 exteriors as Steam spells them.
const EXTERIORS: [&str; 5] = ["Factory New", "Minimal Wear", "Field-Tested", "Well-Worn", "Battle-Scarred"];

/// A game the payer can switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameTab {
    /// Human label (`Counter-Strike 2`).
    pub label: &'static str,
    /// Link to the items page of that game.
    pub href: String,
    /// Whether it is the game shown.
    pub active: bool,
}

/// Step 2: the payer's inventory, priced, to pick from.
#[derive(Debug, Template)]
#[template(path = "pay/items.html")]
pub struct ItemsPage {
    /// Page chrome.
    pub page: Chrome,
    /// The account the items belong to (SteamID64).
    pub steam_id: String,
    /// Its trade token (posted back with the pick).
    pub trade_token: String,
    /// The game shown (`cs2`…), posted back.
    pub game: &'static str,
    /// Games the payer may switch to (empty when only one is allowed).
    pub tabs: Vec<GameTab>,
    /// Items, selectable first, most valuable first.
    pub items: Vec<ItemView>,
    /// How values become credited amounts and limits are decided (the script gets the same figures).
    pub credit: Credit,
    /// The smallest deposit accepted, if limited.
    pub min: Option<Limit>,
    /// The largest deposit accepted, if limited.
    pub max: Option<Limit>,
    /// The multiplier, shown when it is not 1 (e.g. `×1.5`).
    pub multiplier: Option<String>,
    /// Why the last submission was refused.
    pub error: Option<String>,
}

impl ItemsPage {
    /// How many items can be picked.
    pub fn selectable(&self) -> usize {
        self.items.iter().filter(|i| i.disabled.is_none()).count()
    }

    /// How many items are ticked now (after a refused submission).
    pub fn checked_count(&self) -> usize {
        self.items.iter().filter(|i| i.checked).count()
    }

    /// What the payer receives for the items ticked now (after a refused submission): their values summed,
    /// then credited once, as the deposit will record it (not the sum of the rounded item prices).
    pub fn checked_total(&self) -> Amount {
        let gross = self.items.iter().filter(|i| i.checked).map(|i| i.value).sum();
        self.credit.credited(Money::from_minor(gross))
    }

    /// The limits in words, or `None` when the deposit has none.
    pub fn limits_text(&self) -> Option<String> {
        limits_text(self.min.as_ref().map(|l| &l.shown), self.max.as_ref().map(|l| &l.shown))
    }

    /// A limit's bound for the script (`data-min`/`data-max`), empty when unlimited.
    pub fn bound(limit: &Option<Limit>) -> String {
        limit.as_ref().map(|l| l.value.to_string()).unwrap_or_default()
    }

    /// A limit as shown, in the currency's units at its scale, for the script's hints; empty when unlimited.
    pub fn bound_shown(&self, limit: &Option<Limit>) -> String {
        limit.as_ref().map(|l| self.credit.minor_of(&l.shown).to_string()).unwrap_or_default()
    }
}

/// `Between 5.00 and 100.00 USD`, `At least 5.00 USD`, `At most 100.00 USD`, or `None`.
pub fn limits_text(min: Option<&Amount>, max: Option<&Amount>) -> Option<String> {
    match (min, max) {
        (Some(lo), Some(hi)) => Some(format!("Between {} and {hi}", lo.number())),
        (Some(lo), None) => Some(format!("At least {lo}")),
        (None, Some(hi)) => Some(format!("At most {hi}")),
        (None, None) => None,
    }
}

/// Where the trade stands, as step 3 shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The offer is in the payer's Steam, waiting for acceptance.
    Waiting,
    /// Accepted: the deposit is credited (or held under Trade Protection).
    Succeeded,
    /// Declined, expired, cancelled or refused by Steam.
    Failed,
}

impl Progress {
    /// The stage name the status JSON reports and the page compares against.
    pub fn code(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Succeeded => "success",
            Self::Failed => "fail",
        }
    }

    /// Whether the page is final.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// The trade offer a bot sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferView {
    /// Steam's trade offer id.
    pub id: String,
    /// The bot's profile name.
    pub bot_name: String,
    /// The bot's SteamID64.
    pub bot_steam_id: String,
    /// When the offer expires, `YYYY-MM-DD HH:MM UTC`.
    pub expires: String,
    /// How many items it asks for.
    pub item_count: usize,
}

impl OfferView {
    /// The offer on Steam.
    pub fn steam_url(&self) -> String {
        format!("https://steamcommunity.com/tradeoffer/{}/", self.id)
    }

    /// The bot's Steam profile.
    pub fn bot_url(&self) -> String {
        format!("https://steamcommunity.com/profiles/{}", self.bot_steam_id)
    }
}

/// Step 3: the offer's progress, and the end of the flow.
#[derive(Debug, Template)]
#[template(path = "pay/status.html")]
pub struct StatusPage {
    /// Page chrome.
    pub page: Chrome,
    /// Where the trade stands.
    pub progress: Progress,
    /// The offer, once sent.
    pub offer: Option<OfferView>,
    /// The deposit's value credited (multiplier applied), once known.
    pub amount: Option<Amount>,
    /// Whether the credit is held under Steam Trade Protection for now.
    pub held: bool,
    /// Whether the trade was accepted and then reversed by the payer under Trade Protection (`fail` with
    /// `reversed`, or `hold_returned`): the timeline shows the acceptance done and the reversal, not a refusal.
    pub reversed: bool,
    /// Why it failed, in words.
    pub reason: Option<String>,
    /// Where the payer goes next (success or fail URL), once final; only http(s) URLs.
    pub next_url: Option<String>,
}

impl StatusPage {
    /// Seconds before the no-JavaScript fallback reloads (or leaves for `next_url`).
    pub fn refresh_secs(&self) -> u32 {
        if self.progress.is_final() { 6 } else { 5 }
    }
}

/// An error page (unknown link, refused form).
#[derive(Debug, Template)]
#[template(path = "pay/error.html")]
pub struct ErrorPage {
    /// HTTP status, shown small.
    pub status: u16,
    /// Headline.
    pub title: String,
    /// What happened and what to do.
    pub message: String,
}

/// `YYYY-MM-DD HH:MM UTC` for Unix seconds (what the payer sees as an offer's expiry).
pub fn format_utc(secs: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).unwrap_or_default()
}

/// Keeps a merchant URL only if it is an absolute http(s) URL, so no `javascript:` link can be rendered.
pub fn safe_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

#[cfg(test)]
mod tests;
