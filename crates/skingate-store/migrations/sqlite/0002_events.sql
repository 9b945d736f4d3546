-- Real-time events: the durable outbox and the deliveries made from it.
-- An event row is written in the same transaction as the change that caused it; delivery reads from here,
-- so a crash between commit and delivery loses nothing.

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,           -- global, ascending in commit order (one writer)
    project_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,              -- per project, 1, 2, 3 … without gaps
    event_type TEXT    NOT NULL,
    payload    TEXT    NOT NULL,              -- the exact body sent: {"event":…,"data":…}
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, seq)
);

-- One row per (event, target). `kind` is events_webhook now; result_url callbacks join later.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    event_id         INTEGER NOT NULL REFERENCES events (id),
    project_id       INTEGER NOT NULL,
    kind             TEXT    NOT NULL,
    url              TEXT    NOT NULL,
    state            TEXT    NOT NULL,       -- pending | delivered | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,                -- gateway clock, Unix seconds; NULL once finished
    locked_until     INTEGER,                -- lease of the worker delivering it now
    last_http_status INTEGER,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_by_project ON deliveries (project_id, id);

CREATE TABLE delivery_attempts (
    id            INTEGER PRIMARY KEY,
    delivery_id   INTEGER NOT NULL REFERENCES deliveries (id),
    project_id    INTEGER NOT NULL,
    attempt_no    INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    http_status   INTEGER,                   -- NULL when no HTTP answer came
    error         TEXT,
    response_head TEXT    NOT NULL           -- first KBs of the answer
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, attempt_no);

-- Secret rotation keeps the old secret signing beside the new one until previous_secret_until.
ALTER TABLE projects ADD COLUMN previous_secret TEXT;
ALTER TABLE projects ADD COLUMN previous_secret_until INTEGER;
-- Events endpoint health: first failure of the current failing streak, and when it was disabled.
ALTER TABLE projects ADD COLUMN events_failing_since INTEGER;
ALTER TABLE projects ADD COLUMN events_disabled_at INTEGER;
