-- `webhook_recover` queues the events that never had an events-webhook delivery (emitted while the endpoint
-- was disabled or unset): it looks deliveries up by event.
CREATE INDEX deliveries_by_event ON deliveries (event_id, kind);
