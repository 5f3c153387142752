-- delivery: the outbox of insights for MES. Every row inserted into `insights` is copied here by a trigger,
-- in the same transaction (so an insight in the historian without its outbox row, or the reverse, cannot
-- exist), and edge.sinks.outbox_publisher publishes the rows in `seq` order with MQTT QoS 1, marking each one
-- when the broker acknowledges it.
--
-- Roles: the trigger function is SECURITY DEFINER, so edge_writer needs no INSERT here and cannot put
-- arbitrary rows in the outbox. edge_writer may SELECT, and UPDATE only the delivery columns (published_at,
-- publish_attempts, last_attempt_at). edge_reader may SELECT.
-- A replayed insight is skipped by the ledger before it reaches `insights`; the unique (insight_id, ts) here
-- (the key of `insights`) is a second guard. Published rows stay (edge_writer cannot delete); prune them with
-- a maintenance job as a superuser if the table grows.

CREATE TABLE IF NOT EXISTS insights_outbox (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    insight_id       text        NOT NULL,
    asset            text,
    ts               timestamptz NOT NULL,
    payload          jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    publish_attempts integer     NOT NULL DEFAULT 0,
    last_attempt_at  timestamptz,
    UNIQUE (insight_id, ts)
);

CREATE INDEX IF NOT EXISTS insights_outbox_pending_idx ON insights_outbox (seq) WHERE published_at IS NULL;

CREATE OR REPLACE FUNCTION insights_outbox_enqueue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO insights_outbox (insight_id, asset, ts, payload)
    VALUES (NEW.insight_id, NEW.asset::text, NEW.ts, to_jsonb(NEW))
    ON CONFLICT (insight_id, ts) DO NOTHING;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS insights_outbox_enqueue ON insights;
CREATE TRIGGER insights_outbox_enqueue AFTER INSERT ON insights
    FOR EACH ROW EXECUTE FUNCTION insights_outbox_enqueue();

REVOKE ALL ON FUNCTION insights_outbox_enqueue() FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_writer') THEN
        GRANT SELECT ON insights_outbox TO edge_writer;
        GRANT UPDATE (published_at, publish_attempts, last_attempt_at) ON insights_outbox TO edge_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_reader') THEN
        GRANT SELECT ON insights_outbox TO edge_reader;
    END IF;
END
$$;
