-- lifecycle: a false-alarm label can suppress repeats. An engineer who labels an alarm false_alarm may ask
-- that repeats on the same equipment, from the same model, with the same leading features (the names of the
-- labelled insight's top features, in any order) raise no alarm for N hours. The window is in insight time,
-- from the labelled insight's ts, so a replay of the same history suppresses the same rows.
--
-- Suppressed insights are still stored, flagged `suppressed` with the suppression's id, but never reach the
-- outbox (MQTT, Sparkplug): the same way shadow rows are kept out (0020). A BEFORE INSERT trigger flags a
-- matching warning or alarm row (an ok row raises nothing, so it stays published); an AFTER INSERT trigger
-- removes the row the outbox trigger queued in the same transaction. AFTER triggers fire in name order:
-- insights_outbox_enqueue < insights_suppressed_unqueue. The writers need no change: they do not send the
-- new columns, so the defaults and the trigger fill them, also on COPY.
--
-- Every change is audited: an AFTER INSERT OR UPDATE trigger on alarm_suppressions writes an event (kind
-- 'suppression') in the same transaction. Rows are created and lifted only through the two SECURITY
-- DEFINER functions below, which stamp server time and the calling role; edge_reader (the TUI) may
-- execute the first, edge_writer both.

CREATE TABLE IF NOT EXISTS alarm_suppressions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    who         text        NOT NULL CHECK (length(who) BETWEEN 1 AND 200),
    db_role     text        NOT NULL DEFAULT session_user,
    feedback_id bigint      NOT NULL,
    insight_id  text        NOT NULL,
    asset       text        NOT NULL,
    model       text        NOT NULL,
    features    text[]      NOT NULL CHECK (cardinality(features) > 0),
    starts_at   timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    comment     text        NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    lifted_at   timestamptz,
    lifted_by   text,
    lift_reason text,
    CHECK (until > starts_at)
);

CREATE INDEX IF NOT EXISTS alarm_suppressions_active_idx ON alarm_suppressions (asset, model)
    WHERE lifted_at IS NULL;

ALTER TABLE insights ADD COLUMN IF NOT EXISTS suppressed boolean DEFAULT false;
ALTER TABLE insights ADD COLUMN IF NOT EXISTS suppression_id bigint;

-- The sorted names of the first k entries of a top_features value (a JSON list of {"feature",
-- "contribution"}, leading first). Some writers store the list as a JSON string; both are read.
CREATE OR REPLACE FUNCTION insight_leading_features(p_top jsonb, p_k integer) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(name ORDER BY name), '{}'::text[])
    FROM (
        SELECT e.value->>'feature' AS name
        FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(p_top) = 'string' THEN (p_top #>> '{}')::jsonb
                 WHEN jsonb_typeof(p_top) = 'array' THEN p_top
                 ELSE '[]'::jsonb END
        ) WITH ORDINALITY AS e(value, n)
        WHERE e.n <= p_k AND e.value->>'feature' IS NOT NULL
    ) AS lead_names
$$;

CREATE OR REPLACE FUNCTION insights_suppression_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_id bigint;
BEGIN
    IF NEW.severity IN ('warning', 'alarm') AND NEW.top_features IS NOT NULL THEN
        SELECT s.id INTO v_id FROM alarm_suppressions s
        WHERE s.asset = NEW.asset AND s.model = NEW.model AND s.lifted_at IS NULL
          AND NEW.ts >= s.starts_at AND NEW.ts < s.until
          AND insight_leading_features(NEW.top_features, cardinality(s.features)) = s.features
        ORDER BY s.id LIMIT 1;
        IF FOUND THEN
            NEW.suppressed := true;
            NEW.suppression_id := v_id;
        END IF;
    END IF;
    NEW.suppressed := coalesce(NEW.suppressed, false);
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS insights_suppression_apply ON insights;
CREATE TRIGGER insights_suppression_apply BEFORE INSERT ON insights
    FOR EACH ROW EXECUTE FUNCTION insights_suppression_apply();

-- the outbox row goes the way a shadow row's goes (0020's insights_outbox_unqueue)
DROP TRIGGER IF EXISTS insights_suppressed_unqueue ON insights;
CREATE TRIGGER insights_suppressed_unqueue AFTER INSERT ON insights
    FOR EACH ROW WHEN (NEW.suppressed) EXECUTE FUNCTION insights_outbox_unqueue();

