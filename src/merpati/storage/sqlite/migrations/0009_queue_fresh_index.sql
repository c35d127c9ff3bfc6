-- Merpati SQLite schema, version 9: an index of the queue items never attempted.
-- A claim first takes up to half its slots from items with attempts = 0 (new mail is not
-- starved behind a backlog of due retries, SECURITY-CASES STORE-08). Without this partial index
-- that look-up walks every due item: ~20 ms per claim with 200,000 retries due, ~0.01 ms with it.

CREATE INDEX queue_items_fresh ON queue_items(next_attempt_ms, id) WHERE attempts = 0;
