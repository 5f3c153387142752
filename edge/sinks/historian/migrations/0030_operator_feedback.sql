-- tui: operator feedback on insights (ack, true fault, false alarm), the only thing the TUI writes.
--
-- Roles: edge_reader stays SELECT-only on every table (edge/historian/admin.py apply_grants revokes any
-- INSERT from it on each init). Its one way to write is EXECUTE on record_operator_feedback() below, a
-- SECURITY DEFINER function that checks the insight exists, takes the asset from the insight, stamps the
-- server time and the calling role (session_user, so neither can be faked), and inserts the feedback row.
-- The AFTER INSERT trigger writes the audit event (events, kind 'operator') in the same transaction, so no
-- feedback exists without its audit event, and the reader cannot write arbitrary events.

CREATE TABLE IF NOT EXISTS operator_feedback (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    insight_id  text        NOT NULL,
    ts          timestamptz NOT NULL DEFAULT now(),
    who         text        NOT NULL CHECK (length(who) BETWEEN 1 AND 200),
    action      text        NOT NULL CHECK (action IN ('ack', 'true_fault', 'false_alarm')),
    comment     text        NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    asset       text,
    db_role     text        NOT NULL DEFAULT session_user
);

CREATE INDEX IF NOT EXISTS operator_feedback_insight_idx ON operator_feedback (insight_id, ts DESC);
CREATE INDEX IF NOT EXISTS operator_feedback_ts_idx ON operator_feedback (ts DESC);

CREATE OR REPLACE FUNCTION operator_feedback_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO events (ts, kind, source, asset, message, detail)
    VALUES (
        NEW.ts, 'operator', 'tui', NEW.asset,
        NEW.who || ' ' || NEW.action || ' on insight ' || NEW.insight_id,
        jsonb_build_object(
            'feedback_id', NEW.id, 'insight_id', NEW.insight_id, 'who', NEW.who, 'action', NEW.action,
            'comment', NEW.comment, 'db_role', NEW.db_role
        )
    );
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS operator_feedback_audit ON operator_feedback;
CREATE TRIGGER operator_feedback_audit AFTER INSERT ON operator_feedback
    FOR EACH ROW EXECUTE FUNCTION operator_feedback_audit();

CREATE OR REPLACE FUNCTION record_operator_feedback(
    p_insight_id text, p_who text, p_action text, p_comment text DEFAULT ''
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_asset text;
    v_id bigint;
BEGIN
    SELECT asset::text INTO v_asset FROM insights WHERE insight_id = p_insight_id ORDER BY ts DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no insight %', p_insight_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    INSERT INTO operator_feedback (insight_id, ts, who, action, comment, asset, db_role)
    VALUES (p_insight_id, now(), btrim(p_who), p_action, coalesce(p_comment, ''), v_asset, session_user)
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

REVOKE ALL ON FUNCTION operator_feedback_audit() FROM PUBLIC;
REVOKE ALL ON FUNCTION record_operator_feedback(text, text, text, text) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_reader') THEN
        GRANT EXECUTE ON FUNCTION record_operator_feedback(text, text, text, text) TO edge_reader;
    END IF;
END
$$;
