-- lifecycle: the suppression rule in one place, and the terminal UI may lift a suppression.
--
-- insight_suppression_of() is the rule of 0045 as a function: which active suppression (if any) an insight
-- of (asset, model, ts, severity, top_features) falls under. The BEFORE INSERT trigger on insights calls it
-- for the rows the historian stores, and the JetStream publisher calls it for the insights it is about to
-- send to the site (they leave the box beside the historian write, not through the outbox), so a repeat is
-- kept from MES on every path by the same test. It only reads: edge_writer and edge_reader may execute it.
--
-- lift_alarm_suppression() (0045) becomes the reader's third function: an engineer lifts a suppression from
-- the TUI through the same function as `edge models suppress lift`, so the lift is stamped and audited the
-- same way (server time, who, why, the calling role in the event's detail).

CREATE OR REPLACE FUNCTION insight_suppression_of(
    p_asset text, p_model text, p_ts timestamptz, p_severity text, p_top jsonb
) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
    SELECT s.id FROM alarm_suppressions s
    WHERE p_severity IN ('warning', 'alarm') AND p_top IS NOT NULL
      AND s.asset = p_asset AND s.model = p_model AND s.lifted_at IS NULL
      AND p_ts >= s.starts_at AND p_ts < s.until
      AND insight_leading_features(p_top, cardinality(s.features)) = s.features
    ORDER BY s.id LIMIT 1
$$;

CREATE OR REPLACE FUNCTION insights_suppression_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_id bigint := insight_suppression_of(NEW.asset::text, NEW.model::text, NEW.ts, NEW.severity::text,
                                          NEW.top_features::jsonb);
BEGIN
    IF v_id IS NOT NULL THEN
        NEW.suppressed := true;
        NEW.suppression_id := v_id;
    END IF;
    NEW.suppressed := coalesce(NEW.suppressed, false);
    RETURN NEW;
END
$$;

REVOKE ALL ON FUNCTION insight_suppression_of(text, text, timestamptz, text, jsonb) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_reader') THEN
        GRANT EXECUTE ON FUNCTION lift_alarm_suppression(bigint, text, text) TO edge_reader;
        GRANT EXECUTE ON FUNCTION insight_suppression_of(text, text, timestamptz, text, jsonb) TO edge_reader;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'edge_writer') THEN
        GRANT EXECUTE ON FUNCTION insight_suppression_of(text, text, timestamptz, text, jsonb) TO edge_writer;
    END IF;
END
$$;
