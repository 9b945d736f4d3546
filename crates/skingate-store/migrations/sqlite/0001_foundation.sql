-- Foundation schema: projects, currencies, the double-entry ledger, idempotency keys.
-- Money columns are INTEGER thousandths of a USD (skingate_core::money). Times are Unix seconds.
-- Forward-only: never edit this file once released; add a new numbered migration instead.

CREATE TABLE projects (
    id                 INTEGER PRIMARY KEY,
    client_secret      TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    active             INTEGER NOT NULL DEFAULT 1,
    result_url         TEXT,
    success_url        TEXT,
    fail_url           TEXT,
    events_url         TEXT,
    ip_allowlist       TEXT    NOT NULL DEFAULT '',
    rate_limit_per_min INTEGER NOT NULL CHECK (rate_limit_per_min > 0),
    hold_policy        TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE currencies (
    code       TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    scale      INTEGER NOT NULL,
    rate_micro INTEGER NOT NULL CHECK (rate_micro > 0),
    updated_at INTEGER NOT NULL
);

-- project_id 0 holds the installation's own accounts (clearing, sales, fees, adjustments, losses).
CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    project_id      INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    currency        TEXT    NOT NULL,
    no_overdraft    INTEGER NOT NULL,
    debits_posted   INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending  INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    UNIQUE (project_id, kind, currency)
);

CREATE TABLE transfers (
    id                TEXT    PRIMARY KEY,
    debit_account_id  INTEGER NOT NULL REFERENCES accounts (id),
    credit_account_id INTEGER NOT NULL REFERENCES accounts (id),
    amount            INTEGER NOT NULL CHECK (amount > 0),
    phase             TEXT    NOT NULL,
    pending_id        TEXT    REFERENCES transfers (id),
    resolved          INTEGER NOT NULL DEFAULT 0,
    code              TEXT    NOT NULL,
    allow_overdraft   INTEGER NOT NULL,
    reference         TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    CHECK (debit_account_id <> credit_account_id)
);
-- A pending transfer is posted or voided once, whatever the code above does.
CREATE UNIQUE INDEX transfers_resolve_once ON transfers (pending_id) WHERE pending_id IS NOT NULL;

CREATE TABLE entries (
    id               INTEGER PRIMARY KEY,
    transfer_id      TEXT    NOT NULL REFERENCES transfers (id),
    account_id       INTEGER NOT NULL REFERENCES accounts (id),
    project_id       INTEGER NOT NULL,
    side             TEXT    NOT NULL,
    amount           INTEGER NOT NULL,
    available_before INTEGER NOT NULL,
    available_after  INTEGER NOT NULL,
    held_before      INTEGER NOT NULL,
    held_after       INTEGER NOT NULL,
    in_flight_before INTEGER NOT NULL,
    in_flight_after  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX entries_by_project_time ON entries (project_id, created_at, id);

-- Settled totals per account, code and side, kept in the transfer's transaction so `balance` can report
-- deposit and withdrawal sums without scanning history.
CREATE TABLE transfer_totals (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    code       TEXT    NOT NULL,
    side       TEXT    NOT NULL,
    total      INTEGER NOT NULL,
    PRIMARY KEY (account_id, code, side)
);

CREATE TABLE idempotency_keys (
    project_id   INTEGER NOT NULL,
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    response     TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (project_id, scope, key)
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
