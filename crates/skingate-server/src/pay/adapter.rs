//! From the deposits domain to the page's view models: which step a deposit is at, prices as the payer
//! sees them, and errors in words. Nothing here writes.

use skingate_core::Money;
use skingate_core::currency::Currency;
use skingate_core::deposit::{self, DepositStatus};
use skingate_steam::catalogue::Game;

use super::view::{
    Amount, Chrome, Credit, GameTab, ItemView, KnownAccount, Limit, OfferView, Progress, StatusPage, format_utc,
};
use crate::deposits::{DepositError, DepositView, PricedItem, Pricing};
use crate::state::AppState;

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

/// How the deposit's items become credited amounts and how its limits are decided: its currency, the fee
/// frozen on it and its multiplier.
pub fn credit(view: &DepositView, pricing: &Pricing) -> Credit {
    Credit {
        pricing: Pricing { currency: pricing.currency.clone(), multiplier_ppm: view.deposit.multiplier_ppm },
        fee_ppm: view.deposit.fee_ppm,
    }
}

/// The deposit's limits: as the payer reads them (credited, multiplier applied) and as bounds on the items'
/// gross value that decide exactly as the server's check of the net value does.
pub fn limits(view: &DepositView, pricing: &Pricing) -> (Option<Limit>, Option<Limit>) {
    let c = credit(view, pricing);
    let min = view.deposit.min_usd.map(|v| Limit { shown: c.user(v), value: c.gross_at_least(v) });
    let max = view.deposit.max_usd.map(|v| Limit { shown: c.user(v), value: c.gross_at_most(v) });
    (min, max)
}

/// The limits as the payer reads them.
pub fn shown_limits(view: &DepositView, pricing: &Pricing) -> (Option<Amount>, Option<Amount>) {
    let (min, max) = limits(view, pricing);
    (min.map(|l| l.shown), max.map(|l| l.shown))
}

/// The payer's items, priced, selectable first and most valuable first; `checked` ticks some.
pub fn item_views(view: &DepositView, pricing: &Pricing, items: Vec<PricedItem>, checked: &[String]) -> Vec<ItemView> {
    let c = credit(view, pricing);
    let mut out: Vec<(bool, i64, ItemView)> = items
        .into_iter()
        .map(|i| {
            let (name, exterior) = ItemView::split_name(&i.market_hash_name);
            let price = c.credited(i.price);
            let disabled = i.disabled.then(|| disabled_reason(i.disabled_reason).to_owned());
            let checked = disabled.is_none() && checked.contains(&i.asset_id);
            let value = i.price.minor();
            (
                disabled.is_some(),
                value,
                ItemView { asset_id: i.asset_id, name, exterior, price, value, disabled, checked },
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
    let (min, max) = shown_limits(view, pricing);
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

/// The deposit's `user_amount` in `amount_currency` as recorded at acceptance (the deposit's amounts record,
/// [`crate::deposits::wire::amounts_record`]): exactly what the callback and `orderstatus` show, never
/// recomputed at today's rates. `None` if the deposit has no readable record.
pub fn recorded_amount(d: &skingate_store::deposits::Deposit) -> Option<Amount> {
    let record: serde_json::Value = serde_json::from_str(d.amounts.as_deref()?).ok()?;
    let user: skingate_types::Decimal = record.get("user_amount")?.as_str()?.parse().ok()?;
    let code = record.get("amount_currency")?.as_str()?;
    Some(Amount::exact(&user, code))
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
    let amount = if d.status.has_amount() {
        // The amounts recorded at acceptance, as the callback and `orderstatus` carry them: today's rates must
        // not change what the payer was credited. (A deposit without a readable record has only its USD
        // user amount, shown at today's rate.)
        recorded_amount(d).or_else(|| {
            d.user_amount_usd.map(|user| Amount::exact(&pricing.currency.from_usd(user), &pricing.currency.code))
        })
    } else if progress == Progress::Waiting {
        // Not accepted yet: what the items would be credited at now, as the items page showed it.
        let gross = d
            .items
            .iter()
            .filter_map(|i| deposit::cents(i.price_cents))
            .fold(Money::ZERO, |a, b| a.checked_add(b).unwrap_or(a));
        Some(credit(view, &pricing).credited(gross))
    } else {
        None
    };
    // Only a trade Steam accepted can end failed with an acceptance time: the payer reversed it.
    let reversed = progress == Progress::Failed && d.accepted_at.is_some();
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
        reversed,
        reason: (progress == Progress::Failed)
            .then(|| fail_text(if reversed { Some("reversed") } else { d.fail_reason.as_deref() }).to_owned()),
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

    fn credit(p: &Pricing, fee_ppm: i64, multiplier_ppm: i64) -> Credit {
        Credit { pricing: Pricing { currency: p.currency.clone(), multiplier_ppm }, fee_ppm }
    }

    #[test]
    fn credited_takes_the_fee_then_the_multiplier_then_converts() {
        let rub = pricing("rub", "92.5", 2);
        // 10.00 USD, 2.5 % fee → 9.75; ×1.5 → 14.625 USD; × 92.5 → 1352.8125 RUB → 1352.81.
        let a = credit(&rub, 25_000, 1_500_000).credited(Money::from_minor(10_000));
        assert_eq!(a.to_string(), "1352.81 RUB");
        // USD is shown as `user_amount` is: three ledger decimals when the third is not zero.
        let usd = pricing("usd", "1", 3);
        assert_eq!(credit(&usd, 0, deposit::PPM).credited(Money::from_minor(1_005)).to_string(), "1.005 USD");
        assert_eq!(credit(&usd, 0, deposit::PPM).credited(Money::from_minor(1_000)).to_string(), "1.00 USD");
        assert_eq!(credit(&usd, 0, 1_100_000).credited(Money::from_minor(40)).to_string(), "0.044 USD");
        assert_eq!(credit(&usd, 0, deposit::PPM).zero().to_string(), "0.00 USD");
        // A zero-decimal currency stays whole.
        let jpy = pricing("jpy", "150", 0);
        assert_eq!(credit(&jpy, 0, deposit::PPM).credited(Money::from_minor(1_234)).to_string(), "185 JPY");
    }

    /// The fee is rounded on the sum: the bounds on the gross value decide as the server's check of the net.
    #[test]
    fn gross_bounds_decide_as_the_net_check() {
        let usd = pricing("usd", "1", 3);
        for fee in [0, 25_000, 33_333, 999_999] {
            let c = credit(&usd, fee, deposit::PPM);
            for limit in [1, 999, 1_000, 5_005, 123_457] {
                let limit = Money::from_minor(limit);
                let lo = c.gross_at_least(limit);
                assert!(c.net(Money::from_minor(lo)) >= limit && c.net(Money::from_minor(lo - 1)) < limit);
                let hi = c.gross_at_most(limit);
                assert!(c.net(Money::from_minor(hi)) <= limit && c.net(Money::from_minor(hi + 1)) > limit);
            }
        }
        // A 100 % fee: no gross reaches a positive minimum, every gross is within a maximum.
        let all = credit(&usd, deposit::PPM, deposit::PPM);
        assert_eq!(all.gross_at_least(Money::from_minor(1)), super::super::view::JS_MAX_SAFE);
        assert_eq!(all.gross_at_most(Money::from_minor(1)), super::super::view::JS_MAX_SAFE);
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
