//! Deposits on the wire: the deposit object (spec §3.2), `user_risk` (§3.4), the amounts recorded at
//! acceptance, and the Result-URL callback's body and signature (§2.2, §3.3).
//!
//! # Deposit object
//! `status`, `transaction_id` (integer), `order_id`, `steam_id`, `date` (creation, Unix s), `game`,
//! `trade_offer_id`, `offer_date`; once accepted `skins_send_date` and `skins[]`
//! (`{name, asset_id, classid, price, user_price, price_usd}`, prices in the deposit currency); when the
//! status carries an amount (`success`, `in_hold`, `hold_approved`) also `amount`, `amount_currency`,
//! `amount_in_currencies`, `user_amount`, `user_amount_in_currencies`, `amount_usd`; `hold_until` while
//! held; `fail_reason` on `fail`; `user_risk` in the `in_hold` callback. Money is a decimal string.
//!
//! # Callback body
//! The deposit object plus `sign` = §2.1 HMAC-SHA1 (key: the client secret) over its top-level scalars
//! (`skins`, `*_in_currencies` and `user_risk` are skipped), sent as `application/x-www-form-urlencoded`
//! with PHP nesting (`skins[0][name]=…`, what PHP's `$_POST` parses) or, per project, as JSON. Header
//! `X-SIGN` = md5(client_id + client_secret).

use serde_json::{Map, Value, json};
use skingate_core::Money;
use skingate_core::currency::Rates;
use skingate_core::deposit::{Amounts, DepositStatus};
use skingate_core::project::{CallbackFormat, Project};
use skingate_steam::catalogue::Game;
use skingate_steam::users::Asset;
use skingate_store::deposits::{Deposit, DepositItem};
use skingate_types::sign::{self, Canonicalization};

use crate::state::AppState;

/// The deposit object. `risk` is added as `user_risk` (the `in_hold` callback).
pub fn deposit_object(d: &Deposit, risk: Option<&Value>) -> Value {
    let mut o = Map::new();
    o.insert("status".into(), json!(d.status.as_str()));
    o.insert("transaction_id".into(), json!(d.id));
    o.insert("order_id".into(), json!(d.order_id));
    o.insert("steam_id".into(), json!(d.steam_id.clone().unwrap_or_default()));
    o.insert("date".into(), json!(d.created_at));
    if let Some(game) = &d.game {
        o.insert("game".into(), json!(game));
    }
    if let Some(offer) = &d.offer_id {
        o.insert("trade_offer_id".into(), json!(offer));
        o.insert("offer_date".into(), json!(d.offer_date.unwrap_or_default()));
    }
    if let Some(at) = d.accepted_at {
        o.insert("skins_send_date".into(), json!(at));
    }
    if let Some(Ok(Value::Object(amounts))) = d.amounts.as_deref().map(serde_json::from_str::<Value>) {
        for (k, v) in amounts {
            if k == "skins" || d.status.has_amount() {
                o.insert(k, v);
            }
        }
    }
    if matches!(d.status, DepositStatus::InHold | DepositStatus::HoldApproved)
        && let Some(until) = d.hold_until
    {
        o.insert("hold_until".into(), json!(until));
    }
    if d.status == DepositStatus::Fail
        && let Some(reason) = &d.fail_reason
    {
        o.insert("fail_reason".into(), json!(reason));
    }
    if let Some(risk) = risk {
        o.insert("user_risk".into(), risk.clone());
    }
    Value::Object(o)
}

/// The amount fields recorded at acceptance (JSON object text), in the deposit's currency and in every
/// currency of the rates table at that moment. Never recomputed.
pub fn amounts_record(rates: &Rates, d: &Deposit, amounts: &Amounts, items: &[DepositItem]) -> String {
    let currency = rates.get(&d.currency).or_else(|| rates.get("usd")).expect("rates always hold usd");
    let all =
        |usd: Money| -> Map<String, Value> { rates.iter().map(|c| (c.code.clone(), json!(c.from_usd(usd)))).collect() };
    let skins: Vec<Value> = items
        .iter()
        .map(|i| {
            let usd = skingate_core::deposit::cents(i.price_cents).unwrap_or(Money::ZERO);
            let user = skingate_core::deposit::apply_ppm(usd, d.multiplier_ppm).unwrap_or(usd);
            json!({
                "name": i.market_hash_name,
                "asset_id": i.asset_id,
                "classid": i.classid,
                "price": currency.from_usd(usd),
                "user_price": currency.from_usd(user),
                "price_usd": usd.to_wire(),
            })
        })
        .collect();
    json!({
        "amount": currency.from_usd(amounts.net),
        "amount_currency": currency.code,
        "amount_in_currencies": all(amounts.net),
        "user_amount": currency.from_usd(amounts.user),
        "user_amount_in_currencies": all(amounts.user),
        "amount_usd": amounts.net.to_wire(),
        "skins": skins,
    })
    .to_string()
}

