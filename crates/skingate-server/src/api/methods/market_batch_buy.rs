//! `market_batch_buy`: several buys in one call (spec §5.5), each independent.
//!
//! # Format
//! Request: `partner`, `token`, `items[]` of `{id, max_price?, custom_id?}` (JSON array or PHP-style
//! `items[0][id]=…`; at most 100 items).
//! Response: `purchased[]` (records as `market_buy` answers, in request order) and `unavailable[]` of
//! `{id, custom_id, error_code, reason}` with the `market_buy` code and message (`insufficient_funds`,
//! `skin_unavailable`, `skins_not_found_at_specified_price`, `custom_id_already_exists`, …). Each item is
//! bought or refused on its own: one bad item never spoils the others, and each `custom_id` is idempotent as
//! in `market_buy` (a replayed item is listed in `purchased` with its first answer).
//! Errors (the whole call): `-6 market_disabled`, `1 missing_name_and_id` (no items),
//! `3 missing_partner_or_token`, `10 too_many_items`.

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use skingate_types::market::{Unavailable, method};

use super::market_buy::{custom_id, max_price, recipient};
use super::{Ctx, Reply};
use crate::api::params::{ParamError, Params};
use crate::error::ApiError;
use crate::market::buy::{BATCH_HEADER_SCOPE, Bought, BuyRequest, CUSTOM_ID_SCOPE, Pick, buy};

const NO_ITEMS: ApiError = ApiError::method(1, "missing_name_and_id");
const TOO_MANY: ApiError = ApiError::method(10, "too_many_items");
/// Most items per call.
pub const MAX_ITEMS: usize = 100;

/// The answer's shape (`skingate_types::market::BatchBuyResponse` on the wire). Each purchased item is the
/// record stored when it was bought, embedded as written and never re-parsed: a replay answers what the first
/// call answered, even for a record an earlier version of the gateway stored in a shape this one would not read.
#[derive(Serialize)]
struct Rendered {
    purchased: Vec<Box<RawValue>>,
    unavailable: Vec<Unavailable>,
}

/// One item: a request to run, or why it cannot run.
#[derive(Debug)]
struct Item {
    id: String,
    custom_id: Option<String>,
    request: Result<BuyRequest, ApiError>,
}

/// A `market_batch_buy` call.
#[derive(Debug)]
pub struct MarketBatchBuy {
    items: Vec<Item>,
}

