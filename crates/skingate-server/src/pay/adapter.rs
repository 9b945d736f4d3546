//! From the deposits domain to the page's view models: which step a deposit is at, prices as the payer
//! sees them, and errors in words. Nothing here writes.

use skingate_core::Money;
use skingate_core::currency::Currency;
use skingate_core::deposit::{self, DepositStatus};
use skingate_steam::catalogue::Game;

use super::view::{Amount, Chrome, GameTab, ItemView, KnownAccount, OfferView, Progress, StatusPage, format_utc};
use crate::deposits::{DepositError, DepositView, PricedItem, Pricing};
use crate::state::AppState;

/// Decimals the page shows amounts with (at most; a currency with fewer keeps its own).
const PAGE_SCALE: u32 = 2;

/// Where the payer is in the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No offer yet: choose an account and items.
    Choose,
    /// An offer was sent, or the deposit is finished: show its progress.
    Track(Progress),
}

/// The step a deposit is at.
pub fn step(view: &DepositView) -> Step {
    let d = &view.deposit;
    match d.status {
        DepositStatus::Pending if d.offer_id.is_none() => Step::Choose,
        DepositStatus::Pending => Step::Track(Progress::Waiting),
        DepositStatus::Success | DepositStatus::InHold | DepositStatus::HoldApproved => {
            Step::Track(Progress::Succeeded)
        }
        DepositStatus::Fail | DepositStatus::HoldReturned => Step::Track(Progress::Failed),
    }
}

/// The page chrome for a deposit at `step` (1–3).
pub fn chrome(view: &DepositView, token: &str, step: u8) -> Chrome {
    Chrome {
        merchant: view.project.settings.name.clone(),
        order_id: view.deposit.order_id.clone(),
        transaction_id: view.deposit.id.to_string(),
        base: format!("/pay/{token}"),
        step,
    }
}

/// The `frame-ancestors` sources for the deposit's project.
pub fn ancestors(view: &DepositView) -> String {
    super::http::frame_ancestors(view.project.settings.frame_ancestors.iter().map(String::as_str))
}

/// The account the merchant pre-selected, when it gave a valid SteamID and token.
pub fn known_account(view: &DepositView) -> Option<KnownAccount> {
    let d = &view.deposit;
    let steam_id = crate::deposits::parse_steam_id(d.steam_id.as_deref()?).ok()?;
    let url = crate::deposits::parse_trade_token(steam_id, d.trade_token.as_deref()?).ok()?;
    Some(KnownAccount { steam_id: steam_id.to_string(), trade_url: url.to_string() })
}

/// The games the payer may pick from: the merchant's fixed one, or all.
pub fn games(view: &DepositView) -> Vec<Game> {
    match view.deposit.game.as_deref().and_then(Game::parse) {
        Some(g) => vec![g],
        None => Game::ALL.to_vec(),
    }
}

/// A game's name as payers know it.
pub fn game_label(g: Game) -> &'static str {
    match g {
        Game::Cs2 => "Counter-Strike 2",
        Game::Dota2 => "Dota 2",
        Game::Rust => "Rust",
    }
}

/// Tabs to switch game (none when the merchant fixed it).
pub fn tabs(view: &DepositView, token: &str, steam_id: &str, trade_token: &str, current: Game) -> Vec<GameTab> {
    let games = games(view);
    if games.len() < 2 {
        return Vec::new();
    }
    games
        .into_iter()
        .map(|g| GameTab {
            label: game_label(g),
            href: items_href(token, steam_id, trade_token, g),
            active: g == current,
        })
        .collect()
}

/// The items page of an account and game.
pub fn items_href(token: &str, steam_id: &str, trade_token: &str, game: Game) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("steam_id", steam_id)
        .append_pair("trade_token", trade_token)
        .append_pair("game", game.code())
        .finish();
    format!("/pay/{token}/items?{query}")
}

/// How the deposit shows prices: its currency (USD if the rates table lost it) and its multiplier.
pub fn pricing(state: &AppState, view: &DepositView) -> Pricing {
    let rates = state.rates();
    let currency = rates.get(&view.deposit.currency).or_else(|| rates.get("usd")).cloned().unwrap_or_else(usd);
    Pricing { currency, multiplier_ppm: view.deposit.multiplier_ppm }
}

fn usd() -> Currency {
    Currency { code: "usd".into(), name: "US Dollar".into(), scale: 3, rate_micro: 1_000_000 }
}