/// The deposit's items from what Steam shows in the accepted offer, priced now (reference prices).
pub fn received_items(assets: &[Asset]) -> Vec<DepositItem> {
    assets
        .iter()
        .map(|a| DepositItem {
            asset_id: a.asset_id.to_string(),
            classid: a.classid.to_string(),
            context_id: a.context_id,
            market_hash_name: a.market_hash_name.clone(),
            price_cents: a.price_cents,
        })
        .collect()
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC), the format of `user_risk`'s dates (out-of-range times show as
/// the epoch rather than failing a callback).
pub fn datetime(secs: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap_or_default()
}

/// `user_risk` from the gateway's own history of the payer (every project) before `deposit`, plus the
/// current value of the payer's inventory in every game (the vendor's example has `cs2`, `dota2` and `rust`,
/// whatever the deposit's game; a game Steam does not answer for is left out). `joined_at` counts `deposit`
/// itself: a first-time payer joined when they created it, not later when it was accepted.
pub async fn user_risk(state: &AppState, payer: &str, deposit: &Deposit) -> anyhow::Result<Value> {
    let h = state.store.payer_history(payer, deposit.id).await?;
    let now = state.now();
    let mut inventory = Map::new();
    if let Ok(user) = payer.parse() {
        for game in Game::ALL {
            let Ok(assets) = state.steam.inventory(user, game).await else { continue };
            let sum = assets
                .iter()
                .filter_map(|a| skingate_core::deposit::cents(a.price_cents))
                .fold(Money::ZERO, |a, b| a.checked_add(b).unwrap_or(a));
            let updated = format!("{}.000000Z", datetime(now).replace(' ', "T"));
            inventory.insert(game.code().into(), json!({"last_updated_at": updated, "sum": sum.to_wire()}));
        }
    }
    Ok(json!({
        "total_deposits_count": h.deposits_count,
        "total_deposits_sum": h.deposits_sum.to_wire(),
        "total_rollback_deposits_count": h.rollback_count,
        "total_rollback_deposits_sum": h.rollback_sum.to_wire(),
        "joined_at": datetime(h.first_seen.map_or(deposit.created_at, |f| f.min(deposit.created_at))),
        "last_deposit_at": h.last_deposit_at.map(datetime),
        "user_inventory": inventory,
    }))
}

/// The callback for a deposit object: the object plus `sign`, encoded per the project, with its content
/// type.
pub fn callback_body(project: &Project, object: &Value) -> (&'static str, String) {
    let mut map = object.as_object().cloned().unwrap_or_default();
    let signature = sign::api_sign(&project.client_secret, &map, Canonicalization::Php);
    map.insert(sign::SIGN_PARAM.into(), json!(signature));
    match project.settings.callback_format {
        CallbackFormat::Json => ("application/json", Value::Object(map).to_string()),
        CallbackFormat::Form => ("application/x-www-form-urlencoded", php_form(&map)),
    }
}

/// PHP-style form encoding: nested arrays and objects as `key[0][name]=…`; `null` is left out, booleans
/// are `1` or empty (as PHP renders them).
pub fn php_form(map: &Map<String, Value>) -> String {
    fn walk(out: &mut url::form_urlencoded::Serializer<'_, String>, key: &str, v: &Value) {
        match v {
            Value::Null => {}
            Value::Bool(b) => {
                out.append_pair(key, if *b { "1" } else { "" });
            }
            Value::Number(n) => {
                out.append_pair(key, &n.to_string());
            }
            Value::String(s) => {
                out.append_pair(key, s);
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(out, &format!("{key}[{i}]"), item);
                }
            }
            Value::Object(m) => {
                for (k, item) in m {
                    walk(out, &format!("{key}[{k}]"), item);
                }
            }
        }
    }
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in map {
        walk(&mut out, k, v);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(datetime(0), "1970-01-01 00:00:00");
        assert_eq!(datetime(1_716_818_070), "2024-05-27 13:54:30");
        assert_eq!(datetime(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn php_nesting() {
        let v = json!({"a": "1 2", "skins": [{"name": "AK-47 | Redline"}], "r": {"x": 1}, "n": null, "t": true});
        let text = php_form(v.as_object().unwrap());
        assert_eq!(text, "a=1+2&r%5Bx%5D=1&skins%5B0%5D%5Bname%5D=AK-47+%7C+Redline&t=1");
    }
}
