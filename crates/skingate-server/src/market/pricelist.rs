//! `market_pricelist`'s body, streamed: rows are read from the database a page at a time (keyset paging, by
//! id for `full=1`, by name and price for the grouped list) and written to the response as they come, so a
//! list of 200,000 units never sits in memory. The prices are the same pricing `market_buy` charges.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use serde::Serialize;
use skingate_core::Money;
use skingate_core::market::Pricing;
use skingate_store::Store;
use skingate_store::market::{Unit, UnitGroup, UnitState};
use skingate_types::Decimal;
use skingate_types::envelope::STATUS_SUCCESS;

/// Rows read and written per chunk.
pub const PAGE: u32 = 2_000;

/// What to list.
#[derive(Debug, Clone)]
pub struct ListSpec {
    /// Game code.
    pub game: String,
    /// One row per unit (with `id`) instead of one per name and price.
    pub full: bool,
    /// More fields per unit (implies `full`).
    pub extended: bool,
    /// The selling price over the reference price.
    pub pricing: Pricing,
    /// `last_update`, Unix seconds.
    pub now: i64,
}

#[derive(Serialize)]
struct FullRow<'a> {
    id: String,
    name: &'a str,
    price: Decimal,
    classid: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extended: Option<Extended<'a>>,
}

#[derive(Serialize)]
struct Extended<'a> {
    game: &'a str,
    instanceid: &'static str,
    assetid: String,
    bot_steamid: &'a str,
    reference_price: Decimal,
}

#[derive(Serialize)]
struct GroupRow<'a> {
    name: &'a str,
    price: Decimal,
    classid: &'a str,
    count: i64,
}

enum Cursor {
    Start,
    AfterId(i64),
    AfterGroup(String, Money),
    Done,
}

fn price(pricing: Pricing, reference: Money) -> Decimal {
    pricing.price(reference).unwrap_or(reference).to_wire()
}

fn render_units(spec: &ListSpec, units: &[Unit], first: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(units.len() * 120);
    for (i, u) in units.iter().enumerate() {
        if !(first && i == 0) {
            out.push(b',');
        }
        let row = FullRow {
            id: u.id.to_string(),
            name: &u.name,
            price: price(spec.pricing, u.reference),
            classid: &u.classid,
            extended: spec.extended.then(|| Extended {
                game: &u.game,
                instanceid: "0",
                assetid: u.asset_id.to_string(),
                bot_steamid: &u.bot,
                reference_price: u.reference.to_wire(),
            }),
        };
        serde_json::to_writer(&mut out, &row).expect("rows serialize");
    }
    out
}

fn render_groups(spec: &ListSpec, groups: &[UnitGroup], first: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(groups.len() * 100);
    for (i, g) in groups.iter().enumerate() {
        if !(first && i == 0) {
            out.push(b',');
        }
        let row =
            GroupRow { name: &g.name, price: price(spec.pricing, g.reference), classid: &g.classid, count: g.count };
        serde_json::to_writer(&mut out, &row).expect("rows serialize");
    }
    out
}

/// The whole answer, `{"status":"success","last_update":…,"items":[…]}`, as a streamed body. The first page
/// is read before anything is sent, so a failing database still gets the error envelope; only a failure
/// after that (the status line is out by then) can cut the stream.
pub async fn body(store: Arc<dyn Store>, spec: ListSpec) -> Result<Body, skingate_store::StoreError> {
    let (chunk, cursor, first) = match next_chunk(store.as_ref(), &spec, Cursor::Start, true).await? {
        Some(step) => step,
        None => (b"]}".to_vec(), Cursor::Done, true),
    };
    let mut head = format!(r#"{{"status":"{STATUS_SUCCESS}","last_update":{},"items":["#, spec.now).into_bytes();
    head.extend_from_slice(&chunk);
    let state = (store, spec, cursor, first, Some(head));
    let stream = futures::stream::unfold(state, |(store, spec, cursor, first, head)| async move {
        if let Some(head) = head {
            return Some((Ok(Bytes::from(head)), (store, spec, cursor, first, None)));
        }
        let (chunk, next, first) = match next_chunk(store.as_ref(), &spec, cursor, first).await {
            Ok(Some(step)) => step,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "market_pricelist stream failed");
                return Some((Err(std::io::Error::other(e.to_string())), (store, spec, Cursor::Done, first, None)));
            }
        };
        Some((Ok(Bytes::from(chunk)), (store, spec, next, first, None)))
    });
    Ok(Body::from_stream(stream))
}

type Step = (Vec<u8>, Cursor, bool);

async fn next_chunk(
    store: &dyn Store,
    spec: &ListSpec,
    cursor: Cursor,
    first: bool,
) -> Result<Option<Step>, skingate_store::StoreError> {
    let full = spec.full || spec.extended;
    let after = match cursor {
        Cursor::Done => return Ok(None),
        c => c,
    };
    if full {
        let after_id = if let Cursor::AfterId(id) = after { id } else { 0 };
        let units = store.units_page(Some(&spec.game), UnitState::Stock, after_id, PAGE).await?;
        let Some(last) = units.last() else { return Ok(Some((b"]}".to_vec(), Cursor::Done, first))) };
        let next = Cursor::AfterId(last.id);
        Ok(Some((render_units(spec, &units, first), next, false)))
    } else {
        let key =
            if let Cursor::AfterGroup(name, reference) = &after { Some((name.as_str(), *reference)) } else { None };
        let groups = store.unit_groups_page(&spec.game, key, PAGE).await?;
        let Some(last) = groups.last() else { return Ok(Some((b"]}".to_vec(), Cursor::Done, first))) };
        let next = Cursor::AfterGroup(last.name.clone(), last.reference);
        Ok(Some((render_groups(spec, &groups, first), next, false)))
    }
}
