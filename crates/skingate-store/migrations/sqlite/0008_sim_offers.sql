-- The embedded Steam simulator's trade offers, one record each (its JSON), saved before the gateway commits
-- anything it learnt from them: a crash must not make the simulator forget a trade the gateway acted on.
-- Only the simulator reads this table; a gateway on real Steam leaves it empty.
CREATE TABLE sim_offers (
    id   INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);