/// What the payer is credited for `usd` of items: the fee taken, the multiplier applied, in the deposit
/// currency, rounded for display.
pub fn credited(view: &DepositView, pricing: &Pricing, usd: Money) -> Amount {
    credited_with(pricing, usd, view.deposit.fee_ppm, view.deposit.multiplier_ppm)
}

/// [`credited`] for a given fee and multiplier (parts per million).
pub fn credited_with(pricing: &Pricing, usd: Money, fee_ppm: i64, multiplier_ppm: i64) -> Amount {
    let fee = deposit::apply_ppm(usd, fee_ppm).unwrap_or(Money::ZERO);
    let net = usd.checked_sub(fee).unwrap_or(usd);
    shown(pricing, net, multiplier_ppm)
}

/// `usd × multiplier` in the pricing's currency, rounded for display.
fn shown(pricing: &Pricing, usd: Money, multiplier_ppm: i64) -> Amount {
    let user = deposit::apply_ppm(usd, multiplier_ppm).unwrap_or(usd);
    let c = &pricing.currency;
    Amount::rounded(&c.from_usd(user), c.scale.min(PAGE_SCALE), &c.code)
}

/// Zero in the deposit's display currency.
pub fn zero(pricing: &Pricing) -> Amount {
    let c = &pricing.currency;
    Amount { minor: 0, scale: c.scale.min(PAGE_SCALE), code: c.code.to_ascii_uppercase() }
}

/// The deposit's limits as credited amounts (multiplier applied), for the page's hints.
pub fn limits(view: &DepositView, pricing: &Pricing) -> (Option<Amount>, Option<Amount>) {
    let m = view.deposit.multiplier_ppm;
    (view.deposit.min_usd.map(|v| shown(pricing, v, m)), view.deposit.max_usd.map(|v| shown(pricing, v, m)))
}

/// The payer's items, priced, selectable first and most valuable first; `checked` ticks some.
pub fn item_views(view: &DepositView, pricing: &Pricing, items: Vec<PricedItem>, checked: &[String]) -> Vec<ItemView> {
    let mut out: Vec<(bool, i128, ItemView)> = items
        .into_iter()
        .map(|i| {
            let (name, exterior) = ItemView::split_name(&i.market_hash_name);
            let price = credited(view, pricing, i.price);
            let disabled = i.disabled.then(|| disabled_reason(i.disabled_reason).to_owned());
            let checked = disabled.is_none() && checked.contains(&i.asset_id);
            (
                disabled.is_some(),
                price.minor,
                ItemView { asset_id: i.asset_id, name, exterior, price, disabled, checked },
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then_with(|| a.2.name.cmp(&b.2.name)));
    out.into_iter().map(|(_, _, v)| v).collect()
}

/// Why an item cannot be picked, in words.
pub fn disabled_reason(code: Option<&str>) -> &'static str {
    match code {
        Some("trade_protected") => "Trade protected by Steam",
        Some("no_price") => "Not accepted (no price)",
        _ => "Not tradable",
    }
}

/// A refused step, in words the payer can act on.
pub fn error_text(e: &DepositError, view: &DepositView, pricing: &Pricing) -> String {
    let (min, max) = limits(view, pricing);
    match e {
        DepositError::InvalidSteamId => "That is not a valid Steam account.".into(),
        DepositError::InvalidTradeToken => {
            "Steam did not accept this trade URL. If you changed it recently, copy the current one from Steam.".into()
        }
        DepositError::ItemsNotAvailable => {
            "Some of the items you picked can no longer be traded. Please choose again.".into()
        }
        DepositError::NoItems => "Pick at least one item.".into(),
        DepositError::BelowMinimum => match min {
            Some(m) => format!("The items you picked are worth less than the minimum deposit of {m}."),
            None => "The items you picked are worth less than the minimum deposit.".into(),
        },
        DepositError::AboveMaximum => match max {
            Some(m) => format!("The items you picked are worth more than the maximum deposit of {m}."),
            None => "The items you picked are worth more than the maximum deposit.".into(),
        },
        DepositError::UserNotTradable => {
            "This Steam account cannot trade right now (trade ban or restriction). Try another account.".into()
        }
        DepositError::SteamUnavailable => "Steam is not answering right now. Please try again in a minute.".into(),
        DepositError::NotFound | DepositError::NotPending => "This deposit is no longer waiting for items.".into(),
        DepositError::Internal(_) => "Something went wrong on our side. Please try again.".into(),
    }
}

/// Why a deposit failed, in words.
pub fn fail_text(reason: Option<&str>) -> &'static str {
    match reason {
        Some("declined") => "You declined the trade offer.",
        Some("countered") => "The trade offer was answered with a counter-offer, which cannot be accepted.",
        Some("expired") => "The trade offer expired before it was accepted.",
        Some("canceled") => "The trade offer was cancelled.",
        Some("invalid_items") => "Some items were no longer in your inventory when the trade was made.",
        Some("reversed") => "The trade was reversed in Steam.",
        _ => "The trade did not go through.",
    }
}