impl MarketBatchBuy {
    /// Reads the recipient and the items; an item's own bad parameters make only that item unavailable.
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        // A JSON array or PHP-style `items[0][id]=…`, in the request's order.
        let raw: Vec<Value> = params.list("items").unwrap_or_default().into_iter().cloned().collect();
        if raw.is_empty() {
            return Err(NO_ITEMS);
        }
        if raw.len() > MAX_ITEMS {
            return Err(TOO_MANY);
        }
        let (partner, token) = recipient(params)?;
        let items = raw
            .into_iter()
            .map(|v| {
                let item = Params(v.as_object().cloned().unwrap_or_default());
                let id_text = item.text("id").unwrap_or_default();
                let custom = custom_id(&item, "custom_id");
                let request = (|| {
                    let id = match item.i64("id") {
                        Ok(id) => id,
                        Err(ParamError::Missing) => return Err(NO_ITEMS),
                        Err(ParamError::Invalid) => return Err(crate::market::buy::Refusal::Unavailable.error()),
                    };
                    let max_price = max_price(&item, "max_price")?;
                    let custom_id = custom_id(&item, "custom_id")?;
                    // The same fingerprint as a market_buy with these parameters: a custom_id replays across both.
                    let mut same = Map::new();
                    same.insert("method".into(), json!(method::BUY));
                    same.insert("partner".into(), params.get("partner").cloned().unwrap_or(Value::Null));
                    same.insert("token".into(), params.get("token").cloned().unwrap_or(Value::Null));
                    for (k, v) in &item.0 {
                        same.insert(k.clone(), v.clone());
                    }
                    let fingerprint = crate::idempotency::fingerprint(method::BUY, &Params(same));
                    Ok(BuyRequest {
                        pick: Pick::Id(id),
                        max_price,
                        partner,
                        token: token.clone(),
                        key: custom_id.clone().map(|k| (CUSTOM_ID_SCOPE, k)),
                        custom_id,
                        fingerprint,
                    })
                })();
                Item { id: id_text, custom_id: custom.ok().flatten(), request }
            })
            .collect();
        Ok(Self { items })
    }

    /// Buys every item through the group-committed writer (they usually share one commit).
    pub async fn apply(self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let project = Arc::new(ctx.project.clone());
        let outcomes = futures::future::join_all(self.items.iter().enumerate().map(|(i, item)| {
            let project = project.clone();
            async move {
                match &item.request {
                    Ok(r) => {
                        let mut r = r.clone();
                        // Without its own `custom_id`, an item is idempotent on the header and its position.
                        if r.key.is_none() {
                            r.key = ctx.idempotency_key.map(|k| (BATCH_HEADER_SCOPE, format!("{k}#{i}")));
                        }
                        Some(buy(ctx.state, project, r).await.map_err(ApiError::from))
                    }
                    Err(_) => None,
                }
            }
        }))
        .await;
        let mut response = Rendered { purchased: Vec::new(), unavailable: Vec::new() };
        // The whole answer is a replay when every item was answered from its stored record (a refused item
        // stored nothing and was tried again).
        let replayed = outcomes.iter().all(|o| matches!(o, Some(Ok(Bought::Replayed(_)))));
        for (item, outcome) in self.items.into_iter().zip(outcomes) {
            let refused = match (outcome, item.request) {
                (Some(Ok(Bought::Fresh(body) | Bought::Replayed(body))), _) => {
                    let record = String::from_utf8(body).map_err(ApiError::internal)?;
                    response.purchased.push(RawValue::from_string(record).map_err(ApiError::internal)?);
                    None
                }
                // One item's failure, even an internal one, never spoils the others: items of this call may
                // already be committed in earlier batches, so the answer must list them.
                (Some(Err(e)), _) | (None, Err(e)) => {
                    if let ApiError::Internal { cause, at } = &e {
                        tracing::error!(error = format!("{cause:#}"), location = %at, item = %item.id, "batch item failed");
                    }
                    Some(e)
                }
                (None, Ok(_)) => None,
            };
            match refused {
                None => {}
                Some(e) => {
                    let body = e.body();
                    response.unavailable.push(Unavailable {
                        id: item.id,
                        custom_id: item.custom_id,
                        error_code: body.error_code,
                        reason: body.error_message.to_string(),
                    });
                }
            }
        }
        let mut reply = Reply::success(&response)?;
        reply.replayed = replayed;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<MarketBatchBuy, ApiError> {
        MarketBatchBuy::parse(&Params(v.as_object().unwrap().clone()))
    }

    #[test]
    fn parameters() {
        let code = |r: Result<MarketBatchBuy, ApiError>| r.unwrap_err().body().error_code;
        assert_eq!(code(parse(json!({"partner": 1, "token": "AbCdEfGh"}))), 1);
        assert_eq!(code(parse(json!({"items": [{"id": 1}]}))), 3);
        let many: Vec<Value> = (0..101).map(|i| json!({"id": i})).collect();
        assert_eq!(code(parse(json!({"items": many, "partner": 1, "token": "AbCdEfGh"}))), 10);
        let ok = parse(json!({"partner": 1, "token": "AbCdEfGh",
            "items": {"0": {"id": "4", "max_price": "1.5", "custom_id": "a"}, "1": {"max_price": "x"}}}))
        .unwrap();
        assert_eq!(ok.items.len(), 2);
        assert_eq!(ok.items[0].request.as_ref().unwrap().pick, Pick::Id(4));
        assert_eq!(ok.items[1].request.as_ref().unwrap_err().body().error_code, 1);
    }

    #[test]
    fn php_style_items_keep_the_request_order() {
        let items: serde_json::Map<String, Value> = (0..12).map(|i| (i.to_string(), json!({"id": i + 100}))).collect();
        let ok = parse(json!({"partner": 1, "token": "AbCdEfGh", "items": items})).unwrap();
        let ids: Vec<String> = ok.items.iter().map(|i| i.id.clone()).collect();
        let want: Vec<String> = (100..112).map(|i: i64| i.to_string()).collect();
        assert_eq!(ids, want, "\"10\" and \"11\" come after \"9\", not after \"1\"");
    }
}
