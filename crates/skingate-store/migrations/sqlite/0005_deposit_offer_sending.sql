-- A deposit whose trade offer is being sent: set (gateway clock) when the gateway commits to sending, cleared
-- when the offer id is recorded or the send is given up. Steam is called outside every transaction, so a
-- crash between Steam's answer and the record leaves this set; the trade watcher fails such deposits after a
-- grace period instead of leaving them pending with an unknown offer.
ALTER TABLE deposits ADD COLUMN offer_sending_at INTEGER;
CREATE INDEX deposits_sending ON deposits (offer_sending_at) WHERE offer_sending_at IS NOT NULL;
