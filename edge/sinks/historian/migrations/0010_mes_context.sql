-- contextualize: the time-versioned MES context and the log of MES events.
--
-- mes_context holds, per scope (an ISA-95 path: line, equipment, or any level above) and per context key
-- (work_order, product, batch, shift, work_order_state), the intervals [valid_from, valid_to) with their
-- value. valid_to NULL is an interval still open. Intervals of one (scope, key) never overlap; a late or
-- corrected MES event rewrites the rows from its time on (contextualize/mes_store.py: persist).
-- mes_event_log keeps each decoded MES event once (by event_id): redeliveries after a restart are
-- recognised, and it is the trail of what the MES said and when it arrived.

CREATE TABLE IF NOT EXISTS mes_context (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    value        text        NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    source_event text,
    PRIMARY KEY (scope, key, valid_from),
    CONSTRAINT mes_context_range CHECK (valid_to IS NULL OR valid_to > valid_from)
);

CREATE INDEX IF NOT EXISTS mes_context_open_idx ON mes_context (scope, key) WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS mes_context_value_idx ON mes_context (key, value);

CREATE TABLE IF NOT EXISTS mes_event_log (
    event_id     text        PRIMARY KEY,
    ts           timestamptz NOT NULL,
    scope        text        NOT NULL,
    type         text        NOT NULL,
    content_hash text        NOT NULL,
    body         jsonb       NOT NULL,
    source       text        NOT NULL DEFAULT 'mqtt',
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS mes_event_log_ts_idx ON mes_event_log (ts);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_writer') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON mes_context, mes_event_log TO edge_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_reader') THEN
        GRANT SELECT ON mes_context, mes_event_log TO edge_reader;
    END IF;
END
$$;
