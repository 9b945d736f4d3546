-- Deliveries of one subject go out one at a time, in event order: a purchase's `buy_item` and
-- `status_change` events to the events webhook, a deposit's Result-URL callbacks. Vendor clients keep the
-- last status they were sent and know no sequence number; sent side by side, a purchase's final status could
-- arrive before its `buy_item` and leave it shown as still in progress. `order_key` names the subject (NULL:
-- no order to keep, as for `balance_change` and `skingate trigger`'s samples, marked `"test": true`); a pending row waits while an earlier event's row of the same key
-- is pending (due, leased or waiting for a retry). The key expressions are repeated in `events.rs` (`order_key!`).
ALTER TABLE deliveries ADD COLUMN order_key TEXT;

UPDATE deliveries SET order_key = 'deposit:' || deposit_id WHERE kind = 'result_url' AND deposit_id IS NOT NULL;

UPDATE deliveries SET order_key = (
    SELECT 'buy:' || (e.payload ->> '$.data.buy_id') FROM events e
    WHERE e.id = deliveries.event_id AND e.event_type IN ('buy_item', 'status_change')
        AND (e.payload ->> '$.data.test') IS NULL)
WHERE kind = 'events_webhook';

CREATE INDEX deliveries_in_order ON deliveries (order_key, event_id) WHERE state = 'pending' AND order_key IS NOT NULL;