CREATE OR REPLACE FUNCTION alarm_suppressions_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_lifted boolean := TG_OP = 'UPDATE' AND NEW.lifted_at IS NOT NULL;
BEGIN
    INSERT INTO events (ts, kind, source, asset, message, detail)
    VALUES (
        CASE WHEN v_lifted THEN NEW.lifted_at ELSE NEW.created_at END, 'suppression', 'lifecycle', NEW.asset,
        CASE WHEN v_lifted
             THEN NEW.lifted_by || ' lifted suppression ' || NEW.id || ' of ' || NEW.model
             ELSE NEW.who || ' suppressed repeats of ' || NEW.model || ' on ' || NEW.asset || ' until '
                  || NEW.until END,
        jsonb_build_object(
            'action', CASE WHEN v_lifted THEN 'lifted' ELSE 'created' END,
            'suppression_id', NEW.id, 'feedback_id', NEW.feedback_id, 'insight_id', NEW.insight_id,
            'model', NEW.model, 'features', to_jsonb(NEW.features), 'starts_at', NEW.starts_at,
            'until', NEW.until, 'who', CASE WHEN v_lifted THEN NEW.lifted_by ELSE NEW.who END,
            'comment', CASE WHEN v_lifted THEN NEW.lift_reason ELSE NEW.comment END, 'db_role', session_user
        )
    );
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS alarm_suppressions_audit ON alarm_suppressions;
CREATE TRIGGER alarm_suppressions_audit AFTER INSERT OR UPDATE ON alarm_suppressions
    FOR EACH ROW EXECUTE FUNCTION alarm_suppressions_audit();

-- From a false_alarm feedback row: its insight gives the asset, the model, the time and the leading
-- features (up to p_k of them). Refused when the feedback is not a false alarm or the insight has no
-- leading features (a suppression without them would silence every alarm of the model there).
CREATE OR REPLACE FUNCTION record_alarm_suppression(
    p_feedback_id bigint, p_who text, p_hours double precision, p_comment text DEFAULT '', p_k integer DEFAULT 3
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_fb operator_feedback%ROWTYPE;
    v_ins record;
    v_features text[];
    v_id bigint;
BEGIN
    IF p_hours IS NULL OR p_hours <= 0 OR p_hours > 720 THEN
        RAISE EXCEPTION 'suppression hours must be in (0, 720], not %', p_hours USING ERRCODE = 'check_violation';
    END IF;
    SELECT * INTO v_fb FROM operator_feedback WHERE id = p_feedback_id;
    IF NOT FOUND OR v_fb.action <> 'false_alarm' THEN
        RAISE EXCEPTION 'feedback % is not a false_alarm label', p_feedback_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT asset::text AS asset, model::text AS model, ts, top_features INTO v_ins FROM insights
    WHERE insight_id = v_fb.insight_id ORDER BY ts DESC LIMIT 1;
    v_features := insight_leading_features(v_ins.top_features, greatest(coalesce(p_k, 3), 1));
    IF cardinality(v_features) = 0 THEN
        RAISE EXCEPTION 'insight % has no leading features to match repeats on', v_fb.insight_id
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO alarm_suppressions (who, feedback_id, insight_id, asset, model, features, starts_at, until,
                                    comment)
    VALUES (btrim(p_who), p_feedback_id, v_fb.insight_id, v_ins.asset, v_ins.model, v_features, v_ins.ts,
            v_ins.ts + make_interval(secs => p_hours * 3600), coalesce(p_comment, ''))
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION lift_alarm_suppression(p_id bigint, p_who text, p_reason text DEFAULT '')
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF p_who IS NULL OR length(btrim(p_who)) = 0 THEN
        RAISE EXCEPTION 'who lifts the suppression must be named' USING ERRCODE = 'check_violation';
    END IF;
    UPDATE alarm_suppressions SET lifted_at = now(), lifted_by = btrim(p_who), lift_reason = coalesce(p_reason, '')
    WHERE id = p_id AND lifted_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active suppression %', p_id USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

REVOKE ALL ON FUNCTION insights_suppression_apply() FROM PUBLIC;
REVOKE ALL ON FUNCTION alarm_suppressions_audit() FROM PUBLIC;
REVOKE ALL ON FUNCTION record_alarm_suppression(bigint, text, double precision, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION lift_alarm_suppression(bigint, text, text) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_reader') THEN
        GRANT EXECUTE ON FUNCTION record_alarm_suppression(bigint, text, double precision, text, integer)
            TO edge_reader;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_writer') THEN
        GRANT EXECUTE ON FUNCTION record_alarm_suppression(bigint, text, double precision, text, integer)
            TO edge_writer;
        GRANT EXECUTE ON FUNCTION lift_alarm_suppression(bigint, text, text) TO edge_writer;
    END IF;
END
$$;