/// Step 3 for a deposit with an offer (or finished).
pub fn status_page(state: &AppState, view: &DepositView, token: &str, progress: Progress) -> StatusPage {
    let d = &view.deposit;
    let pricing = pricing(state, view);
    let offer = d.offer_id.as_ref().map(|id| OfferView {
        id: id.clone(),
        bot_name: d.bot_name.clone().unwrap_or_else(|| "skingate bot".into()),
        bot_steam_id: d.bot_steam_id.clone().unwrap_or_default(),
        expires: d.offer_expires_at.map(format_utc).unwrap_or_default(),
        item_count: d.items.len(),
    });
    let amount = match d.user_amount_usd {
        Some(user) if d.status.has_amount() => {
            let c = &pricing.currency;
            Some(Amount::rounded(&c.from_usd(user), c.scale.min(PAGE_SCALE), &c.code))
        }
        _ if progress == Progress::Waiting => {
            let gross = d
                .items
                .iter()
                .filter_map(|i| deposit::cents(i.price_cents))
                .fold(Money::ZERO, |a, b| a.checked_add(b).unwrap_or(a));
            Some(credited(view, &pricing, gross))
        }
        _ => None,
    };
    let next = match progress {
        Progress::Succeeded => view.success_url.as_deref(),
        Progress::Failed => view.fail_url.as_deref(),
        Progress::Waiting => None,
    };
    StatusPage {
        // A success completes all three steps; otherwise the third is where the payer is.
        page: chrome(view, token, if progress == Progress::Succeeded { 4 } else { 3 }),
        progress,
        offer,
        amount,
        held: d.status == DepositStatus::InHold,
        reason: (progress == Progress::Failed).then(|| fail_text(d.fail_reason.as_deref()).to_owned()),
        next_url: next.and_then(super::view::safe_url),
    }
}

#[cfg(test)]
mod tests {
    use skingate_types::Decimal;

    use super::*;

    fn pricing(code: &str, rate: &str, scale: u32) -> Pricing {
        let rate: Decimal = rate.parse().unwrap();
        Pricing { currency: Currency::new(code, code, scale, &rate).unwrap(), multiplier_ppm: deposit::PPM }
    }

    #[test]
    fn credited_takes_the_fee_then_the_multiplier_then_converts() {
        let rub = pricing("rub", "92.5", 2);
        // 10.00 USD, 2.5 % fee → 9.75; ×1.5 → 14.625 USD; × 92.5 → 1352.8125 RUB → 1352.81.
        let a = credited_with(&rub, Money::from_minor(10_000), 25_000, 1_500_000);
        assert_eq!(a.to_string(), "1352.81 RUB");
        // USD keeps three ledger decimals; the page shows two, rounded half away from zero.
        let usd = pricing("usd", "1", 3);
        assert_eq!(credited_with(&usd, Money::from_minor(1_005), 0, deposit::PPM).to_string(), "1.01 USD");
        assert_eq!(credited_with(&usd, Money::from_minor(40), 0, 1_100_000).to_string(), "0.04 USD");
        assert_eq!(zero(&usd).to_string(), "0.00 USD");
        // A zero-decimal currency stays whole.
        let jpy = pricing("jpy", "150", 0);
        assert_eq!(credited_with(&jpy, Money::from_minor(1_234), 0, deposit::PPM).to_string(), "185 JPY");
    }

    #[test]
    fn reasons_in_words() {
        assert_eq!(disabled_reason(Some("trade_protected")), "Trade protected by Steam");
        assert_eq!(disabled_reason(Some("not_tradable")), "Not tradable");
        assert_eq!(disabled_reason(None), "Not tradable");
        assert_eq!(fail_text(Some("declined")), "You declined the trade offer.");
        assert_eq!(fail_text(Some("something_new")), "The trade did not go through.");
        let href = items_href("tok", "76561198000000000", "Ab+d/f=h", Game::Rust);
        assert_eq!(href, "/pay/tok/items?steam_id=76561198000000000&trade_token=Ab%2Bd%2Ff%3Dh&game=rust");
    }
}
