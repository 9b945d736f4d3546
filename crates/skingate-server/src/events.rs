//! Emitting events: one function that every state change calls inside its write transaction.
//!
//! # Wire shape
//! Each event is the JSON object the vendor documents, `{"event": NAME, "data": {...}}`, with skingate's
//! additions at the top level where legacy parsers (which read only `event` and `data`) never look:
//! `id` (`evt_<n>`, stable across retries and channels, the deduplication key), `seq` (per-project
//! sequence, no gaps) and `created` (Unix seconds). The same bytes are stored in the outbox, sent over
//! WebSockets and POSTed to the events webhook, so every channel signs and shows exactly one body.

use serde_json::{Value, json};
use skingate_core::Money;
use skingate_core::events::EventType;
use skingate_core::project::Project;
use skingate_store::market::BulkEvent;
use skingate_store::{StoreError, StoredEvent, WriteTx};

/// Prefix of public event ids.
pub const EVENT_ID_PREFIX: &str = "evt_";

/// The public id of an event.
pub fn public_id(id: i64) -> String {
    format!("{EVENT_ID_PREFIX}{id}")
}

/// Parses `evt_12` or `12`.
pub fn parse_public_id(s: &str) -> Option<i64> {
    s.trim().strip_prefix(EVENT_ID_PREFIX).unwrap_or(s.trim()).parse().ok().filter(|n| *n >= 0)
}

/// Writes an event (and its webhook delivery, if the project has an active events URL) in `tx`.
/// Callers commit, then call [`crate::AppState::events_committed`] so it goes out at once.
pub async fn emit(
    tx: &mut dyn WriteTx,
    project: &Project,
    event: EventType,
    data: Value,
    now: i64,
) -> Result<StoredEvent, StoreError> {
    let name = event.as_str();
    let body = |id: i64, seq: i64| envelope(event, &data, id, seq, now);
    tx.insert_event(project.id, name, &body, webhook_url(project, event), now).await
}

/// The stored and delivered body of an event once its id and sequence number are known.
pub fn envelope(event: EventType, data: &Value, id: i64, seq: i64, now: i64) -> String {
    json!({"event": event.as_str(), "data": data, "id": public_id(id), "seq": seq, "created": now}).to_string()
}

/// Where the project's events webhook receives this event, if anywhere.
pub fn webhook_url(project: &Project, event: EventType) -> Option<&str> {
    if event.to_webhook() { project.active_events_url() } else { None }
}

/// An event for a transaction that writes its events together at its end
/// (`skingate_store::market::MarketTx::insert_events_bulk`): numbered, and so enveloped, only when written.
pub fn bulk(project: &Project, kind: EventType, data: Value, now: i64) -> BulkEvent {
    BulkEvent {
        project: project.id,
        event_type: kind.as_str(),
        webhook_url: webhook_url(project, kind).map(str::to_owned),
        payload: Box::new(move |id, seq| envelope(kind, &data, id, seq, now)),
    }
}

/// The data of `balance_change`: the spendable balance after the change.
pub fn balance_change_data(balance: Money) -> Value {
    json!({"balance_value": balance.to_wire()})
}

/// `balance_change` with the balance after the change, read inside the same transaction.
pub async fn emit_balance_change(tx: &mut dyn WriteTx, project: &Project, now: i64) -> Result<Money, StoreError> {
    let balance = tx.project_balance(project.id).await?.available;
    emit(tx, project, EventType::BalanceChange, balance_change_data(balance), now).await?;
    Ok(balance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids() {
        assert_eq!(public_id(12), "evt_12");
        assert_eq!(parse_public_id("evt_12"), Some(12));
        assert_eq!(parse_public_id("12"), Some(12));
        assert_eq!(parse_public_id("evt_x"), None);
        assert_eq!(parse_public_id("-1"), None);
    }
}
