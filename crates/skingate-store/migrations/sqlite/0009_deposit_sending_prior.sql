-- What a deposit held before an offer send began (JSON: steam_id, trade_token, game, items), set with
-- offer_sending_at. The send writes its target (the payer's account, game and items) over those columns so
-- that an interrupted send can be adopted; a send given up (failed, or failed by the watcher after a crash)
-- puts these values back, so a failed attempt leaves no account, game or items on the deposit. NULL while
-- not sending, and on rows that began sending before this column existed (those keep the target).
ALTER TABLE deposits ADD COLUMN sending_prior TEXT;
