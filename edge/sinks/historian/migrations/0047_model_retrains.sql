-- lifecycle: retraining progress where every reader of the historian sees it (`edge models`, the TUI).
--
-- One row per state a retraining run passes through (running, then done or failed), never updated: the
-- writer only inserts, like every other table, and the latest row of a run_id is its state now. A run
-- that never reaches done or failed (the process died) stays "running" with its start time, which is what
-- an engineer needs to see. The registry's audit log keeps the result (retrain entry, alias change).

CREATE TABLE IF NOT EXISTS model_retrains (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    text        NOT NULL CHECK (length(run_id) BETWEEN 1 AND 100),
    ts        timestamptz NOT NULL DEFAULT now(),
    state     text        NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    model     text        NOT NULL,
    scope     text        NOT NULL DEFAULT 'all',
    trigger   text        NOT NULL DEFAULT 'manual',
    who       text,
    based_on  text,                 -- the champion version the candidate is built beside
    since     timestamptz,          -- the lookback window trained on
    until     timestamptz,
    windows   integer,              -- good windows used (done)
    version   text,                 -- the candidate (done)
    seconds   double precision,     -- in the training child (done)
    error     text                  -- why not (failed)
);

CREATE INDEX IF NOT EXISTS model_retrains_run_idx ON model_retrains (run_id, ts DESC);
CREATE INDEX IF NOT EXISTS model_retrains_model_idx ON model_retrains (model, ts DESC);

-- Each run in its latest state, with the time it started: what `edge models list` and the TUI show.
CREATE OR REPLACE VIEW model_retrains_latest AS
SELECT r.run_id, r.model, r.scope, r.trigger, r.who, f.started, r.state, r.ts AS updated, r.since, r.until,
       r.windows, r.version, r.based_on, r.seconds, r.error
FROM (SELECT DISTINCT ON (run_id) * FROM model_retrains ORDER BY run_id, ts DESC, id DESC) r
JOIN LATERAL (SELECT min(ts) AS started FROM model_retrains m WHERE m.run_id = r.run_id) f ON true;
