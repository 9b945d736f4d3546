-- The market (skins withdraw): stock units held by the gateway's bots, and purchases of them.
-- Money columns are INTEGER thousandths of a USD; times are Unix seconds on the gateway clock.

-- One row per item a bot holds (or held). `reference` is the catalogue reference price; the selling price is
-- the configured pricing applied to it when read, so a markup change reprices the whole stock at once.
-- state: stock (for sale) | reserved (a purchase's trade runs) | gone (given away) | withdrawn (operator).
CREATE TABLE market_units (
    id         INTEGER PRIMARY KEY,
    game       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    classid    TEXT    NOT NULL,
    asset_id   INTEGER NOT NULL,
    bot        TEXT    NOT NULL,
    reference  INTEGER NOT NULL CHECK (reference >= 0),
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Buying by name (cheapest first), searching and the grouped price list read only units for sale.
CREATE INDEX market_units_for_sale ON market_units (game, name, reference, id) WHERE state = 'stock';
-- The full price list pages through units for sale by id.
CREATE INDEX market_units_for_sale_by_id ON market_units (game, id) WHERE state = 'stock';

CREATE TABLE purchases (
    id            INTEGER PRIMARY KEY,             -- the public buy_id
    project_id    INTEGER NOT NULL,
    unit_id       INTEGER NOT NULL REFERENCES market_units (id),
    game          TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    classid       TEXT    NOT NULL,
    price         INTEGER NOT NULL CHECK (price > 0),  -- balance_debited_sum
    partner       TEXT    NOT NULL,                -- SteamID64 of the recipient
    token         TEXT    NOT NULL,                -- trade-URL token
    custom_id     TEXT,
    status        TEXT    NOT NULL,                -- offer_status
    tradeofferid  TEXT,
    error_reason  TEXT,
    sent_at       INTEGER,
    accepted_at   INTEGER,
    watch_until   INTEGER,                         -- accepted: end of Trade Protection (rollbacks watched)
    next_check_at INTEGER NOT NULL,                -- when the watcher looks at it next
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX purchases_custom_id ON purchases (project_id, custom_id) WHERE custom_id IS NOT NULL;
CREATE INDEX purchases_by_time ON purchases (project_id, created_at, id);
CREATE INDEX purchases_open ON purchases (next_check_at)
    WHERE status IN ('creating_trade', 'waiting_accept', 'accepted');
