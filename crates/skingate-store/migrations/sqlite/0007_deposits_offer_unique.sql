-- One trade offer settles at most one deposit: an offer adopted from Steam after an interrupted send can never
-- be recorded on a second deposit as well.
CREATE UNIQUE INDEX deposits_offer ON deposits (offer_id) WHERE offer_id IS NOT NULL;
