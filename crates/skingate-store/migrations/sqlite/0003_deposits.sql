-- Deposits: one row per deposit (the transaction_id is its id), and the project settings deposits use.
-- Money columns are INTEGER thousandths of a USD; times are Unix seconds on the gateway clock.

ALTER TABLE projects ADD COLUMN test_mode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN multiplier_ppm INTEGER NOT NULL DEFAULT 1000000;
ALTER TABLE projects ADD COLUMN deposit_fee_ppm INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN callback_format TEXT NOT NULL DEFAULT 'form';
ALTER TABLE projects ADD COLUMN frame_ancestors TEXT NOT NULL DEFAULT '';

CREATE TABLE deposits (
    id               INTEGER PRIMARY KEY,          -- transaction_id
    project_id       INTEGER NOT NULL REFERENCES projects (id),
    order_id         TEXT    NOT NULL,
    page_token       TEXT    NOT NULL UNIQUE,      -- the hosted page's unguessable URL part
    status           TEXT    NOT NULL,
    steam_id         TEXT,                         -- the payer (prefilled by create, or chosen on the page)
    trade_token      TEXT,
    game             TEXT,
    currency         TEXT    NOT NULL,             -- the deposit's currency (amount_currency)
    min_usd          INTEGER,                      -- limits, converted to USD at creation
    max_usd          INTEGER,
    min_text         TEXT,                         -- limits as the merchant gave them, in `currency`
    max_text         TEXT,
    multiplier_ppm   INTEGER NOT NULL,
    fee_ppm          INTEGER NOT NULL,
    result_url       TEXT,                         -- per-deposit overrides
    success_url      TEXT,
    fail_url         TEXT,
    offer_id         TEXT,
    bot_steam_id     TEXT,
    bot_name         TEXT,
    offer_date       INTEGER,
    offer_expires_at INTEGER,
    items            TEXT    NOT NULL DEFAULT '[]', -- JSON: the items asked for / received
    accepted_at      INTEGER,                      -- skins_send_date
    hold_until       INTEGER,
    amount_usd       INTEGER,                      -- net of fee, recorded at acceptance
    user_amount_usd  INTEGER,
    amounts          TEXT,                         -- JSON: every amount field, recorded at acceptance
    last_observed    TEXT,                         -- previous Steam observation (believe two in a row)
    fail_reason      TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (project_id, order_id)
);
CREATE INDEX deposits_by_project_time ON deposits (project_id, created_at, id);
CREATE INDEX deposits_by_payer ON deposits (steam_id, status);
CREATE INDEX deposits_watched ON deposits (status) WHERE status IN ('pending', 'in_hold', 'hold_approved');

-- Result-URL callbacks are deliveries of kind result_url; they name their deposit for callback_error_list.
ALTER TABLE deliveries ADD COLUMN deposit_id INTEGER;
CREATE INDEX deliveries_result_url ON deliveries (project_id, kind, id) WHERE kind = 'result_url';
